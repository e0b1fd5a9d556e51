"""Each ladder's largest intermediate size against no intermediate stage: what a sweep with one size a task answers.

A slope needs two sizes above 0; a sweep of the largest size beside the baseline (the fixed-budget study's
headline cells) still answers "does this much intermediate training change calibration?". The change is the
difference of the two cells' means over the zero-shot languages (English in an English-only sweep), with the
nested t interval of :mod:`xcal.report.inference`: a stage-1 encoder is the unit of its cell, target seeds
sub-sample it, and the baseline's jobs are its units. One encoder in the cell makes the interval conditional on
that encoder; one job a cell gives none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from xcal.calibration.registry import RAW, calibrator_state
from xcal.metrics.registry import metric_label
from xcal.report.collect import TRAINING_LANGUAGE, Sweep
from xcal.report.effects import _metric_series, job_design
from xcal.report.inference import cell_means, contrast, detectable, difference_weights
from xcal.report.ladders import baseline_rows
from xcal.report.resampling import LEVEL, excludes_zero
from xcal.report.selection import POOLED, check_metrics, group_keys, language_order, select_rows
from xcal.report.sentences import _decimals, _num

DIFFERENCE_COLUMNS = ("intermediate", "target", "size", "metric", "language", "value", "baseline", "difference",
                      "ci_low", "ci_high", "df", "detectable", "conditional", "n_jobs", "n_encoders", "n_baseline")


def _target_differences(target_rows: pd.DataFrame, rows: pd.DataFrame, keys: list[str], metric: str,
                        level: float) -> list[dict[str, Any]]:
    """Every ladder of one target (and model): its largest size against its baseline, the variance components
    pooled over all of the target's cells (as docs/findings.md pools them over the study's)."""
    languages = language_order(list(target_rows["language"].unique()))
    scope = POOLED if any(la != TRAINING_LANGUAGE for la in languages) else TRAINING_LANGUAGE
    jobs = target_rows.drop_duplicates("job_dir").set_index("job_dir")
    values = _metric_series(target_rows, jobs, metric, languages)[scope]
    jobs, y = jobs[values.notna().to_numpy()], values.dropna().to_numpy(dtype=np.float64)
    cells = list(zip(jobs["intermediate"], jobs["size"].astype(int), strict=True))
    encoders = list(jobs["encoder"]) if "encoder" in jobs else list(jobs.index)
    design = job_design(cells, encoders)
    means = cell_means(y, design)  # each cell's mean of its encoders' means, as the contrast weighs them
    out = []
    for intermediate, ladder in target_rows.groupby("intermediate", sort=True):
        key = {**{k: ladder[k].iloc[0] for k in keys}, "intermediate": intermediate}
        base = baseline_rows(rows, ladder, key)
        if not (ladder["size"] > 0).any() or base.empty:
            continue
        top, zero = (intermediate, int(ladder["size"].max())), (base["intermediate"].iloc[0], 0)
        if top not in design.cells or zero not in design.cells:
            continue
        result = contrast(y, design, difference_weights(design, top, zero), level=level)
        interval = bool(np.isfinite(result.low) and np.isfinite(result.df))
        i_top, i_zero = design.cells.index(top), design.cells.index(zero)
        out.append({**key, "size": top[1], "metric": metric, "language": scope,
                    "value": float(means[i_top]), "baseline": float(means[i_zero]),
                    "difference": float(result.value), "ci_low": float(result.low) if interval else math.nan,
                    "ci_high": float(result.high) if interval else math.nan,
                    "df": float(result.df) if interval else math.nan,
                    "detectable": detectable(float(result.se), float(result.df)) if interval else math.nan,
                    "conditional": bool(result.conditional), "n_jobs": int((design.cell_of == i_top).sum()),
                    "n_encoders": design.encoders_in(i_top), "n_baseline": int((design.cell_of == i_zero).sum())})
    return out


def baseline_differences(sweep: Sweep, metrics: Sequence[str], calibrator: str = RAW, *, split: str | None = None,
                         level: float = LEVEL) -> pd.DataFrame:
    """One row per (intermediate, target, metric): the ladder's largest size against its size-0 baseline
    (:func:`~xcal.report.ladders.baseline_rows`), ``difference`` with its interval ``ci_low``/``ci_high`` (NaN
    with one job a cell), ``detectable`` the change the design detects with 80% power, and ``sentence``."""
    rows = select_rows(sweep.table, calibrator, split)
    metrics = check_metrics(rows, list(metrics))
    keys = [k for k in group_keys(rows) if k != "intermediate"]
    out: list[dict[str, Any]] = []
    for _, target_rows in rows.groupby(keys, sort=True):
        for metric in metrics:
            out += _target_differences(target_rows, rows, keys, metric, level)
    columns = [*(["model"] if "model" in keys else []), *DIFFERENCE_COLUMNS]
    frame = pd.DataFrame(out, columns=columns)
    frame = frame.sort_values(["intermediate", "metric"], key=lambda c: c.map(metrics.index) if c.name == "metric"
                              else c, kind="stable")
    frame["calibrator"] = calibrator
    frame["sentence"] = [difference_sentence(r) for r in frame.to_dict("records")]
    return frame.reset_index(drop=True)


def difference_sentence(row: Mapping[str, Any]) -> str:
    """"ECE (raw) on the zero-shot languages of multiemo is 0.068 with 16,000 vitaminc examples against 0.056
    without an intermediate stage: a clear change of +0.012 (95% CI ...)", worded as docs/findings.md words it; an
    inconclusive one says what change the design had 80% power to detect, so it reads as what it rules out."""
    subject = f"{metric_label(str(row['metric']))} ({calibrator_state(row.get('calibrator') or RAW)})"
    where = "on the zero-shot languages of" if row["language"] == POOLED else "in English on"
    low, high, diff = float(row["ci_low"]), float(row["ci_high"]), float(row["difference"])
    digits = _decimals(diff, low, high)
    model = f" with {row['model']}" if row.get("model") is not None and not pd.isna(row.get("model")) else ""
    lead = (f"{subject} {where} {row['target']}{model} is {_num(row['value'], digits)} with {int(row['size']):,} "
            f"{row['intermediate']} examples against {_num(row['baseline'], digits)} without an intermediate stage")
    if not (np.isfinite(low) and np.isfinite(high)):
        return (f"{lead}: a change of {diff:+.{digits}f} with no interval (one job a cell measures no noise), so it "
                f"is read neither as an effect nor as none.")
    design = (f"{row['n_jobs']} jobs on {row['n_encoders']} stage-1 encoder{'s' if row['n_encoders'] != 1 else ''} "
              f"against {row['n_baseline']}")
    about = "; one stage-1 encoder, so it holds for the encoder trained, not for a new stage-1 run" \
        if row["conditional"] else ""
    ci = f"95% CI {low:+.{digits}f} to {high:+.{digits}f}"
    if excludes_zero(low, high):
        return f"{lead}: a clear change of {diff:+.{digits}f} ({ci}; {design}{about})."
    return (f"{lead}: inconclusive, a change of {diff:+.{digits}f} ({ci}; 80% power for a change of "
            f"{_num(float(row['detectable']), digits)}; {design}{about}).")
