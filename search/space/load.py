"""Loading a space file: the first stage of the flow (space file -> `Space`).

A space file is a plain Python module exposing `SPACE`, a dict whose values are constants (fixed)
or dimensions: `Int`, `Float`, `Choice` (whose options may be sub-spaces: conditional branches)
and `Repeat` (a block repeated a searched number of times), and optionally `BASELINES`, concrete
configs, and `PRUNER`, the name of the pruner its searches use unless `--pruner` names another.
`load_space` imports the file and validates all of it (checks.py) before anything trains;
`visit.sample` then turns the space into concrete config dicts. The import runs in a child process
with a time limit, so that a file that hangs, ends the process (`os._exit`) or crashes the
interpreter is one line naming it, like any other bad space file; the child hands back the
validated `Space`. No process the file starts outlives its import: the child runs in a session of
its own whose process group is killed when the import ends, and on Linux it keeps the import in a
fork of itself (keeper.py) and kills whatever is left below it, even a process the file detached
into a session of its own. Every command that reads a space file (`run`, `show`, workers,
`confirm`) comes through here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import pickle
import re
import signal
import subprocess
import sys
import tokenize
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.errors import SpaceError
from search.space import keeper, schema, visit
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

    def most_epochs(self) -> int:
        """The most epochs a searched trial can train (the schema's default where the space sets none)."""
        return max(visit.top_level_values(self.space, "epochs"), default=schema.KEYS["epochs"].default)

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
    # In a session of its own, so that whatever the file starts goes with it (`_end_group`).
    with subprocess.Popen([sys.executable, "-c", _CHILD, source], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env, start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=time_limit)
        except subprocess.TimeoutExpired as err:
            raise SpaceError(source, "", f"still importing after {time_limit:g} s (does it loop or wait?): a space "
                                         "file must only set SPACE (and BASELINES, PRUNER)") from err
        finally:
            _end_group(process)
    child = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
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


def _end_group(process: subprocess.Popen[bytes]) -> None:
    """End the import and whatever it started. A child still running ran out of time: its SIGTERM has it
    kill the import and every process left below it (keeper.py). Then kill the process group, all
    there is where the child cannot keep what the import starts, and reap the child."""
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=2 * keeper.ENDING_SECONDS)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _child() -> None:
    """The child's side of `load_space`: load the file named in argv, and write back a pickled
    ("space", Space) or ("error", (path, problem)) on the stdout it was given; whatever the file
    prints goes to stderr."""
    keeper.keep()  # returns in the fork that imports; this process keeps it, ending what it leaves behind
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
    for name in ("SPACE", "BASELINES", "PRUNER"):
        _check_tree(getattr(module, name, None), name, source)  # paths as checks.py names them: SPACE's keys bare
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
        if not isinstance(label, str) or not label or not label.isprintable() or len(label) > LABEL_CHARS:
            raise SpaceError(source, "BASELINES", f"label {label!r}: expected a name to show it by, a string of "
                                                  f"1 to {LABEL_CHARS} printable characters")
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


MAX_DEPTH = 64  # levels of dicts, lists and dimensions: far past any space, well within Python's recursion limit
LABEL_CHARS = 200  # a baseline's label: shown on the leaderboard, the report and model cards


def _check_tree(value: Any, name: str, source: str) -> None:
    """A value of the file (SPACE, BASELINES, PRUNER) must be a tree of plain values and dimensions: no
    list or dict that holds itself, at most `MAX_DEPTH` levels deep. Walked without recursion, before
    anything else walks, prints or pickles it, so that neither is a RecursionError."""
    top = [] if name == "SPACE" else [name]
    stack: list[tuple[Any, list[str], frozenset[int]]] = [(value, top, frozenset())]
    while stack:
        node, path, above = stack.pop()
        if id(node) in above:
            raise SpaceError(source, ".".join(path) or name, "holds itself: a space file's values are a tree, "
                                                             "not a loop")
        if len(path) - len(top) > MAX_DEPTH:
            raise SpaceError(source, ".".join(path[:len(top) + 3]) + "...",
                             f"nested more than {MAX_DEPTH} levels deep: a space file's values are a shallow tree")
        if isinstance(node, dict):
            children = [(str(key), child) for key, child in node.items()]
        elif isinstance(node, (list, tuple)):
            children = [(str(index), child) for index, child in enumerate(node)]
        elif dataclasses.is_dataclass(node) and not isinstance(node, type):  # Int, Float, Choice, Repeat
            children = [(field.name, getattr(node, field.name)) for field in dataclasses.fields(node)]
        else:
            continue
        inside = above | {id(node)}
        stack.extend((child, [*path, key], inside) for key, child in reversed(children))


def _check_path(source: str) -> None:
    path = Path(source)
    if not path.is_file():
        raise SpaceError(source, "", "no such file")
    if path.suffix != ".py":
        raise SpaceError(source, "", "a space file must be a Python module ending in .py")


def _import(source: str) -> types.ModuleType:
    _check_path(source)
    path = Path(source)
    data = path.read_bytes()
    try:  # in the encoding Python reads it in: UTF-8 unless the file declares another
        data.decode(tokenize.detect_encoding(iter(data.splitlines(keepends=True)).__next__)[0])
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise SpaceError(source, f"line {line}", f"byte {data[err.start]:#04x} is not {err.encoding}: save the file "
                                                 "as UTF-8 text") from err
    except SyntaxError as err:  # not UTF-8 in its first lines, or an encoding declared that Python does not know
        reason = re.sub(r" for '.*?'", "", err.msg).split(";")[0]
        raise SpaceError(source, "", f"is not UTF-8 text ({reason}): save the file as UTF-8 text") from err
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
