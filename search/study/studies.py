"""The Optuna study behind a search: the stage that opens it and runs trials into it.

`open_study` creates or resumes the study in its storage (see storage.py) with the chosen sampler
and pruner, the base seed fixed at creation. `enqueue_baselines` queues the space file's baselines
once, however often the study is resumed or however many workers join. `optimize` runs trials in
this process until the study-wide budget is met: re-running `run --trials 60` after 50 runs
exactly 10 more, and several workers together run exactly that many (see objective.py). The settings a
remote worker needs to join (space source, data set, epochs, budget) are stored on the study.
"""

from __future__ import annotations

import importlib.util
import logging
import random
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.errors import InputError, TrialFailed
from search.files import write_atomic
from search.space import Space, changes, load_space, outline
from search.study import halving, journal, lifecycle, record, stopping, storage
from search.study.objective import Objective, stop_when_asked
from search.study.record import Attr, StudyAttr
from search.training.datasets import Dataset

SAMPLERS = ("tpe", "nsga2", "random", "cmaes", "gp")
OBJECTIVES = {"accuracy": optuna.study.StudyDirection.MAXIMIZE, "params": optuna.study.StudyDirection.MINIMIZE,
              "latency": optuna.study.StudyDirection.MINIMIZE}
PRUNERS = ("median", "halving", "hyperband", "none")
STARTUP_TRIALS = 5  # searched trials the median pruner waits for before judging any
# Every pruner first judges a trial after epoch FIRST_RUNG (`run --min-epochs`), and never before it.
# Successive halving (asynchronous, ASHA; halving.py) then judges it after epochs 2, 5, 17 and 65 (rungs
# at steps (FIRST_RUNG - 1) * 4**k, counted from 0), and lets it go on only while in the top quarter of
# the trials that reached the same rung; so most stop after 2 epochs and few train to the space's full
# length. Steps count from 0, so a trial's first epoch is never judged: a rung needs a step of 1 or more.
FIRST_RUNG, REDUCTION = 2, 4


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
NAME_CHARS = 100  # a folder's name (results/<study>/) is at most 255 bytes, and `report A B` joins several


def study_name(space: Space, requested: str | None = None) -> str:
    """--study, or the space file's name; letters, digits, '.', '_' and '-' only."""
    return checked_name(space.source if requested is None else requested, "--study" if requested is not None else "")


def checked_name(given: str, flag: str = "") -> str:
    """The study a command line names, by its name or (without `flag`, as a command's argument) its
    space file, whose name it then takes: refused in one line unless a name a folder and every storage
    can take, so that a 300-character name or a file name with a space is a bad input, not a traceback."""
    from_file = not flag and given.endswith(".py")
    name = Path(given).stem if from_file else given
    if NAME.fullmatch(name) and len(name) <= NAME_CHARS:
        return name
    expected = f"letters, digits, '.', '_' and '-', at most {NAME_CHARS}, beginning with a letter or digit"
    if from_file:
        raise InputError(f"{given}: a study is named after its space file, and {name[:NAME_CHARS]!r} is not a "
                         f"study name ({expected}): rename the file, or pass --study NAME")
    shown = repr(name) if len(name) <= NAME_CHARS else f"{name[:40]!r}... ({len(name)} characters)"
    raise InputError(f"{flag + ' ' if flag else ''}{shown}: expected a study name ({expected})"
                     + ("" if flag else " or its space file (.py)"))


def storage_url(name: str, location: str | None = None, results: Path = Path("results")) -> str:
    """The study's storage: a journal file in its results folder unless --storage says otherwise."""
    storage.check_results(results)
    if location:
        storage.check_given(location)
    location = location or storage.default_location(results, name)
    storage.check_folder(results / name, location)
    journal.check_not_foreign(location)
    return location


def name_of(study_or_space: str) -> str:
    """The study a command line names: its name, or the stem of its space file (`checked_name`)."""
    return checked_name(study_or_space)


def locate(study_or_space: str, results: Path = Path("results"), location: str | None = None
           ) -> tuple[str, str, Path]:
    """(name, storage location, results folder) of a stored study, given its name or space file."""
    name = name_of(study_or_space)
    url = storage_url(name, location, results)
    if not storage.exists(url):
        raise InputError(f"{study_or_space}: no study found at {storage.redact(url.removeprefix('sqlite:///'))} "
                         f"(run `python -m search run` first, or pass --results/--storage)")
    return name, url, results / name


def load_study(study_or_space: str, results: Path = Path("results"), location: str | None = None
               ) -> optuna.Study:
    """Open a stored study to read it: nothing is written to it."""
    name, url, _ = locate(study_or_space, results, location)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=name, storage=storage.open_storage(url))
    except KeyError as err:
        raise InputError(f"{study_or_space}: no study named {name!r} in {storage.redact(url)}") from err


def load_studies(names: list[str], results: Path = Path("results"), location: str | None = None
                 ) -> list[optuna.Study]:
    """Several stored studies to read side by side, in the order named: a study named twice (by name or
    by space file) is refused before any is opened, a missing one as `load_study` refuses it."""
    seen: dict[str, str] = {}
    for given in names:
        name = name_of(given)
        if name in seen:
            again = "" if seen[name] == given else f" (study {name!r}, already named as {seen[name]})"
            raise InputError(f"{given}: named twice{again}: name each study once")
        seen[name] = given
    return [load_study(given, results, location) for given in names]


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if name == "tpe":
        # group=True keeps each conditional branch's parameters in their own model; constant_liar
        # stops parallel workers from proposing the same point while a trial is still running.
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)
    if name == "nsga2":  # the genetic multi-objective sampler (works with one objective too)
        return optuna.samplers.NSGAIISampler(seed=seed)
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


def make_pruner(name: str, baselines: int = 0, min_epochs: int = FIRST_RUNG) -> optuna.pruners.BasePruner:
    """The named pruner, judging no trial before it has trained `min_epochs` epochs. The median pruner
    judges none before `STARTUP_TRIALS` searched trials have finished beyond the study's `baselines`:
    they finish first and count among its finished trials, so without this the bar would be set by
    them and one or two searched trials (a 50-trial run of spaces/mlp.py then pruned every trial after
    its 7th)."""
    first_step = min_epochs - 1
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS + baselines, n_warmup_steps=first_step)
    if name == "halving":
        return halving.Halving(first_step, REDUCTION)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=first_step, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise InputError(f"--pruner {name!r}: expected one of {', '.join(PRUNERS)}")


def objectives(text: str) -> tuple[str, ...]:
    """`--objectives accuracy,params`: the names, accuracy first, each once."""
    names = tuple(part.strip() for part in text.split(","))
    unknown = [name for name in names if name not in OBJECTIVES]
    if unknown or len(set(names)) != len(names) or names[0] != "accuracy":
        raise InputError(f"--objectives {text}: expected accuracy, then any of params and latency, each once "
                         "(e.g. accuracy,params)")
    return names


def open_study(name: str, location: str, sampler: str = "tpe", pruner: str = "median",
               seed: int | None = None, worker: int = 0, goals: tuple[str, ...] = ("accuracy",),
               min_epochs: int | None = None) -> optuna.Study:
    """Create the study or load it; the base seed is fixed at creation so resumes stay seeded. `goals`
    (a new study's objectives) set its directions; `min_epochs` is the pruner's first rung (None:
    FIRST_RUNG)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opened = storage.open_storage(location)
    try:  # load first: create_study(load_if_exists=True) appends a record to a journal even when it loads
        study = optuna.load_study(study_name=name, storage=opened)
    except KeyError:
        study = optuna.create_study(study_name=name, storage=opened, directions=[OBJECTIVES[g] for g in goals])
        study.set_user_attr(StudyAttr.OBJECTIVES, list(goals))
    if StudyAttr.SEED not in study.user_attrs:
        study.set_user_attr(StudyAttr.SEED, seed if seed is not None else random.randrange(2**31))
    base_seed = int(study.user_attrs[StudyAttr.SEED])
    # Each worker draws its own random numbers, offset by the trials already run so that a resumed
    # study does not replay the same draws.
    study.sampler = make_sampler(sampler, base_seed + 1_000_003 * worker + len(study.trials))
    baselines = {label for t in study.get_trials(deepcopy=False) if (label := t.user_attrs.get(Attr.BASELINE))}
    study.pruner = make_pruner(pruner, baselines=len(baselines), min_epochs=min_epochs or FIRST_RUNG)
    return study


def engine_label(sampler: str, pruner: str) -> str:
    return f"optuna/{sampler}+{pruner}"


def stored_study(location: str, name: str) -> optuna.Study | None:
    """The study `name` if `location` already holds it, else None; nothing is created."""
    if not storage.exists(location):
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=name, storage=storage.open_storage(location))
    except KeyError:
        return None


def recorded_engine(location: str, name: str) -> str | None:
    """The engine(s) a stored study was run with; None for a new one."""
    stored = stored_study(location, name)
    if stored is None:
        return None
    return stored.user_attrs.get(StudyAttr.ENGINE)


def check_engine(location: str, name: str, label: str) -> None:
    """One study, one engine family: KerasTuner's state cannot resume an Optuna study, nor the reverse,
    nor one KerasTuner tuner another's."""
    recorded = recorded_engine(location, name)
    if recorded is None:
        return
    kerastuner = label.startswith("keras-tuner")
    if (recorded != label) if kerastuner else recorded.startswith("keras-tuner"):
        raise InputError(f"study {name!r} was run with {recorded}, this run is {label}: run it with that engine, "
                         "or pass --study NAME to start another")


def note_engine(study: optuna.Study, label: str) -> None:
    """Record the engine on the study (Optuna studies resumed with another sampler list both)."""
    recorded = study.user_attrs.get(StudyAttr.ENGINE)
    if not recorded:
        study.set_user_attr(StudyAttr.ENGINE, label)
    elif label not in recorded.split(", "):
        study.set_user_attr(StudyAttr.ENGINE, f"{recorded}, {label}")


def check_space(study: optuna.Study, space: Space, accept: bool = False) -> None:
    """A study holds results of one space: refuse to resume it with another, naming what changed,
    unless `accept` (--accept-space-change), which records the change and the trial it starts at."""
    now = outline(space)
    recorded = study.user_attrs.get(StudyAttr.SPACE)
    if recorded is None:  # a new study
        study.set_user_attr(StudyAttr.SPACE, now)
        return
    changed = changes(recorded, now)
    if not changed:
        return
    shown = "; ".join(changed[:3]) + (f"; and {len(changed) - 3} more" if len(changed) > 3 else "")
    if not accept:
        raise InputError(f"{space.source}: not the space study {study.study_name!r} was run with ({shown}): pass "
                         "--study NAME to start a new study, or --accept-space-change to go on with this one")
    history = [*study.user_attrs.get(StudyAttr.SPACE_CHANGES, []),
               {"from_trial": len(study.get_trials(deepcopy=False)), "changes": changed}]
    study.set_user_attr(StudyAttr.SPACE_CHANGES, history)
    study.set_user_attr(StudyAttr.SPACE, now)


def param_prefix(study: optuna.Study) -> str:
    """What the parameters of the study's current space are named after: nothing, or `s2/`, `s3/`, ...
    once its space has been changed on resume. Optuna holds one distribution per parameter name and
    refuses another (a log scale dropped, a Choice's options changed), and the sampler should not
    model the new space from the old one's trials anyway."""
    changed = len(study.user_attrs.get(StudyAttr.SPACE_CHANGES, []))
    return f"s{changed + 1}/" if changed else ""


def check_objectives(location: str, name: str, goals: tuple[str, ...]) -> None:
    """A study keeps the objectives it began with (Optuna fixes a study's directions at creation)."""
    stored = stored_study(location, name)
    if stored is None:
        return
    recorded = tuple(stored.user_attrs.get(StudyAttr.OBJECTIVES) or ("accuracy",))
    if recorded != goals:
        raise InputError(f"study {name!r} optimizes {','.join(recorded)}, this run asks for {','.join(goals)}: "
                         "pass --study NAME to start another")


def check_dataset(study: optuna.Study, data: Dataset) -> None:
    """A study holds results of one data set: refuse to resume it on another."""
    recorded = study.user_attrs.get(StudyAttr.DATASET)
    if recorded is None:
        study.set_user_attr(StudyAttr.DATASET, data.name)
        study.set_user_attr(StudyAttr.DATA_CHECKSUM, data.checksum)
    elif recorded != data.name or study.user_attrs.get(StudyAttr.DATA_CHECKSUM) != data.checksum:
        raise InputError(f"study {study.study_name!r} was run on {recorded}, this run loads {data.name} "
                         f"from {data.source}: pass another --study to start a new one")


def save_settings(study: optuna.Study, settings: dict[str, Any]) -> None:
    """What `search worker` needs to join from another machine: space source, data, epochs, budget."""
    study.set_user_attr(StudyAttr.SETTINGS, settings)


def enqueue_baselines(study: optuna.Study, space: Space) -> None:
    """Queue each baseline once: not again if it ran, is queued or is running."""
    present = {t.user_attrs.get(Attr.BASELINE) for t in study.get_trials(deepcopy=False)
               if record.counts_toward_budget(t) or record.will_count(t)}
    for label in space.baselines:
        if label not in present:
            study.enqueue_trial({}, user_attrs={Attr.BASELINE: label})


def remaining(study: optuna.Study, budget: int) -> int:
    """Trials still to start: the budget less the places taken (record.places_taken)."""
    return budget - record.places_taken(study.get_trials(deepcopy=False))


def optimize(study: optuna.Study, objective: Objective, timeout: float | None,
             callbacks: list[Callable[[optuna.Study, FrozenTrial], None]], most: int | None = None
             ) -> lifecycle.Streak:
    """Run trials in this process until the study's budget is met, time or `most` trials run out, or
    this process is asked to stop; returns the failure streak, which says whether it stopped the run.

    Queued trials (baselines, retries) are part of the budget, so they are run here first. Rejected configs
    (over --max-params or --max-latency-ms) take no place, so the process goes on until the places are
    filled, rather than leaving after as many trials as there were places.
    """
    streak = lifecycle.Streak()
    assert objective.budget is not None
    ran: list[int] = []
    started = time.monotonic()
    logging.getLogger("optuna").setLevel(logging.ERROR)  # failures are reported by our callbacks
    while not streak.tripped and not stopping.requested():
        waiting = sum(t.state == TrialState.WAITING for t in study.get_trials(deepcopy=False))
        todo = waiting + (0 if objective.queued_only else remaining(study, objective.budget))
        todo = min(todo, most - len(ran)) if most is not None else todo
        left = None if timeout is None else timeout - (time.monotonic() - started)
        if todo <= 0 or (left is not None and left <= 0):
            break
        before = len(ran)
        study.optimize(objective, n_trials=todo, timeout=left, catch=(TrialFailed,), gc_after_trial=True,
                       callbacks=[streak, stop_when_asked, lambda _, trial: ran.append(trial.number), *callbacks])
        if len(ran) - before < todo:  # stopped: the budget taken, a stop request, a streak, the time
            break
        # All ran, but configs over --max-params or --max-latency-ms took no place in the budget: go on.
    return streak


def restore_space(folder: Path, source: str, location: str) -> Path:
    """The study's space file, as stored on the study, written into its results folder here (a worker on
    another machine has no copy) and validated as `run` validates it."""
    storage.claim_folder(folder, location)
    space_file = folder / "space.py"
    if not space_file.is_file() or space_file.read_text() != source:
        write_atomic(space_file, source.encode())  # several workers of one machine may write it at once
    load_space(space_file)
    return space_file
