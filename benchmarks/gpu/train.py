"""The training arms: a Lightning fit with xcal's module (two epochs, the second timed), and a bare loop over
the same batches under bf16 autocast (the framework's overhead on a GPU)."""

from __future__ import annotations

import time
from typing import Any

import torch

from gpu.batches import stats, train_batches
from gpu.run import Run, attention_kernels, epoch_timer


def compile_counters() -> dict[str, Any]:
    """torch.compile's work so far (cleared per arm): frames compiled, graphs, graph breaks, recompilations. An arm
    that claims to be compiled shows its graphs here; one that fell back to eager (a recompile limit) would not."""
    from torch._dynamo.utils import counters

    return {"stats": dict(counters["stats"]), "graph_breaks": {k[:160]: v for k, v in counters["graph_break"].items()},
            "recompiles": sum(counters["recompiles"].values()) if "recompiles" in counters else None}


def clear_compile_counters() -> None:
    from torch._dynamo.utils import counters

    counters.clear()


def arm_train(run: Run, task: str, size: int, unpad: bool, cudnn: bool, peaks: dict[str, float | None],
              compile_mode: str | None = None) -> dict[str, Any]:
    """Two epochs over the same batches: the first sees every batch shape once (kernel choice, cuDNN plans,
    the allocator's pools, compilation and CUDA-graph recording: what a long run pays once), the second is timed."""
    from torch.utils.data import DataLoader

    attention_kernels(cudnn)
    batches = train_batches(run.inputs, task, int(size), run.pad_id)
    module = run.module(task, unpad, compile_mode)
    clear_compile_counters()
    timer = epoch_timer(run.sync)
    trainer = run.trainer(2 * len(batches), [timer], epochs=2)
    if run.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    loader = DataLoader(batches, batch_size=None, shuffle=False, pin_memory=run.device == "cuda")
    trainer.fit(module, train_dataloaders=loader)
    attention_kernels(False)
    cold, seconds = timer.seconds
    s = stats(batches)
    flops = run.shape.train_flops_per_token(s["mean_length"])
    tokens_per_s = s["real_tokens"] / seconds
    compiled = module.compiled
    return {"task": task, "batch_size": size, "forward": "real tokens" if unpad else "padded",
            "cudnn_attention": cudnn, "compiled": compile_mode is not None, "compile_mode": compile_mode,
            "timed_steps": len(batches), "seconds": seconds,
            "ms_per_step": 1e3 * seconds / len(batches), "first_epoch_ms_per_step": 1e3 * cold / len(batches), **s,
            "real_tokens_per_s": tokens_per_s, "train_flops_per_token": flops, **run.mfu(tokens_per_s, flops, peaks),
            "max_memory_allocated_gb": torch.cuda.max_memory_allocated() / 1e9 if run.device == "cuda" else 0.0,
            **({} if compiled is None else {"padded_shapes": sorted(compiled.shapes), "compile": compile_counters()})}


def bare_step(run: Run, module, total_steps: int):
    """One training step of a plain loop under bf16 autocast: the module's optimizer groups, schedule and
    clipping, without Lightning."""
    groups = module.optimizer_groups()
    params = [param for group in groups for param in group["params"]]
    optimizer = module.optimizer_factory(groups, lr=module.lr)
    scheduler = module.scheduler_factory(optimizer, num_warmup_steps=int(module.warmup_ratio * total_steps),
                                         num_training_steps=total_steps)

    def step(batch: dict[str, torch.Tensor]) -> None:
        batch = {k: run.to_device(v) for k, v in batch.items()}
        with torch.autocast(run.device, dtype=torch.bfloat16, enabled=run.device == "cuda"):
            # the compiled forward's sync-free loss, as its training step computes it; else the eager one
            loss = (module._flat_loss if module.compiled is None else module._compiled_loss)(batch)[0]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def arm_bare(run: Run, task: str, size: int, peaks: dict[str, float | None], unpad: bool = False,
             compile_mode: str | None = None) -> dict[str, Any]:
    """The same module (real-token, padded or compiled forward), optimizer groups, schedule and clipping in a plain
    loop under bf16 autocast, no cuDNN attention."""
    batches = train_batches(run.inputs, task, int(size), run.pad_id)
    module = run.module(task, unpad, compile_mode).to(run.device)
    step = bare_step(run, module, 2 * len(batches))
    t0 = 0.0
    for i, batch in enumerate(batches + batches):  # the first pass untimed, as in arm_train
        if i == len(batches):
            run.sync()
            t0 = time.perf_counter()
        step(batch)
    run.sync()
    seconds = time.perf_counter() - t0
    s = stats(batches)
    flops = run.shape.train_flops_per_token(s["mean_length"])
    tokens_per_s = s["real_tokens"] / seconds
    return {"task": task, "batch_size": size, "forward": "real tokens" if unpad else "padded", "loop": "bare",
            "compiled": compile_mode is not None, "compile_mode": compile_mode, "timed_steps": len(batches),
            "seconds": seconds, "ms_per_step": 1e3 * seconds / len(batches), **s, "real_tokens_per_s": tokens_per_s,
            **run.mfu(tokens_per_s, flops, peaks)}
