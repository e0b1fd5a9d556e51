"""Reliability diagram (DeGroot & Fienberg, 1983; Niculescu-Mizil & Caruana, 2005) as a PNG.

Uses matplotlib's object API with the Agg canvas, never ``pyplot``: no global figure state, no GUI
backend, safe in worker processes.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from xcal.metrics.binning import DEFAULT_N_BINS, reliability_bins
from xcal.metrics.calibration_error import _ce_compute


def plot_reliability_diagram(
    probs: Tensor,
    labels: Tensor,
    path: str | Path,
    n_bins: int = DEFAULT_N_BINS,
    title: str = "",
    *,
    binning: str = "uniform",
    from_logits: bool = False,
    ignore_index: int | None = None,
    dpi: int = 120,
) -> Path:
    """Write a reliability diagram of the top-label confidence to ``path`` (PNG) and return the path.

    Top panel: accuracy per bin (bars over the bin's edges) against the diagonal of perfect calibration,
    the mean confidence of each bin as a marker, and the ECE in the legend. Bottom panel: the share of
    predictions per bin. Empty bins are drawn empty. Bins as :func:`xcal.metrics.reliability_bins`.

    Args:
        probs: ``(N, C)`` probabilities (or logits with ``from_logits=True``).
        labels: ``(N,)`` integer labels.
        path: output file; parent directories are created.
        n_bins: number of bins.
        title: figure title.
        binning: ``"uniform"`` or ``"quantile"``.
        from_logits: ``probs`` are logits.
        ignore_index: label value to drop.
        dpi: resolution.

    Returns:
        ``Path(path)``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rb = reliability_bins(probs, labels, n_bins, binning, from_logits=from_logits, ignore_index=ignore_index)
    conf_sum = torch.nan_to_num(rb.confidence * rb.count)
    correct_sum = torch.nan_to_num(rb.accuracy * rb.count)
    ece = float(_ce_compute(rb.count, conf_sum, correct_sum, "l1"))
    lower, upper = rb.lower.numpy(), rb.upper.numpy()
    width = upper - lower
    acc = torch.nan_to_num(rb.accuracy).numpy()
    share = (rb.count / rb.count.sum()).numpy()
    nonempty = (rb.count > 0).numpy()

    fig = Figure(figsize=(4.5, 5.2), dpi=dpi)
    FigureCanvasAgg(fig)
    ax, hx = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.bar(
        lower, acc, width=width, align="edge", color="#4C72B0", edgecolor="black", lw=0.5, label="accuracy"
    )
    ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="perfect calibration")
    ax.scatter(
        rb.confidence.numpy()[nonempty],
        acc[nonempty],
        color="#C44E52",
        s=12,
        zorder=3,
        label="mean confidence",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(
        loc="upper left", fontsize=7, title=f"ECE = {ece:.4f}, N = {int(rb.count.sum())}", title_fontsize=7
    )
    if title:
        ax.set_title(title, fontsize=9)
    hx.bar(lower, share, width=width, align="edge", color="#8C8C8C", edgecolor="black", lw=0.5)
    hx.set_xlabel("confidence")
    hx.set_ylabel("share")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
