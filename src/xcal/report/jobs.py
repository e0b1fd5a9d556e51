"""One job directory of a sweep read into tidy rows: its status, and what is wrong with its results.json.

Everything comes from the JSON (a directory's name is never parsed); a record that parses but lacks what a
finished job writes makes the job ``corrupt`` with the missing key named, never an exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xcal.calibration.registry import RAW
from xcal.metrics.registry import result_columns
from xcal.pipeline.record import LEGACY_TS, RESULTS_FILE, RecordError, calibrated_entries, read_record

TRAINING_LANGUAGE = "en"


class _Corrupt(Exception):
    """A results.json that parses but lacks what a finished job writes."""


@dataclass
class Job:
    """One job directory as read: its status, the reason when not ok, its record and tidy rows."""

    name: str
    job_dir: Path
    source: Path
    status: str
    error: str = ""
    record: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    used: bool = False


def _get(record: dict[str, Any], *keys: str) -> Any:
    """``record[k1][k2]...`` or a _Corrupt naming the missing dotted key."""
    node: Any = record
    for i, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            raise _Corrupt(f"missing key {'.'.join(keys[: i + 1])!r}")
        node = node[key]
    return node


def _as_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise _Corrupt(f"{key} is {value!r}, not an integer")
    return int(value)


def _size(record: dict[str, Any]) -> tuple[int, str]:
    """Numeric intermediate size and its label: ``null`` (the full set) counts its training examples."""
    size = _get(record, "config", "intermediate", "size")
    if size is None:
        examples = (record.get("intermediate") or {}).get("train_examples")
        if examples is None:
            raise _Corrupt("intermediate.size is null (the full set) but intermediate.train_examples is missing")
        return _as_int(examples, "intermediate.train_examples"), "full"
    value = _as_int(size, "config.intermediate.size")
    return value, str(value)


def _encoder(record: dict[str, Any], size_label: str) -> str | None:
    """The stage-1 encoder a job fine-tuned, None without a stage 1: the report's unit of replication. Jobs with
    the same stage-1 task, size, seed and data seed share it (training is deterministic at a fixed seed, so a
    stage 1 trained again under a new cache key is the same encoder)."""
    cfg, stage = record["config"], record.get("intermediate") or {}
    if stage.get("skipped") or cfg["intermediate"].get("size") == 0:
        return None
    seed = cfg["intermediate"].get("seed", cfg.get("seed"))
    return f"{cfg['intermediate']['name']}-{size_label}-seed{seed}-data{cfg.get('data_seed', 0)}"


def grid_cell(record: dict[str, Any]) -> tuple[str, str, str, str, int, str] | None:
    """(model, intermediate, size label, target, seed, stage-1 seed) from a config, or None when the config is
    unusable. The stage-1 seed is ``intermediate.seed`` where it is set and a stage 1 runs, else ``""``: a study
    with several stage-1 encoders a cell (``intermediate.seed=0,1,2,3``) has one grid cell per encoder and seed."""
    try:
        cfg = record["config"]
        size = cfg["intermediate"]["size"]
        stage1_seed = cfg["intermediate"].get("seed")
        stage1 = "" if size == 0 or stage1_seed is None else str(int(stage1_seed))  # intermediate=none is size 0
        return (str(cfg["model"]["name"]), str(cfg["intermediate"]["name"]),
                "full" if size is None else str(int(size)), str(cfg["target"]["name"]), int(cfg["seed"]), stage1)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Corrupt(f"metric value {value!r} is not a number")
    return float(value)


def _rows(record: dict[str, Any], job_dir: Path, sweep_dir: Path) -> list[dict[str, Any]]:
    """The tidy rows of one finished job, raw (calibrator ``none``) and under each calibrator it recorded
    (raises _Corrupt on a malformed record)."""
    cfg = _get(record, "config")
    size, size_label = _size(record)
    seed = _as_int(_get(cfg, "seed"), "config.seed")
    data_seed = cfg.get("data_seed", seed)
    temperature = record.get("temperature")
    n_bins = (cfg.get("calibration") or {}).get("n_bins")
    base = {
        "sweep": str(cfg.get("sweep_name") or sweep_dir.name),
        "job": job_dir.name,
        "job_dir": str(job_dir),
        "intermediate": str(_get(cfg, "intermediate", "name")),
        "size": size,
        "size_label": size_label,
        "target": str(_get(cfg, "target", "name")),
        "model": str(_get(cfg, "model", "name")),
        "seed": seed,
        "data_seed": _as_int(data_seed, "config.data_seed"),
        "encoder": _encoder(record, size_label),
    }
    primary = record.get("primary_split")
    columns = result_columns()
    zeroshot = _get(record, "zeroshot")
    if not isinstance(zeroshot, dict) or not zeroshot:
        raise _Corrupt("'zeroshot' is empty or not an object")
    rows = []
    for language, splits in zeroshot.items():
        if not isinstance(splits, dict):
            raise _Corrupt(f"zeroshot.{language} is not an object")
        for split, entry in splits.items():
            if not isinstance(entry, dict):
                raise _Corrupt(f"zeroshot.{language}.{split} is not an object")
            for calibrator, values in ((RAW, entry), *calibrated_entries(entry).items()):
                where = f"zeroshot.{language}.{split}" + (
                    "" if calibrator == RAW else ".ts" if "ts" in entry and calibrator == LEGACY_TS
                    else f".calibrated.{calibrator}")
                row = {**base, "language": str(language), "zero_shot": language != TRAINING_LANGUAGE,
                       "split": str(split), "calibrator": calibrator}
                for metric in columns:
                    if metric in values:
                        row[metric] = _number(values[metric])
                if "n" not in values:
                    raise _Corrupt(f"missing key '{where}.n'")
                row["n"] = _as_int(values["n"], f"{where}.n")
                diagram = values.get("reliability_diagram") if calibrator == RAW else None
                plot = job_dir / "plots" / str(diagram) if diagram else None
                row["reliability_diagram"] = str(plot.resolve()) if plot is not None and plot.is_file() else ""
                row["primary"] = split == primary
                row["temperature"] = math.nan if temperature is None else _number(temperature)
                row["n_bins"] = -1 if n_bins is None else _as_int(n_bins, "config.calibration.n_bins")
                rows.append(row)
    return rows


def started_config(job_dir: Path) -> dict[str, Any] | None:
    """``{"config": ...}`` from the ``.hydra/config.yaml`` Hydra writes when a job starts, so an unfinished
    job still names its grid cell; None when there is none or it cannot be read."""
    import yaml

    try:
        config = yaml.safe_load((job_dir / ".hydra" / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return {"config": config} if isinstance(config, dict) else None


def read_job(job_dir: Path, source: Path) -> Job:
    path = job_dir / RESULTS_FILE
    job = Job(name=job_dir.name, job_dir=job_dir.resolve(), source=source, status="missing")
    if not path.is_file():
        job.error = f"no {RESULTS_FILE} (the job did not finish, is still running, or was killed)"
        job.record = started_config(job_dir)
        return job
    try:
        record = read_record(path)
    except RecordError as exc:
        job.status, job.error = "corrupt", str(exc)
        return job
    job.record = record
    status = record.get("status")
    if status == "failed":
        error = str(record.get("error") or "no error message recorded").strip().splitlines()
        job.status, job.error = "failed", error[0] if error else "no error message recorded"
        return job
    if status == "running":
        job.error = "results.json says status 'running' (the job is still running or was killed)"
        return job
    if status != "ok":
        job.status, job.error = "corrupt", f"unknown status {status!r} (expected 'ok' or 'failed')"
        return job
    try:
        job.rows = _rows(record, job.job_dir, source)
    except _Corrupt as exc:
        job.status, job.error = "corrupt", f"{RESULTS_FILE} is incomplete: {exc}"
        return job
    job.status = "ok"
    return job
