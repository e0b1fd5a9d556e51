"""A mixture's per-task counts against each sampling rule's formula, nested sizes, and one-task batches."""

from __future__ import annotations

import numpy as np
import pytest

from xcal.data.mixture import SamplingRule, draw_order, mixture_counts, mixture_name, quotas
from xcal.data.resumable import TaskBatchSampler

# The embedded pair task and multiple-choice task's English training sets (VitaminC, Social IQa).
EMBEDDED = [48971, 1730]
RULES = [SamplingRule("proportional"), SamplingRule("capped", cap=10000), SamplingRule("capped", cap=500),
         SamplingRule("temperature", temperature=2.0), SamplingRule("temperature", temperature=5.0)]


def formula_rates(sizes: list[int], rule: SamplingRule) -> np.ndarray:
    """Each rule as the papers write it (T5 section 3.5.2; jiant's samplers), independently of the module."""
    n = np.asarray(sizes, dtype=float)
    weights = {"proportional": n, "capped": np.minimum(n, rule.cap or 0),
               "temperature": n ** (1 / (rule.temperature or 1))}[rule.kind]
    return weights / weights.sum()


def water_filled(sizes: list[int], rates: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """The quota by bisection on t, for each total at once: min(n_i, p_i t) summing to the total (a task that
    runs out keeps all its examples)."""
    n = np.asarray(sizes, dtype=float)
    totals = np.asarray(totals, dtype=float)
    low, high = np.zeros_like(totals), np.full_like(totals, n.sum() / rates.min())
    for _ in range(100):
        mid = (low + high) / 2
        below = np.minimum(n, rates * mid[:, None]).sum(1) < totals
        low, high = np.where(below, mid, low), np.where(below, high, mid)
    return np.minimum(n, rates * high[:, None])


@pytest.mark.parametrize("rule", RULES, ids=lambda r: mixture_name(["m"], r))
def test_rates_are_the_rules_formulas(rule: SamplingRule) -> None:
    for sizes in (EMBEDDED, [393, 5, 120, 7000]):
        assert rule.rates(sizes) == pytest.approx(formula_rates(sizes, rule), rel=1e-12)
    assert SamplingRule("temperature", temperature=1.0).rates(EMBEDDED) == pytest.approx(
        SamplingRule("proportional").rates(EMBEDDED))
    assert SamplingRule("capped", cap=10**9).rates(EMBEDDED) == pytest.approx(
        SamplingRule("proportional").rates(EMBEDDED))


def test_the_closed_form_quota_is_the_water_filled_one() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        sizes = rng.integers(1, 500, size=int(rng.integers(2, 7))).tolist()
        rates = rng.random(len(sizes)) ** 3 + 1e-3
        rates /= rates.sum()
        totals = rng.integers(0, sum(sizes) + 1, size=5)
        found = quotas(sizes, rates, totals)
        assert found.sum(1) == pytest.approx(totals, abs=1e-6)
        assert found == pytest.approx(water_filled(sizes, rates, totals), abs=1e-6)


def _check_counts(sizes: list[int], rule: SamplingRule, total: int) -> None:
    """Every prefix of the draws holds each task within Tijdeman's bound 1 - 1/(2(m-1)) of its quota (1/2 for two
    tasks: the quota rounded), and the counts are the draws of the longer sequence's prefix (sizes nest)."""
    m = len(sizes)
    bound = 1 - 1 / (2 * (m - 1)) + 1e-9
    order = draw_order(sizes, rule.rates(sizes), total)
    counts = np.cumsum(np.eye(m, dtype=int)[order], axis=0)  # counts of each prefix
    expected = water_filled(sizes, formula_rates(sizes, rule), np.arange(1, total + 1))
    assert np.abs(counts - expected).max() <= bound
    assert (counts <= np.asarray(sizes)).all()
    half = total // 2
    assert mixture_counts(sizes, rule, half) == counts[half - 1].tolist()
    assert (draw_order(sizes, rule.rates(sizes), half) == order[:half]).all()


@pytest.mark.parametrize("rule", RULES, ids=lambda r: mixture_name(["m"], r))
def test_counts_of_the_embedded_mixture_follow_each_rule_at_every_size(rule: SamplingRule) -> None:
    _check_counts(EMBEDDED, rule, 12000)
    # sizes of the issue's ladder: the size-1,000 mixture is a prefix of the size-4,000 one
    small, large = (mixture_counts(EMBEDDED, rule, n) for n in (1000, 4000))
    assert sum(small) == 1000 and sum(large) == 4000 and all(a <= b for a, b in zip(small, large, strict=True))
    assert mixture_counts(EMBEDDED, rule, None) == EMBEDDED
    assert mixture_counts(EMBEDDED, rule, sum(EMBEDDED)) == EMBEDDED


def test_counts_follow_the_rules_for_many_tasks_some_running_out() -> None:
    """Up to six tasks of very different sizes: small ones run out under capped/temperature rules and the
    others share the rest; the bound holds at every prefix through to the whole mixture."""
    rng = np.random.default_rng(3)
    for trial in range(24):
        sizes = rng.integers(1, 300, size=int(rng.integers(2, 7))).tolist()
        sizes[0] = 2000 if trial % 2 else sizes[0]
        rule = [SamplingRule("proportional"), SamplingRule("capped", cap=50),
                SamplingRule("temperature", temperature=3.0)][trial % 3]
        _check_counts(sizes, rule, sum(sizes))


def test_the_embedded_counts_of_the_issues_ladder() -> None:
    """The numbers results.json records for intermediate.size=1000 and 4000 (quota rounded: two tasks)."""
    assert mixture_counts(EMBEDDED, SamplingRule("proportional"), 1000) == [966, 34]
    assert mixture_counts(EMBEDDED, SamplingRule("proportional"), 4000) == [3864, 136]
    assert mixture_counts(EMBEDDED, SamplingRule("temperature", temperature=2.0), 4000) == [3367, 633]
    assert mixture_counts(EMBEDDED, SamplingRule("capped", cap=10000), 4000) == [3410, 590]


def test_sizes_beyond_the_mixture_and_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="beyond the mixture's 50701 examples"):
        mixture_counts(EMBEDDED, SamplingRule("proportional"), 50702)
    with pytest.raises(ValueError, match="not known"):
        SamplingRule("uniform").rates(EMBEDDED)
    with pytest.raises(ValueError, match="cap K >= 1"):
        SamplingRule("capped").rates(EMBEDDED)


def test_names_carry_the_tasks_and_a_rule_other_than_proportional() -> None:
    tasks = ["vitaminc", "social_iqa"]
    assert mixture_name(tasks, SamplingRule("proportional")) == "vitaminc+social_iqa"
    assert mixture_name(tasks, SamplingRule("capped", cap=500)) == "vitaminc+social_iqa@cap500"
    assert mixture_name(tasks, SamplingRule("temperature", temperature=2.0)) == "vitaminc+social_iqa@T2"
    assert SamplingRule("temperature", temperature=2.0).as_dict() == {"rule": "temperature", "temperature": 2.0}


def test_one_task_batches_cover_every_example_once_in_a_seeded_resumable_order() -> None:
    sizes, lengths = [37, 5, 20], [list(range(37)), [3] * 5, list(range(20, 0, -1))]
    sampler = TaskBatchSampler(sizes, seed=4, batch_size=8, lengths=lengths)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5 + 1 + 3
    assert sorted(i for b in batches for i in b) == list(range(62))
    bounds = np.cumsum([0, *sizes])
    for batch in batches:  # one task per batch
        assert len({int(np.searchsorted(bounds, i, side="right")) for i in batch}) == 1
    assert list(TaskBatchSampler(sizes, 4, 8, lengths)) == batches  # a function of (seed, epoch)
    sampler.set_epoch(1)
    assert list(sampler) != batches
    sampler.resume_at(1, 3)
    resumed = list(sampler)
    assert resumed == list(TaskBatchSampler(sizes, 4, 8, lengths).batches(1))[3:]
    assert len(list(sampler)) == 9  # the skip applies once
