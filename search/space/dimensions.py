"""The four kinds of searched value a space file is written in: `Int`, `Float`, `Choice`, `Repeat`.

Plain frozen dataclasses with no behaviour beyond their printout, so that the walk over a space
(visit.py), its checks (checks.py) and `schema.py` (which keys take which values) can all use them
without importing each other. Space files import them from `search.space`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Constant = str | int | float | bool | None


@dataclass(frozen=True)
class Int:
    """An integer in [low, high], optionally on a log scale or in steps."""

    low: int
    high: int
    log: bool = False
    step: int = 1

    def __repr__(self) -> str:
        extra = (", log=True" if self.log else "") + (f", step={self.step}" if self.step != 1 else "")
        return f"Int({self.low}, {self.high}{extra})"


@dataclass(frozen=True)
class Float:
    """A float in [low, high], optionally on a log scale or in steps."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    def __repr__(self) -> str:
        extra = (", log=True" if self.log else "") + (f", step={self.step}" if self.step else "")
        return f"Float({self.low:g}, {self.high:g}{extra})"


@dataclass(frozen=True)
class Choice:
    """One of several options. Options that are dicts are sub-spaces (conditional branches).

    Branches are labelled by the keys of a dict (`Choice({"mlp": {...}, "cnn": {...}})`); the
    config then holds the label under the Choice's key and the branch's own keys beside it.
    """

    options: list[Any] | dict[str, Any]

    @property
    def branches(self) -> bool:
        """Whether the options are labelled sub-spaces rather than constants."""
        return isinstance(self.options, dict)

    def labels(self) -> list[Constant]:
        return list(self.options)

    def option(self, label: Constant) -> Any:
        return self.options[str(label)] if isinstance(self.options, dict) else label

    def __repr__(self) -> str:
        return f"Choice({self.labels()!r})"


@dataclass(frozen=True)
class Repeat:
    """A block repeated `count` times (an `Int` or a fixed int); the config holds a list."""

    count: Int | int
    block: Any = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Repeat({self.count!r})"


Dimension = Int | Float | Choice | Repeat
