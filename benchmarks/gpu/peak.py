"""The card's bf16 dense peak: measured, and from the vendor's datasheet."""

from __future__ import annotations

import torch

# Dense (no sparsity) bf16 tensor-core peaks from the vendors' datasheets, TFLOP/s.
DATASHEET_BF16_TFLOPS = {"H200": 989.4, "H100 80GB HBM3": 989.4, "H100 SXM": 989.4, "H100 PCIe": 756.0,
                         "H100 NVL": 835.0, "A100": 312.0, "L40S": 362.1, "A10": 125.0}


def bf16_peak(n: int = 8192, reps: int = 10, warmup: int = 3) -> float:
    """Mean bf16 ``torch.mm`` TFLOP/s on random ``n x n`` operands."""
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(warmup):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (start.elapsed_time(end) / 1e3) / 1e12


def datasheet_peak(name: str) -> float | None:
    for key, value in DATASHEET_BF16_TFLOPS.items():
        if key in name:
            return value
    return None
