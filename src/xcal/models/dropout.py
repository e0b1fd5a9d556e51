"""Dropout whose mask is cheap to draw on CPU.

torch's CPU dropout draws one Bernoulli sample per element from the Mersenne twister (about 8 ns an
element on this machine's cores); in a small encoder that is 10-15% of a training step, more than the
layer norms and activations together. Here a mask element is 16 bits of a 64-bit random word (4 elements
per draw), compared with a threshold: the keep probability is ``1 - round(p * 2^16) / 2^16`` (within
2^-17 of ``1 - p``) and kept values are scaled by its exact inverse, so the output is unbiased, as
``nn.Dropout``'s is. The draws come from torch's default generator, so seeding and checkpointed RNG
state govern them as they govern ``nn.Dropout``. On other devices the native (fused) dropout is used.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

_LEVELS = 1 << 16
_INT16_MIN = -(1 << 15)


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | None = None) -> torch.Tensor:
    """A boolean mask, each element True with probability ``1 - round(p * 2^16) / 2^16``, independent."""
    numel = math.prod(shape)
    words = torch.empty((numel + 3) // 4, dtype=torch.int64, device=device).random_(-(1 << 63), (1 << 63) - 1)
    lanes = words.view(torch.int16)[:numel].view(shape)
    return lanes >= _INT16_MIN + round(p * _LEVELS)


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)`` with the mask of :func:`keep_mask` on CPU."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training=True)
    dropped = round(p * _LEVELS)
    if dropped == 0:
        return x
    return torch.where(keep_mask(x.shape, p, x.device), x * (_LEVELS / (_LEVELS - dropped)), 0.0)


class FastDropout(nn.Dropout):
    """``nn.Dropout`` (same ``p``, same train/eval behaviour) drawing its mask with :func:`keep_mask`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)


def use_fast_dropout(model: nn.Module) -> int:
    """Swap every ``nn.Dropout`` in ``model`` for :class:`FastDropout` with the same ``p``; returns how many."""
    swapped = 0
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                setattr(parent, name, FastDropout(child.p))
                getattr(parent, name).train(child.training)
                swapped += 1
    return swapped
