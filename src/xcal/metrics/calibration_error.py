r"""Binned calibration errors: top-label ECE / RMSCE / MCE (uniform or adaptive bins), classwise ECE,
and the debiased l2 estimator of Kumar, Liang & Ma (2019).

Each estimator is split torchmetrics-style into a pure ``_update`` (inputs -> binned sufficient
statistics: count, sum of confidences, sum of outcomes per bin) and a pure ``_compute`` (statistics ->
value). The functional API composes the two; the :mod:`xcal.metrics.stateful` classes accumulate the
statistics across batches and processes. ``_compute`` functions accept any leading batch shape, which
the bootstrap uses to evaluate many resamples at once. Bin edges: see :mod:`xcal.metrics.binning`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from xcal.metrics._inputs import (
    ALLOWED_BINNINGS,
    ALLOWED_CLOSED,
    ALLOWED_NORMS,
    Prepared,
    check_choice,
    check_ignore_index,
    check_n_bins,
    prepare,
)
from xcal.metrics.binning import DEFAULT_N_BINS, assign_bins, bin_sums, edges_for, top_label, uniform_edges


def _check_args(n_bins: int, norm: str = "l1", binning: str = "uniform", closed: str = "right") -> None:
    check_n_bins(n_bins)
    check_choice("norm", norm, ALLOWED_NORMS)
    check_choice("binning", binning, ALLOWED_BINNINGS)
    check_choice("closed", closed, ALLOWED_CLOSED)


def _top_label_update(
    p: Prepared, n_bins: int, binning: str = "uniform", closed: str = "right"
) -> tuple[Tensor, Tensor, Tensor]:
    """Binned top-label statistics ``(count, conf_sum, correct_sum)``, each ``(m,)``."""
    conf, correct = top_label(p.probs, p.labels)
    edges = edges_for(conf, n_bins, binning)
    m = edges.shape[0] - 1
    return bin_sums(conf, correct, assign_bins(conf, edges, closed), m)


def _ce_compute(count: Tensor, conf_sum: Tensor, correct_sum: Tensor, norm: str = "l1") -> Tensor:
    """Calibration error from per-bin sums (last dimension = bins; leading dimensions are batch)."""
    total = count.sum(dim=-1)
    diff = conf_sum - correct_sum  # |B_k| * (conf_k - acc_k)
    if norm == "l1":
        return diff.abs().sum(dim=-1) / total
    gap = diff.abs() / count.clamp_min(1.0)  # |conf_k - acc_k|, 0 for an empty bin
    if norm == "max":
        return gap.amax(dim=-1)
    return torch.sqrt((count * gap.square()).sum(dim=-1) / total)


def expected_calibration_error(
    probs: Tensor,
    labels: Tensor,
    n_bins: int = DEFAULT_N_BINS,
    norm: str = "l1",
    binning: str = "uniform",
    ignore_index: int | None = None,
    *,
    closed: str = "right",
    from_logits: bool = False,
) -> Tensor:
    r"""Top-label calibration error with uniform or equal-mass bins.

    With bins :math:`B_1..B_m` of the top-label confidence :math:`\hat p_i = \max_c p_{ic}`,
    :math:`\mathrm{acc}(B_k)` the fraction of correct arg-max predictions and :math:`\mathrm{conf}(B_k)`
    the mean confidence in bin :math:`k`:

    .. math::
        \mathrm{ECE} = \sum_k \frac{|B_k|}{N} \left|\mathrm{acc}(B_k) - \mathrm{conf}(B_k)\right|
        \quad(\text{norm="l1"; Naeini et al., 2015; Guo et al., 2017})

    .. math::
        \mathrm{RMSCE} = \Big(\sum_k \frac{|B_k|}{N}
        \left(\mathrm{acc}(B_k) - \mathrm{conf}(B_k)\right)^2\Big)^{1/2}\quad(\text{norm="l2"})

    .. math::
        \mathrm{MCE} = \max_{k : |B_k| > 0} \left|\mathrm{acc}(B_k) - \mathrm{conf}(B_k)\right|
        \quad(\text{norm="max"; Naeini et al., 2015})

    ``binning="quantile"`` gives the adaptive (equal-mass) ECE (Nguyen & O'Connor, 2015; Nixon et al.,
    2019, "Measuring Calibration in Deep Learning"). Bins are ``(lo, hi]`` with confidence 0 in the
    first bin and exactly 1.0 in the last one (no hidden extra bin); ``closed="left"`` gives
    ``[lo, hi)`` with 1.0 in the last bin. See :mod:`xcal.metrics.binning`.

    Args:
        probs: ``(N, C)`` probabilities (rows sum to 1); binary tasks as two columns.
        labels: ``(N,)`` integer labels.
        n_bins: number of bins, >= 1.
        norm: ``"l1"``, ``"l2"`` or ``"max"``.
        binning: ``"uniform"`` or ``"quantile"``.
        ignore_index: label value to drop.
        closed: bin side that is closed, ``"right"`` (default) or ``"left"``.
        from_logits: ``probs`` are logits; a float64 softmax is applied.

    Returns:
        Scalar float64 tensor.

    Raises:
        ValueError: on bad arguments or inputs (see :func:`xcal.metrics._inputs.prepare`).

    Example:
        >>> import torch
        >>> probs = torch.tensor([[0.25, 0.75], [0.25, 0.75], [0.45, 0.55], [0.75, 0.25], [0.75, 0.25]])
        >>> labels = torch.tensor([1, 0, 1, 0, 0])
        >>> round(float(expected_calibration_error(probs, labels, n_bins=2)), 6)
        0.09
    """
    _check_args(n_bins, norm, binning, closed)
    check_ignore_index(ignore_index)
    p = prepare(probs, labels, from_logits=from_logits, ignore_index=ignore_index)
    return _ce_compute(*_top_label_update(p, n_bins, binning, closed), norm=norm)


def _classwise_update(p: Prepared, n_bins: int, closed: str = "right") -> tuple[Tensor, Tensor, Tensor]:
    """Per-class binned statistics ``(count, prob_sum, target_sum)``, each ``(C, n_bins)``."""
    c = p.probs.shape[1]
    bins = assign_bins(p.probs, uniform_edges(n_bins), closed)  # (N, C)
    flat = (bins + torch.arange(c, dtype=torch.int64) * n_bins).reshape(-1)
    size = c * n_bins
    count = torch.bincount(flat, minlength=size).to(torch.float64).view(c, n_bins)
    prob_sum = torch.bincount(flat, weights=p.probs.reshape(-1), minlength=size).view(c, n_bins)
    # the target is 1 only at (i, y_i): one entry per row
    target_idx = bins.gather(1, p.labels[:, None]).squeeze(1) + p.labels * n_bins
    target_sum = torch.bincount(target_idx, minlength=size).to(torch.float64).view(c, n_bins)
    return count, prob_sum, target_sum


def _classwise_compute(count: Tensor, prob_sum: Tensor, target_sum: Tensor) -> Tensor:
    """Mean over classes (dimension -2) of each class's binary l1 calibration error."""
    return _ce_compute(count, prob_sum, target_sum, "l1").mean(dim=-1)


def classwise_ece(
    probs: Tensor,
    labels: Tensor,
    n_bins: int = DEFAULT_N_BINS,
    ignore_index: int | None = None,
    *,
    closed: str = "right",
    from_logits: bool = False,
) -> Tensor:
    r"""Classwise ECE (Kull et al., 2019, "Beyond temperature scaling"), a.k.a. marginal l1 calibration error.

    .. math::
        \mathrm{cwECE} = \frac{1}{C}\sum_{c=1}^{C}\sum_{k} \frac{|B_{ck}|}{N}
        \left|\bar y_{ck} - \bar p_{ck}\right|

    where :math:`B_{ck}` bins the class-:math:`c` probabilities :math:`p_{ic}` into ``n_bins`` uniform
    bins, :math:`\bar p_{ck}` is their mean and :math:`\bar y_{ck}` the fraction of examples of class
    :math:`c` in the bin. Every column counts, also classes absent from ``labels``. Bin edges as in
    :func:`expected_calibration_error`.

    Args:
        probs: ``(N, C)`` probabilities.
        labels: ``(N,)`` integer labels.
        n_bins: uniform bins per class, >= 1.
        ignore_index: label value to drop.
        closed: ``"right"`` (default) or ``"left"``.
        from_logits: ``probs`` are logits.

    Returns:
        Scalar float64 tensor.

    Example:
        >>> import torch
        >>> probs = torch.tensor([[0.25, 0.75], [0.25, 0.75], [0.75, 0.25]])
        >>> round(float(classwise_ece(probs, torch.tensor([1, 0, 0]), n_bins=2)), 6)
        0.25
    """
    _check_args(n_bins, closed=closed)
    check_ignore_index(ignore_index)
    p = prepare(probs, labels, from_logits=from_logits, ignore_index=ignore_index)
    return _classwise_compute(*_classwise_update(p, n_bins, closed))


def _debiased_compute(count: Tensor, conf_sum: Tensor, correct_sum: Tensor) -> Tensor:
    """Kumar et al. (2019) debiased l2 error from per-bin sums (last dimension = bins)."""
    total = count.sum(dim=-1)
    safe = count.clamp_min(1.0)
    acc = correct_sum / safe
    plugin = ((conf_sum - correct_sum) / safe).square()
    correction = acc * (1.0 - acc) / (count - 1.0).clamp_min(1.0)
    per_bin = torch.where(count >= 2, plugin - correction, torch.zeros_like(plugin))
    sq = (count * per_bin).sum(dim=-1) / total
    return torch.sqrt(sq.clamp_min(0.0))


def debiased_ece(
    probs: Tensor,
    labels: Tensor,
    n_bins: int = DEFAULT_N_BINS,
    binning: str = "quantile",
    ignore_index: int | None = None,
    *,
    closed: str = "right",
    from_logits: bool = False,
) -> Tensor:
    r"""Debiased top-label l2 calibration error (Kumar, Liang & Ma, 2019, "Verified Uncertainty Calibration").

    The plug-in squared error per bin is biased upwards by the sampling variance of the bin
    accuracy; subtracting its unbiased estimate gives

    .. math::
        \widehat{\mathrm{CE}}_2^2 = \sum_{k : |B_k| \ge 2} \frac{|B_k|}{N}
        \left[\left(\mathrm{conf}(B_k) - \mathrm{acc}(B_k)\right)^2
        - \frac{\mathrm{acc}(B_k)\,(1 - \mathrm{acc}(B_k))}{|B_k| - 1}\right],
        \qquad \widehat{\mathrm{CE}}_2 = \sqrt{\max(\widehat{\mathrm{CE}}_2^2, 0)}.

    Bins with fewer than two predictions contribute 0. The default binning, equal-mass with
    :data:`~xcal.metrics.binning.DEFAULT_N_BINS` (15) bins, is the setting of the authors'
    ``calibration.lower_bound_scaling_top_ce(p=2, debias=True)``.

    Args:
        probs: ``(N, C)`` probabilities.
        labels: ``(N,)`` integer labels.
        n_bins: number of bins, >= 1.
        binning: ``"quantile"`` (default) or ``"uniform"``.
        ignore_index: label value to drop.
        closed: ``"right"`` (default) or ``"left"``.
        from_logits: ``probs`` are logits.

    Returns:
        Scalar float64 tensor.
    """
    _check_args(n_bins, binning=binning, closed=closed)
    check_ignore_index(ignore_index)
    p = prepare(probs, labels, from_logits=from_logits, ignore_index=ignore_index)
    return _debiased_compute(*_top_label_update(p, n_bins, binning, closed))
