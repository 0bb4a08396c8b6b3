"""Resident memory of a worker over many trials: does it stay flat?

    .venv/bin/python benchmarks/memory.py [--trials 100] [--train-size 2000] [--recycle-after 25]
    .venv/bin/python benchmarks/memory.py --in-process      # the same trials in one process

Runs `search run` on a real MNIST slice (one epoch per trial, a searched MLP) and prints, after
every 10 finished trials, the resident memory of the worker process running the trials (and of the
parent). `--in-process` runs the trials in this process instead, to show what recycling avoids.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from search.study import record, storage

SPACE = '''
from search.space import Int, Float, Repeat
SPACE = {"model": "mlp", "layers": Repeat(Int(1, 3), {"units": Int(32, 512, log=True)}),
         "learning_rate": Float(1e-3, 1e-2, log=True), "batch_size": 128, "epochs": 1}
'''


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def counted(location: str) -> int:
    try:
        study = optuna.load_study(study_name="memory", storage=storage.open_storage(location))
    except KeyError:
        return 0
    return sum(record.counts_toward_budget(t) for t in study.get_trials(deepcopy=False))


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def recycled(folder: Path, args: argparse.Namespace) -> list[tuple[int, float, float]]:
    command = [sys.executable, "-m", "search", "run", str(folder / "memory.py"), "--trials", str(args.trials),
               "--train-size", str(args.train_size), "--sampler", "random", "--pruner", "none", "--seed", "0",
               "--keep-top", "0", "--recycle-after", str(args.recycle_after), "--workers", "1",
               "--results", str(folder)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    location = storage.default_location(folder, "memory")
    curve: list[tuple[int, float, float]] = []
    while process.poll() is None:
        done = counted(location) if Path(location).exists() else 0
        if done and done % 10 == 0 and (not curve or curve[-1][0] != done):
            # the worker: the child that is not multiprocessing's small resource tracker
            worker = max((rss_mb(pid) for pid in children(process.pid)), default=float("nan"))
            curve.append((done, worker, rss_mb(process.pid)))
            print(f"after {done:4d} trials: worker {worker:7.1f} MB, parent {curve[-1][2]:6.1f} MB", flush=True)
        time.sleep(0.2)
    return curve


def in_process(folder: Path, args: argparse.Namespace) -> list[tuple[int, float, float]]:
    from search.study import studies
    from search.study.workers import WorkerSpec, work

    location = storage.default_location(folder, "memory")
    studies.open_study("memory", location, "random", "none", seed=0)
    curve: list[tuple[int, float, float]] = []

    def measure(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        done = sum(record.counts_toward_budget(t) for t in study.get_trials(deepcopy=False))
        if done % 10 == 0 and (not curve or curve[-1][0] != done):
            curve.append((done, rss_mb(), float("nan")))
            print(f"after {done:4d} trials: this process {curve[-1][1]:7.1f} MB", flush=True)

    spec = WorkerSpec(space_file=str(folder / "memory.py"), study="memory", location=location,
                      train_size=args.train_size, budget=args.trials, sampler="random", pruner="none",
                      results=str(folder), keep=0)
    work(spec, callbacks=[measure])
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--recycle-after", type=int, default=25)
    parser.add_argument("--in-process", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "memory.py").write_text(SPACE)
        curve = in_process(folder, args) if args.in_process else recycled(folder, args)
    at10 = next(mb for done, mb, _ in curve if done == 10)
    print(f"worker memory growth from trial 10 to trial {curve[-1][0]}: {curve[-1][1] - at10:+.1f} MB "
          f"(peak {max(mb for _, mb, _ in curve):.1f} MB)")


if __name__ == "__main__":
    main()
