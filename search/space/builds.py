"""Whether a space can give a config that builds: the last check of a space before anything trains.

A config that cannot be built fails its trial (a bad trial, and the search goes on), but a space, or
one combination of its branches, whose every config fails would spend a whole search on failures; it
is refused where the space loads. What decides whether a config builds is arithmetic, in schema.py:
which keys a model kind takes (`check_config`) and how far the conv blocks' pooling shrinks the image
(`pooling_problem`), so the verdict is exact without TensorFlow. For each combination of branches
(one label of each Choice of sub-spaces), every searched value is taken at its kindest: the fewest
blocks a cnn may have (at least one), no pooling where a block may have none, else the smallest window
and stride; if even that fails, every config of that combination fails.

Every combination is judged, not a sample of them: the verdict reads only `model`, `conv_blocks` and
`layers` (a block's only `pooling`, `pool_size` and `pool_stride`), so combinations that set these the
same way are one combination to the check. `_combinations` builds them level by level, merging a
branch's keys into its Choice's level and naming them as visit.Walker does, and keeps one of each:
twenty Choices of two branches that set other keys are one combination, not a million. A space that
still gives more than `MAX_COMBINATIONS` distinct ones (hundreds of places that set these keys) is
refused, naming the Choice where the count passed it, rather than checked in part.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from search.errors import SpaceError
from search.space import schema
from search.space.dimensions import Choice, Float, Int, Repeat

MAX_COMBINATIONS = 4_096  # distinct combinations judged: far past the spaces' handful, and a fraction of a second
_READS = frozenset({"model", "conv_blocks", "layers"})  # the config keys the verdict reads
_BLOCK_READS = frozenset({"pooling", "pool_size", "pool_stride"})  # and a conv block's


@dataclass(frozen=True)
class _Combination:
    """What one combination of branches gives the keys the check reads: their values as written (searched
    values left as their dimensions, lists of blocks as written; a Choice of sub-spaces gives its label),
    the parameter name of each one's place, and the branches taken on the way to them, in walk order. The
    branches say the rest, so combinations with the same `picks` are one."""

    config: dict[str, Any]
    places: dict[str, str]
    picks: tuple[tuple[str, Any], ...]

    def __add__(self, other: _Combination) -> _Combination:
        return _Combination({**self.config, **other.config}, {**self.places, **other.places}, self.picks + other.picks)


_NOTHING = _Combination({}, {}, ())


def _combinations(node: dict[str, Any], reads: frozenset[str], source: str,
                  prefix: str = "") -> list[_Combination]:
    """Every distinct combination of the branches of one level (a space's, or a block's), in the order a
    walk meets them: the first keys' branches vary slowest, as `sample` draws them."""
    found = [_NOTHING]
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, Choice) and value.branches:
            options: dict[tuple[tuple[str, Any], ...], _Combination] = {}
            for label in value.labels():
                own = _Combination({key: label}, {key: name}, ()) if key in reads else _NOTHING
                for inner in _combinations(value.option(label), reads, source, f"{name}.{label}."):
                    if own.places or inner.places:  # this branch leads to a key the check reads
                        inner = own + _Combination(inner.config, inner.places, ((name, label), *inner.picks))
                    options.setdefault(inner.picks, inner)  # a branch that leads to none is as good as another
            choices = list(options.values())
        elif key in reads:
            choices = [_Combination({key: value}, {key: name}, ())]
        else:
            continue
        if len(found) * len(choices) > MAX_COMBINATIONS:
            raise SpaceError(source, name, f"with the branches before it, more than {MAX_COMBINATIONS:,} combinations "
                                           f"of branches set {', '.join(sorted(reads))} differently: expected at most "
                                           f"{MAX_COMBINATIONS:,}, each checked before anything trains; set them in "
                                           "fewer branches")
        # Distinct on both sides, and their picks name different Choices: every pair is a new combination.
        found = [before + choice for before in found for choice in choices]
    return found


def check_buildable(space: dict[str, Any], source: str) -> None:
    """Raise `SpaceError` naming the key when some combination of branches gives no config that builds."""
    blocks = _Blocks(source)
    for combination in _combinations(space, _READS, source):
        config, places = combination.config, combination.places
        problems = [_problem(kind, config, blocks) for kind in _values(config["model"])]
        if any(problem is None for problem in problems):
            continue
        key, text = problems[-1]  # type: ignore[misc]  # every model kind allowed here fails: say the last's reason
        place = places.get(key, places["model"])
        when = [f"{name} is {label}" for name, label in combination.picks
                if any(where == name or where.startswith(f"{name}.") for where in (place, places["model"]))]
        condition = f" when {' and '.join(when)}" if when else ""
        raise SpaceError(source, place, f"no config can be built{condition}: {text}")


def _problem(kind: Any, config: dict[str, Any], block_options: _Blocks) -> tuple[str, str] | None:
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
        options = block_options(blocks.block if isinstance(blocks, Repeat) else blocks[index])
        # The option that leaves the largest map: every later window fits it whenever it fits any other.
        best = max(options, key=functools.partial(_left, size))
        kindest.append(best)
        size = None if size is None else schema.pooled_size(size, best)
    shrunk = schema.pooling_problem(kindest)
    return None if shrunk is None else ("conv_blocks", f"block {shrunk[0]}'s {shrunk[1]}, whatever is drawn")


def _left(size: int | None, block: dict[str, Any]) -> int:
    """The map's size after `block`; 0 when it no longer fits."""
    return 0 if size is None else schema.pooled_size(size, block) or 0


class _Blocks:
    """A conv block's kindest concrete version under each combination of its own branches, worked out
    once per block however many combinations of the space hold it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.seen: dict[int, list[dict[str, Any]]] = {}  # by the block's id: the space outlives the check

    def __call__(self, block: dict[str, Any]) -> list[dict[str, Any]]:
        if id(block) not in self.seen:
            options = []
            for combination in _combinations(block, _BLOCK_READS, self.source):
                full = {**schema.defaults(schema.CONV_BLOCK), **combination.config}
                poolings = _values(full["pooling"])
                pooling = "none" if "none" in poolings else poolings[0]
                options.append({"pooling": pooling, "pool_size": _least(full["pool_size"]),
                                "pool_stride": _least(full["pool_stride"])})
            self.seen[id(block)] = options
        return self.seen[id(block)]


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
