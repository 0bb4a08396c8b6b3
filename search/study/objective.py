"""Optuna's side of a trial: the objective Optuna calls, a thin adapter over the trial lifecycle.

`Objective(trial)` decides what the trial trains (a baseline's config, a `confirm` training's, or
one the sampler draws from the space; a baseline, and a `confirm` training of one, in float32 as
its tutorial is written, whatever the study's precision), enforces the study-wide budget (so that
any number of workers together run exactly `--trials` trials), hands the trial to `lifecycle.run`
with the live Optuna trial as its `Reporter`, and turns the outcome into Optuna's terms: the
objective values, `optuna.TrialPruned`, or `TrialFailed` (which `studies.optimize` catches, so the
search goes on).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from search.errors import TrialFailed
from search.space import Space, sample
from search.study import artifacts, lifecycle, record, stopping, storage
from search.study.halving import Halving
from search.study.record import Attr
from search.study.references import AS_WRITTEN


class Interrupted(TrialFailed):
    """A stop request ended the trial: it is recorded interrupted, and the worker starts no other."""


@dataclass
class Objective:
    """Config -> lifecycle -> Optuna's terms, for every trial a worker runs."""

    space: Space
    context: lifecycle.Context
    epochs: int | None  # --epochs: every config's, for quick runs
    base_seed: int
    param_prefix: str = ""  # studies.param_prefix: set once the study's space has been changed on resume
    budget: int | None = None  # the study's total trial budget, shared by all workers
    queued_only: bool = False  # run queued trials only (`confirm`): a trial the sampler would draw is not run

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        self._check_budget(trial)
        outcome = lifecycle.run(self._assignment(trial), self.context, OptunaReporter(trial))
        if outcome.state == "complete":
            return outcome.value if len(outcome.values) == 1 else outcome.values
        if outcome.state in ("pruned", "rejected"):
            raise optuna.TrialPruned(outcome.reason)
        if outcome.state == "interrupted":
            if outcome.progress is not None:  # trained some epochs: the next run continues them
                storage.queue_again(trial.study, trial.number, trial.params, trial.user_attrs)
            trial.study.stop()
            raise Interrupted(outcome.reason)
        raise TrialFailed(outcome.reason)

    def _assignment(self, trial: optuna.Trial) -> lifecycle.Assignment:
        """The trial's config and seed: a baseline's config, a `confirm` training's (its trial's config, its
        own recorded seed), or one the sampler draws."""
        attrs = trial.user_attrs
        retry_of = attrs.get(Attr.RETRY_OF)
        resumes = int(retry_of) if retry_of is not None else None  # continues its checkpoint, if it kept one
        source = attrs.get(Attr.CONFIRM_OF)
        if source is not None:
            done = trial.study.get_trials(deepcopy=False)[int(source)]
            return lifecycle.Assignment(trial.number, dict(done.user_attrs[Attr.CONFIG]), int(attrs[Attr.SEED]),
                                        searched=False, keep=False, resumes=resumes,
                                        precision=AS_WRITTEN if done.user_attrs.get(Attr.BASELINE) else None)
        seed = lifecycle.seed_of(self.base_seed, trial.number)
        label = attrs.get(Attr.BASELINE)
        if label in self.space.baselines:
            config = lifecycle.with_epochs(dict(self.space.baselines[str(label)]), self.epochs)
            return lifecycle.Assignment(trial.number, config, seed, searched=False, baseline=str(label),
                                        resumes=resumes, precision=AS_WRITTEN)
        config = lifecycle.with_epochs(sample(self.space.space, trial, self.param_prefix), self.epochs)
        return lifecycle.Assignment(trial.number, config, seed, resumes=resumes)

    def _check_budget(self, trial: optuna.Trial) -> None:
        """Trial numbers are handed out atomically, so the budget goes to the lowest numbers. A `confirm`
        training is outside the budget; with `queued_only`, a trial nobody queued is not run."""
        attrs = trial.user_attrs
        if record.is_confirmation(trial):
            return
        unqueued = self.queued_only and attrs.get(Attr.BASELINE) is None and attrs.get(Attr.RETRY_OF) is None
        ahead = record.places_taken(t for t in trial.study.get_trials(deepcopy=False) if t.number < trial.number)
        if unqueued or (self.budget is not None and ahead >= self.budget):
            why = "nothing more is queued" if unqueued else f"the budget of {self.budget} trials is taken"
            record.write(trial, {Attr.SURPLUS: True, Attr.REASON: f"not run: {why}"})
            trial.study.stop()
            raise TrialFailed("budget reached")


class OptunaReporter:
    """A live Optuna trial as the lifecycle's `Reporter`: user attributes, intermediate values, the pruner
    and constraints."""

    def __init__(self, trial: optuna.Trial, prune: bool = True) -> None:
        self.trial, self.prune = trial, prune

    def write(self, values: Mapping[Attr, Any]) -> None:
        record.write(self.trial, values)

    def constrain(self, name: str, excess: float) -> None:
        self.trial.set_constraint(name, excess)

    def attach(self, store: artifacts.Store, files: list[Path]) -> dict[str, str]:
        ids = store.upload(self.trial, files)
        record.write(self.trial, {Attr.ARTIFACTS: ids})
        return ids

    def history(self, val_history: list[float]) -> None:
        for step, value in enumerate(val_history):
            self.trial.report(value, step=step)

    def epoch_callback(self, prune: bool, rounds: int, first_round: int) -> Any:
        return pruning_callback(self.trial, prune=prune and self.prune, first_round=first_round)


def pruning_callback(trial: optuna.Trial, prune: bool = True, first_round: int = 0) -> Any:
    """optuna-integration's Keras callback, except that the last epoch is reported, never pruned:
    by then the trial's training is paid for, and pruning it would only throw the model away.
    With `prune` False (a baseline: the reference a search must beat) every epoch is only reported.
    `first_round` offsets the steps of a trial that continues another's training. A pruned trial's
    `TrialPruned` says why: `Halving`'s verdict at a rung it had passed early, else the pruner's bar."""
    from optuna_integration.keras import KerasPruningCallback

    class KeepLastEpoch(KerasPruningCallback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if prune and epoch + 1 < self.params.get("epochs", 0):
                try:
                    super().on_epoch_end(first_round + epoch, logs)
                except optuna.TrialPruned:
                    pruner = trial.study.pruner
                    raise optuna.TrialPruned((pruner.why(trial.number) if isinstance(pruner, Halving) else None)
                                             or "below the pruner's bar") from None
            elif logs and "val_accuracy" in logs:
                trial.report(float(logs["val_accuracy"]), step=first_round + epoch)

    return KeepLastEpoch(trial, "val_accuracy")


def stop_when_asked(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A study callback: start no further trial once this process is asked to stop."""
    if stopping.requested():
        study.stop()
