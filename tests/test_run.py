"""A search through the Python API (search.run): run, keep, resume, on a real MNIST slice."""

from __future__ import annotations

import io
from pathlib import Path

import optuna
import pandas as pd
import pytest
from helpers import SEARCH_SPACE as SPACE
from helpers import expected_kernels
from rich.console import Console

from search.run import SearchOptions, run_search
from search.study import artifacts
from search.study.studies import load_study
from search.training import train
from search.training.runtime import cores

QUICK = {"epochs": 1, "train_size": 2000, "seed": 0, "workers": 1}  # one worker: repeatable
CONSOLE = Console(file=io.StringIO(), width=200)


def trials(results: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    return load_study(name, results).get_trials(deepcopy=False)


def test_search_then_resume_adds_exactly_the_missing_trials(write_space, tmp_path: Path, small_mnist) -> None:
    space = write_space(SPACE, "small.py")
    results = tmp_path / "results"
    assert run_search(SearchOptions(str(space), trials=3, results=str(results), keep_top=2, **QUICK), CONSOLE) == 0
    first = trials(results, "small")
    assert [t.state.name for t in first] == ["COMPLETE"] * 3
    board = pd.read_csv(results / "small" / "leaderboard.csv")
    assert len(board) == 3 and list(board["rank"]) == [1, 2, 3]
    assert board["test_accuracy"].is_monotonic_decreasing
    assert board["test_accuracy"].iloc[0] > 0.8  # chance is 0.1
    assert (results / "small" / "leaderboard.md").read_text().count("\n") == 3 + 2
    baseline = next(t for t in first if t.user_attrs.get("baseline") == "tiny")
    assert baseline.number == 0 and baseline.user_attrs["config"]["layers"] == [{"units": 32}]
    assert baseline.user_attrs["n_params"] == 784 * 32 + 32 + 32 * 10 + 10
    assert [t.user_attrs["seed"] for t in first] == [0, 1, 2]  # trial N runs with seed base + N
    # One worker on every core, dense models only: TensorFlow's own kernels, where it has several cores.
    assert {t.user_attrs["cpu_kernels"] for t in first} == {expected_kernels({"mlp"}, cores())}
    for t in first:
        assert t.value == max(t.user_attrs["val_history"]) and t.user_attrs["epochs"] == 1
        assert 0.0 < t.user_attrs["test_accuracy"] <= 1.0

    # The best two trials by test accuracy keep weights that reproduce their test accuracy exactly.
    kept = artifacts.kept(results / "small")
    assert [r["trial"] for r in kept] == list(board["trial"][:2])
    model, record = artifacts.load_model(Path(kept[0]["path"]))
    assert record["test_accuracy"] == board["test_accuracy"].iloc[0] == pytest.approx(
        train.evaluate(model, small_mnist.test_images, small_mnist.test_labels), abs=0)

    assert run_search(SearchOptions(str(space), trials=5, results=str(results), **QUICK), CONSOLE) == 0
    second = trials(results, "small")
    assert [t.number for t in second] == [0, 1, 2, 3, 4]
    assert [t.user_attrs.get("baseline") for t in second].count("tiny") == 1  # enqueued once
    assert [t.params for t in second[:3]] == [t.params for t in first]  # earlier trials untouched

    assert run_search(SearchOptions(str(space), trials=5, results=str(results), **QUICK), CONSOLE) == 0
    assert len(trials(results, "small")) == 5  # budget already met: nothing more runs


def test_resuming_with_an_edited_space_is_refused_unless_accepted(write_space, tmp_path: Path) -> None:
    from search.errors import InputError
    from search.study.record import StudyAttr

    space = write_space(SPACE, "small.py")
    results = tmp_path / "results"
    assert run_search(SearchOptions(str(space), trials=2, results=str(results), **QUICK), CONSOLE) == 0
    journal = results / "small" / "journal.log"
    before = journal.read_bytes()
    # Narrowing the widths and re-running the same command must not mix two spaces in one study.
    space.write_text(space.read_text().replace("Int(32, 128, log=True)", "Int(16, 32)"))
    with pytest.raises(InputError) as caught:
        run_search(SearchOptions(str(space), trials=4, results=str(results), **QUICK), CONSOLE)
    assert str(caught.value) == (
        f"{space}: not the space study 'small' was run with (layers.*.units: Int(32, 128, log=True) -> "
        "Int(16, 32)): pass --study NAME to start a new study, or --accept-space-change to go on with this one")
    assert journal.read_bytes() == before  # nothing written
    # A comment or the docstring is not the space: that resume goes on.
    space.write_text("# widths narrowed\n" + space.read_text().replace("Int(16, 32)", "Int(32, 128, log=True)"))
    assert run_search(SearchOptions(str(space), trials=3, results=str(results), **QUICK), CONSOLE) == 0
    space.write_text(space.read_text().replace("Int(32, 128, log=True)", "Int(16, 32)"))
    options = SearchOptions(str(space), trials=4, results=str(results), accept_space_change=True, **QUICK)
    assert run_search(options, CONSOLE) == 0
    study = load_study("small", results)
    assert study.user_attrs[StudyAttr.SPACE_CHANGES] == [
        {"from_trial": 3, "changes": ["layers.*.units: Int(32, 128, log=True) -> Int(16, 32)"]}]
    assert all(16 <= layer["units"] <= 32 for layer in study.trials[3].user_attrs["config"]["layers"])
    assert all(name.startswith("s2/") for name in study.trials[3].params)  # the new space's parameters, apart
    from search.results.report import write_report

    page = write_report(study, results / "small").read_text()
    assert "The space was changed on resume from trial 3 on: layers.*.units: Int(32, 128, log=True) -&gt; Int(16, 32)." \
        in page
