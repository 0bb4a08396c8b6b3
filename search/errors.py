"""The three kinds of error `search` tells apart.

A bad input (space file, data path, storage URL, CLI argument) stops the command before anything
is written, with one line naming the file, the key and the problem (`InputError` and its
subclasses; the CLI turns them into exit code 2). A full disk stops the command with one line and
exit code 1, finished work kept (`DiskFull`). A bad trial (a config that cannot be built, a
NaN loss) fails that trial with a reason while the search goes on (`TrialFailed`). Pruning is
Optuna's own `optuna.TrialPruned`. The exit codes every command and worker process ends with are
defined here too.
"""

from __future__ import annotations

import errno

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran but did not succeed: a failure streak, a file predict could not read
EXIT_INPUT = 2  # bad input: one line on stderr, nothing written
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: finished work kept, the same command resumes
EXIT_DISK_FULL = 3  # a worker stopped because its disk is full (the command itself then ends with EXIT_FAILED)


class SearchError(Exception):
    """Base class of every error `search` raises on purpose."""


class InputError(SearchError):
    """Bad user input; the message is the single line shown to the user."""


class SpaceError(InputError):
    """A space file that cannot be loaded or validated: `file: key.path: problem`."""

    def __init__(self, source: str, path: str, problem: str) -> None:
        self.source = source
        self.path = path
        self.problem = problem
        where = f"{source}: {path}: " if path else f"{source}: "
        super().__init__(where + problem)


class DataError(InputError):
    """A data set that is missing, malformed, or fails its checksum."""


class DiskFull(SearchError):
    """No space left where a study writes: its journal, or a kept trial's weights; the message is one line."""


def disk_full(err: BaseException) -> bool:
    """Whether `err`, or an error it was raised from or while handling, says the disk is full."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DiskFull) or (isinstance(current, OSError) and current.errno in _FULL):
            return True
        current = current.__cause__ or current.__context__
    return False


_FULL = {errno.ENOSPC, errno.EDQUOT}


class TrialFailed(SearchError):
    """This trial cannot go on (unbuildable config, NaN loss, ...); the search continues."""


def first_line(err: BaseException) -> str:
    """An exception's first line of text, or its type's name when it has none."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def one_line(err: BaseException) -> str:
    """An exception as one line for a message: its type, and its first line of text if it has one."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
