"""The trainer section's arms, each in a fresh process: transformers' ``Trainer`` as run_xnli.py sets it up,
and xcal's own ``train_stage``, on the same examples."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from training.job import Context, context, datamodule, lengths_of, quiet_lightning
from training.machine import peak_rss_mb


def recipe_datasets(ctx: Context, dm) -> tuple[Any, Any]:
    """The examples xcal trains and validates on (``dm``'s train and validation sets), as run_xnli.py feeds
    them to the Trainer: the raw texts tokenised padded to 128."""
    import datasets

    from xcal.data.datamodule import column
    from xcal.data.sources import load_split

    texts = {}
    for split in ("train", "dev"):
        raw = load_split(ctx.source, ctx.spec, "en", split)
        texts.update(zip(column(raw, "id"), zip(column(raw, "text"), column(raw, "label"), strict=True), strict=True))

    def encoded(ds) -> datasets.Dataset:
        rows = [texts[i] for i in column(ds, "id")]
        enc = ctx.tokenizer([t for t, _ in rows], padding="max_length", max_length=128, truncation=True)
        return datasets.Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                                           "labels": [label for _, label in rows]})

    return encoded(dm.train_set), encoded(dm.val_set)


def arm_recipe(params: dict[str, Any], out: Path) -> dict[str, Any]:
    """transformers' Trainer as run_xnli.py uses it, on the examples xcal trains and validates on."""
    try:
        import accelerate  # noqa: F401  (Trainer needs it; xcal does not)
    except ImportError as exc:
        raise SystemExit("the Trainer recipe needs `accelerate` (transformers' Trainer requires it): "
                         "`.venv/bin/pip install accelerate`, or run with --skip-recipe") from exc
    import numpy as np
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

    ctx = context(params, out)
    dm = datamodule(ctx, val_size=params["dev_size"])
    dm.setup("fit")
    train, dev = recipe_datasets(ctx, dm)
    real = int(np.asarray(train["attention_mask"]).sum())
    model = AutoModelForSequenceClassification.from_pretrained(ctx.model_path, num_labels=ctx.spec.num_labels)
    args = TrainingArguments(output_dir=str(out / "hf"), per_device_train_batch_size=params["batch_size"],
                             per_device_eval_batch_size=64, num_train_epochs=1, learning_rate=5e-5,
                             lr_scheduler_type="linear", eval_strategy="no", save_strategy="no", report_to="none",
                             seed=ctx.plan.seed, use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=train)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    pred = trainer.predict(dev)
    labels = np.asarray(dev["labels"])
    return {"seconds": seconds, "steps": int(trainer.state.global_step), "examples": len(train), "real_tokens": real,
            "padded_tokens": len(train) * 128, "optimizer": getattr(args.optim, "value", str(args.optim)),
            "weight_decay": args.weight_decay,
            "dev_examples": len(dev), "dev_accuracy": float((pred.predictions.argmax(-1) == labels).mean()),
            "dev_majority_rate": float(np.bincount(labels).max() / len(labels)), "peak_rss_mb": peak_rss_mb()}


def arm_xcal_train(params: dict[str, Any], out: Path) -> dict[str, Any]:
    """xcal's own train_stage (seeding, TaskDataModule, module, optional trimming, Lightning fit), then
    English dev accuracy through xcal's predict path."""
    from dataclasses import replace

    import numpy as np

    from xcal.pipeline.evaluate import predict_logits
    from xcal.pipeline.loggers import build_loggers
    from xcal.pipeline.spec import Workspace
    from xcal.pipeline.stages import train_stage

    quiet_lightning()
    ctx = context(params, out)
    t0 = time.perf_counter()
    work = Workspace(ctx.plan, ctx.cache_root, {"target": ctx.source}, ctx.model_path, ctx.tokenizer, out,
                     build_loggers(ctx.plan, out, "bench"))
    outcome = train_stage(work, replace(ctx.stage, eval_size=params["dev_size"], eval_languages=("en",),
                                        eval_splits=("dev",)), ctx.model_path)
    module, trainer, dm = outcome.module, outcome.trainer, outcome.datamodule
    stage_seconds = time.perf_counter() - t0
    lengths = lengths_of(dm.train_set)
    pred = next(iter(predict_logits(trainer, module, dm).values()))
    labels = pred.labels.numpy()
    trained = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return {"seconds": outcome.seconds, "stage_seconds": stage_seconds, "steps": outcome.steps,
            "examples": len(dm.train_set), "real_tokens": int(sum(lengths)), "mean_length": float(np.mean(lengths)),
            "trained_parameters": int(trained),
            "embedding_rows": int(module.encoder.get_input_embeddings().weight.shape[0]),
            "dev_examples": len(labels), "dev_accuracy": float((pred.logits.argmax(-1).numpy() == labels).mean()),
            "dev_majority_rate": float(np.bincount(labels).max() / len(labels)), "peak_rss_mb": peak_rss_mb()}
