"""The report: a stored study as one self-contained web page, the last stage after the leaderboard.

`write_report` reads what the trials recorded (the same rows as `leaderboard.py`) plus the
best kept trial's weights (`study/artifacts.py`). Each figure's data is worked out once here and
drawn twice: with matplotlib into `results/<study>/report/NAME.png`, for pasting elsewhere, and with
plotly (`interactive.py`) into `results/<study>/report.html`, where hovering a point names its trial.
Figures plotly does not draw (the confusion matrix, the misclassified digits) are embedded as their
PNG bytes, and plotly.js is inlined once, so the page opens in a browser with no network; the frame of
sections, PNG files and page is `page.py`'s. Nothing is written to the study, so it works on one that
is still running; a figure that cannot be drawn yet (too few trials, no kept weights) is replaced by a
line that says why. Every file appears whole or not at all.
"""

from __future__ import annotations

import html
import json
import math
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from matplotlib.figure import Figure  # the object API needs no pyplot and no global backend
from matplotlib.ticker import MaxNLocator
from optuna.trial import FrozenTrial, TrialState

from search.errors import InputError
from search.files import write_atomic
from search.results import confirm, interactive, leaderboard, page
from search.results.page import Section
from search.results.page import percent as _percent
from search.study import artifacts, record, references
from search.study.record import StudyAttr

TOP_CURVES, PRUNED_CURVES, MISTAKES = 5, 10, 36


def write_report(study: optuna.Study, study_dir: Path, store: artifacts.Store | None = None,
                 storage: str | None = None) -> Path:
    """Write `study_dir/report.html` and its figures as `study_dir/report/*.png`; returns the page. The
    chosen model's weights are the results folder's, else the artifact store's (`artifacts.Lookup`)."""
    table = leaderboard.frame(study)
    if table.empty:
        raise InputError(f"study {study.study_name!r} has no finished trials yet: nothing to report")
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    complete = [t for t in trials.values() if t.state == TrialState.COMPLETE]
    rows = {number: record.read(trial) for number, trial in trials.items()}
    changes = study.user_attrs.get(StudyAttr.SPACE_CHANGES, [])
    sections = [*_progress(study, complete, changes, rows), _importances(study, complete),
                _parallel_coordinates(study, complete, rows), _pareto(study, complete, rows),
                *_pareto_front(study, rows), _curves(study, table, rows), _rungs(rows),
                *_chosen_model(study, artifacts.Lookup(study_dir, study, store, storage))]
    page.write_pngs(sections, study_dir)
    path = study_dir / "report.html"
    write_atomic(path, _html(study, table, sections, study_dir).encode())
    return path


def _target(study: optuna.Study) -> interactive.Target:
    """What Optuna's figures plot: validation accuracy, the first objective of a study with several."""
    return (lambda t: t.values[0]) if len(study.directions) > 1 else None


def _progress(study: optuna.Study, complete: list[FrozenTrial], changes: list[dict[str, Any]],
              rows: dict[int, record.Record]) -> list[Section]:
    """Best accuracy so far against trial number and against wall-clock time since the first start;
    where the space was changed on resume (`--accept-space-change`), a line marks the trial. The
    interactive version by trial number is Optuna's optimization history (validation accuracy)."""
    by_number = Section("best_by_trial", "Best accuracy so far, by trial number")
    by_time = Section("best_by_time", "Best accuracy so far, by wall-clock time")
    done = sorted((t for t in complete if t.datetime_complete), key=lambda t: t.datetime_complete or datetime.min)
    if not done:
        by_number.note = by_time.note = "No trial has completed yet."
        return [by_number, by_time]
    start = min(t.datetime_start or t.datetime_complete or datetime.min for t in done)
    for section, xs, label in ((by_number, [t.number for t in done], "trial number"),
                               (by_time, [((t.datetime_complete or start) - start).total_seconds() / 60
                                          for t in done], "minutes since the first trial started")):
        order = np.argsort(xs, kind="stable")
        x = np.asarray(xs, dtype=float)[order]
        fig, ax = page.figure(7, 3.8)
        for key, colour in (("test_accuracy", "tab:blue"), ("val_accuracy", "tab:orange")):
            y = np.array([getattr(rows[done[i].number], key) for i in order])
            ax.scatter(x, y, s=12, color=colour, alpha=0.35)
            ax.step(x, np.fmax.accumulate(y), where="post", color=colour, label=f"best {key} so far")
        ax.set(xlabel=label, ylabel="accuracy")
        if section is by_number:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            for change in changes:
                ax.axvline(change["from_trial"] - 0.5, ls=":", color="tab:red",
                           label=f"space changed at trial {change['from_trial']}")
            section.note = " ".join(f"The space was changed on resume from trial {change['from_trial']} on: "
                                    f"{'; '.join(change['changes'])}." for change in changes)
        ax.legend(loc="lower right")
        section.png = page.png(fig)
    by_number.figure = interactive.optimization_history(study, _target(study), rows,
                                                        [change["from_trial"] for change in changes])
    minutes = [((t.datetime_complete or start) - start).total_seconds() / 60 for t in done]
    by_time.figure = interactive.best_over_time(minutes, [rows[t.number] for t in done])
    return [by_number, by_time]


def _importances(study: optuna.Study, complete: list[FrozenTrial]) -> Section:
    """Optuna's parameter importances (PED-ANOVA by default) for validation accuracy."""
    section = Section("importances", "Hyperparameter importances for validation accuracy (Optuna's "
                                      "default evaluator, PED-ANOVA)")
    names = sorted({name for t in complete for name in t.params})
    if sum(bool(t.params) for t in complete) < 2 or len(names) < 2:
        section.note = (f"Importances need at least 2 completed trials with sampled hyperparameters and 2 "
                        f"searched hyperparameters; this study has {len(complete)} completed and searches "
                        f"{', '.join(names) or 'none'}.")
        return section
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:  # with several objectives, importance for the first: validation accuracy
            figure = interactive.importances(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            section.note = f"Optuna could not compute importances: {err}"
            return section
    shown = interactive.importance_bars(figure)[-20:]  # least important first: the most important on top
    fig, ax = page.figure(7, 0.8 + 0.3 * len(shown))
    ax.barh([name for name, _ in shown], [value for _, value in shown], color="tab:blue")
    ax.set(xlabel="importance (sums to 1)")
    section.png, section.figure = page.png(fig), figure
    messages = dict.fromkeys(str(w.message) for w in caught if "importance" in str(w.message).lower()
                             and "achieve low `target`" not in str(w.message))  # a reminder the target heeds
    section.note = " ".join(f"Optuna: {m}" for m in messages)  # e.g. too few trials to tell them apart
    return section


MARKERS = {"softmax": ("D", "softmax trial"), "cnn": ("s", "CNN trial")}


def _kind(row: record.Record) -> tuple[str, str]:
    """A trial's marker and legend label on the accuracy-against-size figure (dense networks round)."""
    return MARKERS.get(str(row.config.get("model")), ("o", "dense trial"))


def _parallel_coordinates(study: optuna.Study, complete: list[FrozenTrial], rows: dict[int, record.Record]) -> Section:
    """Optuna's parallel coordinates: each completed trial's line through validation accuracy and its
    hyperparameters (interactive only: a PNG of fifty crossing lines says little)."""
    section = Section("parallel_coordinates", "Validation accuracy and hyperparameters of every completed trial "
                                              "(Optuna's parallel coordinates)")
    if not any(t.params for t in complete):
        section.note = "No completed trial has sampled hyperparameters yet."
        return section
    section.figure = interactive.parallel_coordinates(study, _target(study), rows)
    return section


def _pareto_front(study: optuna.Study, rows: dict[int, record.Record]) -> list[Section]:
    """A study with two or three objectives: Optuna's Pareto front of them all (interactive only)."""
    if not 1 < len(study.directions) < 4 or not study.best_trials:
        return []
    objectives = study.user_attrs.get(StudyAttr.OBJECTIVES) or []
    return [Section("pareto_front", f"Pareto front of the study's objectives ({', '.join(objectives)}), "
                                    "Optuna's plot", figure=interactive.pareto_front(study, objectives, rows))]


def _pareto(study: optuna.Study, complete: list[FrozenTrial], rows: dict[int, record.Record]) -> Section:
    """Validation accuracy against parameter count, the search's own measure: the front holds the
    trials no smaller model beats (a multi-objective study's own Pareto set), baselines marked on it."""
    section = Section("pareto", "Validation accuracy against parameter count (Pareto front in red, baselines as "
                                "triangles; dense trials round, CNNs square, softmax regressions diamonds)")
    sized = sorted((rows[t.number] for t in complete if rows[t.number].n_params and rows[t.number].confirm_of is None),
                   key=lambda r: (r.n_params, -r.val_accuracy))
    if not sized:
        section.note = "No trial has completed yet."
        return section
    if len(study.directions) > 1:
        numbers = {t.number for t in study.best_trials}
        front = [r for r in sized if r.number in numbers]
    else:
        front, best = [], -1.0
        for row in sized:
            if row.val_accuracy > best:
                front.append(row)
                best = row.val_accuracy
    fig, ax = page.figure(7, 4)
    kinds: dict[tuple[str, str], list[record.Record]] = {}  # a marker per kind of model
    for row in sized:
        kinds.setdefault(_kind(row), []).append(row)
    for (marker, label), of_kind in sorted(kinds.items()):
        ax.scatter([float(r.n_params or 0) for r in of_kind], [r.val_accuracy for r in of_kind], s=18,
                   marker=marker, color="tab:grey", label=label)
    ax.step([float(r.n_params or 0) for r in front], [r.val_accuracy for r in front], where="post", color="tab:red",
            marker="o", label="Pareto front")
    for row in front:
        name = f"#{row.number} {_kind(row)[1].removesuffix(' trial')}"
        ax.annotate(name, (float(row.n_params or 0), row.val_accuracy), textcoords="offset points",
                    xytext=(4, -10), fontsize=8, color="tab:red")
    baselines = [r for r in sized if r.baseline]
    if baselines:
        ax.scatter([float(r.n_params or 0) for r in baselines], [r.val_accuracy for r in baselines], s=60,
                   marker="^", color="tab:cyan", edgecolor="black", label="baseline", zorder=3)
        for row in baselines:
            ax.annotate(row.baseline.split()[0], (float(row.n_params or 0), row.val_accuracy),
                        textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(xscale="log", xlabel="parameters (log scale)", ylabel="validation accuracy")
    ax.legend(loc="lower right")
    section.png = page.png(fig)
    by_label = {label: of_kind for (_, label), of_kind in sorted(kinds.items())}
    section.figure = interactive.accuracy_against_size(by_label, front, baselines)
    return section


def _curves(study: optuna.Study, table: pd.DataFrame, rows: dict[int, record.Record]) -> Section:
    """Validation accuracy per epoch of the best completed trials and of pruned ones; interactive, every
    trial's curve as reported to the pruner (Optuna's intermediate values)."""
    top = table[table["state"] == "complete"].head(TOP_CURVES)
    pruned = table[table["state"] == "pruned"].head(PRUNED_CURVES)  # best validation accuracy first
    section = Section("learning_curves", f"Learning curves: the best {len(top)} completed trials (solid) and "
                                         f"{len(pruned)} pruned (dashed)")
    if top.empty and pruned.empty:
        section.note = "No completed or pruned trial yet."
        return section
    fig, ax = page.figure(7, 4)
    for row in top.itertuples():
        history = rows[row.trial].val_history
        ax.plot(range(1, len(history) + 1), history, marker=".",
                label=f"#{row.rank} trial {row.trial} (test {row.test_accuracy:.4f})")
    for i, row in enumerate(pruned.itertuples()):
        history = rows[row.trial].val_history
        ax.plot(range(1, len(history) + 1), history, ls="--", marker="x", color="tab:grey", alpha=0.7,
                label=f"pruned ({len(pruned)})" if i == 0 else None)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="validation accuracy")
    ax.legend(loc="lower right", fontsize=8)
    section.png = page.png(fig)
    section.figure = interactive.intermediate_values(study, rows)
    return section


def _rungs(rows: dict[int, record.Record]) -> Section:
    """Where the training went: each searched trial that ended, at the epochs it trained (the rungs of
    successive halving, or wherever the pruner stopped it) and the best validation accuracy it reached;
    each column labelled with its number of trials and their seconds of training."""
    trained = {number: row.epochs for number, row in rows.items() if row.epochs and not row.baseline
               and row.confirm_of is None and row.state in ("complete", "pruned") and math.isfinite(row.val_accuracy)}
    ended = [rows[number] for number in trained]
    section = Section("rungs", "Where the training went: each searched trial at the epochs it trained")
    if not ended:
        section.note = "No searched trial has ended yet."
        return section
    label: dict[int, str] = {}
    for epochs in sorted(set(trained.values())):
        mine = [row for row in ended if trained[row.number] == epochs]
        seconds = sum(row.train_seconds or 0.0 for row in mine)
        label[epochs] = f"{epochs} epochs: {len(mine)} trial{'s' if len(mine) > 1 else ''}, {seconds:,.0f} s"
    column = {epochs: i for i, epochs in enumerate(label)}
    fig, ax = page.figure(7, 4)
    for state, marker in (("complete", "o"), ("pruned", "x")):
        mine = [row for row in ended if row.state == state]
        if mine:
            ax.scatter([column[trained[row.number]] for row in mine], [row.val_accuracy for row in mine], marker=marker,
                       alpha=0.7, label=f"{state} ({len(mine)})")
    ax.set_xticks(range(len(label)), list(label.values()), fontsize=7)
    ax.set(xlabel="epochs trained", ylabel="best validation accuracy")
    ax.legend(loc="lower right", fontsize=8)
    section.png = page.png(fig)
    section.figure = interactive.rungs(list(label.values()), [(label[trained[row.number]], row) for row in ended])
    return section


def _chosen_model(study: optuna.Study, kept: artifacts.Lookup) -> list[Section]:
    """Confusion matrix and the surest mistakes of the model the study stands for (`confirm.study_model`: the
    confirmed winner, else the trial best by validation), rerun on the test set."""
    matrix = Section("confusion_matrix", "Confusion matrix of the chosen model")
    mistakes = Section("misclassified", "Misclassified test images of the chosen model, surest first "
                                        "(true -> predicted, confidence)")
    study_dir = kept.study_dir
    if kept.store is None and not artifacts.kept(study_dir):
        matrix.note = mistakes.note = f"No kept trial weights in {study_dir / artifacts.TRIALS}."
        return [matrix, mistakes]
    number, name, _ = confirm.study_model(study_dir, study)
    try:
        found = kept.find(number)
    except InputError as err:  # a store out of reach: the rest of the report stands
        matrix.note = mistakes.note = f"Trial {number}, {name}: {err}"
        return [matrix, mistakes]
    if found is None:  # say, a confirmed baseline that was not among the --keep-top best by validation
        where = f"in {study_dir / artifacts.TRIALS}" if kept.store is None else kept.where()
        matrix.note = mistakes.note = (f"Trial {number}, {name}, has no kept weights {where}"
                                       f"{confirm.ran_elsewhere(study, number)}.")
        return [matrix, mistakes]
    folder = Path(found["path"])
    from search.training import datasets  # TensorFlow loads only when a model has to run
    from search.training.runtime import start_tensorflow

    try:
        start_tensorflow()
        model, record = artifacts.load_model(folder)
        data = datasets.load(record["dataset"])
        probabilities = model.predict(data.test_images, batch_size=1000, verbose=0)
    except (OSError, KeyError, ValueError, InputError) as err:  # e.g. pruned away by a running search
        matrix.note = mistakes.note = f"Kept trial {number} could not be rerun: {err}"
        return [matrix, mistakes]
    labels, predicted = data.test_labels, probabilities.argmax(axis=1)
    counts = np.zeros((10, 10), dtype=int)
    np.add.at(counts, (labels, predicted), 1)
    fig, ax = page.figure(5.5, 5)
    ax.grid(False)
    ax.imshow(np.log1p(counts), cmap="Blues")  # log: the diagonal would wash out every mistake
    for (true, guess), count in np.ndenumerate(counts):
        ax.text(guess, true, str(count), ha="center", va="center", fontsize=7,
                color="white" if count > counts.max() / 4 else "black")
    accuracy = float(np.mean(predicted == labels))
    matrix.title = f"Confusion matrix of trial {number}, {name}: test accuracy {accuracy:.4f} on {len(labels):,} images"
    mistakes.title = (f"Misclassified test images of trial {number}, {name}, surest first "
                      "(true -> predicted, confidence)")
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true",
           title=f"trial {number}: {accuracy:.4f} test accuracy")
    matrix.png = page.png(fig)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")][:MISTAKES]
    if not len(wrong):
        mistakes.note = f"Trial {number} classifies every test image correctly."
        return [matrix, mistakes]
    columns = 6
    fig = Figure(figsize=(7, 1.3 * -(-len(wrong) // columns)), layout="constrained")
    for i, index in enumerate(wrong):
        ax = fig.add_subplot(-(-len(wrong) // columns), columns, i + 1)
        ax.imshow(data.test_images[index], cmap="gray_r")
        ax.set_title(f"{labels[index]} -> {predicted[index]} ({probabilities[index, predicted[index]]:.0%})",
                     fontsize=8)
        ax.axis("off")
    fig.suptitle(f"trial {number}: true -> predicted (confidence)", fontsize=10)
    mistakes.png = page.png(fig)
    return [matrix, mistakes]


def _answer(study: optuna.Study, table: pd.DataFrame, study_dir: Path) -> list[str]:
    """The page's first section, as paragraphs: the model to ship and how good it is, with its spread,
    against the best baseline; the confirmed winner when `confirm` has run, else the trial chosen by
    validation accuracy; the tutorials as written on the same kind of machine, from the reference store;
    and each exported ensemble against its members."""
    return [*_chosen(study, table), *_references(study, study_dir), *_ensembles(study_dir)]


def _references(study: optuna.Study, study_dir: Path) -> list[str]:
    """What the results folder's reference store holds for the kind of machine the study's latest
    finished trial ran on: each tutorial as written, over all its trainings (`references.summary`)."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    lines = references.summary(study_dir.parent, references.machine(study, trials[-1])) if trials else []
    if not lines:
        return []
    return [f"The tutorials as written on this kind of machine ({references.STORE}, filled by `search baselines`, "
            f"`run` and `confirm`): {'; '.join(lines)}."]


def _ensembles(study_dir: Path) -> list[str]:
    lines = []
    for card_file in sorted((study_dir / "export").glob("ensemble-*/model_card.json")):
        card = json.loads(card_file.read_text())
        members = card.get("members") or []
        best = max((m["test_accuracy"] for m in members), default=math.nan)
        lines.append(f"Exported top-{len(members)} ensemble ({card_file.parent.name}): test accuracy "
                     f"{_percent(card['test_accuracy'])}, against {_percent(best)} for its best single member and "
                     f"{_percent(members[0]['test_accuracy']) if members else '-'} for its first by validation; "
                     f"{card['n_params']:,} parameters in all.")
    return lines


def _chosen(study: optuna.Study, table: pd.DataFrame) -> list[str]:
    found = confirm.summary(study)
    if found is not None and found.winner.runs:
        lines = [f"Confirmed winner: {found.winner.name}, {leaderboard.describe(found.winner.trial.config)}: "
                 f"validation accuracy {confirm.spread(found.winner.val)}, test accuracy "
                 f"{confirm.spread(found.winner.test)} (mean ± standard deviation over {len(found.winner.runs)} "
                 f"trainings with fresh seeds)."]
        if found.baseline is not None and found.baseline is not found.winner:
            lines.append(f"Best baseline, {found.baseline.name}: validation {confirm.spread(found.baseline.val)}, "
                         f"test {confirm.spread(found.baseline.test)}.")
        return [*lines, confirm.verdict(found)]
    chosen = table[table["selected"]]
    if not len(chosen):
        return ["No trial has completed yet: there is no model to choose."]
    row = chosen.iloc[0]
    label = f" [{row['baseline']}]" if row["baseline"] else ""
    lines = [f"Selected by validation accuracy: trial {row['trial']}{label}, {row['hyperparameters']}: "
             f"validation {_percent(row['val_accuracy'])}, test "
             f"{_percent(row['test_accuracy'])}, from one training: about ±0.1 points of noise that one training "
             "cannot show (`search confirm` measures it)."]
    baselines = table[(table["baseline"] != "") & (table["state"] == "complete")]
    if len(baselines) and not row["baseline"]:
        best = baselines.sort_values("val_accuracy", ascending=False).iloc[0]
        lines.append(f"Best baseline by validation, {best['baseline']}: validation {_percent(best['val_accuracy'])}, "
                     f"test {_percent(best['test_accuracy'])}.")
    return lines


def _html(study: optuna.Study, table: pd.DataFrame, sections: list[Section], study_dir: Path) -> str:
    states = table["state"].value_counts()
    summary = (f"{len(table)} finished trials ({', '.join(f'{n} {s}' for s, n in states.items())}); "
               f"data set {study.user_attrs.get(StudyAttr.DATASET, '?')}; written {datetime.now():%Y-%m-%d %H:%M}.")
    shown = {"val_accuracy": "{:.4f}", "test_accuracy": "{:.4f}", "n_params": "{:,}"}
    formatters = {column: (lambda v, f=form: "" if pd.isna(v) else f.format(v)) for column, form in shown.items()}
    board = table.to_html(index=False, escape=True, na_rep="", border=0, table_id="leaderboard",
                          formatters=formatters)
    parts = [f"<h1>Study {html.escape(study.study_name)}</h1>", f"<p>{html.escape(summary)}</p>",
             '<section id="answer"><h2>The answer</h2>',
             *(f"<p>{html.escape(line)}</p>" for line in _answer(study, table, study_dir)), "</section>",
             *page.sections(sections),
             '<section id="all-trials"><h2>All trials, ranked by test accuracy</h2>', board, "</section>"]
    return page.document(f"{study.study_name}: search report", parts)

