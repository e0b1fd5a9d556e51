"""xcal's built-in metrics, one registry line each (:mod:`xcal.metrics.registry`); their order is every table's.

Each line names the estimator's shared ``_compute`` (the functional metrics of :mod:`xcal.metrics` and the
``torchmetrics`` classes call the same ones), so a value in ``results.json`` is the functional metric's value on
the same predictions. Definitions: :func:`~xcal.metrics.calibration_report`.
"""

from __future__ import annotations

from xcal.metrics.bootstrap import _ece_decomposition, _mean_decomposition
from xcal.metrics.calibration_error import _ce_compute, _classwise_compute, _classwise_update, _debiased_compute
from xcal.metrics.registry import HEADLINE, TABLE, MetricSpec, SetStats, register_metric
from xcal.metrics.scores import _nll_per_example
from xcal.metrics.smooth import _smooth_ece_from_top_label
from xcal.metrics.stateful import BrierScore, ExpectedCalibrationError, NegativeLogLikelihood


def _ece(norm: str, binning: str = "uniform"):
    def compute(s: SetStats) -> float:
        return float(_ce_compute(*(s.uniform if binning == "uniform" else s.quantile), norm=norm))

    return compute


def _resample_ece(s: SetStats):
    return _ece_decomposition(s.p, {"n_bins": s.n_bins})


def _resample_brier(s: SetStats):
    return _mean_decomposition(lambda _p, _kw: s.brier_each)(s.p, {})


for spec in (
    MetricSpec("accuracy", "Accuracy", True, lambda s: float(s.correct.mean()), shown=HEADLINE, calibration=False),
    MetricSpec("ece", "ECE", False, _ece("l1"), _resample_ece, interval=True, shown=HEADLINE,
               dev=lambda n_bins: ExpectedCalibrationError(n_bins=n_bins, from_logits=True)),
    MetricSpec("mce", "MCE", False, _ece("max"), shown=TABLE),
    MetricSpec("rmsce", "RMSCE", False, _ece("l2")),
    MetricSpec("adaptive_ece", "Adaptive ECE", False, _ece("l1", "quantile"), shown=TABLE),
    MetricSpec("classwise_ece", "Classwise ECE", False,
               lambda s: float(_classwise_compute(*_classwise_update(s.p, s.n_bins)))),
    MetricSpec("brier", "Brier score", False, lambda s: float(s.brier_each.mean()), _resample_brier, interval=True,
               shown=HEADLINE, dev=lambda n_bins: BrierScore(from_logits=True)),
    MetricSpec("brier_top_label", "Top-label Brier score", False,
               lambda s: float((s.conf - s.correct).square().mean())),
    MetricSpec("nll", "NLL", False, lambda s: float(_nll_per_example(s.p).mean()), shown=HEADLINE,
               dev=lambda n_bins: NegativeLogLikelihood(from_logits=True)),
    MetricSpec("debiased_ece", "Debiased ECE", False, lambda s: float(_debiased_compute(*s.quantile))),
    MetricSpec("smooth_ece", "Smooth ECE", False, lambda s: _smooth_ece_from_top_label(s.conf, s.correct)[0]),
    # task scores: written by the evaluation of the tasks that name them (xcal.data.tasks, TaskSpec.scores)
    MetricSpec("entity_f1", "Entity F1", True, None, calibration=False),
    MetricSpec("entity_precision", "Entity precision", True, None, calibration=False),
    MetricSpec("entity_recall", "Entity recall", True, None, calibration=False),
    MetricSpec("ndcg", "nDCG", True, None, calibration=False),
):
    register_metric(spec)
