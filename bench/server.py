"""Load test of the Promptscape server on loopback: throughput, status-poll latency, remote overhead.

    .venv-server/bin/python bench/server.py [--clients 20 --jobs 3]

Starts the server (a real single-machine Ray) with 1, then 2 CPU replicas and the tiny model; each of
`--clients` threads submits `--jobs` worlds one after another, polls each until done and downloads its
EXR. Prints jobs per second for each, the p99 status-poll latency, how many answers were not 200, and the
end-to-end time of one remote job against the same job on a local worker in this process. Every wait is
bounded. Figures go to .cache/bench/server.json.
"""

import argparse
import concurrent.futures
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from server_process import ServerProcess  # noqa: E402

TOKEN = "bench-token"
LOAD_JOB = {
    "kind": "world",
    "prompt": "a bench sky",
    "model": "tiny-sd",
    "steps": 4,
    "width": 128,
    "height": 64,
}
OVERHEAD_JOB = {**LOAD_JOB, "steps": 20, "width": 512, "height": 256, "seed": 3}
JOB_DEADLINE = 300.0


def http(server, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {TOKEN}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def run_job(server, body, latencies: list, statuses: list, lock) -> float:
    """Submit, poll to the end, download the EXR; the seconds it took."""
    started = time.perf_counter()
    status, answer = http(server, "POST", "/v1/jobs", body)
    statuses.append(status)
    job_id = json.loads(answer)["id"]
    while time.perf_counter() - started < JOB_DEADLINE:
        asked = time.perf_counter()
        status, answer = http(server, "GET", f"/v1/jobs/{job_id}?preview=0")
        with lock:
            latencies.append(time.perf_counter() - asked)
            statuses.append(status)
        job = json.loads(answer)
        if job["state"] == "done":
            status, _ = http(server, "GET", f"/v1/jobs/{job_id}/files/{job['files']['exr']}")
            statuses.append(status)
            return time.perf_counter() - started
        if job["state"] in ("failed", "cancelled"):
            raise RuntimeError(f"job {job_id} {job['state']}: {job['message']}")
        time.sleep(0.2)
    raise RuntimeError(f"job {job_id} did not finish within {JOB_DEADLINE} s")


def load(server, clients: int, jobs: int) -> dict:
    latencies, statuses, lock = [], [], threading.Lock()
    run_job(server, LOAD_JOB, [], [], lock)  # every replica's first job loads torch and the model
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        futures = [
            pool.submit(lambda: [run_job(server, LOAD_JOB, latencies, statuses, lock) for _ in range(jobs)])
            for _ in range(clients)
        ]
        for future in futures:
            future.result(timeout=JOB_DEADLINE * jobs)
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "jobs": clients * jobs,
        "seconds": round(wall, 2),
        "jobs_per_second": round(clients * jobs / wall, 3),
        "polls": len(latencies),
        "p50_poll_ms": round(1000 * latencies[len(latencies) // 2], 1),
        "p99_poll_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 1),
        "not_200": sum(status not in (200, 201) for status in statuses),
    }


def local_seconds(repeats: int) -> float:
    """The overhead job on a worker in this process, written to files like the server does, with the
    one torch thread a replica has (--cpus-per-replica 1)."""
    import torch

    from generation.engine.request import GenerationRequest
    from generation.engine.worker import Worker
    from generation.imaging import outputs

    model = str(models_folder() / "tiny-sd")
    fields = {k: v for k, v in OVERHEAD_JOB.items() if k not in ("kind", "model")}
    request = GenerationRequest(**fields, model=model, mode="world")
    folder = Path(tempfile.mkdtemp(prefix="bench-local-"))
    torch.set_num_threads(1)
    worker, times = Worker(), []
    for index in range(repeats + 1):
        started = time.perf_counter()
        job = worker.submit(
            request, on_image=lambda image, r, job: outputs.write_world(image, folder, "w", r.to_metadata())
        )
        assert job.wait(JOB_DEADLINE) and job.state == "done", job.message
        if index:  # the first loads the model
            times.append(time.perf_counter() - started)
    worker.shutdown()
    return statistics.median(times)


def models_folder() -> Path:
    from generation.setup import tiny_models

    folder = ROOT / ".cache" / "bench" / "served-models"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "tiny-sd"
    if not link.exists():
        link.symlink_to(tiny_models.ensure_tiny_pipeline("sd", ROOT / ".cache" / "tiny-models"))
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5, help="jobs timed for the remote-vs-local figure")
    args = parser.parse_args()
    results, scratch = {}, Path(tempfile.mkdtemp(prefix="bench-server-"))
    for replicas in (1, 2):
        started = time.perf_counter()
        server = ServerProcess(
            models_folder(), scratch / str(replicas), TOKEN, "--min-replicas", str(replicas),
            "--max-replicas", str(replicas),
        )  # fmt: skip
        row = {"startup_seconds": round(time.perf_counter() - started, 1)}
        try:
            row.update(load(server, args.clients, args.jobs))
            if replicas == 1:
                lock = threading.Lock()
                remote = [run_job(server, OVERHEAD_JOB, [], [], lock) for _ in range(args.repeats)]
                row["remote_job_seconds"] = round(statistics.median(remote), 3)
        finally:
            server.stop()
        results[f"{replicas}_replica"] = row
        print(f"{replicas} replica(s): {json.dumps(row)}", flush=True)
    local = local_seconds(args.repeats)
    one, two = results["1_replica"], results["2_replica"]
    results["local_job_seconds"] = round(local, 3)
    results["remote_over_local"] = round(one["remote_job_seconds"] / local, 3)
    results["throughput_2_over_1"] = round(two["jobs_per_second"] / one["jobs_per_second"], 3)
    print(json.dumps({k: v for k, v in results.items() if not isinstance(v, dict)}), flush=True)
    out = ROOT / ".cache" / "bench" / "server.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
