"""Numbers a reader can trust from a sweep: seed means with intervals, and the fitted effect of intermediate size.

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

import html
import math
import warnings
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats as sstats

from xcal.metrics import accuracy, brier_score, classwise_ece, expected_calibration_error, negative_log_likelihood
from xcal.metrics._inputs import prepare
from xcal.metrics.binning import top_label
from xcal.metrics.bootstrap import _DECOMPOSITIONS
from xcal.metrics.calibration_error import _ce_compute
from xcal.report.collect import NO_INTERMEDIATE, TRAINING_LANGUAGE, ReportError, Sweep, load_predictions

CALIBRATION_METRICS = ("ece", "mce", "adaptive_ece", "brier", "nll")
TABLE_METRICS = ("accuracy", *CALIBRATION_METRICS)
MEAN_ZERO_SHOT = "mean (zero-shot)"
MEAN_ALL = "mean (all)"
POOLED = "pooled (zero-shot)"
LEVEL = 0.95
#: Example resamples drawn per eval set; each outer (seed) resample picks one of them at random per job.
EXAMPLE_RESAMPLES = 200
METRIC_NAMES = {
    "accuracy": "Accuracy", "ece": "ECE", "mce": "MCE", "rmsce": "RMSCE", "adaptive_ece": "Adaptive ECE",
    "classwise_ece": "Classwise ECE", "brier": "Brier score", "brier_top_label": "Top-label Brier score",
    "nll": "NLL", "debiased_ece": "Debiased ECE", "smooth_ece": "Smooth ECE", "entity_f1": "Entity F1",
    "ndcg": "nDCG",
}
# metric -> (xcal.metrics function whose bootstrap decomposition resamples it, extra keyword arguments)
_DECOMPOSED: dict[str, tuple[Any, dict[str, Any]]] = {
    "accuracy": (accuracy, {}),
    "ece": (expected_calibration_error, {"norm": "l1"}),
    "mce": (expected_calibration_error, {"norm": "max"}),
    "rmsce": (expected_calibration_error, {"norm": "l2"}),
    "classwise_ece": (classwise_ece, {}),
    "brier": (brier_score, {}),
    "brier_top_label": (brier_score, {"top_label": True}),
    "nll": (negative_log_likelihood, {}),
}
#: Metrics whose example-level resampling is implemented here (the rest are resampled over seeds only).
EXAMPLE_RESAMPLED = (*_DECOMPOSED, "adaptive_ece")
_MAX_CHUNK_ENTRIES = 4_000_000


# ----------------------------------------------------------------------------------------------- selection


def _select(table: pd.DataFrame, calibrated: bool, split: str | None) -> pd.DataFrame:
    """The rows one analysis uses: raw or temperature-scaled, on each job's primary split (or ``split``)."""
    if table.empty:
        raise ReportError("the sweep table is empty: no finished job to summarise; run the sweep with `xcal -m ...`")
    rows = table[table["calibrated"] == bool(calibrated)]
    if rows.empty:
        raise ReportError("no temperature-scaled results in this sweep (calibration.temperature_scaling was off); "
                          "use calibrated=False or re-run with calibration.temperature_scaling=true"
                          if calibrated else "no raw results in this sweep table")
    if split is not None:
        chosen = rows[rows["split"] == split]
        if chosen.empty:
            raise ReportError(f"no results for split {split!r}; the sweep has splits "
                              f"{sorted(rows['split'].unique())}; pass one of them or split=None (primary split)")
        return chosen
    return rows[rows["primary"]] if "primary" in rows else rows


def _check_metrics(rows: pd.DataFrame, metrics: Sequence[str]) -> list[str]:
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in metrics if m not in rows.columns]
    if unknown:
        numeric = [c for c in rows.columns if c in METRIC_NAMES or c.startswith(("ece_", "brier_"))]
        raise ReportError(f"metric(s) {', '.join(unknown)} not in the sweep's results; available: "
                          f"{', '.join(numeric)}")
    return metrics


def _group_keys(rows: pd.DataFrame) -> list[str]:
    """Model only when the sweep mixes models: numbers of different models are never averaged."""
    return (["model"] if rows["model"].nunique() > 1 else []) + ["intermediate", "target"]


def _language_order(languages: Sequence[str]) -> list[str]:
    special = (MEAN_ZERO_SHOT, MEAN_ALL, POOLED)
    plain = sorted(la for la in set(languages) if la not in special and la != TRAINING_LANGUAGE)
    head = [TRAINING_LANGUAGE] if TRAINING_LANGUAGE in languages else []
    return head + plain + [s for s in special if s in languages]


# ----------------------------------------------------------------------------------------------- summary


def _mean_interval(values: np.ndarray, n_boot: int, rng: np.random.Generator, level: float) -> np.ndarray:
    """``(2, M)`` percentile bootstrap interval of the column means of ``values`` [k, M] over its k rows."""
    k = values.shape[0]
    if k < 2 or n_boot < 1:
        return np.full((2, values.shape[1]), np.nan)
    means = np.nanmean(values[rng.integers(0, k, (n_boot, k))], axis=1)
    alpha = (1.0 - level) / 2.0
    return np.nanquantile(means, [alpha, 1.0 - alpha], axis=0)


def summary_table(
    table: pd.DataFrame,
    metrics: Sequence[str] = TABLE_METRICS,
    calibrated: bool = False,
    *,
    split: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = LEVEL,
) -> pd.DataFrame:
    """Mean, std and bootstrap interval over seeds per (intermediate, target, size, language).

    Rows include the per-job means over zero-shot languages (``"mean (zero-shot)"``) and over all languages
    (``"mean (all)"``); ``model`` leads the key when the table mixes models. Columns per metric ``m``:
    ``m_mean``, ``m_std`` (sample std over seeds, NaN with one seed), ``m_ci_low`` / ``m_ci_high`` (percentile
    bootstrap of the mean over seeds, NaN with one seed), then ``seeds`` (the number of jobs averaged).
    """
    rows = _select(table, calibrated, split)
    metrics = _check_metrics(rows, metrics)
    keys = [*_group_keys(rows), "size", "size_label"]
    job_keys = [*keys, "job_dir"]  # a job's identity: names can repeat across merged sweep dirs
    per_job = rows[[*job_keys, "language", *metrics]]
    parts = [per_job]
    zero_shot = per_job[per_job["language"] != TRAINING_LANGUAGE]
    if not zero_shot.empty:
        parts.append(zero_shot.groupby(job_keys, sort=False)[metrics].mean().reset_index()
                     .assign(language=MEAN_ZERO_SHOT))
    parts.append(per_job.groupby(job_keys, sort=False)[metrics].mean().reset_index().assign(language=MEAN_ALL))
    cells = pd.concat(parts, ignore_index=True)
    order = {la: i for i, la in enumerate(_language_order(list(cells["language"].unique())))}
    cells["_lang"] = cells["language"].map(order)
    out = []
    for i, ((*key, _rank), group) in enumerate(cells.groupby([*keys, "_lang"], sort=True)):
        values = group[metrics].to_numpy(dtype=np.float64)
        record: dict[str, Any] = dict(zip(keys, key, strict=True))
        record["language"] = group["language"].iloc[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
            interval = _mean_interval(values, n_boot, np.random.default_rng([seed, i]), level)
            means = np.nanmean(values, axis=0)
            stds = np.nanstd(values, axis=0, ddof=1) if len(values) > 1 else np.full(len(metrics), np.nan)
        for j, metric in enumerate(metrics):
            record[f"{metric}_mean"] = means[j]
            record[f"{metric}_std"] = stds[j]
            record[f"{metric}_ci_low"] = interval[0, j]
            record[f"{metric}_ci_high"] = interval[1, j]
        record["seeds"] = len(group)
        out.append(record)
    frame = pd.DataFrame(out)
    return frame.astype({"size": "int64", "seeds": "int64"})


# ----------------------------------------------------------------------------------------------- effects


def _adaptive_replicates(probs: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor, n_bins: int) -> np.ndarray:
    """Adaptive (equal-mass) ECE of every resample ``idx`` [R, N] at once, with the bins of
    :func:`xcal.metrics.binning.quantile_edges` recomputed per resample (midpoints between the
    ``np.array_split`` groups of the sorted confidences) and bins closed on the right."""
    conf, correct = top_label(probs, labels)
    c, k = conf[idx], correct[idx]
    n = idx.shape[1]
    m = min(n_bins, n)
    base, extra = divmod(n, m)
    ends = torch.tensor([j * base + min(j, extra) for j in range(1, m)], dtype=torch.int64)
    ordered = c.sort(dim=1).values
    inner = (ordered[:, ends - 1] + ordered[:, ends]) / 2.0
    bins = torch.searchsorted(inner.contiguous(), c.contiguous(), right=False)  # #{inner < c}: (lo, hi] bins
    zeros = torch.zeros(idx.shape[0], m, dtype=torch.float64)
    count = zeros.scatter_add(1, bins, torch.ones_like(c))
    conf_sum = zeros.scatter_add(1, bins, c)
    correct_sum = zeros.scatter_add(1, bins, k)
    return _ce_compute(count, conf_sum, correct_sum, norm="l1").numpy()


def example_replicates(
    probs: np.ndarray, labels: np.ndarray, metrics: Sequence[str], *, n_bins: int = 15, n_resamples: int = 200,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Each metric on ``n_resamples`` bootstrap resamples of one eval set's examples (``(R,)`` arrays).

    Resample ``r`` is row ``r`` of ``torch.randint(N, (R, N), generator=torch.Generator().manual_seed(seed))``
    (drawn in chunks for large sets); the same resamples serve every metric. Metrics outside
    :data:`EXAMPLE_RESAMPLED` are left out.
    """
    p = prepare(torch.as_tensor(probs, dtype=torch.float64), torch.as_tensor(labels, dtype=torch.int64))
    wanted = [m for m in metrics if m in EXAMPLE_RESAMPLED]
    out: dict[str, list[np.ndarray]] = {m: [] for m in wanted}
    if not wanted:
        return {}
    with _torch_threads(1 if n_resamples * p.n < _MAX_CHUNK_ENTRIES else torch.get_num_threads()):
        decs = {m: _DECOMPOSITIONS[_DECOMPOSED[m][0]](p, {"n_bins": n_bins, **_DECOMPOSED[m][1]})
                for m in wanted if m in _DECOMPOSED}
        gen = torch.Generator().manual_seed(int(seed))
        chunk = max(1, min(n_resamples, _MAX_CHUNK_ENTRIES // max(p.n, 1)))
        for start in range(0, n_resamples, chunk):
            r = min(chunk, n_resamples - start)
            idx = torch.randint(p.n, (r, p.n), generator=gen)
            if decs:
                offsets = (torch.arange(r) * p.n)[:, None]
                counts = torch.bincount((idx + offsets).view(-1), minlength=r * p.n).view(r, p.n).double()
                for metric, (feats, compute) in decs.items():
                    out[metric].append(compute(counts @ feats).numpy())
            if "adaptive_ece" in wanted:
                out["adaptive_ece"].append(_adaptive_replicates(p.probs, p.labels, idx, n_bins))
    return {m: np.concatenate(v) for m, v in out.items()}


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


def _stable_seed(*parts: Any) -> int:
    return zlib.crc32("\x1f".join(map(str, parts)).encode()) & 0x7FFFFFFF


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


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _excludes_zero(low: float, high: float) -> bool:
    return bool(np.isfinite(low) and np.isfinite(high) and (low > 0 or high < 0))


def _predicts(english: tuple[float, float, float], other: tuple[float, float, float]) -> bool | None:
    """True: both intervals exclude 0 with the same sign; False: opposite signs; None: inconclusive."""
    (es, elo, ehi), (s, lo, hi) = english, other
    if not (_excludes_zero(elo, ehi) and _excludes_zero(lo, hi)):
        return None
    return bool(np.sign(es) == np.sign(s))


def _group_effects(
    group: pd.DataFrame,
    baseline_rows: pd.DataFrame,
    metrics: list[str],
    *,
    calibrated: bool,
    n_boot: int,
    seed: int,
    level: float,
    n_resamples: int,
    key: dict[str, Any],
) -> list[dict[str, Any]]:
    """Effect rows of one (model, intermediate, target) group."""
    fit = group[group["size"] > 0]
    jobs = fit.drop_duplicates("job_dir").set_index("job_dir")
    languages = _language_order(list(fit["language"].unique()))
    zero_shot = [la for la in languages if la != TRAINING_LANGUAGE]
    x_all = np.log2(jobs["size"].to_numpy(dtype=np.float64))

    # example resamples of every (job, language) eval set, once for all metrics
    replicates: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    have_predictions = n_boot > 0
    if have_predictions:
        for row in fit.itertuples(index=False):
            loaded = load_predictions(row.job_dir, row.language, row.split, calibrated)
            if loaded is None:
                have_predictions = False
                break
            probs, labels = loaded
            n_bins = int(row.n_bins) if int(row.n_bins) > 0 else 15
            replicates[(row.job_dir, row.language)] = example_replicates(
                probs, labels, metrics, n_bins=n_bins, n_resamples=n_resamples,
                seed=_stable_seed(seed, row.job, row.language, row.split, calibrated))
    out = []
    for metric in metrics:
        by_language = {la: fit[fit["language"] == la].set_index("job_dir")[metric] for la in languages}
        series: dict[str, tuple[pd.Series, np.ndarray | None]] = {}
        examples = have_predictions and metric in EXAMPLE_RESAMPLED
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
        fits: dict[str, dict[str, Any]] = {}
        for label, (values, reps) in series.items():
            ok = values.notna().to_numpy()
            x, y = x_all[ok], values.to_numpy(dtype=np.float64)[ok]
            n_sizes = len(np.unique(x))
            slope = _ols_slope(x, y) if n_sizes >= 2 else math.nan
            low = high = math.nan
            if n_sizes >= 2 and n_boot > 0:
                rng = np.random.default_rng(_stable_seed(seed, metric, label, *key.values()))
                boots = _boot_slopes(x, y, None if reps is None else reps[ok], n_boot, rng)
                low, high = _interval(boots, level)
            rho, p = _spearman(x, y)
            base = baseline_rows[baseline_rows["language"] == label][metric] if label != POOLED else \
                baseline_rows[baseline_rows["language"].isin(zero_shot)].groupby("job_dir")[metric].mean()
            fits[label] = {
                "slope": slope, "slope_ci_low": low, "slope_ci_high": high, "spearman_rho": rho, "spearman_p": p,
                "n_sizes": n_sizes, "n_seeds": int(jobs.loc[ok, "seed"].nunique()),
                "baseline": float(base.mean()) if len(base) else math.nan,
                "bootstrap": "none" if n_boot == 0 or n_sizes < 2 else
                ("seeds+examples" if reps is not None else "seeds"),
                "_values": values,
            }
        english = fits.get(TRAINING_LANGUAGE)
        for label in [*languages, *([POOLED] if zero_shot else [])]:
            f = fits[label]
            row = {**key, "metric": metric, "language": label, "calibrated": bool(calibrated)}
            row.update({k: v for k, v in f.items() if not k.startswith("_")})
            row["english_slope"] = english["slope"] if english else math.nan
            row["english_predicts"] = None
            row["english_zero_shot_rho"] = math.nan
            if english is not None and label != TRAINING_LANGUAGE:
                row["english_predicts"] = _predicts(
                    (english["slope"], english["slope_ci_low"], english["slope_ci_high"]),
                    (f["slope"], f["slope_ci_low"], f["slope_ci_high"]))
                both = pd.concat([english["_values"], f["_values"]], axis=1).dropna()
                rho, _ = _spearman(both.iloc[:, 0].to_numpy(), both.iloc[:, 1].to_numpy())
                row["english_zero_shot_rho"] = rho
            out.append(row)
    return out


EFFECT_COLUMNS = (
    "intermediate", "target", "metric", "language", "calibrated", "slope", "slope_ci_low", "slope_ci_high",
    "spearman_rho", "spearman_p", "n_sizes", "n_seeds", "baseline", "english_slope", "english_predicts",
    "english_zero_shot_rho", "bootstrap", "sentence",
)


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
    rows = _select(sweep.table, calibrated, split)
    metrics = _check_metrics(rows, metrics)
    group_keys = _group_keys(rows)
    out: list[dict[str, Any]] = []
    for key_values, group in rows.groupby(group_keys, sort=True):
        if not (group["size"] > 0).any():
            continue
        key = dict(zip(group_keys, key_values, strict=True))
        baseline_rows = group[group["size"] == 0]
        if baseline_rows.empty:
            same = (rows["intermediate"] == NO_INTERMEDIATE) & (rows["target"] == key["target"]) & (rows["size"] == 0)
            if "model" in key:
                same &= rows["model"] == key["model"]
            baseline_rows = rows[same]
        out.extend(_group_effects(group, baseline_rows, metrics, calibrated=calibrated, n_boot=n_boot, seed=seed,
                                  level=level, n_resamples=max(1, min(n_boot, example_resamples)), key=key))
    columns = [*(["model"] if "model" in group_keys else []), *EFFECT_COLUMNS]
    frame = pd.DataFrame(out, columns=[c for c in columns if c != "sentence"])
    frame["english_predicts"] = frame["english_predicts"].astype(object)
    frame["sentence"] = [effect_sentence(r) for r in frame.to_dict("records")]
    return frame[columns]


# ----------------------------------------------------------------------------------------------- sentences


def _num(value: float, decimals: int = 3) -> str:
    return f"{value:.{decimals}f}" if np.isfinite(value) else "n/a"


def _decimals(value: float) -> int:
    """3 decimals, or enough for two significant digits of a smaller slope (the whole sentence uses them)."""
    if not np.isfinite(value) or abs(value) >= 0.001:
        return 3
    return int(min(8, -math.floor(math.log10(abs(value))) + 1)) if value != 0 else 3


def effect_sentence(row: Mapping[str, Any] | pd.Series) -> str:
    """One plain-English sentence for a :func:`size_effects` row."""
    metric = str(row["metric"])
    state = "temperature-scaled" if row.get("calibrated") else "raw"
    subject = f"{METRIC_NAMES.get(metric, metric)} ({state})"
    target, intermediate, language = row["target"], row["intermediate"], row["language"]
    if language == POOLED:
        where = f"on the zero-shot languages of {target}"
    elif language == TRAINING_LANGUAGE:
        where = f"on {target} in English (the training language)"
    else:
        where = f"on {target} in {language}"
    if row.get("model") is not None and not pd.isna(row.get("model")):
        where += f" with {row['model']}"
    slope, low, high = float(row["slope"]), float(row["slope_ci_low"]), float(row["slope_ci_high"])
    if not np.isfinite(slope):
        return (f"{subject} {where}: fewer than two {intermediate} training-set sizes above 0, so no size effect "
                f"can be fitted.")
    digits = _decimals(slope)
    rho = row.get("spearman_rho", math.nan)
    rho_text = f"Spearman rho {rho:.2f}" if rho is not None and np.isfinite(rho) else "Spearman rho n/a"
    design = f"{int(row['n_sizes'])} sizes x {int(row['n_seeds'])} seeds"
    over = " over seeds only (no saved predictions)" if row.get("bootstrap") == "seeds" else ""
    interval = f"95% CI{over} {_num(low, digits)} to {_num(high, digits)}" if np.isfinite(low) else \
        "no bootstrap interval"
    if _excludes_zero(low, high):
        text = (f"{subject} {'falls' if slope < 0 else 'rises'} by {_num(abs(slope), digits)} per doubling of the "
                f"{intermediate} training set {where} ({interval}; {rho_text}, {design})")
    else:
        text = (f"{subject} shows no clear effect of the {intermediate} training-set size {where} (slope "
                f"{_num(slope, digits)} per doubling, {interval}; {rho_text}, {design})")
    english = row.get("english_slope", math.nan)
    if language == TRAINING_LANGUAGE or english is None or not np.isfinite(english):
        return text + "."
    predicts = row.get("english_predicts")
    if predicts is True:
        return text + f"; the English effect ({_num(english, digits)}) has the same sign."
    if predicts is False:
        return text + f"; the English effect ({_num(english, digits)}) has the opposite sign."
    return text + (f"; the English effect ({_num(english, digits)}) does not settle the direction "
                   f"(an interval covers 0).")


# ----------------------------------------------------------------------------------------------- tables


def _fmt(value: Any) -> str:
    """4 significant digits for floats, plain ints, yes/no for booleans, n/a for NaN, empty for None."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return "n/a"
        if abs(value) < 1e-12:
            return "0"  # float noise, e.g. the std of identical values
        if abs(value) < 1e-4:
            return f"{float(value):.4g}"
        return np.format_float_positional(float(value), precision=4, unique=True, fractional=False, trim="-")
    return str(value)


def _display(df: pd.DataFrame, ci: bool) -> tuple[list[str], list[list[str]], list[bool]]:
    """Header, cell strings and numeric flags: ``m_mean`` + ``m_std`` become one ``mean ± std`` cell."""
    columns: list[tuple[str, Any, bool]] = []
    names = list(df.columns)
    for name in names:
        base = name[: -len("_mean")] if name.endswith("_mean") else None
        if base is not None:
            mean, std = df[name], df.get(f"{base}_std")

            def cell(i: int, mean: pd.Series = mean, std: pd.Series | None = std) -> str:
                m, s = mean.iloc[i], None if std is None else std.iloc[i]
                return _fmt(m) if s is None or not np.isfinite(s) else f"{_fmt(m)} ± {_fmt(s)}"

            columns.append((base, cell, True))
            if ci and f"{base}_ci_low" in df and f"{base}_ci_high" in df:
                low, high = df[f"{base}_ci_low"], df[f"{base}_ci_high"]

                def ci_cell(i: int, low: pd.Series = low, high: pd.Series = high) -> str:
                    lo, hi = low.iloc[i], high.iloc[i]
                    return "" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{_fmt(lo)}, {_fmt(hi)}]"

                columns.append((f"{base} 95% CI", ci_cell, True))
            continue
        if any(name == f"{b}_{s}" for b in (n[: -len('_mean')] for n in names if n.endswith("_mean"))
               for s in ("std", "ci_low", "ci_high")):
            continue
        series = df[name]
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        columns.append((name, lambda i, series=series: _fmt(series.iloc[i]), numeric))
    header = [c[0] for c in columns]
    body = [[c[1](i) for c in columns] for i in range(len(df))]
    return header, body, [c[2] for c in columns]


def to_markdown(df: pd.DataFrame, *, ci: bool = False) -> str:
    """A GitHub-flavoured markdown table (numbers right-aligned, 4 significant digits, ``mean ± std`` cells)."""
    header, body, numeric = _display(df.reset_index(drop=True), ci)

    def clean(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(clean(h) for h in header) + " |",
             "|" + "|".join("---:" if num else "---" for num in numeric) + "|"]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def to_html(df: pd.DataFrame, *, ci: bool = False, css_class: str = "xcal-table") -> str:
    """A self-contained ``<table class="xcal-table">`` (no CSS or scripts; numeric cells have class ``num``)."""
    header, body, numeric = _display(df.reset_index(drop=True), ci)
    esc = html.escape

    def tag(kind: str, text: str, num: bool) -> str:
        return f'<{kind} class="num">{esc(text)}</{kind}>' if num else f"<{kind}>{esc(text)}</{kind}>"

    head = "".join(tag("th", h, num) for h, num in zip(header, numeric, strict=True))
    rows = "".join("<tr>" + "".join(tag("td", c, num) for c, num in zip(row, numeric, strict=True)) + "</tr>"
                   for row in body)
    return f'<table class="{esc(css_class)}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
