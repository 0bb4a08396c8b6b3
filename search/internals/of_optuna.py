"""Optuna's private names that `search` uses (see search/internals/__init__.py)."""

from __future__ import annotations


def journal_set_trial_state() -> int:
    """The operation code of a journal record that sets a trial's state (and values): Optuna's
    `JournalOperation.SET_TRIAL_STATE_VALUES`. Repairing a torn journal reads records without Optuna's
    storage, which has no public way to parse one record."""
    from optuna.storages.journal._storage import JournalOperation

    return int(JournalOperation.SET_TRIAL_STATE_VALUES)


def journal_operations() -> frozenset[int]:
    """Every operation code a journal record may hold (Optuna's `JournalOperation`): a line that parses
    as JSON but holds another is damage, not a record."""
    from optuna.storages.journal._storage import JournalOperation

    return frozenset(int(operation) for operation in JournalOperation)
