r"""Confidence binning: bin edges, bin assignment, per-bin sufficient statistics.

Bin-edge convention (used by every binned estimator in xcal):

* Uniform bins have edges :math:`e_k = k / B` for :math:`k = 0..B`, computed in float64 as
  ``k / B`` (a correctly rounded division, so identical to ``i * 1.0 / num_bins`` in
  uncertainty-calibration). Confidences are compared in float64.
* ``closed="right"`` (the default): bin :math:`k` is :math:`(e_k, e_{k+1}]`, except that a
  confidence of exactly 0 goes into the first bin. A confidence of exactly 1.0 is in the last bin
  :math:`(e_{B-1}, 1]` -- there is **no** extra hidden bin (contrast torchmetrics issue #3510, where
  1.0 lands in a bin ``B + 1`` of its own). This matches ``np.searchsorted(edges[1:], c, "left")``
  as used by uncertainty-calibration (Kumar et al., 2019).
* ``closed="left"``: bin :math:`k` is :math:`[e_k, e_{k+1})`, except that exactly 1.0 goes into the
  last bin. This matches numpy's histogram convention (netcal), and torchmetrics'
  ``CalibrationError`` for every confidence below 1.0.
* Quantile (equal-mass, "adaptive") bins follow Nguyen & O'Connor (2015) as implemented by
  uncertainty-calibration's ``get_equal_bins``: sort the confidences, split them into
  ``min(B, N)`` consecutive groups of sizes as in ``np.array_split``, put an interior edge at the
  midpoint between the last confidence of one group and the first of the next, and close the bins
  on the right. Tied confidences therefore always share a bin (a tie straddling a group boundary
  leaves one bin empty), and the outer edges are 0 and 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from xcal.metrics._inputs import (
    ALLOWED_BINNINGS,
    ALLOWED_CLOSED,
    check_choice,
    check_ignore_index,
    check_n_bins,
    prepare,
)

#: Bins of every binned estimator, reliability diagram and binning calibrator when the caller names none: 15
#: equal-width bins, as Guo et al. (2017). A run takes its count from ``calibration.n_bins``
#: (conf/calibration/default.yaml, the same number: a test keeps them equal) and a report from the jobs' records.
DEFAULT_N_BINS = 15


def uniform_edges(n_bins: int) -> Tensor:
    """Return the ``n_bins + 1`` float64 edges ``k / n_bins`` of equal-width bins on [0, 1]."""
    return torch.arange(n_bins + 1, dtype=torch.float64) / n_bins


def quantile_edges(conf: Tensor, n_bins: int) -> Tensor:
    """Return the float64 edges of ``min(n_bins, N)`` equal-mass bins for confidences ``conf``.

    Args:
        conf: ``(N,)`` confidences, N >= 1.
        n_bins: requested number of bins.

    Returns:
        ``(m + 1,)`` edges with ``m = min(n_bins, N)``: 0, the ``m - 1`` midpoints between groups of
        the sorted confidences (group sizes as ``np.array_split``), and 1.
    """
    n = conf.shape[0]
    m = min(n_bins, n)
    ends = np.array(_group_ends(n, m), dtype=np.int64)
    # only the order statistics around the group boundaries are needed: a selection, not a sort
    values = conf.detach().to(torch.float64).cpu().numpy()
    kth = np.concatenate([ends - 1, ends])
    selected = np.partition(values, kth)[kth] if m > 1 else np.zeros(0)
    lo, hi = torch.from_numpy(selected[: m - 1]), torch.from_numpy(selected[m - 1 :])
    interior = (lo + hi) / 2.0
    one = torch.ones(1, dtype=torch.float64)
    return torch.cat([torch.zeros(1, dtype=torch.float64), interior, one])


def _group_ends(n: int, m: int) -> list[int]:
    """End positions of the first ``m - 1`` of ``m`` consecutive groups of ``n`` sorted items, sized as
    ``np.array_split`` sizes them: the first ``n % m`` groups have one item more."""
    base, extra = divmod(n, m)
    return [k * base + min(k, extra) for k in range(1, m)]


def resampled_quantile_bins(conf: Tensor, n_bins: int, closed: str = "right") -> tuple[Tensor, int]:
    """Equal-mass bins of each row of ``conf`` ``(R, N)`` (e.g. R bootstrap resamples) at once.

    Row by row the same bins as :func:`quantile_edges` followed by :func:`assign_bins`: interior edges at the
    midpoints between the groups of the sorted row, found with a batched sort instead of a selection.

    Returns:
        ``(R, N)`` int64 bin indices and the number of bins ``m = min(n_bins, N)``.
    """
    m = min(n_bins, conf.shape[1])
    ends = torch.tensor(_group_ends(conf.shape[1], m), dtype=torch.int64)
    ordered = conf.sort(dim=1).values
    inner = (ordered[:, ends - 1] + ordered[:, ends]) / 2.0
    # searchsorted(right=False) returns #{inner < c}: bins closed on the right, as in assign_bins
    bins = torch.searchsorted(inner.contiguous(), conf.contiguous(), right=(closed == "left"))
    return bins, m


def assign_bins(conf: Tensor, edges: Tensor, closed: str = "right") -> Tensor:
    """Map confidences to bin indices ``0 .. len(edges) - 2`` under the documented convention.

    Args:
        conf: confidences in [0, 1], any shape.
        edges: ``(m + 1,)`` nondecreasing float64 edges from 0 to 1.
        closed: ``"right"`` for bins ``(lo, hi]`` (0 in the first bin) or ``"left"`` for ``[lo, hi)``
            (1.0 in the last bin).

    Returns:
        int64 tensor of the shape of ``conf``.
    """
    inner = edges[1:-1].to(conf.device).contiguous()
    conf = conf.to(torch.float64)
    # torch.bucketize(right=False) returns #{inner < c}: bins closed on the right.
    return torch.bucketize(conf, inner, right=(closed == "left"))


def bin_sums(conf: Tensor, correct: Tensor, bin_idx: Tensor, n_bins: int) -> tuple[Tensor, Tensor, Tensor]:
    """Sufficient statistics per bin: count, sum of confidences, sum of outcomes (float64)."""
    count = torch.bincount(bin_idx, minlength=n_bins).to(torch.float64)
    conf_sum = torch.bincount(bin_idx, weights=conf.to(torch.float64), minlength=n_bins)
    correct_sum = torch.bincount(bin_idx, weights=correct.to(torch.float64), minlength=n_bins)
    return count, conf_sum, correct_sum


def top_label(probs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Top-label confidence and correctness (ties in the arg-max go to the lowest class index)."""
    conf, pred = probs.max(dim=-1)
    return conf, (pred == labels).to(conf.dtype)


def edges_for(conf: Tensor, n_bins: int, binning: str) -> Tensor:
    """Edges for ``binning`` in ``{"uniform", "quantile"}``."""
    return uniform_edges(n_bins) if binning == "uniform" else quantile_edges(conf, n_bins)


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin summary of top-label calibration (all tensors have one entry per bin).

    Attributes:
        lower: lower bin edge.
        upper: upper bin edge.
        count: number of predictions in the bin.
        confidence: mean top-label confidence in the bin (NaN for an empty bin).
        accuracy: fraction of correct predictions in the bin (NaN for an empty bin).
        closed: which side of each bin is closed, ``"right"`` or ``"left"``.
    """

    lower: Tensor
    upper: Tensor
    count: Tensor
    confidence: Tensor
    accuracy: Tensor
    closed: str = "right"

    def as_dict(self) -> dict[str, list[float]]:
        """Plain-python form for JSON (NaN stays NaN)."""
        return {
            "lower": self.lower.tolist(),
            "upper": self.upper.tolist(),
            "count": self.count.tolist(),
            "confidence": self.confidence.tolist(),
            "accuracy": self.accuracy.tolist(),
        }


def reliability_bins(
    probs: Tensor,
    labels: Tensor,
    n_bins: int = DEFAULT_N_BINS,
    binning: str = "uniform",
    *,
    closed: str = "right",
    from_logits: bool = False,
    ignore_index: int | None = None,
) -> ReliabilityBins:
    r"""Reliability-diagram bins of the top-label confidence (DeGroot & Fienberg, 1983; Guo et al., 2017).

    For bin :math:`B_k`: :math:`\mathrm{conf}(B_k) = \frac{1}{|B_k|}\sum_{i \in B_k} \hat p_i` and
    :math:`\mathrm{acc}(B_k) = \frac{1}{|B_k|}\sum_{i \in B_k} 1[\hat y_i = y_i]`. Edges follow the
    convention in this module's docstring.

    Args:
        probs: ``(N, C)`` probabilities (or logits with ``from_logits=True``).
        labels: ``(N,)`` integer labels.
        n_bins: number of bins (>= 1); quantile binning uses ``min(n_bins, N)``.
        binning: ``"uniform"`` or ``"quantile"``.
        closed: ``"right"`` (default) or ``"left"``, see the module docstring.
        from_logits: apply softmax first.
        ignore_index: label value to drop.

    Returns:
        A :class:`ReliabilityBins`.

    Example:
        >>> import torch
        >>> probs = torch.tensor([[0.2, 0.8], [0.4, 0.6], [0.9, 0.1]])
        >>> rb = reliability_bins(probs, torch.tensor([1, 0, 0]), n_bins=2)
        >>> rb.count.tolist(), rb.accuracy.tolist()
        ([0.0, 3.0], [nan, 0.6666666666666666])
    """
    check_n_bins(n_bins)
    check_choice("binning", binning, ALLOWED_BINNINGS)
    check_choice("closed", closed, ALLOWED_CLOSED)
    check_ignore_index(ignore_index)
    p = prepare(probs, labels, from_logits=from_logits, ignore_index=ignore_index)
    conf, correct = top_label(p.probs, p.labels)
    edges = edges_for(conf, n_bins, binning)
    m = edges.shape[0] - 1
    count, conf_sum, correct_sum = bin_sums(conf, correct, assign_bins(conf, edges, closed), m)
    return ReliabilityBins(
        lower=edges[:-1],
        upper=edges[1:],
        count=count,
        confidence=conf_sum / count,
        accuracy=correct_sum / count,
        closed=closed,
    )
