r"""Top-label histogram binning (Zadrozny & Elkan, 2001; top-label form: Gupta & Ramdas, 2022, "Top-label
calibration and multiclass-to-binary reductions", ICLR).

The fit set's top-label confidences :math:`c_i = \max_k \mathrm{softmax}(z_i)_k` are cut into bins -- equal-mass
by default (the edges of :func:`xcal.metrics.binning.quantile_edges`, so a bin never starts empty), or
equal-width -- and each bin's calibrated confidence is the fit set's accuracy in it,

.. math::
    h_b = \frac{1}{|B_b|}\sum_{i \in B_b} \mathbb{1}[\hat y_i = y_i],

with xcal's bin convention (bins :math:`(lo, hi]`, confidence 0 in the first, exactly 1.0 in the last; see
:mod:`xcal.metrics.binning`). An empty bin (equal-width bins, or equal-mass bins collapsed by tied confidences)
maps to its midpoint, as netcal's ``HistogramBinning`` does. Non-parametric: no optimiser, exact.

``apply`` returns a probability vector: the predicted class gets :math:`h_b` and the other classes share
:math:`1 - h_b` in proportion to their uncalibrated probabilities, so the arg-max (the prediction) is kept. Where
that would lift another class above :math:`h_b` they share it equally instead, and :math:`h_b` is floored at
:math:`1/C` (a bin at or below chance says nothing about its predicted class; such a row becomes uniform). The
top-label ECE is a function of :math:`h_b` alone; the Brier score and NLL also depend on that sharing, and a bin
that was always right (:math:`h_b = 1`) gives the other classes probability 0, so an infinite NLL for a wrong
held-out example in it: compare binning on ECE and Brier.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from xcal.calibration.base import Calibrator, check_logits
from xcal.calibration.registry import register_calibrator
from xcal.metrics._inputs import ALLOWED_BINNINGS, check_n_bins
from xcal.metrics.binning import DEFAULT_N_BINS, assign_bins, bin_sums, edges_for


@register_calibrator("histogram", display="histogram binning")
class HistogramBinning(Calibrator):
    """Top-label histogram binning: each confidence bin maps to the fit set's accuracy in it.

    Args:
        n_bins: number of bins (at most N for equal-mass bins).
        binning: ``"quantile"`` (equal-mass, default) or ``"uniform"`` (equal-width).

    Example:
        >>> import torch
        >>> logits = torch.tensor([[3.0, 0.0], [3.0, 0.0], [0.5, 0.0], [0.0, 0.5]])
        >>> cal = HistogramBinning(n_bins=2).fit(logits, torch.tensor([0, 1, 0, 1]))
        >>> cal.parameters()["values"]
        [1.0, 0.5]
    """

    hyperparameter_keys = ("n_bins", "binning")
    state_keys = ("edges", "values")

    def __init__(self, n_bins: int = DEFAULT_N_BINS, binning: str = "quantile") -> None:
        super().__init__()
        check_n_bins(n_bins)
        if binning not in ALLOWED_BINNINGS:
            raise ValueError(f"binning must be one of {ALLOWED_BINNINGS}, got {binning!r}")
        self.n_bins, self.binning = n_bins, binning
        self.edges: Tensor | None = None
        self.values: Tensor | None = None

    def hyperparameters(self) -> dict[str, Any]:
        return {"n_bins": self.n_bins, "binning": self.binning}

    def _fit(self, logits: Tensor, labels: Tensor) -> None:
        conf, pred = torch.softmax(logits, dim=1).max(dim=1)
        edges = edges_for(conf, self.n_bins, self.binning)
        m = edges.shape[0] - 1
        count, _, correct_sum = bin_sums(conf, (pred == labels).double(), assign_bins(conf, edges), m)
        midpoints = (edges[:-1] + edges[1:]) / 2.0
        self.edges = edges
        self.values = torch.where(count > 0, correct_sum / count.clamp_min(1.0), midpoints)

    def confidence(self, logits: Any) -> Tensor:
        """The calibrated top-label confidence :math:`h_b` of each row (before the :math:`1/C` floor)."""
        if not self.fitted:
            raise RuntimeError("HistogramBinning is not fitted: call fit() or from_parameters() first")
        conf = torch.softmax(check_logits(logits, self.num_classes), dim=1).max(dim=1).values
        return self.values[assign_bins(conf, self.edges)]

    def _apply(self, logits: Tensor) -> Tensor:
        probs = torch.softmax(logits, dim=1)
        c = probs.shape[1]
        conf, pred = probs.max(dim=1)
        h = self.values[assign_bins(conf, self.edges)].clamp_min(1.0 / c).unsqueeze(1)
        others = probs.scatter(1, pred.unsqueeze(1), 0.0)
        rest = others.sum(dim=1, keepdim=True)  # not 1 - conf: that cancels catastrophically when conf ~ 1
        share = others * ((1.0 - h) / rest.clamp_min(torch.finfo(torch.float64).tiny))
        # rows where the proportional share lifts another class above h (or nothing is left to share): equal shares
        equal = ((1.0 - h) / (c - 1)).expand(-1, c).scatter(1, pred.unsqueeze(1), 0.0)
        bad = (share.max(dim=1, keepdim=True).values > h) | (rest <= 0)
        return torch.where(bad, equal, share).scatter(1, pred.unsqueeze(1), h)

    def _state(self) -> dict[str, Any]:
        return {"edges": self.edges.tolist(), "values": self.values.tolist()}

    def _load(self, state: Mapping[str, Any], num_classes: int) -> None:
        try:
            edges = torch.as_tensor(state["edges"], dtype=torch.float64)
            values = torch.as_tensor(state["values"], dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            edges = values = torch.zeros(0, dtype=torch.float64)
        ok = (
            edges.ndim == 1
            and edges.shape[0] >= 2
            and tuple(values.shape) == (edges.shape[0] - 1,)
            and bool(torch.isfinite(edges).all() and torch.isfinite(values).all())
            and float(edges[0]) == 0.0
            and float(edges[-1]) == 1.0
            and bool((edges[1:] >= edges[:-1]).all())
            and bool(((values >= 0) & (values <= 1)).all())
        )
        if not ok:
            raise ValueError(
                "HistogramBinning: edges must be nondecreasing from 0 to 1 and values one number in [0, 1] per bin, "
                f"got edges={state['edges']!r}, values={state['values']!r}"
            )
        self.edges, self.values = edges, values
