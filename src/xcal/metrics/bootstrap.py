r"""Percentile bootstrap intervals over examples (Efron & Tibshirani, 1993, ch. 13).

Resample the N predictions with replacement ``n_resamples`` times, evaluate the metric on each
resample, and report the :math:`(1-\text{level})/2` and :math:`(1+\text{level})/2` percentiles of the
resampled values (linear interpolation, as ``numpy.percentile``).

For metrics that are a fixed function of per-example features summed over examples -- top-label ECE /
RMSCE / MCE / debiased ECE with uniform bins, classwise ECE, Brier score, NLL, accuracy -- a resample
is fully described by how often it draws each example. The draw counts form a matrix
:math:`W \in \mathbb{N}^{R \times N}` (one ``bincount``), every resample's sufficient statistics are
:math:`W X` for the ``(N, K)`` feature matrix :math:`X`, and one vectorised ``_compute`` gives all
``R`` values: no Python loop over resamples. Quantile-binned and smooth ECE have sample-dependent bins
or bandwidths, so :func:`bootstrap_interval` falls back to evaluating each resample in turn;
:func:`resampled_metrics` (several metrics on shared resamples) recomputes quantile bins for all resamples
at once with a batched sort (:func:`~xcal.metrics.binning.resampled_quantile_bins`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from xcal.metrics._inputs import Prepared, check_ignore_index, prepare
from xcal.metrics.binning import DEFAULT_N_BINS, assign_bins, resampled_quantile_bins, top_label, uniform_edges
from xcal.metrics.calibration_error import (
    _ce_compute,
    _check_args,
    _classwise_compute,
    _debiased_compute,
    classwise_ece,
    debiased_ece,
    expected_calibration_error,
)
from xcal.metrics.scores import (
    _brier_per_example,
    _nll_per_example,
    accuracy,
    brier_score,
    negative_log_likelihood,
)

#: Upper bound on the number of float64 entries of one chunk of the draw-count matrix (~128 MB).
_MAX_CHUNK_ENTRIES = 16_000_000


class BootstrapInterval(NamedTuple):
    """A percentile bootstrap interval."""

    low: float
    high: float


# A decomposition: (prepared inputs, metric kwargs) -> (features (N, K), compute (R, K) sums -> (R,)).
_Decomposition = Callable[[Prepared, dict[str, Any]], tuple[Tensor, Callable[[Tensor], Tensor]]]


def _one_hot_features(bins: Tensor, n_bins: int, columns: list[Tensor]) -> Tensor:
    """``(N, len(columns) * n_bins)`` features: block ``q``, column ``j`` is ``columns[q] * 1[bin == j]``."""
    n = bins.shape[0]
    out = torch.zeros(n, len(columns) * n_bins, dtype=torch.float64)
    rows = torch.arange(n)
    for q, col in enumerate(columns):
        out[rows, q * n_bins + bins] = col
    return out


def _ece_decomposition(p: Prepared, kw: dict[str, Any]) -> tuple[Tensor, Callable[[Tensor], Tensor]] | None:
    if kw.get("binning", "uniform") != "uniform":
        return None
    n_bins, norm = kw.get("n_bins", DEFAULT_N_BINS), kw.get("norm", "l1")
    conf, correct = top_label(p.probs, p.labels)
    bins = assign_bins(conf, uniform_edges(n_bins), kw.get("closed", "right"))
    feats = _one_hot_features(bins, n_bins, [torch.ones_like(conf), conf, correct])
    return feats, lambda s: _ce_compute(*s.view(-1, 3, n_bins).unbind(1), norm=norm)


def _debiased_decomposition(
    p: Prepared, kw: dict[str, Any]
) -> tuple[Tensor, Callable[[Tensor], Tensor]] | None:
    if kw.get("binning", "quantile") != "uniform":
        return None
    n_bins = kw.get("n_bins", DEFAULT_N_BINS)
    conf, correct = top_label(p.probs, p.labels)
    bins = assign_bins(conf, uniform_edges(n_bins), kw.get("closed", "right"))
    feats = _one_hot_features(bins, n_bins, [torch.ones_like(conf), conf, correct])
    return feats, lambda s: _debiased_compute(*s.view(-1, 3, n_bins).unbind(1))


def _classwise_decomposition(p: Prepared, kw: dict[str, Any]) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    n_bins = kw.get("n_bins", DEFAULT_N_BINS)
    n, c = p.probs.shape
    bins = assign_bins(p.probs, uniform_edges(n_bins), kw.get("closed", "right"))
    g = c * n_bins
    cols = bins + torch.arange(c) * n_bins
    feats = torch.zeros(n, 3 * g, dtype=torch.float64)
    rows = torch.arange(n)[:, None]
    feats[rows, cols] = 1.0
    feats[rows, g + cols] = p.probs
    feats[torch.arange(n), 2 * g + cols.gather(1, p.labels[:, None]).squeeze(1)] = 1.0

    def compute(s: Tensor) -> Tensor:
        count, prob_sum, target_sum = s.view(-1, 3, c, n_bins).unbind(1)
        return _classwise_compute(count, prob_sum, target_sum)

    return feats, compute


def _mean_decomposition(per_example: Callable[[Prepared, dict[str, Any]], Tensor]) -> _Decomposition:
    def decompose(p: Prepared, kw: dict[str, Any]) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
        feats = per_example(p, kw)[:, None]
        return feats, lambda s: s[:, 0] / p.n

    return decompose


_DECOMPOSITIONS: dict[Callable[..., Tensor], Callable[..., Any]] = {
    expected_calibration_error: _ece_decomposition,
    debiased_ece: _debiased_decomposition,
    classwise_ece: _classwise_decomposition,
    brier_score: _mean_decomposition(lambda p, kw: _brier_per_example(p, kw.get("top_label", False))),
    negative_log_likelihood: _mean_decomposition(lambda p, kw: _nll_per_example(p)),
    accuracy: _mean_decomposition(lambda p, kw: top_label(p.probs, p.labels)[1]),
}


def _check_bootstrap_args(n_resamples: int, level: float) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be an integer >= 1, got {n_resamples!r}")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")


def resample_indices(
    n: int, n_resamples: int, seed: int, *, max_chunk_entries: int = _MAX_CHUNK_ENTRIES
) -> Iterator[Tensor]:
    """The bootstrap draws: ``n_resamples`` resamples of ``n`` examples, yielded in chunks of ``(r, n)`` int64
    example indices from one ``torch.Generator`` seeded with ``seed`` (seed 0 is a seed).

    A chunk holds at most ``max_chunk_entries`` indices (at least one resample). The draws depend on the chunk
    size, so a caller whose numbers are committed keeps its own ``max_chunk_entries``.
    """
    gen = torch.Generator().manual_seed(int(seed))
    chunk = max(1, min(n_resamples, max_chunk_entries // max(n, 1)))
    for start in range(0, n_resamples, chunk):
        yield torch.randint(n, (min(chunk, n_resamples - start), n), generator=gen)


def index_counts(idx: Tensor, n: int) -> Tensor:
    """``(R, n)`` float64 matrix of how often each of ``n`` examples is drawn by each row of ``idx`` ``(R, M)``."""
    r = idx.shape[0]
    offsets = (torch.arange(r) * n)[:, None]
    return torch.bincount((idx + offsets).view(-1), minlength=r * n).view(r, n).double()


def resampled_values(
    decompositions: list[tuple[Tensor, Callable[[Tensor], Tensor]]],
    n: int,
    n_resamples: int,
    seed: int,
) -> list[Tensor]:
    """Evaluate several decomposed metrics on the same ``n_resamples`` resamples of ``n`` examples.

    Args:
        decompositions: ``(features (N, K), compute)`` pairs.
        n: number of examples N.
        n_resamples: number of bootstrap resamples R.
        seed: seed of the ``torch.Generator`` that draws the resamples (seed 0 is a seed).

    Returns:
        One ``(R,)`` float64 tensor per decomposition.
    """
    outs: list[list[Tensor]] = [[] for _ in decompositions]
    for idx in resample_indices(n, n_resamples, seed):
        w = index_counts(idx, n)
        for out, (feats, compute) in zip(outs, decompositions, strict=True):
            out.append(compute(w @ feats))
    return [torch.cat(o) for o in outs]


def _quantile_ece_resamples(p: Prepared, kw: Mapping[str, Any], idx: Tensor) -> Tensor:
    """Equal-mass-bin ECE of every resample (row of ``idx``) at once, its bins recomputed per resample."""
    conf, correct = top_label(p.probs, p.labels)
    c, k = conf[idx], correct[idx]
    bins, m = resampled_quantile_bins(c, kw.get("n_bins", DEFAULT_N_BINS), kw.get("closed", "right"))
    zeros = torch.zeros(idx.shape[0], m, dtype=torch.float64)
    count = zeros.scatter_add(1, bins, torch.ones_like(c))
    conf_sum = zeros.scatter_add(1, bins, c)
    correct_sum = zeros.scatter_add(1, bins, k)
    return _ce_compute(count, conf_sum, correct_sum, norm=kw.get("norm", "l1"))


def resampled_metrics(
    probs: Tensor,
    labels: Tensor,
    estimators: Mapping[str, tuple[Callable[..., Tensor], Mapping[str, Any]]],
    n_resamples: int,
    seed: int,
    *,
    max_chunk_entries: int = _MAX_CHUNK_ENTRIES,
) -> dict[str, Tensor]:
    """Several metrics on the same ``n_resamples`` bootstrap resamples of one set of predictions.

    Args:
        probs: ``(N, C)`` probabilities.
        labels: ``(N,)`` integer labels.
        estimators: name -> ``(metric_fn, kwargs)``, e.g. ``{"mce": (expected_calibration_error,
            {"norm": "max", "n_bins": 10})}``; ``metric_fn`` has a decomposition (see the module docstring) or is
            :func:`expected_calibration_error` with ``binning="quantile"`` (bins recomputed per resample).
        n_resamples: number of resamples R.
        seed: seed of the draws (:func:`resample_indices`).
        max_chunk_entries: chunk size of the draws (see :func:`resample_indices`).

    Returns:
        name -> ``(R,)`` float64 tensor, in the order of ``estimators``.
    """
    p = prepare(probs, labels)
    decs, quantile = {}, {}
    for name, (fn, kw) in estimators.items():
        if fn is expected_calibration_error and kw.get("binning") == "quantile":
            quantile[name] = kw
            continue
        decompose = _DECOMPOSITIONS.get(fn)
        dec = decompose(p, dict(kw)) if decompose is not None else None
        if dec is None:
            raise ValueError(f"{name}: {getattr(fn, '__name__', fn)} with {dict(kw)} has no vectorised bootstrap")
        decs[name] = dec
    out: dict[str, list[Tensor]] = {name: [] for name in estimators}
    for idx in resample_indices(p.n, n_resamples, seed, max_chunk_entries=max_chunk_entries):
        if decs:
            counts = index_counts(idx, p.n)
            for name, (feats, compute) in decs.items():
                out[name].append(compute(counts @ feats))
        for name, kw in quantile.items():
            out[name].append(_quantile_ece_resamples(p, kw, idx))
    return {name: torch.cat(values) for name, values in out.items()}


def percentile_interval(values: Tensor, level: float) -> BootstrapInterval:
    """Percentile interval of ``values`` at confidence ``level`` (linear interpolation)."""
    alpha = (1.0 - level) / 2.0
    q = torch.quantile(values.to(torch.float64), torch.tensor([alpha, 1.0 - alpha], dtype=torch.float64))
    return BootstrapInterval(float(q[0]), float(q[1]))


def bootstrap_interval(
    metric_fn: Callable[..., Tensor],
    probs: Tensor,
    labels: Tensor,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    *,
    from_logits: bool = False,
    ignore_index: int | None = None,
    **metric_kwargs: Any,
) -> BootstrapInterval:
    r"""Percentile bootstrap interval of ``metric_fn`` over examples.

    .. math::
        \left[\hat\theta^*_{(\alpha/2)},\ \hat\theta^*_{(1-\alpha/2)}\right],\quad \alpha = 1 - \text{level},

    where :math:`\hat\theta^*_{(q)}` is the q-quantile of the metric over ``n_resamples`` resamples of
    the N predictions drawn with replacement (Efron & Tibshirani, 1993). Resamples come from a
    ``torch.Generator`` seeded with ``seed``, so the interval is reproducible. For the metrics of
    :mod:`xcal.metrics` with per-example sufficient statistics the resamples are evaluated at once
    (see the module docstring); any other callable ``metric_fn(probs, labels, **metric_kwargs)`` is
    evaluated once per resample.

    Args:
        metric_fn: a functional metric, e.g. :func:`expected_calibration_error`.
        probs: ``(N, C)`` probabilities (or logits with ``from_logits=True``).
        labels: ``(N,)`` integer labels.
        n_resamples: number of bootstrap resamples, >= 1.
        level: confidence level in (0, 1).
        seed: random seed.
        from_logits: ``probs`` are logits.
        ignore_index: label value to drop before resampling.
        **metric_kwargs: forwarded to ``metric_fn`` (e.g. ``n_bins=10``).

    Returns:
        ``BootstrapInterval(low, high)``.
    """
    _check_bootstrap_args(n_resamples, level)
    check_ignore_index(ignore_index)
    if "n_bins" in metric_kwargs:
        _check_args(metric_kwargs["n_bins"])
    p = prepare(probs, labels, from_logits=from_logits, ignore_index=ignore_index)
    decompose = _DECOMPOSITIONS.get(metric_fn)
    dec = decompose(p, metric_kwargs) if decompose is not None else None
    if dec is not None:
        values = resampled_values([dec], p.n, n_resamples, seed)[0]
        return percentile_interval(values, level)
    gen = torch.Generator().manual_seed(int(seed))
    vals = []
    for _ in range(n_resamples):
        idx = torch.randint(p.n, (p.n,), generator=gen)
        vals.append(float(metric_fn(p.probs[idx], p.labels[idx], **metric_kwargs)))
    return percentile_interval(torch.tensor(vals, dtype=torch.float64), level)
