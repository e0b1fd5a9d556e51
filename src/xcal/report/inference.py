"""Intervals and power for a nested study: cells ⊃ stage-1 encoders ⊃ target seeds.

A job's value (say, zero-shot ECE averaged over languages) is modelled as

    y[cell, encoder, seed] = mu[cell] + u[cell, encoder] + e[cell, encoder, seed]

with ``u ~ N(0, var_encoder)`` for cells that train a stage 1 and ``e ~ N(0, var_seed)`` everywhere. The unit of
replication of a cell is its stage-1 encoder (its target seeds are sub-samples of it); a cell without a stage 1
(``intermediate=none``) has the target seed as its unit. Languages and examples are averaged inside a job: they
contribute about 2% of a job's variance in the committed study, so they are part of ``var_seed``.

The two variance components are estimated by the ANOVA mean squares pooled over the whole study (equal to REML in
balanced designs): ``var_seed`` from the spread of target seeds around their encoder's mean (or the cell's mean,
for cells without a stage 1), ``var_encoder`` from the spread of encoder means within cells that have two or more
encoders. Pooling assumes the components are the same in every cell (one target protocol, one model); it buys
the degrees of freedom that three seeds per cell lack. A contrast of cell means (a cell, a difference of two, a
slope over sizes) then gets a t interval with Satterthwaite's degrees of freedom, as lmerTest gives a linear
mixed model. With no cell holding two encoders, ``var_encoder`` cannot be estimated: the interval is then for
the particular encoders trained (``conditional=True``) and says nothing about another stage-1 run.

Every function takes values with any leading batch axes (``[..., jobs]``) so a simulation of thousands of
studies is one call: ``tests/report/test_inference.py`` checks coverage that way.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

#: Two-sided level of every interval, and the power a design is sized for.
LEVEL = 0.95
POWER = 0.80


@dataclass(frozen=True)
class Design:
    """Which cell and which stage-1 encoder each job belongs to (``encoder`` None: the cell has no stage 1)."""

    cells: tuple[Hashable, ...]  # the distinct cells, in the order contrasts are written
    cell_of: np.ndarray  # [jobs] index into ``cells``
    group_of: np.ndarray  # [jobs] encoder group: jobs sharing a stage-1 encoder (or a no-stage-1 cell)
    has_stage1: np.ndarray  # [groups] bool: the group is one encoder (True) or a cell of independent seeds
    group_cell: np.ndarray  # [groups] index into ``cells``

    @classmethod
    def of(cls, cells: Sequence[Hashable], encoders: Sequence[Hashable | None]) -> Design:
        """Per job: its cell and its stage-1 encoder's identity (None for a job without a stage 1)."""
        if len(cells) != len(encoders):
            raise ValueError(f"{len(cells)} cells but {len(encoders)} encoders: give one of each per job")
        order = tuple(dict.fromkeys(cells))
        cell_of = np.array([order.index(c) for c in cells], dtype=np.int64)
        keys = [(c, "seeds") if e is None else (c, "encoder", e) for c, e in zip(cells, encoders, strict=True)]
        group_keys = list(dict.fromkeys(keys))
        group_of = np.array([group_keys.index(k) for k in keys], dtype=np.int64)
        has_stage1 = np.array([k[1] == "encoder" for k in group_keys])
        group_cell = np.array([order.index(k[0]) for k in group_keys], dtype=np.int64)
        for i, cell in enumerate(order):
            kinds = set(has_stage1[group_cell == i].tolist())
            if len(kinds) > 1:
                raise ValueError(f"cell {cell!r} mixes jobs with and without a stage-1 encoder")
        return cls(order, cell_of, group_of, has_stage1, group_cell)

    @classmethod
    def balanced(cls, cells: Sequence[tuple[Hashable, int, int]]) -> Design:
        """A planned design: per cell ``(name, encoders, seeds per encoder)``; ``encoders=0`` means no stage 1
        (then ``seeds`` independent target seeds)."""
        names, encoders = [], []
        for name, n_encoders, n_seeds in cells:
            for e in range(max(n_encoders, 1)):
                for _ in range(n_seeds):
                    names.append(name)
                    encoders.append(None if n_encoders == 0 else e)
        return cls.of(names, encoders)

    @property
    def n_jobs(self) -> int:
        return len(self.cell_of)

    def encoders_in(self, cell: int) -> int:
        """Units of ``cell``'s mean: its encoders, or its jobs when it has no stage 1."""
        groups = self.group_cell == cell
        if self.has_stage1[groups].any():
            return int(groups.sum())
        return int((self.cell_of == cell).sum())


@dataclass(frozen=True)
class Components:
    """Pooled mean squares, their degrees of freedom, and the variance components they estimate."""

    ms_seed: np.ndarray  # [...] within-encoder mean square: estimates var_seed
    df_seed: int
    ms_encoder: np.ndarray  # [...] between encoders within cells (NaN when no cell has two)
    df_encoder: int
    seeds_per_encoder: float  # k~: E[ms_encoder] = var_seed + k~ var_encoder

    @property
    def var_seed(self) -> np.ndarray:
        return self.ms_seed

    @property
    def var_encoder(self) -> np.ndarray:
        """Truncated at 0, as REML is; NaN when not estimable."""
        return np.maximum((self.ms_encoder - self.ms_seed) / self.seeds_per_encoder, 0.0)

    def var_encoder_upper(self, confidence: float) -> np.ndarray:
        """One-sided upper confidence limit of ``var_encoder``: the modified large-sample bound of Graybill & Wang
        (1980) on ``(ms_encoder - ms_seed) / k`` (Burdick & Graybill 1992, ch. 3). Scaling the truncated estimate
        by its chi-square factor instead ignores ``ms_seed``'s part of ``ms_encoder``: it covers well below its
        level and is 0 whenever the estimate is. NaN when not estimable."""
        if self.df_encoder == 0:
            return np.full(np.shape(self.ms_seed), np.nan)
        alpha = 1.0 - confidence
        over = self.df_encoder / stats.chi2.ppf(alpha, self.df_encoder) - 1.0
        under = 1.0 - self.df_seed / stats.chi2.ppf(1.0 - alpha, self.df_seed)
        bound = self.ms_encoder - self.ms_seed + np.sqrt((over * self.ms_encoder) ** 2 + (under * self.ms_seed) ** 2)
        return np.maximum(bound / self.seeds_per_encoder, 0.0)


def _group_sums(values: np.ndarray, index: np.ndarray, n: int) -> np.ndarray:
    """Sums of ``values[..., jobs]`` by ``index`` -> ``[..., n]`` (one matrix product, any leading axes)."""
    onehot = np.zeros((len(index), n))
    onehot[np.arange(len(index)), index] = 1.0
    return values @ onehot


def components(values: np.ndarray, design: Design) -> Components:
    """The pooled mean squares of ``values[..., jobs]`` (see the module docstring)."""
    values = np.asarray(values, dtype=np.float64)
    n_groups = len(design.has_stage1)
    counts = np.bincount(design.group_of, minlength=n_groups).astype(np.float64)
    group_means = _group_sums(values, design.group_of, n_groups) / counts
    resid = values - group_means[..., design.group_of]
    df_seed = int(design.n_jobs - n_groups)
    ms_seed = (resid**2).sum(-1) / df_seed if df_seed > 0 else np.full(values.shape[:-1], np.nan)
    # Between encoders within each stage-1 cell with two or more encoders (ANOVA with unequal group sizes).
    ss_b = np.zeros(values.shape[:-1])
    df_b, k_weighted = 0, 0.0
    for cell in range(len(design.cells)):
        groups = np.flatnonzero((design.group_cell == cell) & design.has_stage1)
        if len(groups) < 2:
            continue
        k = counts[groups]
        cell_mean = (group_means[..., groups] * k).sum(-1) / k.sum()
        ss_b = ss_b + (k * (group_means[..., groups] - cell_mean[..., None]) ** 2).sum(-1)
        df_b += len(groups) - 1
        k_weighted += (k.sum() - (k**2).sum() / k.sum())
    if df_b == 0:
        return Components(ms_seed, df_seed, np.full(values.shape[:-1], np.nan), 0, np.nan)
    return Components(ms_seed, df_seed, ss_b / df_b, df_b, k_weighted / df_b)


def cell_means(values: np.ndarray, design: Design) -> np.ndarray:
    """``[..., cells]``: each cell's mean of its units' means (every encoder weighs the same)."""
    values = np.asarray(values, dtype=np.float64)
    n_groups = len(design.has_stage1)
    counts = np.bincount(design.group_of, minlength=n_groups).astype(np.float64)
    group_means = _group_sums(values, design.group_of, n_groups) / counts
    # a no-stage-1 group is the whole cell: its mean is already the mean of its seeds
    per_cell = np.bincount(design.group_cell, minlength=len(design.cells)).astype(np.float64)
    return _group_sums(group_means, design.group_cell, len(design.cells)) / per_cell


def _variance_weights(design: Design, weights: np.ndarray) -> tuple[float, float]:
    """``(a_encoder, a_seed)``: Var(sum_c w_c mean_c) = a_encoder var_encoder + a_seed var_seed."""
    counts = np.bincount(design.group_of, minlength=len(design.has_stage1)).astype(np.float64)
    a_enc = a_seed = 0.0
    for cell, w in enumerate(weights):
        if w == 0:
            continue
        groups = np.flatnonzero(design.group_cell == cell)
        if design.has_stage1[groups].any():
            n_enc = len(groups)
            a_enc += w**2 / n_enc
            a_seed += w**2 * float((1.0 / counts[groups]).sum()) / n_enc**2
        else:
            a_seed += w**2 / float(counts[groups].sum())
    return a_enc, a_seed


@dataclass(frozen=True)
class Interval:
    """A contrast's estimate with its t interval; arrays shaped like the leading axes of the values."""

    value: np.ndarray
    low: np.ndarray
    high: np.ndarray
    se: np.ndarray
    df: np.ndarray
    conditional: bool  # True: stage-1 variance not estimable, the interval holds for the encoders trained

    def excludes_zero(self) -> np.ndarray:
        return (self.low > 0) | (self.high < 0)


def _standard_error(comp: Components, a_enc: float, a_seed: float) -> tuple[np.ndarray, np.ndarray, bool]:
    """Standard error and Satterthwaite degrees of freedom of a contrast with variance weights ``a``."""
    if a_enc == 0 or comp.df_encoder == 0:
        var = a_seed * comp.ms_seed
        return np.sqrt(var), np.full(np.shape(var), float(comp.df_seed)), a_enc > 0
    # Var = a_enc (ms_e - ms_s)/k + a_seed ms_s = c_e ms_e + c_s ms_s; where var_encoder's estimate is negative
    # it is 0 (the contrast then rests on ms_seed alone).
    c_e = a_enc / comp.seeds_per_encoder
    c_s = a_seed - c_e
    if comp.df_seed == 0 or abs(c_s) <= 1e-12 * a_seed:
        # one job per encoder and no seeds elsewhere: each job is a unit and ms_encoder alone carries the contrast
        var = a_enc * comp.ms_encoder / comp.seeds_per_encoder + max(c_s, 0.0) * np.nan_to_num(comp.ms_seed)
        return np.sqrt(var), np.full(np.shape(var), float(comp.df_encoder)), False
    var = c_e * comp.ms_encoder + c_s * comp.ms_seed
    with np.errstate(divide="ignore", invalid="ignore"):
        df = var**2 / ((c_e * comp.ms_encoder) ** 2 / comp.df_encoder + (c_s * comp.ms_seed) ** 2 / comp.df_seed)
    # var_encoder estimated at 0 (REML's boundary): both mean squares then estimate var_seed, and the model
    # collapses to one level whose residual variance pools them
    truncated = comp.ms_encoder < comp.ms_seed
    df_both = comp.df_seed + comp.df_encoder
    pooled = (comp.df_seed * comp.ms_seed + comp.df_encoder * comp.ms_encoder) / df_both
    var = np.where(truncated, a_seed * pooled, var)
    df = np.where(truncated, float(df_both), df)
    return np.sqrt(var), df, False


def contrast(values: np.ndarray, design: Design, weights: Sequence[float], *, level: float = LEVEL) -> Interval:
    """The estimate and t interval of ``sum_c weights[c] * mean_c`` (weights in ``design.cells`` order); the
    interval is NaN where the standard error is 0 or NaN."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(design.cells),):
        raise ValueError(f"{len(w)} weights for {len(design.cells)} cells")
    value = cell_means(values, design) @ w
    comp = components(values, design)
    se, df, conditional = _standard_error(comp, *_variance_weights(design, w))
    with np.errstate(invalid="ignore"):
        half = stats.t.ppf(0.5 + level / 2, df) * se
    # values with no spread (se 0) or none to measure (se NaN) give no interval, not one of width 0
    half = np.where(np.isfinite(se) & (se > 0), half, np.nan)
    return Interval(value, value - half, value + half, se, df, conditional)


def difference_weights(design: Design, cell: Hashable, baseline: Hashable) -> np.ndarray:
    w = np.zeros(len(design.cells))
    w[design.cells.index(cell)] += 1.0
    w[design.cells.index(baseline)] -= 1.0
    return w


def slope_weights(design: Design, xs: dict[Hashable, float]) -> np.ndarray:
    """Weights of the least-squares slope of cell means on ``xs`` (e.g. log2 size), each cell weighing the same."""
    w = np.zeros(len(design.cells))
    x = np.array([xs[c] for c in xs])
    dx = x - x.mean()
    if float(dx @ dx) == 0:
        raise ValueError("a slope needs at least two distinct x values")
    for c, d in zip(xs, dx, strict=True):
        w[design.cells.index(c)] = d / float(dx @ dx)
    return w


# ---------------------------------------------------------------------------------------------------- power


#: Quantiles of the chi-square that average the noncentral t's tail (deterministic and never NaN, unlike
#: scipy's nct at small degrees of freedom and large noncentrality; power to within about 1e-4).
_QUANTILES = (np.arange(1000) + 0.5) / 1000


def _power_curve(df: float, level: float):
    """Power as a function of the noncentrality |effect|/se at ``df``: the mean over the chi-square of the
    estimated variance of the normal's two tails beyond the critical value."""
    scale = stats.t.ppf(0.5 + level / 2, df) * np.sqrt(stats.chi2.ppf(_QUANTILES, df) / df)
    return lambda ncp: float(np.mean(stats.norm.cdf(ncp - scale) + stats.norm.cdf(-ncp - scale)))


def _usable(se: float, df: float) -> bool:
    return bool(np.isfinite(se) and se > 0 and np.isfinite(df) and df > 0)


def power(effect: float, se: float, df: float, *, level: float = LEVEL) -> float:
    """Probability that the two-sided t interval excludes 0 when the true contrast is ``effect``."""
    return _power_curve(df, level)(abs(effect) / se) if _usable(se, df) else float("nan")


def detectable(se: float, df: float, *, target: float = POWER, level: float = LEVEL) -> float:
    """The smallest true contrast the design detects with probability ``target`` (its minimum detectable effect)."""
    if not _usable(se, df):
        return float("nan")
    curve = _power_curve(df, level)
    upper = stats.t.ppf(0.5 + level / 2, df) + 1.0
    while curve(upper) < target:
        upper *= 2.0
    return se * float(optimize.brentq(lambda ncp: curve(ncp) - target, 0.0, upper, xtol=1e-12))


def planned_difference(var_encoder: float, var_seed: float, *, encoders: int, seeds: int, baseline_seeds: int,
                       stage1_cells: int = 1) -> tuple[float, float]:
    """Standard error and Satterthwaite degrees of freedom of (a stage-1 cell) - (the no-stage-1 baseline) in a
    planned balanced study: ``stage1_cells`` cells of ``encoders`` x ``seeds`` jobs beside ``baseline_seeds``
    baseline jobs, at the given variance components (a pilot's estimates); the mean squares pooled as
    :func:`components` pools them."""
    var_cell = var_encoder / encoders + var_seed / (encoders * seeds)
    var = var_cell + var_seed / baseline_seeds
    df_seed = stage1_cells * encoders * (seeds - 1) + baseline_seeds - 1
    df_encoder = stage1_cells * (encoders - 1)
    if df_encoder == 0:
        return float(np.sqrt(var)), float(df_seed)
    if var_encoder == 0:  # both mean squares estimate var_seed: the analysis pools them
        return float(np.sqrt(var)), float(df_seed + df_encoder)
    # var = c_e E[ms_encoder] + c_s E[ms_seed], E[ms_encoder] = var_seed + seeds var_encoder
    c_e, c_s = 1.0 / (encoders * seeds), 1.0 / baseline_seeds
    ms_e = var_seed + seeds * var_encoder
    df = var**2 / ((c_e * ms_e) ** 2 / df_encoder + (c_s * var_seed) ** 2 / df_seed)
    return float(np.sqrt(var)), float(df)
