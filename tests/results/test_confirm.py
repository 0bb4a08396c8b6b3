"""Confirming a winner on a real MNIST slice: exactly K*S trainings however often it is started, the
statistics behind its verdict, and export's default once it has run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import recorded
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from search.cli import main
from search.errors import EXIT_FAILED
from search.results import confirm
from search.study import record
from search.study.record import Attr, StudyAttr
from search.study.studies import load_study

SPACE = """
SPACE = {
    "model": "mlp",
    "layers": Repeat(Int(1, 2), {"units": Int(16, 64, log=True)}),
    "learning_rate": Float(1e-3, 1e-2, log=True),
    "batch_size": 128,
}
BASELINES = {"tiny": {"model": "mlp", "layers": [{"units": 8}], "learning_rate": 1e-3}}
"""
QUICK = ["--epochs", "2", "--train-size", "2000", "--seed", "0", "--workers", "1"]


@pytest.mark.fast
def test_welch_interval_and_p_are_scipys() -> None:
    a, b = [0.9861, 0.9870, 0.9858], [0.9842, 0.9851, 0.9839]
    low, high, p = confirm.welch(a, b)
    reference = stats.ttest_ind(a, b, equal_var=False)
    interval = reference.confidence_interval(confidence_level=confirm.LEVEL)
    assert (low, high) == pytest.approx((interval.low, interval.high), abs=1e-12)
    assert p == pytest.approx(reference.pvalue, abs=1e-12) and low > 0
    same = [0.98, 0.98]
    assert confirm.welch(same, same) == (0.0, 0.0, 1.0)


@pytest.mark.fast
def test_the_time_of_a_confirmation_counts_its_rounds() -> None:
    assert confirm.makespan([453.0] * 3, 2) == 906.0  # two at once, then the third alone
    assert confirm.makespan([100.0, 100.0, 300.0], 2) == 300.0  # the long one first, the short two beside it
    assert confirm.makespan([60.0] * 4, 1) == 240.0 and confirm.makespan([], 2) == 0.0
    assert confirm.makespan([453.0] * 3, 3, cores=2) == 679.5  # three at once, sharing the two cores


@pytest.mark.fast
@given(st.integers(1, 64), st.integers(1, 16), st.floats(1.0, 1e4))
def test_confirm_never_picks_workers_that_take_longer_than_one_per_core(trainings: int, cores: int,
                                                                         seconds: float) -> None:
    count = confirm.workers_for(trainings, cores)
    usual = confirm.makespan([seconds] * trainings, min(cores, trainings))
    assert 1 <= count <= max(cores, min(trainings, 2 * cores))
    assert confirm.makespan([seconds] * trainings, count, cores) <= usual
    assert confirm.workers_for(3, 2) == 3 and confirm.workers_for(4, 2) == 2 and confirm.workers_for(1, 2) == 1


@pytest.mark.fast
def test_an_unconfirmed_search_stands_against_its_best_baseline_with_the_command_that_settles_it() -> None:
    seconds = {Attr.TRAIN_SECONDS: 120.0}
    study = recorded([
        ("complete", 0.97, 0.96, seconds),  # selected by validation
        ("complete", 0.95, 0.94, {**seconds, Attr.BASELINE: "S3"}),  # the best baseline
        ("complete", 0.93, 0.98, {Attr.BASELINE: "S2"}),
        ("complete", 0.96, 0.99, {}),  # better by test only: not what stands
    ])
    line = confirm.standing(study, workers=2)
    assert line is not None and line.startswith("where it stands: trial 0 tests 96.00% against S3's 94.00%")
    # 3 more trainings of the pick and 2 of the baseline (its run in the search is one of its 3), 120 s
    # apiece, on 2 workers: three rounds, 6 min.
    assert line.endswith(f"`python -m search confirm {study.study_name}` trains it 3 more times and the baseline 2 "
                         "(about 6 min on 2 workers) and says")
    study.set_user_attr(StudyAttr.SEED, 0)  # what `run` records, and confirm's seeds start from
    confirm.queue(study, confirm.TOP, confirm.SEEDS)
    assert confirm.standing(study, workers=2) is None  # confirmed (or being): its verdict says where it stands
    assert confirm.standing(recorded([("complete", 0.97, 0.96, {Attr.BASELINE: "S3"}), ("complete", 0.9, 0.9, {})]),
                            workers=2) is None  # the best is a baseline: nothing to settle
    assert confirm.standing(recorded([("complete", 0.97, 0.96, {})]), workers=2) is None  # nothing to stand against


@pytest.mark.slow
def test_confirm_adds_exactly_k_times_s_trainings_across_an_interruption(write_space, tmp_path: Path,
                                                                         capsys) -> None:
    space = write_space(SPACE, "confirmed.py")
    results = tmp_path / "results"
    assert main(["run", str(space), "--trials", "5", "--results", str(results), *QUICK]) == 0
    searched = load_study("confirmed", results).get_trials(deepcopy=False)
    command = ["confirm", "confirmed", "--top", "2", "--seeds", "3", "--workers", "1", "--results", str(results)]

    # Ctrl-C once the first confirm training has finished.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "search", *command], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 180
    while not any(record.is_confirmation(t) and record.ended_on_its_own(t)
                  for t in load_study("confirmed", results).get_trials(deepcopy=False)):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert re.search(r"trial \d+ \[confirms trial \d+, seed \d\] complete: val", output), output  # shown, not markup
    halfway = [t for t in load_study("confirmed", results).get_trials(deepcopy=False) if record.is_confirmation(t)]
    assert 1 <= sum(record.ended_on_its_own(t) for t in halfway) < 5

    capsys.readouterr()
    assert main(command) == 0  # resumed: only what is missing
    assert main(command) == 0  # done: nothing more (each of the two prints both configurations, 3/3 seeds)
    out = capsys.readouterr().out
    trials = load_study("confirmed", results).get_trials(deepcopy=False)
    runs = [t for t in trials if record.is_confirmation(t) and record.ended_on_its_own(t)]
    # 3 trainings of the best configuration, 2 of the baseline's: its own run in the search is its first.
    assert len(runs) == 5 and not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    pairs = sorted((t.user_attrs[Attr.CONFIRM_OF], t.user_attrs[Attr.REPLICA]) for t in runs)
    chosen = confirm.candidates(load_study("confirmed", results), 2)
    assert pairs == sorted((row.number, replica) for row in chosen for replica in range(3)
                           if not (row.baseline and replica == 0))
    assert any(row.baseline == "tiny" for row in chosen)  # the best baseline is always confirmed
    seeds = [t.user_attrs[Attr.SEED] for t in runs]
    assert len(set(seeds)) == 5 and not set(seeds) & {t.user_attrs[Attr.SEED] for t in searched}
    for run in runs:  # each trains its trial's config again, never pruned
        assert run.user_attrs[Attr.CONFIG] == trials[run.user_attrs[Attr.CONFIRM_OF]].user_attrs[Attr.CONFIG]
        assert run.state.name == "COMPLETE"
    assert record.counted(trials) == 5  # the search's own budget is untouched

    # The verdict is computed from the trials' own numbers.
    found = confirm.summary(load_study("confirmed", results))
    assert found is not None and found.complete
    by_number = {c.trial.number: c for c in found.candidates}
    for candidate in found.candidates:
        own = [candidate.trial.test_accuracy] if candidate.trial.baseline else []
        assert sorted(candidate.test) == sorted(own + [
            t.user_attrs[Attr.TEST_ACCURACY] for t in runs if t.user_attrs[Attr.CONFIRM_OF] == candidate.trial.number])
    winner = max(found.candidates, key=lambda c: sum(c.val) / len(c.val))
    assert found.winner is by_number[winner.trial.number]
    printed = " ".join(out.split())  # rich wraps long lines
    assert printed.count("3/3") == 4 and " ".join(confirm.verdict(found).split()) in printed
    if found.winner is not found.baseline:
        low, high, p = confirm.welch(found.winner.test, found.baseline.test)  # type: ignore[union-attr]
        assert f"[{100 * low:+.2f}, {100 * high:+.2f}] points" in confirm.verdict(found) and f"p = {p:.2g}" in \
            confirm.verdict(found)

    # export with no --trial takes the confirmed winner, and its card says so.
    assert main(["export", "confirmed", "--results", str(results), "--out", str(tmp_path / "winner")]) == 0
    card = json.loads((tmp_path / "winner" / "model_card.json").read_text())
    assert card["trial"] == found.winner.trial.number and card["chosen"].startswith("the confirmed winner")
    # The report's confusion matrix is the confirmed winner's too.
    assert main(["report", "confirmed", "--results", str(results)]) == 0
    page = (results / "confirmed" / "report.html").read_text()
    assert f"trial {found.winner.trial.number}, the confirmed winner: test accuracy" in page


def test_run_with_confirm_searches_then_confirms_the_best_and_the_best_baseline(write_space, tmp_path: Path,
                                                                               capsys) -> None:
    space = write_space(SPACE, "both.py")
    results = tmp_path / "results"
    assert main(["run", str(space), "--trials", "4", "--confirm", "--results", str(results), *QUICK]) == 0
    out = capsys.readouterr().out
    assert "where it stands" not in out  # confirmed in the same command: the verdict says it
    found = confirm.summary(load_study("both", results))
    assert found is not None and found.complete and len(found.candidates) == confirm.TOP
    assert found.baseline is not None and all(len(c.runs) == confirm.SEEDS for c in found.candidates)
    assert confirm.verdict(found) in " ".join(out.split())


@pytest.mark.parametrize(("argv", "message"), [
    (["confirm", "nothere"], "nothere: no study found at"),
    (["confirm", "failing", "--top", "0"], "--top 0: expected an integer from 1 to 20"),
    (["confirm", "failing", "--seeds", "0"], "--seeds 0: expected an integer from 1 to 100"),
    (["confirm", "failing"], "study 'failing' has no completed trial to confirm: run the search first"),
])
def test_bad_confirm_input_is_one_line_and_writes_nothing(write_space, tmp_path: Path, capsys, argv: list[str],
                                                         message: str) -> None:
    space = write_space('SPACE = {"model": "mlp"}\nBASELINES = {"broken": {"model": "mlp", "layers": [{"units": 16}], '
                        '"optimizer": "sgd", "learning_rate": 1e30}}\n', "failing.py")
    results = tmp_path / "results"
    assert main(["run", str(space), "--trials", "1", "--results", str(results), *QUICK]) == EXIT_FAILED  # it fails
    journal = (results / "failing" / "journal.log").read_bytes()
    capsys.readouterr()
    assert main([*argv, "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert (results / "failing" / "journal.log").read_bytes() == journal
