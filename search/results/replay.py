"""Replaying a trial: train it again from its record, and compare epoch by epoch.

`replay` reads a completed trial's record (config, seed, data set and size, precision, CPU kernels,
threads, determinism, versions, CPU), starts TensorFlow the way the trial's worker did, trains the
same config with the same seed through the same code as the trial (`train.fit` of
`train.training_model`), and prints the recorded validation accuracy of each epoch beside the
replayed one, then the test accuracy. With `deterministic` it runs under TensorFlow's op
determinism on one thread: a trial that itself ran so (`run --deterministic`) replays bit for bit
on the same kind of machine. Whatever keeps a replay from being exact is said, before it trains.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
from rich.console import Console
from rich.table import Table

from search.errors import EXIT_FAILED, EXIT_OK, InputError
from search.study import record, studies
from search.study.record import Attr, StudyAttr
from search.training import runtime


def replay(name: str, number: int, deterministic: bool, results: Path, location: str | None, console: Console,
           verbose: bool = False) -> int:
    """Train trial `number` of study `name` again and print recorded against replayed figures; exit code
    EXIT_FAILED when it should have been exact and was not."""
    opened = studies.load_study(name, results, location)
    attrs = completed(opened, number).user_attrs
    threads = 1 if deterministic else attrs.get(Attr.THREADS)
    runtime.start_tensorflow(verbose=verbose, threads=threads, onednn=attrs[Attr.CPU_KERNELS] == "oneDNN",
                             precision=attrs[Attr.PRECISION], deterministic=deterministic)
    reasons = differences(attrs, deterministic)
    console.print(f"replaying trial {number} of {opened.study_name} (seed {attrs[Attr.SEED]}, "
                  f"{attrs[Attr.PRECISION]}, {runtime.cpu_kernels()}, "
                  f"{'deterministic, one thread' if deterministic else f'{threads or runtime.cores()} threads'})"
                  + ("" if not reasons else ": it cannot be exact, since " + "; ".join(reasons)))
    recorded = record.read(opened.get_trials(deepcopy=False)[number])
    val_history, test = retrain(opened, attrs)
    console.print(comparison(recorded.val_history, val_history, recorded.test_accuracy, test))
    exact = val_history == recorded.val_history and test == recorded.test_accuracy
    if exact:
        console.print("exact: every epoch's validation accuracy and the test accuracy equal the recorded ones")
        return EXIT_OK
    gap = max((abs(a - b) for a, b in zip(recorded.val_history, val_history, strict=False)), default=math.nan)
    console.print(f"not exact: validation accuracy differs by up to {100 * gap:.2f} points, test accuracy by "
                  f"{100 * abs(test - recorded.test_accuracy):.2f}"
                  + ("" if reasons else "; nothing recorded explains it (a bug, or a machine that computes "
                                        "differently under the same name)"))
    return EXIT_OK if reasons else EXIT_FAILED


def completed(opened: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    """Trial `number`, if it finished with a model; else one line saying why it cannot be replayed."""
    trials = opened.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        raise InputError(f"--trial {number}: study {opened.study_name!r} has no such trial (it has "
                         f"{len(trials)}: 0-{len(trials) - 1})")
    row = record.read(trials[number])
    if row.state != "complete":
        raise InputError(f"--trial {number}: {row.state}, so it has no finished model to replay; replay a "
                         "completed trial")
    needed = (Attr.CONFIG, Attr.SEED, Attr.PRECISION, Attr.CPU_KERNELS, Attr.VERSIONS)
    if any(key not in trials[number].user_attrs for key in needed):
        raise InputError(f"--trial {number}: its record holds no config, seed and machine to replay")
    return trials[number]


def differences(attrs: dict[str, Any], deterministic: bool) -> list[str]:
    """What differs between how the trial trained and how this replay trains (TensorFlow started)."""
    reasons = []
    if not attrs.get(Attr.DETERMINISTIC):
        reasons.append("the trial ran without op determinism (run --deterministic makes trials replay exactly)")
    elif not deterministic:
        reasons.append("the trial ran under op determinism and this replay does not (pass --deterministic)")
    if attrs[Attr.CPU_KERNELS] != runtime.cpu_kernels():
        reasons.append(f"it trained with {attrs[Attr.CPU_KERNELS]} kernels, these are {runtime.cpu_kernels()}")
    cpu = attrs.get(Attr.CPU)
    if cpu is not None and cpu != runtime.cpu_model():
        reasons.append(f"it trained on another CPU ({cpu}; this is {runtime.cpu_model() or 'unknown'})")
    recorded, here = attrs[Attr.VERSIONS], runtime.versions()
    changed = [f"{name} {recorded[name]} then, {here[name]} now" for name in here if recorded.get(name, here[name])
               != here[name]]
    if changed:
        reasons.append(", ".join(changed))
    return reasons


def retrain(opened: optuna.Study, attrs: dict[str, Any]) -> tuple[list[float], float]:
    """The trial's training again: its config, seed, data and precision, through the trial's code."""
    from search.training import datasets, train

    data = datasets.load(opened.user_attrs[StudyAttr.DATASET], None, attrs.get(Attr.TRAIN_SIZE))
    if data.checksum != opened.user_attrs.get(StudyAttr.DATA_CHECKSUM, data.checksum):
        raise InputError(f"study {opened.study_name!r} ran on other data than this machine's {data.name}")
    config = attrs[Attr.CONFIG]
    train.reset(int(attrs[Attr.SEED]))
    log = train.EpochLog()
    result = train.fit(train.training_model(config, attrs[Attr.PRECISION]), config, data, log=log)
    return log.val_history, result.accuracy(data.test_images, data.test_labels)


def comparison(recorded: list[float], replayed: list[float], recorded_test: float, replayed_test: float) -> Table:
    """Recorded against replayed, epoch by epoch, then test accuracy."""
    table = Table("", "recorded", "replayed", "difference (points)", header_style="bold")
    rows = [(f"epoch {i + 1} val", a, b) for i, (a, b) in enumerate(zip(recorded, replayed, strict=False))]
    for label, a, b in [*rows, ("test", recorded_test, replayed_test)]:
        table.add_row(label, f"{100 * a:.2f}%", f"{100 * b:.2f}%", "same" if a == b else f"{100 * (b - a):+.2f}")
    return table
