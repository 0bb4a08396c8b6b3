"""KerasTuner as a second engine over the same space files: the study stage, done another way.

`search run SPACE --engine keras-tuner --tuner hyperband|bayesian|random` searches a space file with
KerasTuner 1.4: the space is declared as KerasTuner hyperparameters under the names `space.sample`
gives (keras_tuner_space.py), and KerasTuner's oracle picks each trial's values. This module is a thin
adapter through KerasTuner's public hooks (`HyperModel.declare_hyperparameters`, `Tuner.run_trial`,
`Tuner.pre_create_trial`): each trial KerasTuner asks for becomes an Optuna trial of the study with
those values, run by the same trial lifecycle as an Optuna search (study/lifecycle.py), so its record,
kept weights, timeout and failure streak are the same; its outcome goes back to KerasTuner's oracle.
Baselines run first, through Optuna's objective. KerasTuner's own state is `results/<study>/keras_tuner/`:
the same command resumes from it, re-running only the trial that was interrupted, never one recorded.

Hyperband decides epochs itself (`--epochs` or the space's `epochs` is its `max_epochs`, factor 3): a
model it promotes continues from its earlier trial's final weights and trains the missing epochs as a
new trial, its learning-rate schedule (if any) starting again. `--trials` counts those trials too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.engines.keras_tuner_space import TUNERS, Fixed, declare, max_epochs
from search.errors import EXIT_FAILED, EXIT_OK, InputError, TrialFailed
from search.internals import of_keras_tuner
from search.space import Space, sample
from search.study import lifecycle, record, stopping, storage
from search.study.objective import OptunaReporter
from search.study.record import Attr, StudyAttr
from search.training import checkpoint

PROJECT = "keras_tuner"  # KerasTuner's project folder inside results/<study>/
HYPERBAND_FACTOR = 3  # KerasTuner's default: a third of each round's models go on to the next


def engine_label(tuner: str) -> str:
    return f"keras-tuner/{tuner}"


# ---- options ----------------------------------------------------------------------------------------


def check_options(tuner: str | None, sampler: str | None, pruner: str | None, workers: int | None,
                  location: str | None) -> None:
    """What `run --engine keras-tuner` refuses before anything is written: unknown tuners, and options
    this engine cannot honour."""
    if tuner is not None and tuner not in TUNERS:
        raise InputError(f"--tuner {tuner!r}: expected one of {', '.join(TUNERS)}")
    for value, flag in ((sampler, "--sampler"), (pruner, "--pruner")):
        if value is not None:
            raise InputError(f"{flag} {value}: an Optuna option; with --engine keras-tuner choose --tuner")
    if tuner == "bayesian":
        missing = [module for module in ("sklearn", "scipy") if importlib.util.find_spec(module) is None]
        if missing:  # KerasTuner would only fail when its oracle is made
            raise InputError(f"--tuner bayesian needs {' and '.join(missing)}: pip install scikit-learn")
    if workers is not None and workers > 1:
        raise InputError(f"--workers {workers}: --engine keras-tuner runs one trial at a time in this process "
                         "(KerasTuner's parallel mode needs its own gRPC chief)")
    if location and "://" in location and not location.startswith("sqlite:///"):
        raise InputError(f"--storage {storage.redact(location)}: --engine keras-tuner keeps its state in "
                         "results/<study>/keras_tuner/ on this machine; use a journal file (.log) or sqlite:///")


# ---- the run ----------------------------------------------------------------------------------------


@dataclass
class Settings:
    """What a KerasTuner run was asked for."""

    tuner: str = "hyperband"
    budget: int = 50  # the study's total trials (--trials), baselines included, as under Optuna
    epochs: int | None = None  # --epochs: every config's, and Hyperband's max_epochs
    timeout: float | None = None  # stop starting trials after this many seconds
    stop_at: float | None = None  # time.monotonic() at which the running trial is stopped too (benchmarks)
    debug: bool = False  # KerasTuner's own traceback of every failed trial (its default is to print them)


def run(space: Space, context: lifecycle.Context, study: optuna.Study, folder: Path, settings: Settings,
        on_trial: Callable[[optuna.Study, FrozenTrial], None]) -> int:
    """Baselines first (through Optuna's objective, exactly as an Optuna run), then KerasTuner until the
    study holds `settings.budget` trials or a stop request; returns an exit code. TensorFlow must be
    started (`runtime.start_tensorflow`)."""
    from search.study import studies
    from search.study.objective import Objective

    engine = KerasTunerSearch(space, context, study, folder, settings, on_trial)
    studies.enqueue_baselines(study, space)
    queued = sum(t.state == TrialState.WAITING for t in study.get_trials(deepcopy=False))
    if queued:
        objective = Objective(space, context, settings.epochs, int(study.user_attrs[StudyAttr.SEED]),
                              budget=settings.budget)
        streak = studies.optimize(study, objective, settings.timeout, [on_trial], most=queued)
        if streak.tripped:
            return EXIT_FAILED
    return EXIT_FAILED if engine.search() else EXIT_OK


class KerasTunerSearch:
    """A KerasTuner tuner on a study: made (and a resumed project checked) first, searched later."""

    def __init__(self, space: Space, context: lifecycle.Context, study: optuna.Study, folder: Path,
                 settings: Settings, on_trial: Callable[[optuna.Study, FrozenTrial], None] | None = None) -> None:
        self.study, self.settings = study, settings
        self.runner = _Runner(space, context, study, folder, settings, on_trial)
        if self.runner.numbers and not (folder / PROJECT / "oracle.json").exists():
            raise InputError(f"{folder / PROJECT}: missing, so the KerasTuner trials already in study "
                             f"{study.study_name!r} cannot be resumed: pass --study NAME to start another")
        self.tuner = _make_tuner(self.runner)

    def search(self) -> str | None:
        """Run trials until the study holds `settings.budget` counted trials, baselines included, time runs
        out or a stop request; returns why it stopped early when that was a failure streak, else None."""
        taken = sum(record.counts_toward_budget(t) and bool(t.user_attrs.get(Attr.BASELINE))
                    for t in self.study.get_trials(deepcopy=False))
        if self.settings.budget - taken <= 0 or stopping.requested():
            return None
        self.tuner.oracle.max_trials = self.settings.budget - taken  # KerasTuner counts its own trials
        try:
            self.tuner.search(verbose=0)
        except _Stop:
            pass
        return self.runner.streak.tripped


class _Stop(BaseException):
    """Ends `tuner.search` from inside a hook: a BaseException, so KerasTuner does not record it as a failed
    trial (it catches Exception)."""


class _Runner:
    """What KerasTuner's tuner calls back into: each trial through the lifecycle, recorded in the study."""

    def __init__(self, space: Space, context: lifecycle.Context, study: optuna.Study, folder: Path,
                 settings: Settings, on_trial: Callable[[optuna.Study, FrozenTrial], None] | None) -> None:
        self.space, self.study, self.folder, self.settings, self.on_trial = space, study, folder, settings, on_trial
        self.context = replace(context, engine=engine_label(settings.tuner))
        self.base_seed = int(study.user_attrs[StudyAttr.SEED])
        ours = [t for t in study.get_trials(deepcopy=False) if Attr.KERAS_TUNER_TRIAL in t.user_attrs]
        # KerasTuner id -> the Optuna trial that recorded it: a resumed run must not record a trial twice.
        self.recorded = {t.user_attrs[Attr.KERAS_TUNER_TRIAL]: t for t in ours if record.counts_toward_budget(t)}
        self.numbers = {t.user_attrs[Attr.KERAS_TUNER_TRIAL]: t.number for t in ours}
        self.started = time.monotonic()
        self.streak = lifecycle.Streak()

    def before_trial(self) -> None:
        now, settings = time.monotonic(), self.settings
        if self.streak.tripped or stopping.requested() or (
                settings.timeout is not None and now - self.started >= settings.timeout) or (
                settings.stop_at is not None and now >= settings.stop_at):
            raise _Stop

    def run_trial(self, kt_trial: Any) -> float:
        from keras_tuner.errors import FailedTrialError

        done = self.recorded.get(kt_trial.trial_id)
        if done is not None:  # recorded before KerasTuner could save it had finished: do not run it twice
            if done.state == TrialState.COMPLETE:
                return float(done.values[0])
            raise FailedTrialError(record.read(done).reason or "failed")
        values = dict(kt_trial.hyperparameters.values)
        fixed = Fixed({k: v for k, v in values.items() if not k.startswith("tuner/")})
        try:
            sample(self.space.space, fixed)  # the Optuna params and distributions of KerasTuner's values
            problem = ""
        except TrialFailed as err:
            problem = str(err)
        # Queued with those values, the next trial Optuna hands out is this one, its params fixed.
        self.study.enqueue_trial(fixed.params, user_attrs={Attr.KERAS_TUNER_TRIAL: kt_trial.trial_id})
        trial = self.study.ask()
        reporter = OptunaReporter(trial, prune=False)
        if problem:
            reporter.write({**record.outcome([], 0.0, reason=problem), Attr.ENGINE: self.context.engine})
            outcome = lifecycle.Outcome("failed", problem)
        else:
            outcome = self._train(trial, reporter, values)
        if outcome.state == "complete":
            self.study.tell(trial, outcome.value)
        else:
            self.study.tell(trial, state=TrialState.FAIL)
        frozen = self.study.get_trials(deepcopy=False)[trial.number]
        self.numbers[kt_trial.trial_id] = trial.number
        if record.counts_toward_budget(frozen):
            self.recorded[kt_trial.trial_id] = frozen
        self.streak.add(record.read(frozen))
        if self.on_trial is not None:
            self.on_trial(self.study, frozen)
        if outcome.state == "interrupted":
            raise _Stop
        if outcome.state != "complete":
            raise FailedTrialError(outcome.reason)
        return outcome.value

    def _train(self, trial: optuna.Trial, reporter: OptunaReporter, values: dict[str, Any]) -> lifecycle.Outcome:
        """The lifecycle on KerasTuner's values; Hyperband's continuations from their earlier trial's weights."""
        config = lifecycle.with_epochs(sample(self.space.space, trial), self.settings.epochs)
        first_round, resume, continues = 0, None, None
        if "tuner/epochs" in values:  # Hyperband: this trial ends at epoch tuner/epochs
            first_round = int(values.get("tuner/initial_epoch") or 0)
            config["epochs"], config["steps"] = int(values["tuner/epochs"]), 0
            continues = self.numbers.get(values.get("tuner/trial_id", ""))
            if first_round and continues is not None:
                resume = self._checkpoint(continues)
                reporter.write({Attr.INITIAL_EPOCH: first_round, Attr.CONTINUES: continues})
        assignment = lifecycle.Assignment(
            trial.number, config, lifecycle.seed_of(self.base_seed, trial.number), searched=False,
            resume_weights=resume, first_round=first_round,
            checkpoint=self._checkpoint(trial.number) if self.settings.tuner == "hyperband" else None)
        hard = None if self.settings.stop_at is None else max(0.0, self.settings.stop_at - time.monotonic())
        limit = min((s for s in (self.context.limits.trial_timeout, hard) if s is not None), default=None)
        context = replace(self.context, limits=replace(self.context.limits, trial_timeout=limit))
        outcome = lifecycle.run(assignment, context, reporter)
        if outcome.progress is not None:  # KerasTuner does not run an interrupted trial again
            checkpoint.remove(outcome.progress)
        if outcome.state == "failed" and hard is not None and limit == hard and "--trial-timeout" in outcome.reason:
            reporter.write({Attr.INTERRUPTED: True, Attr.REASON: "stopped: the run's time budget ran out"})
            return lifecycle.Outcome("interrupted", "stopped: the run's time budget ran out")
        return outcome

    def _checkpoint(self, number: int) -> Path:
        """Where a Hyperband trial's final weights are kept for the trial that continues it."""
        return self.folder / PROJECT / "weights" / f"{number:05d}"


def _make_tuner(runner: _Runner) -> Any:
    """A KerasTuner tuner of the chosen kind whose trials all go through `runner`."""
    import keras_tuner as kt

    of_keras_tuner.tracebacks(runner.settings.debug)  # a failed trial's reason is on the leaderboard
    space = runner.space

    class SpaceModel(kt.HyperModel):  # type: ignore[misc]
        """Declares the space; builds nothing, since `run_trial` trains through the lifecycle. KerasTuner
        calls `build` only to discover conditional hyperparameters, which `declare` has all declared."""

        def declare_hyperparameters(self, hp: Any) -> None:
            declare(space.space, hp, space.source)

        def build(self, hp: Any) -> Any:
            declare(space.space, hp, space.source)

    base = {"hyperband": kt.Hyperband, "bayesian": kt.BayesianOptimization, "random": kt.RandomSearch}
    kind = runner.settings.tuner

    class Tuner(base[kind]):  # type: ignore[misc,valid-type]
        def pre_create_trial(self) -> None:
            runner.before_trial()

        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
            return runner.run_trial(trial)

    # KerasTuner's seed 0 means "random": shift by one so that --seed 0 stays reproducible.
    common = {"hypermodel": SpaceModel(), "objective": kt.Objective("val_accuracy", "max"),
              "directory": str(runner.folder), "project_name": PROJECT, "overwrite": False,
              "seed": runner.base_seed + 1, "max_consecutive_failed_trials": 10**9}  # ours: lifecycle.Streak
    with contextlib.redirect_stdout(io.StringIO()):  # "Reloading Tuner from ..." on every resume
        if kind == "hyperband":  # Hyperband's own budget is brackets; ours is trials (`search` sets max_trials)
            tuner = Tuner(max_epochs=max_epochs(space, runner.settings.epochs), factor=HYPERBAND_FACTOR,
                          hyperband_iterations=10**6, **common)
        else:
            tuner = Tuner(max_trials=runner.settings.budget, **common)
    _check_reloaded(tuner, space)
    return tuner


def _check_reloaded(tuner: Any, space: Space) -> None:
    """A resumed KerasTuner project holds the space it started with: refuse a space file that changed."""
    import keras_tuner as kt

    declared = kt.HyperParameters()
    declare(space.space, declared, space.source)
    mine = sorted((hp.name, repr(hp)) for hp in declared.space)
    stored = sorted((hp.name, repr(hp)) for hp in tuner.oracle.hyperparameters.space)
    if mine != stored:
        raise InputError(f"{space.source}: the space differs from the one {tuner.project_dir} was started with; "
                         "pass --study NAME to start another")
