"""The leaderboard and compare commands on a real stored study, and the table's rules on trials recorded
through the trial record (fast: nothing trains)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers import recorded

from search.cli import main
from search.results import leaderboard
from search.study.record import Attr


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_has_every_finished_trial_ranked_by_test_accuracy(finished_study: Path, capsys) -> None:
    code, out, _ = run(capsys, "leaderboard", "small", "--results", str(finished_study), "--format", "json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 5
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    tested = [r["test_accuracy"] for r in rows if r["test_accuracy"] is not None]
    assert tested == sorted(tested, reverse=True) and len(tested) == 4
    failed = next(r for r in rows if r["state"] == "fail")
    assert failed["baseline"] == "broken" and "NaN" in failed["reason"] and failed["rank"] == 5
    assert {r["baseline"] for r in rows} >= {"tiny", "broken"}


def test_filters_sorts_and_formats(finished_study: Path, capsys) -> None:
    where = ["--results", str(finished_study)]
    code, out, _ = run(capsys, "leaderboard", "small", *where, "--state", "failed", "--format", "csv")
    table = pd.read_csv(pd.io.common.StringIO(out))
    assert code == 0 and list(table["state"]) == ["fail"]
    code, out, _ = run(capsys, "leaderboard", "small", *where, "--state", "complete", "--sort", "params",
                       "--format", "csv", "--top", "2")
    table = pd.read_csv(pd.io.common.StringIO(out))
    assert len(table) == 2 and table["n_params"].is_monotonic_increasing
    every = pd.read_csv(finished_study / "small" / "leaderboard.csv")
    assert table["n_params"].iloc[0] == every[every["state"] == "complete"]["n_params"].min()
    code, out, _ = run(capsys, "leaderboard", "small.py", *where, "--format", "md")
    assert out.splitlines()[0].startswith("|   rank |") and "nan" not in out
    code, out, _ = run(capsys, "leaderboard", "small", *where)
    assert code == 0 and "tiny" in out and "rank" in out


def test_compare_puts_the_trials_selected_by_validation_side_by_side(finished_study: Path, capsys) -> None:
    code, out, _ = run(capsys, "compare", "small", "small", "--results", str(finished_study), "--format", "json")
    (row,) = json.loads(out)  # the same study twice is one row
    board = pd.read_csv(finished_study / "small" / "leaderboard.csv")
    complete = board[board["state"] == "complete"]
    best = complete.sort_values(["val_accuracy", "n_params", "trial"], ascending=[False, True, True]).iloc[0]
    assert board["selected"].sum() == 1 and board[board["selected"]]["trial"].iloc[0] == best["trial"]
    assert code == 0 and row["selected_trial"] == best["trial"] and row["trials"] == 5 and row["failed"] == 1
    assert abs(row["test_accuracy"] - best["test_accuracy"]) < 1e-4


@pytest.mark.fast
def test_unknown_study_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    code, out, err = run(capsys, "leaderboard", "nope", "--results", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "nope: no study found" in err
    code, out, err = run(capsys, "compare", "nope", "--results", str(tmp_path))
    assert code == 2 and "no study found" in err


@pytest.mark.fast
def test_describe_shows_the_training_features_a_config_changes() -> None:
    from search.results.leaderboard import describe
    from search.space.tutorials import TUTORIALS

    assert describe(TUTORIALS["S3"].config) == ("mlp 500 relu l2=5.00e-05 init=truncated_normal sgd lr=8.00e-01 "
                                            "exponential ema=0.99 bs=100 steps=30000")
    assert "aug=shift_flip" in describe(TUTORIALS["S4-aug"].config)
    assert "in=l2_axis1" in describe(TUTORIALS["S5"].config)
    # Defaults say nothing: the line stays short.
    assert describe({"model": "mlp", "layers": [{"units": 64}], "init": "glorot", "schedule": "constant",
                     "augment": "none", "ema": 0.0, "epochs": 3}) == "mlp 64 ep=3"


def test_the_trial_chosen_by_validation_is_marked_and_named_under_the_table(finished_study: Path, capsys) -> None:
    code, out, _ = run(capsys, "leaderboard", "small", "--results", str(finished_study))
    board = pd.read_csv(finished_study / "small" / "leaderboard.csv")
    chosen = board[board["selected"]].iloc[0]
    assert code == 0 and out.count("selected by validation") == 2  # the row's mark, and the line under the table
    assert (f"selected by validation: trial {chosen['trial']} val {100 * chosen['val_accuracy']:.2f}% test "
            f"{100 * chosen['test_accuracy']:.2f}% (rank {chosen['rank']} by test)") in " ".join(out.split())


@pytest.mark.fast
def test_the_table_ranks_by_test_marks_the_pick_by_validation_and_leaves_out_what_never_trained() -> None:
    study = recorded([
        ("complete", 0.95, 0.93, {}),
        ("complete", 0.97, 0.92, {}),  # best by validation, not by test
        ("pruned", 0.90, None, {}),
        ("complete", 0.96, 0.94, {Attr.BASELINE: "tiny"}),
        ("fail", 0.10, None, {Attr.SURPLUS: True}),  # never ran
        ("pruned", 0.0, None, {Attr.REJECTED: True}),  # over a limit, never trained
        ("complete", 0.99, 0.99, {Attr.CONFIRM_OF: 1, Attr.REPLICA: 0}),  # a confirm training, not a search trial
    ])
    table = leaderboard.frame(study)
    assert list(table["trial"]) == [3, 0, 1, 2] and list(table["rank"]) == [1, 2, 3, 4]
    assert list(table["selected"]) == [False, False, True, False]
    assert list(leaderboard.select(table, sort="val")["trial"]) == [1, 3, 0, 2]
    assert list(leaderboard.select(table, state="pruned")["trial"]) == [2]
    assert list(leaderboard.select(table, top=2)["trial"]) == [3, 0]
    assert "nan" not in leaderboard.markdown(table)
    assert any("selected by validation: trial 1 val 97.00% test 92.00% (rank 3 by test)" in line
               for line in leaderboard.summary(study, table))
