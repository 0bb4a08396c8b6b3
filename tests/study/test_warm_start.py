"""Warm starts: an earlier study's best configurations, or a person's, queued before any sampled trial."""

from __future__ import annotations

import io
import json
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial
from rich.console import Console

from search.cli import main
from search.study import studies
from search.study.record import Attr

# No baseline: the searched trials come first. One layer of 16-64 units, a learning rate.
SPACE = """
SPACE = {
    "model": "mlp",
    "layers": Repeat(1, {"units": Int(16, 64, log=True)}),
    "learning_rate": Float(1e-3, 1e-2, log=True),
    "batch_size": 128,
}
"""
DISTRIBUTIONS = {"layers.0.units": IntDistribution(8, 256, log=True),
                 "learning_rate": FloatDistribution(1e-4, 1e-1, log=True)}
# (units, learning rate, validation accuracy, state, baseline): what the earlier study holds.
EARLIER = [(32, 0.003, 0.91, "complete", None), (200, 0.005, 0.97, "complete", None),  # 200: out of the new range
           (24, 0.002, 0.95, "complete", None), (48, 0.004, 0.99, "pruned", None),  # pruned: not completed
           (16, 0.001, 0.98, "complete", "tiny"),  # a baseline: not a point of a space
           (40, 0.006, 0.94, "complete", None), (20, 0.007, 0.93, "complete", None)]


def earlier_study(results: Path, name: str = "earlier") -> optuna.Study:
    """A stored study as `run` leaves it, written directly: no training."""
    study = studies.open_study(name, studies.storage_url(name, None, results), "random", "none", seed=0)
    for units, rate, val, state, baseline in EARLIER:
        attrs = {Attr.CONFIG: {"model": "mlp", "layers": [{"units": units}], "learning_rate": rate},
                 Attr.VAL_HISTORY: [val], Attr.N_PARAMS: 1000, **({Attr.BASELINE: baseline} if baseline else {})}
        study.add_trial(create_trial(
            state=TrialState[state.upper()], value=val if state == "complete" else None,
            params={} if baseline else {"layers.0.units": units, "learning_rate": rate},
            distributions={} if baseline else DISTRIBUTIONS, user_attrs={str(k): v for k, v in attrs.items()},
            intermediate_values={0: val}))
    return study


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.fast
def test_an_earlier_studys_best_by_validation_that_the_space_can_express_are_queued_first(write_space,
                                                                                          tmp_path: Path) -> None:
    from search.space import load_space
    from search.study import warm_start

    results = tmp_path / "results"
    earlier = earlier_study(results)
    queued, skipped = warm_start.best_of(earlier, load_space(write_space(SPACE, "small.py")), 4)
    assert [item.source for item in queued] == ["earlier#2", "earlier#5", "earlier#6"]
    assert queued[0].params == {"layers.0.units": 24, "learning_rate": 0.002}
    assert skipped == ["warm start: earlier#1 (val 97.00%) skipped: layers.0.units: 200 is out of Int(16, 64, "
                       "log=True)"]


@pytest.mark.fast
@pytest.mark.parametrize(("content", "message"), [
    ("[{", "not JSON (Expecting property name enclosed in double quotes, line 1 column 3)"),
    ('{"learning_rate": 0.003}', "expected a JSON list of {parameter: value} objects, got dict"),
    ('[{"layers.0.units": 32, "learning_rate": 0.003}, 7]', "entry 1: expected an object of parameter: value"),
    ('[{"layers.0.units": 32, "learning_rate": 0.5}]', "entry 0: learning_rate: 0.5 is out of Float(0.001, 0.01"),
    ('[{"layers.0.units": 32}]', "entry 0: learning_rate: missing"),
    ('[{"layers.0.units": 32, "learning_rate": 0.003, "dropout": 0.1}]', "entry 0: dropout: not a parameter"),
], ids=["malformed", "not a list", "not an object", "out of range", "missing", "unknown"])
def test_a_bad_enqueue_file_is_one_line_exit_2_and_nothing_is_written(write_space, tmp_path: Path, capsys,
                                                                      content: str, message: str) -> None:
    space = write_space(SPACE, "small.py")
    wanted = tmp_path / "wanted.json"
    wanted.write_text(content)
    before = files(tmp_path)
    assert main(["run", str(space), "--results", str(tmp_path / "results"), "--enqueue", str(wanted)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --enqueue {wanted}: {message}") and err.count("\n") == 1, err
    assert files(tmp_path) == before


@pytest.mark.fast
@pytest.mark.parametrize(("extra", "message"), [
    (["--warm-start", "nothere"], "nothere: no study found at"),
    (["--warm-start", "small"], "--warm-start small: the study this run searches; name an earlier one"),
    (["--warm-top", "3"], "--warm-top 3: needs --warm-start STUDY"),
    (["--warm-start", "earlier", "--warm-top", "0"], "--warm-top 0: expected an integer from 1 to 1,000"),
    (["--enqueue", "nothere.json"], "--enqueue nothere.json: no such file"),
    (["--warm-start", "earlier", "--engine", "keras-tuner"], "--warm-start and --enqueue need --engine optuna"),
], ids=lambda value: " ".join(value) if isinstance(value, list) else None)
def test_a_bad_warm_start_is_one_line_exit_2_and_nothing_is_written(write_space, tmp_path: Path, capsys,
                                                                    extra: list[str], message: str) -> None:
    space = write_space(SPACE, "small.py")
    results = tmp_path / "results"
    earlier_study(results)
    earlier_study(results, "small")  # a study of the run's own name
    before = files(tmp_path)
    assert main(["run", str(space), "--results", str(results), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert files(tmp_path) == before


def test_a_warm_started_study_trains_the_earlier_best_then_the_file_before_any_sampled_trial(
        write_space, tmp_path: Path) -> None:
    from search.run import SearchOptions, run_search

    results = tmp_path / "results"
    earlier_study(results)
    wanted = tmp_path / "wanted.json"
    wanted.write_text(json.dumps([{"layers.0.units": 60, "learning_rate": 0.009}]))
    out = io.StringIO()
    options = SearchOptions(str(write_space(SPACE, "small.py")), trials=4, epochs=1, train_size=2000, seed=0,
                            workers=1, results=str(results), warm_start="earlier", warm_top=3, enqueue=str(wanted))
    assert run_search(options, Console(file=out, width=200)) == 0
    trials = studies.load_study("small", results).get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4  # the budget: 2 warm starts, 1 from the file, 1 drawn
    assert [t.user_attrs.get(Attr.WARM_START_OF) or t.user_attrs.get(Attr.ENQUEUED) for t in trials] == [
        "earlier#2", "earlier#5", "wanted.json#0", None]
    assert [t.user_attrs[Attr.CONFIG]["layers"][0]["units"] for t in trials[:3]] == [24, 40, 60]
    assert trials[1].params == {"layers.0.units": 40, "learning_rate": 0.006}
    assert all(t.value > 0.5 for t in trials)  # trained: chance is 0.1
    printed = out.getvalue()
    assert "warm start: earlier#1 (val 97.00%) skipped: layers.0.units: 200 is out of Int(16, 64, log=True)" in printed
    assert "queued earlier#2, earlier#5, wanted.json#0 before any sampled trial" in printed

    # The same command again: nothing is queued twice, and --trials 5 adds exactly one sampled trial.
    assert run_search(SearchOptions(**{**vars(options), "trials": 5}), Console(file=io.StringIO())) == 0
    again = studies.load_study("small", results).get_trials(deepcopy=False)
    assert len(again) == 5 and not any(t.user_attrs.get(Attr.WARM_START_OF) for t in again[4:])
