"""Dropout whose mask is cheap to draw on CPU.

torch's CPU dropout draws one Bernoulli sample per element from the Mersenne twister (about 8 ns an
element on this machine's cores); in a small encoder that is 10-15% of a training step, more than the
layer norms and activations together. Here a mask element is 16 bits of a 64-bit random word (4 elements
per draw), compared with a threshold: the keep probability is ``1 - round(p * 2^16) / 2^16`` (within
2^-17 of ``1 - p``) and kept values are scaled by its exact inverse, so the output is unbiased, as
``nn.Dropout``'s is.

The words come from numpy's SFC64 generator, seeded for each call by one draw from torch's default
generator, so ``torch.manual_seed`` and checkpointed RNG state govern the masks as they govern
``nn.Dropout``'s. numpy is used because its generator and its int16 compare are vectorised: on 850 x 384
elements, torch's ``random_`` took 460 us and its int16 compare 150-200 us, numpy 225 us and 23 us. The
mask is applied as one product with a float32 mask that holds 0 or the scale (``torch.where``'s CPU kernel
is scalar: 314 us against 35 us for a product), forward and backward; only the boolean decisions are kept for
backward. On other devices the native (fused) dropout is used.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

_LEVELS = 1 << 16
_INT16_MIN = -(1 << 15)


def _kept(shape: torch.Size | tuple[int, ...], p: float) -> np.ndarray:
    """The keep decisions of ``shape``: 16 bits of a 64-bit SFC64 word per element (four per word), seeded by one
    draw from torch's generator, at or above the threshold that drops ``round(p * 2^16)`` of the 2^16 values."""
    numel = math.prod(shape)
    seed = int(torch.empty((), dtype=torch.int64).random_())
    lanes = np.random.SFC64(seed).random_raw((numel + 3) // 4).view(np.int16)[:numel].reshape(tuple(shape))
    return lanes >= _INT16_MIN + round(p * _LEVELS)


def keep_mask(shape: torch.Size | tuple[int, ...], p: float) -> torch.Tensor:
    """A boolean mask, each element True with probability ``1 - round(p * 2^16) / 2^16``, independent."""
    return torch.from_numpy(_kept(shape, p))


def _scale(p: float) -> np.float32:
    """What kept values are multiplied by: the exact inverse of the keep probability."""
    return np.float32(_LEVELS / (_LEVELS - round(p * _LEVELS)))


def _scaled(kept: np.ndarray, scale: np.float32) -> torch.Tensor:
    """Keep decisions as a float32 mask holding ``scale`` where kept, 0 where dropped."""
    mask = kept.astype(np.float32)
    mask *= scale
    return torch.from_numpy(mask)


def scale_mask(shape: torch.Size | tuple[int, ...], p: float) -> torch.Tensor:
    """:func:`keep_mask` as float32: the scale ``2^16 / (2^16 - round(p * 2^16))`` where kept, 0 where dropped."""
    return _scaled(_kept(shape, p), _scale(p))


class _Masked(torch.autograd.Function):
    """``x`` times the float mask of ``kept``, forward and backward. For backward it keeps the boolean
    decisions (1 byte an element) and makes the float mask again, instead of keeping the float mask (4 bytes):
    over a training step of the embedded model that is about 100 MiB less resident memory, for one more numpy
    cast per call."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, kept: torch.Tensor, scale: np.float32) -> torch.Tensor:
        ctx.save_for_backward(kept)
        ctx.scale = scale
        return x * _scaled(kept.numpy(), scale).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (kept,) = ctx.saved_tensors
        return grad * _scaled(kept.numpy(), ctx.scale).to(grad.dtype), None, None


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)`` with the mask of :func:`keep_mask` on CPU."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training=True)
    if round(p * _LEVELS) == 0:
        return x
    return _Masked.apply(x, keep_mask(x.shape, p), _scale(p))


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
