"""The keys a job logs (``zeroshot/<lang>/<metric>``, ``.../<metric>/<calibrator>``), the language means the
sweeper optimises, and the calibrated entries of a record, in today's layout and the one written before the
calibrator registry (``ts``)."""

from __future__ import annotations

from xcal.pipeline.record import calibrated_entries, flat_metrics, language_means


def zeroshot(ece_en: float, ece_de: float, legacy: bool = False) -> dict:
    def entry(ece: float) -> dict:
        scaled = {"accuracy": 0.5, "ece": ece / 2, "brier": 0.5, "nll": 0.9}
        values = {"accuracy": 0.5, "ece": ece, "brier": 0.6, "nll": 1.0, "n": 10}
        if legacy:
            return {"test": {**values, "ts": scaled}}
        return {"test": {**values, "calibrated": {
            "temperature": {**scaled, "fit_set": ["en", "dev"], "parameters": {"num_classes": 3, "temperature": 1.5}},
            "vector": {**scaled, "ece": ece / 4, "fit_set": ["en", "dev"], "parameters": {"num_classes": 3}}}}}

    return {"en": entry(ece_en), "de": entry(ece_de)}


def test_flat_metric_names_and_language_means() -> None:
    results = zeroshot(0.1, 0.3)
    flat = flat_metrics(results, "test")
    assert flat["zeroshot/en/ece"] == 0.1
    assert flat["zeroshot/de/test/ece/temperature"] == 0.15 and flat["zeroshot/de/ece/vector"] == 0.075
    assert not [k for k in flat if "fit_set" in k or "parameters" in k or "calibrated" in k]
    assert language_means(results, "test") == {"accuracy": 0.5, "ece": 0.2, "brier": 0.6, "nll": 1.0}


def test_a_record_written_before_the_registry_reads_its_ts_as_temperature() -> None:
    legacy, today = zeroshot(0.1, 0.3, legacy=True), zeroshot(0.1, 0.3)
    assert list(calibrated_entries(legacy["de"]["test"])) == ["temperature"]
    assert list(calibrated_entries(today["de"]["test"])) == ["temperature", "vector"]
    assert calibrated_entries({"ece": 0.1}) == {}
    flat = flat_metrics(legacy, "test")
    assert flat["zeroshot/de/test/ece/temperature"] == 0.15
    assert {k: v for k, v in flat.items() if "vector" not in k} == {
        k: v for k, v in flat_metrics(today, "test").items() if "vector" not in k}
