"""Nested subsets: prefixes, determinism, stratification."""

from __future__ import annotations

import numpy as np
import pytest

from xcal.data.subsample import nested_order, nested_subset


def test_sizes_are_nested_for_one_data_seed() -> None:
    small = nested_subset(10_000, 1000, data_seed=3)
    large = nested_subset(10_000, 4000, data_seed=3)
    assert set(small) <= set(large)
    assert np.array_equal(large[:1000], small)


def test_order_is_a_permutation_and_deterministic() -> None:
    order = nested_order(5000, data_seed=7)
    assert sorted(order.tolist()) == list(range(5000))
    assert np.array_equal(order, nested_order(5000, data_seed=7))
    assert not np.array_equal(order, nested_order(5000, data_seed=8))


def test_data_seed_zero_is_a_real_seed() -> None:
    assert not np.array_equal(nested_order(100, 0), np.arange(100))


@pytest.mark.parametrize("size", [10, 37, 100, 999, 4000])
def test_stratified_prefix_keeps_the_label_distribution(size: int) -> None:
    rng = np.random.default_rng(0)
    labels = rng.choice(4, size=8000, p=[0.5, 0.3, 0.15, 0.05])
    subset = nested_subset(len(labels), size, data_seed=1, labels=labels)
    counts = np.bincount(labels[subset], minlength=4)
    expected = size * np.bincount(labels, minlength=4) / len(labels)
    assert np.all(np.abs(counts - expected) <= 1.0 + 1e-9), (counts, expected)
    bigger = nested_subset(len(labels), size + 500, data_seed=1, labels=labels)
    assert np.array_equal(bigger[:size], subset)


def test_bad_sizes() -> None:
    with pytest.raises(ValueError, match="size must be >= 0"):
        nested_subset(10, -1, 0)
    with pytest.raises(ValueError, match="exceeds the 10 available"):
        nested_subset(10, 11, 0)
    assert len(nested_subset(10, None, 0)) == 10
