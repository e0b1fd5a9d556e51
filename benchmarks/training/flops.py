"""The roofline: the model's FLOPs per real token, MFU, and the fp32 matmul peak it is measured against
(the formulas are in ``bench_training.py``'s docstring)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class EncoderShape:
    """What the FLOP count needs from a transformer encoder's config."""

    n_layers: int
    hidden: int
    intermediate: int

    @classmethod
    def from_config(cls, config: Any) -> EncoderShape:
        return cls(int(config.num_hidden_layers), int(config.hidden_size), int(config.intermediate_size))

    @property
    def matmul_params(self) -> int:
        """Non-embedding weight-matrix parameters: Q, K, V, output (4 H^2) and the FFN (2 H F) per layer."""
        return self.n_layers * (4 * self.hidden * self.hidden + 2 * self.hidden * self.intermediate)

    def forward_flops_per_token(self, mean_length: float) -> float:
        """``2 N + 4 n_layers L H``: a multiply-add per weight, plus Q K^T and A V over ``L`` positions."""
        return forward_flops_per_token(self.matmul_params, self.n_layers, self.hidden, mean_length)

    def train_flops_per_token(self, mean_length: float) -> float:
        return 3.0 * self.forward_flops_per_token(mean_length)


def forward_flops_per_token(matmul_params: int, n_layers: int, hidden: int, mean_length: float) -> float:
    """Forward FLOPs per real token (see bench_training.py's docstring)."""
    return 2.0 * matmul_params + 4.0 * n_layers * mean_length * hidden


def counted_matmul_params(encoder: nn.Module) -> int:
    """The same ``N`` counted from a built encoder: every ``nn.Linear`` weight outside the pooler (which
    runs once per sentence, not per token). Cross-checks :attr:`EncoderShape.matmul_params`."""
    return sum(m.weight.numel() for name, m in encoder.named_modules()
               if isinstance(m, nn.Linear) and "pooler" not in name)


def mfu(tokens_per_second: float, flops_per_token: float, peak_gflops: float) -> float:
    """Model FLOPs utilisation: achieved useful FLOP/s over the measured peak."""
    return tokens_per_second * flops_per_token / (peak_gflops * 1e9)


def matmul_peak_gflops(n: int = 2048, reps: int = 10, warmup: int = 3) -> float:
    """Best-of-``reps`` fp32 ``torch.mm`` throughput of two ``n x n`` matrices (``2 n^3`` FLOPs each)."""
    return best_mm_gflops(*mm_operands(n), reps=reps, warmup=warmup)


def mm_operands(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two seeded ``n x n`` fp32 factors and an output buffer for :func:`best_mm_gflops`."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, n, generator=g), torch.randn(n, n, generator=g), torch.empty(n, n)


def best_mm_gflops(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, reps: int, warmup: int) -> float:
    """GFLOP/s of the fastest of ``reps`` timed ``a @ b`` into ``out``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * a.shape[0] * a.shape[1] * b.shape[1] / best / 1e9
