"""The three kinds of error `search` tells apart.

A bad input (space file, data path, storage URL, CLI argument) stops the command before anything
is written, with one line naming the file, the key and the problem (`InputError` and its
subclasses; the CLI turns them into exit code 2). A bad trial (a config that cannot be built, a
NaN loss) fails that trial with a reason while the search goes on (`TrialFailed`). Pruning is
Optuna's own `optuna.TrialPruned`. The exit codes every command and worker process ends with are
defined here too.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran but did not succeed: a failure streak, a file predict could not read
EXIT_INPUT = 2  # bad input: one line on stderr, nothing written
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: finished work kept, the same command resumes


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


class TrialFailed(SearchError):
    """This trial cannot go on (unbuildable config, NaN loss, ...); the search continues."""


def first_line(err: BaseException) -> str:
    """An exception's first line of text, or its type's name when it has none."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def one_line(err: BaseException) -> str:
    """An exception as one line for a message: its type, and its first line of text if it has one."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
