"""The fitted effect of intermediate size on each metric, and whether the English effect predicts the zero-shot one.

The size effect is the least-squares slope of a metric's cell means on ``log2(size)`` over the sizes above 0,
i.e. the change per doubling of the intermediate training set, each size's mean the mean of its stage-1
encoders' means. Its interval is the nested-design t interval of :mod:`xcal.report.inference`: the unit of
replication of a size is its stage-1 encoder (target seeds sub-sample it), the variance components are pooled
over the group's sizes, and the degrees of freedom are Satterthwaite's. Languages and test examples live inside
a job's value, so their noise is part of the seed variance; with three seeds a percentile bootstrap would
under-cover. When every size has a single stage-1 encoder, the stage-1 variance cannot be estimated and the
interval holds for the encoders trained (``interval`` says so). English is the training language; every other
language is zero-shot, and "pooled (zero-shot)" is the per-job mean over them. The question the study asks,
whether the English effect predicts the zero-shot one, is answered per row by ``english_predicts``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sstats

from xcal.calibration.registry import RAW
from xcal.metrics.registry import TABLE, metric_names
from xcal.report.collect import TRAINING_LANGUAGE, ReportError, Sweep
from xcal.report.inference import Design, contrast, detectable, slope_weights
from xcal.report.ladders import baseline_rows
from xcal.report.resampling import LEVEL, excludes_zero
from xcal.report.selection import POOLED, check_metrics, group_keys, language_order, select_rows
from xcal.report.sentences import effect_sentence

EFFECT_COLUMNS = (
    "intermediate", "target", "metric", "language", "calibrator", "slope", "slope_ci_low", "slope_ci_high",
    "df", "detectable", "spearman_rho", "spearman_p", "n_sizes", "n_seeds", "n_runs", "baseline", "english_slope",
    "english_predicts", "english_zero_shot_rho", "interval", "sentence",
)
#: What a row's interval is (the ``interval`` column).
T_ENCODERS = "t (encoders)"
T_CONDITIONAL = "t (one encoder a cell: conditional)"
NO_INTERVAL = "none"


def job_design(cells: Sequence[Hashable], encoders: Sequence[Any]) -> Design:
    """The nested design of jobs with these cells and stage-1 encoders (None/NaN: no stage 1).

    When every encoder (and every no-stage-1 cell) holds a single job, target seeds and stage-1 runs cannot be
    told apart, and :func:`~xcal.report.inference.components` has no within-encoder degrees of freedom: each job
    is then its own unit (it trained its own stage 1), so the cell's spread of jobs carries both variances and
    the interval is about a new stage-1 run.
    """
    known = [None if e is None or (isinstance(e, float) and math.isnan(e)) else e for e in encoders]
    design = Design.of(list(cells), known)
    if len(design.has_stage1) == design.n_jobs:
        return Design.of(list(cells), [None] * len(known))
    return design


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = sstats.spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


def _predicts(english: tuple[float, float, float], other: tuple[float, float, float]) -> bool | None:
    """True: both intervals exclude 0 with the same sign; False: opposite signs; None: inconclusive."""
    (es, elo, ehi), (s, lo, hi) = english, other
    if not (excludes_zero(elo, ehi) and excludes_zero(lo, hi)):
        return None
    return bool(np.sign(es) == np.sign(s))


def _metric_series(fit: pd.DataFrame, jobs: pd.DataFrame, metric: str, languages: list[str]) -> dict[str, pd.Series]:
    """Per language, and pooled over the zero-shot ones, the metric's per-job values (indexed by job_dir)."""
    by_language = {la: fit[fit["language"] == la].set_index("job_dir")[metric] for la in languages}
    series = {la: by_language[la].reindex(jobs.index) for la in languages}
    zero_shot = [la for la in languages if la != TRAINING_LANGUAGE]
    if zero_shot:
        frame = pd.concat([series[la] for la in zero_shot], axis=1)
        series[POOLED] = frame.mean(axis=1, skipna=True)
    return series


def _fit(values: pd.Series, jobs: pd.DataFrame, base: pd.Series, *, n_boot: int, level: float) -> dict[str, Any]:
    """Slope of cell means, its nested t interval, and the rank correlation of one language's (or the pooled
    row's) per-job values."""
    ok = values.notna().to_numpy()
    used = jobs[ok]
    y = values.to_numpy(dtype=np.float64)[ok]
    sizes = used["size"].to_numpy(dtype=np.int64)
    n_sizes = len(np.unique(sizes))
    slope = low = high = se = df = math.nan
    kind = NO_INTERVAL
    if n_sizes >= 2:
        encoders = list(used["encoder"]) if "encoder" in used else list(used.index)
        design = job_design([int(s) for s in sizes], encoders)
        result = contrast(y, design, slope_weights(design, {s: math.log2(s) for s in design.cells}), level=level)
        slope = float(result.value)
        if n_boot > 0 and np.isfinite(result.low) and np.isfinite(result.df):
            low, high, se, df = float(result.low), float(result.high), float(result.se), float(result.df)
            kind = T_CONDITIONAL if result.conditional else T_ENCODERS
    rho, p = _spearman(np.log2(sizes.astype(np.float64)), y)
    return {
        "slope": slope, "slope_ci_low": low, "slope_ci_high": high, "df": df, "detectable": detectable(se, df),
        "spearman_rho": rho, "spearman_p": p, "n_sizes": n_sizes, "n_seeds": int(used["seed"].nunique()),
        "n_runs": int(ok.sum()), "baseline": float(base.mean()) if len(base) else math.nan, "interval": kind,
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


def _group_effects(group: pd.DataFrame, baseline: pd.DataFrame, metrics: list[str], *, calibrator: str,
                   n_boot: int, level: float, key: dict[str, Any]) -> list[dict[str, Any]]:
    """Effect rows of one (model, intermediate, target) group."""
    fit = group[group["size"] > 0]
    jobs = fit.drop_duplicates("job_dir").set_index("job_dir")
    languages = language_order(list(fit["language"].unique()))
    zero_shot = [la for la in languages if la != TRAINING_LANGUAGE]
    out = []
    for metric in metrics:
        fits = {}
        for label, values in _metric_series(fit, jobs, metric, languages).items():
            base = baseline[baseline["language"] == label][metric] if label != POOLED else \
                baseline[baseline["language"].isin(zero_shot)].groupby("job_dir")[metric].mean()
            fits[label] = _fit(values, jobs, base, n_boot=n_boot, level=level)
        for label in [*languages, *([POOLED] if zero_shot else [])]:
            row = {**key, "metric": metric, "language": label, "calibrator": calibrator}
            row.update({k: v for k, v in fits[label].items() if not k.startswith("_")})
            out.append(_with_english(row, fits[label], fits.get(TRAINING_LANGUAGE)))
    return out


def size_effects(
    sweep: Sweep,
    metrics: Sequence[str] | None = None,
    calibrator: str = RAW,
    n_boot: int = 1000,
    *,
    split: str | None = None,
    level: float = LEVEL,
) -> pd.DataFrame:
    """The effect of intermediate size per (intermediate, target, metric, language), plus the pooled zero-shot row.

    ``slope`` is the least-squares change of the metric's size means per doubling of the intermediate training
    set over the sizes above 0 (each size's mean the mean of its stage-1 encoders' means); ``slope_ci_low/high``
    its nested t interval with ``df`` Satterthwaite degrees of freedom and ``interval`` what it is
    (:data:`T_ENCODERS`; :data:`T_CONDITIONAL` when every size had one stage-1 encoder, so the interval holds
    for the encoders trained; :data:`NO_INTERVAL`); ``detectable`` the slope the design detects with 80% power.
    ``n_boot`` is kept for callers of the bootstrap it replaced: 0 means no interval, any other value the t
    interval. ``spearman_rho/p`` the rank correlation of metric and log size over the same jobs; ``baseline`` the
    mean at size 0 (:func:`~xcal.report.ladders.baseline_rows`: the intermediate's own size-0 jobs, else the
    target's shared ones); ``english_slope`` the English slope; ``english_predicts`` True / False when both
    intervals exclude 0 with the same / opposite sign, None when inconclusive; ``english_zero_shot_rho`` the
    Spearman correlation of the English and this row's metric across jobs; ``sentence`` the row in plain English.
    Groups with fewer than two sizes above 0 get NaN slopes; groups with no size above 0 (the ``none`` baseline)
    get no rows.
    """
    if n_boot < 0:
        raise ReportError(f"n_boot={n_boot}: must be >= 0 (0 = no intervals; any other value gives the t interval)")
    rows = select_rows(sweep.table, calibrator, split)
    metrics = check_metrics(rows, metric_names(shown=TABLE, calibration=True) if metrics is None else metrics)
    keys = group_keys(rows)
    out: list[dict[str, Any]] = []
    for key_values, group in rows.groupby(keys, sort=True):
        if not (group["size"] > 0).any():
            continue
        key = dict(zip(keys, key_values, strict=True))
        out.extend(_group_effects(group, baseline_rows(rows, group, key), metrics, calibrator=calibrator,
                                  n_boot=n_boot, level=level, key=key))
    columns = [*(["model"] if "model" in keys else []), *EFFECT_COLUMNS]
    frame = pd.DataFrame(out, columns=[c for c in columns if c != "sentence"])
    frame["english_predicts"] = frame["english_predicts"].astype(object)
    frame["sentence"] = [effect_sentence(r) for r in frame.to_dict("records")]
    return frame[columns]
