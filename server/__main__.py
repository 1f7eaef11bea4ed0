"""`python -m server`: start a single-machine Ray, deploy the Promptscape app, serve until stopped.

    python -m server --host 127.0.0.1 --port 8765 --token TOKEN --models FOLDER

Run it from the repository root (it imports generation/ from there). SIGINT or SIGTERM shuts Serve and
Ray down, so the port is free when the process has exited.
"""

import argparse
import ipaddress
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("promptscape.server")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m server", description="The Promptscape server")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--token",
        default=os.environ.get("PROMPTSCAPE_SERVER_TOKEN", ""),
        help="clients must send Authorization: Bearer TOKEN (env PROMPTSCAPE_SERVER_TOKEN)",
    )
    parser.add_argument(
        "--models",
        default=os.environ.get("PROMPTSCAPE_SERVER_MODELS", ""),
        help="folder whose subfolders are the models clients may name (env PROMPTSCAPE_SERVER_MODELS)",
    )
    parser.add_argument("--min-replicas", type=int, default=1)
    parser.add_argument(
        "--max-replicas",
        type=int,
        default=0,
        help="default: one per GPU share (--gpu-per-replica), or 1 without a GPU",
    )
    parser.add_argument(
        "--gpu-per-replica",
        type=float,
        default=1.0,
        help="GPUs per replica; 0.5 puts two replicas on each GPU",
    )
    parser.add_argument("--cpus", type=int, default=2, help="CPUs Ray may use on this machine")
    parser.add_argument("--cpus-per-replica", type=float, default=1.0, help="also torch's thread count")
    parser.add_argument(
        "--keep-files", type=float, default=3600.0, help="seconds a finished job's files stay for download"
    )
    parser.add_argument("--max-jobs", type=int, default=256, help="jobs queued or running at most")
    parser.add_argument("--files", default="", help="folder for results (default: a temporary folder)")
    return parser


def check_arguments(args) -> str:
    """What is wrong with the arguments, in words, or ''."""
    if not args.token and not is_loopback(args.host):
        return f"refusing to listen on {args.host} without a token: give --token (and put TLS in front)"
    if args.max_jobs < 64:
        return "--max-jobs must be at least 64"
    if args.models and not Path(args.models).is_dir():
        return f"--models {args.models}: no such folder"
    if not 0 < args.gpu_per_replica <= 8:
        return "--gpu-per-replica must be above 0 and at most 8"
    return ""


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if problem := check_arguments(args):
        print(f"promptscape server: error: {problem}", file=sys.stderr)
        return 2
    # Ray's workers import generation/ and server/ from the repository root.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, str(ROOT))
    if is_loopback(args.host):  # Ray then takes 127.0.0.1 as this node's address, not the LAN one
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray import serve

    from server.engine import engine_deployment
    from server.gateway import Gateway

    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="psrv-"))  # Ray's sockets need a short path
    ray.init(
        num_cpus=args.cpus,
        include_dashboard=False,
        _temp_dir=str(scratch / "ray"),
        _node_ip_address="127.0.0.1" if is_loopback(args.host) else None,
        log_to_driver=False,
        namespace="promptscape",
    )
    gpus = ray.cluster_resources().get("GPU", 0.0)
    per_replica = args.gpu_per_replica if gpus else 0.0
    high = args.max_replicas or (max(1, int(gpus / per_replica)) if gpus else 1)
    low = min(args.min_replicas, high)
    files_root = Path(args.files or scratch / "files").resolve()
    files_root.mkdir(parents=True, exist_ok=True)
    serve.start(http_options={"host": args.host, "port": args.port})
    engine = engine_deployment((low, high), args.cpus_per_replica, per_replica).bind(
        str(files_root), int(args.cpus_per_replica)
    )
    settings = {
        "token": args.token,
        "models": args.models or None,
        "files_root": str(files_root),
        "keep_seconds": args.keep_files,
        "max_jobs": args.max_jobs,
    }
    serve.run(Gateway.bind(engine, settings), name="promptscape", route_prefix="/")
    where = "GPU" if gpus else "CPU"
    log.info(
        "serving on http://%s:%d: %d-%d replicas on %s, ready in %.1f s",
        args.host,
        args.port,
        low,
        high,
        where,
        time.perf_counter() - started,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    log.info("shutting down")
    serve.shutdown()
    ray.shutdown()
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
