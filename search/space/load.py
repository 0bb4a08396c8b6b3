"""Declarative search spaces: the first stage of the flow (space file -> config dict).

A space file is a plain Python module exposing `SPACE`, a dict whose values are constants (fixed)
or dimensions: `Int`, `Float`, `Choice` (whose options may be sub-spaces: conditional branches)
and `Repeat` (a block repeated a searched number of times). `load_space` imports the file and
validates all of it before anything trains; `sample` turns a space into a concrete config dict
through any object with Optuna's `suggest_*` methods, naming every parameter by its stable
hierarchical path (`layers.2.units`). Builders downstream only ever see the concrete dict.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from search.errors import SpaceError
from search.space import schema
from search.space.dimensions import Choice, Constant, Dimension, Float, Int, Repeat

MAX_REPEAT = 32  # blocks a Repeat may hold: far past any useful depth, and a bound for `show` and sampling

__all__ = ["Choice", "Constant", "Dimension", "Float", "Int", "Repeat", "Space", "load_space", "sample", "validate"]


class Suggester(Protocol):
    """What sampling needs: an Optuna trial has exactly these methods."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class Space:
    """A validated space file: its `SPACE`, its `BASELINES` and where it came from."""

    source: str
    space: dict[str, Any]
    baselines: dict[str, dict[str, Any]]
    doc: str

    @property
    def name(self) -> str:
        return Path(self.source).stem

    def model_kinds(self) -> set[str]:
        """Every model kind ("softmax", "mlp", "cnn") its trials and baselines can build."""
        model = self.space["model"]
        kinds = {str(label) for label in model.labels()} if isinstance(model, Choice) else {str(model)}
        return kinds | {str(config["model"]) for config in self.baselines.values()}


def load_space(path: str | Path) -> Space:
    """Import a space file and validate it whole; raises `SpaceError` with one line."""
    source = str(path)
    module = _import(source)
    if not hasattr(module, "SPACE"):
        raise SpaceError(source, "", "no SPACE defined (a space file must set SPACE = {...})")
    space = module.SPACE
    if not isinstance(space, dict):
        raise SpaceError(source, "SPACE", f"must be a dict, got {type(space).__name__}")
    validate(space, source)
    baselines = getattr(module, "BASELINES", {})
    if not isinstance(baselines, dict):
        raise SpaceError(source, "BASELINES", f"must be a dict of name -> config, got {type(baselines).__name__}")
    for label, config in baselines.items():
        if not isinstance(config, dict):
            raise SpaceError(source, f"BASELINES.{label}", "must be a concrete config dict")
        for key, value in config.items():
            if isinstance(value, Dimension):
                raise SpaceError(source, f"BASELINES.{label}.{key}", f"{value!r}: baselines must be concrete")
        schema.check_config(config, source, f"BASELINES.{label}")
    return Space(source, space, dict(baselines), (module.__doc__ or "").strip())


def _import(source: str) -> types.ModuleType:
    path = Path(source)
    if not path.is_file():
        raise SpaceError(source, "", "no such file")
    if path.suffix != ".py":
        raise SpaceError(source, "", "a space file must be a Python module ending in .py")
    name = f"_search_space_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        raise SpaceError(source, f"line {err.lineno}", f"syntax error: {err.msg}") from err
    except SpaceError:
        raise
    except SystemExit as err:  # exit() in the file would otherwise end `search` without a word
        raise SpaceError(source, "", f"calls exit({err.code!r}) when imported: a space file must only set "
                                     "SPACE (and BASELINES)") from err
    except Exception as err:  # the file's own code raised: report it as the file's fault
        text = str(err).strip().splitlines()
        raise SpaceError(source, "", f"failed to import: {type(err).__name__}: {text[0] if text else ''}") from err
    finally:
        sys.modules.pop(name, None)
    return module


def validate(space: dict[str, Any], source: str = "<space>") -> None:
    """Check every dimension and every key of a space; raises `SpaceError` on the first problem."""
    _check_node(space, source, "", top=True)
    schema.check_space(space, source)


def _check_node(node: Any, source: str, path: str, top: bool = False) -> None:
    here = path or "SPACE"
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str) or not key or "." in key:
                raise SpaceError(source, here, f"key {key!r} must be a non-empty string without '.'")
            _check_node(value, source, f"{path}.{key}" if path else key)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            _check_node(value, source, f"{here}.{index}")
    elif isinstance(node, Int):
        _check_int(node, source, here)
    elif isinstance(node, Float):
        _check_float(node, source, here)
    elif isinstance(node, Choice):
        _check_choice(node, source, here)
    elif isinstance(node, Repeat):
        count = node.count
        if isinstance(count, Int):
            _check_int(count, source, f"{here}.count")
            if count.low < 0 or count.high > MAX_REPEAT:
                raise SpaceError(source, f"{here}.count", f"{count!r}: a count must be in 0..{MAX_REPEAT}")
        elif not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_REPEAT:
            raise SpaceError(source, here, f"Repeat count must be an Int or an int in 0..{MAX_REPEAT}, got {count!r}")
        _check_node(node.block, source, f"{here}.0")
    elif not isinstance(node, (str, int, float, bool, type(None))):
        raise SpaceError(
            source, here, f"unknown type {type(node).__name__} (expected Int, Float, Choice, Repeat or a constant)"
        )


def _check_int(dim: Int, source: str, path: str) -> None:
    for name in ("low", "high", "step"):
        value = getattr(dim, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise SpaceError(source, path, f"{dim!r}: {name} must be an int, got {value!r}")
    _check_bounds(dim, source, path)
    if dim.step < 1:
        raise SpaceError(source, path, f"{dim!r}: step must be >= 1")
    if dim.log and dim.step != 1:
        raise SpaceError(source, path, f"{dim!r}: log and step cannot be combined")


def _check_float(dim: Float, source: str, path: str) -> None:
    for name in ("low", "high"):
        value = getattr(dim, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise SpaceError(source, path, f"{dim!r}: {name} must be a finite number, got {value!r}")
    _check_bounds(dim, source, path)
    if dim.step is not None and (dim.step <= 0 or dim.log):
        raise SpaceError(source, path, f"{dim!r}: step must be > 0 and cannot be combined with log")


def _check_bounds(dim: Int | Float, source: str, path: str) -> None:
    if dim.low > dim.high:
        raise SpaceError(source, path, f"{dim!r}: low must be <= high")
    if dim.log and dim.low <= 0:
        raise SpaceError(source, path, f"{dim!r}: log=True needs low > 0")


def _check_choice(dim: Choice, source: str, path: str) -> None:
    if not isinstance(dim.options, (list, tuple, dict)):
        raise SpaceError(source, path, f"Choice takes a list or a dict of options, got {type(dim.options).__name__}")
    if len(dim.options) == 0:
        raise SpaceError(source, path, "Choice([]): needs at least one option")
    labels = dim.labels()
    for label in labels:
        if not isinstance(label, (str, int, float, bool, type(None))):
            raise SpaceError(
                source, path, f"option {label!r}: a Choice of sub-spaces must be a dict label -> sub-space"
            )
    if len(set(map(repr, labels))) != len(labels):
        raise SpaceError(source, path, f"{dim!r}: options must be distinct")
    if isinstance(dim.options, dict):
        for label, option in dim.options.items():
            if not isinstance(label, str):  # the config holds the label, and a stored config only strings
                raise SpaceError(source, path, f"branch label {label!r} ({type(label).__name__}): branch labels "
                                               f"must be strings, e.g. Choice({{{str(label)!r}: {{...}}}})")
            if not isinstance(option, dict):
                raise SpaceError(source, f"{path}.{label}", "a branch of a Choice dict must be a sub-space dict")
            _check_node(option, source, f"{path}.{label}")


def sample(space: dict[str, Any], suggest: Suggester, prefix: str = "") -> dict[str, Any]:
    """Draw one concrete config; parameter names are the keys' dotted paths, after `prefix` (a study
    whose space was changed on resume names the new space's parameters apart: `study.param_prefix`)."""
    return _sample_dict(space, suggest, prefix)


def _sample_dict(node: dict[str, Any], suggest: Suggester, prefix: str) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, Choice) and isinstance(value.options, dict):
            label = suggest.suggest_categorical(name, value.labels())
            config[key] = label
            # A branch's keys sit beside the label; its parameters are namespaced by the label
            # so each branch keeps its own distributions across trials.
            config.update(_sample_dict(value.option(label), suggest, f"{name}.{label}."))
        else:
            config[key] = _sample_value(value, suggest, name)
    return config


def _sample_value(value: Any, suggest: Suggester, name: str) -> Any:
    if isinstance(value, Int):
        return suggest.suggest_int(name, value.low, value.high, step=value.step, log=value.log)
    if isinstance(value, Float):
        return suggest.suggest_float(name, value.low, value.high, step=value.step, log=value.log)
    if isinstance(value, Choice):
        return suggest.suggest_categorical(name, value.labels())
    if isinstance(value, Repeat):
        count = value.count
        n = suggest.suggest_int(f"{name}.count", count.low, count.high, step=count.step, log=count.log) \
            if isinstance(count, Int) else count
        return [_sample_value(value.block, suggest, f"{name}.{index}") for index in range(n)]
    if isinstance(value, dict):
        return _sample_dict(value, suggest, f"{name}.")
    if isinstance(value, (list, tuple)):
        return [_sample_value(item, suggest, f"{name}.{index}") for index, item in enumerate(value)]
    return value


def tree(space: Space) -> Any:
    """The space as a rich `Tree` for `show`: what is searched in green, what is fixed dimmed. It walks
    the space as `sample` does (a plain dict or list with a dimension inside is walked into, so that
    dimension is shown searched), and `count_dimensions` decides what counts as searched."""
    from rich.markup import escape
    from rich.tree import Tree

    def grow(parent: Tree, key: str, value: Any) -> None:
        if isinstance(value, Choice) and value.branches:
            branch = parent.add(f"{key}: Choice of {len(value.options)} branches")
            for label, sub in value.options.items():  # type: ignore[union-attr]
                grow_dict(branch.add(f"[bold]{escape(str(label))}[/]"), sub)
        elif isinstance(value, Repeat):
            branch = parent.add(f"{key}: [green]{value!r}[/] of")
            if isinstance(value.block, dict):
                grow_dict(branch, value.block)
            else:
                grow(branch, "block", value.block)
        elif isinstance(value, (Int, Float, Choice)):
            parent.add(f"{key}: [green]{escape(repr(value))}[/]")
        elif isinstance(value, (dict, list, tuple)) and count_dimensions(value):
            branch = parent.add(f"{key}:")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for sub_key, item in items:
                grow(branch, str(sub_key), item)
        else:
            parent.add(f"{key} = {escape(repr(value))}  [dim](fixed)[/]")

    def grow_dict(parent: Tree, node: dict[str, Any]) -> None:
        for key, value in node.items():
            grow(parent, key, value)

    root = Tree(f"[bold]{escape(space.source)}[/]" + (f"  [dim]{escape(space.doc.splitlines()[0])}[/]"
                                                       if space.doc else ""))
    grow_dict(root, space.space)
    return root


def summary(space: Space) -> list[str]:
    """What `show` prints under the tree: the dimensions, and each baseline."""
    from rich.markup import escape

    return [f"{count_dimensions(space.space)} searched dimensions at most (each Repeat at its largest count, "
            "every branch)", *(f"baseline [cyan]{escape(label)}[/]: {escape(str(config))}"
                                for label, config in space.baselines.items())]


def outline(space: Space) -> dict[str, str]:
    """Every dimension and fixed value of `SPACE`, and every baseline, by its path: what a study
    remembers of the space it was run with, so that a resume with another space can say what changed.
    Comments and the docstring are not part of it."""
    out: dict[str, str] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Choice) and node.branches:
            out[path] = repr(node)
            for label, sub in node.options.items():  # type: ignore[union-attr]
                walk(sub, f"{path}.{label}")
        elif isinstance(node, Repeat):
            out[path] = repr(node)
            walk(node.block, f"{path}.*")
        elif isinstance(node, dict) and (node or not path):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, (list, tuple)) and count_dimensions(node):
            for index, value in enumerate(node):
                walk(value, f"{path}.{index}")
        else:
            out[path] = repr(node)

    walk(space.space, "")
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


def count_dimensions(node: Any) -> int:
    """How many searched parameters the space can have at most (each repeat at its largest count)."""
    if isinstance(node, dict):
        return sum(count_dimensions(value) for value in node.values())
    if isinstance(node, (list, tuple)):
        return sum(count_dimensions(value) for value in node)
    if isinstance(node, (Int, Float)):
        return 1
    if isinstance(node, Choice):
        branches = node.options.values() if isinstance(node.options, dict) else []
        return 1 + sum(count_dimensions(branch) for branch in branches)
    if isinstance(node, Repeat):
        count = node.count
        most = count.high if isinstance(count, Int) else count
        return int(isinstance(count, Int)) + most * count_dimensions(node.block)
    return 0
