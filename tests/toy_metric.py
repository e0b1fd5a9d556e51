"""A toy metric, declared in this one file: the mean top-label confidence. Importing the module registers it, and
from then on it is in every ``results.json`` entry (raw and per calibrator), the logged keys and W&B's table, and
the report's tidy table and summary tables (``shown=TABLE``) -- no other file changes."""

from __future__ import annotations

from xcal.metrics import TABLE, MetricSpec, SetStats, register_metric

NAME = "toy_confidence"


def mean_confidence(stats: SetStats) -> float:
    """Mean top-label confidence of one set of predictions."""
    return float(stats.conf.mean())


register_metric(MetricSpec(NAME, "Toy confidence", False, mean_confidence, shown=TABLE))
