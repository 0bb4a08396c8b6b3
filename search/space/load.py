"""Loading a space file: the first stage of the flow (space file -> `Space`).

A space file is a plain Python module exposing `SPACE`, a dict whose values are constants (fixed)
or dimensions: `Int`, `Float`, `Choice` (whose options may be sub-spaces: conditional branches)
and `Repeat` (a block repeated a searched number of times), and optionally `BASELINES`, concrete
configs, and `PRUNER`, the name of the pruner its searches use unless `--pruner` names another.
`load_space` imports the file and validates all of it (checks.py) before anything trains;
`visit.sample` then turns the space into concrete config dicts. The import runs in a child process
with a time limit, so that a file that hangs, ends the process (`os._exit`) or crashes the
interpreter is one line naming it, like any other bad space file; the child hands back the
validated `Space`. Every command that reads a space file (`run`, `show`, workers, `confirm`) comes
through here.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import signal
import subprocess
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


IMPORT_SECONDS = 20.0  # a space file imports in well under a second; past this it hangs
_CHILD = "from search.space.load import _child; _child()"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # where the child finds `search`


def load_space(path: str | Path, time_limit: float = IMPORT_SECONDS) -> Space:
    """Import a space file in a child process and validate it whole; raises `SpaceError` with one line."""
    source = str(path)
    _check_path(source)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))}
    try:
        child = subprocess.run([sys.executable, "-c", _CHILD, source], capture_output=True, timeout=time_limit,
                               env=env, check=False)
    except subprocess.TimeoutExpired as err:
        raise SpaceError(source, "", f"still importing after {time_limit:g} s (does it loop or wait?): a space file "
                                     "must only set SPACE (and BASELINES, PRUNER)") from err
    if child.returncode < 0:
        raise SpaceError(source, "", f"crashed the interpreter when imported ({_signal_name(-child.returncode)})")
    try:
        kind, result = pickle.loads(child.stdout)
    except Exception as err:  # no result: the file ended the process itself (os._exit)
        raise SpaceError(source, "", f"ended the process (exit code {child.returncode}) when imported: a space file "
                                     "must only set SPACE (and BASELINES, PRUNER)") from err
    if kind == "error":
        raise SpaceError(source, *result)
    sys.stderr.write(child.stderr.decode(errors="replace"))  # what the file printed or warned, as if imported here
    return result  # type: ignore[no-any-return]


def _child() -> None:
    """The child's side of `load_space`: load the file named in argv, and write back a pickled
    ("space", Space) or ("error", (path, problem)) on the stdout it was given; whatever the file
    prints goes to stderr."""
    result = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        answer: tuple[str, Any] = ("space", _load_here(sys.argv[1]))
        data = pickle.dumps(answer)
    except SpaceError as err:
        data = pickle.dumps(("error", (err.path, err.problem)))
    except Exception as err:  # a value that passed validation but cannot be handed back
        data = pickle.dumps(("error", ("", f"cannot be read: {type(err).__name__}: {err}".splitlines()[0])))
    result.write(data)
    result.flush()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _load_here(source: str) -> Space:
    """Import a space file in this process and validate it whole."""
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


def _check_path(source: str) -> None:
    path = Path(source)
    if not path.is_file():
        raise SpaceError(source, "", "no such file")
    if path.suffix != ".py":
        raise SpaceError(source, "", "a space file must be a Python module ending in .py")


def _import(source: str) -> types.ModuleType:
    _check_path(source)
    path = Path(source)
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
