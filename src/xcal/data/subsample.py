"""Nested, optionally class-stratified subsets: size 1000 is a prefix of size 4000.

For one data seed the training set is ordered once; size N takes the first N examples of that
order. Comparing sizes then compares *more data*, not *different data*.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def nested_order(n_examples: int, data_seed: int, labels: Sequence[int] | None = None) -> np.ndarray:
    """A permutation of ``range(n_examples)`` whose every prefix is a valid subset.

    With ``labels``, each class is shuffled on its own and the classes are interleaved by their
    fractional rank ``(rank + u_c) / n_c`` (``u_c`` a per-class random offset in [0, 1)), so any
    prefix of length N holds each class c within one example of ``N * n_c / n``.
    """
    rng = np.random.default_rng(data_seed)
    if labels is None:
        return rng.permutation(n_examples)
    labels = np.asarray(labels)
    if labels.shape != (n_examples,):
        raise ValueError(f"labels has shape {labels.shape}, expected ({n_examples},)")
    keys = np.empty(n_examples, dtype=np.float64)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        members = members[rng.permutation(len(members))]
        keys[members] = (np.arange(len(members)) + rng.random()) / len(members)
    # Stable sort; ties between classes broken by a random permutation for symmetry.
    tie_break = rng.permutation(n_examples)
    return np.lexsort((tie_break, keys))


def nested_subset(
    n_examples: int, size: int | None, data_seed: int, labels: Sequence[int] | None = None
) -> np.ndarray:
    """Indices of the first ``size`` examples of the nested order (all when ``size`` is None)."""
    if size is None:
        size = n_examples
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if size > n_examples:
        raise ValueError(f"size {size} exceeds the {n_examples} available examples")
    return nested_order(n_examples, data_seed, labels)[:size]
