"""A size effect in one plain-English sentence: what changes, by how much per doubling, how sure, and whether the
English effect points the same way."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from xcal.calibration.registry import RAW, calibrator_state
from xcal.metrics.registry import metric_label
from xcal.report.collect import TRAINING_LANGUAGE
from xcal.report.resampling import excludes_zero
from xcal.report.selection import POOLED


def _num(value: float, decimals: int = 3) -> str:
    return f"{value:.{decimals}f}" if np.isfinite(value) else "n/a"


def _decimals(value: float, low: float = math.nan, high: float = math.nan) -> int:
    """Decimals the whole sentence uses: with an interval, what it supports (the first significant digit of its
    half-width, at least 3); else 3, or enough for two significant digits of a smaller slope."""
    if np.isfinite(low) and np.isfinite(high) and high > low:
        return int(min(8, max(3, -math.floor(math.log10((high - low) / 2)))))
    if not np.isfinite(value) or abs(value) >= 0.001:
        return 3
    return int(min(8, -math.floor(math.log10(abs(value))) + 1)) if value != 0 else 3


def _where(row: Mapping[str, Any] | pd.Series) -> str:
    """``"on multiemo in de with me5_small"``: the eval set(s) and, when the sweep mixes models, the model."""
    target, language = row["target"], row["language"]
    if language == POOLED:
        where = f"on the zero-shot languages of {target}"
    elif language == TRAINING_LANGUAGE:
        where = f"on {target} in English (the training language)"
    else:
        where = f"on {target} in {language}"
    if row.get("model") is not None and not pd.isna(row.get("model")):
        where += f" with {row['model']}"
    return where


def _english_clause(row: Mapping[str, Any] | pd.Series, digits: int) -> str:
    """How the English effect compares (empty for the English row itself or without an English fit)."""
    english = row.get("english_slope", math.nan)
    if row["language"] == TRAINING_LANGUAGE or english is None or not np.isfinite(english):
        return ""
    predicts = row.get("english_predicts")
    if predicts is True:
        return f"; the English effect ({_num(english, digits)}) has the same sign"
    if predicts is False:
        return f"; the English effect ({_num(english, digits)}) has the opposite sign"
    return f"; the English effect ({_num(english, digits)}) does not settle the direction (an interval covers 0)"


def _design(row: Mapping[str, Any] | pd.Series) -> str:
    """"3 sizes x 3 seeds" when every size has every seed; else the runs the fit had ("3 sizes, 8 runs"), so a
    partial or unbalanced grid is not read as a full one."""
    sizes, seeds = int(row["n_sizes"]), int(row["n_seeds"])
    runs = row.get("n_runs")
    if runs is None or not np.isfinite(runs) or int(runs) == sizes * seeds:
        return f"{sizes} sizes x {seeds} seeds"
    return f"{sizes} sizes, {int(runs)} runs"


def _interval_clauses(row: Mapping[str, Any] | pd.Series, digits: int, *, power: bool) -> str:
    """"95% CI a to b" (or "no interval"), with ``power`` the slope the design detects with 80% power, and what a
    conditional interval (one stage-1 encoder a size) is about."""
    low, high = float(row["slope_ci_low"]), float(row["slope_ci_high"])
    if not (np.isfinite(low) and np.isfinite(high)):
        return "no interval"
    text = f"95% CI {_num(low, digits)} to {_num(high, digits)}"
    mde = row.get("detectable", math.nan)
    if power and mde is not None and np.isfinite(mde):
        text += f"; 80% power for a slope of {_num(float(mde), digits)}"
    if str(row.get("interval", "")).endswith("conditional)"):
        text += "; one stage-1 encoder a size, so it holds for the encoders trained, not for a new stage-1 run"
    return text


def _no_interval_sentence(row: Mapping[str, Any] | pd.Series, subject: str, where: str, digits: int,
                          details: str) -> str:
    """A slope with no interval is neither an effect nor its absence: the sentence gives the number and why."""
    runs = row.get("n_runs")
    runs = int(row["n_sizes"]) * int(row["n_seeds"]) if runs is None or not np.isfinite(runs) else int(runs)
    why = "one run a size measures no noise" if runs <= int(row["n_sizes"]) else "intervals were not computed"
    english = row.get("english_slope", math.nan)
    also = "" if row["language"] == TRAINING_LANGUAGE or english is None or not np.isfinite(english) else \
        f"; English {_num(english, digits)}"
    return (f"{subject} {where}: slope {_num(float(row['slope']), digits)} per doubling of the "
            f"{row['intermediate']} training set, with no interval ({why}; {details}{also}), so it is read neither "
            f"as an effect nor as none.")


def effect_sentence(row: Mapping[str, Any] | pd.Series) -> str:
    """One plain-English sentence for a :func:`~xcal.report.effects.size_effects` row; a row whose interval
    covers 0 says what slope the design had 80% power to detect, so no-effect reads as what it rules out."""
    metric = str(row["metric"])
    subject = f"{metric_label(metric)} ({calibrator_state(row.get('calibrator') or RAW)})"
    intermediate, where = row["intermediate"], _where(row)
    slope, low, high = float(row["slope"]), float(row["slope_ci_low"]), float(row["slope_ci_high"])
    if not np.isfinite(slope):
        return (f"{subject} {where}: fewer than two {intermediate} training-set sizes above 0, so no size effect "
                f"can be fitted.")
    digits = _decimals(slope, low, high)
    rho = row.get("spearman_rho", math.nan)
    rho_text = f"Spearman rho {rho:.2f}" if rho is not None and np.isfinite(rho) else "Spearman rho n/a"
    design = _design(row)
    if not (np.isfinite(low) and np.isfinite(high)):
        return _no_interval_sentence(row, subject, where, digits, f"{rho_text}, {design}")
    if excludes_zero(low, high):
        text = (f"{subject} {'falls' if slope < 0 else 'rises'} by {_num(abs(slope), digits)} per doubling of the "
                f"{intermediate} training set {where} ({_interval_clauses(row, digits, power=False)}; {rho_text}, "
                f"{design})")
    else:
        text = (f"{subject} shows no clear effect of the {intermediate} training-set size {where} (slope "
                f"{_num(slope, digits)} per doubling, {_interval_clauses(row, digits, power=True)}; {rho_text}, "
                f"{design})")
    return text + _english_clause(row, digits) + "."
