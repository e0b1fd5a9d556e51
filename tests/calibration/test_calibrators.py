"""Each registered calibrator: lowers held-out ECE/Brier (and NLL) on a planted miscalibration, recovers the
planted parameters where it can, round-trips its parameters through JSON, fits deterministically, refuses bad
input with one clear message."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from calib_data import BIAS, MIX, SCALE, planted

from xcal.calibration import (
    DirichletCalibration,
    HistogramBinning,
    TemperatureCalibrator,
    VectorScaling,
    calibrator_names,
    fit_temperature,
    get_calibrator,
)
from xcal.metrics import brier_score, expected_calibration_error, negative_log_likelihood

BUILT_IN = ("temperature", "temperature_own_dev", "vector", "dirichlet", "histogram")


def scores(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    return {
        "ece": float(expected_calibration_error(probs, labels)),
        "brier": float(brier_score(probs, labels)),
        "nll": float(negative_log_likelihood(probs, labels)),
    }


# planting -> the calibrators that should fix it (each is also run on the harder plantings it cannot fully fix)
@pytest.mark.parametrize("name", BUILT_IN)
@pytest.mark.parametrize("kind", ["overconfident", "vector", "matrix"])
def test_lowers_heldout_ece_brier_nll(name: str, kind: str) -> None:
    dev, dev_y = planted(kind, 3000, seed=0)
    test, test_y = planted(kind, 3000, seed=1)
    cal = get_calibrator(name).build().fit(dev, dev_y)
    raw = scores(torch.softmax(test, dim=1), test_y)
    out = scores(cal.apply(test), test_y)
    assert out["ece"] < 0.5 * raw["ece"], (raw, out)
    assert out["brier"] < raw["brier"], (raw, out)
    if name != "histogram":  # a bin that was always right gives the other classes 0: see histogram.py
        assert out["nll"] < raw["nll"] - 0.05, (raw, out)


def test_richer_maps_beat_temperature_on_their_own_planting() -> None:
    def heldout_nll(name: str, kind: str) -> float:
        dev, dev_y = planted(kind, 3000, seed=0)
        test, test_y = planted(kind, 3000, seed=1)
        return float(negative_log_likelihood(get_calibrator(name).build().fit(dev, dev_y).apply(test), test_y))

    assert heldout_nll("vector", "vector") < heldout_nll("temperature", "vector") - 0.02
    assert heldout_nll("dirichlet", "matrix") < heldout_nll("vector", "matrix") - 0.02


def test_fits_recover_the_planted_parameters() -> None:
    assert TemperatureCalibrator().fit(*planted("overconfident", 6000, 2)).temperature == pytest.approx(3.0, rel=0.05)
    vec = VectorScaling().fit(*planted("vector", 6000, 2))
    assert torch.allclose(vec.scale, SCALE / 3.0, atol=0.1)
    # softmax is unchanged by a shift of all biases: compare centred biases
    assert torch.allclose(vec.bias - vec.bias.mean(), BIAS - BIAS.mean(), atol=0.15)
    dirichlet = DirichletCalibration(reg_lambda=0.0, reg_mu=0.0).fit(*planted("matrix", 20000, 2))
    # and by adding one vector to every row of W: compare W with each column centred
    w, mix = dirichlet.weights, MIX
    assert torch.allclose(w - w.mean(0), mix - mix.mean(0), atol=0.1)


def test_temperature_calibrator_is_fit_temperature() -> None:
    logits, labels = planted("overconfident", 500, seed=3)
    cal = TemperatureCalibrator().fit(logits.float(), labels)
    assert cal.temperature == fit_temperature(logits.float(), labels)
    assert torch.equal(cal.apply(logits), torch.softmax(logits / cal.temperature, dim=1))


@pytest.mark.parametrize("name", BUILT_IN)
def test_parameters_round_trip_through_json(name: str) -> None:
    dev, dev_y = planted("vector", 800, seed=4)
    test, _ = planted("vector", 300, seed=5)
    spec = get_calibrator(name)
    cal = spec.build().fit(dev, dev_y)
    params = json.loads(json.dumps(cal.parameters(), allow_nan=False))
    assert params == cal.parameters()
    restored = spec.restore(params)
    assert type(restored) is type(cal)
    assert torch.equal(restored.apply(test), cal.apply(test))
    assert restored.parameters() == params


@pytest.mark.parametrize("name", BUILT_IN)
def test_fit_is_deterministic_and_returns_probabilities(name: str) -> None:
    dev, dev_y = planted("matrix", 1000, seed=6)
    a = get_calibrator(name).build().fit(dev, dev_y)
    b = get_calibrator(name).build().fit(dev.clone(), dev_y.clone())
    assert a.parameters() == b.parameters()
    probs = a.apply(dev.float())
    assert probs.dtype == torch.float64 and probs.shape == dev.shape
    assert torch.allclose(probs.sum(1), torch.ones(len(dev), dtype=torch.float64), atol=1e-12)
    assert bool((probs >= 0).all())


def test_histogram_keeps_the_prediction_and_top_label_is_the_bin_accuracy() -> None:
    dev, dev_y = planted("matrix", 2000, seed=7)
    cal = HistogramBinning(n_bins=10).fit(dev, dev_y)
    test, _ = planted("matrix", 2000, seed=8)
    probs = cal.apply(test)
    assert torch.equal(probs.argmax(1), test.argmax(1))
    assert torch.allclose(probs.max(1).values, cal.confidence(test).clamp_min(1 / test.shape[1]))
    # on the fit set, equal-mass bins of the top-label confidence are calibrated in-sample: ECE with the same bins is 0
    edges = torch.tensor(cal.parameters()["edges"])
    assert len(edges) == 11
    conf, pred = cal.apply(dev).max(1)
    correct = (pred == dev_y).double()
    raw_conf = torch.softmax(dev, 1).max(1).values
    for lo, hi in itertools.pairwise(edges):
        inside = (raw_conf > lo) & (raw_conf <= hi)
        assert float(conf[inside].mean()) == pytest.approx(float(correct[inside].mean()), abs=1e-12)


def test_dirichlet_odir_shrinks_off_diagonal() -> None:
    dev, dev_y = planted("matrix", 1000, seed=9)

    def off(lam: float) -> float:
        w = DirichletCalibration(reg_lambda=lam, reg_mu=lam).fit(dev, dev_y).weights
        return float((w - torch.diag(torch.diagonal(w))).abs().sum())

    assert off(100.0) < 0.2 * off(0.0)


BAD_FIT = [
    (lambda z, y: (z[:, 0], y), r"logits must be a floating \(N, C\) tensor"),
    (lambda z, y: (z.long(), y), r"logits must be a floating \(N, C\) tensor"),
    (lambda z, y: (z[:, :1], y), "at least 2 classes"),
    (lambda z, y: (z[:0], y[:0]), "zero examples"),
    (lambda z, y: (torch.where(z > 2, float("nan"), z), y), "NaN or inf"),
    (lambda z, y: (z, y.double()), "labels must be integer class indices"),
    (lambda z, y: (z, y[:-1]), "labels must be integer class indices of shape"),
    (lambda z, y: (z, torch.where(y == 0, 5, y)), r"labels out of range: expected \[0, 4\]"),
    (lambda z, y: (z, torch.where(y == 0, -1, y)), "labels out of range"),
]


@pytest.mark.parametrize("name", BUILT_IN)
@pytest.mark.parametrize(("corrupt", "message"), BAD_FIT)
def test_bad_fit_input_raises_one_clear_message(name: str, corrupt, message: str) -> None:
    z, y = planted("overconfident", 50, seed=10)
    with pytest.raises(ValueError, match=message):
        get_calibrator(name).build().fit(*corrupt(z, y))


@pytest.mark.parametrize("name", BUILT_IN)
def test_apply_and_restore_refuse_mismatches(name: str) -> None:
    spec = get_calibrator(name)
    with pytest.raises(RuntimeError, match="not fitted"):
        spec.build().apply(torch.zeros(2, 5))
    z, y = planted("overconfident", 50, seed=11)
    cal = spec.build().fit(z, y)
    with pytest.raises(ValueError, match="fitted on 5"):
        cal.apply(z[:, :4])
    with pytest.raises(ValueError, match="NaN or inf"):
        cal.apply(torch.full((1, 5), float("inf")))
    params = cal.parameters()
    key = spec.cls.state_keys[0]
    with pytest.raises(ValueError, match="missing key"):
        spec.restore({k: v for k, v in params.items() if k != key})
    with pytest.raises(ValueError, match=f"{spec.cls.__name__}"):
        spec.restore({**params, key: "oops"})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: DirichletCalibration(reg_lambda=-1.0), "reg_lambda must be a finite number >= 0"),
        (lambda: DirichletCalibration(reg_mu=float("nan")), "reg_mu must be a finite number >= 0"),
        (lambda: HistogramBinning(n_bins=0), "n_bins must be an integer >= 1"),
        (lambda: HistogramBinning(binning="kmeans"), "binning must be one of"),
    ],
)
def test_bad_hyperparameters(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_builtins_registered_in_table_order() -> None:
    assert calibrator_names()[: len(BUILT_IN)] == BUILT_IN
