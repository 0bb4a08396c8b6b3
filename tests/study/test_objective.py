"""One trial under constraints and several objectives, on a real MNIST slice: a config over a limit is
rejected before it trains and taught to the sampler; a multi-objective study lists its Pareto set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from search.cli import main
from search.study import record
from search.study.studies import load_study

QUICK = ["--epochs", "1", "--train-size", "2000", "--seed", "0", "--workers", "1"]
SPACE = """
SPACE = {
    "model": "mlp",
    "layers": Repeat(Int(1, 2), {"units": Int(8, 64, log=True)}),
    "learning_rate": Float(1e-3, 1e-2, log=True),
    "batch_size": 128,
}
BASELINES = {"wide": {"model": "mlp", "layers": [{"units": 512}]}, "narrow": {"model": "mlp", "layers": [{"units": 8}]}}
"""


def test_a_config_over_max_params_is_rejected_before_training_and_taught_to_the_sampler(write_space,
                                                                                          tmp_path: Path) -> None:
    space = write_space(SPACE, "limited.py")
    results = tmp_path / "results"
    limit = 40_000  # the wide baseline has 784 * 512 + 512 + 5,130 = 407,050 weights
    assert main(["run", str(space), "--trials", "4", "--max-params", str(limit), "--results", str(results),
                 *QUICK]) == 0
    trials = load_study("limited", results).get_trials(deepcopy=False)
    wide = next(t for t in trials if t.user_attrs.get("baseline") == "wide")
    assert record.read(wide).state == "rejected" and not record.counts_toward_budget(wide)
    assert wide.user_attrs["reason"] == f"rejected before training: 407,050 parameters over --max-params {limit:,}"
    assert wide.user_attrs["epochs"] == 0 and wide.user_attrs["val_history"] == []  # never trained
    assert wide.constraints["params"] == pytest.approx((407_050 - limit) / limit)  # infeasible: > 0
    done = [t for t in trials if record.counts_toward_budget(t)]
    assert len(done) == 4 and all(t.user_attrs["n_params"] <= limit for t in done)  # the budget is feasible trials
    assert all(t.constraints["params"] <= 0 for t in done)  # and the sampler knows them feasible
    board = pd.read_csv(results / "limited" / "leaderboard.csv")
    assert "wide" not in set(board["baseline"].fillna("")) and board["latency_ms"].gt(0).all()


def test_a_multi_objective_leaderboard_lists_exactly_its_pareto_set(write_space, tmp_path: Path, capsys) -> None:
    space = write_space(SPACE, "front.py")
    results = tmp_path / "results"
    assert main(["run", str(space), "--trials", "8", "--objectives", "accuracy,params", "--results", str(results),
                 *QUICK]) == 0
    study = load_study("front", results)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    assert all(len(t.values) == 2 and t.values[1] == t.user_attrs["n_params"] for t in complete)
    assert not any(t.intermediate_values for t in complete)  # nothing reported: no pruning

    def beaten(t) -> bool:  # some other trial at least as accurate and as small, better in one of them
        return any(u.values[0] >= t.values[0] and u.values[1] <= t.values[1] and u.values != t.values
                   for u in complete)

    pareto = {t.number for t in complete if not beaten(t)}
    board = pd.read_csv(results / "front" / "leaderboard.csv")
    assert set(board["trial"]) == pareto and 1 <= len(pareto) < len(complete)
    capsys.readouterr()
    assert main(["leaderboard", "front", "--results", str(results)]) == 0
    assert f"Pareto set of {len(pareto)} trials (accuracy, params)" in " ".join(capsys.readouterr().out.split())
