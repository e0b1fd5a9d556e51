"""The terminal table over a sweep: averaging over seeds, the language mean, unusable files."""

from __future__ import annotations

import json
from pathlib import Path

from xcal.pipeline.results import flat_metrics, language_means
from xcal.report.summary import collect, format_table


def record(size: int, seed: int, ece_en: float, ece_de: float) -> dict:
    def entry(ece: float) -> dict:
        return {"test": {"accuracy": 0.5, "ece": ece, "brier": 0.6, "nll": 1.0, "n": 10,
                         "ts": {"accuracy": 0.5, "ece": ece / 2, "brier": 0.5, "nll": 0.9}}}

    return {"status": "ok", "primary_split": "test",
            "config": {"intermediate": {"size": size}, "seed": seed},
            "zeroshot": {"en": entry(ece_en), "de": entry(ece_de)}}


def write(path: Path, obj: object) -> None:
    path.mkdir(parents=True)
    (path / "results.json").write_text(obj if isinstance(obj, str) else json.dumps(obj))


def test_table_averages_seeds_and_languages(tmp_path: Path) -> None:
    write(tmp_path / "a", record(0, 0, 0.10, 0.20))
    write(tmp_path / "b", record(0, 1, 0.30, 0.40))
    write(tmp_path / "c", record(1000, 0, 0.05, 0.15))
    write(tmp_path / "d", "{ truncated")
    write(tmp_path / "e", {"status": "failed", "error": "NaN loss"})
    records, notes = collect(tmp_path)
    assert len(records) == 3
    assert len(notes) == 2 and "unreadable" in notes[0] and "NaN loss" in notes[1]
    lines = {line.split()[0]: line.split() for line in format_table(records).splitlines()}
    header = lines["lang"]
    ece0, ece1000 = header.index("ece@0"), header.index("ece@1000")
    assert lines["en"][ece0] == "0.200" and lines["de"][ece0] == "0.300"
    assert lines["mean"][ece0] == "0.250" and lines["mean"][ece1000] == "0.100"
    calibrated = {line.split()[0]: line.split() for line in format_table(records, calibrated=True).splitlines()}
    assert calibrated["mean"][ece0] == "0.125"


def test_flat_metric_names_and_language_means() -> None:
    zeroshot = record(0, 0, 0.1, 0.3)["zeroshot"]
    flat = flat_metrics(zeroshot, "test")
    assert flat["zeroshot/en/ece"] == 0.1
    assert flat["zeroshot/de/test/ece_ts"] == 0.15
    assert language_means(zeroshot, "test")["ece"] == 0.2
