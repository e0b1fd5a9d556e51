"""One call that evaluates every registered metric on one set of predictions.

The metrics are those of :mod:`xcal.metrics.registry`, in its order. Validation, the float64 conversion, the
top-label confidences and the sort for the equal-mass bins are done once and shared (:class:`SetStats`), so the
report costs little more than its most expensive metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from xcal.metrics._inputs import check_ignore_index, check_n_bins, prepare
from xcal.metrics.binning import DEFAULT_N_BINS
from xcal.metrics.bootstrap import _check_bootstrap_args, percentile_interval, resampled_values
from xcal.metrics.registry import SetStats, get_metric, metric_specs


def calibration_report(
    probs: Tensor,
    labels: Tensor,
    n_bins: int = DEFAULT_N_BINS,
    bootstrap: int = 1000,
    seed: int = 0,
    *,
    level: float = 0.95,
    from_logits: bool = False,
    ignore_index: int | None = None,
    metrics: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Every registered metric that is computed from predictions (:func:`~xcal.metrics.metric_names`
    ``(scored=True)``), as plain python numbers.

    Keys and definitions of the built-in ones (:mod:`xcal.metrics.suite`):

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
    * ``<name>_ci_low`` / ``<name>_ci_high`` for each metric registered with ``interval=True`` (``ece``,
      ``brier``): percentile bootstrap interval at ``level`` from ``bootstrap`` resamples (the same resamples for
      every metric); left out when ``bootstrap == 0``.

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
        metrics: only these registered names (default: every scored metric); intervals only for those among them.

    Returns:
        ``dict[str, float]`` (``n`` is an ``int``).
    """
    check_n_bins(n_bins)
    check_ignore_index(ignore_index)
    if bootstrap != 0:
        _check_bootstrap_args(bootstrap, level)
    if metrics is None:
        specs = [spec for spec in metric_specs() if spec.compute is not None]
    else:
        specs = [get_metric(name) for name in metrics]
        not_scored = [spec.name for spec in specs if spec.compute is None]
        if not_scored:
            raise ValueError(f"{', '.join(not_scored)}: task scores, not computed from probabilities and labels")
    p = prepare(probs, labels, from_logits=from_logits, ignore_index=ignore_index)
    stats = SetStats(p, n_bins)
    out: dict[str, Any] = {"n": p.n}
    out.update({spec.name: float(spec.compute(stats)) for spec in specs})
    resampled = [spec for spec in specs if spec.interval]
    if bootstrap and resampled:
        values = resampled_values([spec.resample(stats) for spec in resampled], p.n, bootstrap, seed)
        for spec, vals in zip(resampled, values, strict=True):
            ci = percentile_interval(vals, level)
            out[f"{spec.name}_ci_low"], out[f"{spec.name}_ci_high"] = ci.low, ci.high
    return out
