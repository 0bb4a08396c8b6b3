"""The report pages' common frame: sections of figures, PNG files beside the page, one HTML document.

A report (`report.py`, one study; `compared.py`, several side by side) is a list of `Section`s, each a
figure drawn twice from one set of data: a matplotlib PNG written to `report/NAME.png` beside the page,
and a plotly figure (`interactive.py`) drawn by the browser; or the reason it is missing. `write_pngs`
writes the PNGs (and removes those a previous page had and this one cannot draw), `sections` renders
the sections, `document` wraps them in a page that names no site and needs no network: plotly.js goes
in once, inline, with the first interactive figure.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure  # the object API needs no pyplot and no global backend

from search.files import write_atomic
from search.results import interactive

FIGURES = "report"  # the folder of PNGs beside the page
STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:13px}th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}
#leaderboard td:nth-child(n+9),#leaderboard th:nth-child(n+9),#compared td:first-child,#compared td:last-child
{text-align:left}th{background:#f3f3f3}
figure{margin:1.5em 0}img{max-width:100%;border:1px solid #eee}.note{color:#a60}figcaption{font-size:13px;color:#666}"""


@dataclass
class Section:
    """One figure of a report, or the reason it is missing: a PNG, an interactive figure, or both."""

    name: str
    title: str
    png: bytes | None = None
    note: str = ""
    figure: Any = None  # a plotly Figure (plotly ships no type hints)


def write_pngs(sections: list[Section], folder: Path) -> None:
    """Each section's PNG as `folder/report/NAME.png`; a PNG a previous page had and this one cannot
    draw is removed, so the folder holds exactly the page's figures."""
    figures = folder / FIGURES
    for section in sections:
        if section.png is not None:
            write_atomic(figures / f"{section.name}.png", section.png)
    drawn = {f"{s.name}.png" for s in sections if s.png is not None}
    for stale in figures.glob("*.png"):
        if stale.name not in drawn:
            stale.unlink(missing_ok=True)


def sections(shown: list[Section]) -> list[str]:
    """The sections as HTML: the interactive figure where there is one (plotly.js inlined with the
    first), else the PNG embedded; each with its link to the PNG file and its note."""
    parts = []
    with_plotlyjs = True
    for section in shown:
        parts.append(f'<section id="{section.name}"><h2>{html.escape(section.title)}</h2>')
        link = (f'<a href="{FIGURES}/{section.name}.png">{FIGURES}/{section.name}.png</a>' if section.png is not None
                else "")
        if section.figure is not None:
            parts.append(f"<figure>{interactive.div(section.figure, section.name, with_plotlyjs)}"
                         f"<figcaption>Interactive: hover, zoom, double-click to reset. {link}</figcaption></figure>")
            with_plotlyjs = False
        elif section.png is not None:
            data = base64.b64encode(section.png).decode()
            parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(section.title)}">'
                         f"<figcaption>{link}</figcaption></figure>")
        if section.note:
            parts.append(f'<p class="note">{html.escape(section.note)}</p>')
        parts.append("</section>")
    return parts


def document(title: str, parts: list[str]) -> str:
    """A whole page of `parts` (HTML), titled `title` (text)."""
    # The empty data: icon stops the browser asking the file system for a favicon that is not there.
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">'
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
            f"<body>\n{chr(10).join(parts)}\n</body></html>\n")


def figure(width: float, height: float) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    ax.grid(alpha=0.3)
    return fig, ax


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # No Software tag: it would carry matplotlib's URL into the page, which should name no site.
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def percent(value: float | None) -> str:
    """`98.76%`, or `-` where there is no figure."""
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.2f}%"
