"""How a run ends when its trials cannot do anything: every trial failing, limits below the whole space, a
full disk. Each is one line and a non-zero exit; nothing is left running."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, fill

from search.cli import main
from search.study import lifecycle, record
from search.study.journal import JOURNAL, RESERVE
from search.study.record import Record
from search.study.studies import load_study

QUICK = ["--trials", "3", "--epochs", "1", "--train-size", "500", "--seed", "0", "--workers", "1"]
TINY = """
SPACE = {"model": "mlp", "layers": Repeat(Int(1, 2), {"units": Int(16, 64, log=True)}), "batch_size": 128}
"""


def row(number: int, state: str, reason: str = "", n_params: int | None = None) -> Record:
    return Record(number, state, float("nan"), float("nan"), n_params, 0, 0.0, "", {}, None, reason)


@pytest.mark.fast
def test_the_verdict_names_the_commonest_failure_and_nothing_when_a_trial_trained() -> None:
    rows = [row(0, "fail", "NaN loss"), row(1, "fail", "out of memory"), row(2, "fail", "NaN loss")]
    assert lifecycle.verdict(rows) == "all 3 trials failed; the commonest reason (2 of 3): NaN loss"
    assert lifecycle.verdict([*rows, row(3, "pruned")]) is None
    rejected = [row(0, "rejected", "rejected before training: 900 parameters over --max-params 1", 900),
                row(1, "rejected", "rejected before training: 300 parameters over --max-params 1", 300)]
    assert lifecycle.verdict(rejected) == ("all 2 configs were over the limits and none trained (the smallest: "
                                           "300 parameters over --max-params 1): raise the limit or narrow the space")


@pytest.mark.slow
def test_a_run_whose_every_trial_failed_exits_1_with_the_commonest_reason(write_space, tmp_path: Path,
                                                                          capsys) -> None:
    # Fewer trials than the failure streak that stops a run: it ends on its own, and must still say so.
    space = write_space('SPACE = {"model": "mlp", "layers": [{"units": Int(16, 32)}], "optimizer": "sgd", '
                        '"learning_rate": Float(1e29, 1e30, log=True)}\n', "broken.py")  # the loss becomes NaN
    assert main(["run", str(space), *QUICK, "--results", str(tmp_path)]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("stopped: all 3 trials failed; the commonest reason (3 of 3): "), last


@pytest.mark.slow
def test_limits_below_every_config_stop_the_run_in_one_line(write_space, tmp_path: Path, capsys) -> None:
    space = write_space(TINY, "tiny.py")
    assert main(["run", str(space), *QUICK, "--max-params", "1", "--results", str(tmp_path)]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("stopped: all ") and "over the limits and none trained" in last, last
    trials = load_study("tiny", tmp_path).get_trials(deepcopy=False)
    assert all(record.read(t).state == "rejected" for t in trials)
    assert len(trials) < lifecycle.MAX_CONSECUTIVE_REJECTIONS  # stopped long before the streak of a feasible space


@pytest.mark.slow
def test_a_full_disk_stops_the_run_in_one_line_and_the_trial_it_stopped_takes_no_place(
        write_space, small_disk: Path, capsys) -> None:
    space = write_space(TINY, "tiny.py")
    results = small_disk / "results"
    results.mkdir()
    fill(small_disk, 64 * 1024)  # room for the journal's records, not for a trial's weights
    assert main(["run", str(space), *QUICK, "--results", str(results)]) == 1
    out = capsys.readouterr().out
    stopped = [line for line in out.splitlines() if line.startswith("stopped:")]
    assert len(stopped) == 1 and "no space left on its disk" in stopped[0], out[-2000:]
    trials = load_study("tiny", results).get_trials(deepcopy=False)
    assert not [t for t in trials if t.state.name == "RUNNING"]
    assert record.counted(trials) == 0 and record.read(trials[0]).reason.startswith(lifecycle.DISK_FULL)
    assert not list((results / "tiny").glob("trials/*/*"))  # no half-written weights
    # Reading works on the full disk.
    assert main(["leaderboard", "tiny", "--results", str(results), "--format", "csv"]) == 0
    assert not list((results / "tiny").glob(f"{JOURNAL}.torn*"))


@pytest.mark.slow
def test_a_disk_that_fills_as_a_trial_starts_leaves_no_trial_running(write_space, small_disk: Path) -> None:
    # The disk fills once the trial is created and before it keeps any progress, whose removal would make
    # room for the records that end it.
    space = write_space(TINY, "tiny.py")
    results = small_disk / "results"
    results.mkdir()
    argv = [sys.executable, "-m", "search", "run", str(space), "--trials", "3", "--epochs", "3", "--train-size",
            "20000", "--seed", "0", "--workers", "1", "--results", str(results)]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = results / "tiny" / JOURNAL
    deadline = time.monotonic() + 120
    while not (journal.is_file() and '"op_code":4' in journal.read_text()):  # a trial was created
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.01)
    fill(small_disk, 0)
    assert '"op_code":7' not in journal.read_text()  # no epoch had ended: no progress kept yet
    assert journal.with_name(JOURNAL + RESERVE).is_file()
    out, err = process.communicate(timeout=300)
    assert process.returncode == 1, (out[-2000:], err[-2000:])
    stopped = [line for line in out.splitlines() if line.startswith("stopped:")]
    assert len(stopped) == 1 and "no space left" in stopped[0], out[-2000:]
    assert "Traceback" not in err, err[-3000:]
    trials = load_study("tiny", results).get_trials(deepcopy=False)
    assert trials and not [t.number for t in trials if t.state.name == "RUNNING"]
    # With room again, the same command finishes the budget, and its trials are counted once.
    (small_disk / "filler").unlink()
    finished = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert record.counted(load_study("tiny", results).get_trials(deepcopy=False)) == 3
