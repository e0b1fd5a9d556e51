"""Temperature scaling: optimality, held-out improvement, T = 1 identity, determinism, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from xcal.calibration import TemperatureScaler, apply_temperature, fit_temperature, temperature_nll
from xcal.metrics import calibration_report, expected_calibration_error, negative_log_likelihood


def overconfident(n: int, seed: int, c: int = 5, factor: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels drawn from softmax(z); the model reports factor * z, i.e. is over-confident by T = factor."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, c, generator=g) * 1.5
    labels = torch.multinomial(torch.softmax(z, -1), 1, generator=g).squeeze(1)
    return z * factor, labels


def test_fit_recovers_overconfidence_factor_and_lowers_heldout_nll() -> None:
    dev_logits, dev_labels = overconfident(4000, seed=0)
    test_logits, test_labels = overconfident(4000, seed=1)
    t = fit_temperature(dev_logits, dev_labels)
    assert t == pytest.approx(3.0, rel=0.1)
    raw = float(negative_log_likelihood(test_logits, test_labels, from_logits=True))
    scaled = float(negative_log_likelihood(apply_temperature(test_logits, t), test_labels))
    assert scaled < raw - 0.1
    assert float(expected_calibration_error(apply_temperature(test_logits, t), test_labels)) < float(
        expected_calibration_error(test_logits, test_labels, from_logits=True)
    )


def test_fit_is_the_nll_minimum() -> None:
    logits, labels = overconfident(1000, seed=2, factor=0.5)
    t = fit_temperature(logits, labels)
    best = temperature_nll(logits, labels, t)
    for d in (1e-3, -1e-3, 0.05, -0.05):
        assert best <= temperature_nll(logits, labels, t * math.exp(d))
    # the NLL derivative in beta vanishes at the fitted T
    h = 1e-5
    grad = (
        temperature_nll(logits, labels, 1 / (1 / t + h)) - temperature_nll(logits, labels, 1 / (1 / t - h))
    ) / 2
    assert abs(grad / h) < 1e-6


def test_closed_form_two_class_case() -> None:
    # all margins equal 4, 3 of 4 correct: sigmoid(4 / T) = 3/4, T = 4 / ln 3
    logits = torch.tensor([[4.0, 0.0], [4.0, 0.0], [0.0, 4.0], [0.0, 4.0]])
    assert fit_temperature(logits, torch.tensor([0, 1, 1, 1])) == pytest.approx(4 / math.log(3), rel=1e-10)


def test_fit_is_deterministic_and_positive() -> None:
    logits, labels = overconfident(500, seed=3)
    assert fit_temperature(logits, labels) == fit_temperature(logits.clone(), labels.clone())
    assert fit_temperature(logits, labels) > 0


def test_degenerate_inputs() -> None:
    assert fit_temperature(torch.zeros(3, 4), torch.tensor([0, 1, 2])) == 1.0
    # perfectly separable, always right: the NLL keeps falling as T -> 0, so the lower bound is returned
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    assert fit_temperature(logits, torch.tensor([0, 1])) == pytest.approx(1e-2)
    # always wrong: T -> infinity, the upper bound
    assert fit_temperature(logits, torch.tensor([1, 0])) == pytest.approx(1e2)


def test_temperature_one_reproduces_raw_metrics_exactly() -> None:
    logits, labels = overconfident(600, seed=4)
    raw = torch.softmax(logits, -1)
    assert torch.equal(apply_temperature(logits, 1.0), raw)
    assert torch.equal(TemperatureScaler()(logits), raw)
    assert calibration_report(apply_temperature(logits, 1.0), labels) == calibration_report(raw, labels)
    assert calibration_report(logits / 1.0, labels, from_logits=True) == calibration_report(
        logits, labels, from_logits=True
    )


def test_scaler_module_fit_and_state_dict() -> None:
    logits, labels = overconfident(800, seed=5)
    scaler = TemperatureScaler().fit(logits, labels)
    assert scaler.value == fit_temperature(logits, labels)
    loaded = TemperatureScaler()
    loaded.load_state_dict(scaler.state_dict())
    assert torch.equal(loaded(logits), apply_temperature(logits, scaler.value))


@pytest.mark.parametrize(
    ("logits", "labels", "match"),
    [
        (torch.tensor([[float("nan"), 0.0]]), torch.tensor([0]), "NaN or inf"),
        (torch.zeros(2, 2), torch.tensor([0, 2]), "labels out of range"),
        (torch.zeros(2, 2), torch.tensor([0]), "labels must be integer"),
        (torch.zeros(2), torch.tensor([0, 1]), r"\(N, C\)"),
    ],
)
def test_bad_input(logits: torch.Tensor, labels: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_temperature(logits, labels)


@pytest.mark.parametrize("t", [0.0, -1.0, float("inf"), float("nan")])
def test_apply_refuses_bad_temperature(t: float) -> None:
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(torch.zeros(1, 2), t)


def test_ignore_index() -> None:
    logits, labels = overconfident(300, seed=6)
    padded = torch.cat([logits, torch.zeros(5, 5)])
    padded_labels = torch.cat([labels, torch.full((5,), -100)])
    assert fit_temperature(padded, padded_labels, ignore_index=-100) == fit_temperature(logits, labels)
