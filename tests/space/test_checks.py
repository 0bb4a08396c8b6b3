"""Validation as properties: what a space file says is what the study searches and what trials train."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import optuna
import pytest
from hypothesis import given
from hypothesis import strategies as st

from search.errors import SpaceError
from search.space import Choice, Float, Int, Repeat, sample, schema, validate


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


class Picks:
    """A suggester that takes the options `picks` names (the first of the others) and notes the first
    Choice it was not told about."""

    def __init__(self, picks: dict[str, int]) -> None:
        self.picks = picks
        self.params: dict[str, Any] = {}
        self.open: list[tuple[str, int]] = []

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        if name not in self.picks:
            self.open.append((name, len(choices)))
        self.params[name] = choices[self.picks.get(name, 0)]
        return self.params[name]


def every_config(space: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Each config the space can give, with the parameters the study would record for it."""
    todo: list[dict[str, int]] = [{}]
    while todo:
        picks = todo.pop()
        suggester = Picks(picks)
        config = sample(space, suggester)  # type: ignore[arg-type]
        if suggester.open:
            name, count = suggester.open[0]
            todo += [{**picks, name: index} for index in range(count)]
        else:
            yield config, suggester.params


def said(node: dict[str, Any], params: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """What the space file and the recorded parameters say each key of the config is, place by place."""
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, Choice):
            yield key, params[name]
            if value.branches:
                yield from said(value.option(params[name]), params, f"{name}.{params[name]}.")
        else:
            yield key, value


VALUES = {"activation": schema.ACTIVATIONS[:3], "optimizer": schema.OPTIMIZERS, "schedule": schema.SCHEDULES,
          "augment": schema.AUGMENTS[:3]}


@st.composite
def levels(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    """One level of a space: constants, Choices of constants and Choices of branches (themselves levels)."""
    level: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(sorted(VALUES)), max_size=3, unique=True)):
        kind = draw(st.sampled_from(("constant", "choice", "branches")[:3 if depth < 2 else 2]))
        options = draw(st.lists(st.sampled_from(VALUES[key]), min_size=1, max_size=2, unique=True))
        if kind == "constant":
            level[key] = options[0]
        elif kind == "choice":
            level[key] = Choice(options)
        else:
            level[key] = Choice({label: draw(levels(depth + 1)) for label in options})
    return level


@pytest.mark.fast
@given(level=levels())
def test_a_space_is_refused_exactly_when_a_config_takes_a_key_from_two_places(level: dict[str, Any]) -> None:
    space = {"model": "mlp", **level}
    twice = set()
    for config, params in every_config(space):
        places = list(said(space, params))
        keys = [key for key, _ in places]
        twice |= {key for key in keys if keys.count(key) > 1}
        if not twice:  # then the config trains exactly what the space and the study say
            assert all(config[key] == value for key, value in places)
    if twice:
        with pytest.raises(SpaceError) as refused:
            validate(space, "s.py")
        text = str(refused.value)
        assert "\n" not in text and text.startswith("s.py: ")
        key = text.split(" is also set at ")[0].rsplit(": ", 1)[1]
        where, other = text.split(": ")[1], text.split(" is also set at ")[1].split(",")[0]
        assert key in twice and where.endswith(key) and other.endswith(key) and where != other
    else:
        validate(space, "s.py")


@pytest.mark.fast
def test_an_ambiguous_key_is_named_with_both_places() -> None:
    outer = {"model": "mlp", "activation": Choice(["relu"]),
             "optimizer": Choice({"adam": {"activation": "gelu"}, "sgd": {}})}
    with pytest.raises(SpaceError, match=r"^s.py: optimizer.adam.activation: activation is also set at activation, "):
        validate(outer, "s.py")
    siblings = {"model": "mlp", "optimizer": Choice({"adam": {"learning_rate": 1e-3}}),
                "schedule": Choice({"cosine": {"learning_rate": 1e-2}})}
    with pytest.raises(SpaceError, match="schedule.cosine.learning_rate: learning_rate is also set at "
                                         "optimizer.adam.learning_rate"):
        validate(siblings, "s.py")
    in_a_block = {"model": "cnn", "conv_blocks": Repeat(2, {"filters": 8, "pool_size": 2,
                                                            "pooling": Choice({"max": {"pool_size": 3}})})}
    with pytest.raises(SpaceError, match="conv_blocks.0.pooling.max.pool_size: pool_size is also set at "
                                         "conv_blocks.0.pool_size"):
        validate(in_a_block, "s.py")
    # Branches of one Choice exclude each other: each may set the same key.
    validate({"model": "mlp", "optimizer": Choice({"adam": {"learning_rate": 1e-3}, "sgd": {"learning_rate": 0.1}})})


SIZES = st.one_of(st.integers(1, 6), st.builds(lambda low, width: Int(low, low + width), st.integers(1, 5),
                                               st.integers(0, 2)),
                  st.lists(st.integers(1, 6), min_size=1, max_size=3, unique=True).map(Choice))
BLOCKS = st.fixed_dictionaries({
    "filters": st.just(4),
    "pooling": st.one_of(st.sampled_from(schema.POOLINGS),
                         st.lists(st.sampled_from(schema.POOLINGS), min_size=1, max_size=2, unique=True).map(Choice)),
    "pool_size": SIZES, "pool_stride": SIZES})
CONV_BLOCKS = st.one_of(
    st.builds(lambda low, width, block: Repeat(Int(low, low + width), block), st.integers(0, 6), st.integers(0, 2),
              BLOCKS),
    st.builds(Repeat, st.integers(0, 7), BLOCKS),
    st.lists(BLOCKS, max_size=7))


def every_value(value: Any) -> list[Any]:
    if isinstance(value, Int):
        return list(range(value.low, value.high + 1))
    return value.labels() if isinstance(value, Choice) else [value]


def some_config_builds(blocks: Repeat | list[dict[str, Any]]) -> bool:
    """Whether some config of a cnn with these conv blocks fits the image: every map size each count of
    blocks can leave, block by block, over every value each block can take."""
    if isinstance(blocks, Repeat):
        counts, block_at = every_value(blocks.count), (lambda index: blocks.block)
    else:
        counts, block_at = [len(blocks)], blocks.__getitem__
    sizes, reachable = {schema.IMAGE_SIZE}, {0: {schema.IMAGE_SIZE}}
    for index in range(max(counts)):
        block = block_at(index)
        sizes = {size if pooling == "none" else (size - window) // stride + 1
                 for size in sizes for pooling in every_value(block["pooling"])
                 for window in every_value(block["pool_size"]) for stride in every_value(block["pool_stride"])
                 if pooling == "none" or size >= window}
        reachable[index + 1] = sizes
    return any(count >= 1 and reachable[count] for count in counts)


@pytest.mark.fast
@given(blocks=CONV_BLOCKS)
def test_a_cnn_space_is_refused_exactly_when_none_of_its_configs_fits_the_image(blocks: Any) -> None:
    space = {"model": "cnn", "conv_blocks": blocks}
    if some_config_builds(blocks):
        validate(space, "s.py")
    else:
        with pytest.raises(SpaceError) as refused:
            validate(space, "s.py")
        assert str(refused.value).startswith("s.py: conv_blocks: no config can be built: ")
        assert "\n" not in str(refused.value)


@pytest.mark.fast
@pytest.mark.parametrize(("space", "message"), [
    ({"model": "cnn", "conv_blocks": [{"filters": 4}] * 6},
     "conv_blocks: no config can be built: block 4's pooling shrinks the 28x28 image below 1x1 (6 poolings; a 1x1 "
     "map cannot take a 2x2 window), whatever is drawn"),
    ({"model": "cnn"}, "model: no config can be built: a cnn needs at least one conv block"),
    ({"model": "softmax", "layers": Repeat(Int(1, 2), {"units": 8})},
     "layers: no config can be built: softmax regression has no hidden layers"),
    ({"model": Choice(["mlp", "softmax"]), "conv_blocks": [{"filters": 4}]},
     "conv_blocks: no config can be built: only a cnn has conv blocks, not a softmax"),
    ({"model": Choice({"cnn": {"conv_blocks": Repeat(Int(5, 6), {"filters": 4})}, "mlp": {}})},
     "model.cnn.conv_blocks: no config can be built when model is cnn: block 4's pooling"),
    ({"model": "cnn", "conv_blocks": Repeat(5, {"filters": 4, "pooling": Choice({"max": {"pool_size": 3}})})},
     "conv_blocks: no config can be built: block 3's pooling"),
])
def test_a_space_that_no_config_of_builds_is_refused_naming_where(space: dict[str, Any], message: str) -> None:
    with pytest.raises(SpaceError) as refused:
        validate(space, "s.py")
    assert str(refused.value).startswith(f"s.py: {message}"), str(refused.value)


@pytest.mark.fast
def test_a_space_some_configs_of_which_build_is_accepted() -> None:
    validate({"model": Choice(["mlp", "cnn"]), "conv_blocks": [{"filters": 4}]})  # the cnn builds
    validate({"model": "cnn", "conv_blocks": Repeat(Int(0, 9), {"filters": 4})})  # 1 to 4 blocks do
    validate({"model": "cnn", "conv_blocks": Repeat(9, {"filters": 4, "pooling": Choice(["max", "none"])})})
