"""``results.json``: one file per job, written atomically, the unit every report reads.

:class:`JobRecord` is its layout; :func:`write_record` writes one and :func:`read_record` is the one reader
(the resume check, the end-of-sweep list of failed jobs, the report and the benchmarks all go through it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypedDict

from xcal.atomic import atomic_write_json

RESULTS_FILE = "results.json"


class JobRecord(TypedDict, total=False):
    """What ``results.json`` holds. Every record has the first four keys; a finished one (``status: ok``) has
    the evaluation keys, a failed one ``error`` and ``traceback``. JSON all the way down."""

    status: Literal["running", "ok", "failed"]
    xcal_version: str
    config_hash: str  # :func:`xcal.pipeline.resume.config_hash` of ``config``
    config: dict[str, Any]  # the resolved Hydra config
    # python, package versions, torch threads, CPU architecture (xcal.pipeline.environment); absent from records
    # written before it was kept, so readers must not require it
    environment: dict[str, Any]
    # stage 1: ``skipped``, or its outcome and cache entry (reused or trained); a mixture's also ``mixture``: its
    # tasks, rule, each task's rate, available examples and count
    intermediate: dict[str, Any]
    languages: dict[str, list[str]]  # ``evaluated`` and ``missing`` target languages
    target: dict[str, Any]  # stage 2: sizes, speed, English dev numbers, ``stopping``, ``history``
    predictions: str  # the folder of ``<lang>_<split>.npz`` logits, when saved
    # the ``temperature`` calibrator's fit on English dev (None when not selected), also in its parameters below:
    # kept at the top for readers of the layout before the calibrator registry
    temperature: float | None
    primary_split: str
    # language -> split -> metric, and ``calibrated``: calibrator name -> metric, ``fit_set`` ([language, split])
    # and the fitted ``parameters``. Records written before the calibrator registry have ``ts`` (temperature
    # scaling) instead of ``calibrated.temperature``: :func:`calibrated_entries` reads both.
    zeroshot: dict[str, dict[str, dict[str, Any]]]
    mean_over_languages: dict[str, dict[str, float]]  # split -> headline metric
    evaluation: dict[str, float]  # seconds, examples, labelled_positions
    error: str
    traceback: str
    seconds: float
    peak_rss_mb: float


class RecordError(ValueError):
    """A ``results.json`` that is missing, not JSON, or not a JSON object; the message says which."""


def read_record(path: Path) -> JobRecord:
    """The record in ``path`` (a ``results.json``). Says nothing about its status or completeness: that is
    each reader's business (a report wants the metrics, resume only the status and the hash).

    Raises:
        RecordError: the file is missing, unreadable, truncated, not JSON or not a JSON object.
    """
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RecordError(f"no {RESULTS_FILE}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"unreadable {RESULTS_FILE} (truncated or not JSON: {exc})") from exc
    if not isinstance(record, dict):
        raise RecordError(f"{RESULTS_FILE} holds a {type(record).__name__}, not a JSON object")
    return record  # type: ignore[return-value]


def read_record_or_none(path: Path) -> JobRecord | None:
    """:func:`read_record`, or None when there is no usable record."""
    try:
        return read_record(path)
    except RecordError:
        return None


def write_record(output_dir: Path, record: JobRecord) -> Path:
    return atomic_write_json(output_dir / RESULTS_FILE, record)


def language_means(zeroshot: dict[str, dict[str, dict[str, Any]]], split: str) -> dict[str, float]:
    """Mean of each headline metric (:data:`~xcal.metrics.HEADLINE`) over languages for one split (the sweeper's
    objective)."""
    from xcal.metrics.registry import HEADLINE, metric_names  # torch: not on a skipped job's path

    rows = [splits[split] for splits in zeroshot.values() if split in splits]
    return {m: sum(r[m] for r in rows) / len(rows) for m in metric_names(shown=HEADLINE, scored=True) if rows}


#: The calibrator of a record's ``ts`` entries (written before the calibrator registry).
LEGACY_TS = "temperature"


def calibrated_entries(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One language and split's calibrated results by calibrator name: ``calibrated``, or a legacy record's
    ``ts`` as ``temperature``."""
    calibrated = entry.get("calibrated")
    if isinstance(calibrated, dict):
        return {name: values for name, values in calibrated.items() if isinstance(values, dict)}
    return {LEGACY_TS: entry["ts"]} if isinstance(entry.get("ts"), dict) else {}


def english_temperature(zeroshot: dict[str, dict[str, dict[str, Any]]]) -> float | None:
    """The temperature of the ``temperature`` calibrator (fitted once, on English dev: the same in every set), or
    None when the job did not select it."""
    for splits in zeroshot.values():
        for entry in splits.values():
            fitted = (entry.get("calibrated") or {}).get("temperature")
            if fitted is not None:
                return float(fitted["parameters"]["temperature"])
    return None


def flat_metrics(zeroshot: dict[str, dict[str, dict[str, Any]]], primary_split: str) -> dict[str, float]:
    """Logger keys: ``zeroshot/<lang>/<metric>`` for the primary split, ``zeroshot/<lang>/<split>/<metric>``
    for every split, and ``.../<metric>/<calibrator>`` for each calibrator's values."""
    flat: dict[str, float] = {}
    for lang, splits in zeroshot.items():
        for split, entry in splits.items():
            variants = [("", entry), *((f"/{name}", values) for name, values in calibrated_entries(entry).items())]
            for variant, values in variants:
                for metric, value in values.items():
                    if isinstance(value, bool) or not isinstance(value, (int, float)):
                        continue
                    flat[f"zeroshot/{lang}/{split}/{metric}{variant}"] = float(value)
                    if split == primary_split:
                        flat[f"zeroshot/{lang}/{metric}{variant}"] = float(value)
    return flat
