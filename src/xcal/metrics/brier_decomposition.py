r"""Decomposition of the multiclass Brier score into reliability, resolution, uncertainty and two within-bin terms.

Murphy's (1973) partition of the Brier score into reliability - resolution + uncertainty is exact only when
every forecast in a bin equals the bin's mean forecast. With binned continuous forecasts it leaves a remainder,
which Stephenson, Coelho & Jolliffe (2008, "Two extra components in the Brier score decomposition", Weather
and Forecasting 23:752-757) split into a within-bin variance of the forecasts and a within-bin covariance of
forecasts and outcomes. With both terms the identity holds exactly, so the five numbers can be reported
side by side with :func:`xcal.metrics.brier_score` and add up to it.

The multiclass score is decomposed one-vs-rest: class :math:`k` is a binary forecast :math:`p_{ik}` of the
outcome :math:`1[y_i = k]`, each class is binned on its own with the uniform bins and edge convention of
:mod:`xcal.metrics.binning` (as :func:`xcal.metrics.classwise_ece` does), and each term is summed over classes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from xcal.metrics._inputs import ALLOWED_CLOSED, check_choice, check_ignore_index, check_n_bins, prepare
from xcal.metrics.binning import DEFAULT_N_BINS, assign_bins, uniform_edges


@dataclass(frozen=True)
class BrierDecomposition:
    r"""The five terms of the Brier score, each summed over classes (float64 arithmetic, python floats).

    ``brier == reliability - resolution + uncertainty + within_bin_variance - within_bin_covariance`` up
    to float rounding.

    Attributes:
        brier: the multiclass Brier score, computed directly (equals :func:`xcal.metrics.brier_score`).
        reliability: weighted squared gap between mean forecast and observed frequency per bin (>= 0,
            lower is better; 0 for a forecast calibrated at the resolution of the bins).
        resolution: weighted squared spread of the per-bin frequencies around the base rate (>= 0, higher
            is better).
        uncertainty: :math:`\sum_k \bar o_k (1 - \bar o_k)`, a property of the labels alone.
        within_bin_variance: spread of the forecasts inside their bins (>= 0; 0 when each bin holds one
            forecast value).
        within_bin_covariance: twice the covariance of forecasts and outcomes inside the bins (either sign).
    """

    brier: float
    reliability: float
    resolution: float
    uncertainty: float
    within_bin_variance: float
    within_bin_covariance: float

    def as_dict(self) -> dict[str, float]:
        """Plain-python form for JSON."""
        return asdict(self)


def brier_decomposition(
    probs: Tensor,
    labels: Tensor,
    n_bins: int = DEFAULT_N_BINS,
    *,
    from_logits: bool = False,
    closed: str = "right",
    ignore_index: int | None = None,
) -> BrierDecomposition:
    r"""Five-term decomposition of the multiclass Brier score (Murphy, 1973; Stephenson, Coelho & Jolliffe, 2008).

    For class :math:`k`, forecasts :math:`f_i = p_{ik}`, outcomes :math:`o_i = 1[y_i = k]`, base rate
    :math:`\bar o`, and uniform bins :math:`b` of :math:`f` with :math:`n_b` members, mean forecast
    :math:`\bar f_b` and frequency :math:`\bar o_b`:

    .. math::
        \mathrm{REL} = \frac{1}{N}\sum_b n_b(\bar f_b - \bar o_b)^2, \quad
        \mathrm{RES} = \frac{1}{N}\sum_b n_b(\bar o_b - \bar o)^2, \quad
        \mathrm{UNC} = \bar o(1 - \bar o),

    .. math::
        \mathrm{WBV} = \frac{1}{N}\sum_b\sum_{i \in b}(f_i - \bar f_b)^2, \quad
        \mathrm{WBC} = \frac{2}{N}\sum_b\sum_{i \in b}(o_i - \bar o_b)(f_i - \bar f_b),

    each summed over the :math:`C` classes, so that

    .. math::
        \mathrm{BS} = \frac{1}{N}\sum_{i}\sum_{k}(p_{ik} - 1[y_i = k])^2
        = \mathrm{REL} - \mathrm{RES} + \mathrm{UNC} + \mathrm{WBV} - \mathrm{WBC}

    exactly. Bins as in :func:`xcal.metrics.classwise_ece`: ``n_bins`` uniform bins per class, ``(lo, hi]``
    with 0 in the first bin (``closed="right"``), or ``[lo, hi)`` with 1.0 in the last (``closed="left"``).
    Every column counts, also classes absent from ``labels``.

    Args:
        probs: ``(N, C)`` probabilities (or logits with ``from_logits=True``).
        labels: ``(N,)`` integer labels.
        n_bins: uniform bins per class, >= 1.
        from_logits: ``probs`` are logits; a float64 softmax is applied.
        closed: ``"right"`` (default) or ``"left"``, see :mod:`xcal.metrics.binning`.
        ignore_index: label value to drop.

    Returns:
        A :class:`BrierDecomposition`.

    Raises:
        ValueError: on bad arguments or inputs (see :func:`xcal.metrics._inputs.prepare`).

    Example:
        >>> import torch
        >>> probs = torch.tensor([[0.75, 0.25], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]], dtype=torch.float64)
        >>> d = brier_decomposition(probs, torch.tensor([0, 1, 1, 1]), n_bins=2)
        >>> [round(v, 6) for v in d.as_dict().values()]  # brier, rel, res, unc, wbv, wbc
        [0.34375, 0.078125, 0.125, 0.375, 0.015625, 0.0]
        >>> d.reliability - d.resolution + d.uncertainty + d.within_bin_variance - d.within_bin_covariance
        0.34375
    """
    check_n_bins(n_bins)
    check_choice("closed", closed, ALLOWED_CLOSED)
    check_ignore_index(ignore_index)
    p = prepare(probs, labels, from_logits=from_logits, ignore_index=ignore_index)
    n, c = p.n, p.num_classes
    f = p.probs  # (N, C) float64
    o = torch.zeros_like(f).scatter_(1, p.labels[:, None], 1.0)  # one-hot outcomes
    bins = assign_bins(f, uniform_edges(n_bins), closed)  # (N, C)
    # one flat bin id per (class, bin) pair, so every class is binned on its own
    flat = (bins + torch.arange(c, dtype=torch.int64) * n_bins).reshape(-1)
    size = c * n_bins
    count = torch.bincount(flat, minlength=size).to(torch.float64)
    f_mean = torch.bincount(flat, weights=f.reshape(-1), minlength=size) / count.clamp_min(1.0)
    o_mean = torch.bincount(flat, weights=o.reshape(-1), minlength=size) / count.clamp_min(1.0)
    base_rate = o.mean(dim=0).repeat_interleave(n_bins)  # (C * n_bins,): o-bar of each bin's class
    # deviations from the bin means, element by element (not sum-of-squares differences, which cancel)
    f_dev = f.reshape(-1) - f_mean[flat]
    o_dev = o.reshape(-1) - o_mean[flat]
    reliability = (count * (f_mean - o_mean).square()).sum() / n
    resolution = (count * (o_mean - base_rate).square()).sum() / n
    o_bar = o.mean(dim=0)
    uncertainty = (o_bar * (1.0 - o_bar)).sum()
    within_var = f_dev.square().sum() / n
    within_cov = 2.0 * (o_dev * f_dev).sum() / n
    brier = (f - o).square().sum() / n
    return BrierDecomposition(
        brier=float(brier),
        reliability=float(reliability),
        resolution=float(resolution),
        uncertainty=float(uncertainty),
        within_bin_variance=float(within_var),
        within_bin_covariance=float(within_cov),
    )
