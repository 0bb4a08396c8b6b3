"""A space in words: the outline a study remembers, what changed between two, and `show`'s tree.

`outline` lists every dimension and fixed value of `SPACE` by its path, and every baseline: a study
stores it, so that a resume with another space can say what changed (`changes`). `tree` draws the
same entries for `python -m search show`, searched dimensions in green and fixed values dimmed.
Both walk the space with visit.py's walker, as `sample` does.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from search.space.dimensions import Choice, Float, Int, Repeat
from search.space.visit import Walker, count_dimensions

if TYPE_CHECKING:
    from search.space.load import Space


class _Outliner(Walker):
    """Every path of a space with what is there: a dimension, a Repeat, a Choice of branches or a constant.
    A Repeat's block is listed once, under `path.*`; a plain list is walked into only if it searches."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[str, Any] = {}

    def branches(self, choice: Choice, name: str) -> list[Any]:
        self.entries[name] = choice
        return choice.labels()

    def mapping(self, node: dict[str, Any], prefix: str) -> dict[str, Any]:
        if not node and prefix:  # a branch that sets nothing is still one of the options
            self.entries[prefix[:-1]] = node
        return super().mapping(node, prefix)

    def repeat(self, repeat: Repeat, name: str) -> list[Any]:
        self.entries[name] = repeat
        return super().repeat(repeat, name)

    def counts(self, repeat: Repeat, name: str) -> list[int]:
        return [1]

    def block_name(self, name: str, index: int) -> str:
        return f"{name}.*"

    def value(self, value: Any, name: str) -> Any:
        if isinstance(value, (list, tuple, dict)) and not (value and count_dimensions(value)):
            return self.constant(value, name)  # nothing searched inside: one fixed value
        return super().value(value, name)

    def dimension(self, dimension: Int | Float | Choice, name: str) -> Any:
        self.entries[name] = dimension
        return dimension

    def constant(self, value: Any, name: str) -> Any:
        self.entries[name] = value
        return value


def entries(space: dict[str, Any]) -> dict[str, Any]:
    """Every path of `space` and what is there, in the order `sample` walks it."""
    outliner = _Outliner()
    outliner.walk(space)
    return outliner.entries


def outline(space: Space) -> dict[str, str]:
    """Every dimension and fixed value of `SPACE`, and every baseline, by its path: what a study
    remembers of the space it was run with, so that a resume with another space can say what changed.
    Comments and the docstring are not part of it."""
    out = {path: repr(value) for path, value in entries(space.space).items()}
    for label, config in space.baselines.items():
        out[f"BASELINES.{label}"] = json.dumps(config, sort_keys=True)
    return out


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """What differs between two outlines, one short phrase per path."""
    found = []
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path), after.get(path)
        if old == new:
            continue
        found.append(f"{path}: {old} -> {new}" if old is not None and new is not None
                     else f"{path}: added {new}" if new is not None else f"{path}: removed {old}")
    return found


def tree(space: Space) -> Any:
    """The space as a rich `Tree` for `show`: what is searched in green, what is fixed dimmed; a Choice of
    branches with a node per branch, a Repeat with its block's keys under it."""
    from rich.markup import escape
    from rich.tree import Tree

    root = Tree(f"[bold]{escape(space.source)}[/]" + (f"  [dim]{escape(space.doc.splitlines()[0])}[/]"
                                                       if space.doc else ""))
    listed = entries(space.space)
    nodes: dict[str, Tree] = {"": root}

    def node(path: str) -> Tree:
        """The tree node of `path`, and of every part above it that is not an entry of its own."""
        if path in nodes:
            return nodes[path]
        parent, _, last = path.rpartition(".")
        above = listed.get(parent)
        if last == "*" and isinstance(above, Repeat):  # a Repeat's block: its keys go under the Repeat
            nodes[path] = node(parent)
        elif isinstance(above, Choice) and above.branches:
            nodes[path] = node(parent).add(f"[bold]{escape(last)}[/]")
        else:
            nodes[path] = node(parent).add(f"{escape(last)}:")
        return nodes[path]

    for path, value in listed.items():
        parent, _, key = path.rpartition(".")
        at = node(parent)
        if value == {} and isinstance(listed.get(parent), Choice):  # a branch that sets nothing
            node(path)
        elif isinstance(value, Choice) and value.branches:
            nodes[path] = at.add(f"{escape(key)}: Choice of {len(value.options)} branches")
        elif isinstance(value, Repeat):
            nodes[path] = at.add(f"{escape(key)}: [green]{escape(repr(value))}[/] of")
        elif isinstance(value, (Int, Float, Choice)):
            at.add(f"{escape(key)}: [green]{escape(repr(value))}[/]")
        else:
            at.add(f"{escape(key)} = {escape(repr(value))}  [dim](fixed)[/]")
    return root


def summary(space: Space) -> list[str]:
    """What `show` prints under the tree: the dimensions, their parameter names (what `run --enqueue`
    takes), and each baseline."""
    from rich.markup import escape

    return [f"{count_dimensions(space.space)} searched dimensions at most (each Repeat at its largest count, "
            "every branch)", f"parameters: {escape(', '.join(parameter_names(space.space)))}",
            *(f"baseline [cyan]{escape(label)}[/]: {escape(str(config))}" for label, config in space.baselines.items())]


class _Names(Walker):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def branches(self, choice: Choice, name: str) -> list[Any]:
        self.names.append(name)
        return choice.labels()

    def counts(self, repeat: Repeat, name: str) -> list[int]:
        if isinstance(repeat.count, Int):
            self.names.append(f"{name}.count")
        return [max(super().counts(repeat, name), default=0)]

    def dimension(self, dimension: Int | Float | Choice, name: str) -> Any:
        self.names.append(name)
        return dimension


def parameter_names(space: dict[str, Any]) -> list[str]:
    """Every parameter a config of `space` can have, named as Optuna stores it, in the order sampled."""
    walker = _Names()
    walker.walk(space)
    return walker.names
