"""Re-score saved predictions under every named calibrator, without re-running a model.

A finished job saves the logits and labels of each (language, split) (``predictions/<lang>_<split>.npz``);
:func:`rescore` fits each calibrator on its fit set -- English dev for the shared ones, the evaluated language's
own dev for the oracles (``oracle_fit_set == "own dev"``) -- and scores every set with the top-label ECE
(equal-width bins, :func:`xcal.metrics.expected_calibration_error`) and the Brier score
(:func:`xcal.metrics.brier_score`). Pure: no files, no config; :func:`load_predictions` reads a job's directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xcal.calibration.base import check_logits_labels
from xcal.calibration.registry import OWN_DEV, get_calibrator
from xcal.metrics import brier_score, expected_calibration_error

SetKey = tuple[str, str]


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


def rescore(
    logits_by_set: Mapping[SetKey, Any],
    labels_by_set: Mapping[SetKey, Any],
    calibrators: Iterable[str],
    fit_set: SetKey = ("en", "dev"),
    n_bins: int = 15,
) -> dict[SetKey, dict[str, dict[str, Any]]]:
    """Fit each named calibrator on its fit set and score every saved set with it.

    Args:
        logits_by_set: ``(N, C)`` logits per ``(language, split)``.
        labels_by_set: ``(N,)`` integer labels per ``(language, split)`` (same keys).
        calibrators: registry names (:func:`xcal.calibration.calibrator_names`).
        fit_set: the shared fit set, ``(language, split)``; an oracle fitted on ``"own dev"`` uses
            ``(language, fit_set[1])`` of each evaluated language instead.
        n_bins: equal-width bins of the ECE.

    Returns:
        ``{(language, split): {name: {"ece", "brier", "fit_set": (language, split), "parameters": dict}}}``,
        floats and JSON-ready parameters.

    Raises:
        ValueError: on unknown calibrator names, mismatched keys, a missing fit set, or bad logits/labels.
    """
    if set(logits_by_set) != set(labels_by_set):
        raise ValueError(f"logits and labels name different sets: {sorted(set(logits_by_set) ^ set(labels_by_set))}")
    specs = [get_calibrator(name) for name in calibrators]
    for spec in specs:
        if spec.oracle_fit_set not in (None, OWN_DEV):
            raise ValueError(f"rescore knows the fit sets 'en dev' and {OWN_DEV!r}, not {spec.oracle_fit_set!r}")
    data = {key: check_logits_labels(logits_by_set[key], labels_by_set[key]) for key in logits_by_set}

    fitted: dict[tuple[str, SetKey], Any] = {}

    def calibrator_for(name: str, key: SetKey) -> Any:
        if key not in data:
            raise ValueError(f"calibrator {name!r} needs the fit set {key}, which has no saved predictions")
        if (name, key) not in fitted:
            fitted[(name, key)] = get_calibrator(name).build().fit(*data[key])
        return fitted[(name, key)]

    out: dict[SetKey, dict[str, dict[str, Any]]] = {}
    for key in sorted(data):
        logits, labels = data[key]
        row = out.setdefault(key, {})
        for spec in specs:
            fit_key = (key[0], fit_set[1]) if spec.oracle_fit_set == OWN_DEV else tuple(fit_set)
            cal = calibrator_for(spec.name, fit_key)
            probs = cal.apply(logits)
            row[spec.name] = {
                "ece": float(expected_calibration_error(probs, labels, n_bins=n_bins)),
                "brier": float(brier_score(probs, labels)),
                "fit_set": fit_key,
                "parameters": cal.parameters(),
            }
    return out
