"""One registry of metrics: each is declared once, and every list of metric names in xcal is read from here.

A :class:`MetricSpec` says what a metric is -- its key in ``results.json``, its display name, which way is better,
how it is computed from one set of predictions, whether its interval resamples the examples, where the report
shows it by default, and which ``torchmetrics.Metric`` logs it on English dev during training. From the registry
derive :func:`xcal.metrics.calibration_report` (and its bootstrap intervals), the keys of ``results.json``, the
loggers' and W&B's tables, the training module's dev metrics, the report's columns and default selections, and
the findings' scores. Adding a metric is its module, one :func:`register_metric` line (the built-ins' are in
:mod:`xcal.metrics.suite`) and its test.

Example:
    >>> from xcal.metrics import metric_names, get_metric
    >>> metric_names(shown=HEADLINE)
    ('accuracy', 'ece', 'brier', 'nll')
    >>> get_metric("ece").label
    'ECE'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from torch import Tensor

from xcal.metrics._inputs import Prepared
from xcal.metrics.binning import assign_bins, bin_sums, quantile_edges, top_label, uniform_edges

if TYPE_CHECKING:
    from torchmetrics import Metric

#: Where a metric is shown by default: every table, figure, logger summary and the sweeper's objective ...
HEADLINE = "headline"
#: ... the report's and the logger's summary tables ...
TABLE = "table"
#: ... or only ``results.json``, the logged keys and the tidy table.
DETAIL = "detail"
_SHOWN = (HEADLINE, TABLE, DETAIL)

#: Keys of a results entry that are not metrics (a metric may not take them).
RESERVED = frozenset({"n", "examples", "reliability_diagram", "calibrated", "ts", "fit_set", "parameters"})
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

#: ``(features (N, K), compute: (R, K) resampled sums -> (R,) values)``: a metric as a fixed function of
#: per-example features summed over examples, which the bootstrap evaluates on every resample at once.
Decomposition = tuple[Tensor, Callable[[Tensor], Tensor]]


class SetStats:
    """One set of validated predictions and what several metrics of it share, each computed on first use: the
    top-label confidences, the equal-width and equal-mass bin sums and the per-example Brier score. The metrics of
    a :func:`~xcal.metrics.calibration_report` then cost little more than the most expensive one."""

    def __init__(self, prepared: Prepared, n_bins: int) -> None:
        self.p = prepared
        self.n_bins = n_bins

    @cached_property
    def top_label(self) -> tuple[Tensor, Tensor]:
        """Top-label confidence and 0/1 correctness, float64 ``(N,)`` each."""
        return top_label(self.p.probs, self.p.labels)

    @property
    def conf(self) -> Tensor:
        return self.top_label[0]

    @property
    def correct(self) -> Tensor:
        return self.top_label[1]

    @cached_property
    def uniform(self) -> tuple[Tensor, Tensor, Tensor]:
        """Count, confidence and correctness sums of ``n_bins`` equal-width bins."""
        return bin_sums(self.conf, self.correct, assign_bins(self.conf, uniform_edges(self.n_bins)), self.n_bins)

    @cached_property
    def quantile(self) -> tuple[Tensor, Tensor, Tensor]:
        """The same sums over (at most) ``n_bins`` equal-mass bins."""
        edges = quantile_edges(self.conf, self.n_bins)
        return bin_sums(self.conf, self.correct, assign_bins(self.conf, edges), edges.shape[0] - 1)

    @cached_property
    def brier_each(self) -> Tensor:
        """Per-example multiclass Brier score."""
        from xcal.metrics.scores import _brier_per_example

        return _brier_per_example(self.p)


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric.

    Attributes:
        name: its key in ``results.json``, column of the tidy table and logger key (lowercase, digits, ``_``).
        label: how tables, sentences and figure axes name it.
        higher_is_better: the direction of improvement.
        compute: its value on one set of predictions; None for a task score, which the evaluation writes from
            more than probabilities and labels (entity F1 from tag sequences, nDCG from query groups).
        resample: its :data:`Decomposition` for the vectorised example bootstrap; None: not resampled.
        interval: ``calibration_report`` adds ``<name>_ci_low`` / ``<name>_ci_high`` (needs ``resample``).
        shown: :data:`HEADLINE`, :data:`TABLE` or :data:`DETAIL` (where the report shows it by default).
        calibration: a calibration metric (False for accuracy and task scores): the size effects are fitted
            for the calibration metrics among the table's.
        dev: builds the ``torchmetrics.Metric`` (from logits, ``n_bins`` bins) that training logs each English dev
            validation (``val_<name>``), for the headline metrics that have one.
    """

    name: str
    label: str
    higher_is_better: bool
    compute: Callable[[SetStats], float] | None
    resample: Callable[[SetStats], Decomposition] | None = None
    interval: bool = False
    shown: str = DETAIL
    calibration: bool = True
    dev: Callable[[int], Metric] | None = None

    def interval_keys(self) -> tuple[str, ...]:
        return (f"{self.name}_ci_low", f"{self.name}_ci_high") if self.interval else ()


_METRICS: dict[str, MetricSpec] = {}


def register_metric(spec: MetricSpec) -> MetricSpec:
    """Add ``spec`` to the registry (registration order is the order of every table); returns it.

    Raises:
        ValueError: a malformed or taken name, an unknown ``shown``, or an interval without a decomposition.
    """
    name = spec.name
    if not isinstance(name, str) or not _NAME.match(name) or name in RESERVED or name.endswith(("_ci_low", "_ci_high")):
        raise ValueError(f"metric name must match {_NAME.pattern}, not end in _ci_low/_ci_high and not be one of "
                         f"{sorted(RESERVED)}; got {name!r}")
    if name in _METRICS:
        raise ValueError(f"metric {name!r} is already registered; pick another name")
    if spec.shown not in _SHOWN:
        raise ValueError(f"metric {name!r}: shown must be one of {_SHOWN}, got {spec.shown!r}")
    if spec.interval and (spec.resample is None or spec.compute is None):
        raise ValueError(f"metric {name!r}: interval=True needs compute and a resample decomposition")
    _METRICS[name] = spec
    return spec


def metric_specs() -> tuple[MetricSpec, ...]:
    """Every registered metric, in registration order."""
    return tuple(_METRICS.values())


def metric_names(*, shown: str | None = None, calibration: bool | None = None, scored: bool | None = None,
                 dev: bool | None = None) -> tuple[str, ...]:
    """Registered names in order, optionally only those shown at least as prominently as ``shown``
    (:data:`TABLE` includes the headline ones), calibration metrics (or not), those ``calibration_report``
    computes (``scored=True``; False: the task scores), or those logged on English dev (``dev=True``)."""
    rank = None if shown is None else _SHOWN.index(shown)
    return tuple(
        s.name for s in _METRICS.values()
        if (rank is None or _SHOWN.index(s.shown) <= rank)
        and (calibration is None or s.calibration == calibration)
        and (scored is None or (s.compute is not None) == scored)
        and (dev is None or ((s.dev is not None and s.shown == HEADLINE) == dev))
    )


def get_metric(name: str) -> MetricSpec:
    """The spec registered under ``name``; a ``ValueError`` listing the registered names otherwise."""
    try:
        return _METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; registered: {', '.join(_METRICS)}") from None


def metric_label(name: str) -> str:
    """The metric's label (``"Brier score"``), or the name itself for a column the registry does not know."""
    spec = _METRICS.get(name)
    return spec.label if spec is not None else name


def interval_keys() -> tuple[str, ...]:
    """``<name>_ci_low`` / ``<name>_ci_high`` of every metric with an example-bootstrap interval."""
    return tuple(key for s in _METRICS.values() for key in s.interval_keys())


def result_columns() -> tuple[str, ...]:
    """Every numeric key a results entry may carry, in table order: the scored metrics, their interval bounds,
    then the task scores."""
    return (*metric_names(scored=True), *interval_keys(), *metric_names(scored=False))


def dev_metrics(n_bins: int) -> dict[str, Metric]:
    """Fresh English dev ``torchmetrics.Metric`` objects, ``{name: metric}`` for :func:`metric_names` ``(dev=True)``."""
    return {name: _METRICS[name].dev(n_bins) for name in metric_names(dev=True)}

