"""Progress of a running search: a live rich display on a terminal, plain log lines otherwise.

Sits beside the study driver: `Progress` is an Optuna study callback (called after each trial) and
an epoch hook (called by the running trial after each epoch), so a person sees trials finished,
pruned and failed, the best validation and test accuracy so far, the running trial's epoch, and
elapsed and remaining time. When output is not a terminal (CI, a log file, `nohup`), each finished
trial prints one line instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

from search.study import record
from search.study.record import Attr


class Progress:
    """Counts and bests over the trials of this run, shown live or logged line by line."""

    def __init__(self, console: Console, total: int, done: int, live: bool | None = None,
                 counts: Callable[[FrozenTrial], bool] = record.counts_toward_budget) -> None:
        self.console = console
        self.total = total
        self.done = done
        self.counts_toward = counts  # which finished trials move the bar: search trials, or confirm's
        self.counts = {"complete": 0, "pruned": 0, "fail": 0}
        self.best: record.Record | None = None
        self.started = time.monotonic()
        self.live = console.is_terminal if live is None else live
        self.bar: RichProgress | None = None
        self.task: Any = None

    def __enter__(self) -> Progress:
        if self.live:
            self.bar = RichProgress(
                TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=self.console,
            )
            self.bar.start()
            self.task = self.bar.add_task("search", total=self.total, completed=self.done, status=self._status())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def seed_bests(self, study: optuna.Study) -> None:
        """Start from the bests of trials finished before a resume."""
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            self._update_bests(trial)

    def epoch(self, trial_number: int, epoch: int, epochs: int, val_accuracy: float) -> None:
        """Called by the running trial after each epoch."""
        if self.bar is not None:
            running = f"| trial {trial_number} epoch {epoch}/{epochs} val {100 * val_accuracy:.2f}%"
            self.bar.update(self.task, status=self._status(running))

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """The Optuna callback: a trial finished."""
        if not self.counts_toward(trial):  # interrupted, lost with its worker, never run, or not of this run
            return
        state = trial.state.name.lower()
        self.counts[state] = self.counts.get(state, 0) + 1
        self.done += 1
        self._update_bests(trial)
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done, status=self._status())
        else:
            self.console.print(self._line(trial), highlight=False, soft_wrap=True)
            self.console.file.flush()  # one line per trial must reach a log file as it happens

    def _update_bests(self, trial: FrozenTrial) -> None:
        """The best trial by validation accuracy (`record.by_validation`), as every choice of a model goes;
        its test accuracy is shown beside it, never chosen by."""
        if trial.state != TrialState.COMPLETE or not trial.values or record.is_confirmation(trial):
            return
        row = record.read(trial)
        if self.best is None or record.by_validation(row) < record.by_validation(self.best):
            self.best = row

    def _status(self, running: str = "") -> str:
        counts = f"{self.counts['pruned']} pruned, {self.counts['fail']} failed"
        best = "-" if self.best is None else (f"val {_pct(self.best.val_accuracy)} (trial {self.best.number}, test "
                                              f"{_pct(self.best.test_accuracy)})")
        return f"{counts} | best {best} {running}"

    def _line(self, trial: FrozenTrial) -> str:
        row = record.read(trial)
        what = f"val {_pct(row.val_accuracy)} test {_pct(row.test_accuracy)}"
        if trial.state != TrialState.COMPLETE:
            what = f"val {_pct(row.val_accuracy)} ({escape(row.reason)})"
        elapsed = time.monotonic() - self.started
        label = escape(f" [{row.baseline}]") if row.baseline else ""
        if row.confirm_of is not None:
            label = escape(f" [confirms trial {row.confirm_of}, seed {trial.user_attrs.get(Attr.REPLICA, 0) + 1}]")
        seconds = "-" if row.train_seconds is None else row.train_seconds
        resumed = f" (resumed after {row.resumed_at})" if row.resumed_at else ""
        return (f"trial {trial.number}{label} {trial.state.name.lower()}: {what}, {row.epochs or 0} epochs{resumed}, "
                f"{seconds} s | {self.done}/{self.total} done, {self._status()}| elapsed {elapsed:.0f} s")


def _pct(value: float | None) -> str:
    return "-" if value is None or value != value else f"{100 * value:.2f}%"
