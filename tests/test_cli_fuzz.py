"""Every command's command line, fuzzed from its own argparse definition: whatever the arguments, the
command succeeds (exit 0), or refuses them in one line on stderr with exit 2 and writes nothing; never a
traceback, never a password.

No generated command line trains: `run` is only ever given a space file that is refused, `baselines`
always a tutorial that does not exist, and every command that would train (worker, confirm, replay,
export, report) only study names that are not stored. `leaderboard` and `compare` also get a real stored
study (written through Optuna, no training) to read. `--ray` (it would start or reach a Ray cluster) and
`--debug` (it shows tracebacks on purpose) are left out. SEARCH_FUZZ=N tries N command lines instead of
the profile's default (conftest.py).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from search.cli import build_parser, main
from search.ranges import FlagType

PASSWORD = "s3cret"
# Paths relative to the command's folder (a fresh copy of TEMPLATE each time), so that nothing a command
# accepts is written outside it; /proc/x is the one absolute path: nothing can be made there.
PATHS = ["nothere", "afile", "adir", "afile/x", "/proc/x", "notes.log", "bad.py", "space.txt", "results",
         "results/s/journal.log", "adir/new.log", "nothere/x.log", "ünï.py", "with space.py", "a" * 300]
URLS = [f"postgresql://ann:{PASSWORD}@127.0.0.1:1/none", "sqlite:///adir/x.db", "sqlite://x.db", "s3://bucket",
        "s3://", "ftp://x", f"ann:{PASSWORD}@db/search"]
NUMBERS = ["nan", "inf", "-inf", "-1", "0", "1", "2", "0.5", "-0", "1e400", str(2**64), "1_000", "0x10", " 3"]
TEXT = st.text(max_size=12).filter(lambda text: not text.startswith(("/", "~")) and ".." not in text
                                   and "\x00" not in text)
VALUES = st.one_of(st.sampled_from(PATHS + URLS + NUMBERS + [""]), TEXT)

# What each positional argument may be given: never a space file or study that would train.
POSITIONALS: dict[tuple[str, str], list[str]] = {
    ("run", "space"): ["nothere.py", "bad.py", "space.txt", "adir", "afile", "ünï.py", "with space.py", ""],
    ("show", "space"): ["good.py", "bad.py", "nothere.py", "space.txt", "adir", "ünï.py", "a" * 300 + ".py"],
    ("leaderboard", "study"): ["s", "results/s.py", "other", "a" * 300, "../s", ""],
    ("compare", "studies"): ["s", "s.py", "other", "a" * 300, ""],
    ("predict", "model"): ["nothere", "afile", "adir", "notes.log", "x.tflite", "x.keras"],
    ("predict", "images"): ["nothere.png", "afile", "adir", ""],
}
UNSTORED = ["other", "nothere.py", "a" * 300, "../x", "", "-x", "ünï"]
LEFT_OUT = {"--help", "--ray", "--debug"}


def commands() -> dict[str, Any]:
    return dict(build_parser()._subparsers._group_actions[0].choices)  # argparse keeps its subparsers here


def value_for(command: str, action: Any) -> st.SearchStrategy[str]:
    """Values for an option: its choices and numbers as well as anything."""
    special: list[str] = list(action.choices or [])
    if isinstance(action.type, FlagType):
        allowed = action.type.range
        special += [str(allowed.low), str(allowed.high), repr(allowed.high + 1), repr(allowed.low - 1)]
    if command == "run" and action.dest == "objectives":
        special += ["accuracy", "accuracy,params", "params", "accuracy,accuracy"]
    return st.one_of(st.sampled_from(special), VALUES) if special else VALUES


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    """A command line for one command: its positionals, then any of its options, each any number of
    times, with values of every kind, and now and then a flag it does not have."""
    name = draw(st.sampled_from(sorted(commands())))
    parser = commands()[name]
    argv = [name]
    options = [action for action in parser._actions if action.option_strings
               and not set(action.option_strings) & LEFT_OUT]
    for action in parser._actions:
        if action.option_strings or action.dest == "help":
            continue
        pool = POSITIONALS.get((name, action.dest), UNSTORED)
        count = draw(st.integers(1, 3)) if action.nargs in ("+", "*") else 1
        argv += draw(st.lists(st.sampled_from(pool), min_size=count, max_size=count))
    for action in options:  # a required option, mostly given: worker --study, replay --trial, samples --out
        if action.required and draw(st.integers(0, 9)):
            argv += [action.option_strings[-1], draw(st.sampled_from(UNSTORED) if action.dest == "study"
                                                     else value_for(name, action))]
    for action in draw(st.lists(st.sampled_from(options), max_size=5)) if options else []:
        flag = action.option_strings[-1]
        if action.nargs == 0:  # a switch
            argv.append(flag)
        elif draw(st.booleans()):
            argv += [flag, draw(value_for(name, action))]
        else:
            argv.append(f"{flag}={draw(value_for(name, action))}")
    if name in ("worker", "replay") and draw(st.booleans()):
        argv = [arg if arg != "s" else "other" for arg in argv]
    if draw(st.integers(0, 9)) == 0:
        argv.insert(draw(st.integers(1, len(argv))), draw(st.sampled_from(["--bogus", "-x", "--", "--results"])))
    if name == "baselines":
        argv += ["--only", "S9"]  # refused before anything trains, whatever else is given
    return argv


TEMPLATE: list[Path] = []


def template() -> Path:
    """The folder every command line runs in: the files PATHS name, and a real stored study `s` of three
    finished trials (written through Optuna's API and the trial record, as a search writes them)."""
    if TEMPLATE:
        return TEMPLATE[0]
    import optuna
    from helpers import recorded

    from search.study import storage

    folder = Path(tempfile.mkdtemp(prefix="cli-fuzz-"))
    (folder / "afile").write_text("a file\n")
    (folder / "adir").mkdir()
    (folder / "notes.log").write_text("Monday: try a wider layer.\n")
    (folder / "space.txt").write_text("SPACE = {'model': 'mlp'}\n")
    (folder / "bad.py").write_text("SPACE = {'model': 'mlp', 'dropout': 7}\n")
    (folder / "good.py").write_text("SPACE = {'model': 'mlp', 'epochs': 1}\n")
    journal = folder / "results" / "s" / "journal.log"
    storage.claim_folder(journal.parent, str(journal))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = recorded([("complete", 0.9, 0.89, {}), ("pruned", 0.5, None, {}), ("fail", 0.1, None, {})], "s")
    optuna.copy_study(from_study_name="s", from_storage=study._storage, to_storage=storage.open_storage(str(journal)))
    TEMPLATE.append(folder)
    return folder


@pytest.fixture(scope="module", autouse=True)
def _template_removed():
    yield
    for folder in TEMPLATE:
        shutil.rmtree(folder, ignore_errors=True)


def files_under(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): path.stat().st_size for path in folder.rglob("*")}


# Characters that end or redraw a line on a terminal, or that `str.splitlines` takes for a line's end.
BREAKS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1e", "\x85", "\u2028", "\u2029", "\t", "\x1b[2K"]


@st.composite
def broken_command_lines(draw: st.DrawFn) -> list[str]:
    """A command line with a line break (or another control character) somewhere in one of its arguments."""
    argv = draw(command_lines())
    argv += [""] if len(argv) == 1 else []  # a command alone (`samples` without its --out): a value after it
    at = draw(st.integers(1, len(argv) - 1))
    cut = draw(st.integers(0, len(argv[at])))
    argv[at] = argv[at][:cut] + draw(st.sampled_from(BREAKS)) + argv[at][cut:]
    return argv


@pytest.mark.fast
@given(argv=command_lines())
# What the fuzzing found, kept as examples: a name no file system takes reached the OS as a traceback, a
# URL given where none belongs was shown back with its password, and a value holding a newline, echoed in
# its refusal, made it two lines.
@example(argv=["show", "a" * 300 + ".py"])
@example(argv=["predict", "x.tflite", "b" * 256])
@example(argv=["baselines", f"--only=postgresql://ann:{PASSWORD}@127.0.0.1:1/none", "--only", "S9"])
@example(argv=["leaderboard", "s", "--storage", f"ann:{PASSWORD}@db/search"])
@example(argv=["samples", "--out", f"postgresql://ann:{PASSWORD}@127.0.0.1:1/none"])  # a folder named like a URL
@example(argv=["baselines", "--only=\n", "--only", "S9"])
def test_any_command_line_succeeds_or_is_refused_in_one_line_writing_nothing(argv: list[str]) -> None:
    keeps_the_contract(argv)


@pytest.mark.fast
@given(argv=broken_command_lines())
def test_a_line_break_in_any_argument_leaves_a_refusal_one_line(argv: list[str]) -> None:
    keeps_the_contract(argv)


def keeps_the_contract(argv: list[str]) -> None:
    """Run `argv` in a fresh copy of the template folder: exit 0, or exit 2 with exactly one line on stderr
    (by every line ending `str.splitlines` knows) and nothing on stdout or on disk; never a traceback or
    a password."""
    with tempfile.TemporaryDirectory() as parent:
        folder = Path(parent) / "cwd"
        shutil.copytree(template(), folder)
        before = files_under(folder)
        out, err = io.StringIO(), io.StringIO()
        here = os.getcwd()
        os.chdir(folder)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(list(argv))
        finally:
            os.chdir(here)
        shown = out.getvalue() + err.getvalue()
        event(f"{argv[0]}: exit {code}" + (f", {err.getvalue().split(':')[1].strip()[:20]}" if code == 2 else ""))
        assert "Traceback" not in shown and PASSWORD not in shown, (argv, shown)
        assert code in (0, 2), (argv, code, shown)
        if code == 2:
            refusal = err.getvalue()
            assert refusal.startswith("error: ") and len(refusal.splitlines()) == 1 and refusal.endswith("\n"), (
                argv, refusal)
            assert out.getvalue() == "", (argv, out.getvalue())
            assert files_under(folder) == before, argv
