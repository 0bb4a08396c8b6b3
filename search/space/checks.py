"""Validating a space whole, before anything trains: every dimension well formed, every key known and
every value it can take allowed (schema.py), in one walk over the tree (visit.py).

The first problem stops the load with one line naming the file, the parameter's path and what was
expected: `spaces/mlp.py: layers.0.units: Int(1024, 32): low must be <= high`. A key set in two
places that one config takes together (a branch's keys sit beside its label, so a branch can set a
key its level sets too) is refused as well: the config would keep one value and the study record
the other.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Iterator
from typing import Any

from search.errors import SpaceError
from search.space import builds, schema
from search.space.dimensions import Choice, Float, Int, Repeat
from search.space.visit import Walker

MAX_REPEAT = 32  # blocks a Repeat may hold: far past any useful depth, and a bound for `show` and sampling


def validate(space: dict[str, Any], source: str = "<space>") -> None:
    """Check every dimension and every key of a space; raises `SpaceError` on the first problem."""
    _Checker(source).walk(space)
    if "model" not in space:
        raise SpaceError(source, "SPACE", f"'model' is required ({schema.KEYS['model'].describe()})")
    builds.check_buildable(space, source)


class _Checker(Walker):
    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source
        self.levels: list[dict[str, schema.Key]] = [schema.KEYS]  # the keys allowed in the dict being walked

    def fail(self, path: str, problem: str) -> SpaceError:
        return SpaceError(self.source, path, problem)

    def walk(self, space: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        walked = super().walk(space, prefix)
        _check_unambiguous(space, prefix, self.fail)
        return walked

    def spec(self, name: str) -> schema.Key:
        """The schema's key for the value being walked."""
        return schema.key_spec(self.levels[-1], self.keys[-1], self.source, name)

    def mapping(self, node: dict[str, Any], prefix: str) -> dict[str, Any]:
        for key in node:
            if not isinstance(key, str) or not key or "." in key:
                raise self.fail(prefix[:-1] or "SPACE", f"key {key!r} must be a non-empty string without '.'")
        return super().mapping(node, prefix)

    def value(self, value: Any, name: str) -> Any:
        """A key's own value: what the schema allows for that key."""
        spec = self.spec(name)
        if isinstance(value, Repeat) and spec.kind != "list":
            raise self.fail(name, f"Repeat is for lists of blocks; {self.keys[-1]} expects {spec.describe()}")
        if isinstance(value, (dict, list, tuple)) and not (spec.kind == "list" and isinstance(value, (list, tuple))):
            raise self.fail(name, f"{value!r}: expected {spec.describe()}")  # only a list of blocks is a structure
        return super().value(value, name)

    def item(self, value: Any, name: str) -> Any:
        """A block of a list of blocks (`layers`, `conv_blocks`), given as a list or by a Repeat."""
        spec = self.spec(name)
        if not isinstance(value, dict):
            raise self.fail(name, f"a block must be a dict with keys {', '.join(spec.items)}")
        self.levels.append(spec.items)
        try:
            block = self.mapping(value, f"{name}.")
        finally:
            self.levels.pop()
        _check_unambiguous(value, f"{name}.", self.fail)
        return block

    def counts(self, repeat: Repeat, name: str) -> list[int]:
        count = repeat.count
        if isinstance(count, Int):
            _check_int(count, self.fail, f"{name}.count")
            if count.low < 0 or count.high > MAX_REPEAT:
                raise self.fail(f"{name}.count", f"{count!r}: a count must be in 0..{MAX_REPEAT}")
        elif not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_REPEAT:
            raise self.fail(name, f"Repeat count must be an Int or an int in 0..{MAX_REPEAT}, got {count!r}")
        return [1]  # every block is alike: check one

    def branches(self, choice: Choice, name: str) -> list[Any]:
        self._choice(choice, name)
        for label, option in choice.options.items():  # type: ignore[union-attr]
            if not isinstance(label, str):  # the config holds the label, and a stored config only strings
                raise self.fail(name, f"branch label {label!r} ({type(label).__name__}): branch labels must be "
                                      f"strings, e.g. Choice({{{str(label)!r}: {{...}}}})")
            if not isinstance(option, dict):
                raise self.fail(f"{name}.{label}", "a branch of a Choice dict must be a sub-space dict")
        self._allowed(choice, name)
        return choice.labels()

    def dimension(self, dimension: Int | Float | Choice, name: str) -> Any:
        if isinstance(dimension, Int):
            _check_int(dimension, self.fail, name)
        elif isinstance(dimension, Float):
            _check_float(dimension, self.fail, name)
        else:
            self._choice(dimension, name)
            self._allowed(dimension, name)
            return dimension
        schema.check_range(self.spec(name), dimension, self.source, name)
        return dimension

    def constant(self, value: Any, name: str) -> Any:
        if not isinstance(value, (str, int, float, bool, type(None))):
            raise self.fail(name, f"unknown type {type(value).__name__} (expected Int, Float, Choice, Repeat or "
                                  "a constant)")
        schema.check_value(self.spec(name), value, self.source, name)
        return value

    def _choice(self, choice: Choice, name: str) -> None:
        if not isinstance(choice.options, (list, tuple, dict)):
            raise self.fail(name, f"Choice takes a list or a dict of options, got {type(choice.options).__name__}")
        if len(choice.options) == 0:
            raise self.fail(name, "Choice([]): needs at least one option")
        labels = choice.labels()
        for label in labels:
            if not isinstance(label, (str, int, float, bool, type(None))):
                raise self.fail(name, f"option {label!r}: a Choice of sub-spaces must be a dict label -> sub-space")
        if len(set(map(repr, labels))) != len(labels):
            raise self.fail(name, f"{choice!r}: options must be distinct")

    def _allowed(self, choice: Choice, name: str) -> None:
        spec = self.spec(name)
        for label in choice.labels():
            schema.check_value(spec, label, self.source, name)


def _check_int(dim: Int, fail: Any, path: str) -> None:
    for name in ("low", "high", "step"):
        value = getattr(dim, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise fail(path, f"{dim!r}: {name} must be an int, got {value!r}")
    _check_bounds(dim, fail, path)
    if dim.step < 1:
        raise fail(path, f"{dim!r}: step must be >= 1")
    if dim.log and dim.step != 1:
        raise fail(path, f"{dim!r}: log and step cannot be combined")
    _check_steps(dim, fail, path)


def _check_float(dim: Float, fail: Any, path: str) -> None:
    for name in ("low", "high"):
        value = getattr(dim, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise fail(path, f"{dim!r}: {name} must be a finite number, got {value!r}")
    _check_bounds(dim, fail, path)
    if dim.step is None:
        return
    if not isinstance(dim.step, (int, float)) or isinstance(dim.step, bool) or not math.isfinite(dim.step):
        raise fail(path, f"{dim!r}: step must be a finite number, got {dim.step!r}")
    if dim.step <= 0 or dim.log:
        raise fail(path, f"{dim!r}: step must be > 0 and cannot be combined with log")
    _check_steps(dim, fail, path)


def _check_steps(dim: Int | Float, fail: Any, path: str) -> None:
    """The range must be a whole number of steps. Optuna would otherwise lower `high` to the last
    step below it with only a warning (to `low` itself when the step is wider than the range), and
    the study would search another range than the file says. Computed as Optuna computes it, in
    decimals of the numbers as written."""
    low, high, step = (decimal.Decimal(str(value)) for value in (dim.low, dim.high, dim.step))
    if (high - low) % step == 0:
        return
    last = (high - low) // step * step + low
    below, above = (number if isinstance(dim, Float) else int(number) for number in (last, last + step))
    searched = f"only {below}" if last == low else f"{dim.low}..{below}"
    raise fail(path, f"{dim!r}: {dim.high} - {dim.low} is not a whole number of steps of {dim.step}: Optuna would "
                     f"search {searched}; make high {below} or {above}")


def _check_bounds(dim: Int | Float, fail: Any, path: str) -> None:
    if dim.low > dim.high:
        raise fail(path, f"{dim!r}: low must be <= high")
    if dim.log and dim.low <= 0:
        raise fail(path, f"{dim!r}: log=True needs low > 0")


Branch = tuple[tuple[str, Any], ...]  # the (Choice's name, label) pairs a place of a key lies under


def _places(node: dict[str, Any], prefix: str, branch: Branch = ()) -> Iterator[tuple[str, str, Branch]]:
    """Every key one level of a space sets, with its name and the branches it lies under: a branch's
    keys land on the level of its Choice (visit.Walker.mapping merges them into one config dict)."""
    for key, value in node.items():
        name = f"{prefix}{key}"
        yield key, name, branch
        if isinstance(value, Choice) and value.branches:
            for label, option in value.options.items():  # type: ignore[union-attr]
                yield from _places(option, f"{name}.{label}.", (*branch, (name, label)))


def _check_unambiguous(node: dict[str, Any], prefix: str, fail: Any) -> None:
    """Each key of one level set in one place per config: two places of a key may both be taken
    unless they lie in different branches of one Choice."""
    seen: dict[str, list[tuple[str, Branch]]] = {}
    for key, name, branch in _places(node, prefix):
        for other, other_branch in seen.get(key, []):
            if not any(choice == their and label != theirs for choice, label in branch
                       for their, theirs in other_branch):
                raise fail(name, f"{key} is also set at {other}, and one config takes both: it would train one "
                                 f"value while the space and the study say the other; set {key} in one place")
        seen.setdefault(key, []).append((name, branch))
