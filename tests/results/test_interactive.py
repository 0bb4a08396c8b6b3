"""The report's interactive figures: each names the study's trials on hover, and the page needs no network."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.results import interactive
from search.results.report import write_report
from search.study import record
from search.study.record import Attr

PLOTLY_JS = "* plotly.js v"  # the opening comment of the inlined bundle


def searched(objectives: list[str], trials: int = 12) -> optuna.Study:
    """A study of made-up trials written through the trial record, as a search writes them: three searched
    hyperparameters, per-epoch values reported to the pruner (with one objective), two pruned trials."""
    directions = ["maximize", "minimize"][: len(objectives)]
    study = optuna.create_study(directions=directions, sampler=optuna.samplers.RandomSampler(seed=0))
    study.set_user_attr("objectives", objectives)

    def objective(trial: optuna.Trial) -> float | tuple[float, float]:
        units = trial.suggest_int("units", 16, 256, log=True)
        learning_rate = trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
        activation = trial.suggest_categorical("activation", ["relu", "selu"])
        val = 0.9 + units / 5000 - abs(learning_rate - 0.01)
        history = [val - 0.05, val]
        record.write(trial, {**record.outcome(history, 1.0, n_params=units * 800, best_epoch=2,
                                              test_accuracy=val - 0.002),
                             Attr.CONFIG: {"model": "mlp", "layers": [{"units": units}],
                                           "learning_rate": learning_rate, "activation": activation}})
        if len(directions) == 1:
            for epoch, value in enumerate(history):
                trial.report(value, epoch)
            if trial.number in (3, 7):
                raise optuna.TrialPruned()
            return val
        return val, units * 800

    study.optimize(objective, n_trials=trials)
    return study


def trial_numbers(fig: interactive.go.Figure) -> set[int]:
    return {int(point[0]) for trace in fig.data if trace.customdata is not None for point in trace.customdata}


@pytest.mark.fast
def test_every_figure_of_trials_names_each_completed_trial_on_hover() -> None:
    study = searched(["accuracy"])
    rows = {t.number: record.read(t) for t in study.trials}
    complete = {t.number for t in study.trials if t.state == TrialState.COMPLETE}
    assert len(complete) == 10
    history = interactive.optimization_history(study, None, rows, [5])
    lines = interactive.parallel_coordinates(study, None, rows)
    curves = interactive.intermediate_values(study, rows)
    assert curves is not None
    for fig in (history, lines):
        assert trial_numbers(fig) == complete
    assert trial_numbers(curves) == set(rows)  # pruned trials reported their epochs too
    point = next(trace for trace in history.data if trace.customdata is not None).customdata[0]
    assert point[0] == 0 and re.fullmatch(r"complete: validation 0\.\d{4}, test 0\.\d{4}, [\d,]+ parameters<br>mlp \d+ "
                                          r"(relu|selu) lr=\S+", point[1]), point
    line = next(trace for trace in lines.data if trace.customdata is not None)
    assert line.hovertemplate.startswith("trial %{customdata[0]}: %{customdata[2]} %{customdata[3]}")
    assert [axis for _, _, axis, _ in line.customdata] == ["validation accuracy", "activation", "learning_rate",
                                                           "units"]
    bars = interactive.importance_bars(interactive.importances(study))
    assert sorted(name for name, _ in bars) == ["activation", "learning_rate", "units"]
    assert sum(value for _, value in bars) == pytest.approx(1)


@pytest.mark.fast
def test_a_study_of_two_objectives_gets_optunas_pareto_front(tmp_path: Path) -> None:
    study = searched(["accuracy", "params"])
    page = write_report(study, tmp_path).read_text()
    sections = re.findall(r'<section id="([^"]+)"', page)
    assert sections[sections.index("pareto") + 1] == "pareto_front"
    assert "Pareto front of the study&#x27;s objectives (accuracy, params)" in page
    rows = {t.number: record.read(t) for t in study.trials}
    front = interactive.pareto_front(study, ["accuracy", "params"], rows)
    assert trial_numbers(front) == set(rows)
    assert [trace.customdata[0][0] for trace in front.data if trace.customdata is not None]  # hover names trials
    assert front.layout.xaxis.title.text == "accuracy" and front.layout.yaxis.title.text == "params"
    # Importances for accuracy, which PED-ANOVA reads as a loss to lower: no reminder of that on the page.
    assert "achieve low" not in page and 'id="importances-plot"' in page


@pytest.mark.fast
def test_the_page_inlines_plotly_once_and_links_to_nothing_it_would_fetch(tmp_path: Path) -> None:
    page = write_report(searched(["accuracy"]), tmp_path).read_text()
    assert page.count(PLOTLY_JS) == 1 and "<script src" not in page.replace(" ", "")
    figures = re.findall(r'<div id="([a-z_]+)-plot" class="plotly-graph-div"', page)
    assert figures == ["best_by_trial", "best_by_time", "importances", "parallel_coordinates", "pareto",
                       "learning_curves", "rungs"]
    assert page.index(PLOTLY_JS) < page.index('id="best_by_trial-plot"')  # before the first figure's script
    outside_scripts = re.sub(r"<script.*?</script>", "", page, flags=re.S)
    assert not re.search(r"https?://", outside_scripts)  # the attributions inside plotly.js are for map plots
    # Every PNG is still written, and the page links to it rather than embedding it twice.
    for name in ("best_by_trial", "best_by_time", "importances", "pareto", "learning_curves", "rungs"):
        assert (tmp_path / "report" / f"{name}.png").exists() and f'href="report/{name}.png"' in page
    assert "<img" not in page  # no kept weights: no confusion matrix, no misclassified digits
