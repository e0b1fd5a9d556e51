"""The keys a job logs (``zeroshot/<lang>/<metric>``) and the language means the sweeper optimises."""

from __future__ import annotations

from xcal.pipeline.record import flat_metrics, language_means


def zeroshot(ece_en: float, ece_de: float) -> dict:
    def entry(ece: float) -> dict:
        return {"test": {"accuracy": 0.5, "ece": ece, "brier": 0.6, "nll": 1.0, "n": 10,
                         "ts": {"accuracy": 0.5, "ece": ece / 2, "brier": 0.5, "nll": 0.9}}}

    return {"en": entry(ece_en), "de": entry(ece_de)}


def test_flat_metric_names_and_language_means() -> None:
    results = zeroshot(0.1, 0.3)
    flat = flat_metrics(results, "test")
    assert flat["zeroshot/en/ece"] == 0.1
    assert flat["zeroshot/de/test/ece_ts"] == 0.15
    assert language_means(results, "test")["ece"] == 0.2
