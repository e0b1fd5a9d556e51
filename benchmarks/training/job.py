"""What every arm shares: xcal's planned config and what is built from it (tokenizer, source, the target
stage's TaskDataModule and module), and the batches and their statistics."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass
class Context:
    """The planned xcal config (xcal.pipeline.plan.JobPlan) and everything built from it once per arm."""

    plan: Any
    model_path: str
    tokenizer: Any
    source: Any
    cache_root: Path
    output_dir: Path
    spec: Any  # the task (xcal.data.tasks.TaskSpec)
    stage: Any  # the target stage's settings (xcal.pipeline.spec.StageSpec), as a job reads them

    @property
    def token_cache(self) -> Path:
        return self.cache_root / "tokenized"


def overrides(params: dict[str, Any], output_dir: Path) -> list[str]:
    """The Hydra overrides of :func:`context` (see there)."""
    out = ["target=multiemo", f"target.train_size={params['train_size']}", "target.epochs=1", "logger=csv",
           f"paths.output_dir={output_dir}", f"model.freeze_embeddings={params.get('freeze', True)}",
           f"++model.trim_vocabulary={params.get('trim', False)}"]
    if params.get("batch_size") is not None:
        out.append(f"target.batch_size={params['batch_size']}")
    if params.get("val_size", 0) is not None:
        out.append(f"target.val_size={params.get('val_size', 0)}")
    return out


def context(params: dict[str, Any], output_dir: Path) -> Context:
    """xcal's own config (conf/, target=multiemo, one epoch) with this benchmark's sizes. ``val_size`` 0
    unless given: no validation during timed training (the Trainer recipe has none either); a
    ``batch_size`` or ``val_size`` of None keeps xcal's default (the memory arms)."""
    from hydra import compose, initialize_config_dir

    from xcal.assets.cache import cache_dir
    from xcal.assets.fetch import ensure_embedded_assets
    from xcal.data.sources import SourceSettings
    from xcal.data.tasks import TASKS
    from xcal.models.encoder import load_tokenizer
    from xcal.pipeline.app import CONFIG_DIR
    from xcal.pipeline.plan import plan_job

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        plan = plan_job(compose("config", overrides=overrides(params, output_dir)))
    assets = ensure_embedded_assets(cache_dir(), verbose=False)
    spec = TASKS["multiemo"]
    return Context(plan, str(assets.model_dir), load_tokenizer(str(assets.model_dir)),
                   SourceSettings.from_block(spec, plan.target.source, assets.data_dir, "target"),
                   assets.root, output_dir, spec, plan.target)


def datamodule(ctx: Context, **changes: Any):
    """The target stage's TaskDataModule, built by the builder a job uses (:mod:`xcal.pipeline.build`), with
    ``changes`` to its :class:`~xcal.pipeline.spec.StageSpec` (eval sets, dev size)."""
    from dataclasses import replace

    from xcal.pipeline.build import build_datamodule

    return build_datamodule(ctx.plan, replace(ctx.stage, **changes), ctx.tokenizer, ctx.source, ctx.token_cache)


def lengths_of(ds) -> list[int]:
    from xcal.data.datamodule import column

    return column(ds, "length")


def eval_lengths(dm) -> list[int]:
    """Every eval set's real lengths, set after set (the order predictions come out in)."""
    return [n for ds in dm.eval_sets.values() for n in lengths_of(ds)]


def materialised_batches(ctx: Context) -> list[dict[str, torch.Tensor]]:
    """xcal's train loader, read once (seeded as train_stage seeds it)."""
    import pytorch_lightning as pl

    pl.seed_everything(ctx.plan.seed, workers=True, verbose=False)
    dm = datamodule(ctx)
    dm.setup("fit")
    return list(dm.train_dataloader())


def fresh_module(ctx: Context):
    import pytorch_lightning as pl

    from xcal.pipeline.build import build_module

    pl.seed_everything(ctx.plan.seed, workers=True, verbose=False)
    return build_module(ctx.plan, ctx.model_path, ctx.stage)


def fingerprint(batches: list[dict[str, torch.Tensor]]) -> str:
    """Identity of a batch list (ids, mask, labels, in order): both overhead arms must report the same."""
    from xcal.utils import digest

    keys = ("input_ids", "attention_mask", "labels")
    return digest.fingerprint(*(batch[key].numpy().tobytes() for batch in batches for key in keys), n=16)


def batch_stats(batches: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
    real = int(sum(int(b["attention_mask"].sum()) for b in batches))
    padded = int(sum(b["input_ids"].numel() for b in batches))
    return {"steps": len(batches), "examples": int(sum(len(b["labels"]) for b in batches)), "real_tokens": real,
            "padded_tokens": padded, "batches_fingerprint": fingerprint(batches)}


def quiet_lightning() -> None:
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*custom batch sampler.*")
    warnings.filterwarnings("ignore", message=".*torch.tensor results are registered as constants.*")
