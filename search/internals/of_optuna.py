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


def journal_lock_file(journal: str) -> str:
    """The file Optuna's `JournalFileOpenLock` creates (with O_EXCL) beside a journal to hold its lock,
    and removes on release: its `LOCK_FILE_SUFFIX`. The journal's lock of `search`, which writes its
    holder into that file, must use the same one, so that a process on Optuna's own lock and one on
    ours still exclude each other."""
    from optuna.storages.journal._file import LOCK_FILE_SUFFIX

    return journal + LOCK_FILE_SUFFIX
