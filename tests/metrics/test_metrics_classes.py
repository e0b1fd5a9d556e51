"""torchmetrics.Metric classes: batched accumulation equals the functional form; states merge like DDP."""

from __future__ import annotations

import pytest
import torch
from torchmetrics import Metric

from xcal.metrics import (
    BrierScore,
    ClasswiseECE,
    DebiasedECE,
    ExpectedCalibrationError,
    NegativeLogLikelihood,
    SmoothECE,
    brier_score,
    classwise_ece,
    debiased_ece,
    expected_calibration_error,
    negative_log_likelihood,
    smooth_ece,
)


def data(seed: int = 0, n: int = 900, c: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g) * 3
    labels = torch.multinomial(torch.softmax(logits / 2, -1), 1, generator=g).squeeze(1)
    return logits, labels


CASES = [
    (lambda: ExpectedCalibrationError(n_bins=10), lambda p, y: expected_calibration_error(p, y, 10)),
    (lambda: ExpectedCalibrationError(norm="max"), lambda p, y: expected_calibration_error(p, y, norm="max")),
    (lambda: ExpectedCalibrationError(norm="l2"), lambda p, y: expected_calibration_error(p, y, norm="l2")),
    (
        lambda: ExpectedCalibrationError(binning="quantile"),
        lambda p, y: expected_calibration_error(p, y, binning="quantile"),
    ),
    (lambda: ClasswiseECE(num_classes=4), classwise_ece),
    (lambda: DebiasedECE(), debiased_ece),
    (lambda: DebiasedECE(binning="uniform"), lambda p, y: debiased_ece(p, y, binning="uniform")),
    (lambda: BrierScore(), brier_score),
    (lambda: BrierScore(top_label=True), lambda p, y: brier_score(p, y, top_label=True)),
    (lambda: NegativeLogLikelihood(), negative_log_likelihood),
    (lambda: SmoothECE(), smooth_ece),
]


@pytest.mark.parametrize(("make", "fn"), CASES)
def test_batched_update_equals_functional(make, fn) -> None:  # type: ignore[no-untyped-def]
    logits, labels = data()
    probs = torch.softmax(logits, -1)
    metric = make()
    assert isinstance(metric, Metric) and metric.full_state_update is False
    for chunk in torch.split(torch.arange(900), 200):
        metric.update(probs[chunk], labels[chunk])
    assert float(metric.compute()) == pytest.approx(float(fn(probs, labels)), abs=1e-10)
    metric.reset()
    metric.update(probs[:100], labels[:100])
    assert float(metric.compute()) == pytest.approx(float(fn(probs[:100], labels[:100])), abs=1e-10)


@pytest.mark.parametrize(("make", "fn"), CASES)
def test_merged_states_equal_single_process(make, fn) -> None:  # type: ignore[no-untyped-def]
    """Two 'ranks' see half of the data each; merging their states (as DDP's sync does) gives the total."""
    logits, labels = data(1)
    probs = torch.softmax(logits, -1)
    a, b = make(), make()
    a.update(probs[:450], labels[:450])
    b.update(probs[450:], labels[450:])
    a.merge_state(b)
    assert float(a.compute()) == pytest.approx(float(fn(probs, labels)), abs=1e-10)


def test_uniform_states_are_binned_sufficient_statistics() -> None:
    metric = ExpectedCalibrationError(n_bins=15)
    logits, labels = data()
    for _ in range(3):
        metric.update(torch.softmax(logits, -1), labels)
    assert metric.count.shape == (15,) and float(metric.count.sum()) == 2700
    assert metric._reductions["count"] is not None
    cw = ClasswiseECE(num_classes=4, n_bins=5)
    cw.update(torch.softmax(logits, -1), labels)
    assert cw.count.shape == (4, 5)


def test_from_logits_and_ignore_index_in_classes() -> None:
    logits, labels = data(2)
    labels[:50] = -100
    metric = ExpectedCalibrationError(from_logits=True, ignore_index=-100)
    metric.update(logits, labels)
    want = expected_calibration_error(logits[50:], labels[50:], from_logits=True)
    assert float(metric.compute()) == pytest.approx(float(want), abs=1e-12)


def test_classes_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="n_bins"):
        ExpectedCalibrationError(n_bins=0)
    with pytest.raises(ValueError, match="norm"):
        ExpectedCalibrationError(norm="l3")
    with pytest.raises(ValueError, match="num_classes"):
        ClasswiseECE(num_classes=0)
    with pytest.raises(ValueError, match="from_logits=True"):
        ExpectedCalibrationError().update(torch.randn(3, 2), torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="expected 3 class columns"):
        ClasswiseECE(num_classes=3).update(torch.full((2, 2), 0.5), torch.tensor([0, 1]))
