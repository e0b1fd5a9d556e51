"""Brier decomposition (Murphy 1973; Stephenson, Coelho & Jolliffe 2008): the five terms add up to
xcal.metrics.brier_score exactly, match an independent per-class loop, and behave at the edges."""

from __future__ import annotations

import doctest
import importlib
from bisect import bisect_left, bisect_right

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xcal.metrics import BrierDecomposition, brier_decomposition, brier_score

TOL = 1e-12
TERMS = ("reliability", "resolution", "uncertainty", "within_bin_variance", "within_bin_covariance")


def recombined(d: BrierDecomposition) -> float:
    """REL - RES + UNC + WBV - WBC."""
    return d.reliability - d.resolution + d.uncertainty + d.within_bin_variance - d.within_bin_covariance


def reference(probs: np.ndarray, labels: np.ndarray, n_bins: int, closed: str = "right") -> dict[str, float]:
    """The five terms by their definitions: a python loop over classes and bins, bins from exact edges k/B."""
    n, c = probs.shape
    edges = [k / n_bins for k in range(1, n_bins)]  # interior edges
    out = dict.fromkeys(TERMS, 0.0)
    for k in range(c):
        f = probs[:, k].astype(np.float64)
        o = (labels == k).astype(np.float64)
        if closed == "right":  # (lo, hi], 0 in the first bin: #{edges < f}
            idx = np.array([bisect_left(edges, x) for x in f])
        else:  # [lo, hi), 1.0 in the last bin: #{edges <= f}
            idx = np.array([bisect_right(edges, x) for x in f])
        obar = o.mean()
        out["uncertainty"] += obar * (1 - obar)
        for b in np.unique(idx):
            m = idx == b
            fb, ob = f[m].mean(), o[m].mean()
            out["reliability"] += m.sum() * (fb - ob) ** 2 / n
            out["resolution"] += m.sum() * (ob - obar) ** 2 / n
            out["within_bin_variance"] += ((f[m] - fb) ** 2).sum() / n
            out["within_bin_covariance"] += 2 * ((o[m] - ob) * (f[m] - fb)).sum() / n
    return out


def assert_identity(probs: torch.Tensor, labels: torch.Tensor, n_bins: int, closed: str = "right") -> None:
    """The identity against brier_score, the terms against the reference, and the signs of the terms."""
    d = brier_decomposition(probs, labels, n_bins, closed=closed)
    bs = float(brier_score(probs, labels))
    assert d.brier == pytest.approx(bs, abs=TOL)
    assert recombined(d) == pytest.approx(bs, abs=TOL)
    ref = reference(probs.double().numpy(), labels.numpy(), n_bins, closed)
    for term in TERMS:
        assert getattr(d, term) == pytest.approx(ref[term], abs=TOL), term
    for term in ("reliability", "resolution", "uncertainty", "within_bin_variance"):
        assert getattr(d, term) >= -TOL, term


# ---------------------------------------------------------------- exact numbers
def test_hand_computed_example() -> None:
    """N=4, C=2, two bins. Class 1: f = .1 .3 | .75 1, o = 0 1 | 1 1; bins (0, .5], (.5, 1].

    bin 1: n=2, fbar=.2, obar=.5; bin 2: n=2, fbar=.875, obar=1; base rate .75.
    REL = (2 * .3^2 + 2 * .125^2) / 4 = .0528125      RES = (2 * .25^2 + 2 * .25^2) / 4 = .0625
    UNC = .75 * .25 = .1875                           WBV = (.1^2 + .1^2 + 2 * .125^2) / 4 = .0128125
    WBC = 2 * ((-.5)(-.1) + (.5)(.1) + 0 + 0) / 4 = .05
    Class 0 is the mirror image (f0 = 1 - f, none on an edge), so every term doubles; the Brier score is
    (.02 + .98 + .125 + 0) / 4 = .28125 = 2 * (.0528125 - .0625 + .1875 + .0128125 - .05).
    """
    p1 = torch.tensor([0.1, 0.3, 0.75, 1.0], dtype=torch.float64)
    probs = torch.stack([1 - p1, p1], dim=1)
    d = brier_decomposition(probs, torch.tensor([0, 1, 1, 1]), n_bins=2)
    expected = {
        "brier": 0.28125,
        "reliability": 0.105625,
        "resolution": 0.125,
        "uncertainty": 0.375,
        "within_bin_variance": 0.025625,
        "within_bin_covariance": 0.1,
    }
    assert d.as_dict() == pytest.approx(expected, abs=1e-15)
    assert recombined(d) == pytest.approx(0.28125, abs=1e-15)


def test_docstring_example() -> None:
    """The doctest in the module runs and its printed output is exact."""
    # importlib: the attribute xcal.metrics.brier_decomposition is the function, which shadows the module
    module = importlib.import_module("xcal.metrics.brier_decomposition")
    result = doctest.testmod(module, raise_on_error=False)
    assert result.attempted >= 3 and result.failed == 0


def test_as_dict_is_plain_floats_in_field_order() -> None:
    probs = torch.tensor([[0.6, 0.4], [0.3, 0.7]])
    d = brier_decomposition(probs, torch.tensor([0, 1]))
    assert list(d.as_dict()) == ["brier", *TERMS]
    assert all(type(v) is float for v in d.as_dict().values())
    with pytest.raises(AttributeError):
        d.brier = 0.0  # type: ignore[misc]


# ---------------------------------------------------------------- calibrated by construction
def test_calibrated_binary_forecast_has_zero_reliability() -> None:
    """Forecast v = (2j+1)/20 (the centre of bin j of 10) on 20 examples, 2j+1 of them positive: each bin's
    frequency equals its forecast, for class 1 and (mirrored) class 0, so REL = 0 and WBV = WBC = 0."""
    rows, labels = [], []
    for j in range(10):
        v = (2 * j + 1) / 20
        rows += [[1 - v, v]] * 20
        labels += [1] * (2 * j + 1) + [0] * (20 - 2 * j - 1)
    probs = torch.tensor(rows, dtype=torch.float64)
    y = torch.tensor(labels)
    d = brier_decomposition(probs, y, n_bins=10)
    assert d.reliability == pytest.approx(0.0, abs=1e-15)
    assert d.within_bin_variance == pytest.approx(0.0, abs=1e-15)
    assert d.within_bin_covariance == pytest.approx(0.0, abs=1e-15)
    assert d.resolution > 0.1
    assert recombined(d) == pytest.approx(float(brier_score(probs, y)), abs=TOL)
    # the same forecasts pushed away from 0.5 (overconfident) are miscalibrated
    sharp = torch.where(probs > 0.5, probs.sqrt(), probs.square())
    sharp = sharp / sharp.sum(dim=1, keepdim=True)
    assert brier_decomposition(sharp, y, n_bins=10).reliability > 1e-3


def test_climatological_forecast_is_pure_uncertainty() -> None:
    """Every row (0.2, 0.3, 0.5) and labels in exactly those proportions: one bin per class, calibrated, no
    resolution, no within-bin spread; the Brier score is the uncertainty 1 - sum_k p_k^2 = 0.62."""
    probs = torch.tensor([[0.2, 0.3, 0.5]] * 10, dtype=torch.float64)
    y = torch.tensor([0] * 2 + [1] * 3 + [2] * 5)
    d = brier_decomposition(probs, y)
    for term in ("reliability", "resolution", "within_bin_variance", "within_bin_covariance"):
        assert getattr(d, term) == pytest.approx(0.0, abs=1e-15), term
    assert d.uncertainty == pytest.approx(0.62, abs=1e-15)
    assert d.brier == pytest.approx(0.62, abs=1e-15)


# ---------------------------------------------------------------- identity on random and adversarial input
ADVERSARIAL = {
    "N=1": (torch.tensor([[0.3, 0.7]]), torch.tensor([0])),
    "N=1 one-hot right": (torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([1])),
    "N=1 one-hot wrong": (torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([2])),
    "one class only": (torch.ones(5, 1), torch.zeros(5, dtype=torch.long)),
    "saturated 0 and 1": (
        torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]),
        torch.tensor([0, 0, 1, 1]),
    ),
    "all on bin edges": (
        torch.tensor([[k / 10, 1 - k / 10] for k in range(11)], dtype=torch.float64),
        torch.tensor([k % 2 for k in range(11)]),
    ),
    "absent class": (torch.tensor([[0.5, 0.25, 0.25], [0.6, 0.3, 0.1]]), torch.tensor([0, 0])),
    "float32 softmax saturates to 1.0": (
        torch.softmax(torch.tensor([[40.0, 0.0, -3.0], [0.0, 0.0, 0.0], [-5.0, 30.0, 2.0]]), dim=1),
        torch.tensor([0, 2, 1]),
    ),
}


@pytest.mark.parametrize("n_bins", [1, 2, 15, 1000])
@pytest.mark.parametrize("closed", ["right", "left"])
@pytest.mark.parametrize("case", list(ADVERSARIAL), ids=list(ADVERSARIAL))
def test_identity_adversarial(case: str, n_bins: int, closed: str) -> None:
    probs, labels = ADVERSARIAL[case]
    assert_identity(probs, labels, n_bins, closed)


def test_one_class_only_is_all_zero() -> None:
    d = brier_decomposition(torch.ones(3, 1), torch.zeros(3, dtype=torch.long))
    assert d.as_dict() == dict.fromkeys(d.as_dict(), 0.0)


def test_single_bin_is_murphy_with_one_bin() -> None:
    """With one bin, RES = 0 and REL is the squared gap between mean forecast and base rate, per class."""
    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(50, 4, generator=gen, dtype=torch.float64), dim=1)
    y = torch.randint(0, 4, (50,), generator=gen)
    d = brier_decomposition(probs, y, n_bins=1)
    assert d.resolution == pytest.approx(0.0, abs=TOL)
    gap = probs.mean(0) - torch.nn.functional.one_hot(y, 4).double().mean(0)
    assert d.reliability == pytest.approx(float(gap.square().sum()), abs=TOL)


@st.composite
def inputs(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, int, str]:
    """Dirichlet rows, one-hot rows, and two-class rows exactly on the bin edges k/B, mixed."""
    n = draw(st.integers(1, 60))
    c = draw(st.integers(1, 6))
    n_bins = draw(st.sampled_from([1, 2, 3, 7, 10, 15, 100, 997]))
    closed = draw(st.sampled_from(["right", "left"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    alpha = draw(st.sampled_from([0.05, 0.5, 1.0, 10.0]))
    probs = rng.dirichlet(np.full(c, alpha), size=n)
    kind = rng.integers(0, 3, size=n)
    onehot = np.eye(c)[rng.integers(0, c, size=n)]
    probs[kind == 1] = onehot[kind == 1]
    if c == 2:
        q = rng.integers(0, n_bins + 1, size=n) / n_bins
        probs[kind == 2] = np.stack([1 - q, q], axis=1)[kind == 2]
    labels = rng.integers(0, c, size=n)
    dtype = draw(st.sampled_from([torch.float64, torch.float32]))
    return torch.tensor(probs, dtype=dtype), torch.tensor(labels), n_bins, closed


@settings(max_examples=150, deadline=None)
@given(inputs())
def test_identity_random(case: tuple[torch.Tensor, torch.Tensor, int, str]) -> None:
    probs, labels, n_bins, closed = case
    assert_identity(probs, labels, n_bins, closed)


# ---------------------------------------------------------------- logits, ignore_index
def test_from_logits_equals_softmax_input() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = 4 * torch.randn(200, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 5, (200,), generator=gen)
    a = brier_decomposition(logits, y, n_bins=10, from_logits=True).as_dict()
    b = brier_decomposition(torch.softmax(logits, dim=1), y, n_bins=10).as_dict()
    assert a == pytest.approx(b, abs=TOL)


def test_ignore_index_drops_positions() -> None:
    probs = torch.tensor([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    kept = brier_decomposition(probs[:2], torch.tensor([1, 0]), n_bins=4).as_dict()
    dropped = brier_decomposition(probs, torch.tensor([1, 0, -100]), n_bins=4, ignore_index=-100).as_dict()
    assert dropped == pytest.approx(kept, abs=TOL)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"probs": torch.tensor([[0.5, 0.5]] * 3), "labels": torch.tensor([0, 1])}, "shape mismatch"),
        ({"probs": torch.tensor([0.5, 0.5]), "labels": torch.tensor([0, 1])}, "probs must have shape"),
        ({"probs": torch.tensor([[0.5, 0.5]]), "labels": torch.tensor([0.0])}, "labels must be an integer"),
        ({"probs": torch.tensor([[0.5, 0.5]]), "labels": torch.tensor([2])}, "labels out of range"),
        ({"probs": torch.tensor([[2.0, -1.0]]), "labels": torch.tensor([0])}, "from_logits=True"),
        ({"probs": torch.tensor([[0.5, 0.5]]), "labels": torch.tensor([0]), "n_bins": 0}, "n_bins"),
        ({"probs": torch.tensor([[0.5, 0.5]]), "labels": torch.tensor([0]), "n_bins": 2.0}, "n_bins"),
        ({"probs": torch.tensor([[0.5, 0.5]]), "labels": torch.tensor([0]), "closed": "both"}, "closed"),
        ({"probs": torch.tensor([[0.5, 0.5]]), "labels": torch.tensor([0]), "ignore_index": 0.5}, "ignore_index"),
        ({"probs": torch.tensor([[0.5, 0.5]]), "labels": torch.tensor([-1]), "ignore_index": -1}, "no predictions"),
    ],
)
def test_bad_input_raises(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        brier_decomposition(**kwargs)
