"""A space file as KerasTuner hyperparameters: the space stage, for the KerasTuner engine (keras_tuner.py).

`declare` walks a space with the walker `space.sample` uses (space/visit.py) and declares each
dimension on a `keras_tuner.HyperParameters` under the same name (`layers.2.units`,
`model.cnn.conv_blocks.0.filters`): a conditional branch's parameters sit in
`hp.conditional_scope(choice, [label])`, block i of a `Repeat` in a scope on the count's values above
i. `Fixed` then answers `sample`'s questions with the values KerasTuner chose, so a trial's config is
the same kind of dict as under Optuna, and notes the Optuna params and distributions to record.
`check_space` refuses, before anything trains, what KerasTuner cannot hold: a Choice with None among
its options (or options of mixed types, which the schema's keys never allow today), and under
Hyperband a searched `epochs` or `steps`. Nothing here loads KerasTuner.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from search.errors import SpaceError, TrialFailed
from search.space import Choice, Float, Int, Repeat, Space, Walker, schema

TUNERS = ("hyperband", "bayesian", "random")  # KerasTuner's tuners that `run --engine keras-tuner` offers


def declare(space: dict[str, Any], hp: Any, source: str = "<space>") -> list[str]:
    """Declare every searched dimension of `space` on `hp` (a `keras_tuner.HyperParameters`, or
    anything with its Int/Float/Choice/conditional_scope); returns the names, parents first.

    Raises `SpaceError` for what KerasTuner cannot hold, before anything trains."""
    walker = _Declare(hp, source)
    walker.walk(space)
    return walker.names


def check_space(space: Space, tuner: str, epochs: int | None) -> None:
    """Everything `--engine keras-tuner` refuses in a space file, checked without KerasTuner loaded."""
    declare(space.space, _DryRun(), space.source)
    if tuner == "hyperband" and not epochs:
        for key in ("epochs", "steps"):
            finder = _Overridden(key)
            finder.walk(space.space)
            if finder.found:
                raise SpaceError(space.source, finder.found, f"Hyperband sets every trial's epochs itself from one "
                                 f"max_epochs, so `{key}` can only be a plain value at the top under --tuner hyperband "
                                 "(pass --epochs, or use --tuner bayesian or random)")


def support(space: Space) -> str:
    """Which KerasTuner tuners can run `space`, and the first thing the others refuse, for `show`."""
    usable, refused = [], ""
    for kind in TUNERS:
        try:
            check_space(space, kind, None)
            usable.append(kind)
        except SpaceError as err:
            refused = refused or f"{err.path}: {err.problem}"
    return (f"({', '.join(usable)})" if usable else "(none)") + (f"; refused: {refused}" if refused else "")


class _Overridden(Walker):
    """Where `key` is searched, set inside a branch, or (steps) nonzero at the top: what Hyperband overrides."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key, self.found = key, ""

    def _note(self, name: str, searched: bool, value: Any = None) -> None:
        if self.keys == [self.key] and not self.found and (
                searched or self.conditions or (self.key == "steps" and value)):
            self.found = name

    def branches(self, choice: Choice, name: str) -> list[Any]:
        self._note(name, True)
        return choice.labels()

    def dimension(self, dimension: Int | Float | Choice, name: str) -> Any:
        self._note(name, True)
        return dimension

    def repeat(self, repeat: Repeat, name: str) -> list[Any]:
        self._note(name, True)
        return super().repeat(repeat, name)

    def constant(self, value: Any, name: str) -> Any:
        self._note(name, False, value)
        return value


def max_epochs(space: Space, epochs: int | None) -> int:
    """Hyperband's max_epochs: --epochs, else the space's epochs (a plain value, see `check_space`)."""
    return epochs or int(space.space.get("epochs", schema.KEYS["epochs"].default))


class _Declare(Walker):
    """Declares each dimension where `space.sample` would draw it, under the conditions it depends on."""

    def __init__(self, hp: Any, source: str) -> None:
        super().__init__()
        self.hp, self.source = hp, source
        self.names: list[str] = []

    def branches(self, choice: Choice, name: str) -> list[Any]:
        self._add(name, "Choice", choice.labels())
        return choice.labels()

    def counts(self, repeat: Repeat, name: str) -> list[int]:
        count = repeat.count
        if isinstance(count, Int):
            self.dimension(count, f"{name}.count")
        return super().counts(repeat, name)

    def dimension(self, dimension: Int | Float | Choice, name: str) -> Any:
        if isinstance(dimension, Int):
            self._add(name, "Int", dimension.low, dimension.high, step=None if dimension.log else dimension.step,
                      sampling="log" if dimension.log else "linear")
        elif isinstance(dimension, Float):
            self._add(name, "Float", dimension.low, dimension.high, step=dimension.step,
                      sampling="log" if dimension.log else "linear")
        else:
            self._add(name, "Choice", choice_values(dimension, self.source, name))
        return dimension

    def _add(self, name: str, kind: str, *args: Any, **kwargs: Any) -> None:
        """`hp.Int/Float/Choice(name, ...)` inside the conditional scopes of every enclosing branch and block."""
        with contextlib.ExitStack() as scopes:
            for parent, values in self.conditions:
                scopes.enter_context(self.hp.conditional_scope(parent, values))
            getattr(self.hp, kind)(name, *args, **kwargs)
        self.names.append(name)


def choice_values(dim: Choice, source: str, path: str) -> list[Any]:
    """A Choice's options as KerasTuner holds them: one type, str, bool, int or float. Ints mixed with
    floats become floats (`Fixed` maps them back to the option itself); anything else is refused."""
    labels = dim.labels()
    kinds = {"None" if label is None else "bool" if isinstance(label, bool) else "str" if isinstance(label, str)
             else "number" for label in labels}
    if "None" in kinds:
        raise SpaceError(source, path, f"{dim!r}: KerasTuner's Choice cannot hold None")
    if len(kinds) > 1:
        raise SpaceError(source, path, f"{dim!r}: KerasTuner's Choice holds options of one type; this one mixes "
                         f"{' and '.join(sorted(kinds))}")
    if kinds == {"number"} and any(isinstance(label, float) for label in labels):
        numbers = [float(label) for label in labels]  # type: ignore[arg-type]
        if len(set(numbers)) < len(numbers):
            raise SpaceError(source, path, f"{dim!r}: options that are equal as numbers cannot be told apart")
        return numbers
    return labels


class _DryRun:
    """Stands in for `keras_tuner.HyperParameters` to check a space without loading KerasTuner."""

    def Int(self, *args: Any, **kwargs: Any) -> None:  # noqa: N802 - KerasTuner's method names
        pass

    Float = Choice = Int  # noqa: N815

    @contextlib.contextmanager
    def conditional_scope(self, parent: str, values: list[Any]) -> Iterator[None]:
        yield


class Fixed:
    """A `space.Suggester` answering with values already chosen (KerasTuner's `hp.values`), by name,
    and noting what `sample` asked for as Optuna params and distributions for the study."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.params: dict[str, Any] = {}
        self.distributions: dict[str, BaseDistribution] = {}

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        value = min(max(int(self._value(name)), low), high)
        return self._note(name, value, IntDistribution(low, high, log=log, step=step))

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float:
        value = min(max(float(self._value(name)), low), high)
        return self._note(name, value, FloatDistribution(low, high, log=log, step=step))

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        options, chosen = list(choices), self._value(name)
        # KerasTuner hands back bools as 0/1 and ints among floats as floats: find the option itself.
        same = [option for option in options if option == chosen and type(option) is type(chosen)]
        equal = same or [option for option in options if option == chosen]
        if not equal:
            raise TrialFailed(f"{name}: KerasTuner chose {chosen!r}, not one of {options!r}")
        return self._note(name, equal[0], CategoricalDistribution(options))

    def _value(self, name: str) -> Any:
        if name not in self.values:
            raise TrialFailed(f"{name}: KerasTuner gave no value (its declared space and the space file differ)")
        return self.values[name]

    def _note(self, name: str, value: Any, distribution: BaseDistribution) -> Any:
        self.params[name], self.distributions[name] = value, distribution
        return value
