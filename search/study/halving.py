"""Successive halving without a free pass for early arrivals: `--pruner halving`, part of the study stage.

Optuna's asynchronous successive halving (ASHA) judges a trial once at each rung, against the trials
that reached that rung before it, and lets it go on while it is in their top 1/reduction. Before
`reduction` trials have reached a rung it cannot do that, so it lets through any trial that is the
best so far: the first searched trials of a study then train to the space's full length with no
rival at all (two of the three 30-epoch trainings of a 50-trial CNN search, a third of its worker
time; docs/design.md). `Halving` keeps Optuna's pruner and adds one rule: a trial let through a rung
before `reduction` trials had reached it is judged again at each of its later epochs, against every
searched trial that has reached the rung since, until that many have; it then goes on only if it is
in their top 1/reduction, like any trial that arrived later, and is not judged at that rung again.

Rivals are searched trials only: a baseline's or a `confirm` training's curve is no rival, and a
trial that another continues (a retry after an interruption, which reports the curve it continues)
counts once. A trial that continues another's curve (a retry after its worker died or after Ctrl-C,
often in another process) is judged again at each rung its earlier part passed that still has fewer
than `reduction` trials; at a rung that has more by then, Optuna's pruner judges it once, after the
first epoch it trains, against all of them.
"""

from __future__ import annotations

import math

import optuna
from optuna.trial import FrozenTrial

from search.study.record import Attr


class Halving(optuna.pruners.BasePruner):
    """ASHA with rungs at steps `first_step` * `reduction`**k, early passes judged again (module doc)."""

    def __init__(self, first_step: int, reduction: int) -> None:
        self.first_step, self.reduction = first_step, reduction
        self.asha = optuna.pruners.SuccessiveHalvingPruner(min_resource=first_step, reduction_factor=reduction)
        self.early: dict[int, set[int]] = {}  # trial number -> rung steps it passed with fewer rivals than reduction
        self.verdicts: dict[int, str] = {}  # trial number -> why it was stopped when judged again at an earlier rung

    def is_rung(self, step: int) -> bool:
        rung = self.first_step
        while rung < step:
            rung *= self.reduction
        return rung == step

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if self.asha.prune(study, trial):
            self.early.pop(trial.number, None)
            return True
        step = trial.last_step
        if step is None:
            return False
        trials = study.get_trials(deepcopy=False)
        early = self.early.get(trial.number)
        if early is None:  # first judged here: a trial continuing another's curve comes with the rungs it passed
            early = self.early[trial.number] = {
                rung for rung in trial.intermediate_values
                if rung < step and self.is_rung(rung) and len(rung_values(trials, rung, trial)) < self.reduction}
        if self.is_rung(step) and len(rung_values(trials, step, trial)) < self.reduction:
            early.add(step)
            return False
        for rung in sorted(early):
            values = rung_values(trials, rung, trial)
            if len(values) < self.reduction:
                continue
            mine = _score(trial.intermediate_values[rung])
            if sum(value > mine for value in values) >= len(values) // self.reduction:
                self.early.pop(trial.number, None)
                self.verdicts[trial.number] = (f"not in the top 1/{self.reduction} of the {len(values)} trials at "
                                               f"epoch {rung + 1}, judged again there once they had reached it")
                return True
            early.discard(rung)  # in the top 1/reduction once its rivals were there: judged like any other
        return False

    def why(self, number: int) -> str | None:
        """Why trial `number` was just pruned, if at a rung it had passed early (None: at the rung it reached,
        by Optuna's pruner)."""
        return self.verdicts.pop(number, None)


def rung_values(trials: list[FrozenTrial], step: int, trial: FrozenTrial) -> list[float]:
    """The values at `step` of `trial` and of every searched trial that has reached it (NaN as the worst)."""
    continued = {int(t.user_attrs[Attr.RETRY_OF]) for t in trials if t.user_attrs.get(Attr.RETRY_OF) is not None}
    rivals = [t for t in trials if t.number != trial.number and step in t.intermediate_values
              and t.number not in continued and t.user_attrs.get(Attr.BASELINE) is None
              and t.user_attrs.get(Attr.CONFIRM_OF) is None]
    return [_score(t.intermediate_values[step]) for t in (*rivals, trial)]


def _score(value: float) -> float:
    return value if math.isfinite(value) else -math.inf
