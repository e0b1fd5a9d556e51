"""The matmul peak probed *while* an arm runs, off its clock: the fair denominator for its MFU on a shared
machine whose peak moves by tens of % within minutes."""

from __future__ import annotations

import time
from typing import Any

from training.flops import best_mm_gflops, mm_operands

# PeakProbe every so many training steps (~1 s each) / evaluation batches (~1.3 s each): 8 and 9 probes a run.
TRAIN_PROBE_EVERY, EVAL_PROBE_EVERY = 8, 3


class PeakProbe:
    """The matmul peak measured *while* an arm runs: a short probe (best of ``reps`` 2048 x 2048 products) after
    the 1st step and every ``every`` steps after it. On this shared machine the peak moves by tens of % within
    minutes, so a peak measured beside the work is the fair denominator for its MFU; the probes' own time is
    kept apart (:attr:`seconds`) and taken out of the arm's."""

    def __init__(self, every: int, reps: int = 3, n: int = 2048) -> None:
        self.every, self.reps = every, reps
        self.operands = mm_operands(n)
        self.steps = 0
        self.gflops: list[float] = []
        self.seconds = 0.0

    def step(self) -> None:
        """Count a step; probe after the 1st, the (1 + every)th, ..."""
        self.steps += 1
        if (self.steps - 1) % self.every == 0:
            t0 = time.perf_counter()
            self.gflops.append(best_mm_gflops(*self.operands, reps=self.reps, warmup=1))
            self.seconds += time.perf_counter() - t0

    def alongside(self) -> dict[str, Any]:
        """The peak alongside (the best probe) and every probe."""
        return {"peak_gflops_alongside": max(self.gflops), "peak_probes": self.gflops, "probe_every": self.every}

    def timed(self, elapsed: float) -> dict[str, Any]:
        """An arm's ``seconds`` without the probes (``elapsed`` is its wall clock with them), and
        :meth:`alongside`."""
        return {"seconds": elapsed - self.seconds, "seconds_with_probes": elapsed, **self.alongside()}
