"""The numbers behind a study's findings, re-scored from every job's saved predictions.

Each (job, language) test set gets the calibration terms a reader needs to interpret ECE: signed calibration
(mean confidence - accuracy: over- or under-confident), the Brier score's decomposition, ECE with the
published 10 bins beside xcal's 15, and ECE after two temperatures: the zero-shot one (fit on English dev,
what a user can do) and an oracle fit on the language's own dev set ("self-TS", Ahuja et al. 2022).

Cell means, their differences and size slopes come with the nested-design t intervals of
:mod:`xcal.report.inference`: the stage-1 encoder is the unit of a cell, target seeds sub-sample it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from xcal.calibration import fit_temperature
from xcal.metrics import assign_bins, brier_decomposition, calibration_report, uniform_edges
from xcal.metrics.calibration_error import _ce_compute
from xcal.report.collect import TRAINING_LANGUAGE, Sweep, load_predictions
from xcal.report.inference import Design, contrast, detectable, slope_weights

DECOMPOSITION = ("reliability", "resolution", "uncertainty", "within_bin_variance", "within_bin_covariance")
PUBLISHED_BINS = 10


def _probs(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return torch.softmax(torch.as_tensor(logits, dtype=torch.float64) / temperature, dim=-1).numpy()


#: The registered metrics (:mod:`xcal.metrics.registry`) the findings read, beside their own terms.
SET_METRICS = ("accuracy", "ece", "brier", "nll", "debiased_ece")


def set_scores(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> dict[str, float]:
    """The registry's :data:`SET_METRICS` (``n_bins`` bins), ECE with the published 10 bins (``ece10``), the
    Brier score's decomposition, mean confidence, signed calibration (confidence - accuracy), and the ECE a
    perfectly calibrated model would score here."""
    p, y = torch.as_tensor(probs), torch.as_tensor(labels)
    scores = calibration_report(p, y, n_bins=n_bins, bootstrap=0, metrics=SET_METRICS)
    del scores["n"]
    scores["ece10"] = calibration_report(p, y, n_bins=PUBLISHED_BINS, bootstrap=0, metrics=("ece",))["ece"]
    conf = probs.max(-1)
    scores["confidence"] = float(conf.mean())
    scores["signed"] = scores["confidence"] - scores["accuracy"]
    parts = brier_decomposition(p, y, n_bins=n_bins).as_dict()
    scores.update({k: v for k, v in parts.items() if k in DECOMPOSITION})
    scores["ece_if_calibrated"] = calibrated_ece(conf, n_bins)
    return scores


#: Label draws behind :func:`calibrated_ece` (its standard error is then about 0.0003 at 1,000 examples).
CALIBRATED_DRAWS = 200


def calibrated_ece(conf: np.ndarray, n_bins: int, draws: int = CALIBRATED_DRAWS) -> float:
    """The ECE a perfectly calibrated model with these confidences would score on this many examples: each
    prediction is right with probability its confidence. Binned ECE is biased upwards at finite size, so this is
    the floor a measured ECE is read against, not 0."""
    correct = torch.as_tensor(np.random.default_rng(0).random((draws, len(conf))) < conf, dtype=torch.float64)
    c = torch.as_tensor(conf, dtype=torch.float64)
    one_hot = torch.nn.functional.one_hot(assign_bins(c, uniform_edges(n_bins)), n_bins).to(torch.float64)
    count = one_hot.sum(0).expand(draws, n_bins)
    return float(_ce_compute(count, (c @ one_hot).expand(draws, n_bins), correct @ one_hot).mean())


@dataclass
class StudyScores:
    """Per (job, language) rows of :func:`set_scores` (+ temperatures and TS variants)."""

    sets: pd.DataFrame
    split: str


def _job_rows(job: pd.Series, languages: Sequence[str], split: str) -> list[dict]:
    """Score every language of one job: raw, English-dev temperature, own-dev temperature (self-TS)."""
    rows = []
    n_bins = int(job["n_bins"]) if int(job["n_bins"]) > 0 else 15
    for language in languages:
        test, dev = (_raw_logits(job["job_dir"], language, s) for s in (split, "dev"))
        if test is None:
            continue
        logits, labels = test
        probs = _probs(logits)
        row = {**job.to_dict(), "language": language, "zero_shot": language != TRAINING_LANGUAGE,
               **set_scores(probs, labels, n_bins)}
        temperature = job["temperature"]
        if np.isfinite(temperature):
            row["ece_ts"] = set_scores(_probs(logits, temperature), labels, n_bins)["ece"]
        if dev is not None:
            row["self_temperature"] = fit_temperature(torch.as_tensor(dev[0]), torch.as_tensor(dev[1]))
            row["ece_self_ts"] = set_scores(_probs(logits, row["self_temperature"]), labels, n_bins)["ece"]
        rows.append(row)
    return rows


def _raw_logits(job_dir: str, language: str, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Logits (as log-probabilities: softmax-equivalent) and labels of one saved eval set."""
    loaded = load_predictions(Path(job_dir), language, split, calibrated=False)
    if loaded is None:
        return None
    probs, labels = loaded
    return np.log(np.clip(probs, 1e-300, None)), labels


def score_study(sweep: Sweep, *, split: str = "test") -> StudyScores:
    """Re-score every finished job's ``split`` predictions, every language."""
    table = sweep.table[(sweep.table["split"] == split) & ~sweep.table["calibrated"]]
    keys = ["job", "job_dir", "intermediate", "size", "size_label", "target", "model", "seed", "encoder",
            "temperature", "n_bins"]
    jobs = table[keys].drop_duplicates("job_dir").sort_values(["intermediate", "size", "seed"])
    rows = []
    for _, job in jobs.iterrows():
        languages = sorted(table.loc[table["job_dir"] == job["job_dir"], "language"].unique())
        rows += _job_rows(job, languages, split)
    return StudyScores(pd.DataFrame(rows), split)


@dataclass(frozen=True)
class Estimate:
    """A cell mean (or a difference of two) with its 95% interval (:mod:`xcal.report.inference`), the jobs and
    units behind it, and the smallest change the design detects with 80% power."""

    value: float
    low: float
    high: float
    seeds: int  # jobs behind the estimate
    units: int = 0  # stage-1 encoders (or, without a stage 1, target seeds) of its least replicated cell
    detectable: float = math.nan
    conditional: bool = False  # stage-1 variance not estimable: holds for the encoders trained

    def excludes_zero(self) -> bool:
        return bool(np.isfinite(self.low) and (self.low > 0 or self.high < 0))


def job_values(scores: StudyScores, metric: str, languages: Sequence[str]) -> pd.DataFrame:
    """Per job: its cell ``(intermediate, size)``, its stage-1 encoder and ``metric`` averaged over
    ``languages``: the values the study's intervals are made of (languages and examples live inside a job)."""
    sets = scores.sets[scores.sets["language"].isin(languages)]
    jobs = sets.groupby("job_dir", sort=True).agg(
        intermediate=("intermediate", "first"), size=("size", "first"), encoder=("encoder", "first"),
        value=(metric, "mean"))
    jobs["cell"] = list(zip(jobs["intermediate"], jobs["size"].astype(int), strict=True))
    jobs["encoder"] = pd.Series([None if pd.isna(e) else str(e) for e in jobs["encoder"]], index=jobs.index,
                                dtype=object)
    return jobs


def cell_estimate(scores: StudyScores, cell: pd.DataFrame, metric: str, languages: Sequence[str], *,
                  baseline: pd.DataFrame | None = None) -> Estimate:
    """Mean over the cell's stage-1 encoders (each the mean of its target seeds) of the per-job mean over
    ``languages``, or its difference to ``baseline``'s, with a t interval whose variance components are pooled
    over every cell of the study."""
    jobs = job_values(scores, metric, languages)
    design = Design.of(list(jobs["cell"]), list(jobs["encoder"]))
    (key,) = {(t, int(s)) for t, s in zip(cell["intermediate"], cell["size"], strict=True)}
    weights = np.zeros(len(design.cells))
    weights[design.cells.index(key)] = 1.0
    involved = [key]
    if baseline is not None:
        (base_key,) = {(t, int(s)) for t, s in zip(baseline["intermediate"], baseline["size"], strict=True)}
        weights[design.cells.index(base_key)] -= 1.0
        involved.append(base_key)
    values = jobs["value"].to_numpy(np.float64)
    result = contrast(values, design, weights)
    se, df = float(result.se), float(result.df)
    n_jobs = int(jobs["cell"].isin(involved).sum())
    units = min(design.encoders_in(design.cells.index(c)) for c in involved)
    low, high = (float(result.low), float(result.high)) if np.isfinite(se) and se > 0 else (math.nan, math.nan)
    return Estimate(float(result.value), low, high, n_jobs, units, detectable(se, df), result.conditional)


def slope_estimate(scores: StudyScores, task: str, metric: str, languages: Sequence[str]) -> Estimate:
    """The least-squares change of ``metric`` per doubling of ``task``'s training set over its sizes above 0,
    fitted to cell means (each a mean over stage-1 encoders), with the same pooled t interval."""
    jobs = job_values(scores, metric, languages)
    design = Design.of(list(jobs["cell"]), list(jobs["encoder"]))
    sizes = {c: math.log2(c[1]) for c in design.cells if c[0] == task and c[1] > 0}
    if len(sizes) < 2:
        return Estimate(math.nan, math.nan, math.nan, 0)
    result = contrast(jobs["value"].to_numpy(np.float64), design, slope_weights(design, sizes))
    se, df = float(result.se), float(result.df)
    low, high = (float(result.low), float(result.high)) if np.isfinite(se) and se > 0 else (math.nan, math.nan)
    units = min(design.encoders_in(design.cells.index(c)) for c in sizes)
    return Estimate(float(result.value), low, high, int(jobs["cell"].isin(list(sizes)).sum()), units,
                    detectable(se, df), result.conditional)
