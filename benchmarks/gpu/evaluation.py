"""The evaluation arm: Lightning's predict loop (inference mode, bf16-mixed) over the exported evaluation
batches of one budget, the second of two passes timed."""

from __future__ import annotations

import time
from typing import Any

from gpu.batches import stats, unpack
from gpu.run import Run


def arm_eval(run: Run, budget: str, unpad: bool, peaks: dict[str, float | None]) -> dict[str, Any]:
    from torch.utils.data import DataLoader

    batches = [unpack(b, run.pad_id) for b in run.inputs["eval"][budget]]
    module = run.module("multiemo", unpad)
    trainer = run.trainer(1, [])
    loader = DataLoader(batches, batch_size=None, shuffle=False, pin_memory=run.device == "cuda")
    trainer.predict(module, dataloaders=loader)  # warm-up pass: kernels chosen, allocator filled
    run.sync()
    t0 = time.perf_counter()
    trainer.predict(module, dataloaders=loader)
    run.sync()
    seconds = time.perf_counter() - t0
    s = stats(batches)
    flops = run.shape.forward_flops_per_token(s["mean_length"])
    tokens_per_s = s["real_tokens"] / seconds
    return {"forward": "real tokens" if unpad else "padded", "batches": len(batches), "seconds": seconds, **s,
            "real_tokens_per_s": tokens_per_s, "forward_flops_per_token": flops, **run.mfu(tokens_per_s, flops, peaks),
            "budget_examples_tokens": budget, **run.inputs["eval_settings"]}
