"""Read a finished (or partly finished) sweep into one tidy table, and say what is missing or wrong.

A sweep is ``multirun/<sweep>/<job>/results.json``, one file per job (written by ``xcal -m ...``). Every
number a report shows comes from these files, so this module is the only reader: it never parses job
directory names (everything comes from the JSON), keeps every good result when some jobs failed, were
killed or were copied twice, and turns each such case into a plain-English note in ``Sweep.problems``
instead of an exception. Only input with no usable result at all raises :class:`ReportError`.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xcal.calibration.registry import RAW, calibrator_names
from xcal.errors import XcalError
from xcal.metrics.binning import DEFAULT_N_BINS
from xcal.metrics.registry import result_columns
from xcal.pipeline.record import RESULTS_FILE, read_record_or_none
from xcal.report.jobs import (
    TRAINING_LANGUAGE,
    Job,
    grid_cell,
    read_job,
    started_config,
)

# Re-exported: the report modules take the layout's names from here.
__all__ = ["NO_INTERMEDIATE", "TRAINING_LANGUAGE", "ReportError", "Sweep", "load_predictions",
           "load_sweep", "write_tidy"]

EXPECTED_LAYOUT = "multirun/<sweep>/<job>/results.json"
PRODUCED_BY = "`xcal -m ...` (a Hydra multirun) writes one per job"

ID_COLUMNS = (
    "sweep", "job", "job_dir", "intermediate", "size", "size_label", "target", "model", "seed", "data_seed",
    "language", "zero_shot", "split", "calibrator",
)
#: Appended after ``n`` and ``reliability_diagram``: the job's primary split, temperature, bin count and stage-1
#: encoder.
EXTRA_COLUMNS = ("primary", "temperature", "n_bins", "encoder")
NO_INTERMEDIATE = "none"
#: Settings that change what a number means: results that differ in one must not be averaged together.
COMPATIBILITY_KEYS = (("model", "name_or_path"), ("calibration", "n_bins"), ("target", "eval_size"))
JOB_STATUSES = ("ok", "failed", "corrupt", "missing")
_MAX_CELL_NOTES = 50


def bins_of(n_bins: Iterable[int]) -> int:
    """The bin count jobs were scored with, from their ``n_bins`` column (``calibration.n_bins``): the most common
    one where they differ (:func:`load_sweep` notes that as a mixed sweep), :data:`DEFAULT_N_BINS` for records
    written before the key (``-1``) or for none."""
    counts = Counter(int(n) for n in n_bins if int(n) > 0)
    return counts.most_common(1)[0][0] if counts else DEFAULT_N_BINS


class ReportError(XcalError, ValueError):
    """Input a report cannot be made from (no sweep there, nothing finished); the message says how to fix it."""


@dataclass
class Sweep:
    """Everything a report needs from one or several sweep directories."""

    table: pd.DataFrame  # tidy: one row per (job, language, split, calibrator); calibrator "none": raw
    jobs: pd.DataFrame  # one row per job directory found: job, job_dir, sweep, status, error, used
    problems: list[str] = field(default_factory=list)  # failed/corrupt/missing jobs, missing cells, mixed sweeps
    sources: list[Path] = field(default_factory=list)  # the sweep directories read


def _expected() -> str:
    return f"expected {EXPECTED_LAYOUT} files ({PRODUCED_BY})"


def _job_dirs(path: Path) -> list[Path]:
    """Job directories of a sweep dir: children holding a results.json or a ``.hydra`` folder (a started job)."""
    return sorted(c for c in path.iterdir() if c.is_dir() and not c.name.startswith(".")
                  and ((c / RESULTS_FILE).is_file() or (c / ".hydra").is_dir()))


def _find_jobs(path: Path) -> list[Path]:
    """The job dirs under one user-given path (a sweep dir, or a single job dir), or a ReportError."""
    if not path.exists():
        raise ReportError(f"sweep directory {path} does not exist; {_expected()}. Pass the sweep directory, "
                          f"e.g. multirun/<sweep_name>.")
    if not path.is_dir():
        hint = f" (it is a results file: pass its sweep directory {path.parent.parent})" \
            if path.name == RESULTS_FILE else ""
        raise ReportError(f"{path} is not a directory{hint}; {_expected()}.")
    if (path / RESULTS_FILE).is_file():
        return [path]  # one job's directory: a one-job report
    jobs = _job_dirs(path)
    if any((j / RESULTS_FILE).is_file() for j in jobs):
        return jobs
    if not any(path.iterdir()):
        raise ReportError(f"sweep directory {path} is empty; {_expected()}. Run the sweep first, or pass the "
                          f"directory it wrote to.")
    nested = sorted({p.parent.parent for p in path.glob(f"*/*/{RESULTS_FILE}")})
    if nested:
        names = ", ".join(str(p) for p in nested[:10])
        raise ReportError(f"{path} holds several sweeps, not jobs ({names}); pass one or several of these sweep "
                          f"directories; {_expected()}.")
    started = f" ({len(jobs)} job directories, none finished yet)" if jobs else ""
    raise ReportError(f"no {RESULTS_FILE} under {path}{started}; {_expected()}. Pass the sweep directory a "
                      f"multirun wrote, or wait until its jobs finish.")


def _first_difference(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> str:
    """Where two zeroshot dicts first differ, e.g. ``de.test.ece 0.1 vs 0.2``."""
    for key in sorted(set(a) | set(b), key=str):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            found = _first_difference(x, y, f"{prefix}{key}.")
            if found:
                return found
        elif x != y:
            return f"{prefix}{key} {x!r} vs {y!r}"
    return ""


def _deduplicate(jobs: list[Job], problems: list[str]) -> None:
    """Mark the copies to use when a job name appears in several sweep dirs.

    Finished copies of the same configuration (same ``config_hash``) are one job: the first given is kept and
    a note names the first number that differs, if any. Finished copies of different configurations that
    share a directory name are different jobs and all kept. A failed, corrupt or unfinished copy is used only
    when no copy of that name finished.
    """
    by_name: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_name[job.name].append(job)
    for name, copies in by_name.items():
        finished = [j for j in copies if j.status == "ok"]
        if not finished:
            rank = {"failed": 0, "corrupt": 1, "missing": 2}
            min(copies, key=lambda j: rank[j.status]).used = True  # min is stable: the first given wins ties
            continue
        by_config: dict[Any, list[Job]] = defaultdict(list)
        for job in finished:
            by_config[(job.record or {}).get("config_hash")].append(job)
        for same in by_config.values():
            kept = same[0]
            kept.used = True
            for other in same[1:]:
                diff = _first_difference((kept.record or {}).get("zeroshot", {}),
                                         (other.record or {}).get("zeroshot", {}))
                if diff:
                    problems.append(f"duplicate job {name!r} with different numbers in {kept.source} and "
                                    f"{other.source} (first difference: zeroshot.{diff}); kept the copy in "
                                    f"{kept.source}")


def _job_problems(jobs: list[Job]) -> list[str]:
    notes = []
    for job in jobs:
        if job.used and job.status != "ok":
            notes.append(f"{job.status} job {job.name!r} ({job.job_dir}): {job.error}")
    return notes


def _grid_problems(jobs: list[Job]) -> list[str]:
    """Cells of the grid ((intermediate, its sizes, their stage-1 seeds) x target x seed, per model) that have no
    finished result, and cells with more than one."""
    Cell = tuple[str, str, str, str, int, str]
    located: list[tuple[Job, Cell]] = []
    for job in jobs:
        if not job.used:
            continue
        cell = grid_cell(job.record) if job.record is not None else None
        if cell is None:  # unreadable or incomplete results.json: the config Hydra wrote at the start
            started = started_config(job.job_dir)
            cell = grid_cell(started) if started is not None else None
        if cell is not None:
            located.append((job, cell))
    # where every job's stage-1 seed is its target seed (the default, intermediate.seed=${seed}), the stage-1 seed
    # is not a factor of the grid; where it varies on its own (intermediate.seed=0,1,2,3), it is
    independent = {c[:3] for _, c in located if c[5] not in ("", str(c[4]))}
    done: Counter[Cell] = Counter()
    tried: dict[Cell, list[Job]] = defaultdict(list)
    names: dict[Cell, list[str]] = defaultdict(list)
    for job, cell in located:
        cell = cell if cell[:3] in independent else (*cell[:5], "")
        if job.status == "ok":
            done[cell] += 1
            names[cell].append(job.name)
        else:
            tried[cell].append(job)
    seen = list(done) + list(tried)
    notes: list[str] = []
    # with several stage-1 seeds in the sweep, each (intermediate, size) is crossed with the ones it has
    several = len({c[5] for c in seen if c[5]}) > 1

    def stage1(cell: Cell) -> str:
        return f" intermediate.seed={cell[5]}" if several and cell[5] else ""

    for model in sorted({c[0] for c in seen}):
        cells = [c for c in seen if c[0] == model]
        values = [sorted({c[i] for c in cells}, key=_sort_key) for i in range(1, 4)]  # seeds: per task
        # a size-0 job trains no stage 1: one of them serves every ladder that has none of its own
        shared_baseline = "0" in values[1]
        own_baseline = {c[1] for c in cells if c[2] == "0"}
        # each intermediate task has its own size ladder (a study may give tasks of different sizes different
        # sizes) and its own seeds (a study may give its shared baseline more seeds than the ladders: the
        # fixed-budget study has 12); targets are crossed with every (intermediate, size), and so are the seeds
        # the task has anywhere
        ladders = {i: sorted({c[2] for c in cells if c[1] == i} | ({"0"} & set(values[1])), key=_sort_key)
                   for i in values[0]}
        seeds = {i: sorted({c[4] for c in cells if c[1] == i}) for i in values[0]}
        combos = [(i, size, seed) for i in values[0] for size in ladders[i] for seed in seeds[i]]
        for (intermediate, size, seed), target in itertools.product(combos, values[2]):
            if intermediate == NO_INTERMEDIATE and size != "0":
                continue  # the no-intermediate baseline exists at size 0 only
            if size == "0" and shared_baseline and intermediate not in own_baseline:
                continue  # the shared size-0 jobs are this intermediate's baseline
            for s1 in sorted({c[5] for c in cells if c[1:3] == (intermediate, size)} or {""}, key=_sort_key):
                cell = (model, intermediate, size, target, seed, s1)
                if done[cell]:
                    continue
                why = "; ".join(f"job {j.name!r} {j.status}: {j.error}" for j in tried.get(cell, []))
                where = f" (model {model})" if len({c[0] for c in seen}) > 1 else ""
                notes.append(f"missing grid cell intermediate={intermediate} size={size}{stage1(cell)} target={target} "
                             f"seed={seed}{where}: {why or 'no job directory for it'}")
    for cell, count in sorted(done.items(), key=lambda kv: tuple(map(_sort_key, kv[0]))):
        if count > 1:
            notes.append(f"grid cell intermediate={cell[1]} size={cell[2]}{stage1(cell)} target={cell[3]} "
                         f"seed={cell[4]} has {count} finished jobs ({', '.join(sorted(names[cell]))}); all are "
                         "kept and averaged like extra seeds")
    if len(notes) > _MAX_CELL_NOTES:
        notes = [*notes[:_MAX_CELL_NOTES], f"... and {len(notes) - _MAX_CELL_NOTES} more grid-cell notes"]
    return notes


def _sort_key(value: Any) -> tuple[int, Any]:
    """Numbers in numeric order, then words ("full" after every number)."""
    if isinstance(value, (int, float)):
        return (0, value)
    text = str(value)
    return (0, int(text)) if text.isdigit() else (1, text)


def _mixed_problems(jobs: list[Job]) -> list[str]:
    notes = []
    ok = [j for j in jobs if j.used and j.status == "ok" and j.record is not None]
    for keys in COMPATIBILITY_KEYS:
        values: Counter[str] = Counter()
        for job in ok:
            node: Any = job.record.get("config", {}) if job.record else {}
            for key in keys:
                node = node.get(key) if isinstance(node, dict) else None
            values[json.dumps(node)] += 1
        if len(values) > 1:
            listed = ", ".join(f"{v} ({n} jobs)" for v, n in sorted(values.items()))
            notes.append(f"mixed sweeps: {'.'.join(keys)} differs between jobs: {listed}; numbers from different "
                         f"values must not be averaged together (the `model` column separates models; pass the "
                         f"sweeps separately otherwise)")
    return notes


def _table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    present = [c for c in result_columns() if any(c in r for r in rows)]
    columns = [*ID_COLUMNS, *present, "n", "reliability_diagram", *EXTRA_COLUMNS]
    table = pd.DataFrame(rows, columns=columns)
    for col in ("size", "seed", "data_seed", "n", "n_bins"):
        table[col] = table[col].astype("int64")
    for col in ("zero_shot", "primary"):
        table[col] = table[col].astype(bool)
    for col in (*present, "temperature"):
        table[col] = table[col].astype("float64")
    for col in ("sweep", "job", "job_dir", "intermediate", "size_label", "target", "model", "language", "split",
                "calibrator", "reliability_diagram"):
        table[col] = table[col].astype(str)
    return sort_table(table)


def sort_table(table: pd.DataFrame) -> pd.DataFrame:
    """The tidy table's row order: by experiment, size, seed, job, language, split, then calibrator (raw first,
    then the registry's order, then calibrators it does not know, by name)."""
    return table.sort_values(["model", "intermediate", "target", "size", "seed", "job", "language", "split",
                              "calibrator"], key=_calibrators_in_order, kind="stable", ignore_index=True)


def _calibrators_in_order(column: pd.Series) -> pd.Series:
    """Sort key of the calibrator column (the others sort as they are)."""
    if column.name != "calibrator":
        return column
    known = calibrator_names()
    rank = {RAW: 0, **{name: i + 1 for i, name in enumerate(known)}}
    return column.map(lambda name: f"{rank.get(name, len(rank)):04d} {name}")


def load_sweep(paths: Path | str | list[Path] | list[str]) -> Sweep:
    """Read one or several sweep directories (e.g. copies from several machines) into a :class:`Sweep`.

    Raises:
        ReportError: a path does not exist, is empty, is not a sweep, or no job in any path finished.
    """
    given = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not given:
        raise ReportError(f"no sweep directory given; {_expected()}.")
    sources: list[Path] = []
    jobs: list[Job] = []
    for raw in given:
        path = Path(raw).expanduser()
        job_dirs = _find_jobs(path)
        source = path.resolve() if job_dirs != [path] else path.resolve().parent
        sources.append(source)
        jobs.extend(read_job(job_dir, source) for job_dir in job_dirs)
    problems: list[str] = []
    _deduplicate(jobs, problems)
    good = [j for j in jobs if j.used and j.status == "ok"]
    if not good:
        listed = "; ".join(f"{j.name}: {j.status} ({j.error})" for j in jobs[:10])
        raise ReportError(f"no finished job in {', '.join(map(str, sources))} ({len(jobs)} job directories: "
                          f"{listed}); {_expected()} with status 'ok'. Fix or re-run the failed jobs.")
    problems = [*_job_problems(jobs), *problems, *_grid_problems(jobs), *_mixed_problems(jobs)]
    table = _table([row for job in good for row in job.rows])
    jobs_frame = pd.DataFrame(
        [{"job": j.name, "job_dir": str(j.job_dir), "sweep": str(j.source), "status": j.status, "error": j.error,
          "used": j.used} for j in jobs],
        columns=["job", "job_dir", "sweep", "status", "error", "used"],
    )
    return Sweep(table=table, jobs=jobs_frame, problems=problems, sources=sources)


def write_tidy(sweep: Sweep, out_dir: Path) -> dict[str, Path]:
    """The tidy table as ``results.csv`` and ``results.parquet`` in ``out_dir`` (for pandas, R, spreadsheets)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "results.csv", "parquet": out_dir / "results.parquet"}
    sweep.table.to_csv(paths["csv"], index=False)
    sweep.table.to_parquet(paths["parquet"], index=False)
    return paths


def load_logits(job_dir: Path, language: str, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(logits [N, K] float64, labels [N] int64)`` of one eval set from ``predictions/<lang>_<split>.npz``; None
    when the job saved no predictions for it (``calibration.save_predictions=false``, older runs).

    Raises:
        ReportError: the npz file exists but cannot be read (truncated copy, wrong arrays).
    """
    job_dir = Path(job_dir)
    record = read_record_or_none(job_dir / RESULTS_FILE) or {}
    folder = record.get("predictions") or "predictions"
    path = job_dir / str(folder) / f"{language}_{split}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            logits = np.asarray(data["logits"], dtype=np.float64)
            labels = np.asarray(data["labels"], dtype=np.int64)
    except Exception as exc:  # zipfile / pickle / KeyError: every way a copied npz can be broken
        raise ReportError(f"predictions file {path} cannot be read ({type(exc).__name__}: {exc}); expected an npz "
                          f"with arrays 'logits' [N, K] and 'labels' [N] as xcal writes them. Copy it again or "
                          f"delete it (the report then bootstraps over seeds only).") from exc
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ReportError(f"predictions file {path} has logits of shape {logits.shape} and labels of shape "
                          f"{labels.shape}; expected [N, K] and [N]. Copy it again or delete it.")
    return logits, labels


def load_predictions(
    job_dir: Path, language: str, split: str, calibrator: str = RAW
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(probs [N, K] float64, labels [N])`` of one eval set from ``predictions/<lang>_<split>.npz``: the softmax
    of its logits, or (``calibrator`` a registered name) the calibrated probabilities
    (:func:`xcal.report.rescoring.job_calibrator`: the job's recorded fit, else one fitted on its saved dev
    logits). None when the job saved no predictions, or none of the set the calibrator is fitted on.

    Raises:
        ReportError: the npz file exists but cannot be read; the calibrator is not registered.
    """
    loaded = load_logits(job_dir, language, split)
    if loaded is None:
        return None
    logits, labels = loaded
    if calibrator == RAW:
        shifted = logits - logits.max(axis=-1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=-1, keepdims=True), labels
    from xcal.report.rescoring import job_calibrator

    fitted = job_calibrator(Path(job_dir), calibrator, language, split, logits.shape[1])
    return None if fitted is None else (fitted.apply(logits).numpy(), labels)
