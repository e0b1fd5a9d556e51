"""The canvas every report figure is drawn on, and the conventions figures share: matplotlib's object API on
the Agg canvas, never ``pyplot`` (no global figure state, no GUI backend, so a report draws the same in a
terminal, a worker process, CI and a notebook), one colour per intermediate size, and where size 0 sits on a
log-size axis."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Figures are read on screen and embedded in HTML: small files, sharp enough.
DPI = 110


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches on its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parents created) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def size_colors(sizes: Sequence[int]) -> dict[int, object]:
    """One colour per size along viridis, in size order (sizes are few and log-spaced: ordinal, not linear)."""
    from matplotlib import colormaps

    ordered = sorted(set(int(s) for s in sizes))
    cmap = colormaps["viridis"]
    if len(ordered) == 1:
        return {ordered[0]: cmap(0.35)}
    return {s: cmap(0.9 * i / (len(ordered) - 1)) for i, s in enumerate(ordered)}


def baseline_x(positive_sizes: Sequence[int]) -> float:
    """Where size 0 sits on the log axis: 1.5 doublings left of the smallest real size."""
    return float(min(positive_sizes)) / 2**1.5 if positive_sizes else 1.0


def placeholder(path: str | Path, message: str) -> Path:
    """A small figure that says why there is nothing to plot (a report never breaks on a thin sweep)."""
    fig = new_figure(4.0, 1.2)
    fig.text(0.5, 0.5, message, ha="center", va="center", fontsize=9)
    return save(fig, path)
