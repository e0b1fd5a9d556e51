"""A small sweep beside a committed study: how each live cell compares with the study's cell of the same
coordinates (intermediate task and size, seed), so `make run` says whether a fresh machine reproduces the
committed answer's direction and scale."""

from __future__ import annotations

import pandas as pd

from xcal.report.collect import NO_INTERMEDIATE, TRAINING_LANGUAGE, Sweep
from xcal.report.plots import default_split

METRICS = ("accuracy", "ece")


def _zero_shot_means(sweep: Sweep, split: str) -> pd.DataFrame:
    """Per job: the mean over zero-shot languages of each metric (raw), keyed by cell coordinates; size 0 of
    any intermediate task is the no-intermediate baseline."""
    rows = sweep.table[(sweep.table["split"] == split) & ~sweep.table["calibrated"]
                       & (sweep.table["language"] != TRAINING_LANGUAGE)]
    means = rows.groupby(["intermediate", "size", "seed", "job_dir"], as_index=False)[list(METRICS)].mean()
    means.loc[means["size"] == 0, "intermediate"] = NO_INTERMEDIATE
    return means


def compare_cells(live: Sweep, study: Sweep) -> pd.DataFrame:
    """One row per live job whose cell the study has: live zero-shot accuracy and ECE beside the study's job of
    the same seed and the range over the study's seeds."""
    split = default_split(live.table)
    mine, theirs = _zero_shot_means(live, split), _zero_shot_means(study, split)
    rows = []
    for job in mine.itertuples(index=False):
        cell = theirs[(theirs["intermediate"] == job.intermediate) & (theirs["size"] == job.size)]
        if cell.empty:
            continue
        same_seed = cell[cell["seed"] == job.seed]
        row = {"intermediate": job.intermediate, "size": int(job.size), "seed": int(job.seed)}
        for metric in METRICS:
            row[f"{metric} live"] = getattr(job, metric)
            row[f"{metric} study (same seed)"] = float(same_seed[metric].mean()) if len(same_seed) else float("nan")
            row[f"{metric} study (seeds)"] = f"{cell[metric].min():.3f}–{cell[metric].max():.3f}"
        rows.append(row)
    return pd.DataFrame(rows)


def comparison_sentence(table: pd.DataFrame, split: str) -> str:
    """Whether the live cells order like the study's: the ECE difference between the two largest-apart cells."""
    if table.empty:
        return "No live cell matches a cell of the committed study (different tasks or sizes)."
    live, study = table["ece live"], table["ece study (same seed)"]
    parts = [f"{r['intermediate']} {r['size']:,}: ECE {r['ece live']:.3f} live vs {r['ece study (same seed)']:.3f} "
             "in the study" for _, r in table.iterrows()]
    text = f"Zero-shot mean ({split}) of this sweep's cells beside the committed study's: " + "; ".join(parts) + "."
    if len(table) >= 2:
        same = (live.iloc[-1] - live.iloc[0]) * (study.iloc[-1] - study.iloc[0]) > 0
        text += (" The change between them has the study's sign." if same else
                 " The change between them does not have the study's sign (this sweep's scale is much smaller).")
    return text
