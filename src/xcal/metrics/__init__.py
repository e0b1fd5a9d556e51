"""Calibration metrics: functional estimators, ``torchmetrics.Metric`` classes, reliability diagrams,
bootstrap intervals, and the one registry every list of metric names derives from
(:mod:`xcal.metrics.registry`; the built-ins are declared in :mod:`xcal.metrics.suite`).

Inputs are probabilities ``(N, C)`` (rows summing to 1) and integer labels ``(N,)``; pass
``from_logits=True`` for logits. Ambiguous input raises ``ValueError``. Bin-edge convention: bins
``(lo, hi]``, confidence 0 in the first bin, exactly 1.0 in the last (see :mod:`xcal.metrics.binning`).
"""

from xcal.metrics import suite  # noqa: F401  (registers the built-in metrics)
from xcal.metrics.binning import (
    DEFAULT_N_BINS,
    ReliabilityBins,
    assign_bins,
    quantile_edges,
    reliability_bins,
    resampled_quantile_bins,
    uniform_edges,
)
from xcal.metrics.bootstrap import BootstrapInterval, bootstrap_interval, resample_indices, resampled_metrics
from xcal.metrics.brier_decomposition import BrierDecomposition, brier_decomposition
from xcal.metrics.calibration_error import classwise_ece, debiased_ece, expected_calibration_error
from xcal.metrics.diagram import plot_reliability_diagram
from xcal.metrics.registry import (
    DETAIL,
    HEADLINE,
    TABLE,
    MetricSpec,
    SetStats,
    dev_metrics,
    get_metric,
    interval_keys,
    metric_label,
    metric_names,
    metric_specs,
    register_metric,
    result_columns,
)
from xcal.metrics.report import calibration_report
from xcal.metrics.scores import accuracy, brier_score, negative_log_likelihood
from xcal.metrics.smooth import smooth_ece
from xcal.metrics.stateful import (
    BrierScore,
    ClasswiseECE,
    DebiasedECE,
    ExpectedCalibrationError,
    NegativeLogLikelihood,
    SmoothECE,
)

__all__ = [
    "DEFAULT_N_BINS",
    "DETAIL",
    "HEADLINE",
    "TABLE",
    "BootstrapInterval",
    "BrierDecomposition",
    "BrierScore",
    "ClasswiseECE",
    "DebiasedECE",
    "ExpectedCalibrationError",
    "MetricSpec",
    "NegativeLogLikelihood",
    "ReliabilityBins",
    "SetStats",
    "SmoothECE",
    "accuracy",
    "assign_bins",
    "bootstrap_interval",
    "brier_decomposition",
    "brier_score",
    "calibration_report",
    "classwise_ece",
    "debiased_ece",
    "dev_metrics",
    "expected_calibration_error",
    "get_metric",
    "interval_keys",
    "metric_label",
    "metric_names",
    "metric_specs",
    "negative_log_likelihood",
    "plot_reliability_diagram",
    "quantile_edges",
    "register_metric",
    "reliability_bins",
    "resample_indices",
    "resampled_metrics",
    "resampled_quantile_bins",
    "result_columns",
    "smooth_ece",
    "uniform_edges",
]
