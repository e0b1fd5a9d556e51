"""The metric registry: each built-in is declared once and equals its functional estimator; every list of names
(results.json, intervals, logger and report selections, dev metrics) is read from it; bad registrations and
unknown names are refused with one message."""

from __future__ import annotations

import pytest
import torch

import xcal.metrics as m
import xcal.metrics.registry as registry
from xcal.metrics import (
    DETAIL,
    HEADLINE,
    TABLE,
    MetricSpec,
    calibration_report,
    get_metric,
    interval_keys,
    metric_names,
    register_metric,
    result_columns,
)


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made in a test vanish after it (the registry is a module-level dict)."""
    monkeypatch.setattr(registry, "_METRICS", dict(registry._METRICS))


def _inputs(n: int = 400, c: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(2.5 * torch.randn(n, c, generator=g, dtype=torch.float64), -1), torch.randint(0, c, (n,),
                                                                                                        generator=g)


def test_the_selections_derive_from_one_declaration() -> None:
    assert metric_names(shown=HEADLINE) == ("accuracy", "ece", "brier", "nll")
    assert metric_names(shown=TABLE) == ("accuracy", "ece", "mce", "adaptive_ece", "brier", "nll")
    assert metric_names(shown=TABLE, calibration=True) == ("ece", "mce", "adaptive_ece", "brier", "nll")
    assert metric_names(shown=DETAIL) == metric_names()
    assert metric_names(scored=False) == ("entity_f1", "entity_precision", "entity_recall", "ndcg")
    assert metric_names(dev=True) == ("ece", "brier", "nll")
    assert interval_keys() == ("ece_ci_low", "ece_ci_high", "brier_ci_low", "brier_ci_high")
    assert result_columns() == (*metric_names(scored=True), *interval_keys(), *metric_names(scored=False))
    assert get_metric("brier").label == "Brier score" and get_metric("accuracy").higher_is_better
    assert m.metric_label("ece10") == "ece10"  # a column the registry does not know keeps its name


def test_each_builtin_equals_its_functional_estimator() -> None:
    probs, labels = _inputs()
    report = calibration_report(probs, labels, n_bins=10, bootstrap=0)
    functional = {
        "accuracy": m.accuracy(probs, labels), "ece": m.expected_calibration_error(probs, labels, 10),
        "mce": m.expected_calibration_error(probs, labels, 10, "max"),
        "rmsce": m.expected_calibration_error(probs, labels, 10, "l2"),
        "adaptive_ece": m.expected_calibration_error(probs, labels, 10, binning="quantile"),
        "classwise_ece": m.classwise_ece(probs, labels, 10), "brier": m.brier_score(probs, labels),
        "brier_top_label": m.brier_score(probs, labels, top_label=True),
        "nll": m.negative_log_likelihood(probs, labels), "debiased_ece": m.debiased_ece(probs, labels, 10),
        "smooth_ece": m.smooth_ece(probs, labels),
    }
    assert set(functional) == set(metric_names(scored=True))
    for name, value in functional.items():
        assert report[name] == pytest.approx(float(value), abs=1e-12), name


def test_intervals_share_resamples_and_bracket_the_estimate() -> None:
    probs, labels = _inputs(seed=1)
    r = calibration_report(probs, labels, bootstrap=300, seed=5)
    for name in ("ece", "brier"):
        alone = m.bootstrap_interval(getattr(m, {"ece": "expected_calibration_error", "brier": "brier_score"}[name]),
                                     probs, labels, n_resamples=300, seed=5)
        assert (r[f"{name}_ci_low"], r[f"{name}_ci_high"]) == pytest.approx(tuple(alone), abs=1e-12)
        assert r[f"{name}_ci_low"] < r[name] < r[f"{name}_ci_high"]


def test_a_metric_declared_here_reaches_the_report_and_the_selections(scratch_registry: None) -> None:
    register_metric(MetricSpec("mean_confidence", "Mean confidence", False, lambda s: float(s.conf.mean()),
                               shown=TABLE))
    probs, labels = _inputs(seed=2)
    r = calibration_report(probs, labels, bootstrap=0)
    assert r["mean_confidence"] == pytest.approx(float(probs.max(1).values.mean()), abs=1e-12)
    assert list(r)[-1] == "mean_confidence"
    assert metric_names(shown=TABLE)[-1] == "mean_confidence" and "mean_confidence" in result_columns()
    assert "mean_confidence" not in metric_names(shown=HEADLINE)


def test_bad_registrations_and_names_are_refused(scratch_registry: None) -> None:
    def spec(name: str, **kw) -> MetricSpec:
        return MetricSpec(name, name, False, lambda s: 0.0, **kw)

    with pytest.raises(ValueError, match="'ece' is already registered"):
        register_metric(spec("ece"))
    for bad in ("ECE", "n", "calibrated", "ece_ci_low", "1st"):
        with pytest.raises(ValueError, match="metric name must match"):
            register_metric(spec(bad))
    with pytest.raises(ValueError, match="shown must be one of"):
        register_metric(spec("loud", shown="everywhere"))
    with pytest.raises(ValueError, match="interval=True needs compute and a resample"):
        register_metric(spec("wide", interval=True))
    with pytest.raises(ValueError, match="unknown metric 'eec'; registered: accuracy, ece"):
        get_metric("eec")
    probs, labels = _inputs()
    with pytest.raises(ValueError, match="unknown metric 'eec'"):
        calibration_report(probs, labels, metrics=("eec",))
    with pytest.raises(ValueError, match="ndcg: task scores"):
        calibration_report(probs, labels, metrics=("ndcg",))


def test_dev_metrics_are_fresh_torchmetrics_of_the_headline() -> None:
    dev = m.dev_metrics(7)
    assert list(dev) == ["ece", "brier", "nll"] and dev["ece"].n_bins == 7
    logits, labels = torch.randn(50, 3, generator=torch.Generator().manual_seed(3)), torch.arange(50) % 3
    dev["brier"].update(logits, labels)
    assert float(dev["brier"].compute()) == pytest.approx(float(m.brier_score(logits, labels, from_logits=True)))
    assert m.dev_metrics(7)["brier"] is not dev["brier"]
