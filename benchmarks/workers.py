"""Trials per hour with 1 and with 2 local worker processes on the same 20-trial search.

    .venv/bin/python benchmarks/workers.py [--trials 20] [--train-size 10000] [--epochs 2]

Every trial trains the same small MLP (only the learning rate is searched, no pruning), so both
runs do the same work; the figure is wall time from start to leaderboard, worker start-up included.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPACE = '''
from search.space import Float
SPACE = {"model": "mlp", "layers": [{"units": 256}, {"units": 128}], "learning_rate": Float(1e-3, 1e-2, log=True),
         "batch_size": 128}
'''


def timed_run(workers: int, folder: Path, args: argparse.Namespace) -> float:
    space = folder / "bench.py"
    space.write_text(SPACE)
    command = [sys.executable, "-m", "search", "run", str(space), "--trials", str(args.trials), "--workers",
               str(workers), "--epochs", str(args.epochs), "--train-size", str(args.train_size), "--pruner", "none",
               "--seed", "0", "--keep-top", "0", "--results", str(folder / f"w{workers}")]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--train-size", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        seconds = {workers: timed_run(workers, Path(tmp), args) for workers in (1, 2)}
    print(f"{args.trials} trials, MLP 784-256-128-10, {args.epochs} epochs on {args.train_size:,} images, no pruning")
    print("| workers | wall seconds | trials per hour |")
    print("| --- | --- | --- |")
    for workers, wall in seconds.items():
        print(f"| {workers} | {wall:.1f} | {3600 * args.trials / wall:.0f} |")
    print(f"2 workers / 1 worker throughput: {seconds[1] / seconds[2]:.2f}x")


if __name__ == "__main__":
    main()
