"""Which rows and metrics of a sweep's tidy table one analysis uses, how jobs group into experiments, and the
order languages are shown in (English, the training language, first; the rows averaged over languages last).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from xcal.calibration.registry import RAW
from xcal.metrics.registry import result_columns
from xcal.report.collect import TRAINING_LANGUAGE, ReportError

#: Per-job mean over the zero-shot languages (a row of the summary tables).
MEAN_ZERO_SHOT = "mean (zero-shot)"
#: Per-job mean over every language, English included.
MEAN_ALL = "mean (all)"
#: The size effect's row fitted to the per-job mean over the zero-shot languages.
POOLED = "pooled (zero-shot)"


def select_rows(table: pd.DataFrame, calibrator: str = RAW, split: str | None = None) -> pd.DataFrame:
    """The rows one analysis uses: raw (``calibrator="none"``) or under one calibrator, on each job's primary
    split (or ``split``)."""
    if table.empty:
        raise ReportError("the sweep table is empty: no finished job to summarise; run the sweep with `xcal -m ...`")
    rows = table[table["calibrator"] == calibrator]
    if rows.empty:
        have = ", ".join(dict.fromkeys(table["calibrator"]))
        raise ReportError(f"no results under calibrator {calibrator!r} in this sweep (it has: {have}); re-score the "
                          f"sweep from its saved predictions with `xcal-report SWEEP --calibrators {calibrator}`, or "
                          f"choose one it has")
    if split is not None:
        chosen = rows[rows["split"] == split]
        if chosen.empty:
            raise ReportError(f"no results for split {split!r}; the sweep has splits "
                              f"{sorted(rows['split'].unique())}; pass one of them or split=None (primary split)")
        return chosen
    return rows[rows["primary"]] if "primary" in rows else rows


def check_metrics(rows: pd.DataFrame, metrics: Sequence[str]) -> list[str]:
    """``metrics`` as a list; a metric the rows lack is a :class:`ReportError` naming the ones they have."""
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in metrics if m not in rows.columns]
    if unknown:
        known = set(result_columns())
        numeric = [c for c in rows.columns if c in known or c.startswith(("ece_", "brier_"))]
        raise ReportError(f"metric(s) {', '.join(unknown)} not in the sweep's results; available: "
                          f"{', '.join(numeric)}")
    return metrics


def group_keys(rows: pd.DataFrame) -> list[str]:
    """Model only when the sweep mixes models: numbers of different models are never averaged."""
    return (["model"] if rows["model"].nunique() > 1 else []) + ["intermediate", "target"]


def language_order(languages: Sequence[str]) -> list[str]:
    """English first, the zero-shot languages alphabetically, then the rows averaged over languages."""
    special = (MEAN_ZERO_SHOT, MEAN_ALL, POOLED)
    plain = sorted(la for la in set(languages) if la not in special and la != TRAINING_LANGUAGE)
    head = [TRAINING_LANGUAGE] if TRAINING_LANGUAGE in languages else []
    return head + plain + [s for s in special if s in languages]
