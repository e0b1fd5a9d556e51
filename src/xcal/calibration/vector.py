r"""Vector scaling (Guo, Pleiss, Sun & Weinberger, 2017, "On Calibration of Modern Neural Networks", §4.2).

A per-class scale :math:`w \in \mathbb{R}^C` and bias :math:`b \in \mathbb{R}^C` on the logits,

.. math::
    \hat p = \mathrm{softmax}(w \odot z + b),

chosen to minimise the mean negative log-likelihood on the fit set (no regulariser, as in Guo et al.). The NLL is
convex in :math:`(w, b)` (a log-sum-exp of affine functions of them minus an affine function); L-BFGS on float64
from the identity map (:math:`w = 1, b = 0`) finds its minimum deterministically. Unlike temperature scaling it
can change the arg-max, hence the accuracy. On separable fit data the minimum is at infinity; the fit then
stops at L-BFGS's iteration cap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from xcal.calibration.base import Calibrator, minimise_lbfgs
from xcal.calibration.registry import register_calibrator


def _vector(name: str, value: Any, num_classes: int) -> Tensor:
    t = torch.as_tensor(value, dtype=torch.float64) if isinstance(value, (list, tuple)) else None
    if t is None or tuple(t.shape) != (num_classes,) or not bool(torch.isfinite(t).all()):
        raise ValueError(f"VectorScaling: {name} must be a list of {num_classes} finite numbers, got {value!r}")
    return t


@register_calibrator("vector", display="vector scaling")
class VectorScaling(Calibrator):
    """Per-class scale and bias on the logits, NLL-fitted (Guo et al., 2017).

    Example:
        >>> import torch
        >>> logits = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, 2.0]])
        >>> cal = VectorScaling().fit(logits, torch.tensor([0, 1, 1, 0]))
        >>> [round(p, 3) for p in cal.apply(logits)[0].tolist()]
        [0.5, 0.5]
    """

    state_keys = ("scale", "bias")

    def __init__(self) -> None:
        super().__init__()
        self.scale: Tensor | None = None
        self.bias: Tensor | None = None

    def _fit(self, logits: Tensor, labels: Tensor) -> None:
        c = logits.shape[1]
        w = torch.ones(c, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(c, dtype=torch.float64, requires_grad=True)

        def nll() -> Tensor:
            return torch.nn.functional.cross_entropy(logits * w + b, labels)

        minimise_lbfgs(nll, [w, b])
        self.scale, self.bias = w.detach(), b.detach()

    def _apply(self, logits: Tensor) -> Tensor:
        return torch.softmax(logits * self.scale + self.bias, dim=1)

    def _state(self) -> dict[str, Any]:
        return {"scale": self.scale.tolist(), "bias": self.bias.tolist()}

    def _load(self, state: Mapping[str, Any], num_classes: int) -> None:
        self.scale = _vector("scale", state["scale"], num_classes)
        self.bias = _vector("bias", state["bias"], num_classes)
