"""Where a step's time goes: torch.profiler over warm steps of the bare loop or the predict step (device time by
kernel family, the top kernels, host syncs), and cProfile of a Lightning fit (Python)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from gpu.batches import train_batches, unpack
from gpu.run import Run
from gpu.train import bare_step


def kernel_kind(name: str) -> str:
    """A device kernel's family, from its name: attention, matrix products, the optimizer and clipping, or the
    rest (elementwise, layer norms, reductions, copies)."""
    lowered = name.lower()
    if any(k in lowered for k in ("fmha", "flash", "attention")):
        return "attention"
    if any(k in lowered for k in ("gemm", "cutlass", "xmma", "nvjet", "cublas")):
        return "matmul"
    if any(k in lowered for k in ("adam", "multi_tensor", "lpnorm")):
        return "optimizer+clip"
    return "other"


def forward_step(run: Run, module):
    """One evaluation batch as Lightning's predict step runs it: inference mode, bf16 autocast (the outputs
    stay on the device, as the predict loop leaves them)."""

    def step(batch: dict[str, torch.Tensor]) -> None:
        batch = {k: run.to_device(v) for k, v in batch.items()}
        with torch.inference_mode(), torch.autocast(run.device, dtype=torch.bfloat16, enabled=run.device == "cuda"):
            module.predict_step(batch, 0)

    return step


def traced_step(run: Run, task: str, size: str, unpad: bool, compile_mode: str | None):
    """The batches and the step a trace runs: for task ``eval`` the predict step on the evaluation batches of
    budget ``size`` (examples/tokens), else the bare loop's training step."""
    if task == "eval":
        batches = [unpack(b, run.pad_id) for b in run.inputs["eval"][size]]
        module = run.module("multiemo", unpad, compile_mode).to(run.device).eval()
        return batches, forward_step(run, module)
    batches = train_batches(run.inputs, task, int(size), run.pad_id)
    module = run.module(task, unpad, compile_mode).to(run.device)
    return batches, bare_step(run, module, 2 * len(batches))


def device_us(event) -> float:
    return float(getattr(event, "self_device_time_total", 0) or getattr(event, "self_cuda_time_total", 0) or 0)


def profiled(run: Run, step: Callable, batches: list[dict[str, torch.Tensor]], steps: int):
    """The wall seconds per step of ``steps`` warm steps, then the profiler's events over as many more."""
    from torch.profiler import ProfilerActivity, profile

    for batch in batches:  # every shape once
        step(batch)
    run.sync()
    t0 = time.perf_counter()
    for batch in batches[:steps]:
        step(batch)
    run.sync()
    wall = (time.perf_counter() - t0) / steps
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if run.device == "cuda" else [])
    with profile(activities=activities) as prof:
        for batch in batches[:steps]:
            step(batch)
        run.sync()
    return wall, prof.key_averages()


def kernel_summary(events, steps: int) -> dict[str, Any]:
    """Per step: device time by kernel family, kernel launches, host syncs, and the top 25 kernels."""
    from torch.autograd import DeviceType

    # Kernels only: an operator's own row repeats the device time of the kernels it launched.
    kernels = [e for e in events if e.device_type == DeviceType.CUDA and device_us(e) > 0]
    syncs = {e.key: e.count / steps for e in events
             if e.key in ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "aten::item",
                          "aten::_local_scalar_dense", "aten::nonzero")}
    kinds: dict[str, float] = {}
    for event in kernels:
        kinds[kernel_kind(event.key)] = kinds.get(kernel_kind(event.key), 0.0) + device_us(event) / 1e3 / steps
    top = sorted(kernels, key=device_us, reverse=True)[:25]
    return {"device_busy_ms_per_step": sum(kinds.values()), "device_ms_per_step_by_kind": kinds,
            "kernel_launches_per_step": sum(e.count for e in kernels) / steps, "host_syncs_per_step": syncs,
            "top_kernels": [{"name": e.key[:120], "ms_per_step": device_us(e) / 1e3 / steps,
                             "calls_per_step": e.count / steps} for e in top]}


def graph_breaks() -> dict[str, int]:
    """torch.compile's graph breaks since the counters were cleared (printed with the frames compiled)."""
    from torch._dynamo.utils import counters

    breaks = {reason[:160]: n for reason, n in counters["graph_break"].items()}
    print(f"   graph breaks: {breaks or 'none'}; frames compiled: {dict(counters['stats'])}", flush=True)
    return breaks


def print_trace(result: dict[str, Any], events) -> None:
    kinds = result["device_ms_per_step_by_kind"]
    print(f"== trace {result['arm']}: wall {result['wall_ms_per_step']:.1f} ms/step, device busy "
          f"{result['device_busy_ms_per_step']:.1f} ms/step, {result['kernel_launches_per_step']:.0f} kernels/step, "
          + ", ".join(f"{k} {v:.1f}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
          + f"; syncs/step {result['host_syncs_per_step']}", flush=True)
    for row in result["top_kernels"]:
        print(f"   {row['ms_per_step']:7.2f} ms  x{row['calls_per_step']:5.0f}  {row['name']}")
    print(events.table(sort_by="self_cpu_time_total", row_limit=12), flush=True)


def trace(run: Run, task: str, size: str, unpad: bool, compile_mode: str | None, steps: int = 5) -> dict[str, Any]:
    """torch.profiler over ``steps`` warm steps of the bare loop: wall time against the device's busy time, by
    kernel family, and the top kernels; says whether the host or the kernels set the pace."""
    batches, step = traced_step(run, task, size, unpad, compile_mode)
    if compile_mode:
        from torch._dynamo.utils import counters

        counters.clear()
    wall, events = profiled(run, step, batches, steps)
    summary = kernel_summary(events, steps)
    breaks = graph_breaks() if compile_mode else None
    flag = {None: "", "default": ":compile", "reduce-overhead": ":graphs"}.get(compile_mode, f":{compile_mode}")
    label = f"{task}:{size}:{'real' if unpad else 'padded'}{flag}"
    top = summary.pop("top_kernels")
    result = {"arm": label, "wall_ms_per_step": 1e3 * wall, **summary, "graph_breaks": breaks, "top_kernels": top}
    print_trace(result, events)
    return result


def profile(run: Run, task: str, size: int) -> None:
    """Where a step's time goes: cProfile of the Lightning fit's timed steps (Python), then the bare loop's."""
    import cProfile
    import io
    import pstats

    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    batches = train_batches(run.inputs, task, int(size), run.pad_id)
    profiler = cProfile.Profile()

    class Profiled(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if batch_idx == run.warmup:
                run.sync()
                profiler.enable()

        def on_train_end(self, trainer, pl_module) -> None:
            run.sync()
            profiler.disable()

    module = run.module(task, True)
    trainer = run.trainer(len(batches), [Profiled()])
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None, pin_memory=run.device == "cuda"))
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
    print(f"== Lightning fit, {task} batch {size}, steps {run.warmup}..{len(batches)}, by own time", text.getvalue())
