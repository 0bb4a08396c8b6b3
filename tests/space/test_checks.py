"""Validation as properties: what a space file says is what the study searches and what trials train."""

from __future__ import annotations

import warnings

import optuna
import pytest
from hypothesis import given
from hypothesis import strategies as st

from search.errors import SpaceError
from search.space import Float, Int, validate


def optuna_keeps(dimension: Int | Float) -> bool:
    """Whether Optuna searches `dimension`'s range as written (it lowers `high`, with only a warning,
    when the range is not a whole number of steps)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if isinstance(dimension, Int):
            distribution: optuna.distributions.BaseDistribution = optuna.distributions.IntDistribution(
                dimension.low, dimension.high, step=dimension.step)
        else:
            distribution = optuna.distributions.FloatDistribution(dimension.low, dimension.high, step=dimension.step)
    return distribution.high == dimension.high  # type: ignore[attr-defined]


INTS = st.builds(lambda low, width, step: Int(low, low + width, step=step),
                 st.integers(1, 100), st.integers(0, 100), st.integers(1, 120))
FLOATS = st.builds(lambda low, high, step: Float(min(low, high), max(low, high), step=step),
                   st.sampled_from([0.001, 0.01, 0.1, 0.25, 0.3, 1.0, 1.5]), st.floats(0.001, 10.0),
                   st.one_of(st.sampled_from([0.001, 0.05, 0.1, 0.2, 0.5, 1.0]), st.floats(0.001, 20.0)))


@pytest.mark.fast
@given(dimension=st.one_of(INTS, FLOATS))
def test_a_stepped_range_is_refused_exactly_when_optuna_would_search_another(dimension: Int | Float) -> None:
    key = "batch_size" if isinstance(dimension, Int) else "learning_rate"
    space = {"model": "mlp", key: dimension}
    if optuna_keeps(dimension):
        validate(space, "s.py")
        trial = optuna.create_study().ask()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # Optuna says nothing either
            getattr(trial, f"suggest_{'int' if isinstance(dimension, Int) else 'float'}")(
                key, dimension.low, dimension.high, step=dimension.step)
    else:
        with pytest.raises(SpaceError) as refused:
            validate(space, "s.py")
        assert str(refused.value).startswith(f"s.py: {key}: {dimension!r}: ") and "\n" not in str(refused.value)
        assert "not a whole number of steps" in str(refused.value)


@pytest.mark.fast
@pytest.mark.parametrize(("dimension", "searched"), [
    (Int(1, 4, step=10), "Optuna would search only 1; make high 1 or 11"),
    (Float(0.1, 0.2, step=0.5), "Optuna would search only 0.1; make high 0.1 or 0.6"),
    (Int(16, 40, step=7), "Optuna would search 16..37; make high 37 or 44"),
])
def test_a_step_that_does_not_fit_says_what_optuna_would_search(dimension: Int | Float, searched: str) -> None:
    key = "batch_size" if isinstance(dimension, Int) else "learning_rate"
    with pytest.raises(SpaceError, match=searched):
        validate({"model": "mlp", key: dimension}, "s.py")


@pytest.mark.fast
@pytest.mark.parametrize("step", ["0.1", float("nan"), float("inf"), True])
def test_a_float_step_must_be_a_finite_number(step: object) -> None:
    with pytest.raises(SpaceError, match="step must be a finite number"):
        validate({"model": "mlp", "dropout": Float(0.0, 0.5, step=step)}, "s.py")  # type: ignore[arg-type]
