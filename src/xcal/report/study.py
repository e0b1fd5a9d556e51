"""The numbers behind a study's findings, re-scored from every job's saved predictions.

Each (job, language) test set gets the calibration terms a reader needs to interpret ECE: signed calibration
(mean confidence - accuracy: over- or under-confident), the Brier score's decomposition, ECE with the
published 10 bins beside xcal's 15, and ECE after two temperatures: the zero-shot one (fit on English dev,
what a user can do) and an oracle fit on the language's own dev set ("self-TS", Ahuja et al. 2022).

Cell means over seeds come with 95% intervals from a two-level bootstrap: seeds resampled within the cell
(training noise) and, for each drawn job, one of its example resamples (the finite test set), each centred on
the observed value as in :mod:`xcal.report.effects`. Differences between cells resample both independently.
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
from xcal.metrics import assign_bins, brier_decomposition, uniform_edges
from xcal.report.collect import TRAINING_LANGUAGE, Sweep, load_predictions
from xcal.report.resampling import LEVEL, interval, stable_seed

#: Metrics with example resamples, so cell intervals cover the test-set noise too.
RESAMPLED = ("accuracy", "ece", "ece10", "brier", "signed")
DECOMPOSITION = ("reliability", "resolution", "uncertainty", "within_bin_variance", "within_bin_covariance")
PUBLISHED_BINS = 10


def _probs(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return torch.softmax(torch.as_tensor(logits, dtype=torch.float64) / temperature, dim=-1).numpy()


def _bins(conf: np.ndarray, n_bins: int) -> np.ndarray:
    return assign_bins(torch.as_tensor(conf), uniform_edges(n_bins)).numpy()


def _ece(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    bins = _bins(conf, n_bins)
    gaps = np.bincount(bins, weights=conf, minlength=n_bins) - np.bincount(bins, weights=correct, minlength=n_bins)
    return float(np.abs(gaps).sum() / len(conf))


def resampled(probs: np.ndarray, labels: np.ndarray, n_bins: int, n_resamples: int,
              seed: int) -> dict[str, np.ndarray]:
    """:data:`RESAMPLED` metrics on ``n_resamples`` bootstrap resamples of the examples (``(R,)`` each); each
    example keeps its bin, so a resample's ECE is a weighted sum of per-example terms."""
    conf, correct = probs.max(-1), (probs.argmax(-1) == labels).astype(np.float64)
    onehot = np.eye(probs.shape[1])[labels]
    brier = ((probs - onehot) ** 2).sum(-1)
    idx = np.random.default_rng(seed).integers(0, len(labels), (n_resamples, len(labels)))
    out = {"accuracy": correct[idx].mean(1), "brier": brier[idx].mean(1)}
    out["signed"] = conf[idx].mean(1) - out["accuracy"]
    rows = np.arange(n_resamples)[:, None]
    for name, bins in (("ece", n_bins), ("ece10", PUBLISHED_BINS)):
        flat = (rows * bins + _bins(conf, bins)[idx]).ravel()
        gaps = (np.bincount(flat, weights=conf[idx].ravel(), minlength=n_resamples * bins)
                - np.bincount(flat, weights=correct[idx].ravel(), minlength=n_resamples * bins))
        out[name] = np.abs(gaps.reshape(n_resamples, bins)).sum(1) / len(labels)
    return out


def set_scores(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> dict[str, float]:
    """Accuracy, ECE (``n_bins`` and 10 bins), Brier with its decomposition, NLL, mean confidence, signed."""
    conf, correct = probs.max(-1), (probs.argmax(-1) == labels).astype(np.float64)
    p, y = torch.as_tensor(probs), torch.as_tensor(labels)
    scores = {"accuracy": float(correct.mean()), "ece": _ece(conf, correct, n_bins),
              "ece10": _ece(conf, correct, PUBLISHED_BINS),
              "brier": float(((probs - np.eye(probs.shape[1])[labels]) ** 2).sum(-1).mean()),
              "nll": float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-300, None)).mean()),
              "confidence": float(conf.mean())}
    scores["signed"] = scores["confidence"] - scores["accuracy"]
    parts = brier_decomposition(p, y, n_bins=n_bins).as_dict()
    scores.update({k: v for k, v in parts.items() if k in DECOMPOSITION})
    return scores


@dataclass
class StudyScores:
    """Per (job, language) rows of :func:`set_scores` (+ temperatures and TS variants) and their resamples."""

    sets: pd.DataFrame
    replicates: dict[tuple[str, str], dict[str, np.ndarray]]
    split: str
    n_resamples: int


def _job_rows(job: pd.Series, languages: Sequence[str], split: str, n_resamples: int,
              seed: int) -> tuple[list[dict], dict]:
    """Score every language of one job: raw, English-dev temperature, own-dev temperature (self-TS)."""
    rows, reps = [], {}
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
        raw = resampled(probs, labels, n_bins, n_resamples, stable_seed(seed, job["job"], language, split))
        reps[(job["job_dir"], language)] = {m: v - v.mean() + row[m] for m, v in raw.items()}
    return rows, reps


def _raw_logits(job_dir: str, language: str, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Logits (as log-probabilities: softmax-equivalent) and labels of one saved eval set."""
    loaded = load_predictions(Path(job_dir), language, split, calibrated=False)
    if loaded is None:
        return None
    probs, labels = loaded
    return np.log(np.clip(probs, 1e-300, None)), labels


def score_study(sweep: Sweep, *, split: str = "test", n_resamples: int = 200, seed: int = 0) -> StudyScores:
    """Re-score every finished job's ``split`` predictions, every language."""
    table = sweep.table[(sweep.table["split"] == split) & ~sweep.table["calibrated"]]
    keys = ["job", "job_dir", "intermediate", "size", "size_label", "target", "model", "seed", "temperature",
            "n_bins"]
    jobs = table[keys].drop_duplicates("job_dir").sort_values(["intermediate", "size", "seed"])
    rows, replicates = [], {}
    for _, job in jobs.iterrows():
        languages = sorted(table.loc[table["job_dir"] == job["job_dir"], "language"].unique())
        job_rows, job_reps = _job_rows(job, languages, split, n_resamples, seed)
        rows += job_rows
        replicates.update(job_reps)
    return StudyScores(pd.DataFrame(rows), replicates, split, n_resamples)


def _cell_draws(scores: StudyScores, jobs: Sequence[str], languages: Sequence[str], metric: str, n_boot: int,
                rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` bootstrap draws of the cell mean (over seeds) of the per-job mean over ``languages``."""
    per_job = np.stack([np.mean([scores.replicates[(j, la)][metric] for la in languages], axis=0) for j in jobs])
    picked = rng.integers(0, len(jobs), (n_boot, len(jobs)))
    columns = rng.integers(0, per_job.shape[1], (n_boot, len(jobs)))
    return per_job[picked, columns].mean(1)


@dataclass(frozen=True)
class Estimate:
    """A cell mean (or a difference of two) with its 95% interval and how many seeds stand behind it."""

    value: float
    low: float
    high: float
    seeds: int

    def excludes_zero(self) -> bool:
        return bool(np.isfinite(self.low) and (self.low > 0 or self.high < 0))


def cell_estimate(scores: StudyScores, cell: pd.DataFrame, metric: str, languages: Sequence[str], *,
                  n_boot: int = 2000, seed: int = 0, baseline: pd.DataFrame | None = None) -> Estimate:
    """Mean over the cell's seeds of the per-job mean over ``languages`` (or its difference to ``baseline``'s),
    with the two-level bootstrap interval."""
    jobs = list(cell["job_dir"].unique())
    value = _mean_of(cell, metric, languages)
    # Seeded by job names, not paths: the same study gives the same intervals wherever it is checked out.
    rng = np.random.default_rng(stable_seed(seed, metric, *sorted(Path(j).name for j in jobs)))
    draws = _cell_draws(scores, jobs, languages, metric, n_boot, rng) if metric in RESAMPLED else None
    if baseline is not None:
        base_jobs = list(baseline["job_dir"].unique())
        value -= _mean_of(baseline, metric, languages)
        if draws is not None:
            draws = draws - _cell_draws(scores, base_jobs, languages, metric, n_boot, rng)
    low, high = interval(draws, LEVEL) if draws is not None and len(jobs) > 1 else (math.nan, math.nan)
    return Estimate(float(value), low, high, len(jobs))


def _mean_of(cell: pd.DataFrame, metric: str, languages: Sequence[str]) -> float:
    rows = cell[cell["language"].isin(languages)]
    return float(rows.groupby("job_dir")[metric].mean().mean())
