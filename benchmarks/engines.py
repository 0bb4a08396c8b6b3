"""Optuna and KerasTuner side by side: the same space files, data and wall-clock budget.

    .venv/bin/python benchmarks/engines.py [--spaces spaces/mlp.py spaces/arch.py] [--budget 600]
        [--seeds 0 1 2] [--train-size N] [--epochs E] [--out results/benchmarks]

Five setups: Optuna TPE with the Hyperband pruner, TPE with the median pruner, random search without
pruning, KerasTuner Hyperband and KerasTuner Bayesian optimization. Each (space, setup, seed) runs in a
fresh process spawned from this one, one at a time, in its own study under OUT/engines-runs/, so every
run starts with TensorFlow loaded and the data in memory, and the budget counts search time only. A run
starts no trial after the budget and stops the running one at it (Optuna through the trial timeout,
KerasTuner through a callback); only trials finished within the budget count. Baselines are left out:
they would cost every setup the same. Writes OUT/engines.md (the table), OUT/engines.png (best
validation accuracy against wall time) and OUT/engines.json (every finished trial).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import shutil
import statistics
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

TARGET = 0.98  # "time to 98%": the first finished trial at or above this validation accuracy
SETUPS = {  # label -> (engine, sampler or tuner, pruner)
    "Optuna TPE + Hyperband pruner": ("optuna", "tpe", "hyperband"),
    "Optuna TPE + median pruner": ("optuna", "tpe", "median"),
    "Optuna random, no pruning": ("optuna", "random", "none"),
    "KerasTuner Hyperband": ("keras-tuner", "hyperband", ""),
    "KerasTuner Bayesian": ("keras-tuner", "bayesian", ""),
}
KT_HYPERBAND = "KerasTuner Hyperband"


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """One setup on one space with one seed, in this (fresh) process; returns its finished trials."""
    from dataclasses import replace

    import optuna

    from search.engines import keras_tuner, keras_tuner_space
    from search.errors import TrialFailed
    from search.space import load_space
    from search.study import lifecycle, studies
    from search.study.objective import Objective
    from search.study.record import counts_toward_budget
    from search.training import datasets
    from search.training.runtime import start_tensorflow

    space = replace(load_space(job["space"]), baselines={})
    devices = start_tensorflow(models=space.model_kinds())  # the CPU kernels a lone worker would use
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a trial cut at the budget is not news
    data = datasets.load("mnist", None, job["train_size"])
    folder = Path(job["folder"])
    shutil.rmtree(folder, ignore_errors=True)  # a fresh study: never resume an earlier benchmark
    engine, method, pruner = SETUPS[job["setup"]]
    study = studies.open_study(space.name, str(folder / "journal.log"), method if engine == "optuna" else "random",
                               pruner or "none", job["seed"])
    budget, epochs = job["budget"], job["epochs"]
    started, wall_start = time.monotonic(), datetime.now()
    stop_at = started + budget
    if engine == "optuna":
        context = lifecycle.Context(data, limits=lifecycle.Limits(trial_timeout=budget), keep=0)
        objective = Objective(space, context, epochs, job["seed"])

        def tighten(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            # the next trial ends at the budget
            context.limits = lifecycle.Limits(trial_timeout=max(1e-3, stop_at - time.monotonic()))

        study.optimize(objective, timeout=budget, catch=(TrialFailed,), callbacks=[tighten], gc_after_trial=True)
    else:
        settings = keras_tuner.Settings(tuner=method, budget=10**6, epochs=epochs, stop_at=stop_at)
        keras_tuner.KerasTunerSearch(space, lifecycle.Context(data, keep=0), study, folder, settings).search()
    max_epochs = keras_tuner_space.max_epochs(space, epochs)
    trials = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        cut = attrs.get("interrupted") or str(attrs.get("reason", "")).startswith("exceeded --trial-timeout")
        if not counts_toward_budget(trial) or cut or trial.datetime_complete is None:
            continue
        finished = (trial.datetime_complete - wall_start).total_seconds()
        if finished > budget:
            continue
        history = attrs.get("val_history") or []
        trials.append({
            "number": trial.number, "state": trial.state.name.lower(), "finished_s": round(finished, 2),
            "val_accuracy": trial.value, "best_val_seen": max(history) if history else None,
            "test_accuracy": attrs.get("test_accuracy"), "epochs": attrs.get("epochs"),
            "total_epochs": (attrs.get("initial_epoch") or 0) + (attrs.get("epochs") or 0),
            "continues": attrs.get("continues"), "reason": attrs.get("reason"),
        })
    return {**job, "max_epochs": max_epochs, "devices": devices, "trials": trials}


def _child(job: dict[str, Any], out: str) -> None:
    Path(out).write_text(json.dumps(run_one(job)))


def summarize(run: dict[str, Any]) -> dict[str, Any]:
    """Best validation accuracy, its trial's test accuracy, counts and time to TARGET of one run."""
    trials = run["trials"]
    complete = sorted((t for t in trials if t["state"] == "complete"), key=lambda t: t["finished_s"])
    best = max(complete, key=lambda t: t["val_accuracy"], default=None)
    reached = next((t["finished_s"] for t in complete if t["val_accuracy"] >= TARGET), math.inf)
    if run["setup"] == KT_HYPERBAND:  # stopped early: left behind by successive halving before max_epochs
        continued = {t["continues"] for t in trials if t["continues"] is not None}
        pruned = sum(t["total_epochs"] < run["max_epochs"] and t["number"] not in continued for t in trials)
    else:
        pruned = sum(t["state"] == "pruned" for t in trials)
    return {"best_val": best["val_accuracy"] if best else math.nan,
            "test_of_best": best["test_accuracy"] if best else math.nan,
            "finished": len(trials), "pruned": pruned, "to_target": reached}


def table(runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """One row per (space, setup), medians over seeds; and per space the ratio line the README quotes."""
    rows, ratios = [], {}
    for space in dict.fromkeys(r["space"] for r in runs):
        times: dict[str, float] = {}
        for setup in SETUPS:
            mine = [summarize(r) for r in runs if r["space"] == space and r["setup"] == setup]
            if not mine:
                continue
            reached = [s["to_target"] for s in mine]
            times[setup] = statistics.median(reached)
            rows.append({
                "space": Path(space).name, "engine": setup,
                "best val": statistics.median(s["best_val"] for s in mine),
                "test (of best val)": statistics.median(s["test_of_best"] for s in mine),
                "trials finished": statistics.median(s["finished"] for s in mine),
                "pruned / stopped early": statistics.median(s["pruned"] for s in mine),
                f"time to {TARGET:.0%} val (s)": times[setup],
                f"seeds reaching {TARGET:.0%}": f"{sum(math.isfinite(t) for t in reached)}/{len(reached)}",
            })
        ratios[Path(space).name] = _ratio(times)
    return rows, ratios


def _ratio(times: dict[str, float]) -> str:
    optuna = {k: v for k, v in times.items() if k.startswith("Optuna")}
    if not optuna or KT_HYPERBAND not in times:
        return "not measured"
    best = min(optuna, key=lambda k: optuna[k])
    if not math.isfinite(optuna[best]):
        return f"no ratio: no Optuna setup reached {TARGET:.0%} (median over seeds)"
    if not math.isfinite(times[KT_HYPERBAND]):
        return f"no ratio: {KT_HYPERBAND} did not reach {TARGET:.0%} (median over seeds); {best}: {optuna[best]:.0f} s"
    return (f"{best} {optuna[best]:.0f} s / {KT_HYPERBAND} {times[KT_HYPERBAND]:.0f} s = "
            f"{optuna[best] / times[KT_HYPERBAND]:.2f}")


def markdown(rows: list[dict[str, Any]]) -> str:
    heads = list(rows[0])
    lines = ["| " + " | ".join(heads) + " |", "|" + " --- |" * len(heads)]
    for row in rows:
        cells = []
        for head, value in row.items():
            if isinstance(value, float) and head.startswith(("best", "test")):
                cells.append("-" if math.isnan(value) else f"{100 * value:.2f}%")
            elif isinstance(value, float) and head.startswith("time"):
                cells.append(f"{value:.0f}" if math.isfinite(value) else "not reached")
            elif isinstance(value, float):
                cells.append(f"{value:g}")
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(runs: list[dict[str, Any]], budget: float, path: Path) -> None:
    """Best validation accuracy so far against wall time: per space, one line per setup (median over
    seeds, drawn where at least half the seeds have a finished trial) over thin lines per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    spaces = list(dict.fromkeys(r["space"] for r in runs))
    grid = np.linspace(0, budget, 300)
    fig, axes = plt.subplots(1, len(spaces), figsize=(6.5 * len(spaces), 4.5), squeeze=False)
    for ax, space in zip(axes[0], spaces, strict=True):
        for index, setup in enumerate(SETUPS):
            colour, style = f"C{index}", ("-", "--", ":", "-", "--")[index]  # two TPE runs share their first trials
            curves = []
            for run in (r for r in runs if r["space"] == space and r["setup"] == setup):
                done = sorted((t["finished_s"], t["val_accuracy"]) for t in run["trials"] if t["state"] == "complete")
                curve = np.full(grid.shape, np.nan)
                best = -np.inf
                for finished, value in done:
                    best = max(best, value)
                    curve[grid >= finished] = best
                curves.append(curve)
                ax.step(grid, curve, where="post", color=colour, alpha=0.25, linewidth=0.8)
            if curves:
                # No finished trial yet counts as worst, so the median appears once half the seeds have one.
                median = np.median(np.nan_to_num(np.vstack(curves), nan=-np.inf), axis=0)
                median[~np.isfinite(median)] = np.nan
                ax.step(grid, median, where="post", color=colour, linestyle=style, linewidth=2, label=setup)
        ax.axhline(TARGET, color="grey", linestyle=":", linewidth=1)
        ax.set(title=Path(space).name, xlabel="wall time (s)", ylabel="best validation accuracy so far")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def machine(devices: list[str]) -> str:
    cpu = platform.processor() or "?"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    accelerators = [d for d in devices if "CPU" not in d]
    return f"{cpu}, {os.cpu_count()} cores" + (f", {', '.join(accelerators)}" if accelerators else ", no GPU")


def versions() -> str:
    from importlib.metadata import version

    return ", ".join(f"{name} {version(name)}" for name in ("tensorflow", "keras", "optuna", "keras-tuner"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["spaces/mlp.py", "spaces/arch.py"])
    parser.add_argument("--budget", type=float, default=600, help="wall-clock seconds per setup, space and seed")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--train-size", type=int, help="train on the first N of the 55,000 training images")
    parser.add_argument("--epochs", type=int, help="cap every config's epochs (and Hyperband's max_epochs)")
    parser.add_argument("--setups", nargs="+", choices=list(SETUPS), default=list(SETUPS), metavar="SETUP",
                        help="only these setups (quick checks): " + "; ".join(SETUPS))
    parser.add_argument("--out", default="results/benchmarks")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [{"space": space, "setup": setup, "seed": seed, "budget": args.budget, "train_size": args.train_size,
             "epochs": args.epochs, "folder": str(out / "engines-runs" / Path(space).stem / setup.replace(" ", "_")
                                                  .replace("+", "").replace(",", "") / f"seed{seed}")}
            for space in args.spaces for seed in args.seeds for setup in args.setups]
    print(f"{len(jobs)} runs of {args.budget:g} s each: about {len(jobs) * (args.budget + 15) / 60:.0f} min",
          flush=True)
    context = multiprocessing.get_context("spawn")  # a fresh TensorFlow for every run
    runs = []
    for job in jobs:
        result = out / "engines-runs" / "last.json"
        result.unlink(missing_ok=True)
        process = context.Process(target=_child, args=(job, str(result)))
        process.start()
        process.join(args.budget + 600)
        if process.is_alive():
            process.kill()
            process.join()
        if not result.exists():
            raise SystemExit(f"{job['setup']} on {job['space']} seed {job['seed']}: the run failed "
                             f"(exit code {process.exitcode})")
        run = json.loads(result.read_text())
        runs.append(run)
        summary = summarize(run)
        print(f"{Path(job['space']).name} | {job['setup']} | seed {job['seed']}: {summary['finished']} trials, "
              f"{summary['pruned']} pruned, best val {100 * summary['best_val']:.2f}%, {TARGET:.0%} "
              + (f"at {summary['to_target']:.0f} s" if math.isfinite(summary["to_target"]) else "not reached"),
              flush=True)
    rows, ratios = table(runs)
    figure(runs, args.budget, out / "engines.png")
    (out / "engines.json").write_text(json.dumps(runs, indent=1) + "\n")
    header = (f"Budget {args.budget:g} s of wall time per run; seeds {', '.join(map(str, args.seeds))}; "
              f"{'all 55,000' if not args.train_size else f'{args.train_size:,}'} training images, validation 5,000, "
              f"test 10,000; epochs {args.epochs or 'as in each space file'}; measured {date.today()} on "
              f"{machine(runs[0]['devices'])}; {versions()}. Medians over seeds.\n")
    notes = (f"\n`test (of best val)` is the test accuracy of the run's best-validation trial. KerasTuner Hyperband "
             f"counts each promoted model's continuation as a trial; its `stopped early` are the models successive "
             f"halving left behind before max_epochs. `time to {TARGET:.0%}` is when the first trial at or above "
             f"{TARGET:.0%} validation accuracy finished (median over seeds, `not reached` when most did not). "
             f"The Optuna setups share a seed, and TPE samples its first 10 trials at random, so they start alike.\n\n"
             + "".join(f"Time to {TARGET:.0%} on {space}, best Optuna setup / KerasTuner Hyperband: {ratio}\n"
                       for space, ratio in ratios.items()))
    text = header + "\n" + markdown(rows) + notes
    (out / "engines.md").write_text(text)
    print("\n" + text + f"\nwrote {out / 'engines.md'}, {out / 'engines.png'}, {out / 'engines.json'}")


if __name__ == "__main__":
    main()
