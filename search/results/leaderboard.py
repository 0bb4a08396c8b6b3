"""The leaderboard: the last stage of a run (finished trials -> ranked table, CSV, Markdown).

Reads only what the trials recorded in the study (config, test accuracy, parameters, epochs,
seconds, reasons), so it works on any stored study, finished or still running. Rows are ranked by
test accuracy; trials without one (pruned, failed) follow, by their best validation accuracy.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from search.files import write_atomic
from search.study import record
from search.study.record import Attr, StudyAttr

COLUMNS = ["rank", "trial", "state", "val_accuracy", "test_accuracy", "n_params", "latency_ms", "epochs",
           "train_seconds", "baseline", "hyperparameters", "reason", "selected"]
SHOWN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def describe(config: dict[str, Any]) -> str:
    """A config in one short line: `mlp 512-256 relu drop=0.2 adam lr=1.2e-03 bs=128 ep=15`."""
    parts: list[str] = [str(config.get("model", "?"))]
    if config.get("conv_blocks"):
        blocks = [f"{b.get('filters')}k{b.get('kernel_size', 3)}" + ("" if b.get("pooling", "max") == "max"
                  else str(b.get("pooling"))) for b in config["conv_blocks"]]
        parts.append("conv " + "-".join(blocks))
    if config.get("layers"):
        parts.append("-".join(str(layer.get("units")) for layer in config["layers"]))
    for key, short in (("activation", ""), ("conv_activation", "conv="), ("dropout", "drop="), ("batch_norm", "bn="),
                       ("l2", "l2="), ("init", "init="), ("input_scaling", "in="), ("optimizer", ""),
                       ("learning_rate", "lr="), ("momentum", "mom="), ("schedule", ""), ("warmup", "warm="),
                       ("weight_decay", "wd="), ("label_smoothing", "ls="), ("ema", "ema="), ("augment", "aug="),
                       ("batch_size", "bs="), ("epochs", "ep="), ("steps", "steps=")):
        value = config.get(key)
        if value is None or value is False or (value == 0 and key != "learning_rate"):
            continue  # defaults that change nothing would only make the line longer
        if value == QUIET_DEFAULTS.get(key):
            continue
        if key == "momentum" and config.get("optimizer", "adam") == "adam":
            continue  # adam has no momentum setting; showing it would suggest it mattered
        if key == "epochs" and config.get("steps"):
            continue  # training by steps: the epochs setting is not used
        if key in ("learning_rate", "l2", "weight_decay"):
            parts.append(f"{short}{value:.2e}")
        else:
            parts.append(f"{short}{value:.2f}" if isinstance(value, float) else f"{short}{value}")
    return " ".join(parts)


# Defaults of the keys the line shows only when a config changes them.
QUIET_DEFAULTS = {"init": "glorot", "input_scaling": "unit", "schedule": "constant", "augment": "none"}


def frame(study: optuna.Study) -> pd.DataFrame:
    """One row per finished search trial, ranked by test accuracy; `selected` marks the trial chosen by
    validation accuracy (`record.selected`), the one a user would pick without the test set. `confirm`'s
    trainings are not search trials: `confirmation` shows them. A study with several objectives lists
    exactly its Pareto set (Optuna's `best_trials`): every other trial is beaten on all of them."""
    records = [record.read(t) for t in study.get_trials(deepcopy=False, states=SHOWN)
               if not t.user_attrs.get(Attr.SURPLUS) and not t.user_attrs.get(Attr.REJECTED)  # never trained
               and not record.is_confirmation(t)]
    if len(study.directions) > 1:
        pareto = {t.number for t in study.best_trials}
        records = [row for row in records if row.number in pareto]
    chosen = record.selected(records)
    rows = []
    for row in records:
        rows.append({
            "trial": row.number, "state": row.state, "val_accuracy": row.val_accuracy,
            "test_accuracy": row.test_accuracy, "n_params": row.n_params, "latency_ms": row.latency_ms,
            "epochs": row.epochs,
            "train_seconds": row.train_seconds, "baseline": row.baseline,
            "hyperparameters": describe(row.config), "reason": row.reason,
            "selected": chosen is not None and row.number == chosen.number,
        })
    table = pd.DataFrame(rows, columns=COLUMNS[1:])
    table = table.sort_values(["test_accuracy", "val_accuracy", "trial"], ascending=[False, False, True],
                              na_position="last", kind="stable")
    table.insert(0, "rank", range(1, len(table) + 1))
    table["n_params"] = table["n_params"].astype("Int64")
    table["epochs"] = table["epochs"].astype("Int64")
    return table.reset_index(drop=True)


SORTS = {"test": ("test_accuracy", False), "val": ("val_accuracy", False), "params": ("n_params", True),
         "time": ("train_seconds", True)}
STATES = {"complete": ["complete"], "pruned": ["pruned"], "failed": ["fail", "interrupted", "lost"],
          "all": ["complete", "pruned", "fail", "interrupted", "lost"]}


def select(table: pd.DataFrame, sort: str = "test", state: str = "all", top: int | None = None) -> pd.DataFrame:
    """Filter by state, re-sort (keeping the test-accuracy rank column), keep the first `top` rows."""
    column, ascending = SORTS[sort]
    chosen = table[table["state"].isin(STATES[state])]
    if sort != "test":
        chosen = chosen.sort_values([column, "rank"], ascending=[ascending, True], na_position="last", kind="stable")
    return chosen.head(top) if top else chosen


def engine(study: optuna.Study) -> str:
    """Which search engine produced the study: `optuna/tpe+median`, `keras-tuner/hyperband`, ..."""
    return str(study.user_attrs.get(StudyAttr.ENGINE, "?"))


def compare(studies: list[optuna.Study]) -> pd.DataFrame:
    """The trial each study selects by validation accuracy, side by side, with the engine that ran it and
    how many trials each ran; the best test accuracy first."""
    tables = {study.study_name: frame(study) for study in studies}
    engines = {study.study_name: engine(study) for study in studies}
    rows = []
    for name, table in tables.items():
        chosen = table[table["selected"]]
        best = chosen.iloc[0] if len(chosen) else None
        counts = table["state"].value_counts()
        rows.append({
            "study": name, "engine": engines[name], "trials": len(table),
            "complete": int(counts.get("complete", 0)),
            "pruned": int(counts.get("pruned", 0)), "failed": int(counts.get("fail", 0)),
            "selected_trial": None if best is None else int(best["trial"]),
            "val_accuracy": math.nan if best is None else best["val_accuracy"],
            "test_accuracy": math.nan if best is None else best["test_accuracy"],
            "n_params": None if best is None else best["n_params"],
            "train_seconds": None if best is None else best["train_seconds"],
            "hyperparameters": "" if best is None else best["hyperparameters"],
        })
    return pd.DataFrame(rows).sort_values("test_accuracy", ascending=False, na_position="last")


def emit(table: pd.DataFrame, fmt: str, console: Console, title: str, notes: list[str] | None = None) -> None:
    """Print a table as `fmt` says: table (rich, with the `notes` lines under it), csv, md or json."""
    if fmt == "csv":
        sys.stdout.write(table.to_csv(index=False, float_format="%.4f"))
    elif fmt == "md":
        sys.stdout.write(markdown(table))
    elif fmt == "json":
        sys.stdout.write(table.to_json(orient="records", indent=2) + "\n")
    elif "rank" in table:
        console.print(render(table, title, top=None))
        for line in notes or []:
            console.print(line)
    else:
        console.print(title)
        console.print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def write(table: pd.DataFrame, folder: Path) -> list[Path]:
    """`leaderboard.csv` and `leaderboard.md` in the study's results folder, written atomically."""
    written = []
    for name, text in (("leaderboard.csv", table.to_csv(index=False, float_format="%.4f")),
                       ("leaderboard.md", markdown(table))):
        write_atomic(folder / name, text.encode())
        written.append(folder / name)
    return written


def markdown(table: pd.DataFrame) -> str:
    """A Markdown table with blanks, not `nan`, where a trial has no figure."""
    cleaned = table.astype(object).where(table.notna(), None)
    return cleaned.to_markdown(index=False, floatfmt=".4f", missingval="") + "\n"


def render(table: pd.DataFrame, title: str, top: int | None = 20) -> Table:
    """A rich table of the first `top` rows."""
    out = Table(title=title, header_style="bold", title_justify="left")
    for column in ("rank", "trial", "state", "val_acc", "test_acc", "params", "ms", "epochs", "seconds",
                   "hyperparameters"):
        wide = column == "hyperparameters"
        out.add_column(column, justify="left" if wide or column == "state" else "right",
                       no_wrap=not wide, overflow="fold", ratio=1 if wide else None)
    for row in table.head(top).itertuples():
        label = f"[cyan]{escape(row.baseline)}[/] " if row.baseline else ""
        label = ("[bold magenta]selected by validation[/] " if row.selected else "") + label
        note = f" [dim]({escape(row.reason)})[/]" if row.state != "complete" and row.reason else ""
        out.add_row(str(row.rank), str(row.trial), _state(row.state), _pct(row.val_accuracy),
                    _pct(row.test_accuracy), _count(row.n_params), _na(row.latency_ms), _na(row.epochs),
                    _na(row.train_seconds), label + escape(row.hyperparameters) + note)
    return out


def summary(study: optuna.Study, table: pd.DataFrame) -> list[str]:
    """The lines under the leaderboard: the trial chosen by validation, and the confirmed winner."""
    from search.results import confirm

    lines = []
    rejected = sum(bool(t.user_attrs.get(Attr.REJECTED)) for t in study.get_trials(deepcopy=False))
    if rejected:
        lines.append(f"{rejected} configs were rejected before training, over --max-params or --max-latency-ms "
                     "(not counted, not listed)")
    if len(study.directions) > 1:
        lines.append(f"Pareto set of {len(table)} trials ({', '.join(study.user_attrs.get(StudyAttr.OBJECTIVES, []))}):"
                     " each trial not listed is beaten on every objective by one that is")
    chosen = table[table["selected"]]
    if len(chosen):
        row = chosen.iloc[0]
        label = f" [{row['baseline']}]" if row["baseline"] else ""
        lines.append(f"selected by validation: trial {row['trial']}{escape(label)} val {_pct(row['val_accuracy'])} "
                     f"test {_pct(row['test_accuracy'])} (rank {row['rank']} by test)")
    found = confirm.summary(study)
    if found is not None and found.winner.runs:
        winner = found.winner
        lines.append(f"confirmed winner ({len(winner.runs)} of {found.seeds} seeds): {escape(winner.name)} val "
                     f"{confirm.spread(winner.val)}, test {confirm.spread(winner.test)}"
                     + ("" if found.complete else "; the confirmation is not finished: run confirm again"))
        lines.append(escape(confirm.verdict(found)))
    return lines


def render_confirmation(found: Any) -> Table:
    """`confirm`'s table (a `confirm.Confirmation`): each configuration's mean ± standard deviation over
    its seeds, best mean validation accuracy first, beside its search trial's own figures."""
    from search.results import confirm

    out = Table(title=f"confirmation: {len(found.candidates)} configurations x {found.seeds} seeds, by mean "
                      "validation accuracy", header_style="bold", title_justify="left")
    for column in ("trial", "seeds", "val (mean ± sd)", "test (mean ± sd)", "search val", "search test",
                   "hyperparameters"):
        out.add_column(column, justify="left" if column == "hyperparameters" else "right",
                       overflow="fold", ratio=1 if column == "hyperparameters" else None)
    for candidate in found.candidates:
        row = candidate.trial
        label = f"[cyan]{escape(row.baseline)}[/] " if row.baseline else ""
        out.add_row(str(row.number), f"{len(candidate.runs)}/{found.seeds}", confirm.spread(candidate.val),
                    confirm.spread(candidate.test), _pct(row.val_accuracy), _pct(row.test_accuracy),
                    label + escape(describe(row.config)))
    return out


def _state(state: str) -> str:
    colour = {"complete": "green", "pruned": "yellow", "fail": "red", "interrupted": "magenta",
              "lost": "magenta"}.get(state, "")
    return f"[{colour}]{state}[/]" if colour else state


def _pct(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{100 * value:.2f}%"


def _count(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{int(value):,}"


def _na(value: Any) -> str:
    return "" if value is None or pd.isna(value) else str(value)
