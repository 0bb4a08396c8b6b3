"""KerasTuner's private names that `search` uses (see search/internals/__init__.py)."""

from __future__ import annotations


def tracebacks(enabled: bool) -> None:
    """Whether KerasTuner prints the traceback of every failed trial (its default). A failed trial's
    reason is already one line on the leaderboard; KerasTuner has no public switch for this."""
    from keras_tuner.src import config

    config.DEBUG = enabled
