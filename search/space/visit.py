"""The one walk over a space tree, and sampling: how every stage that reads a space goes through it.

`Walker` visits a space in the order `sample` draws it and under the names the parameters get: a
key at the top is `key`; a branch's keys sit beside its label and are named after it
(`optimizer.sgd.learning_rate`); block i of a `Repeat`, or item i of a list, is `layers.i.units`;
a `Repeat`'s count is `layers.count`. Each stage overrides a few hooks: which branches and block
counts to enter (sampling enters the one it draws, everything else enters all), and what to do at
a dimension or a constant. While it walks, `keys` holds the dict keys from the root (not labels or
indices) and `conditions` the branches and block counts the current part depends on.

Validation (checks.py), sampling (here), KerasTuner's declaration (engines/keras_tuner_space.py),
the outline a study remembers and `show`'s tree (describe.py), and the count of dimensions all walk
through it, so none can disagree with `sample` on what a space holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Protocol

from search.space.dimensions import Choice, Float, Int, Repeat

Condition = tuple[str, list[Any]]  # a parameter's name and the values under which a part exists


class Walker:
    """A walk over a space; subclasses override the hooks (`branches`, `counts`, `dimension`, `constant`)."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.conditions: list[Condition] = []

    def walk(self, space: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        """Walk a whole space; what the hooks return, as a config (what `sample` draws)."""
        return self.mapping(space, prefix)

    def mapping(self, node: dict[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            name = f"{prefix}{key}"
            self.keys.append(key)
            if isinstance(value, Choice) and value.branches:
                labels = self.branches(value, name)
                self.keys.pop()  # a branch's keys sit beside its label, at this level
                out[key] = labels[0] if len(labels) == 1 else labels
                for label in labels:
                    with self.condition(name, [label]):
                        out.update(self.mapping(value.option(label), f"{name}.{label}."))
            else:
                out[key] = self.value(value, name)
                self.keys.pop()
        return out

    def value(self, value: Any, name: str) -> Any:
        if isinstance(value, (Int, Float, Choice)):
            return self.dimension(value, name)
        if isinstance(value, Repeat):
            return self.repeat(value, name)
        if isinstance(value, dict):
            return self.mapping(value, f"{name}.")
        if isinstance(value, (list, tuple)):
            return [self.item(item, f"{name}.{index}") for index, item in enumerate(value)]
        return self.constant(value, name)

    def repeat(self, repeat: Repeat, name: str) -> list[Any]:
        counts = self.counts(repeat, name)
        blocks = []
        for index in range(max(counts, default=0)):
            above = [count for count in counts if count > index]
            # Block i exists when the count is above i: a condition only where some counts are not.
            with self.condition(f"{name}.count", above, when=len(above) < len(counts)):
                blocks.append(self.item(repeat.block, self.block_name(name, index)))
        return blocks

    @contextlib.contextmanager
    def condition(self, name: str, values: list[Any], when: bool = True) -> Iterator[None]:
        if when:
            self.conditions.append((name, values))
        try:
            yield
        finally:
            if when:
                self.conditions.pop()

    # ---- hooks ----

    def branches(self, choice: Choice, name: str) -> list[Any]:
        """The labels of a Choice of sub-spaces to walk into: all of them, unless a stage picks one."""
        return choice.labels()

    def counts(self, repeat: Repeat, name: str) -> list[int]:
        """The block counts a Repeat may have: all of them, unless a stage picks one."""
        count = repeat.count
        return list(range(count.low, count.high + 1, count.step)) if isinstance(count, Int) else [count]

    def item(self, value: Any, name: str) -> Any:
        """An item of a list, or a block of a Repeat."""
        return self.value(value, name)

    def block_name(self, name: str, index: int) -> str:
        return f"{name}.{index}"

    def dimension(self, dimension: Int | Float | Choice, name: str) -> Any:
        return dimension

    def constant(self, value: Any, name: str) -> Any:
        return value


class Suggester(Protocol):
    """What sampling needs: an Optuna trial has exactly these methods."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


class _Sampler(Walker):
    def __init__(self, suggest: Suggester) -> None:
        super().__init__()
        self.suggest = suggest

    def branches(self, choice: Choice, name: str) -> list[Any]:
        # Each branch's parameters are named after its label, so each keeps its own distributions.
        return [self.suggest.suggest_categorical(name, choice.labels())]

    def counts(self, repeat: Repeat, name: str) -> list[int]:
        count = repeat.count
        if isinstance(count, Int):
            return [self.suggest.suggest_int(f"{name}.count", count.low, count.high, step=count.step, log=count.log)]
        return [count]

    def dimension(self, dimension: Int | Float | Choice, name: str) -> Any:
        if isinstance(dimension, Int):
            return self.suggest.suggest_int(name, dimension.low, dimension.high, step=dimension.step,
                                            log=dimension.log)
        if isinstance(dimension, Float):
            return self.suggest.suggest_float(name, dimension.low, dimension.high, step=dimension.step,
                                              log=dimension.log)
        return self.suggest.suggest_categorical(name, dimension.labels())


def sample(space: dict[str, Any], suggest: Suggester, prefix: str = "") -> dict[str, Any]:
    """Draw one concrete config; parameter names are the keys' dotted paths, after `prefix` (a study
    whose space was changed on resume names the new space's parameters apart: `studies.param_prefix`)."""
    return _Sampler(suggest).walk(space, prefix)


class _Counter(Walker):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def branches(self, choice: Choice, name: str) -> list[Any]:
        self.count += 1
        return choice.labels()

    def counts(self, repeat: Repeat, name: str) -> list[int]:
        self.count += isinstance(repeat.count, Int)
        return [max(super().counts(repeat, name), default=0)]  # the most blocks: every parameter they can have

    def dimension(self, dimension: Int | Float | Choice, name: str) -> Any:
        self.count += 1
        return dimension


def count_dimensions(node: Any) -> int:
    """How many searched parameters a space (or part of one) can have at most: every branch, each
    Repeat at its largest count."""
    counter = _Counter()
    counter.value(node, "")
    return counter.count


class _Values(Walker):
    """Every value a key at a config's top level (the space's, or a branch's beside its label) can take."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.found: list[Any] = []

    def dimension(self, dimension: Int | Float | Choice, name: str) -> Any:
        if self.keys == [self.key]:
            self.found.extend([dimension.low, dimension.high] if isinstance(dimension, (Int, Float))
                              else dimension.labels())
        return dimension

    def constant(self, value: Any, name: str) -> Any:
        if self.keys == [self.key]:
            self.found.append(value)
        return value


def top_level_values(space: dict[str, Any], key: str) -> list[Any]:
    """The values (a range's ends, a choice's options, a constant) that `key` can take in a config the
    space draws; empty if no part of the space sets it."""
    walker = _Values(key)
    walker.walk(space)
    return walker.found
