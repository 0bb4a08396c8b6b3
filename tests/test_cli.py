"""The command line: what each command parses, and every bad input it answers with one line and exit 2."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import SEARCH_SPACE as SPACE
from hypothesis import given
from hypothesis import strategies as st

from search import ranges, run
from search.cli import build_parser, main
from search.space import load_space


@pytest.mark.fast
def test_run_and_worker_parse_into_the_python_api_field_for_field() -> None:
    # Every option of the API is a flag of its command (or filled in by the handler), under the same name.
    parser = build_parser()
    run_args = parser.parse_args(["run", "spaces/mlp.py", "--trials", "7", "--workers", "1", "--keep-top", "0",
                                  "--precision", "float32", "--engine", "keras-tuner", "--tuner", "random"])
    options = run.options_from(run_args, run.SearchOptions, space_file=run_args.space, command="c")
    assert (options.space_file, options.trials, options.workers, options.keep_top, options.precision) == (
        "spaces/mlp.py", 7, 1, 0, "float32")
    assert (options.engine, options.tuner, options.results, options.recycle_after) == ("keras-tuner", "random",
                                                                                      "results", 25)
    missing = {f.name for f in dataclasses.fields(run.SearchOptions)} - set(vars(run_args)) - {"space_file", "command"}
    assert missing == set()
    worker_args = parser.parse_args(["worker", "--study", "s", "--storage", "postgresql://h/db", "--precision", "auto"])
    joined = run.options_from(worker_args, run.JoinOptions, command="c")
    assert (joined.study, joined.storage, joined.precision, joined.recycle_after) == ("s", "postgresql://h/db",
                                                                                     "auto", 25)
    missing = {f.name for f in dataclasses.fields(run.JoinOptions)} - set(vars(worker_args)) - {"command"}
    assert missing == set()


BAD_RUNS = [
    (["--trials", "0"], "--trials 0: expected an integer from 1 to 100,000"),
    (["--sampler", "bogus"], "--sampler 'bogus': expected one of tpe, nsga2, random, cmaes, gp"),
    (["--pruner", "bogus"], "--pruner 'bogus': expected one of median, halving, hyperband, none"),
    (["--storage", "not a url"], "--storage 'not a url': expected a journal file path ending in .log"),
    (["--storage", "postgresql://ann:s3cret@127.0.0.1:1/none"], "--storage postgresql://ann:***@127.0.0.1:1/none: cannot open"),
    (["--workers", "0"], "--workers 0: expected an integer from 1 to"),
    (["--trial-timeout", "-5"], "--trial-timeout -5: expected a number > 0 and <= 31,536,000 (a year)"),
    (["--study", "../escape"], "--study '../escape': expected a study name (letters, digits, '.', '_' and '-', at "
                                "most 100"),
    (["--dataset", "cifar"], "cifar"),
    (["--data", "/nonexistent/mnist.npz"], "/nonexistent/mnist.npz"),
    (["--train-size", "0"], "--train-size 0: expected an integer from 1 to 55,000"),
    (["--epochs", "-1"], "--epochs -1: expected an integer from 1 to 10,000"),
    (["--min-epochs", "0"], "--min-epochs 0: expected an integer from 2 to 10,000 (a trial's first epoch is never "
                            "judged)"),
    (["--min-epochs", "2.5"], "--min-epochs '2.5': expected an integer from 2 to 10,000"),
    (["--min-epochs", "nan"], "--min-epochs 'nan': expected an integer from 2 to 10,000"),
    (["--min-epochs", "11"], "--min-epochs 11: above the 10 epochs a trial trains at most ("),  # the schema's default
    (["--min-epochs", "4", "--epochs", "3"], "--min-epochs 4: above the 3 epochs a trial trains at most (--epochs)"),
    (["--min-epochs", "3", "--pruner", "none"], "--min-epochs 3: the study's pruner is none, so no trial is judged"),
    (["--min-epochs", "3", "--engine", "keras-tuner"], "--min-epochs 3: needs --engine optuna"),
]


@pytest.mark.fast
@pytest.mark.parametrize(("extra", "message"), BAD_RUNS, ids=[" ".join(e) for e, _ in BAD_RUNS])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(write_space, tmp_path: Path, capsys,
                                                           extra: list[str], message: str) -> None:
    space = write_space(SPACE, "small.py")
    results = tmp_path / "results"
    assert main(["run", str(space), "--results", str(results), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert "s3cret" not in err  # passwords never reach the terminal
    assert not results.exists()


@pytest.mark.fast
def test_bad_space_file_exits_2_naming_file_and_key(write_space, tmp_path: Path, capsys) -> None:
    space = write_space("SPACE = {'model': 'mlp', 'layers': Repeat(Int(1, 2), {'units': Int(1024, 32)})}\n")
    assert main(["run", str(space), "--results", str(tmp_path / "results")]) == 2
    assert capsys.readouterr().err == f"error: {space}: layers.0.units: Int(1024, 32): low must be <= high\n"
    assert not (tmp_path / "results").exists()
    assert main(["show", str(space)]) == 2


@pytest.mark.fast
def test_a_space_files_pruner_is_the_default_and_an_unknown_one_is_refused(write_space, tmp_path: Path,
                                                                         capsys) -> None:
    space = write_space("SPACE = {'model': 'mlp', 'learning_rate': Float(1e-3, 1e-2)}\nPRUNER = 'halfing'\n")
    assert main(["run", str(space), "--results", str(tmp_path / "results")]) == 2
    assert capsys.readouterr().err == (f"error: {space}: PRUNER: 'halfing': expected one of median, halving, "
                                       "hyperband, none\n")
    assert not (tmp_path / "results").exists()
    assert load_space("spaces/mlp.py").pruner == "halving"


@pytest.mark.fast
def test_show_prints_tree_and_dimensions(capsys) -> None:
    assert main(["show", "spaces/mlp.py"]) == 0
    out = capsys.readouterr().out
    assert "units: Int(128, 640, log=True)" in out and "searched dimensions" in out and "S5" in out
    assert ("parameters: layers.count, layers.0.units, layers.1.units, activation, dropout, batch_norm, "
            "label_smoothing, learning_rate, rotation_degrees, batch_size") in out  # what run --enqueue takes


BAD_OPTIONS = [
    (["--tuner", "random"], "--tuner random: needs --engine keras-tuner"),
    (["--engine", "ray"], "--engine 'ray': expected one of optuna, keras-tuner"),
    (["--engine", "keras-tuner", "--tuner", "grid"], "--tuner 'grid': expected one of hyperband, bayesian, random"),
    (["--engine", "keras-tuner", "--sampler", "tpe"], "--sampler tpe: an Optuna option"),
    (["--engine", "keras-tuner", "--pruner", "median"], "--pruner median: an Optuna option"),
    (["--engine", "keras-tuner", "--workers", "2"], "--workers 2: --engine keras-tuner runs one trial at a time"),
    (["--max-params", "0"], "--max-params 0: expected an integer from 1 to 1,000,000,000"),
    (["--max-latency-ms", "-1"], "--max-latency-ms -1: expected a number > 0 and <= 60,000"),
    (["--objectives", "accuracy,foo"], "--objectives accuracy,foo: expected accuracy, then any of params and latency"),
    (["--objectives", "params"], "--objectives params: expected accuracy, then"),
    (["--objectives", "accuracy,params", "--pruner", "median"],
     "--pruner median: Optuna cannot prune a study with several objectives (--objectives accuracy,params)"),
    (["--engine", "keras-tuner", "--max-params", "100"], "--objectives, --max-params and --max-latency-ms need"),
    (["--engine", "keras-tuner", "--storage", "postgresql://ann:s3cret@127.0.0.1:1/none"],
     "--storage postgresql://ann:***@127.0.0.1:1/none: --engine keras-tuner keeps its state in"),
]


@pytest.mark.fast
@pytest.mark.parametrize(("extra", "message"), BAD_OPTIONS, ids=[" ".join(e) for e, _ in BAD_OPTIONS])
def test_bad_engine_options_exit_2_with_one_line_and_write_nothing(write_space, tmp_path: Path, capsys,
                                                                   extra: list[str], message: str) -> None:
    space = write_space(SPACE, "small.py")
    results = tmp_path / "results"
    assert main(["run", str(space), "--results", str(results), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err and "s3cret" not in err, err
    assert not results.exists()


@pytest.mark.fast
@pytest.mark.parametrize(("command", "message"), [
    (["leaderboard", "nothere"], "nothere: no study found at"),
    (["leaderboard", "nothere", "--top", "0"], "--top 0: expected an integer from 1 to 100,000"),
    (["compare", "nothere"], "nothere: no study found at"),
    (["report", "nothere"], "nothere: no study found at"),
    (["export", "nothere"], "nothere: no study found at"),
    (["worker", "--study", "nothere"], "nothere: no study found at"),
    (["baselines", "--only", "S9"], "--only S9: expected one of S1, S2, S3, S4, S4-aug, S5"),
    (["baselines", "--scale", "0"], "--scale 0: expected a number > 0 and <= 100"),
    (["show", "nothere.py"], "nothere.py: no such file"),
], ids=lambda value: " ".join(value) if isinstance(value, list) else None)
def test_bad_input_to_any_command_exits_2_with_one_line(tmp_path: Path, capsys, command: list[str],
                                                        message: str) -> None:
    results = tmp_path / "results"
    takes_results = command[0] in ("leaderboard", "compare", "report", "export", "worker")
    assert main([*command, *(["--results", str(results)] if takes_results else [])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not results.exists()


@pytest.mark.fast
def test_a_bad_precision_in_the_environment_stops_run_before_anything_is_written(write_space, tmp_path: Path,
                                                                                 capsys, monkeypatch) -> None:
    monkeypatch.setenv("SEARCH_PRECISION", "half")
    space = write_space(SPACE, "small.py")
    assert main(["run", str(space), "--results", str(tmp_path / "results")]) == 2
    assert capsys.readouterr().err == "error: SEARCH_PRECISION='half': expected one of auto, float32, bfloat16\n"
    assert not (tmp_path / "results").exists()


@pytest.mark.fast
@pytest.mark.parametrize(("argv", "message"), [
    (["run"], "error: the following arguments are required: space (see python -m search run --help)"),
    (["run", "spaces/mlp.py", "--precision", "half"], "error: argument --precision: invalid choice: 'half'"),
    (["bogus"], "error: argument COMMAND: invalid choice: 'bogus'"),
    (["leaderboard", "x", "--sort", "size"], "error: argument --sort: invalid choice: 'size'"),
])
def test_what_argparse_cannot_parse_is_one_line_pointing_to_help(capsys, argv: list[str], message: str) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(message), err
    assert "--help)" in err


@pytest.mark.fast
def test_results_naming_a_file_is_refused_in_one_line(write_space, tmp_path: Path, capsys) -> None:
    space = write_space(SPACE, "small.py")
    results = tmp_path / "results.txt"
    results.write_text("not a folder")
    for argv in (["run", str(space)], ["leaderboard", "small"], ["export", "small"]):
        assert main([*argv, "--results", str(results)]) == 2
        assert capsys.readouterr().err == f"error: --results {results}: not a folder\n"
    assert results.read_text() == "not a folder"


@pytest.mark.parametrize(("argv", "message"), [
    (["--ensemble", "0"], "--ensemble 0: expected an integer from 1 to 100"),
    (["--ensemble", "4"], "--ensemble 4: only 3 kept trials to average (keep more with --keep-top)"),
    (["--ensemble", "2", "--trial", "1"], "--ensemble 2: it takes the best kept trials itself; drop --trial"),
])
def test_a_bad_ensemble_is_one_line_and_writes_nothing(finished_study: Path, capsys, argv: list[str],
                                                       message: str) -> None:
    before = sorted(p.name for p in (finished_study / "small").iterdir())
    assert main(["export", "small", *argv, "--results", str(finished_study)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {message}"), err
    assert sorted(p.name for p in (finished_study / "small").iterdir()) == before


@pytest.mark.fast
def test_readmes_command_block_names_every_option_of_every_command_and_no_other() -> None:
    import re

    from helpers import ROOT

    from search.cli import build_parser

    block = ROOT.joinpath("README.md").read_text().split("## Commands", 1)[1].split("```")[1]
    lines: dict[str, str] = {}
    for line in block.splitlines():
        if line.startswith("python -m search "):
            current = line.split()[3]
            lines[current] = line
        elif line.strip():
            lines[current] += " " + line
    commands = build_parser()._subparsers._group_actions[0].choices  # argparse keeps its subparsers here
    assert set(lines) == set(commands)
    for name, parser in commands.items():
        documented = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", lines[name].split("#")[0]))
        options = {flag for action in parser._actions for flag in action.option_strings if flag.startswith("--")}
        assert documented == options - {"--help"}, name


def numeric_flags() -> list[tuple[str, Any, Any]]:
    """(command, its parser, argparse action) for every option of every command that takes a number."""
    commands = build_parser()._subparsers._group_actions[0].choices  # argparse keeps its subparsers here
    return [(name, parser, action) for name, parser in commands.items() for action in parser._actions
            if action.type in (int, float) or isinstance(action.type, ranges.FlagType)]


def argv_with(name: str, parser: Any, flag: str, value: str) -> list[str]:
    """A command line for `name` that parses but for `flag`'s `value`: every other required argument given
    a valid placeholder (a number its range's low end)."""
    argv = [name]
    for action in parser._actions:
        if flag in action.option_strings or not (action.required or not action.option_strings):
            continue
        placeholder = str(action.type.range.low) if isinstance(action.type, ranges.FlagType) else "x"
        argv += [placeholder] if not action.option_strings else [action.option_strings[0], placeholder]
    return [*argv, flag, value]


NUMERIC = numeric_flags()
NUMERIC_IDS = [f"{name} {action.option_strings[0]}" for name, _, action in NUMERIC]


@pytest.mark.fast
@pytest.mark.parametrize(("name", "parser", "action"), NUMERIC, ids=NUMERIC_IDS)
def test_every_number_on_the_command_line_has_a_stated_range_its_default_lies_in(name: str, parser: Any,
                                                                                 action: Any) -> None:
    assert isinstance(action.type, ranges.FlagType), f"{name} {action.option_strings[0]}: a number without a range"
    allowed = action.type.range
    assert action.type.flag in action.option_strings
    assert action.default is None or allowed.holds(action.default)
    # Nothing a stray digit can make huge: every bound well below 2**40, none below -1.
    assert 0 <= allowed.low and allowed.high < 2**40


@pytest.mark.fast
@pytest.mark.parametrize(("name", "parser", "action"), NUMERIC, ids=NUMERIC_IDS)
@pytest.mark.parametrize("value", ["nan", "inf", "-1", str(2**40), "1e400", "abc", ""])
def test_a_number_out_of_range_is_one_line_exit_2_naming_flag_value_and_range_and_nothing_is_written(
        name: str, parser: Any, action: Any, value: str, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)  # every default folder (results/, the journal) would be made here
    flag = action.option_strings[0]
    assert main(argv_with(name, parser, flag, value)) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith(f"error: {flag} ") and value in err and action.type.range.describe() in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.fast
@given(data=st.data())
def test_a_numeric_flag_takes_exactly_the_finite_numbers_in_its_range(data: st.DataObject) -> None:
    name, _, action = data.draw(st.sampled_from(NUMERIC))
    allowed = action.type.range
    number = data.draw(st.one_of(st.integers(-2**64, 2**64), st.floats(), st.sampled_from(
        [allowed.low, allowed.high, allowed.low - 1, allowed.high + 1, allowed.high * 1.000001])))
    accepted = (isinstance(number, int) or allowed.kind is float) and allowed.holds(allowed.kind(number))
    if accepted:
        assert action.type(repr(number)) == number
    else:
        with pytest.raises(ranges.FlagError) as refused:
            action.type(repr(number))
        assert str(refused.value).startswith(f"{action.type.flag} ") and "\n" not in str(refused.value)


LONG = "a" * 300  # past a file name's 255 bytes: results/<study>/ could not be made


@pytest.mark.fast
@pytest.mark.parametrize(("file", "argv", "message"), [
    ("with space.py", ["run", "{space}"], "{space}: a study is named after its space file, and 'with space' is not a "
                                          "study name (letters, digits, '.', '_' and '-', at most 100, beginning with a "
                                          "letter or digit): rename the file, or pass --study NAME"),
    ("ünï.py", ["run", "{space}"], "{space}: a study is named after its space file, and 'ünï' is not a study name"),
    ("small.py", ["run", "{space}", "--study", LONG], f"--study {LONG[:40]!r}... (300 characters): expected a study "
                                                      "name (letters, digits"),
    ("small.py", ["run", "{space}", "--study", ""], "--study '': expected a study name"),
    ("small.py", ["leaderboard", LONG], f"{LONG[:40]!r}... (300 characters): expected a study name (letters, "
                                        "digits, '.', '_' and '-', at most 100, beginning with a letter or digit) or "
                                        "its space file (.py)"),
    ("small.py", ["export", "../x"], "'../x': expected a study name"),
    ("small.py", ["report", "small", LONG], f"{LONG[:40]!r}... (300 characters): expected a study name"),
    ("small.py", ["worker", "--study", LONG], f"{LONG[:40]!r}... (300 characters): expected a study name"),
], ids=["space in file name", "non-ASCII file name", "300-character --study", "empty --study",
        "300-character study", "a path", "report of two", "worker"])
def test_a_study_name_no_folder_or_storage_can_take_is_one_line_naming_where_it_came_from(
        tmp_path: Path, monkeypatch, capsys, file: str, argv: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    space = tmp_path / file
    space.write_text("SPACE = {'model': 'mlp', 'epochs': 1}\n")
    assert main([part.format(space=space) for part in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: " + message.format(space=space)), err
    assert "--study" in err or "--study" not in " ".join(argv) or argv[0] != "run"  # never a flag not given
    assert [p.name for p in tmp_path.iterdir()] == [file]


@pytest.mark.fast
@pytest.mark.parametrize("argv", [
    ["run", "{space}", "--trials", "1", "--epochs", "1", "--train-size", "100", "--results", "{bad}"],
    ["export", "small", "--results", "{bad}"],
    ["export", "small", "--out", "{bad}"],
    ["report", "small", "--results", "{bad}"],
    ["report", "small", "other", "--results", "{bad}"],
    ["samples", "--out", "{bad}"],
    ["baselines", "--only", "S1", "--scale", "0.01", "--train-size", "100", "--results", "{bad}"],
    ["confirm", "small", "--results", "{bad}"],
    ["worker", "--study", "small", "--results", "{bad}"],
], ids=lambda argv: " ".join(argv[:2] + argv[-2:-1]))
@pytest.mark.parametrize(("where", "message"), [
    ("/proc/search-test", "no folder can be made in /proc (No such file or directory)"),
    ("{tmp}/notes.txt/out", "not a folder ({tmp}/notes.txt is a file)"),
    ("{tmp}/notes.txt", "not a folder"),
], ids=["under /proc", "under a file", "a file"])
def test_a_folder_a_command_cannot_write_into_is_one_line_and_nothing_is_written(
        tmp_path: Path, monkeypatch, capsys, argv: list[str], where: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.py").write_text("SPACE = {'model': 'mlp', 'epochs': 1}\n")
    (tmp_path / "notes.txt").write_text("mine\n")
    before = sorted(tmp_path.iterdir())
    bad = where.format(tmp=tmp_path)
    assert main([part.format(space=tmp_path / "small.py", bad=bad) for part in argv]) == 2
    err = capsys.readouterr().err
    flag = argv[argv.index("{bad}") - 1]
    assert err == f"error: {flag} {bad}: {message.format(tmp=tmp_path)}\n", err
    assert sorted(tmp_path.iterdir()) == before and (tmp_path / "notes.txt").read_text() == "mine\n"


# Passwords of letters no message of `search` holds in a row, split by what no URL parser reads past.
PASSWORDS = st.text(alphabet="QXZJ \n\t\r\x85\u2028@:", min_size=3, max_size=16).filter(
    lambda password: re.search("[QXZJ]{3}", password) is not None)


@pytest.mark.fast
@given(password=PASSWORDS, scheme=st.sampled_from(["postgresql://", "mysql+pymysql://", ""]),
       user=st.sampled_from(["ann", ""]), host=st.sampled_from(["db/search", "127.0.0.1:1/none"]),
       command=st.sampled_from([["baselines", "--only", "{url}"], ["baselines", "--only={url}"], ["show", "{url}"]]))
def test_a_password_given_on_the_command_line_never_shows_in_its_refusal_even_split_by_a_space_or_a_line_break(
        password: str, scheme: str, user: str, host: str, command: list[str]) -> None:
    url = f"{scheme}{user}:{password}@{host}"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main([part.replace("{url}", url) for part in command]) == 2
    refusal = err.getvalue()
    assert refusal.startswith("error: ") and len(refusal.splitlines()) == 1, refusal
    for part in re.findall("[QXZJ]{3,}", password):  # no piece of it either
        assert part not in refusal, (url, refusal)
