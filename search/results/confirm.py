"""Confirming a search's winner: the stage between the search and the export.

A search ranks its trials by one training each, and on 10,000 test images an accuracy near 98.5%
has a standard error of about 0.12 points: the first rows of a leaderboard are often noise.
`queue` takes the K best completed trials by validation accuracy (the best baseline always among
them) and queues S trainings of each configuration, each with a fresh seed recorded on the trial,
into the same study; the workers run them like any queued trial, so a confirmation resumes after
Ctrl-C, runs on several workers, and adds exactly its trainings however often it is started. A
baseline's own run in the search is one of its S: it was trained as written with its own recorded
seed, and chosen by nothing but being the best of the tutorials (a choice that can only favour the
baseline), whereas a searched trial's run is left out, since it was chosen for being lucky. Every
training of the tutorial that other studies (or `search baselines`) stored as written on the same kind
of machine in the results folder's reference store (study/references.py) is borrowed, more than S when
the store holds more (a tutorial measured on more seeds is known more precisely, at no cost now), and
only what S still lacks is trained.
`summary` reads them back: mean and standard deviation of validation and test accuracy per
configuration, the confirmed winner (best mean validation accuracy), and whether it beats the best
baseline by more than the noise (Welch's t-test and confidence interval on the test accuracies).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.errors import InputError
from search.study import artifacts, record, references
from search.study.record import Attr, Record, StudyAttr

TOP, SEEDS = 2, 3  # confirm's defaults: the best configuration and the best baseline, 3 seeds each
SEED_STRIDE = 1_000_000  # confirm seeds: base + STRIDE * (replica + 1) + trial, apart from search seeds (base + N)
LEVEL = 0.95  # of the confidence interval


@dataclass(frozen=True)
class Candidate:
    """One configuration and its confirm trainings."""

    trial: Record  # the search trial whose config it is
    runs: list[Record]  # its finished trainings (complete ones hold both accuracies): a baseline's own among them

    @property
    def val(self) -> list[float]:
        return [run.val_accuracy for run in self.runs if run.state == "complete"]

    @property
    def test(self) -> list[float]:
        return [run.test_accuracy for run in self.runs if run.state == "complete"]

    @property
    def name(self) -> str:
        return f"trial {self.trial.number}" + (f" [{self.trial.baseline}]" if self.trial.baseline else "")


@dataclass(frozen=True)
class Confirmation:
    """What `confirm` found: its candidates, best mean validation accuracy first."""

    candidates: list[Candidate]
    seeds: int

    @property
    def winner(self) -> Candidate:
        return self.candidates[0]

    @property
    def baseline(self) -> Candidate | None:
        """The best baseline among the candidates (by mean validation accuracy)."""
        return next((c for c in self.candidates if c.trial.baseline), None)

    @property
    def complete(self) -> bool:
        return all(len(c.runs) >= self.seeds for c in self.candidates)


def candidates(study: optuna.Study, top: int) -> list[Record]:
    """The `top` best completed search trials by validation accuracy, the best baseline among them
    (in the last place if it would not be)."""
    rows = [record.read(t) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if not record.is_confirmation(t)]
    if not rows:
        raise InputError(f"study {study.study_name!r} has no completed trial to confirm: run the search first")
    ranked = sorted(rows, key=record.by_validation)
    chosen = ranked[:top]
    baseline = next((row for row in ranked if row.baseline), None)
    if baseline is not None and baseline not in chosen:
        chosen[-1] = baseline
    return chosen


def queue(study: optuna.Study, top: int, seeds: int, results: Path | None = None) -> tuple[int, int]:
    """Queue what is missing of `seeds` trainings of each of the `top` chosen configurations; returns
    (queued now, in all). The choice, and what is borrowed from the reference store in `results`, is
    made once and recorded on the study, so a later call (after Ctrl-C, or by another machine)
    completes the same trainings, never more."""
    for value, flag in ((top, "--top"), (seeds, "--seeds")):
        if value <= 0:
            raise InputError(f"{flag} {value}: must be > 0")
    plan = study.user_attrs.get(StudyAttr.CONFIRMED)
    if plan is not None and (plan["top"], plan["seeds"]) != (top, seeds):
        raise InputError(f"study {study.study_name!r} is confirmed with --top {plan['top']} --seeds {plan['seeds']}: "
                         "run confirm with those, or start a new study")
    if plan is None:
        chosen = [row.number for row in candidates(study, top)]
        borrowed = {str(number): found for number in chosen
                    if (found := references.borrowable(study, number, results))}
        plan = {"top": top, "seeds": seeds, "trials": chosen, "borrowed": borrowed}
        study.set_user_attr(StudyAttr.CONFIRMED, plan)
    chosen = plan["trials"]
    base = int(study.user_attrs[StudyAttr.SEED])
    present = {(t.user_attrs[Attr.CONFIRM_OF], t.user_attrs[Attr.REPLICA]) for t in study.get_trials(deepcopy=False)
               if record.is_confirmation(t) and (record.ended_on_its_own(t) or t.state in (TrialState.WAITING,
                                                                                TrialState.RUNNING))}
    queued = 0
    for number in chosen:
        for replica in range(covered(study, plan, number), seeds):
            if (number, replica) not in present:
                study.enqueue_trial({}, user_attrs={Attr.CONFIRM_OF: number, Attr.REPLICA: replica,
                                                    Attr.SEED: base + SEED_STRIDE * (replica + 1) + number})
                queued += 1
    return queued, sum(max(0, seeds - covered(study, plan, number)) for number in chosen)


def reused(study: optuna.Study) -> str:
    """What a confirmation takes without training, in words ("" if nothing)."""
    plan = study.user_attrs.get(StudyAttr.CONFIRMED) or {}
    own = sum(own_runs(study, number) for number in plan.get("trials", []))
    lent = sum(map(len, plan.get("borrowed", {}).values()))
    parts = ([f"{own} baseline's own run in the search"] if own else []) + (
        [f"{lent} borrowed from the reference store"] if lent else [])
    return " and ".join(parts)


def own_runs(study: optuna.Study, number: int) -> int:
    """1 if trial `number` is a baseline (its own run is the first of its seeds), else 0."""
    return int(bool(study.get_trials(deepcopy=False)[number].user_attrs.get(Attr.BASELINE)))


def covered(study: optuna.Study, plan: dict, number: int) -> int:
    """How many of trial `number`'s seeds need no training: a baseline's own run and what it borrowed."""
    return own_runs(study, number) + len(plan.get("borrowed", {}).get(str(number), []))


def _borrowed_record(run: dict) -> Record:
    """A stored training of a tutorial (study/references.py) as the record of a finished run."""
    return Record(number=int(run["trial"]), state="complete", val_accuracy=float(run["val"]),
                  test_accuracy=float(run["test"]), n_params=None, epochs=None, train_seconds=run["seconds"],
                  baseline=str(run["tutorial"]), config={}, seed=run["seed"],
                  reason=f"borrowed from study {run['study']}, trial {run['trial']}")


def standing(study: optuna.Study, workers: int, results: Path | None = None) -> str | None:
    """Where a search that has not been confirmed stands, in one line: the trial selected by validation
    against the best baseline (one training each, so no verdict yet), and the command that gives one
    with an estimate of its time from the two trials' own training times, less what the reference
    store in `results` lends. None once confirm has run, or without a baseline or a searched trial."""
    if summary(study) is not None:
        return None
    try:
        chosen = candidates(study, TOP)
    except InputError:
        return None
    pick, baseline = chosen[0], next((row for row in chosen if row.baseline), None)
    if baseline is None or pick.baseline:
        return None
    again = max(0, SEEDS - 1 - len(references.borrowable(study, baseline.number, results)))
    durations = [pick.train_seconds or 0.0] * SEEDS + [baseline.train_seconds or 0.0] * again
    count = workers_for(len(durations), workers)
    seconds = makespan(durations, count, workers)
    return (f"where it stands: trial {pick.number} tests {_pct(pick.test_accuracy)} against {baseline.baseline}'s "
            f"{_pct(baseline.test_accuracy)}, one training each, which cannot tell a difference from noise; "
            f"`python -m search confirm {study.study_name}` trains it {SEEDS} more times and the baseline "
            f"{again} (about {max(1, round(seconds / 60))} min on {count} workers) and says")


def workers_for(trainings: int, cores: int) -> int:
    """Local workers for `trainings` trainings where `cores` one-thread workers is the usual count: one
    per training when there are fewer (each then gets more threads), or when the cores do not divide
    them and there are at most twice as many: 3 trainings on 2 cores then share both cores from the
    start and end together after 1.5 trainings' time, where 2 workers take two rounds, the second with
    a core idle. Otherwise the usual count."""
    if trainings < cores or (trainings % cores and trainings <= 2 * cores):
        return max(1, trainings)
    return cores


def makespan(durations: list[float], workers: int, cores: int | None = None) -> float:
    """How long `workers` take over trainings of these durations, the longest first, each started on the
    worker that is free first: 3 trainings on 2 workers take two rounds, not one and a half. More
    workers than `cores` (None: as many) share the cores, so all of them together take at least their
    sum over the cores: 3 trainings on 3 workers and 2 cores, 1.5 trainings' time."""
    cores = cores or workers
    if workers > cores:
        return max(sum(durations) / cores, max(durations, default=0.0))
    ends = [0.0] * max(1, workers)
    for seconds in sorted(durations, reverse=True):
        ends[ends.index(min(ends))] += seconds
    return max(ends)


def summary(study: optuna.Study) -> Confirmation | None:
    """The study's confirmation as far as it has run, or None if `confirm` was never run on it."""
    plan = study.user_attrs.get(StudyAttr.CONFIRMED)
    if plan is None:
        return None
    trials = study.get_trials(deepcopy=False)
    borrowed = plan.get("borrowed", {})
    runs: dict[int, list[Record]] = {
        number: ([record.read(trials[number])] if own_runs(study, number) else [])
        + [_borrowed_record(run) for run in borrowed.get(str(number), [])] for number in plan["trials"]}
    for trial in trials:
        if record.is_confirmation(trial) and record.ended_on_its_own(trial):
            runs[int(trial.user_attrs[Attr.CONFIRM_OF])].append(record.read(trial))
    candidates = [Candidate(record.read(trials[number]), found) for number, found in runs.items()]
    candidates.sort(key=lambda c: (-_mean(c.val), record.by_validation(c.trial)))
    return Confirmation(candidates, int(plan["seeds"]))


def verdict(confirmation: Confirmation) -> str:
    """In words: does the confirmed winner beat the best baseline by more than the noise?"""
    winner, baseline = confirmation.winner, confirmation.baseline
    if baseline is None:
        return "No baseline was confirmed, so there is nothing to compare the winner with."
    if winner is baseline:
        return (f"The confirmed winner is the best baseline itself ({baseline.trial.baseline}): by validation, the "
                "search found nothing better.")
    a, b = winner.test, baseline.test
    diff = 100 * (_mean(a) - _mean(b))
    head = (f"The winner ({winner.name}) tests {abs(diff):.2f} points {'above' if diff >= 0 else 'below'} "
            f"{baseline.trial.baseline} on average ({_pct(_mean(a))} against {_pct(_mean(b))}, {len(a)} and "
            f"{len(b)} seeds)")
    if len(a) < 2 or len(b) < 2:
        return head + ": with fewer than 2 seeds each there is no spread to judge the difference by."
    low, high, p = welch(a, b)
    beats = low > 0
    return (f"{head}; the {LEVEL:.0%} confidence interval of the difference is [{100 * low:+.2f}, "
            f"{100 * high:+.2f}] points (Welch's t-test, p = {p:.2g}), so "
            + ("the winner beats the baseline by more than the noise." if beats else
               "the difference is not more than the noise: the winner does not beat the baseline."))


def welch(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Welch's confidence interval (at LEVEL) of mean(a) - mean(b), and the two-sided p-value of
    Welch's t-test, with the Welch-Satterthwaite degrees of freedom. Equal samples without spread
    give a zero-width interval and p = 1 (or 0 when the means differ)."""
    from scipy import stats

    diff = statistics.fmean(a) - statistics.fmean(b)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        return diff, diff, 1.0 if diff == 0 else 0.0
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, df)) * math.sqrt(va + vb)
    p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return diff - half, diff + half, p


def spread(values: list[float]) -> str:
    """`98.61% ± 0.05` (mean ± sample standard deviation, in points)."""
    if not values:
        return "-"
    deviation = statistics.stdev(values) if len(values) > 1 else math.nan
    return f"{_pct(_mean(values))} ± {100 * deviation:.2f}" if math.isfinite(deviation) else _pct(_mean(values))


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def _pct(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{100 * value:.2f}%"


def study_model(study_dir: Path, study: optuna.Study | None) -> tuple[int, str, str]:
    """The model a study stands for when no trial is named (what `export` writes and the report shows):
    its trial, a short name for it, and why it was chosen. The confirmed winner, else the study's trial
    with the best validation accuracy (whichever machine ran it; without the study, the best kept here),
    never by test accuracy, which is measured only to be reported."""
    found = summary(study) if study is not None else None
    if found is not None and found.winner.runs:
        winner = found.winner
        return winner.trial.number, "the confirmed winner", (
            f"the confirmed winner: best mean validation accuracy over {len(winner.runs)} seeds (val "
            f"{spread(winner.val)}, test {spread(winner.test)}) of {len(found.candidates)} "
            f"configurations. {verdict(found)}")
    best = record.selected(map(record.read, study.get_trials(deepcopy=False))) if study is not None else None
    number = best.number if best is not None else int(artifacts.kept_or_refuse(study_dir)[0]["trial"])
    return (number, "the trial best by validation",
            "the trial with the best validation accuracy (no confirmation was run)")


def ran_elsewhere(study: optuna.Study | None, number: int) -> str:
    """Where a trial whose weights are not in this results folder ran, said for an error message."""
    host = study.get_trials(deepcopy=False)[number].user_attrs.get(Attr.HOST) if study is not None else None
    return f": it ran on {host}, whose results folder keeps its weights" if host and host != record.HOST else ""
