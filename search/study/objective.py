"""One trial, start to finish: the stage between the study and the trainer.

`Objective` is what Optuna calls: it takes the trial's config (its baseline's, or one sampled from
the space), builds and trains the model, reports validation accuracy every epoch so the pruner can
stop it, measures test accuracy once, keeps the weights of the best trials, and writes the trial
record (record.py): config, seed, machine, parameter count, epochs, seconds, learning curve, and the
reason whenever a trial does not complete. It also enforces the study-wide trial budget, so that
any number of workers together run exactly `--trials` trials. `with_epochs`, `Deadline` and the
callbacks here serve the KerasTuner engine's trials too (tuner.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.errors import TrialFailed
from search.space import Space, sample
from search.study import artifacts, record
from search.study.record import Attr
from search.training.datasets import Dataset

# After this many failures in a row the space (or the machine) is broken, not one trial.
MAX_CONSECUTIVE_FAILURES = 10
# Configs over --max-params or --max-latency-ms cost no training, and the sampler learns from them.
MAX_CONSECUTIVE_REJECTIONS = 200


@dataclass
class Objective:
    """Config -> model -> fit -> test accuracy, everything recorded on the trial."""

    space: Space
    data: Dataset
    epochs: int | None
    base_seed: int
    machine: record.Machine = field(default_factory=record.Machine)  # how this process trains, recorded
    param_prefix: str = ""  # study.param_prefix: set once the study's space has been changed on resume
    on_epoch: Callable[[int, int, int, float], None] | None = None  # trial, epoch, epochs, val_accuracy
    study_dir: Path | None = None  # where finished trials keep their weights; None keeps nothing
    keep: int = 10
    command: str = ""  # the command line that runs this search, recorded with each kept trial
    budget: int | None = None  # the study's total trial budget, shared by all workers
    trial_timeout: float | None = None
    queued_only: bool = False  # run queued trials only (`confirm`): a trial the sampler would draw is not run
    objectives: tuple[str, ...] = ("accuracy",)  # with "params", "latency": several objectives, no pruning
    max_params: int | None = None  # a config over a limit is rejected before it trains
    max_latency_ms: float | None = None

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        # Anywhere in the trial, set-up and sampling included: else Optuna fails it without a reason,
        # which reads as a trial lost with a dead worker.
        try:
            return self._run(trial)
        except KeyboardInterrupt:
            record.write(trial, {Attr.INTERRUPTED: True, Attr.REASON: "interrupted"})
            raise

    def _run(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        # TensorFlow loads only when a trial runs, so `show` and input errors stay instant.
        from search.training import models, train

        record.write(trial, self.machine.attrs())
        self._check_budget(trial)
        config, seed, searched = self._what(trial)
        record.write(trial, {Attr.CONFIG: config, Attr.SEED: seed})
        train.reset(seed)
        log = train.EpochLog()
        deadline = Deadline(self.trial_timeout)
        n_params = result = test_accuracy = reason = latency = None
        rejected = False
        try:
            model = train.training_model(config, self.machine.precision)
            n_params = int(model.count_params())
            if self.max_latency_ms is not None or "latency" in self.objectives:
                latency = models.latency_ms(models.build(config))  # the served build; weights do not matter
            if over := self._limits(trial, n_params, latency):
                rejected = True
                reason = f"rejected before training: {over}"
                raise optuna.TrialPruned(reason)
            # Baselines and confirm's trainings are references, never pruned: their epochs are only reported.
            callbacks = self._callbacks(trial, config, deadline, prune=searched)
            result = train.fit(model, config, self.data, callbacks=callbacks, log=log)
            deadline.check()
            test_accuracy = result.accuracy(self.data.test_images, self.data.test_labels)
            latency = latency if latency is not None else models.latency_ms(result.model)
            if not record.confirmation(trial):  # a confirm training's model is one of S: the trial keeps its own
                self._keep(trial, result, config, seed, test_accuracy)
            figures = {"accuracy": result.val_accuracy, "params": float(n_params), "latency": latency}
            return result.val_accuracy if len(self.objectives) == 1 else tuple(figures[o] for o in self.objectives)
        except optuna.TrialPruned:
            reason = reason or (f"pruned after epoch {len(log.val_history)}: val_accuracy {log.val_history[-1]:.4f} "
                                "below the pruner's bar")
            raise
        except TrialFailed as err:
            reason = str(err)
            raise
        except Exception as err:  # out of memory, a Keras error on an odd config: fail this trial only
            reason = record.reason_of(err)
            raise TrialFailed(reason) from err
        finally:
            record.write(trial, record.outcome(log.val_history, log.seconds, n_params,
                                               result.best_epoch if result else None, test_accuracy, reason,
                                               latency_ms=latency, rejected=rejected))

    def _limits(self, trial: optuna.Trial, n_params: int, latency: float | None) -> str:
        """Tell the sampler how far the config is from --max-params and --max-latency-ms (Optuna's
        constraints: feasible at 0 or below, so TPE learns to avoid the rest); what it is over, if any."""
        over = []
        for key, value, limit, unit in (("params", n_params, self.max_params, " parameters"),
                                        ("latency", latency, self.max_latency_ms, " ms")):
            if limit is None or value is None:
                continue
            trial.set_constraint(key, (value - limit) / limit)
            if value > limit:
                over.append(f"{value:,}{unit} over --max-{'params' if key == 'params' else 'latency-ms'} {limit:,}")
        return "; ".join(over)

    def _what(self, trial: optuna.Trial) -> tuple[dict[str, Any], int, bool]:
        """The trial's config and seed, and whether it is a searched one: a baseline's config, a `confirm`
        training's (its trial's config, its own recorded seed), or one the sampler draws."""
        attrs = trial.user_attrs
        source = attrs.get(Attr.CONFIRM_OF)
        if source is not None:
            done = trial.study.get_trials(deepcopy=False)[int(source)]
            return dict(done.user_attrs[Attr.CONFIG]), int(attrs[Attr.SEED]), False
        seed = self.base_seed + trial.number
        label = attrs.get(Attr.BASELINE)
        if label in self.space.baselines:
            return with_epochs(dict(self.space.baselines[str(label)]), self.epochs), seed, False
        return with_epochs(sample(self.space.space, trial, self.param_prefix), self.epochs), seed, True

    def _check_budget(self, trial: optuna.Trial) -> None:
        """Trial numbers are handed out atomically, so the budget goes to the lowest numbers. A `confirm`
        training is outside the budget; with `queued_only`, a trial nobody queued is not run."""
        attrs = trial.user_attrs
        if record.confirmation(trial):
            return
        unqueued = self.queued_only and attrs.get(Attr.BASELINE) is None and attrs.get(Attr.RETRY_OF) is None
        ahead = record.taken(t for t in trial.study.get_trials(deepcopy=False) if t.number < trial.number)
        if unqueued or (self.budget is not None and ahead >= self.budget):
            why = "nothing more is queued" if unqueued else f"the budget of {self.budget} trials is taken"
            record.write(trial, {Attr.SURPLUS: True, Attr.REASON: f"not run: {why}"})
            trial.study.stop()
            raise TrialFailed("budget reached")

    def _callbacks(self, trial: optuna.Trial, config: dict[str, Any], deadline: Deadline,
                   prune: bool) -> list[Any]:
        from search.space import schema
        from search.training import train

        # Optuna cannot prune, nor take intermediate values, with several objectives.
        callbacks: list[Any] = [deadline.callback()]
        if len(self.objectives) == 1:
            callbacks.append(pruning_callback(trial, prune=prune))
        if self.on_epoch is not None:  # rounds, not epochs: a config that trains by steps has its own count
            rounds = train.plan(schema.resolve(config), len(self.data.train_images)).rounds
            callbacks.append(progress_callback(self.on_epoch, trial.number, rounds))
        return callbacks

    def _keep(self, trial: optuna.Trial, result: Any, config: dict[str, Any], seed: int,
              test_accuracy: float) -> None:
        if self.study_dir is None or self.keep <= 0:
            return
        artifacts.keep_trial(self.study_dir, self.keep, trial.number, trial.study.study_name, result, config, seed,
                             test_accuracy, self.data, self.command, baseline=trial.user_attrs.get(Attr.BASELINE))


def with_epochs(config: dict[str, Any], epochs: int | None) -> dict[str, Any]:
    """`config` as `--epochs` overrides it for quick runs, configs that count steps (S1-S3) included."""
    return {**config, "epochs": epochs, "steps": 0} if epochs else config


class Deadline:
    """--trial-timeout: stop training once the trial has run this long, and fail it."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.started = time.monotonic()
        self.expired = False

    def callback(self) -> Any:
        import keras

        deadline = self

        class StopAtDeadline(keras.callbacks.Callback):  # type: ignore[misc]
            def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
                if deadline.seconds is not None and time.monotonic() - deadline.started > deadline.seconds:
                    deadline.expired = True
                    self.model.stop_training = True

        return StopAtDeadline()

    def check(self) -> None:
        if self.expired:
            raise TrialFailed(f"exceeded --trial-timeout of {self.seconds:g} s")


def progress_callback(hook: Callable[[int, int, int, float], None], number: int, rounds: int,
                      done_before: int = 0) -> Any:
    """A Keras callback calling `hook(trial number, rounds done, rounds in all, val accuracy)` after
    each of this fit's `rounds`; `done_before` counts rounds an earlier fit of the same model trained
    (a Hyperband continuation), and both counts include them."""
    import keras

    return keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: hook(
        number, done_before + epoch + 1, done_before + rounds, float((logs or {}).get("val_accuracy", float("nan")))))


def pruning_callback(trial: optuna.Trial, prune: bool = True) -> Any:
    """optuna-integration's Keras callback, except that the last epoch is reported, never pruned:
    by then the trial's training is paid for, and pruning it would only throw the model away.
    With `prune` False (a baseline: the reference a search must beat) every epoch is only reported."""
    from optuna_integration.keras import KerasPruningCallback

    class KeepLastEpoch(KerasPruningCallback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if prune and epoch + 1 < self.params.get("epochs", 0):
                super().on_epoch_end(epoch, logs)
            elif logs and "val_accuracy" in logs:
                trial.report(float(logs["val_accuracy"]), step=epoch)

    return KeepLastEpoch(trial, "val_accuracy")


class FailureGuard:
    """A study callback that stops the run after too many failed trials in a row, or too many configs
    in a row rejected by --max-params or --max-latency-ms (the space can hardly meet them)."""

    def __init__(self, limit: int = MAX_CONSECUTIVE_FAILURES) -> None:
        self.limit = limit
        self.streak = self.rejected = 0
        self.tripped: str | None = None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.user_attrs.get(Attr.REJECTED):
            self.rejected += 1
            if self.rejected >= MAX_CONSECUTIVE_REJECTIONS:
                self.tripped = (f"{self.rejected} configs in a row were over the limits; last: "
                                f"{record.read(trial).reason}: narrow the space or raise the limit")
                study.stop()
            return
        self.rejected = 0
        if any(trial.user_attrs.get(flag) for flag in record.EXCLUDED):
            return
        if trial.state != TrialState.FAIL:
            self.streak = 0
            return
        self.streak += 1
        if self.streak >= self.limit:
            self.tripped = f"{self.limit} trials failed in a row; last: {record.read(trial).reason or '?'}"
            study.stop()
