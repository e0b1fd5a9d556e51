"""Bootstrap intervals: the vectorised path equals resampling one by one; seeds; coverage sanity."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from xcal.metrics import (
    accuracy,
    assign_bins,
    bootstrap_interval,
    brier_score,
    classwise_ece,
    debiased_ece,
    expected_calibration_error,
    negative_log_likelihood,
    quantile_edges,
    resample_indices,
    resampled_metrics,
    resampled_quantile_bins,
    smooth_ece,
)


def data(seed: int = 0, n: int = 400, c: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g, dtype=torch.float64) * 3
    labels = torch.multinomial(torch.softmax(logits / 2, -1), 1, generator=g).squeeze(1)
    return torch.softmax(logits, -1), labels


def one_by_one(
    fn: Callable[..., torch.Tensor],
    probs: torch.Tensor,
    labels: torch.Tensor,
    r: int,
    seed: int,
    level: float = 0.95,
    **kw: object,
) -> tuple[float, float]:
    """Independent reference: the same draws as the vectorised path (one randint call), evaluated per row."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(labels), (r, len(labels)), generator=gen)
    vals = torch.tensor([float(fn(probs[i], labels[i], **kw)) for i in idx], dtype=torch.float64)
    a = (1 - level) / 2
    q = torch.quantile(vals, torch.tensor([a, 1 - a], dtype=torch.float64))
    return float(q[0]), float(q[1])


@pytest.mark.parametrize(
    ("fn", "kw"),
    [
        (expected_calibration_error, {}),
        (expected_calibration_error, {"norm": "max", "n_bins": 10}),
        (expected_calibration_error, {"norm": "l2"}),
        (debiased_ece, {"binning": "uniform"}),
        (classwise_ece, {"n_bins": 5}),
        (brier_score, {}),
        (brier_score, {"top_label": True}),
        (negative_log_likelihood, {}),
        (accuracy, {}),
    ],
)
def test_vectorised_equals_one_by_one(fn: Callable[..., torch.Tensor], kw: dict) -> None:
    probs, labels = data(n=250)
    got = bootstrap_interval(fn, probs, labels, n_resamples=80, seed=3, **kw)
    want = one_by_one(fn, probs, labels, 80, 3, **kw)
    assert got.low == pytest.approx(want[0], abs=1e-12) and got.high == pytest.approx(want[1], abs=1e-12)


def test_fallback_for_sample_dependent_metrics() -> None:
    probs, labels = data(n=80)
    for fn, kw in ((expected_calibration_error, {"binning": "quantile"}), (smooth_ece, {})):
        lo, hi = bootstrap_interval(fn, probs, labels, n_resamples=12, seed=0, **kw)
        assert lo <= float(fn(probs, labels, **kw)) + 0.05 and lo <= hi


def test_seed_zero_is_reproducible_and_seeds_differ() -> None:
    probs, labels = data()
    a = bootstrap_interval(expected_calibration_error, probs, labels, n_resamples=100, seed=0)
    assert a == bootstrap_interval(expected_calibration_error, probs, labels, n_resamples=100, seed=0)
    assert a != bootstrap_interval(expected_calibration_error, probs, labels, n_resamples=100, seed=1)


def test_interval_brackets_estimate_and_shrinks_with_n() -> None:
    small, large = data(1, n=200), data(1, n=5000)
    widths = []
    for probs, labels in (small, large):
        lo, hi = bootstrap_interval(brier_score, probs, labels, n_resamples=300)
        assert lo <= float(brier_score(probs, labels)) <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 3


def test_chunking_does_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import xcal.metrics.bootstrap as bs

    probs, labels = data(n=300)
    full = bootstrap_interval(expected_calibration_error, probs, labels, n_resamples=50, seed=4)
    monkeypatch.setattr(bs, "_MAX_CHUNK_ENTRIES", 300 * 7)  # chunks of 7 resamples
    chunked = bootstrap_interval(expected_calibration_error, probs, labels, n_resamples=50, seed=4)
    assert full.low == pytest.approx(chunked.low, abs=0.05)  # different draws, same distribution
    assert chunked == bootstrap_interval(expected_calibration_error, probs, labels, n_resamples=50, seed=4)


@pytest.mark.parametrize(("kw", "match"), [({"n_resamples": 0}, "n_resamples"), ({"level": 1.0}, "level")])
def test_bad_arguments(kw: dict, match: str) -> None:
    probs, labels = data(n=10)
    with pytest.raises(ValueError, match=match):
        bootstrap_interval(expected_calibration_error, probs, labels, **kw)


@pytest.mark.parametrize("max_chunk_entries", [16_000_000, 400 * 7])
def test_resampled_metrics_equal_each_metric_on_each_drawn_resample(max_chunk_entries: int) -> None:
    """Several metrics on shared resamples (the report's path): each value is the metric evaluated directly on
    the resample :func:`resample_indices` drew, adaptive ECE included (its bins recomputed per resample)."""
    probs, labels = data(n=400, c=4)
    estimators = {
        "ece": (expected_calibration_error, {"n_bins": 10, "norm": "l1"}),
        "mce": (expected_calibration_error, {"n_bins": 10, "norm": "max"}),
        "adaptive_ece": (expected_calibration_error, {"n_bins": 10, "norm": "l1", "binning": "quantile"}),
        "classwise_ece": (classwise_ece, {"n_bins": 10}),
        "brier": (brier_score, {}),
        "nll": (negative_log_likelihood, {}),
        "accuracy": (accuracy, {}),
    }
    got = resampled_metrics(probs, labels, estimators, 20, seed=7, max_chunk_entries=max_chunk_entries)
    assert list(got) == list(estimators)
    idx = torch.cat(list(resample_indices(len(labels), 20, 7, max_chunk_entries=max_chunk_entries)))
    for name, (fn, kw) in estimators.items():
        want = torch.stack([fn(probs[i], labels[i], **kw) for i in idx]).double()
        assert torch.allclose(got[name], want, rtol=0, atol=1e-12), name


def test_resampled_quantile_bins_equal_quantile_edges_row_by_row() -> None:
    conf = data(n=101)[0].max(-1).values
    rows = torch.stack([conf, conf.flip(0), torch.full_like(conf, 0.5)])  # the last: every confidence tied
    bins, m = resampled_quantile_bins(rows, 15)
    assert m == 15
    for row, got in zip(rows, bins, strict=True):
        assert torch.equal(got, assign_bins(row, quantile_edges(row, 15)))


def test_resampled_metrics_refuses_a_metric_without_a_vectorised_bootstrap() -> None:
    probs, labels = data(n=20)
    with pytest.raises(ValueError, match="smooth"):
        resampled_metrics(probs, labels, {"smooth": (smooth_ece, {})}, 5, seed=0)
