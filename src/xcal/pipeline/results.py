"""``results.json``: one file per job, written atomically, the unit every report reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xcal.atomic import atomic_write_json

RESULTS_FILE = "results.json"
HEADLINE_METRICS = ("accuracy", "ece", "brier", "nll")


def write_results(output_dir: Path, record: dict[str, Any]) -> Path:
    return atomic_write_json(output_dir / RESULTS_FILE, record)


def language_means(zeroshot: dict[str, dict[str, dict[str, Any]]], split: str) -> dict[str, float]:
    """Mean of each headline metric over languages for one split (the sweeper's objective)."""
    rows = [splits[split] for splits in zeroshot.values() if split in splits]
    return {m: sum(r[m] for r in rows) / len(rows) for m in HEADLINE_METRICS if rows}


def flat_metrics(zeroshot: dict[str, dict[str, dict[str, Any]]], primary_split: str) -> dict[str, float]:
    """Logger keys: ``zeroshot/<lang>/<metric>`` for the primary split, ``zeroshot/<lang>/<split>/<metric>``
    for every split, ``..._ts`` for the temperature-scaled values."""
    flat: dict[str, float] = {}
    for lang, splits in zeroshot.items():
        for split, entry in splits.items():
            for variant, values in (("", entry), ("_ts", entry.get("ts", {}))):
                for metric, value in values.items():
                    if not isinstance(value, (int, float)):
                        continue
                    flat[f"zeroshot/{lang}/{split}/{metric}{variant}"] = float(value)
                    if split == primary_split:
                        flat[f"zeroshot/{lang}/{metric}{variant}"] = float(value)
    return flat
