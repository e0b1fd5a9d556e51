"""Agreement with reference implementations, test-only dependencies (a test skips if its reference is absent).

References and the setting that matches xcal's convention:

* torchmetrics ``MulticlassCalibrationError`` (l1, l2, max): bins ``[lo, hi)`` -> ``closed="left"``;
  identical for confidences below 1.0. Exactly 1.0 lands in torchmetrics' hidden extra bin (its issue
  #3510), so for 1.0 we compare with its ``_ce_compute`` given a last edge just above 1.
* netcal ``ECE`` / ``MCE`` (equal intervals): numpy-histogram bins ``[lo, hi)`` -> ``closed="left"``;
  netcal treats inputs with at most two distinct labels as binary and scores the positive-class column,
  which for two columns is xcal's classwise ECE. netcal's ``ACE`` averages |acc - conf| over non-empty
  equal-mass bins without weights (Neumann et al., 2018), a different estimator from the adaptive ECE;
  it is not compared.
* uncertainty-calibration (Kumar et al., 2019): bins ``(lo, hi]`` with edges ``i / B`` -> xcal's default,
  including every tie; ``get_ece`` (top-label and marginal), ``get_ece_em`` (equal mass),
  ``lower_bound_scaling_top_ce(p=2, debias=True)`` (debiased) and the l2 plug-in.
* relplot ``smECE`` / ``smECE_sigma`` (Błasiok & Nakkiran, 2023).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xcal.metrics import (
    classwise_ece,
    debiased_ece,
    expected_calibration_error,
    smooth_ece,
)

TOL = 1e-6


def make_inputs(seed: int, n: int, c: int, discrete: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g, dtype=torch.float64) * 3
    if discrete:  # many ties, confidences exactly on edges, exactly 1.0 and 0.0 entries
        logits = (logits * 2).round() * 200
    probs = torch.softmax(logits, -1)
    labels = torch.multinomial(torch.softmax(logits / 40 if discrete else logits / 2, -1), 1, generator=g)
    return probs, labels.squeeze(1)


def dyadic_inputs(seed: int, n: int, with_one: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes, top-label confidence in {6/16, ..., 15/16 (or 16/16)}: half of them on the edges k/8
    of 8 bins, half inside a bin (exact in every float format); about 80% correct."""
    g = torch.Generator().manual_seed(seed)
    top = torch.randint(6, 17 if with_one else 16, (n,), generator=g).double() / 16
    rest = (1 - top) / 2
    probs = torch.stack([top, rest, rest], 1)
    labels = torch.randint(0, 3, (n,), generator=g)
    labels[torch.rand(n, generator=g) < 0.7] = 0
    labels[:3] = torch.tensor([0, 1, 2])
    return probs, labels


# ---------------------------------------------------------------- torchmetrics
tm_cls = pytest.importorskip("torchmetrics.classification")


def tm_ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int, norm: str) -> float:
    metric = tm_cls.MulticlassCalibrationError(num_classes=probs.shape[1], n_bins=n_bins, norm=norm)
    return float(metric(probs, labels))


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
@pytest.mark.parametrize(
    ("n", "c", "n_bins"), [(1, 3, 15), (2, 2, 15), (300, 2, 10), (2000, 5, 15), (500, 10, 1)]
)
def test_torchmetrics_random(norm: str, n: int, c: int, n_bins: int) -> None:
    probs, labels = make_inputs(n + c, n, c)
    got = float(expected_calibration_error(probs, labels, n_bins, norm))
    assert got == pytest.approx(tm_ece(probs, labels, n_bins, norm), abs=TOL)


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_torchmetrics_ties_on_edges_closed_left(norm: str) -> None:
    probs, labels = dyadic_inputs(0, 400, with_one=False)
    got = float(expected_calibration_error(probs, labels, 8, norm, closed="left"))
    assert got == pytest.approx(tm_ece(probs, labels, 8, norm), abs=TOL)
    # the default right-closed bins differ on these ties, as documented
    assert float(expected_calibration_error(probs, labels, 8, norm)) != pytest.approx(
        tm_ece(probs, labels, 8, norm), abs=TOL
    )


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_torchmetrics_issue_3510_confidence_one_hidden_bin(norm: str) -> None:
    """Regression test for torchmetrics issue #3510: confidence 1.0 is in xcal's last bin, not an extra."""
    from torchmetrics.functional.classification.calibration_error import _ce_compute

    probs, labels = dyadic_inputs(1, 400, with_one=True)
    conf, pred = probs.max(1)
    assert bool((conf == 1.0).any())
    correct = (pred == labels).double()
    edges = torch.arange(9, dtype=torch.float64) / 8
    edges[-1] = torch.nextafter(
        torch.tensor(1.0, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64)
    )
    want = float(_ce_compute(conf, correct, edges, norm=norm))
    assert float(expected_calibration_error(probs, labels, 8, norm, closed="left")) == pytest.approx(
        want, abs=TOL
    )


# ---------------------------------------------------------------- netcal
def _netcal() -> object:
    return pytest.importorskip("netcal.metrics")


@pytest.mark.parametrize(("n", "c", "n_bins"), [(50, 3, 15), (1000, 4, 10), (3000, 10, 15)])
def test_netcal_ece_mce_random(n: int, c: int, n_bins: int) -> None:
    nm = _netcal()
    probs, labels = make_inputs(7 * n, n, c)
    assert len(np.unique(labels.numpy())) > 2  # netcal switches to binary mode otherwise
    x, y = probs.numpy(), labels.numpy()
    for norm, cls in (("l1", nm.ECE), ("max", nm.MCE)):
        want = cls(bins=n_bins).measure(x, y)
        assert float(expected_calibration_error(probs, labels, n_bins, norm)) == pytest.approx(want, abs=TOL)


def test_netcal_ties_on_edges_closed_left() -> None:
    nm = _netcal()
    probs, labels = dyadic_inputs(2, 500, with_one=True)
    x, y = probs.numpy(), labels.numpy()
    for norm, cls in (("l1", nm.ECE), ("max", nm.MCE)):
        want = cls(bins=8).measure(x, y)
        got = float(expected_calibration_error(probs, labels, 8, norm, closed="left"))
        assert got == pytest.approx(want, abs=TOL)


@pytest.mark.parametrize("n", [20, 800])
def test_netcal_binary_two_columns_is_classwise(n: int) -> None:
    nm = _netcal()
    probs, labels = make_inputs(n, n, 2)
    want = nm.ECE(bins=10).measure(probs.numpy(), labels.numpy())
    assert float(classwise_ece(probs, labels, 10)) == pytest.approx(want, abs=TOL)


# ---------------------------------------------------------------- uncertainty-calibration
def _uc() -> object:
    return pytest.importorskip("calibration")


def check_against_uc(probs: torch.Tensor, labels: torch.Tensor, n_bins: int) -> None:
    cal = _uc()
    x, y = probs.numpy(), labels.numpy()
    pairs = [
        (expected_calibration_error(probs, labels, n_bins), cal.get_ece(x, y, num_bins=n_bins)),
        (
            expected_calibration_error(probs, labels, n_bins, "l2"),
            cal.lower_bound_scaling_top_ce(
                x, y, p=2, debias=False, num_bins=n_bins, binning_scheme=cal.get_equal_prob_bins
            ),
        ),
        (
            expected_calibration_error(probs, labels, n_bins, binning="quantile"),
            cal.get_ece_em(x, y, num_bins=n_bins),
        ),
        (classwise_ece(probs, labels, n_bins), cal.get_ece(x, y, num_bins=n_bins, mode="marginal")),
        (
            debiased_ece(probs, labels, n_bins),
            cal.lower_bound_scaling_top_ce(x, y, p=2, debias=True, num_bins=n_bins),
        ),
    ]
    for got, want in pairs:
        assert float(got) == pytest.approx(float(want), abs=TOL)


@pytest.mark.parametrize(
    ("n", "c", "n_bins"),
    [(1, 3, 15), (2, 2, 15), (40, 2, 15), (500, 3, 10), (2000, 10, 15), (700, 4, 15)],
)
def test_uncertainty_calibration_random(n: int, c: int, n_bins: int) -> None:
    check_against_uc(*make_inputs(3 * n + c, n, c), n_bins)


@pytest.mark.parametrize("seed", [0, 1])
def test_uncertainty_calibration_ties_zero_and_one(seed: int) -> None:
    probs, labels = make_inputs(seed, 600, 4, discrete=True)
    assert bool((probs == 1.0).any()) and bool((probs == 0.0).any())
    check_against_uc(probs, labels, 15)
    check_against_uc(*dyadic_inputs(seed, 300, with_one=True), 8)


@settings(max_examples=12, deadline=None)
@given(st.integers(1, 120), st.integers(2, 6), st.integers(1, 20), st.integers(0, 10**6), st.booleans())
def test_property_uncertainty_calibration(n: int, c: int, n_bins: int, seed: int, discrete: bool) -> None:
    probs, labels = make_inputs(seed, n, c, discrete)
    check_against_uc(probs, labels, n_bins)


# ---------------------------------------------------------------- relplot
@pytest.mark.parametrize(("n", "c"), [(1, 3), (2, 2), (100, 3), (5000, 10)])
def test_relplot_smooth_ece(n: int, c: int) -> None:
    relplot = pytest.importorskip("relplot")
    probs, labels = make_inputs(n, n, c)
    conf, correct = relplot.multiclass_logits_to_confidences(probs.numpy(), labels.numpy(), probs=True)
    assert float(smooth_ece(probs, labels)) == pytest.approx(relplot.smECE(conf, correct), abs=TOL)
    for sigma in (0.005, 0.1):
        want = relplot.smECE_sigma(conf, correct, sigma)
        assert float(smooth_ece(probs, labels, sigma=sigma)) == pytest.approx(want, abs=TOL)


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 200), st.integers(2, 5), st.integers(0, 10**6), st.booleans())
def test_property_relplot(n: int, c: int, seed: int, discrete: bool) -> None:
    relplot = pytest.importorskip("relplot")
    probs, labels = make_inputs(seed, n, c, discrete)
    conf, correct = relplot.multiclass_logits_to_confidences(probs.numpy(), labels.numpy(), probs=True)
    assert float(smooth_ece(probs, labels)) == pytest.approx(relplot.smECE(conf, correct), abs=TOL)
