"""Loading a space file: the first stage of the flow (space file -> `Space`).

A space file is a plain Python module exposing `SPACE`, a dict whose values are constants (fixed)
or dimensions: `Int`, `Float`, `Choice` (whose options may be sub-spaces: conditional branches)
and `Repeat` (a block repeated a searched number of times), and optionally `BASELINES`, concrete
configs, and `PRUNER`, the name of the pruner its searches use unless `--pruner` names another.
`load_space` imports the file and validates all of it (checks.py) before anything trains;
`visit.sample` then turns the space into concrete config dicts.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.errors import SpaceError
from search.space import schema
from search.space.checks import validate
from search.space.dimensions import Choice, Dimension


@dataclass(frozen=True)
class Space:
    """A validated space file: its `SPACE`, its `BASELINES`, its `PRUNER` and where it came from."""

    source: str
    space: dict[str, Any]
    baselines: dict[str, dict[str, Any]]
    doc: str
    pruner: str | None = None

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
    pruner = getattr(module, "PRUNER", None)
    if pruner is not None and not isinstance(pruner, str):
        raise SpaceError(source, "PRUNER", f"{pruner!r}: expected a pruner's name, such as 'halving'")
    return Space(source, space, dict(baselines), (module.__doc__ or "").strip(), pruner)


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
                                     "SPACE (and BASELINES, PRUNER)") from err
    except Exception as err:  # the file's own code raised: report it as the file's fault
        text = str(err).strip().splitlines()
        raise SpaceError(source, "", f"failed to import: {type(err).__name__}: {text[0] if text else ''}") from err
    finally:
        sys.modules.pop(name, None)
    return module
