"""Space files: every dimension type, sampling through a real Optuna trial, every validation error."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from helpers import ROOT

from search.errors import SpaceError
from search.space import Choice, Float, Int, Repeat, count_dimensions, load_space, sample, schema

SPACES = sorted(ROOT.glob("spaces/*.py"))


def ask(seed: int = 0) -> optuna.Trial:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return study.ask()


@pytest.mark.fast
def test_every_type_samples_with_hierarchical_names() -> None:
    space = {
        "model": Choice({
            "mlp": {"layers": Repeat(Int(2, 2), {"units": Int(8, 64, log=True)})},
            "cnn": {"conv_blocks": Repeat(1, {"filters": Int(4, 16, step=4), "pooling": Choice(["max", "avg"])})},
        }),
        "learning_rate": Float(1e-4, 1e-1, log=True),
        "dropout": Float(0.0, 0.5, step=0.1),
        "optimizer": Choice(["adam", "sgd"]),
        "epochs": 3,
    }
    seen = set()
    for seed in range(12):
        trial = ask(seed)
        config = sample(space, trial)
        seen.add(config["model"])
        assert config["epochs"] == 3 and "epochs" not in trial.params  # constants are fixed, not searched
        assert 1e-4 <= config["learning_rate"] <= 1e-1
        assert round(config["dropout"] * 10) == pytest.approx(config["dropout"] * 10)
        if config["model"] == "mlp":
            assert len(config["layers"]) == 2 and "conv_blocks" not in config
            assert set(trial.params) >= {"model", "model.mlp.layers.count", "model.mlp.layers.0.units",
                                          "model.mlp.layers.1.units"}
            assert [layer["units"] for layer in config["layers"]] == [
                trial.params["model.mlp.layers.0.units"], trial.params["model.mlp.layers.1.units"]]
        else:
            (block,) = config["conv_blocks"]
            assert block["filters"] in (4, 8, 12, 16) and block["pooling"] in ("max", "avg")
            assert "model.cnn.conv_blocks.0.filters" in trial.params and "model.cnn.conv_blocks.count" not in trial.params
        schema.resolve(config)  # every sample is a valid concrete config
    assert seen == {"mlp", "cnn"}  # both branches of the conditional were taken


@pytest.mark.fast
def test_repeat_count_is_searched_and_names_are_stable() -> None:
    space = {"model": "mlp", "layers": Repeat(Int(0, 3), {"units": Int(16, 32)})}
    counts = set()
    for seed in range(15):
        trial = ask(seed)
        config = sample(space, trial)
        counts.add(len(config["layers"]))
        assert trial.params["layers.count"] == len(config["layers"])
        assert sorted(k for k in trial.params if k != "layers.count") == [
            f"layers.{i}.units" for i in range(len(config["layers"]))]
    assert counts == {0, 1, 2, 3}


@pytest.mark.fast
def test_count_dimensions() -> None:
    space = {"model": "mlp", "layers": Repeat(Int(1, 3), {"units": Int(8, 9)}), "dropout": Float(0, 0.5),
             "optimizer": Choice(["adam", "sgd"]), "epochs": 2}
    assert count_dimensions(space) == 1 + 3 + 1 + 1


@pytest.mark.fast
def test_model_kinds_come_from_the_space_and_its_baselines() -> None:
    spaces_dir = ROOT / "spaces"
    assert load_space(spaces_dir / "mlp.py").model_kinds() == {"mlp"}
    assert load_space(spaces_dir / "cnn.py").model_kinds() == {"cnn"}
    assert load_space(spaces_dir / "arch.py").model_kinds() == {"mlp", "cnn"}  # a Choice of branches
    assert load_space(spaces_dir / "softmax.py").model_kinds() == {"softmax"}


@pytest.mark.parametrize("path", SPACES, ids=[p.name for p in SPACES])
def test_every_shipped_space_loads_samples_and_builds(path: Path) -> None:
    from search.training import models

    space = load_space(path)
    for seed in range(3):
        config = sample(space.space, ask(seed))
        assert models.build(config).count_params() > 0
    for config in space.baselines.values():
        assert models.build(config).count_params() > 0
    assert "python -m search run" in space.doc  # each file says how to run it


BAD = [
    # (body, expected message fragment)
    ("X = 1\n", "space.py: no SPACE defined"),
    ("SPACE = {'model': 'mlp',\n", "space.py: line 2: syntax error"),
    ("SPACE = [1]\n", "space.py: SPACE: must be a dict"),
    ("SPACE = {'model': 'mlp'}\nPRUNER = 3\n", "space.py: PRUNER: 3: expected a pruner's name, such as 'halving'"),
    ("SPACE = {'model': 'mlp', 'dropout': Float(0.6, 0.1)}\n", "space.py: dropout: Float(0.6, 0.1): low must be <= high"),
    ("SPACE = {'model': 'mlp', 'layers': Repeat(Int(1, 2), {'units': Int(1024, 32)})}\n",
     "space.py: layers.0.units: Int(1024, 32): low must be <= high"),
    ("SPACE = {'model': 'mlp', 'learning_rate': Float(0.0, 0.1, log=True)}\n",
     "space.py: learning_rate: Float(0, 0.1, log=True): log=True needs low > 0"),
    ("SPACE = {'model': 'mlp', 'optimizer': Choice([])}\n", "space.py: optimizer: Choice([]): needs at least one option"),
    ("SPACE = {'model': 'transformer'}\n", "space.py: model: 'transformer': expected one of 'softmax', 'mlp', 'cnn'"),
    ("SPACE = {'model': 'mlp', 'activaton': 'relu'}\n", "space.py: activaton: unknown option 'activaton'"),
    ("SPACE = {'model': 'mlp', 'optimizer': Choice(['adam', 'adamw'])}\n",
     "space.py: optimizer: 'adamw': expected one of 'adam', 'sgd', 'rmsprop'"),
    ("SPACE = {'model': 'mlp', 'dropout': {1, 2}}\n", "space.py: dropout: unknown type set"),
    ("SPACE = {'model': 'mlp', 'layers': Repeat(Int(1, 2), {'unit': 8})}\n", "space.py: layers.0.unit: unknown option"),
    ("SPACE = {'model': Choice({'mlp': {'dropot': 0.1}})}\n", "space.py: model.mlp.dropot: unknown option"),
    ("SPACE = {'model': 'mlp', 'dropout': Float(0.0, 1.5)}\n", "space.py: dropout: Float(0, 1.5): values must be"),
    ("SPACE = {'model': 'mlp', 'batch_size': Float(16, 64)}\n", "space.py: batch_size: Float(16, 64): expected an int"),
    ("SPACE = {'model': 'mlp', 'epochs': Int(1, 5, step=0)}\n", "space.py: epochs: Int(1, 5, step=0): step must be >= 1"),
    ("SPACE = {'dropout': 0.1}\n", "space.py: SPACE: 'model' is required"),
    ("import nonexistent_module\nSPACE = {}\n", "space.py: failed to import: ModuleNotFoundError"),
    ("SPACE = {'model': 'mlp'}\nBASELINES = {'b': {'model': 'mlp', 'optimizer': 'adamw'}}\n",
     "space.py: BASELINES.b.optimizer: 'adamw'"),
    ("SPACE = {'model': 'mlp'}\nBASELINES = {'b': {'model': 'cnn', 'conv_blocks': [{'filters': 4}] * 5}}\n",
     "space.py: BASELINES.b.conv_blocks.4: pooling shrinks the 28x28 image below 1x1 (5 poolings; a 1x1 map cannot "
     "take a 2x2 window)"),
    # Sizes are bounded where the space loads: a typo must not ask for a billion layers.
    ("SPACE = {'model': 'mlp', 'layers': Repeat(Int(1, 10**9), {'units': 8})}\n",
     "space.py: layers.count: Int(1, 1000000000): a count must be in 0..32"),
    ("SPACE = {'model': 'mlp', 'layers': Repeat(100, {'units': 8})}\n",
     "space.py: layers: Repeat count must be an Int or an int in 0..32, got 100"),
    ("SPACE = {'model': 'mlp', 'layers': [{'units': Int(16, 10**6)}]}\n",
     "space.py: layers.0.units: Int(16, 1000000): values must be an int >= 1 and <= 16384"),
    ("SPACE = {'model': 'cnn', 'conv_blocks': Repeat(2, {'filters': Int(8, 5000)})}\n",
     "space.py: conv_blocks.0.filters: Int(8, 5000): values must be an int >= 1 and <= 1024"),
    ("SPACE = {'model': 'mlp', 'layers': [{'units': 100000}]}\n",
     "space.py: layers.0.units: 100000: expected an int >= 1 and <= 16384"),
    ("SPACE = {'model': 'mlp', 'optimizer': Choice({128: {}, 'sgd': {}})}\n",
     "space.py: optimizer: branch label 128 (int): branch labels must be strings, e.g. Choice({'128': {...}})"),
    ("import sys\nsys.exit(3)\n", "space.py: calls exit(3) when imported: a space file must only set SPACE"),
    ("raise RuntimeError('first\\nsecond')\n", "space.py: failed to import: RuntimeError: first"),
    # Values that walking, printing or pickling would recurse on without end: refused before any of them.
    ("x = []\nx.append(x)\nSPACE = {'model': 'mlp', 'activation': x}\n",
     "space.py: activation.0: holds itself: a space file's values are a tree, not a loop"),
    ("x = {'model': 'mlp'}\nx['optimizer'] = Choice({'adam': x})\nSPACE = x\n",
     "space.py: optimizer.options.adam: holds itself"),
    ("x = []\nx.append(x)\nSPACE = {'model': 'mlp'}\nBASELINES = {'a': {'model': 'mlp', 'layers': x}}\n",
     "space.py: BASELINES.a.layers.0: holds itself"),
    ("x = {'units': 16}\nfor _ in range(5000):\n    x = [x]\nSPACE = {'model': 'mlp', 'activation': x}\n",
     "space.py: activation.0.0...: nested more than 64 levels deep"),
    ("x = []\nfor _ in range(5000):\n    x = [x]\nSPACE = {'model': 'mlp'}\nBASELINES = {'a': {'model': 'mlp', "
     "'dropout': x}}\n", "space.py: BASELINES.a.dropout.0...: nested more than 64 levels deep"),
    # A baseline's label is what the leaderboard, the report and model cards show it by.
    ("SPACE = {'model': 'mlp'}\nBASELINES = {1: {'model': 'mlp'}}\n",
     "space.py: BASELINES: label 1: expected a name to show it by, a string of 1 to 200 printable characters"),
    ("SPACE = {'model': 'mlp'}\nBASELINES = {'a\\nb': {'model': 'mlp'}}\n", "space.py: BASELINES: label 'a\\nb'"),
    ("SPACE = {'model': 'mlp'}\nBASELINES = {'': {'model': 'mlp'}}\n", "space.py: BASELINES: label ''"),
]


@pytest.mark.fast
@pytest.mark.parametrize(("body", "message"), BAD, ids=[m.split(": ", 1)[1][:40] for _, m in BAD])
def test_bad_space_is_one_line_naming_file_key_and_problem(write_space, body: str, message: str) -> None:
    path = write_space(body)
    with pytest.raises(SpaceError) as caught:
        load_space(path)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(str(path))
    assert message.split(": ", 1)[1] in text, text


@pytest.mark.fast
def test_show_and_sample_agree_on_what_is_searched(write_space, capsys) -> None:
    from search.cli import main

    # An Int inside a plain list is searched: `sample` asks for it, and `show` must not call it fixed.
    path = write_space("SPACE = {'model': 'mlp', 'layers': [{'units': Int(16, 32)}, {'units': 64}], 'epochs': 2}\n")
    trial = ask()
    config = sample(load_space(path).space, trial)
    assert set(trial.params) == {"layers.0.units"} and config["layers"][1] == {"units": 64}
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "units: Int(16, 32)" in out and "Int(16, 32)  (fixed)" not in out and "1 = {'units': 64}  (fixed)" in out
    assert "1 searched dimensions" in out


@pytest.mark.fast
def test_missing_file_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="no such file"):
        load_space(tmp_path / "nope.py")
    other = tmp_path / "space.txt"
    other.write_text("SPACE = {}")
    with pytest.raises(SpaceError, match="must be a Python module"):
        load_space(other)


@pytest.mark.fast
@pytest.mark.parametrize(("data", "message"), [
    (b"SPACE = {'model': 'mlp', 'activation': '\xff'}\n", "is not UTF-8 text (invalid or missing encoding "
                                                          "declaration): save the file as UTF-8 text"),
    (b"SPACE = {'model': 'mlp'}\n\n\n# caf\xe9\n", "line 4: byte 0xe9 is not utf-8: save the file as UTF-8 text"),
    (b"# -*- coding: bogus -*-\nSPACE = {'model': 'mlp'}\n", "is not UTF-8 text (unknown encoding: bogus): save the file as UTF-8 text"),
], ids=["first line", "later line", "unknown encoding"])
def test_a_space_file_that_is_not_utf8_is_one_line_asking_for_utf8(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "latin.py"
    path.write_bytes(data)
    with pytest.raises(SpaceError) as caught:
        load_space(path)
    assert str(caught.value) == f"{path}: {message}"
    path.write_bytes(b"# -*- coding: latin-1 -*-\nSPACE = {'model': 'mlp'}  # caf\xe9\n")  # declared: Python's rule
    assert load_space(path).space == {"model": "mlp"}


RUNAWAY = [
    # (body, expected message): a file that would hang, end or crash the command it is loaded by
    ("while True:\n    pass\n", "space.py: still importing after 1 s (does it loop or wait?)"),
    ("import os\nos._exit(0)\n", "space.py: ended the process (exit code 0) when imported"),
    ("import os\nos._exit(3)\n", "space.py: ended the process (exit code 3) when imported"),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n",
     "space.py: crashed the interpreter when imported (SIGSEGV)"),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
     "space.py: crashed the interpreter when imported (SIGKILL)"),
]


@pytest.mark.fast
@pytest.mark.parametrize(("body", "message"), RUNAWAY, ids=[m.split(": ", 1)[1][:30] for _, m in RUNAWAY])
def test_a_space_file_that_hangs_exits_or_crashes_is_one_line(write_space, body: str, message: str) -> None:
    path = write_space(body)
    with pytest.raises(SpaceError) as caught:
        load_space(path, time_limit=1)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(str(path)) and message.split(": ", 1)[1] in text, text


LEAVERS = {
    # how a space file starts a process and leaves it behind: each writes the process's pid to PID_FILE
    "in its group": "import subprocess, pathlib\n"
                    "left = subprocess.Popen(['sleep', '600'], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, "
                    "stderr=subprocess.DEVNULL)\n"
                    "pathlib.Path(PID_FILE).write_text(str(left.pid))\n",
    "in a session of its own": "import subprocess, pathlib\n"
                               "left = subprocess.Popen(['sleep', '600'], stdin=subprocess.DEVNULL, "
                               "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)\n"
                               "pathlib.Path(PID_FILE).write_text(str(left.pid))\n",
    "forked twice, in a session of its own": "import os, pathlib\n"  # as a daemon detaches
                                             "read, write = os.pipe()\n"
                                             "if os.fork() == 0:\n"
                                             "    os.setsid()\n"
                                             "    if os.fork() == 0:\n"
                                             "        os.write(write, str(os.getpid()).encode())\n"
                                             "        null = os.open(os.devnull, os.O_RDWR)\n"
                                             "        for fd in (0, 1, 2):\n"
                                             "            os.dup2(null, fd)\n"
                                             "        os.execvp('sleep', ['sleep', '600'])\n"
                                             "    os._exit(0)\n"
                                             "os.close(write)\n"
                                             "pathlib.Path(PID_FILE).write_text(os.read(read, 32).decode())\n",
}


@pytest.mark.fast
@pytest.mark.parametrize("leaver", list(LEAVERS))
@pytest.mark.parametrize("body", [body for body, _ in RUNAWAY] + ["SPACE = {'model': 'mlp'}\n"],
                         ids=[m.split(": ", 1)[1][:30] for _, m in RUNAWAY] + ["a good file"])
def test_no_process_a_space_file_starts_outlives_its_import(write_space, tmp_path: Path, body: str,
                                                            leaver: str) -> None:
    import os
    import time

    pid_file = tmp_path / "pid"
    path = write_space(f"PID_FILE = {str(pid_file)!r}\n" + LEAVERS[leaver] + body)
    try:
        load_space(path, time_limit=5)  # time to start Python and the process, on a busy machine too
    except SpaceError:
        pass
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{pid}/stat") as stat:  # killed, but not yet reaped by init: gone all the same
            if stat.read().split(") ")[1].startswith("Z"):
                break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        raise AssertionError(f"the space file's `sleep 600` (pid {pid}) outlived the import")


@pytest.mark.fast
@pytest.mark.parametrize("command", ["show", "run"])
def test_every_command_loads_a_space_file_apart_from_itself(write_space, tmp_path: Path, capsys,
                                                            command: str) -> None:
    from search.cli import main

    path = write_space("import os\nprint('hello from the file')\nos._exit(0)\n")
    results = tmp_path / "results"
    argv = [command, str(path)] + (["--trials", "1", "--results", str(results)] if command == "run" else [])
    assert main(argv) == 2  # the file's os._exit ended its child, not this process
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: ended the process (exit code 0)"), err
    assert not results.exists()


@pytest.mark.fast
def test_what_a_space_file_prints_still_shows(write_space, capsys) -> None:
    path = write_space("import warnings\nprint('from the file')\nSPACE = {'model': 'mlp'}\n")
    assert load_space(path).space == {"model": "mlp"}
    assert "from the file" in capsys.readouterr().err
