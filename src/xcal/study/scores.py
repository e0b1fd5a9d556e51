"""The numbers behind a study's findings, re-scored from every job's saved predictions.

Each (job, language) test set gets the calibration terms a reader needs to interpret ECE: signed calibration
(mean confidence - accuracy: over- or under-confident), the Brier score's decomposition, ECE with the
published 10 bins beside the job's own ``calibration.n_bins``, and ECE and Brier after every registered
post-hoc calibrator (``ece@<name>``, ``brier@<name>``; :func:`xcal.calibration.rescore.rescore`), among them the
zero-shot temperature (fit on English dev, what a user can do) and an oracle fit on the language's own dev set
("self-TS", Ahuja et al. 2022).

Cell means, their differences, size slopes and study-wide means come with the nested-design t intervals of
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

from xcal.calibration import RAW, calibrator_names, get_calibrator
from xcal.calibration.rescore import fit_key, rescore
from xcal.metrics import assign_bins, brier_decomposition, calibration_report, uniform_edges
from xcal.metrics.calibration_error import _ce_compute
from xcal.report.collect import TRAINING_LANGUAGE, Sweep, bins_of, load_logits, load_predictions
from xcal.report.inference import Design, contrast, detectable, slope_weights

DECOMPOSITION = ("reliability", "resolution", "uncertainty", "within_bin_variance", "within_bin_covariance")
PUBLISHED_BINS = 10


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
    """Per (job, language) rows of :func:`set_scores`, and ECE / Brier after each calibrator."""

    sets: pd.DataFrame
    split: str
    calibrators: tuple[str, ...] = ()  # those with ``ece@<name>`` / ``brier@<name>`` columns, registry order


#: What the findings compare calibrators on.
CALIBRATOR_METRICS = ("ece", "brier")


def calibrated_column(metric: str, calibrator: str) -> str:
    """The study table's column of ``metric`` after ``calibrator`` (``"ece@vector"``)."""
    return f"{metric}@{calibrator}"


def _calibrated_scores(job_dir: Path, keys: list[tuple[str, str]], calibrators: Sequence[str],
                       n_bins: int) -> dict[tuple[str, str], dict[str, dict]]:
    """ECE and Brier of ``keys`` after each calibrator, fitted on the job's saved dev sets; a calibrator whose fit
    set a language lacks is left out for that language."""
    logits, labels = {}, {}
    for key in dict.fromkeys([*keys, *((language, "dev") for language, _ in keys)]):
        loaded = load_logits(job_dir, *key)
        if loaded is not None:
            logits[key], labels[key] = loaded
    out: dict[tuple[str, str], dict[str, dict]] = {}
    for name in calibrators:
        spec = get_calibrator(name)
        scorable = [key for key in keys if key in logits and fit_key(spec, key) in logits]
        if not scorable:
            continue
        scored = rescore(logits, labels, [name], n_bins=n_bins, sets=scorable, metrics=CALIBRATOR_METRICS)
        for key, entry in scored.items():
            out.setdefault(key, {}).update(entry)
    return out


def _job_rows(job: pd.Series, languages: Sequence[str], split: str, calibrators: Sequence[str]) -> list[dict]:
    """Score every language of one job: raw, and ECE / Brier after each calibrator (with the own-dev temperature,
    ``self_temperature``)."""
    rows = []
    n_bins = bins_of([job["n_bins"]])
    scored = _calibrated_scores(Path(job["job_dir"]), [(la, split) for la in languages], calibrators, n_bins)
    for language in languages:
        test = load_predictions(Path(job["job_dir"]), language, split)
        if test is None:
            continue
        probs, labels = test
        row = {**job.to_dict(), "language": language, "zero_shot": language != TRAINING_LANGUAGE,
               **set_scores(probs, labels, n_bins)}
        for name, entry in scored.get((language, split), {}).items():
            row.update({calibrated_column(m, name): entry[m] for m in CALIBRATOR_METRICS})
            if name == "temperature_own_dev":
                row["self_temperature"] = entry["parameters"]["temperature"]
        rows.append(row)
    return rows


def score_study(sweep: Sweep, *, split: str = "test", calibrators: Sequence[str] | None = None) -> StudyScores:
    """Re-score every finished job's ``split`` predictions, every language, raw and after ``calibrators``
    (default: every registered one)."""
    table = sweep.table[(sweep.table["split"] == split) & (sweep.table["calibrator"] == RAW)]
    keys = ["job", "job_dir", "intermediate", "size", "size_label", "target", "model", "seed", "encoder",
            "temperature", "n_bins"]
    jobs = table[keys].drop_duplicates("job_dir").sort_values(["intermediate", "size", "seed"])
    names = calibrator_names() if calibrators is None else tuple(calibrators)
    rows = []
    for _, job in jobs.iterrows():
        languages = sorted(table.loc[table["job_dir"] == job["job_dir"], "language"].unique())
        rows += _job_rows(job, languages, split, names)
    sets = pd.DataFrame(rows)
    present = tuple(n for n in names if calibrated_column("ece", n) in sets)
    return StudyScores(sets, split, present)


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
    low, high = float(result.low), float(result.high)
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
    low, high = float(result.low), float(result.high)
    units = min(design.encoders_in(design.cells.index(c)) for c in sizes)
    return Estimate(float(result.value), low, high, int(jobs["cell"].isin(list(sizes)).sum()), units,
                    detectable(se, df), result.conditional)


def study_estimate(scores: StudyScores, metric: str, languages: Sequence[str], *,
                   baseline: str | None = None) -> Estimate:
    """The study-wide mean of ``metric`` over ``languages`` -- every cell weighted equally, a cell's mean the
    mean of its stage-1 encoders' -- or, with ``baseline`` (another column of the same sets), the mean paired
    change ``metric - baseline``; with the nested t interval whose variance components are pooled over the
    study's cells."""
    sets = scores.sets
    column = sets[metric] if baseline is None else sets[metric] - sets[baseline]
    jobs = job_values(StudyScores(sets.assign(_value=column), scores.split), "_value", languages)
    design = Design.of(list(jobs["cell"]), list(jobs["encoder"]))
    result = contrast(jobs["value"].to_numpy(np.float64), design, np.full(len(design.cells), 1 / len(design.cells)))
    se, df = float(result.se), float(result.df)
    low, high = float(result.low), float(result.high)
    units = min(design.encoders_in(i) for i in range(len(design.cells)))
    return Estimate(float(result.value), low, high, len(jobs), units, detectable(se, df), result.conditional)
