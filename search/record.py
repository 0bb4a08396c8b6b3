"""The trial record: what every trial stores on itself, under names defined once.

Both engines write a trial's record through here (`machine`, `outcome`, `write`) and every reader
(leaderboard, progress, report, export, workers) reads it back through `read`, so a stored name is
spelt in one place (`Attr` for a trial's user attributes, `StudyAttr` for the study's). This is
also the one home of what counts toward a study's `--trials` budget: a finished trial counts
unless it was lost with its worker, interrupted, or started after the budget was taken.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum, unique
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

HOST = socket.gethostname()


@unique  # two names for one stored key would be two concepts read as one
class Attr(StrEnum):
    """A trial's user attributes."""

    BASELINE = "baseline"  # the space file's label for a baseline trial; absent for searched ones
    CONFIG = "config"  # the concrete config dict that was trained
    SEED = "seed"
    TEST_ACCURACY = "test_accuracy"  # measured once, after training; never seen by sampler or pruner
    VAL_HISTORY = "val_history"  # validation accuracy of every epoch (round) trained
    EPOCHS = "epochs"  # epochs (rounds) trained
    BEST_EPOCH = "best_epoch"  # 1-based: the epoch whose weights the trial keeps
    TRAIN_SECONDS = "train_seconds"
    N_PARAMS = "n_params"
    REASON = "reason"  # why a trial did not complete; a trial that sees its own failure records one
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM: does not count toward the budget
    SURPLUS = "surplus"  # started after the budget was taken: never ran, does not count
    RETRY_OF = "retry_of"  # the trial lost with its worker that this one runs again
    HOST = "host"
    PID = "pid"
    WORKER = "worker"
    CPU_KERNELS = "cpu_kernels"  # "oneDNN" or "Eigen"
    PRECISION = "precision"  # "float32" or "bfloat16"
    ENGINE = "engine"  # set on KerasTuner's trials: keras-tuner/<tuner>
    KERAS_TUNER_TRIAL = "keras_tuner_trial"  # KerasTuner's own trial id
    INITIAL_EPOCH = "initial_epoch"  # Hyperband: the epoch a promoted model continues from
    CONTINUES = "continues"  # Hyperband: the trial whose weights a promoted model continues


@unique
class StudyAttr(StrEnum):
    """The study's user attributes."""

    SEED = "seed"  # base seed: trial N trains with seed + N
    DATASET = "dataset"
    DATA_CHECKSUM = "data_checksum"
    SETTINGS = "settings"  # what a joining worker needs (see workers.WorkerSpec)
    ENGINE = "engine"  # optuna/<sampler>+<pruner> or keras-tuner/<tuner>, comma-separated if several
    SPACE = "space"  # space.outline of the space the study runs: a resume with another is refused
    SPACE_CHANGES = "space_changes"  # [{"from_trial": N, "changes": [...]}]: changes accepted on resume


# A trial flagged with one of these did not use up a place in the budget.
EXCLUDED = (Attr.INTERRUPTED, Attr.SURPLUS)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
LOST_REASON = "its worker died during the trial (queued once more)"


def machine(worker: int, cpu_kernels: str, precision: str) -> dict[Attr, Any]:
    """Where and how a trial trains: recorded as it starts (the pid lets a later run reap it)."""
    return {Attr.HOST: HOST, Attr.PID: os.getpid(), Attr.WORKER: worker, Attr.CPU_KERNELS: cpu_kernels,
            Attr.PRECISION: precision}


def outcome(val_history: list[float], train_seconds: float, n_params: int | None = None,
            best_epoch: int | None = None, test_accuracy: float | None = None,
            reason: str | None = None, interrupted: bool = False) -> dict[Attr, Any]:
    """What a trial's training left, whichever engine ran it; absent figures are left out."""
    values: dict[Attr, Any] = {Attr.EPOCHS: len(val_history), Attr.TRAIN_SECONDS: round(train_seconds, 2),
                               Attr.VAL_HISTORY: list(val_history), Attr.N_PARAMS: n_params,
                               Attr.BEST_EPOCH: best_epoch, Attr.TEST_ACCURACY: test_accuracy,
                               Attr.REASON: reason, Attr.INTERRUPTED: interrupted or None}
    return {key: value for key, value in values.items() if value is not None}


def write(trial: optuna.Trial, values: Mapping[Attr, Any]) -> None:
    """Store `values` on a running trial (one storage record each)."""
    for key, value in values.items():
        trial.set_user_attr(str(key), value)


def reason_of(err: BaseException) -> str:
    """One line for a trial that raised: its type and first line, at most 300 characters."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"[:300]


def lost(trial: FrozenTrial) -> bool:
    """Failed from outside: every failure the trial itself sees records a reason; a dead worker's cannot."""
    return trial.state == TrialState.FAIL and Attr.REASON not in trial.user_attrs


def counted(trial: FrozenTrial) -> bool:
    """Finished trials count toward the budget, except lost ones and those flagged in EXCLUDED."""
    return trial.state in FINISHED and not lost(trial) and not any(trial.user_attrs.get(f) for f in EXCLUDED)


def pending(trial: FrozenTrial) -> bool:
    """Trials that will count once they finish: queued, or running and not flagged surplus."""
    return trial.state in (TrialState.WAITING, TrialState.RUNNING) and not trial.user_attrs.get(Attr.SURPLUS)


def done(trials: Iterable[FrozenTrial]) -> int:
    """How many of `trials` count toward the budget."""
    return sum(counted(t) for t in trials)


def taken(trials: Iterable[FrozenTrial]) -> int:
    """Places in the budget that are used: trials finished (counted), queued or running."""
    return sum(counted(t) or pending(t) for t in trials)


@dataclass(frozen=True)
class Record:
    """One stored trial as the readers see it."""

    number: int
    state: str  # complete, pruned, fail, interrupted, lost, running, waiting
    val_accuracy: float  # a completed trial's value; else its best epoch so far; NaN if none
    test_accuracy: float  # NaN unless completed
    n_params: int | None
    epochs: int | None
    train_seconds: float | None
    baseline: str  # "" for a searched trial
    config: dict[str, Any]
    seed: int | None
    reason: str
    val_history: list[float] = field(default_factory=list)
    counted: bool = False


def read(trial: FrozenTrial) -> Record:
    """The record of a stored trial."""
    attrs = trial.user_attrs
    history = [float(v) for v in attrs.get(Attr.VAL_HISTORY) or []]
    finite = [v for v in history if math.isfinite(v)]
    if trial.state == TrialState.COMPLETE and trial.value is not None:
        val = float(trial.value)
    else:
        val = max(finite) if finite else math.nan
    state = ("interrupted" if attrs.get(Attr.INTERRUPTED) else "lost" if lost(trial)
             else trial.state.name.lower())
    test = attrs.get(Attr.TEST_ACCURACY)
    return Record(
        number=trial.number, state=state, val_accuracy=val,
        test_accuracy=float(test) if test is not None else math.nan,
        n_params=attrs.get(Attr.N_PARAMS), epochs=attrs.get(Attr.EPOCHS), train_seconds=attrs.get(Attr.TRAIN_SECONDS),
        baseline=attrs.get(Attr.BASELINE) or "", config=attrs.get(Attr.CONFIG) or {}, seed=attrs.get(Attr.SEED),
        reason=attrs.get(Attr.REASON) or (LOST_REASON if lost(trial) else ""), val_history=history,
        counted=counted(trial))
