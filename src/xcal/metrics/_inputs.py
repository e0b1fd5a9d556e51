"""Input checking and formatting shared by every calibration metric.

A calibration tool must refuse ambiguous input rather than guess (torchmetrics silently applies
softmax to anything outside [0, 1]). Every public metric funnels its arguments through
:func:`prepare`, which either returns float64 probabilities ``(N, C)`` and int64 labels ``(N,)``
or raises a ``ValueError`` that says what was wrong and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

#: Largest tolerated deviation of a row sum from 1 (float32 softmax is off by ~1e-7 per row).
SUM_ATOL = 1e-4
#: Row-sum tolerance for half-precision inputs.
SUM_ATOL_HALF = 1e-2

ALLOWED_NORMS = ("l1", "l2", "max")
ALLOWED_BINNINGS = ("uniform", "quantile")
ALLOWED_CLOSED = ("right", "left")


@dataclass(frozen=True)
class Prepared:
    """Validated inputs in the canonical layout.

    Attributes:
        probs: ``(N, C)`` float64 probabilities.
        labels: ``(N,)`` int64 class indices in ``[0, C)``.
        log_probs_true: ``(N,)`` float64 log-probability of the true class when the input were
            logits (exact ``log_softmax``), else ``None``.
        eps: machine epsilon of the caller's dtype, the clipping floor for the log-loss.
    """

    probs: Tensor
    labels: Tensor
    log_probs_true: Tensor | None
    eps: float

    @property
    def n(self) -> int:
        """Number of predictions."""
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of classes ``C``."""
        return int(self.probs.shape[1])


def check_n_bins(n_bins: Any) -> None:
    """Raise ``ValueError`` unless ``n_bins`` is an integer >= 1."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be an integer >= 1, got {n_bins!r}")


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def check_ignore_index(ignore_index: Any) -> None:
    """Raise ``ValueError`` unless ``ignore_index`` is ``None`` or an integer."""
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        raise ValueError(f"ignore_index must be None or an int, got {ignore_index!r}")


def prepare(
    probs: Any,
    labels: Any,
    *,
    from_logits: bool = False,
    ignore_index: int | None = None,
    validate: bool = True,
) -> Prepared:
    """Check and canonicalise ``(probs, labels)``.

    Args:
        probs: ``(..., C)`` probabilities (rows summing to 1), or logits with ``from_logits=True``.
            Binary tasks are given as two columns ``[1 - p, p]``; a 1-D tensor is refused because
            it is ambiguous (positive-class probability or top-label confidence?).
        labels: ``(...)`` integer class indices, same leading shape as ``probs``.
        from_logits: treat ``probs`` as unnormalised logits and apply a float64 softmax.
        ignore_index: label value whose positions are dropped (padding in token tasks).
        validate: run the value checks (finite, range, row sums). Shape and dtype checks always run.

    Returns:
        The canonical :class:`Prepared` record.

    Raises:
        ValueError: on a shape mismatch, non-float ``probs``, non-integer ``labels``, no predictions
            left, NaN/inf, labels out of range, or probabilities that are outside ``[0, 1]`` or do not
            sum to 1 (which usually means logits were passed without ``from_logits=True``).
    """
    probs = torch.as_tensor(probs)
    labels = torch.as_tensor(labels)
    if not probs.is_floating_point():
        raise ValueError(f"probs must be a floating-point tensor, got dtype {probs.dtype}")
    if probs.ndim < 2:
        raise ValueError(
            f"probs must have shape (N, C) (or (..., C)), got shape {tuple(probs.shape)}; "
            "for a binary task pass two columns [1 - p, p]"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor of class indices, got dtype {labels.dtype}")
    if tuple(labels.shape) != tuple(probs.shape[:-1]):
        raise ValueError(
            f"shape mismatch: probs has shape {tuple(probs.shape)}, so labels must have shape "
            f"{tuple(probs.shape[:-1])}, got {tuple(labels.shape)}"
        )
    num_classes = probs.shape[-1]
    if num_classes < 1:
        raise ValueError("probs must have at least one class column")
    eps = float(torch.finfo(probs.dtype).eps)
    probs = probs.detach().reshape(-1, num_classes)
    labels = labels.reshape(-1).long()
    if ignore_index is not None:
        keep = labels != ignore_index
        if not bool(keep.all()):
            probs, labels = probs[keep], labels[keep]
    if labels.numel() == 0:
        raise ValueError("no predictions to evaluate (empty input, or every label equals ignore_index)")
    half = probs.dtype in (torch.float16, torch.bfloat16)
    # all statistics are accumulated in float64 on the CPU (the inputs are one row per prediction)
    probs, labels = probs.to(device="cpu", dtype=torch.float64), labels.cpu()
    if validate:
        _check_values(probs, labels, from_logits=from_logits, half=half)
    log_probs_true = None
    if from_logits:
        log_p = torch.log_softmax(probs, dim=-1)
        log_probs_true = log_p.gather(1, labels[:, None]).squeeze(1)
        probs = log_p.exp_()
    return Prepared(probs=probs, labels=labels, log_probs_true=log_probs_true, eps=eps)


def _check_values(probs: Tensor, labels: Tensor, *, from_logits: bool, half: bool) -> None:
    num_classes = probs.shape[-1]
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"labels out of range: expected class indices in [0, {num_classes - 1}] "
            f"(C={num_classes} columns in probs), got min {lo} and max {hi}"
        )
    pmin, pmax = torch.aminmax(probs)
    if not (torch.isfinite(pmin) and torch.isfinite(pmax)):
        bad = int((~torch.isfinite(probs)).sum())
        what = "logits" if from_logits else "probs"
        raise ValueError(f"{what} contains NaN or inf ({bad} entries); expected finite values")
    if from_logits:
        return
    if float(pmin) < 0.0 or float(pmax) > 1.0:
        raise ValueError(
            f"probs must lie in [0, 1], got values in [{float(pmin):.6g}, {float(pmax):.6g}]: "
            "this looks like logits; pass from_logits=True"
        )
    atol = SUM_ATOL_HALF if half else SUM_ATOL
    dev = float((probs.sum(dim=-1) - 1.0).abs().max())
    if dev > atol:
        raise ValueError(
            f"probs rows must sum to 1 (tolerance {atol:g}), but a row sum is off by {dev:.6g}: "
            "this looks like logits; pass from_logits=True"
        )
