"""Trials per hour against workers (1, 2, 4, 8), local processes and Ray actors, on one PostgreSQL study.

    .venv/bin/python benchmarks/workers.py [--trials 24] [--train-size 2000] [--epochs 1] [--workers 1,2,4,8]

Every trial trains the same small MLP (only the learning rate is searched, no pruning), so every run
does the same work; the figure is wall time from start to leaderboard, worker start-up included. The
Ray runs join a two-node `ray.cluster_utils.Cluster` on this machine whose nodes declare N CPUs between
them (its start is not timed). A throwaway PostgreSQL server (tests/postgres_server.py) holds the
studies. "memory" is how far the machine's used memory rose above where it was before the run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

SPACE = '''
from search.space import Float
SPACE = {"model": "mlp", "layers": [{"units": 256}, {"units": 128}], "learning_rate": Float(1e-3, 1e-2, log=True),
         "batch_size": 128}
'''


def used_memory() -> int:
    """Bytes in use on this machine: MemTotal - MemAvailable."""
    fields = dict(line.split(":") for line in Path("/proc/meminfo").read_text().splitlines())
    return (int(fields["MemTotal"].split()[0]) - int(fields["MemAvailable"].split()[0])) * 1024


def timed_run(command: list[str]) -> tuple[float, float]:
    """Wall seconds of `command`, and how far used memory rose above its level at the start (GB)."""
    base, peak, done = used_memory(), [0], threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], used_memory() - base)

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.perf_counter()
    try:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    finally:
        done.set()
        watcher.join()
    return time.perf_counter() - started, peak[0] / 1e9


def main() -> None:
    from postgres_server import running
    from ray.cluster_utils import Cluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--workers", default="1,2,4,8")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, running() as server:
        space = Path(tmp) / "bench.py"
        space.write_text(SPACE)
        for workers in map(int, args.workers.split(",")):
            for how in ("local", "ray"):
                command = [sys.executable, "-m", "search", "run", str(space), "--study", f"{how}-{workers}",
                           "--trials", str(args.trials), "--workers", str(workers), "--epochs", str(args.epochs),
                           "--train-size", str(args.train_size), "--pruner", "none", "--seed", "0", "--keep-top",
                           "0", "--storage", server.url, "--results", str(Path(tmp) / "results")]
                if how == "local":
                    rows.append((workers, how, *timed_run(command)))
                    continue
                cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": (workers + 1) // 2})
                cluster.add_node(num_cpus=workers // 2)
                cluster.wait_for_nodes()
                try:
                    rows.append((workers, how, *timed_run([*command, "--ray", cluster.address])))
                finally:
                    cluster.shutdown()
    print(f"{args.trials} trials, MLP 784-256-128-10, {args.epochs} epoch(s) on {args.train_size:,} images, no "
          f"pruning, PostgreSQL; {os.cpu_count()} cores")
    print("| workers | where | wall seconds | trials per hour | memory (GB) |")
    print("| --- | --- | --- | --- | --- |")
    for workers, how, wall, memory in rows:
        print(f"| {workers} | {how} | {wall:.1f} | {3600 * args.trials / wall:.0f} | {memory:.2f} |")


if __name__ == "__main__":
    main()
