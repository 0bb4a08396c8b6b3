"""The range of every number the command line takes, and the one check each goes through.

At the edge, before any stage: `cli.py` gives every numeric flag `Range.flag_type(flag)` as its
argparse type, so a number that is not finite or lies outside its range stops the command while its
arguments are parsed, in one line naming the flag, the value and the range (exit code 2), before
anything is read or written. `run.py` checks the values its Python API is given against the same
ranges. Each bound says why it is there: the data's size, the schema's, or what one machine can do.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from search.errors import InputError
from search.serving.predict import MAX_SAMPLES
from search.space.schema import KEYS
from search.training.datasets import TRAIN_SPLIT

CORES = os.cpu_count() or 1


@dataclass(frozen=True)
class Range:
    """Integers in [low, high], or finite numbers in [low, high] (in (low, high] when `above`)."""

    kind: type[int] | type[float]
    low: float
    high: float
    above: bool = False  # the low end excluded: a duration or a scale must be more than 0
    why: str = ""  # said after the range when it is not obvious, e.g. "(4 a core)"

    def describe(self) -> str:
        if self.kind is int:
            text = f"an integer from {_shown(self.low)} to {_shown(self.high)}"
        else:
            text = f"a number {'>' if self.above else '>='} {_shown(self.low)} and <= {_shown(self.high)}"
        return f"{text} {self.why}".strip()

    def holds(self, value: float) -> bool:
        if self.kind is int and (not isinstance(value, int) or isinstance(value, bool)):
            return False
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return False
        return (value > self.low if self.above else value >= self.low) and value <= self.high

    def check(self, value: float | None, flag: str) -> None:
        """Refuse a value out of range in one line naming `flag`; None (not given) passes."""
        if value is not None and not self.holds(value):
            raise InputError(f"{flag} {value!r}: expected {self.describe()}")

    def flag_type(self, flag: str) -> FlagType:
        return FlagType(flag, self)


def _shown(bound: float) -> str:
    return f"{int(bound):,}" if bound == int(bound) else f"{bound:g}"


class FlagError(InputError):
    """A number on the command line out of its range: a usage error, shown without a traceback."""


@dataclass(frozen=True)
class FlagType:
    """An argparse type: the text of `flag`'s value as a number in its range, or an InputError.

    It raises FlagError rather than argparse's ArgumentTypeError, so that the line is the same as the
    Python API's (`--seed -1: expected ...`)."""

    flag: str
    range: Range

    def __call__(self, text: str) -> int | float:
        try:
            value = self.range.kind(text)
        except ValueError:
            raise FlagError(f"{self.flag} {text!r}: expected {self.range.describe()}") from None
        if not self.range.holds(value):
            raise FlagError(f"{self.flag} {text}: expected {self.range.describe()}")
        return value


DAY = 24 * 3600
SEED = Range(int, 0, 2**32 - 1)  # NumPy's and TensorFlow's seeds are 32-bit
TRIALS = Range(int, 1, 100_000)  # a study's total; far beyond what one study pays for
SECONDS = Range(float, 0, 365 * DAY, above=True, why="(a year)")  # a timeout
EPOCHS = Range(int, KEYS["epochs"].low or 1, KEYS["epochs"].high or 1)  # the schema's, as in a space file
MIN_EPOCHS = Range(int, 2, EPOCHS.high, why="(a trial's first epoch is never judged)")  # the pruner's first rung
TRAIN_SIZE = Range(int, 1, TRAIN_SPLIT)  # the first N of the training split
WORKERS = Range(int, 1, 10_000)  # on a Ray cluster (--ray)
LOCAL_WORKERS = Range(int, 1, 4 * CORES, why=f"(at most 4 a core: this machine has {CORES})")
CPUS_PER_WORKER = Range(int, 1, 1_024)
RECYCLE_AFTER = Range(int, 1, 100_000)
ROWS = Range(int, 1, 100_000)  # leaderboard rows shown
KEEP_TOP = Range(int, 0, 100_000)  # 0: keep no weights
MAX_PARAMS = Range(int, 1, 10**9)  # a billion weights: no MNIST model comes near
LATENCY_MS = Range(float, 0, 60_000, above=True)  # a minute a digit
TRIAL = Range(int, 0, 2**31 - 1)  # a trial number
CONFIRM_TOP = Range(int, 1, 20)  # configurations confirm trains again
CONFIRM_SEEDS = Range(int, 1, 100)  # trainings of each: top x seeds at most 2,000
WARM_TOP = Range(int, 1, 1_000)  # an earlier study's best configurations queued by --warm-start
ENSEMBLE = Range(int, 1, 100)  # models averaged into one
SAMPLES = Range(int, 1, MAX_SAMPLES)  # MNIST's test set
SCALE = Range(float, 0, 100, above=True)  # of the tutorials' epochs
