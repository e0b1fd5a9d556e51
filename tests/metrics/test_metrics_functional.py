"""Functional calibration metrics: formulas against independent numpy code, edge conventions, bad input."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xcal.metrics import (
    accuracy,
    brier_score,
    calibration_report,
    classwise_ece,
    debiased_ece,
    expected_calibration_error,
    negative_log_likelihood,
    plot_reliability_diagram,
    reliability_bins,
    smooth_ece,
)

TOL = 1e-9


# ---------------------------------------------------------------- independent numpy references
def np_bins_right(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index with bins (k/B, (k+1)/B], 0 in the first bin: by the definition, with exact fractions."""
    from fractions import Fraction

    out = np.empty(len(conf), dtype=np.int64)
    for i, c in enumerate(conf):
        c = Fraction(float(c))
        k = 0
        while k < n_bins - 1 and c > Fraction(k + 1, n_bins):
            k += 1
        out[i] = k
    return out


def np_ece(probs: np.ndarray, labels: np.ndarray, n_bins: int, norm: str = "l1") -> float:
    conf, pred = probs.max(1), probs.argmax(1)
    correct = (pred == labels).astype(float)
    b = np_bins_right(conf, n_bins)
    gaps, weights = [], []
    for k in range(n_bins):
        m = b == k
        if m.any():
            gaps.append(abs(conf[m].mean() - correct[m].mean()))
            weights.append(m.mean())
    gaps, weights = np.array(gaps), np.array(weights)
    if norm == "l1":
        return float((gaps * weights).sum())
    if norm == "l2":
        return float(np.sqrt((gaps**2 * weights).sum()))
    return float(gaps.max())


def np_classwise(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    out = []
    for c in range(probs.shape[1]):
        p, y = probs[:, c], (labels == c).astype(float)
        b = np_bins_right(p, n_bins)
        out.append(sum(abs(p[b == k].sum() - y[b == k].sum()) for k in range(n_bins)) / len(p))
    return float(np.mean(out))


def random_inputs(
    seed: int, n: int = 500, c: int = 4, scale: float = 3.0
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g, dtype=torch.float64) * scale
    labels = torch.multinomial(torch.softmax(logits / 1.5, -1), 1, generator=g).squeeze(1)
    return torch.softmax(logits, -1), labels


# ---------------------------------------------------------------- formulas
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_bins", [1, 5, 15])
@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_ece_matches_numpy_definition(seed: int, n_bins: int, norm: str) -> None:
    probs, labels = random_inputs(seed, n=300)
    got = float(expected_calibration_error(probs, labels, n_bins=n_bins, norm=norm))
    assert got == pytest.approx(np_ece(probs.numpy(), labels.numpy(), n_bins, norm), abs=TOL)


@pytest.mark.parametrize("seed", [0, 3])
def test_classwise_matches_numpy_definition(seed: int) -> None:
    probs, labels = random_inputs(seed, n=200, c=5)
    got = float(classwise_ece(probs, labels, n_bins=10))
    assert got == pytest.approx(np_classwise(probs.numpy(), labels.numpy(), 10), abs=TOL)


def test_brier_nll_accuracy_match_numpy() -> None:
    probs, labels = random_inputs(0, n=400, c=3)
    p, y = probs.numpy(), labels.numpy()
    onehot = np.eye(3)[y]
    assert float(brier_score(probs, labels)) == pytest.approx(((p - onehot) ** 2).sum(1).mean(), abs=1e-12)
    conf, correct = p.max(1), (p.argmax(1) == y)
    assert float(brier_score(probs, labels, top_label=True)) == pytest.approx(((conf - correct) ** 2).mean())
    assert float(negative_log_likelihood(probs, labels)) == pytest.approx(
        -np.log(p[np.arange(400), y]).mean()
    )
    assert float(accuracy(probs, labels)) == pytest.approx(correct.mean())


def test_nll_clips_zero_probability_at_dtype_eps() -> None:
    probs = torch.tensor([[1.0, 0.0]], dtype=torch.float32)
    assert float(negative_log_likelihood(probs, torch.tensor([1]))) == pytest.approx(-math.log(2**-23))


def test_from_logits_equals_softmax_input() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 5, generator=g, dtype=torch.float64) * 4
    labels = torch.randint(0, 5, (300,), generator=g)
    probs = torch.softmax(logits, -1)
    for fn in (expected_calibration_error, classwise_ece, brier_score, debiased_ece, smooth_ece):
        assert float(fn(logits, labels, from_logits=True)) == pytest.approx(
            float(fn(probs, labels)), abs=1e-12
        )
    nll = float(negative_log_likelihood(logits, labels, from_logits=True))
    assert nll == pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels)), abs=1e-12)


def test_debiased_matches_formula_with_uniform_bins() -> None:
    probs, labels = random_inputs(5, n=1000)
    conf, correct = probs.max(1).values.numpy(), (probs.argmax(1) == labels).double().numpy()
    b = np_bins_right(conf, 10)
    sq = 0.0
    for k in range(10):
        m = b == k
        nk = m.sum()
        if nk >= 2:
            acc = correct[m].mean()
            sq += nk / len(conf) * ((conf[m].mean() - acc) ** 2 - acc * (1 - acc) / (nk - 1))
    want = math.sqrt(max(sq, 0.0))
    assert float(debiased_ece(probs, labels, n_bins=10, binning="uniform")) == pytest.approx(want, abs=TOL)


def test_quantile_bins_have_equal_mass() -> None:
    probs, labels = random_inputs(1, n=1500)
    rb = reliability_bins(probs, labels, n_bins=15, binning="quantile")
    assert rb.count.tolist() == [100.0] * 15
    assert float(rb.lower[0]) == 0.0 and float(rb.upper[-1]) == 1.0


# ---------------------------------------------------------------- edge conventions
def test_the_default_bin_count_is_the_configs_and_every_binned_default_refers_to_it() -> None:
    """One bin count: ``calibration.n_bins`` of the shipped config equals :data:`DEFAULT_N_BINS`, every public
    ``n_bins`` default agrees with it, and no source file writes a bin count of its own as a default (a literal
    default would agree today and stay behind when the constant changes)."""
    import inspect
    import re

    from omegaconf import OmegaConf

    import xcal.calibration
    import xcal.metrics
    from xcal.calibration.rescore import rescore
    from xcal.metrics import DEFAULT_N_BINS
    from xcal.metrics.brier_decomposition import brier_decomposition
    from xcal.models.mixture import MixtureClassifier
    from xcal.models.module import EncoderClassifier

    root = Path(__file__).resolve().parents[2]
    assert OmegaConf.load(root / "conf" / "calibration" / "default.yaml").n_bins == DEFAULT_N_BINS
    defaults = {}
    for owner in (xcal.metrics, xcal.calibration):
        for name in owner.__all__:
            target = getattr(owner, name)
            if callable(target):
                parameter = inspect.signature(target).parameters.get("n_bins")
                if parameter is not None and parameter.default is not inspect.Parameter.empty:
                    defaults[name] = parameter.default
    for target in (rescore, brier_decomposition, MixtureClassifier, EncoderClassifier):
        defaults[target.__name__] = inspect.signature(target).parameters["n_bins"].default
    assert len(defaults) >= 12 and set(defaults.values()) == {DEFAULT_N_BINS}, defaults
    literal = re.compile(r"n_bins(: int)? = \d|[\"']n_bins[\"'], \d|else \d+\b.*n_bins|n_bins.*else \d+\b")
    written = [f"{path.relative_to(root)}:{i}" for path in sorted((root / "src").rglob("*.py"))
               for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if literal.search(line)]
    assert written == [], written


def test_bin_edges_right_closed_zero_in_first_one_in_last() -> None:
    # top-label confidences on the dyadic edges 0.25, 0.5, 0.75, exactly 1.0, and just below 0.75
    rows = [
        [0.25] * 4,
        [0.5, 0.5, 0, 0],
        [0.75, 0.25, 0, 0],
        [1.0, 0, 0, 0],
        [0.75 - 1e-12, 0.25 + 1e-12, 0, 0],
    ]
    probs = torch.tensor(rows, dtype=torch.float64)
    labels = torch.zeros(5, dtype=torch.long)
    rb = reliability_bins(probs, labels, n_bins=4)
    # (0, .25], (.25, .5], (.5, .75], (.75, 1]
    assert rb.count.tolist() == [1.0, 1.0, 2.0, 1.0]
    rb_left = reliability_bins(probs, labels, n_bins=4, closed="left")
    # [0, .25), [.25, .5), [.5, .75), [.75, 1]
    assert rb_left.count.tolist() == [0.0, 1.0, 2.0, 2.0]
    assert len(rb.count) == 4  # no hidden extra bin for 1.0 (torchmetrics issue #3510)
    assert rb.lower.tolist() == [0.0, 0.25, 0.5, 0.75] and rb.upper.tolist() == [0.25, 0.5, 0.75, 1.0]


def test_binary_confidence_zero_goes_to_first_bin() -> None:
    # classwise bins see every column, including probabilities exactly 0 and 1
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    assert float(classwise_ece(probs, labels, n_bins=3)) == 0.0
    assert float(expected_calibration_error(probs, labels, n_bins=3)) == 0.0


def test_single_prediction_and_single_class() -> None:
    probs = torch.tensor([[0.3, 0.7]])
    assert float(expected_calibration_error(probs, torch.tensor([0]))) == pytest.approx(0.7)
    assert float(expected_calibration_error(probs, torch.tensor([1]))) == pytest.approx(0.3)
    ones = torch.ones(4, 1)
    r = calibration_report(ones, torch.zeros(4, dtype=torch.long), bootstrap=10)
    assert r["ece"] == 0.0 and r["accuracy"] == 1.0 and r["brier"] == 0.0 and r["nll"] == 0.0


def test_all_labels_one_class() -> None:
    probs, _ = random_inputs(2, n=100)
    labels = torch.full((100,), 2)
    want = np_ece(probs.numpy(), labels.numpy(), 15)
    assert float(expected_calibration_error(probs, labels)) == pytest.approx(want, abs=TOL)


def test_ignore_index_drops_positions() -> None:
    probs, labels = random_inputs(3, n=50)
    padded_p = torch.cat([probs, torch.full((7, 4), 0.25, dtype=torch.float64)]).view(1, 57, 4)
    padded_y = torch.cat([labels, torch.full((7,), -100)]).view(1, 57)
    for fn in (expected_calibration_error, classwise_ece, brier_score, negative_log_likelihood):
        assert float(fn(padded_p, padded_y, ignore_index=-100)) == pytest.approx(float(fn(probs, labels)))


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 60),
    st.integers(1, 6),
    st.integers(1, 20),
    st.integers(0, 2**31 - 1),
    st.booleans(),
)
def test_property_bounds_and_invariants(n: int, c: int, n_bins: int, seed: int, discrete: bool) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g, dtype=torch.float64) * 5
    if discrete:  # many exact ties and confidences on bin edges
        logits = logits.round()
    probs = torch.softmax(logits, -1)
    labels = torch.randint(0, c, (n,), generator=g)
    ece = float(expected_calibration_error(probs, labels, n_bins=n_bins))
    mce = float(expected_calibration_error(probs, labels, n_bins=n_bins, norm="max"))
    rms = float(expected_calibration_error(probs, labels, n_bins=n_bins, norm="l2"))
    assert 0.0 <= ece <= rms + 1e-12 <= mce + 2e-12 <= 1.0 + 2e-12
    assert ece == pytest.approx(np_ece(probs.numpy(), labels.numpy(), n_bins), abs=TOL)
    # ECE with one bin is |mean confidence - accuracy|
    one = float(expected_calibration_error(probs, labels, n_bins=1))
    conf, correct = probs.max(1).values, (probs.argmax(1) == labels).double()
    assert one == pytest.approx(abs(float(conf.mean() - correct.mean())), abs=1e-12)
    assert 0.0 <= float(brier_score(probs, labels)) <= 2.0
    assert 0.0 <= float(debiased_ece(probs, labels, n_bins=n_bins)) <= 1.0


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("probs", "labels", "kwargs", "match"),
    [
        (torch.randn(5, 3), torch.zeros(5, dtype=torch.long), {}, "pass from_logits=True"),
        (torch.full((5, 3), 0.5), torch.zeros(5, dtype=torch.long), {}, "sum to 1.*from_logits=True"),
        (torch.tensor([[0.5, float("nan")]]), torch.tensor([0]), {}, "NaN or inf"),
        (torch.tensor([[0.5, float("inf")]]), torch.tensor([0]), {"from_logits": True}, "NaN or inf"),
        (torch.full((2, 2), 0.5), torch.tensor([0, 2]), {}, r"labels out of range.*\[0, 1\]"),
        (torch.full((2, 2), 0.5), torch.tensor([-1, 0]), {}, "labels out of range"),
        (torch.full((2, 2), 0.5), torch.tensor([0, 1, 1]), {}, "shape mismatch"),
        (torch.full((2,), 0.5), torch.tensor([0, 1]), {}, r"shape \(N, C\).*two columns"),
        (torch.full((2, 2), 0.5), torch.tensor([0.0, 1.0]), {}, "integer"),
        (torch.full((2, 2), 0.5), torch.tensor([0, 1]), {"n_bins": 0}, "n_bins must be an integer >= 1"),
        (torch.full((2, 2), 0.5), torch.tensor([0, 1]), {"n_bins": 2.0}, "n_bins"),
        (torch.full((2, 2), 0.5), torch.tensor([0, 1]), {"norm": "l3"}, "norm must be one of"),
        (torch.full((2, 2), 0.5), torch.tensor([0, 1]), {"binning": "kmeans"}, "binning must be one of"),
        (torch.full((2, 2), 0.5), torch.tensor([-100, -100]), {"ignore_index": -100}, "no predictions"),
    ],
)
def test_bad_input_raises_value_error(
    probs: torch.Tensor, labels: torch.Tensor, kwargs: dict, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        expected_calibration_error(probs, labels, **kwargs)


@pytest.mark.parametrize(
    "fn", [classwise_ece, brier_score, negative_log_likelihood, smooth_ece, debiased_ece]
)
def test_every_metric_refuses_logits(fn: Callable[..., torch.Tensor]) -> None:
    with pytest.raises(ValueError, match="from_logits=True"):
        fn(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))


def test_float32_softmax_rows_are_accepted() -> None:
    logits = torch.randn(1000, 50, generator=torch.Generator().manual_seed(0)) * 10
    expected_calibration_error(torch.softmax(logits, -1), torch.zeros(1000, dtype=torch.long))


# ---------------------------------------------------------------- report and diagram
def test_calibration_report_keys_and_consistency() -> None:
    probs, labels = random_inputs(4, n=800)
    r = calibration_report(probs, labels, n_bins=10, bootstrap=200, seed=0)
    assert list(r) == ["n", "accuracy", "ece", "mce", "rmsce", "adaptive_ece", "classwise_ece", "brier",
                       "brier_top_label", "nll", "debiased_ece", "smooth_ece", "ece_ci_low", "ece_ci_high",
                       "brier_ci_low", "brier_ci_high"]
    assert all(isinstance(v, float) for k, v in r.items() if k != "n") and r["n"] == 800
    json.dumps(r)
    assert r["ece"] == pytest.approx(float(expected_calibration_error(probs, labels, 10)), abs=1e-12)
    assert r["mce"] == pytest.approx(float(expected_calibration_error(probs, labels, 10, "max")), abs=1e-12)
    assert r["rmsce"] == pytest.approx(float(expected_calibration_error(probs, labels, 10, "l2")), abs=1e-12)
    ada = float(expected_calibration_error(probs, labels, 10, binning="quantile"))
    assert r["adaptive_ece"] == pytest.approx(ada, abs=1e-12)
    assert r["classwise_ece"] == pytest.approx(float(classwise_ece(probs, labels, 10)), abs=1e-12)
    assert r["debiased_ece"] == pytest.approx(float(debiased_ece(probs, labels, 10)), abs=1e-12)
    assert r["smooth_ece"] == pytest.approx(float(smooth_ece(probs, labels)), abs=1e-12)
    assert r["brier_top_label"] == pytest.approx(float(brier_score(probs, labels, top_label=True)), abs=1e-12)
    assert r["ece_ci_low"] <= r["ece"] <= r["ece_ci_high"]
    assert r["brier_ci_low"] <= r["brier"] <= r["brier_ci_high"]
    assert list(calibration_report(probs, labels, bootstrap=0)) == list(r)[:-4]
    only = calibration_report(probs, labels, n_bins=10, bootstrap=200, seed=0, metrics=("brier", "accuracy"))
    assert only == {"n": 800, "brier": r["brier"], "accuracy": r["accuracy"], "brier_ci_low": r["brier_ci_low"],
                    "brier_ci_high": r["brier_ci_high"]}


def test_calibration_report_seed_zero_is_a_seed() -> None:
    probs, labels = random_inputs(4, n=300)
    a = calibration_report(probs, labels, bootstrap=100, seed=0)
    b = calibration_report(probs, labels, bootstrap=100, seed=0)
    c = calibration_report(probs, labels, bootstrap=100, seed=1)
    assert a == b and a["ece_ci_low"] != c["ece_ci_low"]


def test_reliability_diagram_writes_png(tmp_path: Path) -> None:
    probs, labels = random_inputs(0, n=300)
    out = plot_reliability_diagram(probs, labels, tmp_path / "sub" / "rd.png", n_bins=10, title="en")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # an empty bin and a single prediction are drawable too
    plot_reliability_diagram(torch.tensor([[0.1, 0.9]]), torch.tensor([1]), tmp_path / "one.png")
