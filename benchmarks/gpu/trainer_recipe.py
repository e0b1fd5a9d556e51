"""The Hugging Face Trainer arm: transformers' ``Trainer`` as run_xnli.py sets it up, on the examples of an xcal arm.

run_xnli.py pads every sentence to ``max_seq_length`` (128), builds ``AutoModelForSequenceClassification`` (every
parameter trained, the whole vocabulary) and lets the Trainer choose its optimizer (AdamW) and schedule (linear);
``bf16=True`` is the GPU setting a user would pick. The same XLM-R-base config with random weights, the same examples
(the rows of the arm's exported batches, shuffled by the Trainer's sampler), two epochs with the second timed, as
xcal's arms. Real tokens per second counts the same tokens as xcal's arm: the padding the recipe computes is its cost.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import torch

from gpu.batches import train_batches
from gpu.run import XLMR_BASE, Run

MAX_LENGTH = 128  # run_xnli.py's --max_seq_length default, padded to it (--pad_to_max_length, its default)


def recipe_examples(batches: list[dict[str, torch.Tensor]], pad_id: int) -> list[dict[str, torch.Tensor]]:
    """Every row of ``batches`` as a run_xnli.py example: ids and mask padded to :data:`MAX_LENGTH`, the label."""
    examples = []
    for batch in batches:
        for ids, mask, label in zip(batch["input_ids"], batch["attention_mask"], batch["labels"], strict=True):
            if ids.numel() > MAX_LENGTH:
                raise ValueError(f"an exported example has {ids.numel()} tokens, more than run_xnli.py's {MAX_LENGTH}")
            pad = MAX_LENGTH - ids.numel()
            examples.append({"input_ids": torch.nn.functional.pad(ids, (0, pad), value=pad_id),
                             "attention_mask": torch.nn.functional.pad(mask, (0, pad), value=0),
                             "labels": label.clone()})
    return examples


def arm_trainer(run: Run, task: str, size: int, peaks: dict[str, float | None], epochs: int = 2) -> dict[str, Any]:
    """Two epochs of the Trainer over the examples of xcal's ``task`` arm at batch ``size``; the second timed."""
    from transformers import Trainer, TrainerCallback, TrainingArguments, XLMRobertaConfig
    from transformers import XLMRobertaForSequenceClassification as Model

    batches = train_batches(run.inputs, task, int(size), run.pad_id)
    examples = recipe_examples(batches, run.pad_id)
    real = int(sum(int(e["attention_mask"].sum()) for e in examples))
    torch.manual_seed(0)
    overrides = {k: v for k, v in run.encoder.config.to_dict().items() if k in XLMR_BASE}
    model = Model(XLMRobertaConfig(**{**XLMR_BASE, **overrides}, num_labels=run.inputs["num_labels"][task]))
    seconds: list[float] = []

    class EpochTimer(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs) -> None:
            run.sync()
            self.t0 = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs) -> None:
            run.sync()
            seconds.append(time.perf_counter() - self.t0)

    cuda = run.device == "cuda"
    args = TrainingArguments(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=int(size),
                             num_train_epochs=epochs, learning_rate=run.inputs["lr"][task], lr_scheduler_type="linear",
                             bf16=cuda, use_cpu=not cuda, eval_strategy="no", save_strategy="no", report_to="none",
                             logging_strategy="no", seed=0, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=examples, callbacks=[EpochTimer()])
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    steps = -(-len(examples) // int(size))  # per epoch (the Trainer keeps the last partial batch)
    timed = seconds[-1]
    flops = run.shape.train_flops_per_token(real / len(examples))
    tokens_per_s = real / timed
    return {"task": task, "batch_size": int(size),
            "recipe": "run_xnli.py (Trainer, AutoModelForSequenceClassification)",
            "max_length": MAX_LENGTH, "examples": len(examples), "timed_steps": steps, "seconds": timed,
            "first_epoch_seconds": seconds[0], "ms_per_step": 1e3 * timed / steps, "real_tokens": real,
            "padded_tokens": len(examples) * MAX_LENGTH, "real_tokens_per_s": tokens_per_s,
            "optimizer": getattr(args.optim, "value", str(args.optim)), "bf16": args.bf16,
            "trained_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            **run.mfu(tokens_per_s, flops, peaks),
            "max_memory_allocated_gb": torch.cuda.max_memory_allocated() / 1e9 if cuda else 0.0}
