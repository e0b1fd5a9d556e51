"""The compiled training forward (``compile.enabled``): the encoder through ``torch.compile`` over a few fixed shapes.

Why: at the batch sizes fine-tuning studies use (16-32) a GPU step is a few milliseconds of arithmetic spread over
~1,500 kernel launches, and the eager step takes ten times that waiting on the host (docs/performance.md). Compiled,
the elementwise work between the matrix products fuses into a few kernels; ``mode=reduce-overhead`` also records
each shape's step as a CUDA graph and replays it instead of launching it. Both need shapes that repeat, so a batch
is padded up to the first of a few **length buckets** (``compile.length_buckets``): a run sees a handful of shapes,
not one per longest sentence.

What is compiled is the model's own padded forward (padding positions masked in the attention), not the real-token
forward of :mod:`xcal.models.unpadded`: that one finds its real tokens with ``nonzero``, a host sync and a
data-dependent shape every step, which is what a compiled or graphed step must not have. Only training steps are
compiled; validation and evaluation (eval mode, varying batch sizes) keep the eager real-token forward.

Off by default: eager is what every recorded job ran, bit for bit. On, the numbers agree with eager to float
rounding (tested on the CPU), while dropout masks are drawn by the compiled kernels' own generator, so a compiled run
trains on other masks (its stage-1 cache key says so).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: the config check imports CompileSettings, before torch
    import torch
    from torch import nn

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
BACKENDS = ("inductor", "aot_eager", "eager")  # aot_eager / eager: tracing without code generation (tests)


@dataclass(frozen=True)
class CompileSettings:
    """``compile.*`` of the config: torch.compile's ``mode``, ``backend`` and ``dynamic``, and the length buckets."""

    length_buckets: tuple[int, ...]
    mode: str = "default"
    backend: str = "inductor"
    dynamic: bool | None = None

    def __post_init__(self) -> None:
        buckets = self.length_buckets
        ordered = list(buckets) == sorted(set(buckets))
        if not buckets or any(not isinstance(b, int) or b < 1 for b in buckets) or not ordered:
            raise ValueError(f"compile.length_buckets={list(buckets)} must be increasing whole numbers >= 1")
        if self.mode not in MODES:
            raise ValueError(f"compile.mode={self.mode!r}; allowed: {', '.join(MODES)}")
        if self.backend not in BACKENDS:
            raise ValueError(f"compile.backend={self.backend!r}; allowed: {', '.join(BACKENDS)}")

    @classmethod
    def from_block(cls, block) -> CompileSettings | None:
        """The config's ``compile`` block; None when it is absent or ``enabled`` is false (the eager forward)."""
        if block is None or not block.get("enabled", False):
            return None
        dynamic = block.get("dynamic")
        return cls(tuple(block.length_buckets), str(block.get("mode", "default")),
                   str(block.get("backend", "inductor")), None if dynamic is None else bool(dynamic))

    def bucket(self, length: int) -> int:
        """The first bucket that holds ``length`` tokens."""
        i = bisect.bisect_left(self.length_buckets, length)
        if i == len(self.length_buckets):
            raise ValueError(f"a batch of {length} tokens is longer than the last of compile.length_buckets="
                             f"{list(self.length_buckets)}; the last bucket must be at least the stage's max_length")
        return self.length_buckets[i]


def pad_to_bucket(input_ids: torch.Tensor, attention_mask: torch.Tensor, length: int,
                  pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, T]`` ids and mask right-padded to ``[B, length]`` (pad id, mask 0): the shape the compiled forward sees."""
    from torch.nn import functional as F

    extra = length - input_ids.shape[-1]
    if extra == 0:
        return input_ids, attention_mask
    return F.pad(input_ids, (0, extra), value=pad_id), F.pad(attention_mask, (0, extra), value=0)


def _padded_forward(encoder: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    return encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class CompiledEncoder:
    """The encoder's padded forward compiled once per module; called with a batch, it pads the batch to its bucket,
    runs the compiled forward and returns ``[B, T, H]`` at the batch's own length (the positions past each
    sentence are padding, as in the model's own forward; heads and losses mask them).

    Not an ``nn.Module``: the module's state dict and parameters stay the encoder's."""

    def __init__(self, settings: CompileSettings, pad_id: int) -> None:
        import torch

        self.settings = settings
        self.pad_id = pad_id
        self.shapes: set[tuple[int, ...]] = set()  # the padded shapes seen: what the buckets bound
        self._forward: Callable[..., torch.Tensor] = torch.compile(
            _padded_forward, mode=None if settings.mode == "default" else settings.mode, backend=settings.backend,
            dynamic=settings.dynamic)

    def __call__(self, encoder: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        import torch

        length = input_ids.shape[-1]
        ids, mask = pad_to_bucket(input_ids, attention_mask, self.settings.bucket(length), self.pad_id)
        self.shapes.add(tuple(ids.shape))
        if self.settings.mode in ("reduce-overhead", "max-autotune") and ids.is_cuda:
            torch.compiler.cudagraph_mark_step_begin()  # a new training step: the last one's graph outputs are done
        return self._forward(encoder, ids, mask)[:, :length]


def pad_id_of(encoder: nn.Module) -> int:
    pad = getattr(getattr(encoder, "config", None), "pad_token_id", None)
    return 0 if pad is None else int(pad)
