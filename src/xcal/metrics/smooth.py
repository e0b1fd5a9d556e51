r"""Smooth ECE (Błasiok & Nakkiran, 2023, "Smooth ECE: Principled Reliability Diagrams via Kernel Smoothing").

The smECE at bandwidth :math:`\sigma` kernel-smooths the residuals :math:`r_i = f_i - y_i` of the
top-label confidence :math:`f_i` and correctness :math:`y_i` with a Gaussian kernel reflected at 0
and 1, and integrates the absolute smoothed residual against the smoothed density:

.. math::
    \hat r_\sigma(t) = \frac{\sum_i K_\sigma(t, f_i)\, r_i}{\sum_i K_\sigma(t, f_i)}, \qquad
    \mathrm{smECE}_\sigma
    = \frac{\int |\hat r_\sigma(t)|\, \hat\delta_\sigma(t)\,dt}{\int \hat\delta_\sigma(t)\,dt}
    = \frac{\int \left|\sum_i K_\sigma(t, f_i)\, r_i\right| dt}{\int \hat\delta_\sigma(t)\,dt}.

with the smoothed density :math:`\hat\delta_\sigma(t) = \sum_i K_\sigma(t, f_i)`.

The automatic bandwidth is the fixed point :math:`\sigma^* = \mathrm{smECE}_{\sigma^*}`, found by
bisection. This module reproduces the authors' reference implementation (``relplot`` 1.0.3,
``relplot.smECE``) step by step in float64 torch: the mass of each prediction is split linearly
between the two nearest points of a grid of ``max(2000, round(20 / sigma)) // 2 + 1`` points, the grid
is convolved with the reflected Gaussian, linearly interpolated onto ``max(round(10 / sigma), 200)``
evaluation points, the density gets ``1e-4`` added, and the bandwidth search does 10 bisection steps
on [0, 1] with a floor of 0.001. Only the grid histogram touches all N predictions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from xcal.metrics._inputs import check_ignore_index, prepare
from xcal.metrics.binning import top_label

_DENSITY_EPS = 1e-4
_MESH_POINTS = 200
_SIGMA_FLOOR = 1e-3
_BISECTION_STEPS = 10


def _linspace(n: int) -> Tensor:
    """``np.linspace(0, 1, n)`` bit for bit (``arange * step`` with the last point set to 1)."""
    t = torch.arange(n, dtype=torch.float64) * (1.0 / (n - 1))
    t[-1] = 1.0
    return t


def _grid_size(sigma: float) -> int:
    return max(2000, round(20 / sigma)) // 2 + 1


class _SmoothEce:
    """smECE of fixed ``(f, y)`` at many bandwidths, caching the grid histograms per grid size."""

    def __init__(self, f: Tensor, y: Tensor) -> None:
        self.f = f.to(torch.float64)
        self.r = self.f - y.to(torch.float64)
        self._grids: dict[int, tuple[Tensor, Tensor]] = {}
        self._values: dict[float, float] = {}

    def _histograms(self, m: int) -> tuple[Tensor, Tensor]:
        if m not in self._grids:
            pos = self.f * (m - 1)
            lower = pos.long().clamp(0, m - 2)
            frac = pos - lower
            idx = torch.cat([lower, lower + 1])
            w = torch.cat([1.0 - frac, frac])
            dens = torch.bincount(idx, weights=w, minlength=m)
            resid = torch.bincount(idx, weights=w * torch.cat([self.r, self.r]), minlength=m)
            self._grids[m] = (resid, dens)
        return self._grids[m]

    @staticmethod
    def _reflected_convolve(values: Tensor, sigma: float) -> Tensor:
        m = values.shape[0]
        t = _linspace(m)
        ker = torch.exp(-(t - 0.5) * (t - 0.5) / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma)
        ext = torch.cat([values.flip(0)[:-1], values, values.flip(0)[1:]])
        # np.convolve(ext, ker, "valid")[m // 2 : m // 2 + m]; conv1d correlates, so flip the kernel
        n_out = m
        start = m // 2
        seg = ext[start : start + n_out + m - 1]
        return seg.unfold(0, m, 1) @ ker.flip(0)

    @staticmethod
    def _interpolate(t: Tensor, y: Tensor) -> Tensor:
        b = y.shape[0]
        bucket = 1 / (b - 1)
        inds = (t * (b - 1)).long().clamp(0, b - 2)
        residual = (t - inds.to(torch.float64) * bucket) / bucket
        return y[inds] * (1 - residual) + y[inds + 1] * residual

    def at(self, sigma: float) -> float:
        """smECE at bandwidth ``sigma``."""
        if sigma not in self._values:
            m = _grid_size(sigma)
            resid, dens = self._histograms(m)
            t = _linspace(max(round(10 / sigma), _MESH_POINTS))
            ys = self._interpolate(t, self._reflected_convolve(resid, sigma))
            ds = self._interpolate(t, self._reflected_convolve(dens, sigma)) + _DENSITY_EPS
            rs = ys / ds
            self._values[sigma] = float((rs.abs() * ds).sum() / ds.sum())
        return self._values[sigma]

    def bandwidth(self) -> float:
        """The fixed point ``sigma = smECE_sigma`` by relplot's bisection."""

        def small_enough(alpha: float) -> bool:
            return alpha < _SIGMA_FLOOR or alpha < self.at(alpha)

        if small_enough(1.0):
            return 1.0
        start, end = 1.0, 0.0
        for _ in range(_BISECTION_STEPS):
            mid = (start + end) / 2
            if small_enough(mid):
                end = mid
            else:
                start = mid
        return start


def _smooth_ece_from_top_label(
    conf: Tensor, correct: Tensor, sigma: float | None = None
) -> tuple[float, float]:
    """Return ``(smECE, bandwidth)`` for top-label confidences and 0/1 correctness."""
    s = _SmoothEce(conf, correct)
    bw = s.bandwidth() if sigma is None else float(sigma)
    return s.at(bw), bw


def smooth_ece(
    probs: Tensor,
    labels: Tensor,
    sigma: float | None = None,
    ignore_index: int | None = None,
    *,
    from_logits: bool = False,
) -> Tensor:
    r"""Top-label smooth ECE with the automatic bandwidth (Błasiok & Nakkiran, 2023).

    See the module docstring for the formula. Matches ``relplot.smECE(conf, correct)`` (relplot 1.0.3,
    default reflected Gaussian kernel) to float64 round-off; with ``sigma`` given, matches
    ``relplot.smECE_sigma(conf, correct, sigma)``. No bin edges are involved.

    Args:
        probs: ``(N, C)`` probabilities (or logits with ``from_logits=True``).
        labels: ``(N,)`` integer labels.
        sigma: fixed kernel bandwidth in (0, 1]; ``None`` picks the fixed point
            :math:`\sigma^* = \mathrm{smECE}_{\sigma^*}`.
        ignore_index: label value to drop.
        from_logits: ``probs`` are logits.

    Returns:
        Scalar float64 tensor.
    """
    if sigma is not None and not (0.0 < float(sigma) <= 1.0):
        raise ValueError(f"sigma must be in (0, 1] or None, got {sigma!r}")
    check_ignore_index(ignore_index)
    p = prepare(probs, labels, from_logits=from_logits, ignore_index=ignore_index)
    conf, correct = top_label(p.probs, p.labels)
    return torch.tensor(_smooth_ece_from_top_label(conf, correct, sigma)[0], dtype=torch.float64)
