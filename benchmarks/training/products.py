"""The ceiling the matrix library leaves: every matrix product of a run recorded (op, operand layouts, other
arguments) and replayed back to back with nothing else in between."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from training.machine import peak_rss_mb
from training.probe import PeakProbe

PRODUCT_OPS = ("mm", "addmm", "bmm", "baddbmm")
Layout = tuple[tuple[int, ...], tuple[int, ...]]  # a tensor operand's shape and strides


def product_flops(shapes: list[tuple[int, ...]]) -> int:
    """2 x the multiply-adds of one matrix product, from its operands' shapes (``addmm``/``baddbmm``: the bias
    first, so the factors are the last two)."""
    a, b = shapes[-2:]
    return 2 * math.prod(a) * b[-1]


class RandomValues:
    """Fresh tensors of standard-normal values, copied from one random pool (grown as needed): each is its own new
    memory, as ``torch.randn`` would give, in under half its time (a replay makes hundreds of MB of operands per
    step; the values do not change a product's speed)."""

    def __init__(self) -> None:
        self.pool = torch.empty(0)

    def __call__(self, size: int) -> torch.Tensor:
        if size > self.pool.numel():
            self.pool = torch.randn(max(size, 2 * self.pool.numel()), generator=torch.Generator().manual_seed(0))
        return torch.empty(size).copy_(self.pool[:size])


fresh_random = RandomValues()


def recorded_operand(layout: Layout) -> torch.Tensor:
    """A fresh random tensor laid out as recorded (a transposed view stays transposed, a broadcast bias stays
    broadcast)."""
    shape, stride = layout
    size = 1 + sum((n - 1) * s for n, s in zip(shape, stride, strict=True)) if all(shape) else 0
    return fresh_random(size).as_strided(shape, stride)


class ProductRecorder(TorchDispatchMode):
    """Records every matrix product dispatched while active (forward and backward): its op, its tensor operands'
    layouts and its other arguments, in call order, grouped into steps by :meth:`next_step`."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[list[tuple[Any, list[Any], dict[str, Any]]]] = [[]]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in PRODUCT_OPS:
            layout = [(tuple(a.shape), a.stride()) if isinstance(a, torch.Tensor) else a for a in args]
            self.steps[-1].append((func, layout, dict(kwargs or {})))
        return func(*args, **(kwargs or {}))

    def next_step(self) -> None:
        """Start a new step, unless the current one has no products yet (so no step is empty but the last)."""
        if self.steps[-1]:
            self.steps.append([])

    @property
    def flops(self) -> int:
        return sum(product_flops([a[0] for a in layout if isinstance(a, tuple)])
                   for calls in self.steps for _, layout, _ in calls)

    def replay_seconds(self, between: Callable[[], None] | None = None) -> float:
        """Seconds to run the recorded products back to back, step by step; each call gets its own fresh
        operands, made before its step's clock starts. ``between`` is called after each step, off the clock."""
        seconds = 0.0
        for calls in self.steps:
            ready = [(func, [recorded_operand(a) if isinstance(a, tuple) else a for a in layout], kwargs)
                     for func, layout, kwargs in calls]
            t0 = time.perf_counter()
            for func, args, kwargs in ready:
                func(*args, **kwargs)
            seconds += time.perf_counter() - t0
            if between is not None:
                between()
        return seconds


def replayed(recorder: ProductRecorder, params: dict[str, Any], probe_every: int) -> dict[str, Any]:
    """The best of ``product_passes`` replays of what ``recorder`` recorded, probed as the run it came from was
    (between steps, outside the clock)."""
    probe = PeakProbe(probe_every)
    passes = [recorder.replay_seconds(between=probe.step) for _ in range(params.get("product_passes", 2))]
    return {"seconds": min(passes), "seconds_all": passes, "products": sum(len(c) for c in recorder.steps),
            "product_flops": recorder.flops, "product_gflops": recorder.flops / min(passes) / 1e9,
            **probe.alongside(), "peak_rss_mb": peak_rss_mb()}
