"""The stage-1 checkpoint cache: an intermediate-trained encoder, keyed by what determines it.

Stage 1 depends only on (model, intermediate task, size, data seed, seed, its optimisation
settings). Every target task and evaluation variant that shares those reuses one training.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

# 2: encoders trained with dropout on (format 1 entries were trained in eval mode).
CACHE_FORMAT = 2


def stage1_identity(cfg: DictConfig) -> dict[str, Any]:
    """Exactly the config values that determine the stage-1 encoder weights."""
    inter = OmegaConf.to_container(cfg.intermediate, resolve=True)
    return {
        "format": CACHE_FORMAT,
        "model": {k: cfg.model[k] for k in ("name_or_path", "pooling", "freeze_embeddings", "head_dropout")},
        "intermediate": inter,
        "data_seed": cfg.data_seed,
        "seed": cfg.seed,
        "optimizer": OmegaConf.to_container(cfg.optimizer, resolve=True),
        "scheduler": OmegaConf.to_container(cfg.scheduler, resolve=True),
        "label_smoothing": cfg.calibration.label_smoothing,
        "precision": str(cfg.trainer.get("precision")),
        "max_steps": cfg.trainer.get("max_steps", -1),
    }


def stage1_key(cfg: DictConfig) -> str:
    blob = json.dumps(stage1_identity(cfg), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]


def entry_dir(cache_root: Path, cfg: DictConfig) -> Path:
    return cache_root / "encoders" / f"{cfg.intermediate.name}-{cfg.intermediate.size}-{stage1_key(cfg)}"


def is_complete(entry: Path) -> bool:
    """An entry is complete only once its marker, written last, exists."""
    return (entry / "xcal_stage1.json").is_file() and (entry / "config.json").is_file()
