"""The report's bootstrap: seeds that do not depend on where a study is checked out, percentile intervals of
resampled statistics, and each eval set's examples resampled with :func:`xcal.metrics.resampled_metrics`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

import xcal.metrics
from xcal.report.registry import EXAMPLE_RESAMPLED, METRICS

#: Confidence level of every interval a report shows.
LEVEL = 0.95
#: Example resamples drawn per eval set; each outer (seed) resample picks one of them at random per job.
EXAMPLE_RESAMPLES = 200
#: Chunk size of the example draws (it fixes the draws: the committed findings depend on it).
_MAX_CHUNK_ENTRIES = 4_000_000


def stable_seed(*parts: Any) -> int:
    """A 31-bit seed from ``parts`` (CRC-32 of their text): the same on every machine and Python run."""
    return zlib.crc32("\x1f".join(map(str, parts)).encode()) & 0x7FFFFFFF


def interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of the finite ``values`` at ``level`` (NaN, NaN when none is finite)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


def excludes_zero(low: float, high: float) -> bool:
    """Whether the interval ``[low, high]`` is finite and lies on one side of 0."""
    return bool(np.isfinite(low) and np.isfinite(high) and (low > 0 or high < 0))


def example_replicates(
    probs: np.ndarray, labels: np.ndarray, metrics: Sequence[str], *, n_bins: int = 15, n_resamples: int = 200,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Each metric on ``n_resamples`` bootstrap resamples of one eval set's examples (``(R,)`` arrays).

    The resamples are :func:`xcal.metrics.resample_indices` (seed ``seed``), the same for every metric, each
    metric recomputed by its registry estimator with the job's ``n_bins``. Metrics outside
    :data:`~xcal.report.registry.EXAMPLE_RESAMPLED` are left out.
    """
    wanted = [m for m in metrics if m in EXAMPLE_RESAMPLED]
    if not wanted:
        return {}
    estimators = {m: (getattr(xcal.metrics, METRICS[m].estimator), {"n_bins": n_bins, **METRICS[m].kwargs})
                  for m in wanted}
    with _torch_threads(1 if n_resamples * len(labels) < _MAX_CHUNK_ENTRIES else torch.get_num_threads()):
        values = xcal.metrics.resampled_metrics(
            torch.as_tensor(probs, dtype=torch.float64), torch.as_tensor(labels, dtype=torch.int64), estimators,
            n_resamples, seed, max_chunk_entries=_MAX_CHUNK_ENTRIES)
    return {m: v.numpy() for m, v in values.items()}


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Small tensors: one thread avoids the synchronisation that dominates (and thrashes on a busy machine)."""
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != before:
            torch.set_num_threads(before)
