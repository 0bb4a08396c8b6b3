"""Studies side by side (`report A B ...`): one page, beside each study's own report.

`write_compared` reads each study's completed search trials through the trial record (`confirm`'s
trainings are not search trials) and draws every study's best validation accuracy so far against
trial number and against minutes since the study's first trial started, one figure each, each trial
a point that names its study and trial on hover. The page opens with the answer: each study's trial
selected by validation accuracy, its test accuracy reported beside it, best first; then the figures,
then `compare`'s table. It goes to `results/A+B/report.html`, its figures as PNG in
`results/A+B/report/` ('+' is in no study's name, so the folder is no study's), in the same frame as a
study's own report (`page.py`). Nothing is written to the studies; a study without a finished trial
stops it before anything is written, as one named twice or not found does (`studies.load_studies`).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from matplotlib.ticker import MaxNLocator

from search.errors import InputError
from search.files import write_atomic
from search.results import confirm, interactive, leaderboard, page
from search.results.page import percent
from search.study import record
from search.study.record import Attr, StudyAttr

# A colour per study, the same in the PNG and on the page: matplotlib's tab10, in its order.
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
NAME_BYTES = 255  # the longest file name common file systems take
NOISE = ("Each accuracy is from one training, with about ±0.1 points of noise that one training cannot show: "
         "`search confirm STUDY` measures it.")


@dataclass(frozen=True)
class Series:
    """One study's completed search trials, by trial number, with when each finished."""

    study: str
    colour: str
    rows: list[record.Record]
    minutes: list[float]  # since the study's first trial started

    def drawn(self, by: Callable[[Series], Sequence[float]]) -> tuple[list[float], list[record.Record]]:
        """The trials in the order of their x (`by`): trial number or minutes."""
        xs = by(self)
        order = np.argsort(xs, kind="stable")
        return [float(xs[i]) for i in order], [self.rows[i] for i in order]


def folder(results: Path, studies: list[optuna.Study]) -> Path:
    """`results/A+B`: the page's folder, named after the studies in the order given."""
    name = "+".join(study.study_name for study in studies)
    if len(name.encode()) > NAME_BYTES:
        raise InputError(f"{name[:60]}...: the page's folder name would be {len(name.encode())} bytes, more than "
                         f"the {NAME_BYTES} a file system takes: compare fewer studies at once")
    return results / name


def write_compared(studies: list[optuna.Study], results: Path) -> Path:
    """Write `results/A+B/report.html` and its figures as `results/A+B/report/*.png`; returns the page."""
    tables = {study.study_name: leaderboard.frame(study) for study in studies}
    for name, table in tables.items():
        if table.empty:
            raise InputError(f"study {name!r} has no finished trials yet: nothing to compare")
    out = folder(results, studies)
    sections = _progress([_series(study, COLOURS[i % len(COLOURS)]) for i, study in enumerate(studies)])
    page.write_pngs(sections, out)
    path = out / "report.html"
    write_atomic(path, _html(studies, tables, sections).encode())
    return path


def _series(study: optuna.Study, colour: str) -> Series:
    """A study's completed search trials (no `confirm` training, none that never trained), and the minutes
    from its first trial's start to each one's end."""
    searched = [t for t in study.get_trials(deepcopy=False) if not record.is_confirmation(t)]
    start = min((t.datetime_start for t in searched if t.datetime_start is not None), default=None)
    rows, minutes = [], []
    for trial in searched:
        row = record.read(trial)
        if row.state == "complete" and trial.datetime_complete is not None and not trial.user_attrs.get(Attr.SURPLUS):
            rows.append(row)
            minutes.append((trial.datetime_complete - (start or trial.datetime_complete)).total_seconds() / 60)
    return Series(study.study_name, colour, rows, minutes)


def _progress(series: list[Series]) -> list[page.Section]:
    """Every study's best validation accuracy so far, by trial number and by wall-clock time, as PNG
    (matplotlib) and interactive (plotly) from the same points."""
    by_number = page.Section("best_by_trial", "Best validation accuracy so far, by trial number")
    by_time = page.Section("best_by_time", "Best validation accuracy so far, by minutes since each study's "
                                           "first trial started")
    shown = [s for s in series if s.rows]
    empty = [s.study for s in series if not s.rows]
    note = f"No completed trial yet in {', '.join(empty)}." if empty else ""
    for section, label, by in ((by_number, "trial number", lambda s: [row.number for row in s.rows]),
                               (by_time, "minutes since the study's first trial started", lambda s: s.minutes)):
        section.note = note
        if not shown:
            continue
        fig, ax = page.figure(7, 3.8)
        lines = []
        for one in shown:
            x, rows = one.drawn(by)
            y = np.array([row.val_accuracy for row in rows])
            ax.scatter(x, y, s=12, color=one.colour, alpha=0.35)
            ax.step(x, np.fmax.accumulate(y), where="post", color=one.colour, label=f"{one.study}: best so far")
            lines.append((one.study, one.colour, x, rows))
        if section is by_number:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel=label, ylabel="validation accuracy")
        ax.legend(loc="lower right")
        section.png = page.png(fig)
        section.figure = interactive.studies_best_so_far(lines, label)
    return [by_number, by_time]


def _answer(studies: list[optuna.Study], tables: dict[str, pd.DataFrame]) -> tuple[list[str], list[str]]:
    """The page's first section: a lead line (which study's pick is best by validation), then one line per
    study, best first: its trial selected by validation with both accuracies, and its confirmed winner."""
    picks: dict[str, pd.Series] = {}
    for name, table in tables.items():
        chosen = table[table["selected"]]
        if len(chosen):
            picks[name] = chosen.iloc[0]
    ranked = sorted(picks, key=lambda name: record.validation_order(
        float(picks[name]["val_accuracy"]), None if pd.isna(picks[name]["n_params"]) else int(picks[name]["n_params"]),
        0))
    lead = []
    if not ranked:
        lead.append("No study has a completed trial yet: there is no model to choose.")
    else:
        best = picks[ranked[0]]
        lead.append(f"Best by validation accuracy: {ranked[0]}, its trial {best['trial']} with validation "
                    f"{percent(best['val_accuracy'])} and test {percent(best['test_accuracy'])}"
                    + "".join(f"; then {name}, trial {picks[name]['trial']}: validation "
                              f"{percent(picks[name]['val_accuracy'])}, test {percent(picks[name]['test_accuracy'])}"
                              for name in ranked[1:]) + ". " + NOISE)
    datasets = {study.study_name: str(study.user_attrs.get(StudyAttr.DATASET, "?")) for study in studies}
    if len(set(datasets.values())) > 1:
        lead.append(f"The studies ran on different data sets ({', '.join(f'{n}: {d}' for n, d in datasets.items())}): "
                    "their accuracies do not compare.")
    lines = []
    for study in sorted(studies, key=lambda s: ranked.index(s.study_name) if s.study_name in ranked else len(ranked)):
        name = study.study_name
        if name not in picks:
            lines.append(f"{name}: no trial has completed yet.")
            continue
        row = picks[name]
        label = f" [{row['baseline']}]" if row["baseline"] else ""
        line = (f"{name}: trial {row['trial']}{label}, {row['hyperparameters']}: validation "
                f"{percent(row['val_accuracy'])}, test {percent(row['test_accuracy'])}; selected by validation "
                f"among {int((tables[name]['state'] == 'complete').sum())} completed trials.")
        found = confirm.summary(study)
        if found is not None and found.winner.runs:
            line += (f" Confirmed winner: {found.winner.name}, validation {confirm.spread(found.winner.val)}, test "
                     f"{confirm.spread(found.winner.test)} over {len(found.winner.runs)} trainings.")
        lines.append(line)
    return lead, lines


def _html(studies: list[optuna.Study], tables: dict[str, pd.DataFrame], sections: list[page.Section]) -> str:
    names = [study.study_name for study in studies]
    counts = [f"{name}: {len(table)} finished trials ({', '.join(f'{n} {s}' for s, n in states.items())})"
              for name, table in tables.items() for states in [table["state"].value_counts()]]
    summary = f"{'; '.join(counts)}; written {datetime.now():%Y-%m-%d %H:%M}."
    shown = {"val_accuracy": "{:.4f}", "test_accuracy": "{:.4f}", "n_params": "{:,.0f}", "selected_trial": "{:.0f}"}
    formatters = {column: (lambda v, f=form: "" if pd.isna(v) else f.format(v)) for column, form in shown.items()}
    table = leaderboard.compare(studies).to_html(index=False, escape=True, na_rep="", border=0, table_id="compared",
                                                 formatters=formatters)
    lead, lines = _answer(studies, tables)
    title = f"Studies {', '.join(names[:-1])} and {names[-1]} side by side"
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(summary)}</p>",
             '<section id="answer"><h2>The answer</h2>', *(f"<p>{html.escape(line)}</p>" for line in lead),
             "<ul>", *(f"<li>{html.escape(line)}</li>" for line in lines), "</ul></section>",
             *page.sections(sections),
             '<section id="studies"><h2>The trial each study selects by validation accuracy</h2>', table, "</section>"]
    return page.document(f"{' + '.join(names)}: search report", parts)
