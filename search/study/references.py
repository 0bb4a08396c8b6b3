"""The tutorials trained as written: the references a search is measured against.

`reproduce` (`search baselines`) trains each named tutorial (space/tutorials.py) once on the full
data, in float32, with the same machinery as a trial (`train.training_model`, `train.fit`) and sets our
test accuracy beside the published one.

The reference store, `references.json` in a results folder, keeps every finished training of a
tutorial as written that any study of the folder ran (a baseline trial, or `confirm`'s training of
one), with the kind of machine it ran on: the data's checksum, the library versions, the precision,
the CPU and its kernels. `confirm` borrows a tutorial's trainings from other studies of the same
kind of machine instead of training them again (`borrowable`); `run` and `confirm` add their own
(`collect`), and so does `search baselines` when it trains a tutorial as written on the full data
(`add_baselines`); `summary` tells what the store holds for a kind of machine. A study's baseline
trial is not trained at all when the store holds its tutorial for the worker's kind of machine
(`reusable`): the trial records that training, and where it came from, instead.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.errors import InputError
from search.files import write_atomic
from search.space.tutorials import TUTORIALS
from search.study import record
from search.study.record import Attr, StudyAttr

STORE = "references.json"
# The precision of a tutorial as written, in `search baselines` and in a study alike (a baseline trial,
# a `confirm` training of one), whatever precision the study's searched trials train in.
AS_WRITTEN = "float32"
ENTRY = {"tutorial", "study", "trial", "seed", "val", "test", "seconds", "machine"}  # what each run holds


def tutorial_of(config: Any) -> str | None:
    """The tutorial whose config this is, exactly as written (not shortened, nothing changed), or None."""
    return next((name for name, tutorial in TUTORIALS.items() if tutorial.config == config), None)


def machine(study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
    """The kind of machine a training ran on, as far as its figures depend on it."""
    attrs = trial.user_attrs
    return {"data": study.user_attrs.get(StudyAttr.DATA_CHECKSUM), "versions": attrs.get(Attr.VERSIONS),
            "precision": attrs.get(Attr.PRECISION), "cpu": attrs.get(Attr.CPU), "kernels": attrs.get(Attr.CPU_KERNELS)}


def kind(data_checksum: str, machine: record.Machine) -> dict[str, Any]:
    """A worker's kind of machine as `machine` records a trial's, from the worker's own `Machine`."""
    return {"data": data_checksum, "versions": machine.versions, "precision": machine.precision, "cpu": machine.cpu,
            "kernels": machine.cpu_kernels}


def reusable(results: Path, config: dict[str, Any], machine_kind: dict[str, Any], study: str) -> dict[str, Any] | None:
    """The first stored training, by another study, of the tutorial whose config as written `config` is,
    on `machine_kind`: what a baseline trial of `study` records instead of training; None if there is
    none (or `config` is no tutorial as written)."""
    name = tutorial_of(config)
    if name is None:
        return None
    return next((run for run in stored(results) if run["tutorial"] == name and run["machine"] == machine_kind
                 and run["study"] != study and run["test"] is not None), None)


def _tutorial(study: optuna.Study, trial: FrozenTrial, trials: list[FrozenTrial]) -> str | None:
    """The tutorial that a finished trial trained as written on the full MNIST training set (a baseline
    trial, or a `confirm` training of one), or None."""
    attrs = trial.user_attrs
    if (trial.state != TrialState.COMPLETE or not record.ended_on_its_own(trial) or attrs.get(Attr.TRAIN_SIZE)
            or study.user_attrs.get(StudyAttr.DATASET) != "mnist"):
        return None
    source = trials[attrs[Attr.CONFIRM_OF]] if record.is_confirmation(trial) else trial
    return tutorial_of(attrs.get(Attr.CONFIG)) if source.user_attrs.get(Attr.BASELINE) else None


def reference_of(study: optuna.Study, trial: FrozenTrial, trials: list[FrozenTrial]) -> dict[str, Any] | None:
    """The store's entry for a finished training of a tutorial as written on the full MNIST training
    set (a baseline trial, or a `confirm` training of one), or None for any other trial and for a
    baseline that recorded a stored training (it is in the store already); `trials` are the study's,
    read once by the caller."""
    name = _tutorial(study, trial, trials)
    if name is None or trial.user_attrs.get(Attr.REFERENCE):
        return None
    row = record.read(trial)
    return {"tutorial": name, "study": study.study_name, "trial": trial.number, "seed": row.seed,
            "val": row.val_accuracy, "test": row.test_accuracy, "seconds": row.train_seconds,
            "machine": machine(study, trial)}


def stored(results: Path) -> list[dict[str, Any]]:
    """Every run in the folder's store (none if there is no store yet)."""
    path = results / STORE
    if not path.is_file():
        return []
    try:
        runs = list(json.loads(path.read_text())["runs"])
        if not all(isinstance(run, dict) and ENTRY <= run.keys() for run in runs):
            raise ValueError("an entry without " + ", ".join(sorted(ENTRY)))
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path}: not a reference store ({type(err).__name__}); move it aside to start a new "
                         "one") from None
    return runs


def collect(study: optuna.Study, results: Path) -> int:
    """Add the study's trainings of tutorials as written that the store lacks; returns how many."""
    runs = stored(results)
    have = {(run["study"], run["trial"]) for run in runs}
    trials = study.get_trials(deepcopy=False)
    new = [entry for trial in trials if (study.study_name, trial.number) not in have
           and (entry := reference_of(study, trial, trials)) is not None]
    return _append(results, runs, new)


def _append(results: Path, runs: list[dict[str, Any]], new: list[dict[str, Any]]) -> int:
    """Write the store as `runs` (what it held) and `new` after them, if there are new ones; how many."""
    if new:
        write_atomic(results / STORE, json.dumps({"runs": runs + new}, indent=1).encode())
    return len(new)


BASELINES_STUDY = "baselines"  # what the store calls the trainings of `search baselines`


def add_baselines(frame: Any, data: Any, seed: int, results: Path) -> int:
    """Add the trainings of `run_tutorials` to the folder's store, as one more kind of run, if they are of
    the tutorials as written: on the full MNIST training set, unscaled, in float32, on this machine as
    it is set up now (after `start_tensorflow`); returns how many were added."""
    from search.training import datasets

    if data.name != "mnist" or len(data.train_images) != datasets.TRAIN_SPLIT:
        return 0
    here = machine_here(data)
    runs = stored(results)
    first = sum(run["study"] == BASELINES_STUDY for run in runs)
    new = [{"tutorial": row["name"], "study": BASELINES_STUDY, "trial": first + index, "seed": seed,
            "val": row["val_accuracy"], "test": row["ours"], "seconds": row["seconds"], "machine": here}
           for index, row in enumerate(frame.to_dict("records"))
           if TUTORIALS[row["name"]].config == row["config"]]
    return _append(results, runs, new)


def machine_here(data: Any) -> dict[str, Any]:
    """This process's kind of machine as `machine` records a trial's, training in float32 on `data`."""
    from search.training import runtime

    return kind(data.checksum, record.Machine(cpu_kernels=runtime.cpu_kernels(), precision=AS_WRITTEN,
                                              versions=runtime.versions(), cpu=runtime.cpu_model()))


def summary(results: Path, kind: dict[str, Any] | None = None) -> list[str]:
    """One line a tutorial for what the store holds: its trainings' test accuracy, mean and sd, on
    `kind` of machine (default: every kind, the commonest first)."""
    import statistics

    runs = [run for run in stored(results) if kind is None or run["machine"] == kind]
    lines = []
    for name in TUTORIALS:
        tests = [run["test"] for run in runs if run["tutorial"] == name and run["test"] is not None]
        if tests:
            spread = f" ± {statistics.stdev(tests):.2%}" if len(tests) > 1 else ""
            lines.append(f"{name}: {statistics.mean(tests):.2%}{spread} test, {len(tests)} training"
                         + ("s" if len(tests) > 1 else ""))
    return lines


def borrowable(study: optuna.Study, number: int, results: Path | None) -> list[dict[str, Any]]:
    """Every stored training, by other studies on the same kind of machine, of the tutorial that baseline
    trial `number` trained as written; none for any other trial or without a store."""
    trials = study.get_trials(deepcopy=False)
    name = _tutorial(study, trials[number], trials) if results is not None else None
    if name is None:
        return []
    assert results is not None
    here, reused = machine(study, trials[number]), trials[number].user_attrs.get(Attr.REFERENCE)
    same = [run for run in stored(results) if run["tutorial"] == name and run["machine"] == here
            and run["study"] != study.study_name and f"{run['study']}#{run['trial']}" != reused]
    return same


def check_names(names: list[str] | None) -> None:
    """Refuse names that are not tutorials (`baselines --only`), in one line."""
    unknown = [name for name in names or [] if name not in TUTORIALS]
    if unknown:
        raise InputError(f"--only {', '.join(unknown)}: expected one of {', '.join(TUTORIALS)}")


def scaled(config: dict[str, Any], scale: float) -> dict[str, Any]:
    """The config with its epochs or steps multiplied by `scale` (at least 1), for quick runs."""
    key = "steps" if config.get("steps") else "epochs"
    return {**config, key: max(1, round(config.get(key, 10) * scale))}


def reproduce(names: list[str] | None = None, scale: float = 1.0, seed: int = 0, train_size: int | None = None,
              verbose: bool = False, progress: Callable[[str], None] | None = None) -> Any:
    """`search baselines`: the named tutorials (default: all) trained as written, in float32, on MNIST's
    first `train_size` training images (default: all 55,000), tabulated by `run_tutorials`; and the data."""
    check_names(names)
    from search.training import datasets
    from search.training.runtime import start_tensorflow

    data = datasets.load("mnist", None, train_size)
    start_tensorflow(verbose=verbose, models={TUTORIALS[name].config["model"] for name in names or TUTORIALS},
                     precision=AS_WRITTEN)
    return run_tutorials(data, names, scale, seed, progress), data


def run_tutorials(data: Any, names: list[str] | None = None, scale: float = 1.0, seed: int = 0,
                  progress: Callable[[str], None] | None = None) -> Any:
    """Train each named tutorial (default: all) once on `data`; a pandas DataFrame, one row each:
    name, config (as trained), tutorial, published, ours (test accuracy), delta, val_accuracy, epochs (passes over the
    training set an epoch iterates: S4-aug's holds 6 versions of each image), steps, best_epoch
    (the kept round), seconds (wall, validation included).
    `scale` multiplies every tutorial's epochs or steps; unknown names raise InputError."""
    check_names(names)
    import pandas as pd

    from search.space import schema
    from search.training import train

    rows = []
    for name in names or list(TUTORIALS):
        tutorial, config = TUTORIALS[name], scaled(TUTORIALS[name].config, scale)
        plan = train.plan(schema.resolve(config), len(data.train_images))
        if progress:
            progress(f"{name}: {tutorial.label}, {plan.total_steps:,} steps in {plan.rounds} rounds")
        started = time.perf_counter()
        train.reset(seed)
        callbacks = [_round_report(name, plan.rounds, progress)] if progress else []
        result = train.fit(train.training_model(config, AS_WRITTEN), config, data, callbacks=callbacks)
        test_accuracy = result.accuracy(data.test_images, data.test_labels)
        row = {"name": name, "config": config, "tutorial": tutorial.label, "published": tutorial.published,
               "ours": test_accuracy, "delta": test_accuracy - tutorial.published, "val_accuracy": result.val_accuracy,
               "epochs": round(plan.total_steps / plan.steps_per_epoch, 2),
               "steps": plan.total_steps, "best_epoch": result.best_epoch,
               "seconds": round(time.perf_counter() - started, 1)}
        rows.append(row)
        if progress:
            progress(f"{name}: test {test_accuracy:.2%} (published {tutorial.published:.2%}) in {row['seconds']} s")
    return pd.DataFrame(rows)


def _round_report(name: str, rounds: int, progress: Callable[[str], None]) -> Any:
    """A Keras callback that reports each round's validation accuracy through `progress`."""
    import keras

    def report(epoch: int, logs: dict[str, Any] | None) -> None:
        progress(f"{name}: round {epoch + 1}/{rounds} val_accuracy {(logs or {}).get('val_accuracy', math.nan):.4f}")

    return keras.callbacks.LambdaCallback(on_epoch_end=report)


def format_table(frame: Any) -> str:
    """The run as a Markdown table with percentages, for the CLI and the README."""
    shown = frame.drop(columns="config").assign(
        published=frame.published.map("{:.2%}".format), ours=frame.ours.map("{:.2%}".format),
        delta=frame.delta.map("{:+.2%}".format), val_accuracy=frame.val_accuracy.map("{:.2%}".format))
    return str(shown.to_markdown(index=False))
