"""The fitted effect of intermediate size on each metric, and whether the English effect predicts the zero-shot one.

The size effect is the ordinary-least-squares slope of a metric on ``log2(size)`` over every (size > 0, seed)
job, i.e. the change per doubling of the intermediate training set. Its interval is a two-level percentile
bootstrap: seeds are resampled with replacement within each size (the training-run noise) and, where the
job saved its predictions, each eval set's examples are resampled and the metric recomputed with
:mod:`xcal.metrics` (the finite-test-set noise, which dominates ECE at a few thousand examples). Example
resamples are centred on the observed value, because resampled binned ECE is biased upwards by an amount
that depends on the ECE itself and would otherwise tilt the resampled slopes. English is
the training language; every other language is zero-shot, and "pooled (zero-shot)" is the per-job mean
over them. The question the study asks, whether the English effect predicts the zero-shot one, is answered
per row by ``english_predicts``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sstats

from xcal.report.collect import NO_INTERMEDIATE, TRAINING_LANGUAGE, ReportError, Sweep, load_predictions
from xcal.report.registry import CALIBRATION_METRICS, EXAMPLE_RESAMPLED
from xcal.report.resampling import (
    EXAMPLE_RESAMPLES,
    LEVEL,
    example_replicates,
    excludes_zero,
    interval,
    stable_seed,
)
from xcal.report.selection import POOLED, check_metrics, group_keys, language_order, select_rows
from xcal.report.sentences import effect_sentence

EFFECT_COLUMNS = (
    "intermediate", "target", "metric", "language", "calibrated", "slope", "slope_ci_low", "slope_ci_high",
    "spearman_rho", "spearman_p", "n_sizes", "n_seeds", "n_runs", "baseline", "english_slope",
    "english_predicts", "english_zero_shot_rho", "bootstrap", "sentence",
)

#: One language's (or the pooled row's) per-job values, indexed by job_dir, and their centred example
#: resamples ``[jobs, R]`` (None when examples are not resampled).
Series = dict[str, tuple[pd.Series, np.ndarray | None]]


def _ols_slope(x: np.ndarray, y: np.ndarray) -> float:
    dx = x - x.mean()
    denom = float(dx @ dx)
    return float(dx @ (y - y.mean()) / denom) if denom > 0 else math.nan


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = sstats.spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


def _boot_slopes(
    x: np.ndarray, y: np.ndarray, reps: np.ndarray | None, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Slopes of ``n_boot`` resamples: seeds with replacement within each size; with ``reps`` [jobs, R] (each
    job's example resamples, centred on its observed value), each drawn job contributes a random one of them."""
    picks = []
    for size in np.unique(x):
        members = np.flatnonzero(x == size)
        picks.append(members[rng.integers(0, len(members), (n_boot, len(members)))])
    drawn = np.concatenate(picks, axis=1)  # [n_boot, M] job indices; the x of each column is fixed
    xs = np.concatenate([np.full(len(np.flatnonzero(x == s)), s) for s in np.unique(x)])
    ys = y[drawn] if reps is None else reps[drawn, rng.integers(0, reps.shape[1], drawn.shape)]
    dx = xs - xs.mean()
    return (ys - ys.mean(axis=1, keepdims=True)) @ dx / float(dx @ dx)


def _predicts(english: tuple[float, float, float], other: tuple[float, float, float]) -> bool | None:
    """True: both intervals exclude 0 with the same sign; False: opposite signs; None: inconclusive."""
    (es, elo, ehi), (s, lo, hi) = english, other
    if not (excludes_zero(elo, ehi) and excludes_zero(lo, hi)):
        return None
    return bool(np.sign(es) == np.sign(s))


def _replicates(fit: pd.DataFrame, metrics: list[str], *, calibrated: bool, n_resamples: int,
                seed: int) -> dict[tuple[str, str], dict[str, np.ndarray]] | None:
    """Example resamples of every (job, language) eval set, once for all metrics; None when a job saved no
    predictions (the intervals then resample seeds only)."""
    replicates: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for row in fit.itertuples(index=False):
        loaded = load_predictions(row.job_dir, row.language, row.split, calibrated)
        if loaded is None:
            return None
        probs, labels = loaded
        n_bins = int(row.n_bins) if int(row.n_bins) > 0 else 15
        replicates[(row.job_dir, row.language)] = example_replicates(
            probs, labels, metrics, n_bins=n_bins, n_resamples=n_resamples,
            seed=stable_seed(seed, row.job, row.language, row.split, calibrated))
    return replicates


def _metric_series(fit: pd.DataFrame, jobs: pd.DataFrame, metric: str, languages: list[str],
                   replicates: dict[tuple[str, str], dict[str, np.ndarray]] | None, n_resamples: int) -> Series:
    """Per language, and pooled over the zero-shot ones, the metric's per-job values and example resamples."""
    by_language = {la: fit[fit["language"] == la].set_index("job_dir")[metric] for la in languages}
    zero_shot = [la for la in languages if la != TRAINING_LANGUAGE]
    examples = replicates is not None and metric in EXAMPLE_RESAMPLED
    series: Series = {}
    for la in languages:
        values = by_language[la].reindex(jobs.index)
        reps = None
        if examples:
            reps = np.stack([replicates[(j, la)][metric] if (j, la) in replicates
                             else np.full(n_resamples, np.nan) for j in jobs.index])
            # centre each eval set's resamples on its observed value: binned ECE is biased upwards under
            # resampling, more so the smaller it is, which would tilt every resampled slope towards 0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                reps = reps - np.nanmean(reps, axis=1, keepdims=True) + values.to_numpy(np.float64)[:, None]
        series[la] = (values, reps)
    if zero_shot:
        frame = pd.concat([by_language[la].reindex(jobs.index) for la in zero_shot], axis=1)
        pooled_reps = None
        if examples:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                pooled_reps = np.nanmean(np.stack([series[la][1] for la in zero_shot]), axis=0)
        series[POOLED] = (frame.mean(axis=1, skipna=True), pooled_reps)
    return series


def _fit(values: pd.Series, reps: np.ndarray | None, x_all: np.ndarray, jobs: pd.DataFrame, base: pd.Series, *,
         n_boot: int, rng_seed: int, level: float) -> dict[str, Any]:
    """Slope, bootstrap interval and rank correlation of one language's (or the pooled row's) values."""
    ok = values.notna().to_numpy()
    x, y = x_all[ok], values.to_numpy(dtype=np.float64)[ok]
    n_sizes = len(np.unique(x))
    slope = _ols_slope(x, y) if n_sizes >= 2 else math.nan
    low = high = math.nan
    if n_sizes >= 2 and n_boot > 0:
        boots = _boot_slopes(x, y, None if reps is None else reps[ok], n_boot, np.random.default_rng(rng_seed))
        low, high = interval(boots, level)
    rho, p = _spearman(x, y)
    return {
        "slope": slope, "slope_ci_low": low, "slope_ci_high": high, "spearman_rho": rho, "spearman_p": p,
        "n_sizes": n_sizes, "n_seeds": int(jobs.loc[ok, "seed"].nunique()), "n_runs": int(ok.sum()),
        "baseline": float(base.mean()) if len(base) else math.nan,
        "bootstrap": "none" if n_boot == 0 or n_sizes < 2 else ("seeds+examples" if reps is not None else "seeds"),
        "_values": values,
    }


def _with_english(row: dict[str, Any], fit: dict[str, Any], english: dict[str, Any] | None) -> dict[str, Any]:
    """The row's comparison with the English fit: its slope, whether it predicts this one, their correlation."""
    row["english_slope"] = english["slope"] if english else math.nan
    row["english_predicts"] = None
    row["english_zero_shot_rho"] = math.nan
    if english is not None and row["language"] != TRAINING_LANGUAGE:
        row["english_predicts"] = _predicts(
            (english["slope"], english["slope_ci_low"], english["slope_ci_high"]),
            (fit["slope"], fit["slope_ci_low"], fit["slope_ci_high"]))
        both = pd.concat([english["_values"], fit["_values"]], axis=1).dropna()
        rho, _ = _spearman(both.iloc[:, 0].to_numpy(), both.iloc[:, 1].to_numpy())
        row["english_zero_shot_rho"] = rho
    return row


def _group_effects(group: pd.DataFrame, baseline_rows: pd.DataFrame, metrics: list[str], *, calibrated: bool,
                   n_boot: int, seed: int, level: float, n_resamples: int, key: dict[str, Any]) -> list[dict[str, Any]]:
    """Effect rows of one (model, intermediate, target) group."""
    fit = group[group["size"] > 0]
    jobs = fit.drop_duplicates("job_dir").set_index("job_dir")
    languages = language_order(list(fit["language"].unique()))
    zero_shot = [la for la in languages if la != TRAINING_LANGUAGE]
    x_all = np.log2(jobs["size"].to_numpy(dtype=np.float64))
    replicates = _replicates(fit, metrics, calibrated=calibrated, n_resamples=n_resamples, seed=seed) \
        if n_boot > 0 else None
    out = []
    for metric in metrics:
        fits = {}
        for label, (values, reps) in _metric_series(fit, jobs, metric, languages, replicates, n_resamples).items():
            base = baseline_rows[baseline_rows["language"] == label][metric] if label != POOLED else \
                baseline_rows[baseline_rows["language"].isin(zero_shot)].groupby("job_dir")[metric].mean()
            fits[label] = _fit(values, reps, x_all, jobs, base, n_boot=n_boot, level=level,
                               rng_seed=stable_seed(seed, metric, label, *key.values()))
        for label in [*languages, *([POOLED] if zero_shot else [])]:
            row = {**key, "metric": metric, "language": label, "calibrated": bool(calibrated)}
            row.update({k: v for k, v in fits[label].items() if not k.startswith("_")})
            out.append(_with_english(row, fits[label], fits.get(TRAINING_LANGUAGE)))
    return out


def _baseline_rows(rows: pd.DataFrame, group: pd.DataFrame, key: dict[str, Any]) -> pd.DataFrame:
    """The group's size-0 rows: its own, else the ``intermediate=none`` jobs of the same target (and model)."""
    baseline_rows = group[group["size"] == 0]
    if baseline_rows.empty:
        same = (rows["intermediate"] == NO_INTERMEDIATE) & (rows["target"] == key["target"]) & (rows["size"] == 0)
        if "model" in key:
            same &= rows["model"] == key["model"]
        baseline_rows = rows[same]
    return baseline_rows


def size_effects(
    sweep: Sweep,
    metrics: Sequence[str] = CALIBRATION_METRICS,
    calibrated: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
    *,
    split: str | None = None,
    level: float = LEVEL,
    example_resamples: int = EXAMPLE_RESAMPLES,
) -> pd.DataFrame:
    """The effect of intermediate size per (intermediate, target, metric, language), plus the pooled zero-shot row.

    ``slope`` is the OLS change of the metric per doubling of the intermediate training set over every
    (size > 0, seed) job; ``slope_ci_low/high`` its percentile bootstrap interval (``bootstrap`` says whether
    examples were resampled too, or only seeds because predictions were not saved; ``n_boot=0``: no interval);
    ``spearman_rho/p`` the rank correlation of metric and size over the same jobs; ``baseline`` the mean at
    size 0 (the intermediate's own size-0 jobs, else the ``intermediate=none`` jobs of the same target);
    ``english_slope`` the English slope; ``english_predicts`` True / False when both intervals exclude 0 with
    the same / opposite sign, None when inconclusive; ``english_zero_shot_rho`` the Spearman correlation of the
    English and this row's metric across jobs; ``sentence`` the row in plain English. Groups with fewer than
    two sizes above 0 get NaN slopes; groups with no size above 0 (the ``none`` baseline) get no rows.
    """
    if n_boot < 0:
        raise ReportError(f"n_boot={n_boot}: the number of bootstrap resamples must be >= 0 (0 = no intervals)")
    rows = select_rows(sweep.table, calibrated, split)
    metrics = check_metrics(rows, metrics)
    keys = group_keys(rows)
    out: list[dict[str, Any]] = []
    for key_values, group in rows.groupby(keys, sort=True):
        if not (group["size"] > 0).any():
            continue
        key = dict(zip(keys, key_values, strict=True))
        out.extend(_group_effects(group, _baseline_rows(rows, group, key), metrics, calibrated=calibrated,
                                  n_boot=n_boot, seed=seed, level=level,
                                  n_resamples=max(1, min(n_boot, example_resamples)), key=key))
    columns = [*(["model"] if "model" in keys else []), *EFFECT_COLUMNS]
    frame = pd.DataFrame(out, columns=[c for c in columns if c != "sentence"])
    frame["english_predicts"] = frame["english_predicts"].astype(object)
    frame["sentence"] = [effect_sentence(r) for r in frame.to_dict("records")]
    return frame[columns]
