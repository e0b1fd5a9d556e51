"""One call that evaluates every calibration metric on one set of predictions.

Validation, the float64 conversion, the top-label confidences and the sort for the equal-mass bins
are done once and shared, so the report costs little more than its most expensive metric.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from xcal.metrics._inputs import check_ignore_index, check_n_bins, prepare
from xcal.metrics.binning import assign_bins, bin_sums, quantile_edges, top_label, uniform_edges
from xcal.metrics.bootstrap import (
    _check_bootstrap_args,
    _ece_decomposition,
    _mean_decomposition,
    percentile_interval,
    resampled_values,
)
from xcal.metrics.calibration_error import (
    _ce_compute,
    _classwise_compute,
    _classwise_update,
    _debiased_compute,
)
from xcal.metrics.scores import _brier_per_example, _nll_per_example
from xcal.metrics.smooth import _smooth_ece_from_top_label

#: Keys of :func:`calibration_report` (the bootstrap keys only when ``bootstrap > 0``).
REPORT_KEYS = (
    "n",
    "accuracy",
    "ece",
    "mce",
    "rmsce",
    "adaptive_ece",
    "classwise_ece",
    "brier",
    "brier_top_label",
    "nll",
    "debiased_ece",
    "smooth_ece",
)
INTERVAL_KEYS = ("ece_ci_low", "ece_ci_high", "brier_ci_low", "brier_ci_high")


def calibration_report(
    probs: Tensor,
    labels: Tensor,
    n_bins: int = 15,
    bootstrap: int = 1000,
    seed: int = 0,
    *,
    level: float = 0.95,
    from_logits: bool = False,
    ignore_index: int | None = None,
) -> dict[str, Any]:
    """Every calibration metric of xcal as plain python numbers.

    Keys and definitions:

    * ``n`` (int): number of predictions after dropping ``ignore_index``.
    * ``accuracy``: top-1 accuracy.
    * ``ece`` / ``rmsce`` / ``mce``: top-label calibration error with ``n_bins`` uniform bins and the
      l1 / l2 / max norm (:func:`~xcal.metrics.expected_calibration_error`).
    * ``adaptive_ece``: top-label l1 error with ``n_bins`` equal-mass bins.
    * ``classwise_ece``: :func:`~xcal.metrics.classwise_ece` with ``n_bins`` uniform bins.
    * ``brier`` / ``brier_top_label``: multiclass and top-label Brier score.
    * ``nll``: negative log-likelihood.
    * ``debiased_ece``: Kumar et al. (2019) debiased l2 error, ``n_bins`` equal-mass bins.
    * ``smooth_ece``: smECE with the automatic bandwidth (Błasiok & Nakkiran, 2023).
    * ``ece_ci_low`` / ``ece_ci_high`` / ``brier_ci_low`` / ``brier_ci_high``: percentile bootstrap
      interval at ``level`` from ``bootstrap`` resamples (the same resamples for both metrics); left
      out when ``bootstrap == 0``.

    Bin edges follow :mod:`xcal.metrics.binning`: bins ``(lo, hi]``, confidence 0 in the first bin,
    exactly 1.0 in the last.

    Args:
        probs: ``(N, C)`` probabilities (or logits with ``from_logits=True``).
        labels: ``(N,)`` integer labels.
        n_bins: number of bins of every binned metric, >= 1.
        bootstrap: number of bootstrap resamples for the intervals; 0 skips them.
        seed: bootstrap seed.
        level: confidence level of the intervals.
        from_logits: ``probs`` are logits.
        ignore_index: label value to drop.

    Returns:
        ``dict[str, float]`` (``n`` is an ``int``).
    """
    check_n_bins(n_bins)
    check_ignore_index(ignore_index)
    if bootstrap != 0:
        _check_bootstrap_args(bootstrap, level)
    p = prepare(probs, labels, from_logits=from_logits, ignore_index=ignore_index)
    conf, correct = top_label(p.probs, p.labels)

    uniform = bin_sums(conf, correct, assign_bins(conf, uniform_edges(n_bins)), n_bins)
    q_edges = quantile_edges(conf, n_bins)
    quantile = bin_sums(conf, correct, assign_bins(conf, q_edges), q_edges.shape[0] - 1)
    brier_each = _brier_per_example(p)
    out: dict[str, Any] = {
        "n": p.n,
        "accuracy": float(correct.mean()),
        "ece": float(_ce_compute(*uniform, norm="l1")),
        "mce": float(_ce_compute(*uniform, norm="max")),
        "rmsce": float(_ce_compute(*uniform, norm="l2")),
        "adaptive_ece": float(_ce_compute(*quantile, norm="l1")),
        "classwise_ece": float(_classwise_compute(*_classwise_update(p, n_bins))),
        "brier": float(brier_each.mean()),
        "brier_top_label": float((conf - correct).square().mean()),
        "nll": float(_nll_per_example(p).mean()),
        "debiased_ece": float(_debiased_compute(*quantile)),
        "smooth_ece": _smooth_ece_from_top_label(conf, correct)[0],
    }
    if bootstrap:
        decs = [
            _ece_decomposition(p, {"n_bins": n_bins}),
            _mean_decomposition(lambda _p, _kw: brier_each)(p, {}),
        ]
        ece_vals, brier_vals = resampled_values(decs, p.n, bootstrap, seed)
        ece_ci, brier_ci = percentile_interval(ece_vals, level), percentile_interval(brier_vals, level)
        out.update(
            ece_ci_low=ece_ci.low,
            ece_ci_high=ece_ci.high,
            brier_ci_low=brier_ci.low,
            brier_ci_high=brier_ci.high,
        )
    return out
