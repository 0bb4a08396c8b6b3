"""Whether a space can give a config that builds: every combination of its branches is judged, however
many there are, or the space is refused saying why (the cases of one combination are in test_checks.py)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from search.errors import SpaceError
from search.space import Choice, Int, Repeat, schema, validate
from search.space.builds import _READS, MAX_COMBINATIONS, _combinations, check_buildable

TOO_DEEP = [{"filters": 4}] * 6  # six 2x2 poolings: 28 -> 14 -> 7 -> 3 -> 1, and the fifth has no room


def branches(labels: tuple[str, ...], last: dict[str, Any] | None = None) -> Choice:
    """A Choice of sub-spaces that set nothing the build reads, but the last one, which sets `last`."""
    return Choice({label: (last if last is not None and label == labels[-1] else {}) for label in labels})


@pytest.mark.fast
def test_an_unbuildable_combination_far_past_the_first_thousands_is_refused() -> None:
    # activation is the first Choice of sub-spaces, so its last branch ("linear") is taken only after
    # every combination of the others under the seven before it: the 20,161st of 23,040.
    space = {
        "model": Choice(["mlp", "cnn"]),
        "activation": branches(schema.ACTIVATIONS, {"conv_blocks": TOO_DEEP}),
        "conv_activation": branches(schema.ACTIVATIONS),
        "init": branches(schema.INITS),
        "input_scaling": branches(schema.SCALINGS),
        "optimizer": branches(schema.OPTIMIZERS),
        "schedule": branches(schema.SCHEDULES),
        "augment": branches(schema.AUGMENTS),
    }
    combinations = math.prod(len(choice.labels()) for key, choice in space.items() if key != "model")
    first_linear = (len(schema.ACTIVATIONS) - 1) * combinations // len(schema.ACTIVATIONS) + 1
    assert first_linear > MAX_COMBINATIONS
    with pytest.raises(SpaceError) as refused:
        validate(space, "s.py")
    assert str(refused.value).startswith("s.py: activation.linear.conv_blocks: no config can be built when "
                                         "activation is linear: block 4's pooling"), str(refused.value)


@pytest.mark.fast
def test_a_million_combinations_of_branches_are_judged_as_the_two_they_build() -> None:
    # Twenty Choices of two branches (check_buildable reads no other key, so any name does); the first
    # one's second branch, taken from the 524,289th combination on, is the only one that cannot build.
    space: dict[str, Any] = {"model": "cnn",
                             "choice0": Choice({"a": {"conv_blocks": [{"filters": 4}]}, "b": {"conv_blocks": TOO_DEEP}})}
    space.update({f"choice{index}": Choice({"a": {}, "b": {}}) for index in range(1, 20)})
    assert len(_combinations(space, _READS, "s.py")) == 2  # judging them one by one would take minutes
    with pytest.raises(SpaceError, match=r"^s\.py: choice0\.b\.conv_blocks: no config can be built when choice0 is b"):
        check_buildable(space, "s.py")


@pytest.mark.fast
def test_a_space_with_more_distinct_combinations_than_can_be_judged_is_refused_naming_the_choice() -> None:
    # 65 places of conv_blocks times 65 of layers: 4,225 combinations that differ in what they build.
    labels = [f"b{index}" for index in range(65)]
    space = {
        "model": Choice(["mlp", "cnn"]),
        "blocks": Choice({label: {"conv_blocks": [{"filters": 4}]} for label in labels}),
        "widths": Choice({label: {"layers": [{"units": 8}]} for label in labels}),
    }
    with pytest.raises(SpaceError) as refused:
        check_buildable(space, "s.py")
    text = str(refused.value)
    assert "\n" not in text and text.startswith(f"s.py: widths: with the branches before it, more than "
                                                f"{MAX_COMBINATIONS:,} combinations of branches set conv_blocks, "
                                                f"layers, model differently: expected at most {MAX_COMBINATIONS:,}")
    del space["widths"]
    check_buildable(space, "s.py")  # 65 alone are judged


@pytest.mark.fast
def test_branches_that_set_the_same_things_are_judged_once_and_a_buildable_space_passes() -> None:
    # 8 x 8 x 5 x 2 x 3 x 3 x 4 x 3 = 69,120 combinations of branches, every one of which builds.
    space = {
        "model": Choice({"mlp": {}, "cnn": {"conv_blocks": [{"filters": 4}] * 3}, "softmax": {}}),
        "activation": branches(schema.ACTIVATIONS),
        "conv_activation": branches(schema.ACTIVATIONS),
        "init": branches(schema.INITS),
        "input_scaling": branches(schema.SCALINGS),
        "optimizer": Choice({"adam": {"learning_rate": 1e-3}, "sgd": {"learning_rate": 0.1}, "rmsprop": {}}),
        "schedule": branches(schema.SCHEDULES),
        "augment": branches(schema.AUGMENTS),
    }
    assert len(_combinations(space, _READS, "s.py")) == 3  # one for each model: the other branches set nothing it reads
    validate(space, "s.py")


# Random spaces of branches within branches, each level perhaps setting conv_blocks or layers. Each
# depth has Choices of its own keys, as a key set again inside its own branch would be ambiguous.
SETS = st.sampled_from([{}, {}, {}, {}, {}, {"conv_blocks": [{"filters": 4}]}, {"conv_blocks": TOO_DEEP},
                        {"conv_blocks": Repeat(Int(4, 6), {"filters": 4})}, {"layers": [{"units": 8}]}])
KEYS_AT_DEPTH = [{}, {"init": schema.INITS[:3], "schedule": schema.SCHEDULES},
                 {"activation": schema.ACTIVATIONS[:3], "optimizer": schema.OPTIMIZERS}]


def level(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    def choice(labels: tuple[str, ...]) -> st.SearchStrategy[Choice]:
        return st.lists(st.sampled_from(labels), min_size=1, max_size=3, unique=True).flatmap(
            lambda taken: st.tuples(*[level(depth - 1) for _ in taken]).map(
                lambda options: Choice(dict(zip(taken, options, strict=True)))))
    choices = st.fixed_dictionaries({}, optional={key: choice(labels) for key, labels in KEYS_AT_DEPTH[depth].items()})
    return st.tuples(SETS if depth < 2 else st.just({}), choices).map(lambda pair: {**pair[0], **pair[1]})


SPACES = st.tuples(st.sampled_from([Choice(["mlp", "cnn"]), "cnn", "softmax",
                                    Choice({"cnn": {}, "mlp": {"layers": [{"units": 8}]}})]), level(2)).map(
    lambda pair: {"model": pair[0], **pair[1]})


def flat(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination of a level's branches, each as the same level without branches: the brute force."""
    levels: list[list[dict[str, Any]]] = []
    for key, value in node.items():
        if isinstance(value, Choice) and value.branches:
            levels.append([{key: label, **inner} for label in value.labels() for inner in flat(value.option(label))])
        else:
            levels.append([{key: value}])
    return [{k: v for part in parts for k, v in part.items()} for parts in itertools.product(*levels)]


def builds(space: dict[str, Any]) -> bool:
    try:
        check_buildable(space, "s.py")
    except SpaceError:
        return False
    return True


@pytest.mark.fast
@given(space=SPACES)
def test_a_space_is_refused_exactly_when_one_of_all_its_combinations_of_branches_cannot_build(
        space: dict[str, Any]) -> None:
    try:
        validate(space, "s.py")
        refused = False
    except SpaceError as err:
        assume("is also set at" not in str(err))  # ambiguous: refused before any combination is judged
        assert "no config can be built" in str(err), str(err)
        refused = True
    assert refused == (not all(builds(combination) for combination in flat(space)))
