"""Calibration metrics as ``torchmetrics.Metric`` classes, correct under DDP.

Every class reuses the pure ``_update`` / ``_compute`` functions of the functional API. Batches are
checked and reduced on the CPU in float64 (see :func:`xcal.metrics._inputs.prepare`); the reduced
statistics are then added to the states on the metric's device. Where the
estimator allows it the states are binned sufficient statistics (per-bin count, sum of confidences,
sum of outcomes; or a sum and a count) reduced with ``dist_reduce_fx="sum"``, so memory does not grow
with the data and a multi-process result equals the single-process one up to float64 summation order.
Equal-mass bins and the smooth ECE depend on the whole sample; those classes keep the top-label
confidence and correctness per prediction (two floats each, ``dist_reduce_fx="cat"``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from xcal.metrics._inputs import (
    ALLOWED_BINNINGS,
    ALLOWED_CLOSED,
    ALLOWED_NORMS,
    Prepared,
    check_choice,
    check_ignore_index,
    check_n_bins,
    prepare,
)
from xcal.metrics.binning import (
    DEFAULT_N_BINS,
    assign_bins,
    bin_sums,
    quantile_edges,
    top_label,
    uniform_edges,
)
from xcal.metrics.calibration_error import (
    _ce_compute,
    _classwise_compute,
    _classwise_update,
    _debiased_compute,
)
from xcal.metrics.scores import _brier_per_example, _nll_per_example
from xcal.metrics.smooth import _smooth_ece_from_top_label


class _CalibrationMetric(Metric):
    """Shared input handling: probabilities (or logits), ``ignore_index``, ``validate_args``."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(
        self,
        *,
        from_logits: bool = False,
        ignore_index: int | None = None,
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_ignore_index(ignore_index)
        self.from_logits = from_logits
        self.ignore_index = ignore_index
        self.validate_args = validate_args

    def _prepare(self, preds: Tensor, target: Tensor) -> Prepared:
        return prepare(
            preds.detach(),
            target,
            from_logits=self.from_logits,
            ignore_index=self.ignore_index,
            validate=self.validate_args,
        )

    def _add_binned_states(self, shape: tuple[int, ...]) -> None:
        for name in ("count", "conf_sum", "correct_sum"):
            self.add_state(name, default=torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")

    def _add_sample_states(self) -> None:
        self.add_state("conf", default=[], dist_reduce_fx="cat")
        self.add_state("correct", default=[], dist_reduce_fx="cat")

    def _samples(self) -> tuple[Tensor, Tensor]:
        conf, correct = dim_zero_cat(self.conf), dim_zero_cat(self.correct)
        return conf.to(device="cpu", dtype=torch.float64), correct.to(device="cpu", dtype=torch.float64)

    def _add_to_state(self, name: str, value: Tensor) -> None:
        state = getattr(self, name)
        state += value.to(state.device)


class ExpectedCalibrationError(_CalibrationMetric):
    """Top-label ECE / RMSCE / MCE, see :func:`xcal.metrics.expected_calibration_error`.

    Uniform bins keep ``(n_bins,)`` sufficient statistics; ``binning="quantile"`` (adaptive ECE) keeps
    every top-label confidence, since equal-mass edges depend on the whole sample.

    Args:
        n_bins: number of bins.
        norm: ``"l1"`` (ECE), ``"l2"`` (RMSCE) or ``"max"`` (MCE).
        binning: ``"uniform"`` or ``"quantile"``.
        closed: ``"right"`` (bins ``(lo, hi]``, default) or ``"left"``.
        from_logits: inputs are logits.
        ignore_index: label value to drop.
        validate_args: check the values of every batch.
        **kwargs: forwarded to ``torchmetrics.Metric``.
    """

    def __init__(
        self,
        n_bins: int = DEFAULT_N_BINS,
        norm: str = "l1",
        binning: str = "uniform",
        closed: str = "right",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_n_bins(n_bins)
        check_choice("norm", norm, ALLOWED_NORMS)
        check_choice("binning", binning, ALLOWED_BINNINGS)
        check_choice("closed", closed, ALLOWED_CLOSED)
        self.n_bins, self.norm, self.binning, self.closed = n_bins, norm, binning, closed
        if binning == "uniform":
            self._add_binned_states((n_bins,))
        else:
            self._add_sample_states()

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Accumulate a batch of probabilities (or logits) ``(N, C)`` and labels ``(N,)``."""
        p = self._prepare(preds, target)
        conf, correct = top_label(p.probs, p.labels)
        if self.binning == "uniform":
            stats = bin_sums(
                conf, correct, assign_bins(conf, uniform_edges(self.n_bins), self.closed), self.n_bins
            )
            for name, value in zip(("count", "conf_sum", "correct_sum"), stats, strict=True):
                self._add_to_state(name, value)
        else:
            self.conf.append(conf.to(self.device))
            self.correct.append(correct.to(self.device))

    def _stats(self) -> tuple[Tensor, Tensor, Tensor]:
        if self.binning == "uniform":
            return self.count, self.conf_sum, self.correct_sum
        conf, correct = self._samples()
        edges = quantile_edges(conf, self.n_bins)
        return bin_sums(conf, correct, assign_bins(conf, edges, self.closed), edges.shape[0] - 1)

    def compute(self) -> Tensor:
        """The calibration error over everything seen since the last reset."""
        return _ce_compute(*self._stats(), norm=self.norm)


class DebiasedECE(ExpectedCalibrationError):
    """Debiased l2 calibration error (Kumar et al., 2019), see :func:`xcal.metrics.debiased_ece`.

    Args:
        n_bins: number of bins.
        binning: ``"quantile"`` (default, as the functional form) or ``"uniform"``.
        **kwargs: as :class:`ExpectedCalibrationError`.
    """

    def __init__(self, n_bins: int = DEFAULT_N_BINS, binning: str = "quantile", **kwargs: Any) -> None:
        super().__init__(n_bins=n_bins, norm="l2", binning=binning, **kwargs)

    def compute(self) -> Tensor:
        """The debiased l2 error."""
        return _debiased_compute(*self._stats())


class ClasswiseECE(_CalibrationMetric):
    """Classwise ECE (Kull et al., 2019), see :func:`xcal.metrics.classwise_ece`; ``(C, n_bins)`` states.

    Args:
        num_classes: number of classes ``C`` (fixes the state shape).
        n_bins: uniform bins per class.
        closed: ``"right"`` (default) or ``"left"``.
        **kwargs: as :class:`ExpectedCalibrationError`.
    """

    def __init__(self, num_classes: int, n_bins: int = DEFAULT_N_BINS, closed: str = "right", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_n_bins(n_bins)
        check_choice("closed", closed, ALLOWED_CLOSED)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        self.num_classes, self.n_bins, self.closed = num_classes, n_bins, closed
        self._add_binned_states((num_classes, n_bins))

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Accumulate a batch."""
        p = self._prepare(preds, target)
        if p.num_classes != self.num_classes:
            raise ValueError(f"expected {self.num_classes} class columns, got {p.num_classes}")
        stats = _classwise_update(p, self.n_bins, self.closed)
        for name, value in zip(("count", "conf_sum", "correct_sum"), stats, strict=True):
            self._add_to_state(name, value)

    def compute(self) -> Tensor:
        """The classwise ECE."""
        return _classwise_compute(self.count, self.conf_sum, self.correct_sum)


class _MeanScore(_CalibrationMetric):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def _per_example(self, p: Prepared) -> Tensor:
        raise NotImplementedError

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Accumulate a batch."""
        p = self._prepare(preds, target)
        self._add_to_state("total", self._per_example(p).sum())
        self._add_to_state("n", torch.tensor(float(p.n), dtype=torch.float64))

    def compute(self) -> Tensor:
        """The mean score."""
        return self.total / self.n


class BrierScore(_MeanScore):
    """Multiclass (or top-label) Brier score, see :func:`xcal.metrics.brier_score`.

    Args:
        top_label: score the top-label confidence against correctness.
        **kwargs: as :class:`ExpectedCalibrationError`.
    """

    def __init__(self, top_label: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.top_label = top_label

    def _per_example(self, p: Prepared) -> Tensor:
        return _brier_per_example(p, self.top_label)


class NegativeLogLikelihood(_MeanScore):
    """Negative log-likelihood, see :func:`xcal.metrics.negative_log_likelihood`."""

    def _per_example(self, p: Prepared) -> Tensor:
        return _nll_per_example(p)


class SmoothECE(_CalibrationMetric):
    """Smooth ECE with automatic bandwidth (Błasiok & Nakkiran, 2023), see :func:`xcal.metrics.smooth_ece`.

    Args:
        sigma: fixed bandwidth, or ``None`` for the automatic one.
        **kwargs: as :class:`ExpectedCalibrationError`.
    """

    def __init__(self, sigma: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sigma = sigma
        self._add_sample_states()

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Accumulate a batch."""
        p = self._prepare(preds, target)
        conf, correct = top_label(p.probs, p.labels)
        self.conf.append(conf.to(self.device))
        self.correct.append(correct.to(self.device))

    def compute(self) -> Tensor:
        """The smooth ECE."""
        conf, correct = self._samples()
        return torch.tensor(_smooth_ece_from_top_label(conf, correct, self.sigma)[0], dtype=torch.float64)
