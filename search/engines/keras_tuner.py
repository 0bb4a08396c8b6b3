"""KerasTuner as a second engine over the same space files: the study stage, done another way.

`search run SPACE --engine keras-tuner --tuner hyperband|bayesian|random` searches a space file with
KerasTuner 1.4: the space is declared as KerasTuner hyperparameters under the names `space.sample`
gives (tuner_space.py), and each trial's config is sampled from KerasTuner's values, so `models.build`
and `train.fit` get the same kind of dict as under Optuna. Baselines run first, through Optuna's
`Objective`. Every KerasTuner trial is also written into the study's Optuna storage with the user attrs
an Optuna trial records (plus `engine` and `keras_tuner_trial`), and the best keep their weights in
`results/<study>/trials/`, so leaderboard, report, export and predict work unchanged. KerasTuner's own
state is `results/<study>/keras_tuner/`: the same command resumes from it, re-running only the trial
that was interrupted, never one already recorded.

Hyperband decides epochs itself (`--epochs` or the space's `epochs` is its `max_epochs`, factor 3): a
model it promotes is rebuilt, loads its last round's weights and trains the missing epochs as a new
trial, its learning-rate schedule (if any) starting again. `--trials` counts those trials too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.engines.keras_tuner_space import TUNERS, Fixed, declare, max_epochs
from search.errors import EXIT_FAILED, EXIT_OK, InputError, TrialFailed
from search.space import Space, sample
from search.study import artifacts, record, storage
from search.study.objective import MAX_CONSECUTIVE_FAILURES, Deadline, Objective, progress_callback, with_epochs
from search.study.record import Attr, StudyAttr
from search.training.datasets import Dataset
from search.training.runtime import cpu_kernels

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
    trials: int = 50  # the study's total, baselines included, as under Optuna
    epochs: int | None = None  # --epochs: every config's, and Hyperband's max_epochs
    timeout: float | None = None  # stop starting trials after this many seconds
    stop_at: float | None = None  # time.monotonic() at which the running trial is stopped too (benchmarks)
    trial_timeout: float | None = None
    keep: int = 10
    command: str = ""
    debug: bool = False  # KerasTuner's own traceback of every failed trial (its default is to print them)


def run(space: Space, data: Dataset, study: optuna.Study, folder: Path, settings: Settings, progress: Any) -> int:
    """Baselines first (through Optuna's `Objective`, exactly as an Optuna run), then KerasTuner until the
    study holds `settings.trials` trials; returns an exit code. `progress` is a `search.progress.Progress`.
    TensorFlow must be started (`runtime.start_tensorflow`)."""
    from search.study import studies

    engine = KerasTunerSearch(space, data, study, folder, settings, on_trial=progress, on_epoch=progress.epoch)
    studies.enqueue_baselines(study, space)
    waiting = sum(t.state == TrialState.WAITING for t in study.get_trials(deepcopy=False))
    if waiting:
        objective = Objective(space, data, settings.epochs, int(study.user_attrs[StudyAttr.SEED]),
                              on_epoch=progress.epoch, study_dir=folder, keep=settings.keep, command=settings.command,
                              budget=settings.trials, trial_timeout=settings.trial_timeout)
        guard = studies.optimize(study, objective, settings.timeout, [progress], max_trials=waiting)
        if guard.tripped:
            return EXIT_FAILED
    return EXIT_FAILED if engine.search() else EXIT_OK


class KerasTunerSearch:
    """A KerasTuner tuner on a study: made (and a resumed project checked) first, searched later."""

    def __init__(self, space: Space, data: Dataset, study: optuna.Study, folder: Path, settings: Settings,
                 on_trial: Callable[[optuna.Study, FrozenTrial], None] | None = None,
                 on_epoch: Callable[[int, int, int, float], None] | None = None) -> None:
        self.study, self.settings = study, settings
        self.runner = _Runner(space, data, study, folder, settings, on_trial, on_epoch)
        if self.runner.numbers and not (folder / PROJECT / "oracle.json").exists():
            raise InputError(f"{folder / PROJECT}: missing, so the KerasTuner trials already in study "
                             f"{study.study_name!r} cannot be resumed: pass --study NAME to start another")
        self.tuner = _make_tuner(self.runner)

    def search(self) -> str | None:
        """Run trials until the study holds `settings.trials` counted trials, baselines included, or time
        runs out; returns why it stopped early when that was a failure streak, else None."""
        taken = sum(record.counted(t) and bool(t.user_attrs.get(Attr.BASELINE))
                    for t in self.study.get_trials(deepcopy=False))
        if self.settings.trials - taken <= 0:
            return None
        self.tuner.oracle.max_trials = self.settings.trials - taken  # KerasTuner counts its own trials
        try:
            self.tuner.search(verbose=0)
        except _Stop:
            pass
        return self.runner.stopped


class _Stop(Exception):
    """Raised before KerasTuner starts a trial when the run should end there."""


class _OutOfTime(TrialFailed):
    """The run's hard time limit (`Settings.stop_at`) stopped the running trial."""


@dataclass
class _Current:
    """The trial KerasTuner is running, as our side sees it."""

    kt_id: str
    number: int
    seed: int
    started: datetime
    values: dict[str, Any]
    log: Any  # train.EpochLog
    fixed: Fixed | None = None
    config: dict[str, Any] = field(default_factory=dict)
    n_params: int | None = None
    initial_epoch: int = 0
    result: Any = None  # train.FitResult
    test_accuracy: float | None = None


class _Runner:
    """What KerasTuner's hypermodel and tuner call back into: the config, build, fit, and recording."""

    def __init__(self, space: Space, data: Dataset, study: optuna.Study, folder: Path, settings: Settings,
                 on_trial: Callable[[optuna.Study, FrozenTrial], None] | None,
                 on_epoch: Callable[[int, int, int, float], None] | None) -> None:
        self.space, self.data, self.study, self.folder, self.settings = space, data, study, folder, settings
        self.on_trial, self.on_epoch = on_trial, on_epoch
        self.engine = engine_label(settings.tuner)
        self.base_seed = int(study.user_attrs[StudyAttr.SEED])
        ours = [t for t in study.get_trials(deepcopy=False) if Attr.KERAS_TUNER_TRIAL in t.user_attrs]
        # KerasTuner id -> the Optuna trial that recorded it: a resumed run must not record a trial twice.
        self.recorded = {t.user_attrs[Attr.KERAS_TUNER_TRIAL]: t for t in ours if record.counted(t)}
        self.numbers = {t.user_attrs[Attr.KERAS_TUNER_TRIAL]: t.number for t in ours}
        self.started = time.monotonic()
        self.failures, self.last_reason = 0, ""
        self.stopped: str | None = None
        self.current: _Current | None = None

    def before_trial(self) -> None:
        if self.failures >= MAX_CONSECUTIVE_FAILURES:
            self.stopped = f"{self.failures} trials failed in a row; last: {self.last_reason}"
            raise _Stop
        now, settings = time.monotonic(), self.settings
        if (settings.timeout is not None and now - self.started >= settings.timeout) or (
                settings.stop_at is not None and now >= settings.stop_at):
            raise _Stop

    def run_trial(self, kt_trial: Any, train_it: Callable[[], Any]) -> Any:
        from keras_tuner.errors import FailedTrialError

        from search.training import train

        done = self.recorded.get(kt_trial.trial_id)
        if done is not None:  # recorded before KerasTuner could save it had finished: do not run it twice
            if done.state == TrialState.COMPLETE:
                return done.value
            raise FailedTrialError(record.read(done).reason or "failed")
        number = len(self.study.get_trials(deepcopy=False))
        current = _Current(kt_trial.trial_id, number, self.base_seed + number, datetime.now(),
                           dict(kt_trial.hyperparameters.values), train.EpochLog())
        self.current = current
        try:
            current.fixed = Fixed({k: v for k, v in current.values.items() if not k.startswith("tuner/")})
            current.config = self._config(current)
            outcome = train_it()
        except KeyboardInterrupt:
            self._record(current, TrialState.FAIL, reason="interrupted", interrupted=True)
            raise
        except Exception as err:
            reason = str(err).strip() if isinstance(err, TrialFailed) else record.reason_of(err)
            self._record(current, TrialState.FAIL, reason=reason, interrupted=isinstance(err, _OutOfTime))
            self.failures, self.last_reason = self.failures + 1, reason
            raise FailedTrialError(reason) from err
        self.failures = 0
        self._record(current, TrialState.COMPLETE, value=current.result.val_accuracy)
        return outcome

    def _config(self, current: _Current) -> dict[str, Any]:
        assert current.fixed is not None
        config = with_epochs(sample(self.space.space, current.fixed), self.settings.epochs)
        if "tuner/epochs" in current.values:  # Hyperband: this trial ends at epoch tuner/epochs
            config["epochs"], config["steps"] = int(current.values["tuner/epochs"]), 0
        return config

    def build(self) -> Any:
        from search.training import models, train

        current = self.current
        assert current is not None
        train.reset(current.seed)
        model = models.build(current.config)
        current.n_params = int(model.count_params())
        return model

    def fit(self, model: Any, kwargs: dict[str, Any]) -> float:
        from search.space import schema
        from search.training import train

        current = self.current
        assert current is not None
        config = dict(current.config)
        current.initial_epoch = int(kwargs.get("initial_epoch") or 0)
        if kwargs.get("epochs") is not None:  # Hyperband: continue from the loaded weights to `epochs`
            config["epochs"] = int(kwargs["epochs"]) - current.initial_epoch
        # KerasTuner's per-epoch checkpoint is what a promoted Hyperband model continues from; the other
        # tuners never read it, and our kept weights are written by `artifacts`.
        callbacks = [c for c in kwargs.get("callbacks") or []
                     if self.settings.tuner == "hyperband" or type(c).__name__ != "SaveBestEpoch"]
        hard = None if self.settings.stop_at is None else max(0.0, self.settings.stop_at - time.monotonic())
        limit = min((s for s in (self.settings.trial_timeout, hard) if s is not None), default=None)
        deadline = Deadline(limit)
        callbacks.append(deadline.callback())
        if self.on_epoch is not None:
            rounds = train.plan(schema.resolve(config), len(self.data.train_images)).rounds
            callbacks.append(progress_callback(self.on_epoch, current.number, rounds, current.initial_epoch))
        result = train.fit(model, config, self.data, callbacks=callbacks, log=current.log)
        if deadline.expired:
            if limit == hard:
                raise _OutOfTime("stopped: the run's time budget ran out")
            raise TrialFailed(f"exceeded --trial-timeout of {self.settings.trial_timeout:g} s")
        current.result = result
        current.test_accuracy = result.accuracy(self.data.test_images, self.data.test_labels)
        return float(result.val_accuracy)

    def _record(self, current: _Current, state: TrialState, value: float | None = None, reason: str | None = None,
                interrupted: bool = False) -> None:
        """Write the finished trial into the Optuna study as an Optuna trial would be, and keep its weights."""
        log, result = current.log, current.result
        complete = state == TrialState.COMPLETE
        attrs: dict[Attr, Any] = {
            **record.machine(0, cpu_kernels(), "float32"), Attr.CONFIG: current.config, Attr.SEED: current.seed,
            Attr.ENGINE: self.engine, Attr.KERAS_TUNER_TRIAL: current.kt_id,
            **record.outcome(log.val_history, log.seconds, current.n_params, result.best_epoch if complete else None,
                             current.test_accuracy if complete else None, reason, interrupted)}
        if current.initial_epoch:
            attrs[Attr.INITIAL_EPOCH] = current.initial_epoch
            attrs[Attr.CONTINUES] = self.numbers.get(current.values.get("tuner/trial_id", ""))
        fixed = current.fixed or Fixed({})
        self.study.add_trial(FrozenTrial(
            number=current.number, state=state, value=value, datetime_start=current.started,
            datetime_complete=datetime.now(), params=fixed.params, distributions=fixed.distributions,
            user_attrs={str(key): value for key, value in attrs.items()}, system_attrs={}, trial_id=-1,
            intermediate_values={current.initial_epoch + i: v for i, v in enumerate(log.val_history)
                                 if math.isfinite(v)}))
        trial = self.study.get_trials(deepcopy=False)[-1]  # one writer: ours is the last
        self.numbers[current.kt_id] = trial.number
        if record.counted(trial):
            self.recorded[current.kt_id] = trial
        if state == TrialState.COMPLETE and self.settings.keep > 0:
            self._keep(trial.number, current)
        if self.on_trial is not None:
            self.on_trial(self.study, trial)

    def _keep(self, number: int, current: _Current) -> None:
        artifacts.keep_trial(self.folder, self.settings.keep, number, self.study.study_name, current.result,
                             current.config, current.seed, current.test_accuracy, self.data, self.settings.command,
                             baseline=None, engine=self.engine)


def _make_tuner(runner: _Runner) -> Any:
    """A KerasTuner tuner of the chosen kind whose hypermodel and trials go through `runner`."""
    import keras_tuner as kt
    from keras_tuner.src import config as kt_config

    kt_config.DEBUG = runner.settings.debug  # a failed trial's reason is on the leaderboard; tracebacks: --debug
    space = runner.space

    class SpaceModel(kt.HyperModel):  # type: ignore[misc]
        def declare_hyperparameters(self, hp: Any) -> None:
            declare(space.space, hp, space.source)

        def build(self, hp: Any) -> Any:
            return runner.build()

        def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> float:
            return runner.fit(model, kwargs)

    base = {"hyperband": kt.Hyperband, "bayesian": kt.BayesianOptimization, "random": kt.RandomSearch}
    kind = runner.settings.tuner

    class Tuner(base[kind]):  # type: ignore[misc,valid-type]
        def _populate_initial_space(self) -> None:
            # The space is declared whole, conditions included: KerasTuner's default builds models with
            # default values until every conditional scope has been seen, which an unbuildable default
            # (too much pooling) would turn into a crash before the first trial.
            hp = self.oracle.get_space()
            self.hypermodel.declare_hyperparameters(hp)
            self.oracle.update_space(hp)

        def _configure_tensorboard_dir(self, callbacks: Any, trial: Any, execution: int = 0) -> None:
            pass  # KerasTuner imports TensorBoard here for every trial; no TensorBoard callback is used

        def pre_create_trial(self) -> None:
            runner.before_trial()

        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
            parent = super().run_trial
            return runner.run_trial(trial, lambda: parent(trial, *args, **kwargs))

    # KerasTuner's seed 0 means "random": shift by one so that --seed 0 stays reproducible.
    common = {"hypermodel": SpaceModel(), "objective": kt.Objective("val_accuracy", "max"),
              "directory": str(runner.folder), "project_name": PROJECT, "overwrite": False,
              "seed": runner.base_seed + 1, "max_consecutive_failed_trials": 10**9}  # ours: MAX_CONSECUTIVE_FAILURES
    with contextlib.redirect_stdout(io.StringIO()):  # "Reloading Tuner from ..." on every resume
        if kind == "hyperband":  # Hyperband's own budget is brackets; ours is trials (`search` sets max_trials)
            tuner = Tuner(max_epochs=max_epochs(space, runner.settings.epochs), factor=HYPERBAND_FACTOR,
                          hyperband_iterations=10**6, **common)
        else:
            tuner = Tuner(max_trials=runner.settings.trials, **common)
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
