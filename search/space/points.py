"""A point of a space given by its parameters: what a warm start or a hand-written configuration queues.

`config_of(space, params)` walks the space as `sample` does, but takes each parameter's value from
`params` (parameter name -> value, under the names `show` prints and Optuna stores: `layers.count`,
`layers.0.units`, `optimizer.sgd.learning_rate`) instead of drawing it, and checks it: a parameter
the walk needs and `params` lacks, a value outside an `Int` or `Float` range or not among a
`Choice`'s options, and a name the walk never reaches are each a `PointError` naming the parameter.
What passes, Optuna's `enqueue_trial` can queue: the sampler's suggestions then return exactly these.
"""

from __future__ import annotations

import math
from typing import Any

from search.space.dimensions import Choice, Float, Int, Repeat
from search.space.visit import Walker


class PointError(ValueError):
    """A parameter set the space cannot express; the message names the parameter and the problem."""


def config_of(space: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The concrete config `params` pick in `space`; raises `PointError` if the space cannot express it."""
    walker = _Fixed(params)
    config = walker.walk(space)
    unused = sorted(set(params) - walker.used)
    if unused:
        raise PointError(f"{unused[0]}: not a parameter of this space"
                         + (f" (nor {', '.join(unused[1:])})" if len(unused) > 1 else ""))
    return config


def _same(value: Any, option: Any) -> bool:
    """`value` is the option itself: equal, and a bool only where the option is one (True == 1 in Python)."""
    return value == option and isinstance(value, bool) == isinstance(option, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_value(dimension: Int | Float | Choice, value: Any, name: str) -> None:
    """Raise `PointError` unless `value` is one the dimension can take."""
    if isinstance(dimension, Choice):
        if not any(_same(value, option) for option in dimension.labels()):
            raise PointError(f"{name}: {value!r} is not among {dimension!r}")
        return
    if isinstance(dimension, Int) and not (_number(value) and float(value).is_integer()):
        raise PointError(f"{name}: {value!r} is not an integer ({dimension!r})")
    if not _number(value):
        raise PointError(f"{name}: {value!r} is not a number ({dimension!r})")
    if not dimension.low <= value <= dimension.high:
        raise PointError(f"{name}: {value!r} is out of {dimension!r}")
    step = dimension.step
    if step and not math.isclose((value - dimension.low) / step, round((value - dimension.low) / step),
                                 abs_tol=1e-9):
        raise PointError(f"{name}: {value!r} is not on {dimension!r}'s steps")


class _Fixed(Walker):
    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__()
        self.params = params
        self.used: set[str] = set()

    def take(self, name: str) -> Any:
        if name not in self.params:
            raise PointError(f"{name}: missing")
        self.used.add(name)
        return self.params[name]

    def branches(self, choice: Choice, name: str) -> list[Any]:
        label = self.take(name)
        check_value(choice, label, name)
        return [label]

    def counts(self, repeat: Repeat, name: str) -> list[int]:
        count = repeat.count
        if not isinstance(count, Int):
            return [count]
        value = self.take(f"{name}.count")
        check_value(count, value, f"{name}.count")
        return [int(value)]

    def dimension(self, dimension: Int | Float | Choice, name: str) -> Any:
        value = self.take(name)
        check_value(dimension, value, name)
        return int(value) if isinstance(dimension, Int) else value
