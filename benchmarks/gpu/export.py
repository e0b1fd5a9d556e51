"""The ``export`` step (any machine, the embedded assets): xcal's config composed with ``trainer=gpu
model=xlmr_base`` and real batches from xcal's own loaders, saved for the GPU machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

INPUTS = Path(__file__).resolve().parents[1] / "gpu_inputs" / "inputs.pt"
TRAIN_BATCH_SIZES = (32, 128, 256)
TRAIN_STEPS = 60  # batches exported per (data set, batch size); each arm trains them twice, timing the second
EVAL_SIZE = 1000  # MultiEmo dev examples per language
# Evaluation batch limits (examples, padded tokens): the target config's, and a budget sized for a GPU.
GPU_EVAL_BUDGET = (1024, 65536)


def _packed(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A padded batch as real tokens only (int32 ids, int16 lengths): a third of the size on disk."""
    mask = batch["attention_mask"].bool()
    return {"ids": batch["input_ids"][mask].to(torch.int32), "lengths": mask.sum(1).to(torch.int16),
            "labels": batch["labels"].clone()}


def gpu_plan():
    """xcal's planned config with ``trainer=gpu model=xlmr_base``, VitaminC as the intermediate task, MultiEmo the
    target."""
    from hydra import compose, initialize_config_dir

    from xcal.pipeline.app import CONFIG_DIR
    from xcal.pipeline.plan import plan_job

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return plan_job(compose("config", overrides=["trainer=gpu", "model=xlmr_base", "intermediate=vitaminc",
                                                     "target=multiemo", "paths.output_dir=."]))


def train_data(plan, assets, tokenizer, data: dict[str, Any]) -> None:
    """Into ``data``: each task's learning rate, label count and length-grouped training batches at every size
    of :data:`TRAIN_BATCH_SIZES`."""
    from dataclasses import replace

    from xcal.data.sources import SourceSettings
    from xcal.data.tasks import TASKS
    from xcal.pipeline.build import build_datamodule

    for task_name, stage in (("vitaminc", plan.intermediate), ("multiemo", plan.target)):
        spec = TASKS[task_name]
        source = SourceSettings.from_block(spec, stage.source, assets.data_dir, stage.stage)
        data["lr"][task_name], data["num_labels"][task_name] = stage.lr, spec.num_labels
        for size in TRAIN_BATCH_SIZES:
            dm = build_datamodule(plan, replace(stage, batch_size=size, train_size=size * TRAIN_STEPS, val_size=0),
                                  tokenizer, source, assets.root / "tokenized")
            dm.setup("fit")
            data["train"][f"{task_name}/{size}"] = [_packed(b) for b in dm.train_dataloader()][:TRAIN_STEPS]
            print(f"export: {task_name} batch {size}: {len(data['train'][f'{task_name}/{size}'])} batches", flush=True)


def eval_data(plan, assets, tokenizer, data: dict[str, Any]) -> None:
    """Into ``data``: MultiEmo's zero-shot evaluation batches over every language (one loader per set, each
    length-sorted and cut by a token budget), under the target config's budget and :data:`GPU_EVAL_BUDGET`."""
    from dataclasses import replace

    from xcal.data.sources import SourceSettings
    from xcal.data.tasks import MULTIEMO_LANGUAGES, TASKS
    from xcal.pipeline.build import build_datamodule

    target = plan.target
    data["eval"] = {}
    stage = replace(target, eval_size=EVAL_SIZE, val_size=0, eval_languages=tuple(MULTIEMO_LANGUAGES),
                    eval_splits=("dev",))
    for examples, tokens in ((target.eval_batch_size, target.eval_tokens_per_batch), GPU_EVAL_BUDGET):
        dm = build_datamodule(plan, replace(stage, eval_batch_size=examples, eval_tokens_per_batch=tokens), tokenizer,
                              SourceSettings.from_block(TASKS["multiemo"], target.source, assets.data_dir, "target"),
                              assets.root / "tokenized")
        dm.setup("predict")
        data["eval"][f"{examples}/{tokens}"] = [_packed(b) for loader in dm.predict_dataloader() for b in loader]
    data["eval_settings"] = {"target_budget": f"{target.eval_batch_size}/{target.eval_tokens_per_batch}",
                             "languages": list(MULTIEMO_LANGUAGES), "examples_per_language": EVAL_SIZE}


def export(out: Path) -> None:
    """Write the GPU step's inputs (settings resolved from conf/, real batches from xcal's loaders)."""
    from gpu.jobs import export_study_data, export_study_model
    from xcal.assets.cache import cache_dir
    from xcal.assets.fetch import ensure_embedded_assets
    from xcal.models.encoder import load_tokenizer

    plan = gpu_plan()
    settings = {k: plan.config[k] for k in ("trainer", "optimizer", "scheduler", "model", "compile")}
    assets = ensure_embedded_assets(cache_dir(), verbose=False)
    tokenizer = load_tokenizer(str(assets.model_dir))
    data: dict[str, Any] = {"train": {}, "lr": {}, "num_labels": {}}
    train_data(plan, assets, tokenizer, data)
    eval_data(plan, assets, tokenizer, data)
    data["special_ids"] = [int(i) for i in tokenizer.all_special_ids]
    data["settings"] = settings
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, out)
    print(f"export: {out} ({out.stat().st_size / 1e6:.1f} MB), eval batches: "
          + ", ".join(f"{k}: {len(v)}" for k, v in data["eval"].items()))
    study = out.parent / "study"  # the jobs step: e5's config and tokenizer (no weights), MultiEmo and the manifest
    export_study_model(assets.model_dir, study / "model")
    export_study_data(assets.data_dir, study / "data")
    print(f"export: {study} ({sum(p.stat().st_size for p in study.rglob('*') if p.is_file()) / 1e6:.1f} MB)")
