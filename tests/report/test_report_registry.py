"""The report's one registry of metric names and labels agrees with what jobs write and what xcal.metrics offers."""

from __future__ import annotations

import inspect

import torch

import xcal.metrics
from xcal.report import registry
from xcal.report.collect import METRIC_COLUMNS
from xcal.report.registry import METRICS, TASK_SCORES


def test_the_registry_names_what_a_job_writes() -> None:
    calibration = [name for name in METRICS if name not in TASK_SCORES]
    assert ("n", *calibration) == xcal.metrics.REPORT_KEYS
    assert (*calibration, *xcal.metrics.INTERVAL_KEYS) == METRIC_COLUMNS


def test_each_estimator_is_a_public_metric_that_takes_its_arguments() -> None:
    probs = torch.tensor([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1])
    for metric in METRICS.values():
        if metric.estimator is None:
            continue
        assert metric.estimator in xcal.metrics.__all__, metric.name
        fn = getattr(xcal.metrics, metric.estimator)
        bins = {"n_bins": 3} if "n_bins" in inspect.signature(fn).parameters else {}
        assert torch.isfinite(fn(probs, labels, **bins, **metric.kwargs)), metric.name


def test_the_default_selections_are_registered_metrics() -> None:
    for selection in (registry.TABLE_METRICS, registry.CALIBRATION_METRICS, registry.FIGURE_METRICS):
        assert set(selection) <= set(METRICS)
    assert registry.metric_label("brier") == "Brier score"
    assert registry.metric_label("ece10") == "ece10"  # a column the registry does not know keeps its name
