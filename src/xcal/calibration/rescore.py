"""Fit registered calibrators on saved predictions and score every set with them: the one engine behind a job's
``calibrated.<name>`` results and the report's re-scoring of a finished sweep (no model needed).

A set is one ``(language, split)`` of logits and labels. Each calibrator is fitted on its fit set -- English dev
for the shared ones, the evaluated language's own dev for the oracles (``oracle_fit_set == "own dev"``) -- once per
fit set, and applied to every set. :func:`calibrate` yields the calibrated probabilities; :func:`rescore` turns them
into :func:`xcal.metrics.calibration_report` entries with the fit set and the fitted parameters.
:func:`load_predictions` reads a job's ``predictions/<lang>_<split>.npz``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from xcal.calibration.base import Calibrator, check_logits_labels
from xcal.calibration.registry import OWN_DEV, CalibratorSpec, get_calibrator
from xcal.metrics import DEFAULT_N_BINS, calibration_report

SetKey = tuple[str, str]
#: The shared fit set of every non-oracle calibrator: English dev.
SHARED_FIT_KEY: SetKey = ("en", "dev")


def load_predictions(directory: str | Path) -> tuple[dict[SetKey, np.ndarray], dict[SetKey, np.ndarray]]:
    """Logits and labels per ``(language, split)`` from a job's ``predictions/<lang>_<split>.npz`` files."""
    logits, labels = {}, {}
    for path in sorted(Path(directory).glob("*_*.npz")):
        language, split = path.stem.rsplit("_", 1)
        with np.load(path) as data:
            logits[(language, split)], labels[(language, split)] = data["logits"], data["labels"]
    if not logits:
        raise ValueError(f"no <lang>_<split>.npz predictions in {directory}")
    return logits, labels


def specs_for(calibrators: Iterable[str]) -> list[CalibratorSpec]:
    """The registry entries of ``calibrators`` (each once), or a ``ValueError`` naming the unknown or unsupported."""
    specs = [get_calibrator(name) for name in dict.fromkeys(calibrators)]
    for spec in specs:
        if spec.oracle_fit_set not in (None, OWN_DEV):
            raise ValueError(f"calibrator {spec.name!r}: fit sets are 'en dev' and {OWN_DEV!r}, not "
                             f"{spec.oracle_fit_set!r}")
    return specs


def fit_key(spec: CalibratorSpec, key: SetKey, fit_set: SetKey = SHARED_FIT_KEY) -> SetKey:
    """The set ``spec`` is fitted on when it scores ``key``: ``fit_set``, or the language's own for an oracle."""
    return (key[0], fit_set[1]) if spec.oracle_fit_set == OWN_DEV else tuple(fit_set)


@dataclass(frozen=True)
class Calibrated:
    """One set under one calibrator: its float64 probabilities, the set it was fitted on, the fitted map."""

    name: str
    probs: Tensor
    fit_set: SetKey
    calibrator: Calibrator

    def record(self) -> dict[str, Any]:
        """What results.json keeps beside the metrics: the fit set ``[language, split]`` and the parameters."""
        return {"fit_set": list(self.fit_set), "parameters": self.calibrator.parameters()}


def calibrate(
    logits_by_set: Mapping[SetKey, Any],
    labels_by_set: Mapping[SetKey, Any],
    calibrators: Iterable[str],
    fit_set: SetKey = SHARED_FIT_KEY,
    sets: Iterable[SetKey] | None = None,
) -> Iterator[tuple[SetKey, Calibrated]]:
    """Fit each named calibrator on its fit set (once per fit set) and yield every set (or only ``sets``) under
    every calibrator, sets in sorted order, calibrators in the order given.

    Raises:
        ValueError: unknown calibrator names, sets named by logits but not labels, a fit set with no saved
            predictions, or bad logits/labels -- all before the first fit.
    """
    if set(logits_by_set) != set(labels_by_set):
        raise ValueError(f"logits and labels name different sets: {sorted(set(logits_by_set) ^ set(labels_by_set))}")
    specs = specs_for(calibrators)
    data = {key: check_logits_labels(logits_by_set[key], labels_by_set[key]) for key in logits_by_set}
    scored = sorted(data) if sets is None else sorted(set(sets))
    unknown = [key for key in scored if key not in data]
    if unknown:
        raise ValueError(f"sets {unknown} have no saved predictions (sets: {sorted(data)})")
    for spec in specs:
        for key in scored:
            needed = fit_key(spec, key, fit_set)
            if needed not in data:
                raise ValueError(f"calibrator {spec.name!r} needs the fit set {needed}, which has no predictions "
                                 f"(sets: {sorted(data)}); evaluate that set or leave the calibrator out")
    fitted: dict[tuple[str, SetKey], Calibrator] = {}
    for key in scored:
        for spec in specs:
            needed = fit_key(spec, key, fit_set)
            if (spec.name, needed) not in fitted:
                fitted[(spec.name, needed)] = spec.build().fit(*data[needed])
            cal = fitted[(spec.name, needed)]
            yield key, Calibrated(spec.name, cal.apply(data[key][0]), needed, cal)


def rescore(
    logits_by_set: Mapping[SetKey, Any],
    labels_by_set: Mapping[SetKey, Any],
    calibrators: Iterable[str],
    fit_set: SetKey = SHARED_FIT_KEY,
    n_bins: int = DEFAULT_N_BINS,
    *,
    sets: Iterable[SetKey] | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    metrics: Iterable[str] | None = None,
) -> dict[SetKey, dict[str, dict[str, Any]]]:
    """Every saved set scored under every named calibrator (:func:`calibrate`).

    Args:
        logits_by_set: ``(N, C)`` logits per ``(language, split)``.
        labels_by_set: ``(N,)`` integer labels per ``(language, split)`` (same keys).
        calibrators: registry names (:func:`xcal.calibration.calibrator_names`).
        fit_set: the shared fit set; an oracle fitted on ``"own dev"`` uses ``(language, fit_set[1])``.
        n_bins: bins of the binned metrics.
        sets: score only these sets (default: every one); the others may still be fit sets.
        bootstrap: resamples of the example-bootstrap intervals (0: none).
        seed: bootstrap seed.
        metrics: registered metric names (default: every one computed from predictions).

    Returns:
        ``{(language, split): {name: {**calibration_report, "fit_set": [language, split], "parameters": dict}}}``,
        JSON-ready.
    """
    names = None if metrics is None else tuple(metrics)
    out: dict[SetKey, dict[str, dict[str, Any]]] = {}
    for key, cal in calibrate(logits_by_set, labels_by_set, calibrators, fit_set, sets):
        entry = calibration_report(cal.probs, labels_by_set[key], n_bins=n_bins, bootstrap=bootstrap, seed=seed,
                                   metrics=names)
        out.setdefault(key, {})[cal.name] = {**entry, **cal.record()}
    return out
