"""Time to accuracy: wall time from the start of `run` until the trial selected by validation tests at
or above a target, for the dense space and, beside it in the same run, the 8-epoch median-pruned space
it replaced (targets 98.5% and 98.9%); with `--kind cnn`, for the CNN space (targets 99.3% and 99.6%).

    .venv/bin/python benchmarks/time_to_accuracy.py [--kind dense|cnn] [--runs 3] [--trials 50]
        [--references results/references.json] [--until-targets] [--out results/benchmarks]

`--references` copies a reference store into the runs' results folder first, so that the baselines
are recorded from it as in a results folder where `search baselines` has run, not trained.

Each (space, run) is `python -m search run SPACE --trials N --seed RUN` in a fresh process, one at a
time, in its own study under OUT/tta-runs/ (baselines included, as a user runs it). From each study's
trials, in the order they finished: the trial selected by validation after each finish, and the
first moment its test accuracy reached each target. Prints the median over runs and writes
OUT/time_to_accuracy.json (every run's figures, after each run). With `--until-targets` a run is
stopped as Ctrl-C stops it once its selected trial has reached every target (the study is read every
`POLL_SECONDS`): the times to the targets are the same, the rest of the run is not spent, and the
"selected's test" is then the one at the stop.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

KINDS = {  # the spaces compared, and the targets
    "dense": ({"successive halving, 30 epochs": "spaces/mlp.py",
               "median pruner, 8 epochs": "benchmarks/mlp_8_epochs.py"}, (0.985, 0.989)),
    "cnn": ({"successive halving, 30 epochs": "spaces/cnn.py"}, (0.993, 0.996)),
}
TARGETS = KINDS["dense"][1]
POLL_SECONDS = 15  # --until-targets: how often a running study is read


def time_to_targets(study_name: str, results: Path, started: datetime,
                    targets: tuple[float, ...] = TARGETS) -> dict[str, Any]:
    """From a finished study: seconds from `started` until the trial selected by validation first tested
    at or above each target (None: never), and the selected trial at the end."""
    import optuna

    from search.study import record
    from search.study.studies import load_study

    trials = [t for t in load_study(study_name, results).get_trials(deepcopy=False)
              if t.state == optuna.trial.TrialState.COMPLETE and t.datetime_complete is not None
              and not record.is_confirmation(t)]
    trials.sort(key=lambda t: t.datetime_complete)
    reached: dict[str, float | None] = {f"{target:.1%}": None for target in targets}
    selected = None
    for index, trial in enumerate(trials):
        selected = record.selected(map(record.read, trials[:index + 1]))
        seconds = (trial.datetime_complete - started).total_seconds()
        for target in targets:
            if selected is not None and selected.test_accuracy >= target and reached[f"{target:.1%}"] is None:
                reached[f"{target:.1%}"] = round(seconds, 1)
    return {"reached": reached, "selected": None if selected is None else
            {"trial": selected.number, "val": selected.val_accuracy, "test": selected.test_accuracy}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=list(KINDS), default="dense")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--references", help="a reference store (references.json) to start the runs' folder with")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--until-targets", action="store_true",
                        help="stop each run once its selected trial has reached every target")
    parser.add_argument("--out", default="results/benchmarks")
    args = parser.parse_args()
    out = Path(args.out)
    results = out / "tta-runs"
    shutil.rmtree(results, ignore_errors=True)
    spaces, targets = KINDS[args.kind]
    if args.references:
        results.mkdir(parents=True)
        shutil.copy(args.references, results / "references.json")
    runs = []
    for seed in range(args.runs):
        for label, space in spaces.items():
            name = f"tta-{Path(space).stem}-{seed}"
            started = datetime.now()
            clock = time.monotonic()
            stopped = run_search([sys.executable, "-m", "search", "run", space, "--trials", str(args.trials),
                                  "--seed", str(seed), "--study", name, "--results", str(results)],
                                 (name, results, started, targets) if args.until_targets else None)
            found = {"space": label, "seed": seed, "wall_seconds": round(time.monotonic() - clock, 1),
                     "stopped_at_targets": stopped, **time_to_targets(name, results, started, targets)}
            runs.append(found)
            print(json.dumps(found), flush=True)
            out.mkdir(parents=True, exist_ok=True)
            (out / f"time_to_accuracy{'' if args.kind == 'dense' else '-' + args.kind}.json").write_text(
                json.dumps(runs, indent=1))
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores; median of {args.runs} runs "
          f"of {args.trials} trials")
    print(f"| space | run (s) | {' | '.join(f'to {t:.1%} (s)' for t in targets)} | selected's test |")
    print("|---|---|" + "---|" * len(targets) + "---|")
    for label in spaces:
        mine = [run for run in runs if run["space"] == label]
        cells = [f"{statistics.median(run['wall_seconds'] for run in mine):.0f}"]
        for target in targets:
            times = [run["reached"][f"{target:.1%}"] for run in mine]
            # A run that never reached the target counts as never: the median says "never" if most did not.
            ordered = sorted(times, key=lambda t: float("inf") if t is None else t)
            middle = ordered[len(ordered) // 2]
            cells.append(("never" if middle is None else f"{middle:.0f}")
                         + f" ({sum(t is not None for t in times)}/{len(times)} reached)")
        tests = [run["selected"]["test"] for run in mine if run["selected"]]
        cells.append(f"{100 * statistics.median(tests):.2f}%" if tests else "-")
        print(f"| {label} | " + " | ".join(cells) + " |")


def run_search(command: list[str], watch: tuple[str, Path, datetime, tuple[float, ...]] | None) -> bool:
    """Run one search; with `watch` (its study, results folder, start and targets), stop it as Ctrl-C
    does (SIGINT to its process group) once its selected trial has reached every target. Whether it
    was stopped so."""
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    stopped = False
    while child.poll() is None:
        time.sleep(POLL_SECONDS)
        if watch is None or stopped or not (watch[1] / watch[0] / "journal.log").is_file():
            continue
        if all(seconds is not None for seconds in time_to_targets(*watch)["reached"].values()):
            os.killpg(child.pid, signal.SIGINT)
            stopped = True
    if child.returncode not in (0, 130) or (child.returncode == 130 and not stopped):
        raise SystemExit(f"{' '.join(command)}: exit {child.returncode}")
    return stopped


if __name__ == "__main__":
    main()
