"""One trial, start to finish, whichever engine asked for it: the core of the study stage.

An engine decides what a trial is (its number, config and seed, whether it is searched) and hands
it here with a `Reporter`, its side of the trial (Optuna's: the live `optuna.Trial`). `run` then
does what every trial does, in one place: record where and how it trains, build the model, reject
a config over `--max-params` or `--max-latency-ms` before it trains, train it (each epoch
reported, so the pruner may stop it; the trial timeout and a stop request end it), measure test
accuracy once, keep its weights when it is among the best, and write its record (record.py),
reason included whenever it does not complete. The `Outcome` says how it ended; the engine turns
that into its own terms (a returned value, `TrialPruned`, a failed KerasTuner trial). A trial whose
weights find no space on the disk is recorded interrupted (it does not use up the budget) and stops
its worker with `DiskFull`. While it trains a trial keeps its progress in `checkpoints/N/` under
the study's folder; one that runs a lost or interrupted trial again (`Assignment.resumes`) continues
from it, and one that ends on its own removes it. `Streak` stops a run after too many failures in a
row, for every engine, and `verdict` says in one line why a run trained nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import optuna

from search.errors import DiskFull, TrialFailed, disk_full
from search.study import artifacts, record, references, stopping, tensorboard_files
from search.study.record import Attr
from search.training import checkpoint
from search.training.datasets import Dataset

# After this many failures in a row the space (or the machine) is broken, not one trial.
MAX_CONSECUTIVE_FAILURES = 10
# Each trial's training progress, under the study's results folder, by trial number (checkpoint.py).
PROGRESS = "checkpoints"
# Configs over --max-params or --max-latency-ms cost no training, and the sampler learns from them.
MAX_CONSECUTIVE_REJECTIONS = 200
# ... but while none at all has been within the limits, the limits are likely below the whole space.
MAX_REJECTIONS_NONE_FEASIBLE = 20

EpochHook = Callable[[int, int, int, float], None]  # trial number, rounds done, rounds in all, val accuracy


class Reporter(Protocol):
    """The engine's side of a running trial."""

    def write(self, values: Mapping[Attr, Any]) -> None:
        """Store these values on the trial's record."""

    def history(self, val_history: list[float]) -> None:
        """Report the validation accuracy of rounds an earlier trial trained (at steps 0, 1, ...), which
        this one continues: the pruner then judges the whole curve."""

    def epoch_callback(self, prune: bool, rounds: int, first_round: int) -> Any:
        """A Keras callback that reports each round's validation accuracy (at step `first_round` + epoch)
        and, with `prune`, may stop the trial by raising `optuna.TrialPruned`; None to report nothing."""

    def constrain(self, name: str, excess: float) -> None:
        """How far over a limit the config is, relative to the limit (feasible at 0 or below)."""

    def attach(self, store: artifacts.Store, files: list[Path]) -> dict[str, str]:
        """Upload the kept trial's `files` to the artifact store as its own, and record their ids on it;
        returns them by file name."""


@dataclass(frozen=True)
class Assignment:
    """What one trial trains: decided by the engine, the same kind of thing for every engine."""

    number: int
    config: dict[str, Any]
    seed: int
    searched: bool = True  # sampled by the search: pruned when weak; a baseline or a confirm training is not
    keep: bool = True  # may keep its weights among the study's best (a confirm training's model is one of S)
    baseline: str | None = None
    resume_weights: Path | None = None  # a kept model's folder whose weights this trial trains on from
    first_round: int = 0  # rounds of the config's epochs trained before, by the trial whose weights it continues
    checkpoint: Path | None = None  # where its final weights go for a trial that continues it
    resumes: int | None = None  # the trial (lost with its worker, or interrupted) whose progress this one continues
    precision: str | None = None  # None: the worker's; a tutorial's trainings: float32, as it is written

    @property
    def training(self) -> dict[str, Any]:
        """What this trial itself trains: the config's epochs after `first_round`."""
        if not self.first_round:
            return self.config
        return {**self.config, "epochs": self.config["epochs"] - self.first_round, "steps": 0}


@dataclass(frozen=True)
class Limits:
    """What a trial may cost; a config over a limit is rejected before it trains."""

    trial_timeout: float | None = None
    max_params: int | None = None
    max_latency_ms: float | None = None


@dataclass
class Context:
    """How this process trains every trial it runs."""

    data: Dataset
    machine: record.Machine = field(default_factory=record.Machine)
    limits: Limits = field(default_factory=Limits)
    objectives: tuple[str, ...] = ("accuracy",)  # with "params", "latency": a multi-objective study
    study: str = ""
    study_dir: Path | None = None  # where kept trials go; None keeps nothing
    keep: int = 10
    command: str = ""  # the command line of the search, recorded with each kept trial
    on_epoch: EpochHook | None = None
    engine: str | None = None  # recorded on each trial when not Optuna's own
    tensorboard: Path | None = None  # --tensorboard: each trial's curves and hyperparameters (tensorboard_files.py)
    artifact_store: artifacts.Store | None = None  # --artifacts: where kept trials also go


@dataclass
class Outcome:
    """How a trial ended: `state` is complete, pruned, rejected, failed or interrupted."""

    state: str
    reason: str = ""
    values: tuple[float, ...] = ()  # the objectives of a completed trial, accuracy first
    result: Any = None  # train.FitResult of a completed trial
    progress: Path | None = None  # an interrupted trial's kept progress, for a trial that continues it

    @property
    def value(self) -> float:
        return self.values[0]


def with_epochs(config: dict[str, Any], epochs: int | None) -> dict[str, Any]:
    """`config` as `--epochs` overrides it for quick runs, configs that count steps (S1-S3) included."""
    return {**config, "epochs": epochs, "steps": 0} if epochs else config


def seed_of(base_seed: int, number: int) -> int:
    """Trial N of a study trains with the study's base seed + N (a confirm training has its own)."""
    return base_seed + number


def progress_folder(context: Context, number: int) -> Path | None:
    """Where trial `number` keeps its training progress while it trains (None: nowhere)."""
    return None if context.study_dir is None else context.study_dir / PROGRESS / str(number)


def run(assignment: Assignment, context: Context, reporter: Reporter) -> Outcome:
    """Train one trial and record everything about it through `reporter`; never raises for what a trial
    can do wrong (an unbuildable config, a NaN loss, running out of memory): that is a failed outcome."""
    # A Hyperband continuation (first_round) carries its weights over its own way.
    progress = None if assignment.first_round else progress_folder(context, assignment.number)
    source = progress_folder(context, assignment.resumes) if assignment.resumes is not None else None
    if progress is not None and source is not None and source.is_dir() and not progress.exists():
        source.replace(progress)  # one rename: if this trial is lost or interrupted in turn, its retry finds it
    try:
        outcome = _run(assignment, context, reporter, progress)
    except DiskFull:
        if progress is not None:
            checkpoint.remove(progress)  # room on the full disk; the trial is recorded interrupted
        raise
    if progress is None:
        return outcome
    if outcome.state == "interrupted" and (progress / checkpoint.STATE).is_file():
        return replace(outcome, progress=progress)
    checkpoint.remove(progress)  # ended on its own (or interrupted before it kept any)
    return outcome


def _run(assignment: Assignment, context: Context, reporter: Reporter, progress: Path | None) -> Outcome:
    """`run`'s trial, its progress kept in (and, when one is there, continued from) `progress`."""
    if assignment.precision is not None:
        context = replace(context, machine=replace(context.machine, precision=assignment.precision))
    reporter.write({**context.machine.attrs(), Attr.CONFIG: assignment.config, Attr.SEED: assignment.seed,
                    **({Attr.ENGINE: context.engine} if context.engine else {})})
    if stopping.requested():
        reporter.write({Attr.INTERRUPTED: True, Attr.REASON: "interrupted before it started"})
        return Outcome("interrupted", "interrupted before it started")
    reused = _reused(assignment, context, reporter)
    if reused is not None:
        return reused
    # TensorFlow loads only when a trial runs, so `show` and input errors stay instant.
    from search.training import models, train

    train.reset(assignment.seed)
    log = train.EpochLog()
    guard = Guard(context.limits.trial_timeout)
    board = (tensorboard_files.TrialLog(context.tensorboard, assignment.number) if context.tensorboard is not None
             else None)
    n_params = latency = result = test_accuracy = None
    outcome = Outcome("failed")
    try:
        model = train.training_model(assignment.config, context.machine.precision)
        n_params = int(model.count_params())
        if context.limits.max_latency_ms is not None or "latency" in context.objectives:
            latency = models.latency_ms(models.build(assignment.config))  # the served build; weights do not matter
        over = _limits(context.limits, reporter, n_params, latency)
        if over:
            outcome = Outcome("rejected", f"rejected before training: {over}")
            return outcome
        if assignment.resume_weights is not None:
            model.set_weights(artifacts.load_model(assignment.resume_weights)[0].get_weights())
        state = (train.resumable(progress, assignment.training, len(context.data.train_images))
                 if progress is not None else None)
        if state is not None:  # the pruner judges the earlier epochs before this trial trains the rest
            reporter.write({Attr.RESUMED_AT: state.rounds_done})
            reporter.history(state.val_history)
        callbacks = _callbacks(assignment, context, reporter, guard, len(context.data.train_images))
        if board is not None:  # first: the pruner's callback raises at the epoch it prunes, which is written too
            callbacks.insert(0, board.callback(assignment.first_round))
        try:
            result = train.fit(model, assignment.training, context.data, callbacks=callbacks, log=log,
                               progress=progress, resume=state)
        except OSError as err:
            if not disk_full(err):
                raise
            outcome = Outcome("interrupted", f"{DISK_FULL}: its progress could not be written in {progress}")
            raise DiskFull(f"{progress}: no space left on its disk for a trial's progress: free some space, then "
                           "run the same command to resume") from err
        if guard.stopped:
            outcome = Outcome("interrupted", "interrupted")
            return outcome
        guard.check()
        test_accuracy = result.accuracy(context.data.test_images, context.data.test_labels)
        latency = latency if latency is not None else models.latency_ms(result.model)
        try:
            if assignment.checkpoint is not None:
                artifacts.save_weights(assignment.checkpoint, result.model, {"config": assignment.config})
            if assignment.keep and context.study_dir is not None and context.keep > 0:
                artifacts.keep_trial(context.study_dir, context.keep, assignment.number, context.study, result,
                                     assignment.config, assignment.seed, test_accuracy, context.data,
                                     context.command, store=context.artifact_store, attach=reporter.attach,
                                     baseline=assignment.baseline, **({"engine": context.engine} if context.engine
                                                                      else {}))
        except OSError as err:
            if not disk_full(err):
                raise
            # Not the trial's fault, and the next would fare no better: it is run again once there is space.
            where = context.study_dir or assignment.checkpoint
            outcome = Outcome("interrupted", f"{DISK_FULL}: its weights could not be written in {where}")
            raise DiskFull(f"{where}: no space left on its disk for a trial's weights: free some space, then run "
                           "the same command to resume") from err
        figures = {"accuracy": result.val_accuracy, "params": float(n_params), "latency": latency}
        outcome = Outcome("complete", values=tuple(figures[name] for name in context.objectives), result=result)
        return outcome
    except optuna.TrialPruned as pruned:  # its message says why (objective.pruning_callback)
        epochs = len(log.val_history)
        outcome = Outcome("pruned", f"pruned after epoch {assignment.first_round + epochs}: val_accuracy "
                                    f"{log.val_history[-1]:.4f} {pruned}")
        return outcome
    except TrialFailed as err:
        outcome = Outcome("failed", str(err))
        return outcome
    except DiskFull:
        raise
    except Exception as err:  # out of memory, a Keras error on an odd config: fail this trial only
        outcome = Outcome("failed", record.reason_of(err))
        return outcome
    finally:
        best_epoch = result.best_epoch if result is not None and outcome.state == "complete" else None
        reporter.write(record.outcome(
            log.val_history, log.seconds, n_params, best_epoch, test_accuracy, outcome.reason or None,
            interrupted=outcome.state == "interrupted", latency_ms=latency, rejected=outcome.state == "rejected"))
        if board is not None:
            board.end(tensorboard_files.hparams(assignment.config, assignment.baseline, outcome.state),
                      log.val_history, test_accuracy)


DISK_FULL = "disk full"  # how the reason of a trial stopped by a full disk begins


def _reused(assignment: Assignment, context: Context, reporter: Reporter) -> Outcome | None:
    """A baseline whose tutorial as written the results folder's reference store holds for this
    worker's kind of machine is not trained again: the trial records that training (its validation
    and test accuracy, seed, epochs and seconds) and where it came from (`Attr.REFERENCE`). Only in a
    study whose figures a stored training stands for: accuracy alone, on all of MNIST's training
    images, without limits or op determinism; anywhere else, or with nothing stored, None."""
    if (assignment.baseline is None or context.study_dir is None or context.objectives != ("accuracy",)
            or context.machine.train_size or context.machine.deterministic or context.data.name != "mnist"
            or context.limits.max_params is not None or context.limits.max_latency_ms is not None):
        return None
    run = references.reusable(context.study_dir.parent, assignment.config,
                              references.kind(context.data.checksum, context.machine), context.study)
    if run is None:
        return None
    from search.space import schema
    from search.training import train

    model = train.training_model(assignment.config, context.machine.precision)
    reporter.write({Attr.SEED: run["seed"], Attr.REFERENCE: f"{run['study']}#{run['trial']}",
                    Attr.EPOCHS: train.plan(schema.resolve(assignment.config), len(context.data.train_images)).rounds,
                    Attr.TRAIN_SECONDS: run["seconds"], Attr.N_PARAMS: int(model.count_params()),
                    Attr.TEST_ACCURACY: run["test"]})
    return Outcome("complete", values=(run["val"],))


def _limits(limits: Limits, reporter: Reporter, n_params: int, latency: float | None) -> str:
    """Tell the engine how far the config is from --max-params and --max-latency-ms (for Optuna, its
    constraints, so TPE learns to avoid the rest); what it is over, if any."""
    over = []
    for key, value, limit, unit, flag in (("params", n_params, limits.max_params, " parameters", "--max-params"),
                                          ("latency", latency, limits.max_latency_ms, " ms", "--max-latency-ms")):
        if limit is None or value is None:
            continue
        reporter.constrain(key, (value - limit) / limit)
        if value > limit:
            over.append(f"{value:,}{unit} over {flag} {limit:,}")
    return "; ".join(over)


def _callbacks(assignment: Assignment, context: Context, reporter: Reporter, guard: Guard,
               train_size: int) -> list[Any]:
    from search.space import schema
    from search.training import train

    rounds = train.plan(schema.resolve(assignment.training), train_size).rounds
    # Optuna cannot prune, nor take intermediate values, with several objectives.
    reporting = reporter.epoch_callback(assignment.searched and len(context.objectives) == 1, rounds,
                                        assignment.first_round) if len(context.objectives) == 1 else None
    callbacks = [guard.callback(), *([reporting] if reporting is not None else [])]
    if context.on_epoch is not None:  # rounds, not epochs: a config that trains by steps has its own count
        callbacks.append(progress_callback(context.on_epoch, assignment.number, rounds, assignment.first_round))
    return callbacks


class Guard:
    """What may end a training early: --trial-timeout (the trial fails) and a stop request (the trial is
    interrupted). Checked after every compiled call of the training loop, a second or two apart."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.started = time.monotonic()
        self.expired = self.stopped = False

    def callback(self) -> Any:
        import keras

        guard = self

        class StopWhenAsked(keras.callbacks.Callback):  # type: ignore[misc]
            def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
                if stopping.requested():
                    guard.stopped = self.model.stop_training = True
                elif guard.seconds is not None and time.monotonic() - guard.started > guard.seconds:
                    guard.expired = self.model.stop_training = True

        return StopWhenAsked()

    def check(self) -> None:
        if self.expired:
            raise TrialFailed(f"exceeded --trial-timeout of {self.seconds:g} s")


def progress_callback(hook: EpochHook, number: int, rounds: int, done_before: int = 0) -> Any:
    """A Keras callback calling `hook(trial number, rounds done, rounds in all, val accuracy)` after
    each of this fit's `rounds`; `done_before` counts rounds an earlier fit of the same model trained
    (a continued trial), and both counts include them."""
    import keras

    return keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: hook(
        number, done_before + epoch + 1, done_before + rounds, float((logs or {}).get("val_accuracy", float("nan")))))


class Streak:
    """Stops a run after too many failed trials in a row, or too many configs in a row rejected by
    --max-params or --max-latency-ms (the space can hardly meet them). Called with each finished trial
    as an Optuna study callback; `tripped` then says why it stopped the study."""

    def __init__(self, limit: int = MAX_CONSECUTIVE_FAILURES) -> None:
        self.limit = limit
        self.failed = self.rejected = 0
        self.tripped: str | None = None
        self.feasible = False  # whether any config was within the limits
        self.seeded = False

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if not self.seeded:  # rejections go on from the study's: other workers', a resumed study's
            self.seeded = True
            for earlier in study.get_trials(deepcopy=False, states=record.FINISHED):
                if earlier.number != trial.number and not earlier.user_attrs.get(Attr.SURPLUS):
                    state = record.read(earlier).state
                    self.rejected = self.rejected + 1 if state == "rejected" else 0
                    self.feasible = self.feasible or state in ("complete", "pruned", "fail")
        if not trial.user_attrs.get(Attr.SURPLUS) and self.add(record.read(trial)):  # a surplus trial never ran
            study.stop()

    def add(self, row: record.Record) -> str | None:
        """Count one finished trial; the reason to stop, once there is one."""
        if row.state == "rejected":
            self.rejected += 1
            if self.rejected >= (MAX_CONSECUTIVE_REJECTIONS if self.feasible else MAX_REJECTIONS_NONE_FEASIBLE):
                self.tripped = (f"{self.rejected} configs in a row were over the limits; last: {row.reason}: narrow "
                                "the space or raise the limit")
            return self.tripped
        self.rejected = 0
        self.feasible = self.feasible or row.state in ("complete", "pruned", "fail")
        if row.state in ("interrupted", "lost"):
            return self.tripped  # ended from outside: says nothing of the space
        if row.state != "fail":
            self.failed = 0
            return self.tripped
        self.failed += 1
        if self.failed >= self.limit:
            self.tripped = f"{self.limit} trials failed in a row; last: {row.reason or '?'}"
        return self.tripped


def verdict(rows: Iterable[record.Record], stopped: bool = False) -> str | None:
    """Why a run whose trials are `rows` (those that ended in it) trained nothing, stopped on a full disk or,
    `stopped` by a `Streak`, stopped early, in one line; None when it trained something and had room. For
    failures, their commonest reason; for configs over --max-params or --max-latency-ms, the nearest one."""
    rows = list(rows)
    full = [row for row in rows if row.reason.startswith(DISK_FULL)]
    if full:
        return f"{full[-1].reason}: no space left on its disk; free some space, then run the same command to resume"
    failed = [row.reason or "?" for row in rows if row.state == "fail"]
    if any(row.state in ("complete", "pruned") for row in rows):
        if stopped and not failed and rows[-1].state == "rejected":
            return (f"configs kept being over the limits (the last: {rows[-1].reason}): narrow the space or raise "
                    "the limit")
        if not stopped or not failed:
            return None
        reason, count = Counter(failed).most_common(1)[0]
        return (f"{MAX_CONSECUTIVE_FAILURES} trials failed in a row; the commonest reason of this run's {len(failed)} "
                f"failures ({count}): {reason}")
    rejected = [row for row in rows if row.state == "rejected"]
    if failed:
        reason, count = Counter(failed).most_common(1)[0]
        also = f"; {len(rejected)} configs were over the limits" if rejected else ""
        return f"all {len(failed)} trials failed{also}; the commonest reason ({count} of {len(failed)}): {reason}"
    if rejected:
        nearest = min(rejected, key=lambda row: row.n_params if row.n_params is not None else float("inf"))
        return (f"all {len(rejected)} configs were over the limits and none trained (the smallest: "
                f"{nearest.reason.removeprefix('rejected before training: ')}): raise the limit or narrow the space")
    return None
