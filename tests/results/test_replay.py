"""Replaying a trial from its record on a real MNIST slice: exact when the trial ran deterministically."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from search.cli import main
from search.study.record import Attr
from search.study.studies import load_study

SPACE = """
SPACE = {
    "model": "mlp",
    "layers": Repeat(Int(1, 2), {"units": Int(16, 64, log=True)}),
    "dropout": Float(0.0, 0.3),
    "learning_rate": Float(1e-3, 1e-2, log=True),
    "batch_size": 128,
}
BASELINES = {"broken": {"model": "mlp", "layers": [{"units": 16}], "optimizer": "sgd", "learning_rate": 1e30}}
"""
QUICK = ["--epochs", "3", "--train-size", "2000", "--seed", "3", "--workers", "2"]


def replay(*argv: str) -> subprocess.CompletedProcess[str]:
    """`search replay` in a fresh process: it starts TensorFlow the way the trial's worker did."""
    return subprocess.run([sys.executable, "-m", "search", "replay", *argv], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=300)


@pytest.mark.slow
def test_a_deterministic_trial_replays_exactly(write_space, tmp_path: Path, capsys) -> None:
    space = write_space(SPACE, "replayed.py")
    results = tmp_path / "results"
    assert main(["run", str(space), "--trials", "3", "--deterministic", "--results", str(results), *QUICK]) == 0
    trials = load_study("replayed", results).get_trials(deepcopy=False)
    searched = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(searched) == 2 and trials[0].state.name == "FAIL"  # the broken baseline
    for trial in searched:
        attrs = trial.user_attrs
        assert attrs[Attr.DETERMINISTIC] and attrs[Attr.THREADS] == 1 and attrs[Attr.TRAIN_SIZE] == 2000
        assert set(attrs[Attr.VERSIONS]) == {"tensorflow", "keras", "numpy"} and attrs[Attr.CPU]
        done = replay("replayed", "--trial", str(trial.number), "--deterministic", "--results", str(results))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "exact: every epoch's validation accuracy and the test accuracy equal the recorded ones" in done.stdout
        assert done.stdout.count("same") == len(attrs[Attr.VAL_HISTORY]) + 1  # each epoch, then test
        assert "cannot be exact" not in done.stdout

    # Without --deterministic the replay says beforehand why it may differ.
    loose = replay("replayed", "--trial", str(searched[0].number), "--results", str(results))
    assert loose.returncode == 0, loose.stdout + loose.stderr
    assert "it cannot be exact, since the trial ran under op determinism and this replay does not" in " ".join(
        loose.stdout.split())


@pytest.mark.parametrize(("trial", "message"), [
    ("0", "--trial 0: fail, so it has no finished model to replay; replay a completed trial"),
    ("9", "--trial 9: study 'small' has no such trial (it has 5: 0-4)"),
])
def test_replaying_a_failed_or_missing_trial_is_one_line(finished_study: Path, capsys, trial: str,
                                                        message: str) -> None:
    before = (finished_study / "small" / "journal.log").read_bytes()
    assert main(["replay", "small", "--trial", trial, "--results", str(finished_study)]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert (finished_study / "small" / "journal.log").read_bytes() == before


def test_replaying_a_pruned_trial_is_one_line(write_space, tmp_path: Path, capsys) -> None:
    import optuna

    from search.study.storage import open_storage

    journal = tmp_path / "results" / "pruned" / "journal.log"
    journal.parent.mkdir(parents=True)
    study = optuna.create_study(study_name="pruned", storage=open_storage(str(journal)))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, user_attrs={"seed": 1}))
    assert main(["replay", "pruned", "--trial", "0", "--results", str(tmp_path / "results")]) == 2
    assert capsys.readouterr().err == (
        "error: --trial 0: pruned, so it has no finished model to replay; replay a completed trial\n")
