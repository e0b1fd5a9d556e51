"""A small sweep beside a committed study: how each live cell compares with the study's cell of the same
coordinates (intermediate task and size), so `make run` says whether a fresh machine reproduces the committed
answer's direction and scale.

The study's side of each cell is its mean with the nested-design 95% t interval of
:mod:`xcal.report.inference` (stage-1 encoders as the unit, variance pooled over the study's cells), the
interval the findings quote; a live job "inside" lies within it. That interval is for the study's *mean*: one
live job (one target seed, often at a smaller scale) can fall outside it without contradicting the study.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from xcal.calibration.registry import RAW
from xcal.report.collect import NO_INTERMEDIATE, TRAINING_LANGUAGE, Sweep
from xcal.report.effects import job_design
from xcal.report.inference import contrast
from xcal.report.plots import default_split

METRICS = ("accuracy", "ece")
_LABELS = {"accuracy": "accuracy", "ece": "ECE"}


def _zero_shot_means(sweep: Sweep, split: str) -> pd.DataFrame:
    """Per job: the mean over zero-shot languages of each metric (raw), with its cell coordinates and stage-1
    encoder; size 0 of any intermediate task is the no-intermediate baseline."""
    table = sweep.table
    rows = table[(table["split"] == split) & (table["calibrator"] == RAW) & (table["language"] != TRAINING_LANGUAGE)]
    if "encoder" not in rows:
        rows = rows.assign(encoder=None)
    means = rows.groupby("job_dir", as_index=False, sort=False).agg(
        intermediate=("intermediate", "first"), size=("size", "first"), seed=("seed", "first"),
        encoder=("encoder", "first"), **{m: (m, "mean") for m in METRICS})
    means = means.sort_values(["intermediate", "size", "seed"], kind="stable", ignore_index=True)
    means.loc[means["size"] == 0, "intermediate"] = NO_INTERMEDIATE
    return means


def cell_intervals(means: pd.DataFrame, metric: str) -> dict[tuple[str, int], tuple[float, float, float, bool]]:
    """Per cell ``(intermediate, size)`` of a study: its mean of ``metric``, 95% t interval (NaN without
    replication) and whether the interval is conditional (one stage-1 encoder: it holds for the encoder
    trained), from the per-job values of :func:`_zero_shot_means`."""
    jobs = means[means[metric].notna()]
    if jobs.empty:
        return {}
    cells = list(zip(jobs["intermediate"], jobs["size"].astype(int), strict=True))
    design = job_design(cells, list(jobs["encoder"]))
    values = jobs[metric].to_numpy(np.float64)
    out = {}
    for i, cell in enumerate(design.cells):
        weights = np.zeros(len(design.cells))
        weights[i] = 1.0
        result = contrast(values, design, weights)
        out[cell] = (float(result.value), float(result.low), float(result.high), bool(result.conditional))
    return out


def compare_cells(live: Sweep, study: Sweep) -> pd.DataFrame:
    """One row per live job whose cell the study has: per metric (zero-shot accuracy and ECE) the live value,
    the study's cell mean with its 95% interval (``study low`` / ``study high``), whether the live value lies
    inside it (None when the study cannot give an interval), and the study's job of the same seed; then
    ``study conditional``: the study's cell had one stage-1 encoder, so its interval holds for that encoder."""
    split = default_split(live.table)
    mine, theirs = _zero_shot_means(live, split), _zero_shot_means(study, split)
    intervals = {metric: cell_intervals(theirs, metric) for metric in METRICS}
    rows = []
    for job in mine.itertuples(index=False):
        cell = theirs[(theirs["intermediate"] == job.intermediate) & (theirs["size"] == job.size)]
        if cell.empty:
            continue
        same_seed = cell[cell["seed"] == job.seed]
        row: dict[str, object] = {"intermediate": job.intermediate, "size": int(job.size), "seed": int(job.seed)}
        conditional = False
        for metric in METRICS:
            value = float(getattr(job, metric))
            mean, low, high, conditional = intervals[metric].get((job.intermediate, int(job.size)),
                                                                 (math.nan, math.nan, math.nan, False))
            row[f"{metric} live"] = value
            row[f"{metric} study"] = mean
            row[f"{metric} study low"] = low
            row[f"{metric} study high"] = high
            row[f"{metric} inside"] = bool(low <= value <= high) if np.isfinite(low) and np.isfinite(value) else None
            row[f"{metric} study (same seed)"] = float(same_seed[metric].mean()) if len(same_seed) else math.nan
        row["study conditional"] = conditional
        rows.append(row)
    return pd.DataFrame(rows)


def _num(value: float) -> str:
    return f"{value:.3f}" if np.isfinite(value) else "n/a"


def _cell(row: pd.Series) -> str:
    return f"{row['intermediate']} {int(row['size']):,}"


def comparison_sentence(table: pd.DataFrame, split: str) -> str:
    """Each live cell's zero-shot ECE beside the study's cell mean and interval (inside or not), and whether the
    change between the two cells furthest apart in the table has the study's sign."""
    if table.empty:
        return "No live cell matches a cell of the committed study (different tasks or sizes)."
    parts = []
    for _, r in table.iterrows():
        where = "no interval" if not np.isfinite(r["ece study low"]) else \
            f"95% CI {_num(r['ece study low'])} to {_num(r['ece study high'])}: " \
            f"{'inside' if r['ece inside'] else 'outside'}"
        parts.append(f"{_cell(r)}: ECE {_num(r['ece live'])} live vs {_num(r['ece study'])} in the study ({where})")
    text = f"Zero-shot mean ({split}) of this sweep's cells beside the committed study's: " + "; ".join(parts) + "."
    if table["ece study low"].notna().any():
        text += (" The study's interval is for its cell mean (stage-1 encoders as the unit); one live job can fall "
                 "outside it without contradicting the study, more so at a smaller scale.")
        if "study conditional" in table and table["study conditional"].astype(bool).any():
            text += (" The study's cells with an intermediate stage trained one stage-1 encoder each, so their "
                     "intervals hold for those encoders, not for a new stage-1 run like this sweep's.")
    if len(table) >= 2:
        live, study = table["ece live"], table["ece study"]
        same = (live.iloc[-1] - live.iloc[0]) * (study.iloc[-1] - study.iloc[0]) > 0
        text += (" The change between them has the study's sign." if same else
                 " The change between them does not have the study's sign (this sweep's scale is much smaller).")
    return text


def comparison_display(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison as a reader's table: per live job and metric, the live value, the study's mean with its
    interval, and inside or not; numbers to 3 decimals."""
    rows = []
    for _, r in table.iterrows():
        row = {"cell": _cell(r), "seed": str(int(r["seed"]))}
        for metric in METRICS:
            label = _LABELS[metric]
            low, high = r[f"{metric} study low"], r[f"{metric} study high"]
            interval = f" ({_num(low)} to {_num(high)})" if np.isfinite(low) and np.isfinite(high) else ""
            inside = r[f"{metric} inside"]
            row[f"{label} live"] = _num(r[f"{metric} live"])
            row[f"{label} study (95% CI)"] = _num(r[f"{metric} study"]) + interval
            row[f"{label} inside"] = "n/a" if inside is None or pd.isna(inside) else ("yes" if inside else "no")
        rows.append(row)
    return pd.DataFrame(rows)
