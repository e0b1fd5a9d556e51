"""The eval section's arms, each in a fresh process: xcal's zero-shot evaluation (token-budget batches of the
length-sorted sets), the same sets padded to 128, and the ceiling (the evaluation's matrix products alone)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from training.job import context, datamodule, eval_lengths, fresh_module, lengths_of, quiet_lightning
from training.machine import peak_rss_mb
from training.probe import EVAL_PROBE_EVERY, PeakProbe
from training.products import ProductRecorder, replayed


def eval_setup(params: dict[str, Any], out: Path, callbacks: list[Any] | None = None):
    """The context, the MultiEmo dev sets of every language (set up for predicting), a fresh module and a
    Trainer with ``callbacks``."""
    from xcal.data.tasks import MULTIEMO_LANGUAGES
    from xcal.pipeline.build import build_trainer

    quiet_lightning()
    ctx = context(params, out)
    dm = datamodule(ctx, eval_size=params["eval_size"], eval_languages=MULTIEMO_LANGUAGES, eval_splits=("dev",))
    dm.setup("predict")
    module = fresh_module(ctx)  # an untrained head computes exactly what a trained one does
    return ctx, dm, module, build_trainer(ctx.plan, 1, [], out, callbacks or [])


def eval_result(seconds: float, dm, padded: int, batches: int) -> dict[str, Any]:
    lengths = eval_lengths(dm)
    return {"seconds": seconds, "languages": len(dm.eval_sets), "examples": len(lengths), "real_tokens": sum(lengths),
            "padded_tokens": padded, "batches": batches, "mean_length": sum(lengths) / len(lengths),
            "peak_rss_mb": peak_rss_mb()}


def arm_eval_budget(params: dict[str, Any], out: Path) -> dict[str, Any]:
    """xcal's zero-shot path: :func:`xcal.pipeline.evaluate.predict_logits` over token-budget batches."""
    import pytorch_lightning as pl

    from xcal.pipeline.evaluate import predict_logits

    probe = PeakProbe(EVAL_PROBE_EVERY)

    class Probe(pl.Callback):
        def on_predict_batch_end(self, *args: Any, **kwargs: Any) -> None:
            probe.step()

    _, dm, module, trainer = eval_setup(params, out, [Probe()])
    per_set = [(lengths_of(ds), loader.batch_sampler.batches)
               for ds, loader in zip(dm.eval_sets.values(), dm.predict_dataloader(), strict=True)]
    batches = [b for _, cut in per_set for b in cut]
    # positions attention sees
    padded = sum(len(b) * max(lengths[i] for i in b) for lengths, cut in per_set for b in cut)
    t0 = time.perf_counter()
    predictions = predict_logits(trainer, module, dm)
    elapsed = time.perf_counter() - t0
    assert sum(p.counts.numel() for p in predictions.values()) == sum(len(ds) for ds in dm.eval_sets.values())
    probed = probe.timed(elapsed)
    return {**eval_result(probed["seconds"], dm, padded, len(batches)), **probed}


def arm_eval_padded(params: dict[str, Any], out: Path) -> dict[str, Any]:
    """The same sets and predict loop, padded to 128 in fixed batches of eval_batch_size, every position
    computed by the model's own forward (the naive way)."""
    from torch.utils.data import DataLoader

    from xcal.data.tokenize import MODEL_INPUTS

    ctx, dm, module, trainer = eval_setup(params, out)
    module.unpad_tokens = False

    def pad_to_max(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows = [{"input_ids": f["input_ids"], "attention_mask": f["attention_mask"]} for f in features]
        batch = dict(ctx.tokenizer.pad(rows, padding="max_length", max_length=128, return_tensors="pt"))
        batch["labels"] = torch.as_tensor([int(f["labels"]) for f in features], dtype=torch.int64)
        return batch

    size = ctx.stage.eval_batch_size
    loaders = [DataLoader(ds.with_format("torch", columns=list(MODEL_INPUTS)), batch_size=size, shuffle=False,
                          collate_fn=pad_to_max) for ds in dm.eval_sets.values()]
    t0 = time.perf_counter()
    outputs = trainer.predict(module, dataloaders=loaders)
    seconds = time.perf_counter() - t0
    examples = sum(len(ds) for ds in dm.eval_sets.values())
    assert sum(b["counts"].numel() for per_set in outputs for b in per_set) == examples
    return eval_result(seconds, dm, 128 * examples, sum(len(lo) for lo in loaders))


def arm_eval_products(params: dict[str, Any], out: Path) -> dict[str, Any]:
    """The same ceiling for evaluation: every matrix product of :func:`xcal.pipeline.evaluate.predict_logits`
    over the eval arm's sets and batches, replayed back to back. Batches of long sentences run attention in
    SDPA's fused kernel, which is not a product op: it counts as free here, so the ceiling errs high."""
    import pytorch_lightning as pl

    from xcal.pipeline.evaluate import predict_logits

    recorder = ProductRecorder()

    class NextBatch(pl.Callback):
        def on_predict_batch_end(self, *args: Any, **kwargs: Any) -> None:
            recorder.next_step()

    _, dm, module, trainer = eval_setup(params, out, [NextBatch()])
    trainer.predict_loop.inference_mode = False  # no_grad instead: dispatch modes do not see inference mode's ops
    with recorder:
        predict_logits(trainer, module, dm)
    lengths = eval_lengths(dm)
    return {**replayed(recorder, params, EVAL_PROBE_EVERY), "real_tokens": sum(lengths),
            "mean_length": sum(lengths) / len(lengths)}
