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

from search.errors import one_line

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
    LATENCY_MS = "latency_ms"  # single-image CPU inference latency (models.latency_ms)
    REASON = "reason"  # why a trial did not complete; a trial that sees its own failure records one
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM: does not count toward the budget
    REJECTED = "rejected"  # over --max-params or --max-latency-ms, never trained: does not count
    SURPLUS = "surplus"  # started after the budget was taken: never ran, does not count
    RETRY_OF = "retry_of"  # the trial lost with its worker, or interrupted, that this one runs again
    RESUMED_AT = "resumed_at"  # epochs (rounds) of RETRY_OF's training this one continued from its checkpoint
    CONFIRM_OF = "confirm_of"  # `confirm`: the trial whose config this one trains again, with a fresh seed
    REPLICA = "replica"  # `confirm`: which of the S trainings of that config this is (0..S-1)
    HOST = "host"
    PID = "pid"
    WORKER = "worker"
    NODE = "node"  # `run --ray`: the Ray node the trial ran on
    CPU_KERNELS = "cpu_kernels"  # "oneDNN" or "Eigen"
    PRECISION = "precision"  # "float32" or "bfloat16"
    CPU = "cpu"  # the CPU's model name: oneDNN picks its kernels by the instructions a CPU has
    THREADS = "threads"  # TensorFlow's intra-op threads (None: one per core)
    DETERMINISTIC = "deterministic"  # TensorFlow's op determinism on one thread (`run --deterministic`)
    VERSIONS = "versions"  # tensorflow, keras, numpy
    TRAIN_SIZE = "train_size"  # training images (None: all 55,000)
    ENGINE = "engine"  # set on KerasTuner's trials: keras-tuner/<tuner>
    KERAS_TUNER_TRIAL = "keras_tuner_trial"  # KerasTuner's own trial id
    INITIAL_EPOCH = "initial_epoch"  # Hyperband: the epoch a promoted model continues from
    CONTINUES = "continues"  # Hyperband: the trial whose weights a promoted model continues
    WARM_START_OF = "warm_start_of"  # `run --warm-start`: "study#trial", the earlier trial whose params it trains
    ENQUEUED = "enqueued"  # `run --enqueue`: "file.json#index", the hand-written configuration it trains
    REFERENCE = "reference"  # a baseline not trained again: "study#trial" of the stored training it records
    ARTIFACTS = "artifact_ids"  # {file name: Optuna artifact id}: a kept trial's files in the --artifacts store


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
    CONFIRMED = "confirmed"  # confirm's plan: {"top": K, "seeds": S, "trials": [the K trial numbers]}
    OBJECTIVES = "objectives"  # what the study optimizes: ["accuracy"], or with "params" and/or "latency"


# A trial flagged with one of these did not use up a place in the budget.
EXCLUDED = (Attr.INTERRUPTED, Attr.SURPLUS, Attr.REJECTED)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
LOST_REASON = "its worker died during the trial (queued once more)"


@dataclass(frozen=True)
class Machine:
    """Where and how a process trains: what a trial records as it starts, so that a later run can reap
    it (host, pid) and a replay can train it again the same way (the rest)."""

    worker: int = 0
    cpu_kernels: str = "oneDNN"
    precision: str = "float32"
    threads: int | None = None
    deterministic: bool = False
    train_size: int | None = None
    versions: dict[str, str] = field(default_factory=dict)
    cpu: str = ""
    node: str | None = None  # the Ray node, when the worker is a Ray actor

    def attrs(self) -> dict[Attr, Any]:
        return {Attr.HOST: HOST, Attr.PID: os.getpid(), Attr.WORKER: self.worker, Attr.CPU_KERNELS: self.cpu_kernels,
                Attr.PRECISION: self.precision, Attr.THREADS: self.threads, Attr.DETERMINISTIC: self.deterministic,
                Attr.TRAIN_SIZE: self.train_size, Attr.VERSIONS: self.versions, Attr.CPU: self.cpu,
                **({Attr.NODE: self.node} if self.node else {})}


def machine(worker: int, cpu_kernels: str, precision: str) -> dict[Attr, Any]:
    """The short form of `Machine(...).attrs()`."""
    return Machine(worker, cpu_kernels, precision).attrs()


def outcome(val_history: list[float], train_seconds: float, n_params: int | None = None,
            best_epoch: int | None = None, test_accuracy: float | None = None,
            reason: str | None = None, interrupted: bool = False, latency_ms: float | None = None,
            rejected: bool = False) -> dict[Attr, Any]:
    """What a trial's training left, whichever engine ran it; absent figures are left out."""
    values: dict[Attr, Any] = {Attr.EPOCHS: len(val_history), Attr.TRAIN_SECONDS: round(train_seconds, 2),
                               Attr.VAL_HISTORY: list(val_history), Attr.N_PARAMS: n_params,
                               Attr.LATENCY_MS: latency_ms, Attr.BEST_EPOCH: best_epoch,
                               Attr.TEST_ACCURACY: test_accuracy, Attr.REASON: reason,
                               Attr.INTERRUPTED: interrupted or None, Attr.REJECTED: rejected or None}
    return {key: value for key, value in values.items() if value is not None}


def write(trial: optuna.Trial, values: Mapping[Attr, Any]) -> None:
    """Store `values` on a running trial (one storage record each)."""
    for key, value in values.items():
        trial.set_user_attr(str(key), value)


def reason_of(err: BaseException) -> str:
    """One line for a trial that raised: its type and first line, at most 300 characters."""
    return one_line(err)[:300]


def is_confirmation(trial: FrozenTrial | optuna.Trial) -> bool:
    """A `confirm` training of an earlier trial's config: not a search trial, outside the budget."""
    return trial.user_attrs.get(Attr.CONFIRM_OF) is not None


def lost_with_worker(trial: FrozenTrial) -> bool:
    """Failed from outside: every failure the trial itself sees records a reason; a dead worker's cannot."""
    return trial.state == TrialState.FAIL and Attr.REASON not in trial.user_attrs


def ended_on_its_own(trial: FrozenTrial) -> bool:
    """A trial that ran to an end of its own: complete, pruned or failed, but not lost with its worker
    and not flagged in EXCLUDED (interrupted, never run)."""
    return (trial.state in FINISHED and not lost_with_worker(trial)
            and not any(trial.user_attrs.get(flag) for flag in EXCLUDED))


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """Finished search trials count toward the budget (a `confirm` training is not a search trial)."""
    return ended_on_its_own(trial) and not is_confirmation(trial)


def will_count(trial: FrozenTrial) -> bool:
    """Search trials that will count once they finish: queued, or running and not flagged surplus."""
    return (trial.state in (TrialState.WAITING, TrialState.RUNNING) and not trial.user_attrs.get(Attr.SURPLUS)
            and not is_confirmation(trial))


def validation_order(val_accuracy: float, n_params: int | None, number: int) -> tuple[float, float, int]:
    """The order every choice of a model follows (kept trials, export, "best", confirm): the best
    validation accuracy first, then fewer parameters, then the earlier trial. Test accuracy never
    chooses; it is measured once per finished model, to be reported."""
    val = val_accuracy if math.isfinite(val_accuracy) else -math.inf
    return (-val, n_params if n_params is not None else math.inf, number)


def by_validation(row: Record) -> tuple[float, float, int]:
    return validation_order(row.val_accuracy, row.n_params, row.number)


def selected(rows: Iterable[Record]) -> Record | None:
    """The completed search trial a user would pick without looking at the test set."""
    complete = [row for row in rows if row.state == "complete" and row.confirm_of is None]
    return min(complete, key=by_validation) if complete else None


def counted(trials: Iterable[FrozenTrial]) -> int:
    """How many of `trials` count toward the budget."""
    return sum(counts_toward_budget(t) for t in trials)


def places_taken(trials: Iterable[FrozenTrial]) -> int:
    """Places in the budget that are used: trials finished (counted), queued or running."""
    return sum(counts_toward_budget(t) or will_count(t) for t in trials)


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
    confirm_of: int | None = None  # a `confirm` training of this trial's config
    latency_ms: float | None = None
    resumed_at: int | None = None  # the epochs an earlier trial of the same params trained, continued here


def read(trial: FrozenTrial) -> Record:
    """The record of a stored trial."""
    attrs = trial.user_attrs
    history = [float(v) for v in attrs.get(Attr.VAL_HISTORY) or []]
    finite = [v for v in history if math.isfinite(v)]
    if trial.state == TrialState.COMPLETE and trial.values:
        val = float(trial.values[0])  # accuracy is always the first objective
    else:
        val = max(finite) if finite else math.nan
    state = ("interrupted" if attrs.get(Attr.INTERRUPTED) else "rejected" if attrs.get(Attr.REJECTED)
             else "lost" if lost_with_worker(trial) else trial.state.name.lower())
    test = attrs.get(Attr.TEST_ACCURACY)
    return Record(
        number=trial.number, state=state, val_accuracy=val,
        test_accuracy=float(test) if test is not None else math.nan,
        n_params=attrs.get(Attr.N_PARAMS), epochs=attrs.get(Attr.EPOCHS), train_seconds=attrs.get(Attr.TRAIN_SECONDS),
        baseline=attrs.get(Attr.BASELINE) or "", config=attrs.get(Attr.CONFIG) or {}, seed=attrs.get(Attr.SEED),
        reason=attrs.get(Attr.REASON) or (LOST_REASON if lost_with_worker(trial) else ""), val_history=history,
        counted=counts_toward_budget(trial), confirm_of=attrs.get(Attr.CONFIRM_OF),
        latency_ms=attrs.get(Attr.LATENCY_MS), resumed_at=attrs.get(Attr.RESUMED_AT))
