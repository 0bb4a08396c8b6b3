"""Whether a space can give a config that builds: the last check of a space before anything trains.

A config that cannot be built fails its trial (a bad trial, and the search goes on), but a space, or
one combination of its branches, whose every config fails would spend a whole search on failures; it
is refused where the space loads. What decides whether a config builds is arithmetic, in schema.py:
which keys a model kind takes (`check_config`) and how far the conv blocks' pooling shrinks the image
(`pooling_problem`), so the verdict is exact without TensorFlow. For each combination of branches
(visit.Walker, taking one label of each Choice of sub-spaces), every searched value is taken at its
kindest: the fewest blocks a cnn may have (at least one), no pooling where a block may have none, else
the smallest window and stride; if even that fails, every config of that combination fails.
"""

from __future__ import annotations

import functools
from typing import Any

from search.errors import SpaceError
from search.space import schema
from search.space.dimensions import Choice, Float, Int, Repeat
from search.space.visit import Walker

MAX_COMBINATIONS = 4_096  # combinations of branches judged; far past the spaces' handful


class _Combination(Walker):
    """One combination of branches, `picks` (the first label of a Choice it does not name): the config
    it gives with searched values left as their dimensions and lists of blocks as written, and the
    parameter name of each key's place."""

    def __init__(self, picks: dict[str, Any]) -> None:
        super().__init__()
        self.picks = picks
        self.unpicked: tuple[str, list[Any]] | None = None
        self.places: dict[str, str] = {}

    def branches(self, choice: Choice, name: str) -> list[Any]:
        if len(self.keys) == 1:
            self.places[self.keys[0]] = name
        labels = choice.labels()
        if name not in self.picks and self.unpicked is None:
            self.unpicked = (name, labels)
        return [self.picks.get(name, labels[0])]

    def value(self, value: Any, name: str) -> Any:
        if len(self.keys) == 1:
            self.places[self.keys[0]] = name
        if isinstance(value, (Repeat, list, tuple)):
            return value  # judged block by block, below
        return super().value(value, name)


def _combinations(node: dict[str, Any]) -> list[tuple[dict[str, Any], _Combination]]:
    """Every combination of branches of one level (at most MAX_COMBINATIONS), with the config it gives."""
    found: list[tuple[dict[str, Any], _Combination]] = []
    todo: list[dict[str, Any]] = [{}]
    while todo and len(found) < MAX_COMBINATIONS:
        picks = todo.pop()
        walker = _Combination(picks)
        config = walker.walk(node)
        if walker.unpicked is None:
            found.append((config, walker))
        else:
            name, labels = walker.unpicked
            todo += [{**picks, name: label} for label in reversed(labels)]
    return found


def check_buildable(space: dict[str, Any], source: str) -> None:
    """Raise `SpaceError` naming the key when some combination of branches gives no config that builds."""
    for config, walker in _combinations(space):
        problems = [_problem(kind, config) for kind in _values(config["model"])]
        if any(problem is None for problem in problems):
            continue
        key, text = problems[-1]  # type: ignore[misc]  # every model kind allowed here fails: say the last's reason
        place = walker.places.get(key, walker.places["model"])
        when = [f"{name} is {label}" for name, label in walker.picks.items()
                if any(where == name or where.startswith(f"{name}.") for where in (place, walker.places["model"]))]
        condition = f" when {' and '.join(when)}" if when else ""
        raise SpaceError(source, place, f"no config can be built{condition}: {text}")


def _problem(kind: Any, config: dict[str, Any]) -> tuple[str, str] | None:
    """Why no config of `kind` with these values builds (the key and the reason), or None."""
    blocks = config.get("conv_blocks", [])
    if kind != "cnn":
        if _fewest(blocks):
            return "conv_blocks", f"only a cnn has conv blocks, not a {kind}"
        if kind == "softmax" and _fewest(config.get("layers", [])):
            return "layers", "softmax regression has no hidden layers"
        return None
    if _most(blocks) == 0:
        return "conv_blocks", "a cnn needs at least one conv block"
    kindest: list[dict[str, Any]] = []
    size: int | None = schema.IMAGE_SIZE
    for index in range(max(_fewest(blocks), 1)):
        options = _block_options(blocks.block if isinstance(blocks, Repeat) else blocks[index])
        # The option that leaves the largest map: every later window fits it whenever it fits any other.
        best = max(options, key=functools.partial(_left, size))
        kindest.append(best)
        size = None if size is None else schema.pooled_size(size, best)
    shrunk = schema.pooling_problem(kindest)
    return None if shrunk is None else ("conv_blocks", f"block {shrunk[0]}'s {shrunk[1]}, whatever is drawn")


def _left(size: int | None, block: dict[str, Any]) -> int:
    """The map's size after `block`; 0 when it no longer fits."""
    return 0 if size is None else schema.pooled_size(size, block) or 0


def _block_options(block: dict[str, Any]) -> list[dict[str, Any]]:
    """A conv block's kindest concrete version under each combination of its own branches."""
    options = []
    for config, _ in _combinations(block):
        full = {**schema.defaults(schema.CONV_BLOCK), **config}
        poolings = _values(full["pooling"])
        pooling = "none" if "none" in poolings else poolings[0]
        options.append({"pooling": pooling, "pool_size": _least(full["pool_size"]),
                        "pool_stride": _least(full["pool_stride"])})
    return options


def _values(value: Any) -> list[Any]:
    return value.labels() if isinstance(value, Choice) else [value]


def _least(value: Any) -> Any:
    if isinstance(value, (Int, Float)):
        return value.low
    return min(_values(value))


def _fewest(blocks: Any) -> int:
    if isinstance(blocks, Repeat):
        return blocks.count.low if isinstance(blocks.count, Int) else blocks.count
    return len(blocks)


def _most(blocks: Any) -> int:
    if isinstance(blocks, Repeat):
        return blocks.count.high if isinstance(blocks.count, Int) else blocks.count
    return len(blocks)
