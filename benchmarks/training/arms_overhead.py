"""The overhead section's arms, each in a fresh process: xcal's training against a bare PyTorch loop over the
identical batches, and the ceiling (the bare loop's matrix products replayed alone)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.job import batch_stats, context, fresh_module, materialised_batches, quiet_lightning
from training.machine import peak_rss_mb
from training.probe import TRAIN_PROBE_EVERY, PeakProbe
from training.products import ProductRecorder, replayed


def arm_overhead_xcal(params: dict[str, Any], out: Path) -> dict[str, Any]:
    """xcal's Lightning path (module, cpu Trainer settings, CSV logger) over the materialised batches."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    from xcal.pipeline.build import build_trainer
    from xcal.pipeline.loggers import build_loggers

    quiet_lightning()
    ctx = context(params, out)
    batches = materialised_batches(ctx)
    module = fresh_module(ctx)
    losses: list[float] = []
    probe = PeakProbe(TRAIN_PROBE_EVERY)

    class Losses(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            losses.append(float(outputs["loss"]))
            probe.step()

    trainer = build_trainer(ctx.plan, 1, build_loggers(ctx.plan, out, "bench"), out, [Losses()])
    loader = DataLoader(batches, batch_size=None, shuffle=False)
    t0 = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader)
    elapsed = time.perf_counter() - t0
    assert trainer.global_step == len(batches), (trainer.global_step, len(batches))
    return {**probe.timed(elapsed), **batch_stats(batches), "first_loss": losses[0], "last_loss": losses[-1],
            "unpad_tokens": module.unpad_tokens, "peak_rss_mb": peak_rss_mb()}


def arm_overhead_bare(params: dict[str, Any], out: Path) -> dict[str, Any]:
    """The same model forward (the module's ``forward``: encoder on real tokens + head, plain nn.Module calls),
    optimiser groups, schedule and clipping in a plain loop: the floor for xcal's training machinery."""
    ctx = context(params, out)
    batches = materialised_batches(ctx)
    module = fresh_module(ctx)
    probe = PeakProbe(TRAIN_PROBE_EVERY)
    t0 = time.perf_counter()
    losses = bare_training(module, batches, after_step=probe.step)
    elapsed = time.perf_counter() - t0
    return {**probe.timed(elapsed), **batch_stats(batches), "first_loss": float(losses[0]),
            "last_loss": float(losses[-1]), "peak_rss_mb": peak_rss_mb()}


def bare_training(module: nn.Module, batches: list[dict[str, torch.Tensor]],
                  after_step: Callable[[], None] | None = None) -> list[torch.Tensor]:
    """One epoch of ``module`` over ``batches`` in a plain loop (its optimiser groups, schedule, clipping 1.0);
    the losses. ``after_step`` is called after each optimiser step."""
    from torch.nn import functional as F

    module.train()
    losses = []
    groups = module.optimizer_groups()
    optimizer = module.optimizer_factory(groups, lr=module.lr)
    total = len(batches)
    scheduler = module.scheduler_factory(optimizer, num_warmup_steps=int(module.warmup_ratio * total),
                                         num_training_steps=total)
    params_list = [param for group in groups for param in group["params"]]
    # Iterating a DataLoader draws its base seed from the global RNG; draw it here too, so dropout masks
    # (hence losses) match xcal's arm step for step: the check that both compute the same thing.
    torch.empty((), dtype=torch.int64).random_()
    for batch in batches:
        loss = F.cross_entropy(module(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params_list, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        losses.append(loss.detach())
        if after_step is not None:
            after_step()
    return losses


def arm_products(params: dict[str, Any], out: Path) -> dict[str, Any]:
    """The ceiling on training MFU that the matrix library leaves: every matrix product of the bare loop's
    epoch, recorded by :class:`ProductRecorder` and replayed back to back with nothing else in between."""
    ctx = context(params, out)
    batches = materialised_batches(ctx)
    recorder = ProductRecorder()
    with recorder:
        bare_training(fresh_module(ctx), batches, after_step=recorder.next_step)
    return {**replayed(recorder, params, TRAIN_PROBE_EVERY), **batch_stats(batches)}
