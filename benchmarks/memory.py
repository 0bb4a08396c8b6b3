"""Resident memory of one worker process over many trials: does it stay flat?

    .venv/bin/python benchmarks/memory.py [--trials 100] [--train-size 2000]

Runs trials in this process exactly as `search run` does (real MNIST slice, one epoch each, a
searched MLP) and prints the resident set size after every 10 finished trials, and the growth
between trial 10 and the last.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import optuna

from search import storage
from search.workers import WorkerSpec, work

SPACE = '''
from search.space import Int, Float, Repeat
SPACE = {"model": "mlp", "layers": Repeat(Int(1, 3), {"units": Int(32, 512, log=True)}),
         "learning_rate": Float(1e-3, 1e-2, log=True), "batch_size": 128, "epochs": 1}
'''


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--train-size", type=int, default=2000)
    args = parser.parse_args()
    curve: list[tuple[int, float]] = []

    def measure(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        done = sum(storage.counted(t) for t in study.get_trials(deepcopy=False))
        if done % 10 == 0 and (not curve or curve[-1][0] != done):
            curve.append((done, rss_mb()))
            print(f"after {done:4d} trials: {curve[-1][1]:7.1f} MB resident", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        space = Path(tmp) / "memory.py"
        space.write_text(SPACE)
        location = storage.default_location(Path(tmp), "memory")
        from search import study as studies

        studies.open_study("memory", location, "random", "none", seed=0)
        spec = WorkerSpec(space_file=str(space), study="memory", location=location, train_size=args.train_size,
                          budget=args.trials, sampler="random", pruner="none", results=tmp, keep=0)
        work(spec, callbacks=[measure])
    first = next(mb for done, mb in curve if done == 10)
    print(f"growth from trial 10 to trial {curve[-1][0]}: {curve[-1][1] - first:+.1f} MB")


if __name__ == "__main__":
    main()
