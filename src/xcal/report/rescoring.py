"""Re-score a finished sweep under post-hoc calibrators from the predictions its jobs saved: no model, no training.

A job's results.json holds the calibrators it ran with (``calibrated.<name>``, or a legacy ``ts``: temperature
scaling). Any other registered calibrator is fitted here on the job's saved dev logits (English dev; the
language's own dev for an oracle) and every saved set is scored with the registry's metrics, through the engine a
job itself uses (:func:`xcal.calibration.rescore.rescore`): a re-scored number equals the one the job would have
recorded, example-bootstrap intervals aside (re-scoring computes none; the report's intervals are over seeds). By
default only the metrics the report's tables show are re-scored (:data:`~xcal.metrics.TABLE`): the detail ones
cost far more (smooth ECE's bandwidth search is most of a full report) and are left empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import pandas as pd

from xcal.calibration import Calibrator, get_calibrator
from xcal.calibration.registry import RAW
from xcal.calibration.rescore import fit_key, rescore
from xcal.metrics.registry import TABLE, metric_names, result_columns
from xcal.pipeline.record import LEGACY_TS, RESULTS_FILE, calibrated_entries, read_record_or_none
from xcal.report.collect import ReportError, Sweep, bins_of, load_logits, sort_table


def check_calibrators(names: Sequence[str], where: str = "--calibrators") -> tuple[str, ...]:
    """``names`` as registered calibrator names (each once), or a :class:`ReportError` naming the unknown ones
    and the registered ones."""
    from xcal.calibration import calibrator_names

    known = calibrator_names()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ReportError(f"{where}: unknown calibrator(s) {', '.join(unknown)}; registered: {', '.join(known)} "
                          f"(comma-separated, e.g. {where} temperature,vector)")
    return tuple(dict.fromkeys(names))


def job_calibrator(job_dir: Path, name: str, language: str, split: str, num_classes: int) -> Calibrator | None:
    """The calibrator ``name`` as it applies to one saved set of a job: restored from the parameters the job
    recorded for that set, a legacy record's temperature, or fitted on the job's saved fit set (cached). None
    when the job recorded no such fit and saved no predictions of the fit set."""
    spec = get_calibrator(name)
    record = read_record_or_none(Path(job_dir) / RESULTS_FILE) or {}
    entry = ((record.get("zeroshot") or {}).get(language) or {}).get(split)
    values = calibrated_entries(entry).get(name) if isinstance(entry, dict) else None
    if values is not None and isinstance(values.get("parameters"), dict):
        return spec.restore(values["parameters"])
    if values is not None and name == LEGACY_TS and record.get("temperature") is not None:
        return spec.restore({"num_classes": num_classes, "temperature": record["temperature"]})
    return _fitted(str(job_dir), name, fit_key(spec, (language, split)))


@lru_cache(maxsize=256)
def _fitted(job_dir: str, name: str, key: tuple[str, str]) -> Calibrator | None:
    loaded = load_logits(Path(job_dir), *key)
    return None if loaded is None else get_calibrator(name).build().fit(*loaded)


def _job_sets(job_dir: Path, keys: list[tuple[str, str]]) -> tuple[dict, dict] | None:
    """The job's saved logits and labels of ``keys`` and of every dev set (the fit sets), or None without any."""
    logits, labels = {}, {}
    for key in dict.fromkeys([*keys, *((language, "dev") for language, _ in keys)]):
        loaded = load_logits(job_dir, *key)
        if loaded is not None:
            logits[key], labels[key] = loaded
    return (logits, labels) if logits else None


def rescore_sweep(sweep: Sweep, calibrators: Sequence[str], metrics: Sequence[str] | None = None) -> Sweep:
    """``sweep`` with a row per (job, language, split) for each of ``calibrators`` the job did not record,
    re-scored from its saved predictions on ``metrics`` (default: those shown in tables, ``shown=TABLE``); a job
    that cannot be re-scored (no predictions, no fit set) keeps its rows and gets a note in ``problems``.
    Recorded calibrators are read as they are (the committed ``ts`` records too)."""
    names = check_calibrators(calibrators)
    scored = metric_names(shown=TABLE, scored=True) if metrics is None else tuple(metrics)
    table = sweep.table
    if not names or table.empty:
        return sweep
    raw = table[table["calibrator"] == RAW]
    have = table.groupby("job_dir")["calibrator"].agg(set)
    metrics = [c for c in result_columns() if c in table.columns]
    rows, problems = [], []
    for job_dir, sets in raw.groupby("job_dir", sort=False):
        missing = [n for n in names if n not in have[job_dir]]
        if not missing:
            continue
        keys = list(zip(sets["language"], sets["split"], strict=True))
        data = _job_sets(Path(job_dir), keys)
        if data is None:
            problems.append(f"job {sets['job'].iloc[0]!r} saved no predictions, so {', '.join(missing)} could not "
                            f"be re-scored for it (calibration.save_predictions=true keeps them)")
            continue
        try:
            scores = rescore(*data, missing, n_bins=bins_of(sets["n_bins"]), metrics=scored)
        except ValueError as exc:
            problems.append(f"job {sets['job'].iloc[0]!r}: {', '.join(missing)} not re-scored: {exc}")
            continue
        for _, row in sets.iterrows():
            for name in missing:
                values = scores[(row["language"], row["split"])][name]
                new = row.drop(labels=metrics).to_dict()
                new.update({m: values[m] for m in metrics if m in values}, calibrator=name, n=values["n"],
                           reliability_diagram="")
                rows.append(new)
    if not rows and not problems:
        return sweep
    added = pd.DataFrame(rows, columns=table.columns) if rows else table.iloc[0:0]
    merged = sort_table(pd.concat([table, added.astype(table.dtypes.to_dict())], ignore_index=True))
    return Sweep(table=merged, jobs=sweep.jobs, problems=[*sweep.problems, *problems], sources=sweep.sources)


def calibrators_in(table: pd.DataFrame) -> list[str]:
    """The calibrators a tidy table has rows for, raw first, in table order."""
    return list(dict.fromkeys(table["calibrator"])) if "calibrator" in table else [RAW]

