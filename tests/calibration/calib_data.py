"""Synthetic logits with a planted miscalibration, for the calibrator tests (labels drawn from a known model)."""

from __future__ import annotations

import torch

C = 5
#: Per-class scale and bias of the "vector" planting.
SCALE = torch.tensor([3.0, 0.5, 2.0, 1.0, 1.5], dtype=torch.float64)
BIAS = torch.tensor([1.0, -1.0, 0.5, 0.0, -0.5], dtype=torch.float64)
#: The "matrix" planting: the true logits are MIX @ log_softmax(reported logits) + BIAS (Dirichlet family).
MIX = torch.tensor(
    [
        [0.6, 0.3, 0.0, 0.0, 0.0],
        [0.0, 0.5, 0.4, 0.0, 0.0],
        [0.0, 0.0, 0.4, 0.3, 0.0],
        [0.2, 0.0, 0.0, 0.5, 0.0],
        [0.0, 0.0, 0.0, 0.3, 0.5],
    ],
    dtype=torch.float64,
)


def planted(kind: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, labels)``: labels drawn from the true model, logits miscalibrated by ``kind``.

    ``overconfident``: logits are 3x the true ones (temperature 3); ``vector``: per-class scale and bias of the
    true logits, and overconfident; ``matrix``: the true logits mix the reported log-probabilities across classes.
    """
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, C, generator=g, dtype=torch.float64) * 1.5
    if kind == "overconfident":
        true, reported = z, 3.0 * z
    elif kind == "vector":
        true, reported = z, (z - BIAS) / SCALE * 3.0
    elif kind == "matrix":
        reported = z * 2.0
        true = torch.log_softmax(reported, dim=1) @ MIX.T + BIAS
    else:
        raise ValueError(kind)
    labels = torch.multinomial(torch.softmax(true, dim=1), 1, generator=g).squeeze(1)
    return reported, labels
