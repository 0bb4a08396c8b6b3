"""Warm starts: configurations queued into a study before any trial its sampler draws.

`run --warm-start STUDY --warm-top K` takes the K best completed searched trials of an earlier study
by validation accuracy (`record.by_validation`; never test accuracy), `run --enqueue FILE.json` the
configurations a person wrote (a JSON list of {parameter: value} objects, under the names `show`
prints). Each is checked against the new space (`space.config_of`): from an earlier study, one the
space cannot express is skipped with one line naming the trial and why; in a file, it is bad input.
`enqueue` then queues the rest after the baselines with Optuna's `enqueue_trial`, each marked on the
trial (`Attr.WARM_START_OF`, `Attr.ENQUEUED`), once however often the run is resumed, and each
taking a place in the `--trials` budget like any other trial.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from search.errors import InputError
from search.space import PointError, Space, config_of
from search.study import record, studies
from search.study.record import Attr

WARM_TOP = 5  # --warm-top's default


@dataclass(frozen=True)
class Queued:
    """One configuration to queue: its parameters (the new space's names) and where it came from."""

    params: dict[str, Any]
    mark: Attr  # WARM_START_OF or ENQUEUED
    source: str  # "study#trial" or "file.json#index"


def best_of(earlier: optuna.Study, space: Space, top: int) -> tuple[list[Queued], list[str]]:
    """The `top` best completed searched trials of `earlier` by validation that `space` can express, best
    first, and one line for each of those it cannot."""
    trials = {t.number: t for t in earlier.get_trials(deepcopy=False)}
    rows = [row for row in map(record.read, trials.values())
            if row.state == "complete" and not row.baseline and row.confirm_of is None]
    queued, skipped = [], []
    for row in sorted(rows, key=record.by_validation)[:top]:
        source = f"{earlier.study_name}#{row.number}"
        # A study whose space changed on resume names its later parameters after it (studies.param_prefix).
        params = {re.sub(r"^s\d+/", "", name): value for name, value in trials[row.number].params.items()}
        try:
            config_of(space.space, params)
        except PointError as err:
            skipped.append(f"warm start: {source} (val {row.val_accuracy:.2%}) skipped: {err}")
            continue
        queued.append(Queued(params, Attr.WARM_START_OF, source))
    return queued, skipped


def from_file(path: str, space: Space) -> list[Queued]:
    """The configurations of a JSON file, each checked against `space`; bad input raises `InputError`."""
    file = Path(path)
    try:
        entries = json.loads(file.read_text())
    except FileNotFoundError:
        raise InputError(f"--enqueue {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"--enqueue {path}: cannot read it ({err})") from None
    except json.JSONDecodeError as err:
        raise InputError(f"--enqueue {path}: not JSON ({err.msg}, line {err.lineno} column {err.colno})") from None
    if not isinstance(entries, list):
        raise InputError(f"--enqueue {path}: expected a JSON list of {{parameter: value}} objects, got "
                         f"{type(entries).__name__}")
    queued = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InputError(f"--enqueue {path}: entry {index}: expected an object of parameter: value, got "
                             f"{type(entry).__name__}")
        try:
            config_of(space.space, entry)
        except PointError as err:
            raise InputError(f"--enqueue {path}: entry {index}: {err}") from None
        queued.append(Queued(entry, Attr.ENQUEUED, f"{file.name}#{index}"))
    return queued


def enqueue(study: optuna.Study, queued: list[Queued], budget: int) -> list[str]:
    """Queue what is not yet queued, running or run, as far as the budget has room; lines to print."""
    present = {(mark, t.user_attrs.get(mark)) for t in study.get_trials(deepcopy=False)
               if record.counts_toward_budget(t) or record.will_count(t) for mark in (Attr.WARM_START_OF,
                                                                                     Attr.ENQUEUED)}
    new = [item for item in queued if (item.mark, item.source) not in present]
    room = max(0, studies.remaining(study, budget))
    prefix = studies.param_prefix(study)
    for item in new[:room]:
        study.enqueue_trial({prefix + name: value for name, value in item.params.items()},
                            user_attrs={item.mark: item.source}, skip_if_exists=False)
    lines = [f"queued {', '.join(item.source for item in new[:room])} before any sampled trial"] if new[:room] else []
    if len(new) > room:
        lines.append(f"not queued: {', '.join(item.source for item in new[room:])}: the budget of {budget} trials "
                     "has no room left for them (raise --trials)")
    return lines
