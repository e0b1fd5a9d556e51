r"""Temperature scaling (Guo, Pleiss, Sun & Weinberger, 2017, "On Calibration of Modern Neural Networks").

One scalar :math:`T > 0` divides the logits, :math:`\hat p = \mathrm{softmax}(z / T)`, chosen to minimise
the negative log-likelihood on held-out data (in xcal: the English dev set; the zero-shot languages
have no labels to fit on). Writing :math:`\beta = 1/T`, the NLL

.. math::
    L(\beta) = \frac{1}{N}\sum_i \Big(\log\sum_c e^{\beta z_{ic}} - \beta z_{i y_i}\Big)

is convex in :math:`\beta` (a log-sum-exp of linear functions minus a linear function), with derivative
:math:`L'(\beta) = \frac{1}{N}\sum_i \big(\mathbb{E}_{\hat p_i}[z_i] - z_{i y_i}\big)`, which is
nondecreasing. The fit therefore finds the root of :math:`L'` inside a bracket that it keeps -- no
learning rate, no random state: a Newton step on :math:`\beta` (curvature :math:`L''(\beta)`, the mean
variance of :math:`z` under :math:`\hat p`), replaced by bisection of the bracket in :math:`\log\beta`
whenever it would leave the bracket. Deterministic, exact to float64 precision, and :math:`T` stays
positive by construction. If the minimum lies outside the search range the nearest bound is returned.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from xcal.calibration.base import Calibrator
from xcal.calibration.registry import OWN_DEV, register_calibrator
from xcal.metrics._inputs import check_ignore_index

#: Search range of the temperature.
T_MIN, T_MAX = 1e-2, 1e2
_MAX_STEPS = 200


def _check_logits_labels(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    logits, labels = torch.as_tensor(logits), torch.as_tensor(labels)
    if not logits.is_floating_point() or logits.ndim != 2:
        raise ValueError(f"logits must be a floating (N, C) tensor, got {logits.dtype} {tuple(logits.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool or tuple(labels.shape) != (logits.shape[0],):
        raise ValueError(
            f"labels must be integer class indices of shape ({logits.shape[0]},), got {labels.dtype} "
            f"{tuple(labels.shape)}"
        )
    if logits.shape[0] == 0:
        raise ValueError("cannot fit a temperature on zero examples")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("logits contains NaN or inf; expected finite values")
    c = logits.shape[1]
    if int(labels.min()) < 0 or int(labels.max()) >= c:
        raise ValueError(
            f"labels out of range: expected [0, {c - 1}], got [{int(labels.min())}, {int(labels.max())}]"
        )
    return logits.to(torch.float64), labels.long()


def _nll_derivatives(z: Tensor, z_true: Tensor, beta: float) -> tuple[float, float]:
    """First and second derivative of the mean NLL with respect to ``beta = 1 / T``."""
    p = torch.softmax(beta * z, dim=1)
    mean_z = (p * z).sum(dim=1)
    var_z = (p * z.square()).sum(dim=1) - mean_z.square()
    return float((mean_z - z_true).mean()), float(var_z.clamp_min(0.0).mean())


def temperature_nll(logits: Tensor, labels: Tensor, temperature: float) -> float:
    """Mean NLL of ``softmax(logits / temperature)`` (float64, exact ``log_softmax``)."""
    z, y = _check_logits_labels(logits, labels)
    return float(-torch.log_softmax(z / temperature, dim=1).gather(1, y[:, None]).mean())


def fit_temperature(logits: Tensor, labels: Tensor, ignore_index: int | None = None) -> float:
    r"""Fit the temperature :math:`T` that minimises the NLL of ``softmax(logits / T)`` (Guo et al., 2017).

    Safeguarded Newton iteration on the convex NLL in :math:`\beta = 1/T`, bracketed to
    :math:`T \in [10^{-2}, 10^{2}]`; see the module docstring. Deterministic: the same inputs give the
    same float.

    Args:
        logits: ``(N, C)`` logits of held-out (dev) data.
        labels: ``(N,)`` integer labels.
        ignore_index: label value to drop.

    Returns:
        The temperature, a python float in ``[0.01, 100]``. Logits that are constant within each row
        carry no information about T; 1.0 is returned.

    Raises:
        ValueError: on NaN/inf, labels out of range, or a shape mismatch.

    Example:
        >>> import torch
        >>> logits = torch.tensor([[4.0, 0.0], [4.0, 0.0], [0.0, 4.0], [0.0, 4.0]])
        >>> round(fit_temperature(logits, torch.tensor([0, 1, 1, 1])), 4)
        3.641
    """
    check_ignore_index(ignore_index)
    logits, labels = torch.as_tensor(logits), torch.as_tensor(labels)
    if ignore_index is not None and labels.ndim == 1:
        keep = labels != ignore_index
        logits, labels = logits[keep], labels[keep]
    z, y = _check_logits_labels(logits, labels)
    z = z - z.max(dim=1, keepdim=True).values
    if float((z.max(dim=1).values - z.min(dim=1).values).max()) == 0.0:
        return 1.0
    z_true = z.gather(1, y[:, None]).squeeze(1)
    lo, hi = 1.0 / T_MAX, 1.0 / T_MIN  # bracket in beta = 1 / T
    if _nll_derivatives(z, z_true, lo)[0] >= 0.0:
        return T_MAX
    if _nll_derivatives(z, z_true, hi)[0] <= 0.0:
        return T_MIN
    beta = 1.0
    for _ in range(_MAX_STEPS):
        grad, curv = _nll_derivatives(z, z_true, beta)
        if grad == 0.0:
            break
        if grad < 0.0:
            lo = beta
        else:
            hi = beta
        # Newton step, replaced by a bisection in log(beta) when it leaves the bracket
        step = beta - grad / curv if curv > 0.0 else math.nan
        new = step if lo < step < hi else math.sqrt(lo * hi)
        if abs(new - beta) <= 1e-13 * beta or hi - lo <= 1e-13 * hi:
            beta = new
            break
        beta = new
    return float(1.0 / beta)


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """Temperature-scaled probabilities ``softmax(logits / temperature)`` in the dtype of ``logits``.

    ``temperature == 1`` returns exactly ``torch.softmax(logits, dim=-1)`` (division by 1 is exact).

    Args:
        logits: ``(..., C)`` logits.
        temperature: ``T > 0``.

    Returns:
        Probabilities of the shape and dtype of ``logits``.
    """
    t = float(temperature)
    if not (t > 0.0 and math.isfinite(t)):
        raise ValueError(f"temperature must be a finite positive number, got {temperature!r}")
    logits = torch.as_tensor(logits)
    return torch.softmax(logits / t, dim=-1)


class TemperatureScaler(nn.Module):
    """Temperature scaling as a module: ``fit`` on dev logits, then ``forward`` maps logits to probabilities.

    The temperature is a buffer (not a trainable parameter), so it is saved with ``state_dict`` and moved
    with ``.to(device)``.

    Args:
        temperature: initial temperature (1.0 = identity).

    Example:
        >>> import torch
        >>> scaler = TemperatureScaler()
        >>> probs = scaler(torch.tensor([[2.0, 0.0]]))
        >>> torch.equal(probs, torch.softmax(torch.tensor([[2.0, 0.0]]), dim=-1))
        True
    """

    temperature: Tensor

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("temperature", torch.tensor(float(temperature), dtype=torch.float64))

    def fit(self, logits: Tensor, labels: Tensor, ignore_index: int | None = None) -> TemperatureScaler:
        """Fit the temperature by :func:`fit_temperature`; returns ``self``."""
        self.temperature.fill_(fit_temperature(logits, labels, ignore_index=ignore_index))
        return self

    @property
    def value(self) -> float:
        """The temperature as a python float."""
        return float(self.temperature)

    def forward(self, logits: Tensor) -> Tensor:
        """``softmax(logits / T)``."""
        return apply_temperature(logits, self.value)


@register_calibrator("temperature_own_dev", display="temperature scaling on own dev (oracle)", oracle_fit_set=OWN_DEV)
@register_calibrator("temperature", display="temperature scaling")
class TemperatureCalibrator(Calibrator):
    """Temperature scaling behind the :class:`~xcal.calibration.base.Calibrator` protocol.

    ``fit`` is :func:`fit_temperature` (the same float); ``apply`` is ``softmax(logits / T)`` in float64.
    Registered twice: ``temperature`` fits on English dev, ``temperature_own_dev`` on each language's own
    labelled dev set (an oracle: the per-language "self-TS").

    Example:
        >>> import torch
        >>> cal = TemperatureCalibrator().fit(torch.tensor([[4.0, 0.0], [4.0, 0.0], [0.0, 4.0], [0.0, 4.0]]),
        ...                                   torch.tensor([0, 1, 1, 1]))
        >>> round(cal.parameters()["temperature"], 4)
        3.641
    """

    state_keys = ("temperature",)

    def __init__(self) -> None:
        super().__init__()
        self.temperature = 1.0

    def _fit(self, logits: Tensor, labels: Tensor) -> None:
        self.temperature = fit_temperature(logits, labels)

    def _apply(self, logits: Tensor) -> Tensor:
        return torch.softmax(logits / self.temperature, dim=1)

    def _state(self) -> dict[str, Any]:
        return {"temperature": float(self.temperature)}

    def _load(self, state: Mapping[str, Any], num_classes: int) -> None:
        t = state["temperature"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (math.isfinite(t) and t > 0):
            raise ValueError(f"TemperatureCalibrator: temperature must be a finite positive number, got {t!r}")
        self.temperature = float(t)
