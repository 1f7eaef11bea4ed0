"""`python -m server`: start a single-machine Ray, deploy the Promptscape app, serve until stopped.

    PROMPTSCAPE_SERVER_TOKEN=... python -m server --host 0.0.0.0 --port 8765 --models FOLDER
    python -m server --token-file ~/.config/promptscape/token --models FOLDER

The token comes from the environment or a file, not the command line, where `ps` shows it to every user.

Run it from the repository root (it imports generation/ from there). SIGINT or SIGTERM shuts Serve and
Ray down, so the port is free when the process has exited.
"""

import argparse
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
sys.path.insert(0, str(ROOT))
from generation.engine.server_trust import is_loopback  # noqa: E402  (from the repository root)

log = logging.getLogger("promptscape.server")
TOKEN_ENV = "PROMPTSCAPE_SERVER_TOKEN"
QUIET = {"enable_access_log": False}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m server", description="The Promptscape server")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--token-file",
        default="",
        help=f"a file holding the token clients must send (Authorization: Bearer TOKEN); or set {TOKEN_ENV}",
    )
    parser.add_argument("--token", default="", help=f"the token itself (visible in `ps`: prefer {TOKEN_ENV})")
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
    parser.add_argument("--max-jobs", type=int, default=64, help="jobs queued or running at most (1-10000)")
    parser.add_argument(
        "--job-timeout", type=float, default=3600.0, help="seconds after which an unfinished job fails"
    )
    parser.add_argument("--files", default="", help="folder for results (default: a temporary folder)")
    return parser


def token_of(args, environ=os.environ) -> str:
    """The token: --token-file's first line, else --token, else the environment's; '' for none."""
    if args.token_file:
        return Path(args.token_file).expanduser().read_text().strip()
    return args.token or environ.get(TOKEN_ENV, "").strip()


def check_arguments(args) -> str:
    """What is wrong with the arguments, in words, or ''."""
    if args.token_file:
        try:
            if not token_of(args):
                return f"--token-file {args.token_file} is empty"
        except OSError as error:
            return f"--token-file {args.token_file}: {error.strerror}"
    if not token_of(args) and not is_loopback(args.host):
        return (
            f"refusing to listen on {args.host} without a token: set {TOKEN_ENV} or give --token-file "
            "(and put TLS in front)"
        )
    if not 1 <= args.max_jobs <= 10000:
        return "--max-jobs must be from 1 to 10000"
    if not args.job_timeout > 0:
        return "--job-timeout must be a number of seconds above 0"
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
    if is_loopback(args.host):  # Ray then takes 127.0.0.1 as this node's address, not the LAN one
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray import serve

    from server.engine import ONGOING_PER_REPLICA, engine_deployment
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
    # No access log: it wrote a line per request to disk in the proxy and again in the gateway, for every
    # status poll; the gateway logs what happens to jobs itself.
    serve.start(http_options={"host": args.host, "port": args.port}, logging_config=QUIET)
    engine = engine_deployment((low, high), args.cpus_per_replica, per_replica).bind(
        str(files_root), int(args.cpus_per_replica)
    )
    settings = {
        "token": token_of(args),
        "models": args.models or None,
        "files_root": str(files_root),
        "keep_seconds": args.keep_files,
        "max_jobs": args.max_jobs,
        "job_timeout": args.job_timeout,
        "engine_slots": high * ONGOING_PER_REPLICA,
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
