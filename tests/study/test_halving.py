"""Successive halving without a free pass: a trial ASHA let through a rung before it had rivals there
is judged again once it has them. Trials here are real Optuna trials reporting curves, not trainings:
the pruner sees nothing else."""

from __future__ import annotations

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search.study.halving import Halving
from search.study.record import Attr
from search.study.studies import make_pruner

pytestmark = pytest.mark.fast  # starts no TensorFlow, no worker, no server

REDUCTION = 4  # rungs at steps 1, 4, 16 (after epochs 2, 5, 17)


def study_with(pruner: optuna.pruners.BasePruner) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction="maximize", pruner=pruner)


def arrive(study: optuna.Study, value: float, **attrs: object) -> bool:
    """A trial that reports `value` after epochs 1 and 2 (the first rung) and ends there; whether it
    was pruned at the rung."""
    trial = study.ask()
    for key, attr in attrs.items():
        trial.set_user_attr(key, attr)
    trial.report(value, 0)
    trial.report(value, 1)
    pruned = trial.should_prune()
    study.tell(trial, state=optuna.trial.TrialState.PRUNED if pruned else optuna.trial.TrialState.COMPLETE,
               values=None if pruned else value)
    return pruned


def first_trial_alongside(pruner: optuna.pruners.BasePruner, first: float, others: list[float]) -> int | None:
    """The first searched trial passes the rungs after epochs 2 and 5 with no rival, then trains on
    (steps 5 to 15, short of the next rung) while `others` reach the first rung one by one, reporting
    an epoch after each: how many had arrived when it was pruned, or None."""
    study = study_with(pruner)
    trial = study.ask()
    for step in range(5):
        trial.report(first, step)
        assert not trial.should_prune()  # alone at each rung: ASHA lets the best so far through
    for arrived, value in enumerate(others, start=1):
        arrive(study, value)
        trial.report(first, 4 + arrived)
        if trial.should_prune():
            return arrived
    return None


def test_asha_alone_gives_the_first_trial_a_free_pass_and_halving_takes_it_back() -> None:
    others = [0.9, 0.95, 0.97]  # three better trials reach the first rung after it
    assert first_trial_alongside(optuna.pruners.SuccessiveHalvingPruner(1, REDUCTION), 0.5, others) is None
    assert first_trial_alongside(Halving(1, REDUCTION), 0.5, others) == 3  # judged once 4 have reached the rung


def test_the_pruner_of_a_halving_space_is_this_one() -> None:
    assert isinstance(make_pruner("halving"), Halving)


@settings(max_examples=200, deadline=None)
@given(first=st.floats(0.0, 1.0), others=st.lists(st.floats(0.0, 1.0), min_size=0, max_size=11))
def test_an_early_pass_stands_only_if_in_the_top_quarter_once_four_have_reached_the_rung(first: float,
                                                                                        others: list[float]) -> None:
    # Only the first rung has rivals. The other trials are judged by ASHA as they arrive (the early ones
    # among them pass early too); only the first trial trains on.
    pruned_at = first_trial_alongside(Halving(1, REDUCTION), first, others)
    assert pruned_at == (3 if len(others) >= 3 and max(others[:3]) > first else None)


def test_once_it_stood_among_four_it_is_not_judged_again_at_that_rung() -> None:
    # In the top quarter of the first 4, it goes on however many better trials arrive later, as any trial
    # that ASHA lets through with rivals does.
    assert first_trial_alongside(Halving(1, REDUCTION), 0.9, [0.5, 0.6, 0.7, 0.95, 0.96, 0.97, 0.98]) is None


def test_baselines_and_confirm_trainings_are_no_rivals_and_a_continued_trial_counts_once() -> None:
    study = study_with(Halving(1, REDUCTION))
    trial = study.ask()
    trial.report(0.5, 0)
    trial.report(0.5, 1)
    assert not trial.should_prune()
    arrive(study, 0.99, **{Attr.BASELINE: "S4"})
    arrive(study, 0.99, **{Attr.CONFIRM_OF: 0})
    interrupted = study.ask()
    interrupted.report(0.99, 1)
    study.tell(interrupted, state=optuna.trial.TrialState.FAIL)
    arrive(study, 0.99, **{Attr.RETRY_OF: interrupted.number})  # the same curve, continued: one rival
    trial.report(0.5, 2)
    assert not trial.should_prune()  # one rival so far
    arrive(study, 0.99)
    arrive(study, 0.99)
    trial.report(0.5, 3)
    assert trial.should_prune()  # three rivals now, all better


@pytest.mark.parametrize(("step", "rung"), [(1, True), (2, False), (4, True), (15, False), (16, True), (64, True)])
def test_rungs_are_at_the_first_step_times_powers_of_the_reduction(step: int, rung: bool) -> None:
    assert Halving(1, REDUCTION).is_rung(step) is rung



def continued_alongside(pruner: optuna.pruners.BasePruner, others: list[float]) -> int | None:
    """Process one trains the first trial through the rungs after epochs 2 and 5, alone, and is stopped;
    process two, with `pruner`, continues its curve in a retry, trains an epoch, then goes on while
    `others` reach the first rung one by one: how many had arrived when the retry was pruned, or None."""
    storage = optuna.storages.InMemoryStorage()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    one = optuna.create_study(direction="maximize", storage=storage, pruner=Halving(1, REDUCTION))
    first = one.ask()
    for step in range(6):
        first.report(0.5, step)
        assert not first.should_prune()
    one.tell(first, state=optuna.trial.TrialState.FAIL)
    two = optuna.load_study(study_name=one.study_name, storage=storage, pruner=pruner)
    retry = two.ask()
    retry.set_user_attr(Attr.RETRY_OF, first.number)
    for step in range(6):  # the curve it continues, reported before it trains on (not judged)
        retry.report(0.5, step)
    retry.report(0.5, 6)
    assert not retry.should_prune()  # still alone at the rungs it reached: ASHA lets it through again
    for arrived, value in enumerate(others, start=1):
        arrive(two, value)
        retry.report(0.5, 6 + arrived)
        if retry.should_prune():
            return arrived
    return None


def test_a_trial_continued_in_another_process_is_judged_again_at_a_rung_its_earlier_part_passed_alone() -> None:
    assert continued_alongside(optuna.pruners.SuccessiveHalvingPruner(1, REDUCTION), [0.9, 0.9, 0.9]) is None
    assert continued_alongside(Halving(1, REDUCTION), [0.9, 0.9, 0.9]) == 3
    assert continued_alongside(Halving(1, REDUCTION), [0.4, 0.4, 0.4, 0.9]) is None  # top quarter of the first 4
