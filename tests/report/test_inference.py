"""The nested-design intervals hold their coverage, checked by simulating the study's own design; power and the
detectable effect agree with their definitions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from xcal.report.inference import (
    Design,
    cell_means,
    components,
    contrast,
    detectable,
    difference_weights,
    planned_difference,
    power,
    slope_weights,
)

#: Job-to-job sd of zero-shot ECE between target seeds in the committed study, and a stage-1 sd below it.
SEED_SD, ENCODER_SD = 0.028, 0.012
#: Simulated studies per design: the coverage's standard error is then 0.0015, so [0.94, 0.965] is decidable.
STUDIES = 20_000


def study(encoders: int, seeds: int) -> Design:
    """The committed study's shape: a baseline without stage 1, two headline cells with ``encoders`` stage-1
    encoders, four more cells with one; ``seeds`` target seeds under each encoder (and in the baseline)."""
    cells = [("none", 0, seeds), ("vitaminc 16000", encoders, seeds), ("social_iqa full", encoders, seeds)]
    cells += [(f"other {i}", 1, seeds) for i in range(4)]
    return Design.balanced(cells)


def simulate(design: Design, effects: dict[str, float], rng: np.random.Generator,
             encoder_sd: float = ENCODER_SD) -> tuple[np.ndarray, np.ndarray]:
    """``STUDIES`` studies: job values and each study's stage-1 draws (so a conditional truth can be formed)."""
    encoder_draws = rng.normal(0.0, encoder_sd, (STUDIES, len(design.has_stage1))) * design.has_stage1
    mu = np.array([effects.get(str(c), 0.0) for c in design.cells])[design.cell_of]
    values = 0.08 + mu + encoder_draws[:, design.group_of] + rng.normal(0.0, SEED_SD, (STUDIES, design.n_jobs))
    return values, encoder_draws


@pytest.mark.parametrize("encoders", [1, 3])
@pytest.mark.parametrize("seeds", [3, 10])
def test_the_difference_interval_covers_the_true_change_95_percent_of_the_time(encoders: int, seeds: int) -> None:
    design = study(encoders, seeds)
    rng = np.random.default_rng(100 * encoders + seeds)
    values, encoder_draws = simulate(design, {"vitaminc 16000": 0.02}, rng)
    weights = difference_weights(design, "vitaminc 16000", "none")
    result = contrast(values, design, weights)
    truth = np.full(STUDIES, 0.02)
    if encoders == 1:
        # one encoder a cell: stage-1 variance is not estimable, the interval is about the encoder trained
        assert result.conditional
        headline = design.group_cell == design.cells.index("vitaminc 16000")
        truth = truth + encoder_draws[:, headline].mean(1)
    else:
        assert not result.conditional
    covered = float(((result.low <= truth) & (truth <= result.high)).mean())
    assert 0.94 <= covered <= 0.965, covered


@pytest.mark.parametrize("ratio", [0.5, 1.0])
def test_the_committed_fixed_budget_design_s_difference_interval_covers_95_percent(ratio: float) -> None:
    """The README's headline intervals come from 12 baseline seeds against 3 stage-1 encoders x 3 seeds in each
    of two cells (4 encoder df): simulated at that shape, with the stage-1 sd half and equal to the seed sd
    (the committed study estimates about a quarter). Over 100,000 studies it covers 0.963 at a stage-1 sd of 0,
    0.956 at half, 0.945 at equal and 0.943 at 1.5 times the seed sd: Satterthwaite's 4-odd df run slightly short
    as stage 1 dominates."""
    design = Design.balanced([("none", 0, 12), ("vitaminc 16000", 3, 3), ("social_iqa full", 3, 3)])
    values, _ = simulate(design, {"vitaminc 16000": 0.02}, np.random.default_rng(int(100 * ratio)),
                         encoder_sd=ratio * SEED_SD)
    result = contrast(values, design, difference_weights(design, "vitaminc 16000", "none"))
    assert not result.conditional
    covered = float(((result.low <= 0.02) & (result.high >= 0.02)).mean())
    assert 0.94 <= covered <= 0.965, covered


def test_the_slope_over_sizes_treats_the_encoder_as_the_unit() -> None:
    sizes = {"s1000": 1000, "s4000": 4000, "s16000": 16000}
    design = Design.balanced([("none", 0, 3), *((name, 3, 3) for name in sizes)])
    rng = np.random.default_rng(7)
    values, _ = simulate(design, {"s1000": 0.0, "s4000": 0.01, "s16000": 0.02}, rng)
    weights = slope_weights(design, {name: np.log2(size) for name, size in sizes.items()})
    result = contrast(values, design, weights)
    # 0.01 per x4 step of size: 0.005 per doubling
    covered = float(((result.low <= 0.005) & (result.high >= 0.005)).mean())
    assert 0.94 <= covered <= 0.965, covered
    # the same slope with every job counted as a replicate (its 27 jobs share 9 encoders) under-covers
    x = np.array([np.log2(sizes[str(c)]) if str(c) in sizes else np.nan for c in design.cells])[design.cell_of]
    keep = np.isfinite(x)
    dx = x[keep] - x[keep].mean()
    slopes = (values[:, keep] - values[:, keep].mean(1, keepdims=True)) @ dx / (dx @ dx)
    resid = values[:, keep] - values[:, keep].mean(1, keepdims=True) - slopes[:, None] * dx
    se = np.sqrt((resid**2).sum(1) / (keep.sum() - 2) / (dx @ dx))
    half = stats.t.ppf(0.975, keep.sum() - 2) * se
    assert float((np.abs(slopes - 0.005) <= half).mean()) < 0.92


def test_components_and_means_match_a_hand_computed_anova() -> None:
    # cell A: encoders a1 (1, 3) and a2 (5, 7); cell B without stage 1: seeds 2, 4, 9
    design = Design.of(["A", "A", "A", "A", "B", "B", "B"], ["a1", "a1", "a2", "a2", None, None, None])
    y = np.array([1.0, 3.0, 5.0, 7.0, 2.0, 4.0, 9.0])
    comp = components(y, design)
    # within: (1+1+1+1) from A's encoders, (9+1+16) from B around its mean 5 -> 30 / (7 - 3 groups)
    assert comp.ms_seed == pytest.approx(30.0 / 4)
    assert comp.df_seed == 4
    # between A's encoder means 2 and 6 around 4, each of 2 seeds: 2*(4+4) / 1
    assert comp.ms_encoder == pytest.approx(16.0)
    assert comp.seeds_per_encoder == pytest.approx(2.0)
    np.testing.assert_allclose(cell_means(y, design), [4.0, 5.0])
    result = contrast(y, design, difference_weights(design, "A", "B"))
    # Var(A) = ms_e/(E k) = 16/4; Var(B) = ms_s/3 = 2.5; df by Satterthwaite
    var_a, var_b = 16.0 / 4, 7.5 / 3
    assert float(result.value) == pytest.approx(-1.0)
    assert float(result.se) == pytest.approx(np.sqrt(var_a + var_b))
    assert float(result.df) == pytest.approx((var_a + var_b) ** 2 / (var_a**2 / 1 + var_b**2 / 4))


def test_power_and_the_detectable_effect_agree_with_a_normal_approximation_at_many_degrees_of_freedom() -> None:
    se = 0.01
    mde = detectable(se, 10_000)
    assert mde == pytest.approx(se * (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)), rel=2e-3)
    assert power(mde, se, 10_000) == pytest.approx(0.8, abs=1e-9)
    # few degrees of freedom: the same standard error detects less
    assert detectable(se, 4) > 1.3 * mde


def test_a_planned_design_gives_the_standard_error_a_simulation_measures() -> None:
    design = Design.balanced([("none", 0, 15), ("vitaminc 16000", 3, 5), ("social_iqa full", 3, 5)])
    weights = difference_weights(design, "vitaminc 16000", "none")
    se, df = planned_difference(ENCODER_SD**2, SEED_SD**2, encoders=3, seeds=5, baseline_seeds=15, stage1_cells=2)
    values, _ = simulate(design, {}, np.random.default_rng(3))
    measured = contrast(values, design, weights)
    assert se == pytest.approx(float(np.std(measured.value)), rel=0.03)
    # the planned degrees of freedom are the typical ones of the simulated studies' intervals
    assert df == pytest.approx(float(np.median(measured.df)), rel=0.25)


def test_a_cell_cannot_mix_jobs_with_and_without_a_stage_one() -> None:
    with pytest.raises(ValueError, match="mixes jobs with and without"):
        Design.of(["A", "A"], ["e0", None])


def test_one_job_per_encoder_makes_each_job_a_unit() -> None:
    # every job trained its own stage 1 (intermediate.seed follows seed): the seed and encoder variances are
    # confounded, and the spread of the jobs within a cell is what the interval rests on
    design = Design.of(["A", "A", "A", "B", "B", "B"], ["a0", "a1", "a2", "b0", "b1", "b2"])
    y = np.array([1.0, 2.0, 4.0, 2.0, 3.0, 7.0])
    result = contrast(y, design, difference_weights(design, "A", "B"))
    pooled = (np.var([1.0, 2.0, 4.0], ddof=1) + np.var([2.0, 3.0, 7.0], ddof=1)) / 2
    assert float(result.se) == pytest.approx(np.sqrt(pooled * (1 / 3 + 1 / 3)))
    assert float(result.df) == 4 and not result.conditional


@pytest.mark.parametrize("ratio", [0.0, 0.5, 1.0, 2.0])
def test_the_stage_one_variance_bound_covers_at_its_level(ratio: float) -> None:
    """The planner's stage-1 variance is an 80% upper confidence limit: simulated on the fixed-budget study's shape
    (12 baseline seeds, 4 encoders x 3 seeds in two cells), it lies above the true variance 80% of the time at any
    ratio of stage-1 to seed sd (the standard error of 20,000 studies is 0.003), and is positive in most studies
    whose truncated estimate is 0 (scaling that estimate by its chi-square factor covered 49-77% here)."""
    design = Design.balanced([("none", 0, 12), ("vitaminc 16000", 4, 3), ("social_iqa full", 4, 3)])
    rng = np.random.default_rng(int(10 * ratio))
    encoder_draws = rng.normal(0.0, ratio * SEED_SD, (STUDIES, len(design.has_stage1))) * design.has_stage1
    values = encoder_draws[:, design.group_of] + rng.normal(0.0, SEED_SD, (STUDIES, design.n_jobs))
    comp = components(values, design)
    assert (comp.df_encoder, comp.df_seed) == (6, 27)
    upper = comp.var_encoder_upper(0.80)
    covered = float((upper >= (ratio * SEED_SD) ** 2).mean())
    if ratio == 0:
        assert covered == 1.0
    else:
        assert 0.79 <= covered <= 0.815, covered
    assert (upper[comp.var_encoder == 0] > 0).mean() > 0.6
    one_each = study(1, 3)  # no cell with two encoders: nothing to bound
    assert np.isnan(components(rng.normal(size=(5, one_each.n_jobs)), one_each).var_encoder_upper(0.8)).all()
