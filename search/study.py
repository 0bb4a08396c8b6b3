"""The Optuna study that drives a search: the stage that turns a space into finished trials.

`run` opens (or resumes) the study in its storage, enqueues the space file's baselines once, and
runs trials until the study holds the requested number of finished ones. Each trial samples a
config from the space (or takes its baseline's), builds and trains it, reports validation accuracy
every epoch so the pruner can stop it, and records everything a leaderboard needs as user
attributes: the concrete config, seed, parameter count, epochs, seconds, learning curve and test
accuracy. A trial that cannot be built or goes NaN fails with its reason and the search goes on;
Ctrl-C (or SIGTERM) marks the running trial interrupted, keeps every finished one, and leaves a
study that the same command resumes.
"""

from __future__ import annotations

import importlib.util
import logging
import random
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import artifacts
from search.data import Dataset
from search.errors import InputError, TrialFailed
from search.space import Space, sample

SAMPLERS = ("tpe", "random", "cmaes", "gp")
PRUNERS = ("median", "hyperband", "none")
# After this many failures in a row the space (or the machine) is broken, not one trial.
MAX_CONSECUTIVE_FAILURES = 10
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass
class RunOptions:
    """Everything `search run` was asked for."""

    trials: int = 50
    timeout: float | None = None
    study_name: str | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int | None = None
    storage: str | None = None
    epochs: int | None = None
    results: Path = Path("results")


def study_name(space: Space, options: RunOptions) -> str:
    name = options.study_name or space.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise InputError(f"--study {name!r}: use letters, digits, '.', '_' and '-' only")
    return name


def storage_url(name: str, options: RunOptions) -> str:
    """The study's storage: a SQLite file in its results folder unless --storage says otherwise."""
    if options.storage:
        if not re.match(r"^[a-z0-9+]+://", options.storage):
            raise InputError(f"--storage {redact(options.storage)!r}: expected a database URL such as "
                             "sqlite:///path/study.db or postgresql://user@host/db")
        return options.storage
    return f"sqlite:///{options.results / name / 'study.db'}"


def locate(study_or_space: str, results: Path = Path("results"), storage: str | None = None) -> tuple[str, str, Path]:
    """(name, storage URL, results folder) of a stored study, given its name or its space file."""
    name = Path(study_or_space).stem if study_or_space.endswith(".py") else study_or_space
    options = RunOptions(study_name=name, storage=storage, results=results)
    url = storage_url(name, options)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise InputError(f"{study_or_space}: no study found at {url.removeprefix('sqlite:///')} "
                         f"(run `python -m search run` first, or pass --results/--storage)")
    return name, url, results / name


def load_study(study_or_space: str, results: Path = Path("results"), storage: str | None = None) -> optuna.Study:
    """Open a stored study read-only in spirit: nothing is written to it."""
    name, url, _ = locate(study_or_space, results, storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=name, storage=url)
    except KeyError as err:
        raise InputError(f"{study_or_space}: no study named {name!r} in {redact(url)}") from err


def redact(url: str) -> str:
    """A storage URL safe to print: any password replaced by ***."""
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if name == "tpe":
        # group=True keeps each conditional branch's parameters in their own model; constant_liar
        # stops parallel workers from proposing the same point while a trial is still running.
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        missing = [module for module in ("torch", "scipy") if importlib.util.find_spec(module) is None]
        if missing:  # GPSampler imports them only after its random start-up trials: fail now instead
            raise InputError(f"--sampler gp needs {' and '.join(missing)}: pip install -e '.[gp]'")
        return optuna.samplers.GPSampler(seed=seed)
    raise InputError(f"--sampler {name!r}: expected one of {', '.join(SAMPLERS)}")


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise InputError(f"--pruner {name!r}: expected one of {', '.join(PRUNERS)}")


def open_study(name: str, storage: str, sampler: str = "tpe", pruner: str = "median",
               seed: int | None = None) -> optuna.Study:
    """Create the study or load it; the base seed is fixed at creation so resumes stay seeded."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage.startswith("sqlite:///"):
        Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True)
    if "seed" not in study.user_attrs:
        study.set_user_attr("seed", seed if seed is not None else random.randrange(2**31))
    base_seed = int(study.user_attrs["seed"])
    # Offset by the trials already run, so a resumed study does not replay the same random draws.
    study.sampler = make_sampler(sampler, base_seed + len(study.trials))
    study.pruner = make_pruner(pruner)
    return study


def check_dataset(study: optuna.Study, data: Dataset) -> None:
    """A study holds results of one data set: refuse to resume it on another."""
    recorded = study.user_attrs.get("dataset")
    if recorded is None:
        study.set_user_attr("dataset", data.name)
        study.set_user_attr("data_checksum", data.checksum)
    elif recorded != data.name or study.user_attrs.get("data_checksum") != data.checksum:
        raise InputError(f"study {study.study_name!r} was run on {recorded}, this run loads {data.name} "
                         f"from {data.source}: pass another --study to start a new one")


def counted(trial: FrozenTrial) -> bool:
    """Finished trials count toward the budget; one stopped by Ctrl-C does not."""
    return trial.state in FINISHED and not trial.user_attrs.get("interrupted")


def enqueue_baselines(study: optuna.Study, space: Space) -> None:
    """Queue each baseline once: not again if it ran, is queued or is running."""
    present = {t.user_attrs.get("baseline") for t in study.get_trials(deepcopy=False)
               if counted(t) or t.state in (TrialState.WAITING, TrialState.RUNNING)}
    for label in space.baselines:
        if label not in present:
            study.enqueue_trial({}, user_attrs={"baseline": label})


@dataclass
class Objective:
    """One trial: config -> model -> fit -> test accuracy, everything recorded on the trial."""

    space: Space
    data: Dataset
    epochs: int | None
    base_seed: int
    on_epoch: Callable[[int, int, int, float], None] | None = None  # trial, epoch, epochs, val_accuracy
    study_dir: Path | None = None  # where finished trials keep their weights; None keeps nothing
    keep: int = 10
    command: str = ""  # the command line that runs this search, recorded with each kept trial

    def __call__(self, trial: optuna.Trial) -> float:
        # TensorFlow loads only when a trial runs, so `show` and input errors stay instant.
        import keras

        from search import models, schema, train

        label = trial.user_attrs.get("baseline")
        config = dict(self.space.baselines[label]) if label in self.space.baselines else sample(self.space.space, trial)
        if self.epochs:
            config["epochs"] = self.epochs
        seed = self.base_seed + trial.number
        trial.set_user_attr("config", config)
        trial.set_user_attr("seed", seed)
        train.reset(seed)
        log = train.EpochLog()
        try:
            model = models.build(config)
            trial.set_user_attr("n_params", int(model.count_params()))
            callbacks = [pruning_callback(trial)]
            if self.on_epoch is not None:
                hook, epochs = self.on_epoch, schema.resolve(config)["epochs"]
                callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: hook(
                    trial.number, epoch + 1, epochs, float((logs or {}).get("val_accuracy", float("nan"))))))
            result = train.fit(model, config, self.data, callbacks=callbacks, log=log)
            trial.set_user_attr("best_epoch", result.best_epoch)
            test_accuracy = train.evaluate(result.model, self.data.test_images, self.data.test_labels)
            trial.set_user_attr("test_accuracy", test_accuracy)
            self._keep(trial, result, config, seed, test_accuracy)
            return result.val_accuracy
        except optuna.TrialPruned:
            trial.set_user_attr("reason", f"pruned after epoch {len(log.val_history)}: "
                                          f"val_accuracy {log.val_history[-1]:.4f} below the pruner's bar")
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            trial.set_user_attr("reason", "interrupted")
            raise
        except TrialFailed as err:
            trial.set_user_attr("reason", str(err))
            raise
        except Exception as err:  # out of memory, a Keras error on an odd config: fail this trial only
            reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
            trial.set_user_attr("reason", reason[:300])
            raise TrialFailed(reason) from err
        finally:
            trial.set_user_attr("epochs", len(log.val_history))
            trial.set_user_attr("train_seconds", round(log.seconds, 2))
            trial.set_user_attr("val_history", log.val_history)


    def _keep(self, trial: optuna.Trial, result: Any, config: dict[str, Any], seed: int,
              test_accuracy: float) -> None:
        if self.study_dir is None or self.keep <= 0:
            return
        record = {"trial": trial.number, "study": trial.study.study_name, "config": config, "seed": seed,
                  "val_accuracy": result.val_accuracy, "test_accuracy": test_accuracy,
                  "best_epoch": result.best_epoch, "epochs": result.epochs_run,
                  "n_params": int(result.model.count_params()), "baseline": trial.user_attrs.get("baseline"),
                  "dataset": self.data.name, "data_checksum": self.data.checksum, "run_command": self.command}
        artifacts.save(self.study_dir, trial.number, result.model, record)
        artifacts.prune(self.study_dir, self.keep)


def pruning_callback(trial: optuna.Trial) -> Any:
    """optuna-integration's Keras callback, except that the last epoch is reported, never pruned:
    by then the trial's training is paid for, and pruning it would only throw the model away."""
    from optuna_integration.keras import KerasPruningCallback

    class KeepLastEpoch(KerasPruningCallback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if epoch + 1 < self.params.get("epochs", 0):
                super().on_epoch_end(epoch, logs)
            elif logs and "val_accuracy" in logs:
                trial.report(float(logs["val_accuracy"]), step=epoch)

    return KeepLastEpoch(trial, "val_accuracy")


class FailureGuard:
    """A study callback that stops the run after too many failed trials in a row."""

    def __init__(self, limit: int = MAX_CONSECUTIVE_FAILURES) -> None:
        self.limit = limit
        self.streak = 0
        self.tripped: str | None = None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state != TrialState.FAIL or trial.user_attrs.get("interrupted"):
            self.streak = 0
            return
        self.streak += 1
        if self.streak >= self.limit:
            self.tripped = f"{self.limit} trials failed in a row; last: {trial.user_attrs.get('reason', '?')}"
            study.stop()


def optimize(study: optuna.Study, objective: Objective, trials: int, timeout: float | None,
             callbacks: list[Callable[[optuna.Study, FrozenTrial], None]]) -> FailureGuard:
    """Run trials until the study has `trials` counted ones (or time runs out)."""
    guard = FailureGuard()
    remaining = trials - sum(counted(t) for t in study.get_trials(deepcopy=False))
    if remaining > 0:
        logging.getLogger("optuna").setLevel(logging.ERROR)  # failures are reported by our callbacks
        study.optimize(objective, n_trials=remaining, timeout=timeout, catch=(TrialFailed,),
                       callbacks=[guard, *callbacks], gc_after_trial=True)
    return guard

