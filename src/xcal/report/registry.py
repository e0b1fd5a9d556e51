"""The metrics a report knows, once: each one's column name, its label in sentences, tables and figures, which
way is better, and the :mod:`xcal.metrics` estimator that recomputes it on resampled predictions; then the
report's default selections of them.

Every list of metric names or labels in :mod:`xcal.report` is read from here. The names are the keys of a
job's ``results.json`` (:func:`xcal.metrics.calibration_report` and the task scores), which is why a test
checks them against :data:`xcal.metrics.REPORT_KEYS`. This module imports nothing heavy (no torch), so the
command line can list the names in its help without loading the metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Metric:
    """One reportable metric.

    Attributes:
        name: its column in the tidy table and key in ``results.json``.
        label: how sentences, table headers and figure axes name it.
        higher_is_better: the direction of improvement.
        estimator: the public :mod:`xcal.metrics` function (by name) that recomputes it from predictions, and so
            lets an interval resample the test examples; None: intervals resample seeds only.
        kwargs: the estimator's keyword arguments besides ``n_bins`` (the job's own bin count).
    """

    name: str
    label: str
    higher_is_better: bool
    estimator: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)


_ECE = "expected_calibration_error"

METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("accuracy", "Accuracy", True, "accuracy"),
    Metric("ece", "ECE", False, _ECE, {"norm": "l1"}),
    Metric("mce", "MCE", False, _ECE, {"norm": "max"}),
    Metric("rmsce", "RMSCE", False, _ECE, {"norm": "l2"}),
    Metric("adaptive_ece", "Adaptive ECE", False, _ECE, {"norm": "l1", "binning": "quantile"}),
    Metric("classwise_ece", "Classwise ECE", False, "classwise_ece"),
    Metric("brier", "Brier score", False, "brier_score"),
    Metric("brier_top_label", "Top-label Brier score", False, "brier_score", {"top_label": True}),
    Metric("nll", "NLL", False, "negative_log_likelihood"),
    Metric("debiased_ece", "Debiased ECE", False),
    Metric("smooth_ece", "Smooth ECE", False),
    Metric("entity_f1", "Entity F1", True),
    Metric("ndcg", "nDCG", True),
)}
#: Task scores reported beside the calibration suite (NER: entity F1; WPR: nDCG); the rest is calibration_report's.
TASK_SCORES = ("entity_f1", "ndcg")

#: The report's headline metrics: the summary tables' columns (accuracy first: it frames the rest) ...
TABLE_METRICS = ("accuracy", "ece", "mce", "adaptive_ece", "brier", "nll")
#: ... the calibration metrics among them, whose size effect is fitted by default ...
CALIBRATION_METRICS = tuple(m for m in TABLE_METRICS if m != "accuracy")
#: ... and the figures' panels of metric against size.
FIGURE_METRICS = ("accuracy", "ece", "brier", "nll")


def metric_label(name: str) -> str:
    """The metric's label (``"Brier score"``), or the name itself for a column the registry does not know."""
    metric = METRICS.get(name)
    return metric.label if metric is not None else name
