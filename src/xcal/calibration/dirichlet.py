r"""Dirichlet calibration with ODIR regularisation (Kull, Perello-Nieto, Kängsepp, Silva Filho, Song & Flach,
2019, "Beyond temperature scaling: Obtaining well-calibrated multiclass probabilities with Dirichlet calibration",
NeurIPS).

Matrix scaling on log-probabilities: with :math:`q = \log\mathrm{softmax}(z)`,

.. math::
    \hat p = \mathrm{softmax}(W q + b), \qquad W \in \mathbb{R}^{C\times C},\ b \in \mathbb{R}^C,

fitted by minimising the mean NLL plus the Off-Diagonal and Intercept Regularisation (ODIR) of Kull et al.,

.. math::
    L(W, b) = \frac1N\sum_i -\log \hat p_{i y_i}
      + \frac{\lambda}{C(C-1)}\sum_{j\ne k} W_{jk}^2 + \frac{\mu}{C}\sum_j b_j^2 ,

which shrinks towards a per-class (vector-like) scaling of the log-probabilities and leaves the diagonal free
(the normalisation by :math:`C(C-1)` and :math:`C` is that of the authors' code, ``reg_norm=True``). The loss is
convex; L-BFGS on float64 from the identity (:math:`W = I, b = 0`, i.e. the uncalibrated probabilities) finds its
minimum deterministically. :math:`\lambda = \mu = 0` is unregularised matrix scaling on log-probabilities, i.e.
multinomial logistic regression on :math:`q` (the reference test compares it with scikit-learn's).

Kull et al. choose :math:`\lambda, \mu` by cross-validation on the fit set; the defaults here
(:math:`\lambda = \mu = 10^{-2}`) are a fixed mild prior, kept small because a dev set of a few hundred rows and
up to 10 classes has :math:`C^2 + C \le 110` parameters to fit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from xcal.calibration.base import Calibrator, minimise_lbfgs
from xcal.calibration.registry import register_calibrator


def _nonnegative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"DirichletCalibration: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


def odir_penalty(weights: Tensor, bias: Tensor, reg_lambda: float, reg_mu: float) -> Tensor:
    """ODIR: :math:`\\lambda/(C(C-1))\\sum_{j\\ne k} W_{jk}^2 + \\mu/C \\sum_j b_j^2`."""
    c = weights.shape[0]
    off = weights - torch.diag(torch.diagonal(weights))
    return reg_lambda / (c * (c - 1)) * off.square().sum() + reg_mu / c * bias.square().sum()


@register_calibrator("dirichlet", display="Dirichlet calibration (ODIR)")
class DirichletCalibration(Calibrator):
    """Matrix scaling of log-probabilities with off-diagonal and intercept regularisation (Kull et al., 2019).

    Args:
        reg_lambda: :math:`\\lambda`, the L2 weight on the off-diagonal entries of :math:`W` (>= 0).
        reg_mu: :math:`\\mu`, the L2 weight on the intercepts :math:`b` (>= 0).

    Example:
        >>> import torch
        >>> logits = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, 2.0]])
        >>> cal = DirichletCalibration().fit(logits, torch.tensor([0, 1, 1, 0]))
        >>> [round(p, 3) for p in cal.apply(logits)[0].tolist()]
        [0.5, 0.5]
    """

    hyperparameter_keys = ("reg_lambda", "reg_mu")
    state_keys = ("weights", "bias")

    def __init__(self, reg_lambda: float = 1e-2, reg_mu: float = 1e-2) -> None:
        super().__init__()
        self.reg_lambda = _nonnegative("reg_lambda", reg_lambda)
        self.reg_mu = _nonnegative("reg_mu", reg_mu)
        self.weights: Tensor | None = None
        self.bias: Tensor | None = None

    def hyperparameters(self) -> dict[str, Any]:
        return {"reg_lambda": self.reg_lambda, "reg_mu": self.reg_mu}

    def _fit(self, logits: Tensor, labels: Tensor) -> None:
        c = logits.shape[1]
        q = torch.log_softmax(logits, dim=1)
        w = torch.eye(c, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(c, dtype=torch.float64, requires_grad=True)

        def loss() -> Tensor:
            nll = torch.nn.functional.cross_entropy(q @ w.T + b, labels)
            return nll + odir_penalty(w, b, self.reg_lambda, self.reg_mu)

        minimise_lbfgs(loss, [w, b])
        self.weights, self.bias = w.detach(), b.detach()

    def _apply(self, logits: Tensor) -> Tensor:
        return torch.softmax(torch.log_softmax(logits, dim=1) @ self.weights.T + self.bias, dim=1)

    def _state(self) -> dict[str, Any]:
        return {"weights": self.weights.tolist(), "bias": self.bias.tolist()}

    def _load(self, state: Mapping[str, Any], num_classes: int) -> None:
        w, b = state["weights"], state["bias"]
        wt = torch.as_tensor(w, dtype=torch.float64) if isinstance(w, (list, tuple)) else None
        if wt is None or tuple(wt.shape) != (num_classes, num_classes) or not bool(torch.isfinite(wt).all()):
            raise ValueError(
                f"DirichletCalibration: weights must be a {num_classes}x{num_classes} list of finite numbers, got {w!r}"
            )
        bt = torch.as_tensor(b, dtype=torch.float64) if isinstance(b, (list, tuple)) else None
        if bt is None or tuple(bt.shape) != (num_classes,) or not bool(torch.isfinite(bt).all()):
            raise ValueError(f"DirichletCalibration: bias must be a list of {num_classes} finite numbers, got {b!r}")
        self.weights, self.bias = wt, bt
