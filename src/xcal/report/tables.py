"""The report's tables: a sweep's seed means with nested-design t intervals per (experiment, size, language), and
any table rendered as GitHub markdown or a self-contained HTML ``<table>`` (4 significant digits, ``mean ± std``
cells)."""

from __future__ import annotations

import html
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from xcal.calibration.registry import RAW
from xcal.metrics.registry import TABLE, metric_names
from xcal.report.collect import TRAINING_LANGUAGE, ReportError
from xcal.report.effects import job_design
from xcal.report.inference import LEVEL, contrast
from xcal.report.selection import MEAN_ALL, MEAN_ZERO_SHOT, check_metrics, group_keys, language_order, select_rows


def _cell_intervals(pool: pd.DataFrame, metrics: list[str], level: float) -> dict[tuple[str, int], np.ndarray]:
    """``(2, M)`` t interval of each cell mean (cells: ``(intermediate, size)``) from ``pool``'s jobs, one row a
    job with its ``encoder`` and its value of each metric (:func:`summary_table` says which).

    Metrics missing for the same jobs share one design; a cell without replication gets NaN."""
    values = pool[metrics].to_numpy(np.float64)
    finite = np.isfinite(values)
    cells = list(zip(pool["intermediate"], pool["size"].astype(int), strict=True))
    encoders = list(pool["encoder"])
    out: dict[tuple[str, int], np.ndarray] = {}
    patterns: dict[bytes, list[int]] = {}
    for j in range(len(metrics)):
        patterns.setdefault(finite[:, j].tobytes(), []).append(j)
    for columns in patterns.values():
        keep = finite[:, columns[0]]
        if not keep.any():
            continue
        kept_cells = [c for c, k in zip(cells, keep, strict=True) if k]
        kept_encoders = [e for e, k in zip(encoders, keep, strict=True) if k]
        try:
            design = job_design(kept_cells, kept_encoders)
        except ValueError:  # a cell mixing jobs with and without a stage 1: each job its own unit
            design = job_design(kept_cells, [None] * len(kept_cells))
        y = values[keep][:, columns].T  # [metrics, jobs]: one contrast call per cell for all of them
        for i, cell in enumerate(design.cells):
            weights = np.zeros(len(design.cells))
            weights[i] = 1.0
            result = contrast(y, design, weights, level=level)
            interval = out.setdefault(cell, np.full((2, len(metrics)), np.nan))
            interval[:, columns] = result.low, result.high
    return out


def summary_table(
    table: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    calibrator: str = RAW,
    *,
    split: str | None = None,
    n_boot: int = 1000,
    level: float = LEVEL,
) -> pd.DataFrame:
    """Mean, std and 95% t interval over seeds per (intermediate, target, size, language).

    A "seed" is a job: one target fine-tuning run of the cell (its ``seed``); jobs of a cell may share one
    stage-1 encoder (the same ``intermediate.seed``), and then they are sub-samples of it, not independent
    replicates. Rows include the per-job means over zero-shot languages (``"mean (zero-shot)"``) and over all
    languages (``"mean (all)"``); ``model`` leads the key when the table mixes models. Columns per metric ``m``:
    ``m_mean`` and ``m_std`` (mean and sample std over the cell's jobs, std NaN with one job), ``m_ci_low`` /
    ``m_ci_high``, then ``seeds`` (the number of jobs averaged).

    The interval is the nested-design t interval of :mod:`xcal.report.inference` for the cell mean, the interval
    the size effects (:mod:`xcal.report.effects`) and the findings use: the cell's unit is its stage-1 encoder
    (target seeds within it; a cell without a stage 1 has its seeds as units), the variance components are
    pooled over every cell of the same target (and model) for that language and metric, and the degrees of
    freedom are Satterthwaite's. Where a cell holds one stage-1 encoder, the interval holds for the encoder
    trained (target-seed noise only). It is centred on the mean of the cell's encoder means, which is ``m_mean``
    whenever every encoder of the cell has as many jobs. NaN where nothing replicates (one job, and no other
    job of the pool to estimate a variance from). ``n_boot`` is kept for callers of the percentile bootstrap
    over seeds it replaced (that under-covers with three seeds): 0 means no interval, any other value the t
    interval.
    """
    if n_boot < 0:
        raise ReportError(f"n_boot={n_boot}: must be >= 0 (0 = no intervals; any other value gives the t interval)")
    rows = select_rows(table, calibrator, split)
    metrics = check_metrics(rows, metric_names(shown=TABLE) if metrics is None else metrics)
    keys = [*group_keys(rows), "size", "size_label"]
    job_keys = [*keys, "job_dir"]  # a job's identity: names can repeat across merged sweep dirs
    per_job = rows[[*job_keys, "language", *metrics]]
    parts = [per_job]
    zero_shot = per_job[per_job["language"] != TRAINING_LANGUAGE]
    if not zero_shot.empty:
        parts.append(zero_shot.groupby(job_keys, sort=False)[metrics].mean().reset_index()
                     .assign(language=MEAN_ZERO_SHOT))
    parts.append(per_job.groupby(job_keys, sort=False)[metrics].mean().reset_index().assign(language=MEAN_ALL))
    cells = pd.concat(parts, ignore_index=True)
    encoder = rows.drop_duplicates("job_dir").set_index("job_dir")["encoder"] if "encoder" in rows else None
    cells["encoder"] = None if encoder is None else cells["job_dir"].map(encoder)
    pools = [k for k in keys if k not in ("intermediate", "size", "size_label")] + ["language"]
    intervals: dict[tuple, np.ndarray] = {}
    if n_boot > 0:
        for pool_key, pool in cells.groupby(pools, sort=False):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a pool of one job: no variance, NaN
                for cell, interval in _cell_intervals(pool, metrics, level).items():
                    intervals[(*pool_key, *cell)] = interval
    order = {la: i for i, la in enumerate(language_order(list(cells["language"].unique())))}
    cells["_lang"] = cells["language"].map(order)
    out = []
    for (*key, _rank), group in cells.groupby([*keys, "_lang"], sort=True):
        values = group[metrics].to_numpy(dtype=np.float64)
        record: dict[str, Any] = dict(zip(keys, key, strict=True))
        record["language"] = group["language"].iloc[0]
        interval = intervals.get((*(record[k] for k in pools), record["intermediate"], int(record["size"])),
                                 np.full((2, len(metrics)), np.nan))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
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


def calibrator_table(table: pd.DataFrame, metric: str, *, split: str | None = None) -> pd.DataFrame:
    """``metric`` per language (rows: English, the zero-shot languages, their per-job mean) under each calibrator
    of the table (columns ``<calibrator>_mean`` / ``_std``, raw first), mean and std over jobs, on each job's
    primary split (or ``split``). Experiments (intermediate, size) are pooled: the comparison is between
    calibrators of the same predictions."""
    rows = table[table["split"] == split] if split is not None else table[table["primary"]]
    rows = rows[rows[metric].notna()] if metric in rows else rows.iloc[0:0]
    if rows.empty:
        return pd.DataFrame()
    zero_shot = rows[rows["language"] != TRAINING_LANGUAGE]
    per_job = zero_shot.groupby(["calibrator", "job_dir"], sort=False)[metric].mean().reset_index()
    parts = [rows[["calibrator", "job_dir", "language", metric]], per_job.assign(language=MEAN_ZERO_SHOT)]
    cells = pd.concat(parts, ignore_index=True)
    stats = cells.groupby(["language", "calibrator"], sort=False)[metric].agg(["mean", "std"])
    out = pd.DataFrame({"language": language_order(list(cells["language"].unique()))})
    for calibrator in dict.fromkeys(rows["calibrator"]):
        for stat in ("mean", "std"):
            out[f"{calibrator}_{stat}"] = [stats[stat].get((la, calibrator), np.nan) for la in out["language"]]
    return out


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
