"""The report's interactive figures: plotly, drawn by the browser from data embedded in the page.

`report.py` works out what each figure shows once and hands the same data to its matplotlib PNG and
to a function here. Where Optuna draws the figure (`optuna.visualization`: optimization history,
intermediate values, parallel coordinates, importances, Pareto front) its figure is used as drawn,
and each trace that shows trials is given our hover: every point's `customdata` starts with the
trial's number, then one line of what it scored and what it trained (`hover`), so hovering a point
names its trial and a test can read which trials a figure holds. `div` writes a figure into the
page; plotly.js goes in once, inline, so the page needs no network.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
import plotly.graph_objects as go
import plotly.io
from optuna.trial import FrozenTrial, TrialState

from search.results import leaderboard
from search.study import record

# `customdata[0]` is the trial's number in every trace that shows trials; `customdata[1]` its hover line;
# on a figure of several studies, `customdata[2]` the study's name.
TRIAL_HOVER = "trial %{customdata[0]}<br>%{customdata[1]}<extra></extra>"
STUDY_HOVER = "study %{customdata[2]}, trial %{customdata[0]}<br>%{customdata[1]}<extra></extra>"
ACCURACY = "validation accuracy"
CONFIG = {"displaylogo": False, "responsive": True}  # no "Produced with Plotly" link to plot.ly
Target = Callable[[FrozenTrial], float] | None  # None: the single objective, validation accuracy


def hover(row: record.Record) -> list[Any]:
    """A trial's point data: its number, then its accuracies, size and config on one line."""
    size = f", {row.n_params:,} parameters" if row.n_params else ""
    label = f" [{row.baseline}]" if row.baseline else ""
    confirms = f" (confirm of trial {row.confirm_of})" if row.confirm_of is not None else ""
    return [row.number, f"{row.state}{label}{confirms}: validation {_accuracy(row.val_accuracy)}, "
                        f"test {_accuracy(row.test_accuracy)}{size}<br>{leaderboard.describe(row.config)}"]


def optimization_history(study: optuna.Study, target: Target, rows: Mapping[int, record.Record],
                         space_changes: Sequence[int]) -> go.Figure:
    """Optuna's optimization history of validation accuracy, a dotted line where the space changed."""
    fig = optuna.visualization.plot_optimization_history(study, target=target, target_name=ACCURACY)
    for trace in fig.data:
        if trace.mode == "markers" and trace.x:
            _name_trials(trace, [rows[int(number)] for number in trace.x])
    for number in space_changes:
        fig.add_vline(x=number - 0.5, line_dash="dot", line_color="red",
                      annotation_text=f"space changed at trial {number}")
    return _plain(fig, "trial number", ACCURACY)


def best_over_time(minutes: Sequence[float], shown: Sequence[record.Record]) -> go.Figure:
    """Both accuracies of each completed trial against when it finished, with the best so far of each;
    `minutes` and `shown` in the order the trials completed, as the PNG draws them."""
    fig = go.Figure()
    for key, colour in (("test_accuracy", "#1f77b4"), ("val_accuracy", "#ff7f0e")):
        values = [getattr(row, key) for row in shown]
        best = [max(values[: i + 1]) for i in range(len(values))]
        fig.add_scatter(x=list(minutes), y=values, mode="markers", name=key, marker={"color": colour, "opacity": 0.5},
                        customdata=[hover(row) for row in shown], hovertemplate=TRIAL_HOVER)
        fig.add_scatter(x=list(minutes), y=best, mode="lines", line={"shape": "hv", "color": colour},
                        name=f"best {key} so far", hoverinfo="skip")
    return _plain(fig, "minutes since the first trial started", "accuracy")


def studies_best_so_far(series: Sequence[tuple[str, str, Sequence[float], Sequence[record.Record]]],
                        xlabel: str) -> go.Figure:
    """Several studies on one figure: for each (study, colour, x, rows), every trial's validation accuracy
    at `x` and the best so far along it, in the study's colour; hovering a point names study and trial."""
    fig = go.Figure()
    for study, colour, xs, rows in series:
        values = [row.val_accuracy for row in rows]
        best = [max(values[: i + 1]) for i in range(len(values))]
        fig.add_scatter(x=list(xs), y=values, mode="markers", name=f"{study}: trials", legendgroup=study,
                        marker={"color": colour, "opacity": 0.5}, hovertemplate=STUDY_HOVER,
                        customdata=[[*hover(row), study] for row in rows])
        fig.add_scatter(x=list(xs), y=best, mode="lines", line={"shape": "hv", "color": colour},
                        name=f"{study}: best so far", legendgroup=study, hoverinfo="skip")
    return _plain(fig, xlabel, ACCURACY)


def intermediate_values(study: optuna.Study, rows: Mapping[int, record.Record]) -> go.Figure | None:
    """Optuna's intermediate values: validation accuracy at every epoch a trial reported (the pruner's
    view), one line per trial; None when no trial reported any (KerasTuner's trials do not)."""
    fig = optuna.visualization.plot_intermediate_values(study)
    # Optuna's order: trials with reported values among the pruned, complete and running ones.
    reported = [t for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED, TrialState.COMPLETE,
                                                                    TrialState.RUNNING)) if t.intermediate_values]
    if not fig.data or len(fig.data) != len(reported):
        return None
    for trace, trial in zip(fig.data, reported, strict=True):
        _name_trials(trace, [rows[trial.number]] * len(trace.x))
    fig.update_layout(showlegend=False)
    return _plain(fig, "epoch (step reported to the pruner)", ACCURACY)


def rungs(columns: Sequence[str], shown: Sequence[tuple[str, record.Record]]) -> go.Figure:
    """Each searched trial that ended, by state, in the column (`columns`, in order) of the epochs it
    trained, at the best validation accuracy it reached; `shown` pairs each trial with its column."""
    fig = go.Figure()
    for state in ("complete", "pruned"):
        mine = [(column, row) for column, row in shown if row.state == state]
        if mine:
            fig.add_scatter(x=[column for column, _ in mine], y=[row.val_accuracy for _, row in mine],
                            mode="markers", name=f"{state} ({len(mine)})", opacity=0.7,
                            marker={"symbol": "circle" if state == "complete" else "x"},
                            customdata=[hover(row) for _, row in mine], hovertemplate=TRIAL_HOVER)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=list(columns))
    return _plain(fig, "epochs trained", "best " + ACCURACY)


def parallel_coordinates(study: optuna.Study, target: Target, rows: Mapping[int, record.Record]) -> go.Figure:
    """Optuna's parallel coordinates of validation accuracy and every searched hyperparameter, one line
    per completed trial; hovering a line's point names the trial and the value on that axis."""
    fig = optuna.visualization.plot_parallel_coordinate(study, target=target, target_name=ACCURACY)
    # Optuna draws one line per completed trial with a finite target, in the study's order (with one
    # objective, or with a target: a study with several would be drawn in order of Pareto rank).
    drawn = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if math.isfinite(t.values[0])]
    lines = [trace for trace in fig.data if trace.mode == "lines" and trace.customdata is not None]
    if len(lines) == len(drawn):
        for trace, trial in zip(lines, drawn, strict=True):
            number, line = hover(rows[trial.number])
            trace.customdata = [[number, line, axis, value] for axis, value in trace.customdata]
            trace.hovertemplate = "trial %{customdata[0]}: %{customdata[2]} %{customdata[3]}<br>%{customdata[1]}" \
                                  "<extra></extra>"
    return _plain(fig)


def importances(study: optuna.Study) -> go.Figure:
    """Optuna's hyperparameter importances for validation accuracy (its default evaluator, PED-ANOVA): the
    one computation of them, which the PNG draws too (`importance_bars`). Raises what Optuna raises."""
    # PED-ANOVA takes a target as a loss, so with several objectives the first, accuracy, goes in negated;
    # with one, Optuna follows the study's direction.
    target = (lambda t: -t.values[0]) if len(study.directions) > 1 else None
    return _plain(optuna.visualization.plot_param_importances(study, target=target, target_name=ACCURACY),
                  "importance (sums to 1)")


def importance_bars(fig: go.Figure) -> list[tuple[str, float]]:
    """The importances an `importances` figure shows, least important first, as Optuna draws them."""
    bars = fig.data[0]
    return [(str(name), float(value)) for name, value in zip(bars.y, bars.x, strict=True)]


def accuracy_against_size(kinds: Mapping[str, Sequence[record.Record]], front: Sequence[record.Record],
                          baselines: Sequence[record.Record]) -> go.Figure:
    """Validation accuracy against parameter count: each kind of model, the front, the baselines, as the PNG."""
    fig = go.Figure()

    def points(shown: Sequence[record.Record], **style: Any) -> None:
        fig.add_scatter(x=[row.n_params for row in shown], y=[row.val_accuracy for row in shown],
                        customdata=[hover(row) for row in shown], hovertemplate=TRIAL_HOVER, **style)

    for label, rows in kinds.items():
        points(rows, mode="markers", name=label, marker={"color": "grey", "symbol": SYMBOLS.get(label, "circle")})
    points(front, mode="lines+markers", name="Pareto front", line={"shape": "hv", "color": "red"})
    if baselines:
        points(baselines, mode="markers+text", name="baseline", text=[row.baseline.split()[0] for row in baselines],
               textposition="top right", marker={"symbol": "triangle-up", "size": 12, "color": "#17becf",
                                                 "line": {"color": "black", "width": 1}})
    fig.update_xaxes(type="log")
    return _plain(fig, "parameters (log scale)", ACCURACY)


SYMBOLS = {"CNN trial": "square", "softmax trial": "diamond"}


def pareto_front(study: optuna.Study, objectives: Sequence[str], rows: Mapping[int, record.Record]) -> go.Figure:
    """Optuna's Pareto front of a study with two or three objectives, the best trials in red."""
    names = list(objectives) if len(objectives) == len(study.directions) else None
    fig = optuna.visualization.plot_pareto_front(study, target_names=names)
    for trace in fig.data:
        if trace.text:  # Optuna's hover text of a point is the trial as JSON, its number included
            _name_trials(trace, [rows[json.loads(text.replace("<br>", "\n"))["number"]] for text in trace.text])
    return _plain(fig)


def div(fig: go.Figure, name: str, with_plotlyjs: bool) -> str:
    """The figure as a `<div>` for the page; `with_plotlyjs` inlines plotly.js, for the page's first figure."""
    return plotly.io.to_html(fig, full_html=False, include_plotlyjs=with_plotlyjs, div_id=f"{name}-plot",
                             config=CONFIG, default_height="460px")


def _name_trials(trace: Any, shown: Sequence[record.Record]) -> None:
    trace.customdata = [hover(row) for row in shown]
    trace.hovertemplate = TRIAL_HOVER


def _plain(fig: go.Figure, xlabel: str | None = None, ylabel: str | None = None) -> go.Figure:
    """The page's look: its section heading is the title; white background; a compact margin."""
    fig.update_layout(title_text="", template="plotly_white", margin={"t": 40, "r": 20, "b": 50, "l": 60})
    if xlabel:
        fig.update_xaxes(title_text=xlabel)
    if ylabel:
        fig.update_yaxes(title_text=ylabel)
    return fig


def _accuracy(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"
