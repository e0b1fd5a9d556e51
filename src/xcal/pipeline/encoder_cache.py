"""The stage-1 checkpoint cache: an intermediate-trained encoder, keyed by what determines it.

Stage 1 depends only on (model, intermediate task, size, data seed, seed, its optimisation
settings). Every target task and evaluation variant that shares those reuses one training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from xcal.utils.digest import file_digest, fingerprint

MARKER = "xcal_stage1.json"  # written last: an entry without it is incomplete and never read
# 2: encoders trained with dropout on (format 1 entries were trained in eval mode).
# 3: trained on real tokens only with xcal's dropout masks (model.unpad_tokens).
# 4: dropout masks drawn from numpy's SFC64, seeded from torch's generator (other masks, other weights).
# 5: early stopping (``intermediate.patience``) keeps the best validation's weights; ``intermediate.seed``.
# 6: torch's dropout only (model.fast_dropout, xcal's numpy-drawn masks, is gone).
CACHE_FORMAT = 6
# Intermediate keys that only change how the stage is *checked* (English dev) or batched for
# evaluation, never the trained weights; leaving them out lets more jobs share one entry. The dev set
# decides the weights kept under early stopping, so ``val_size`` counts then.
NOT_WEIGHTS = ("eval_batch_size", "eval_tokens_per_batch")


def stage1_seed(cfg: DictConfig) -> int:
    """``intermediate.seed`` (default ``${seed}``, the job's): fixing it shares one stage-1 encoder across
    the seeds of the target stage."""
    seed = cfg.intermediate.get("seed")
    return int(cfg.seed if seed is None else seed)


def stage1_identity(cfg: DictConfig) -> dict[str, Any]:
    """Exactly the config values that determine the stage-1 encoder weights."""
    from xcal.pipeline.stages import wants_unpadded  # torch and transformers: only when a key is needed

    skip = {*NOT_WEIGHTS, "seed", *(("val_size",) if cfg.intermediate.get("patience") is None else ())}
    inter = {k: v for k, v in OmegaConf.to_container(cfg.intermediate, resolve=True).items() if k not in skip}
    identity = {
        "format": CACHE_FORMAT,
        "model": {**{k: cfg.model[k] for k in ("name_or_path", "pooling", "freeze_embeddings", "head_dropout")},
                  # It changes which dropout masks are drawn, hence the weights.
                  "unpad_tokens": wants_unpadded(cfg)},
        "intermediate": inter,
        "data_seed": cfg.data_seed,
        "seed": stage1_seed(cfg),
        "optimizer": OmegaConf.to_container(cfg.optimizer, resolve=True),
        "scheduler": OmegaConf.to_container(cfg.scheduler, resolve=True),
        "label_smoothing": cfg.calibration.label_smoothing,
        "precision": str(cfg.trainer.get("precision")),
        "max_steps": cfg.trainer.get("max_steps", -1),
    }
    if cfg.model.get("trim_vocabulary"):
        # Exact for every token in the data; rows of absent tokens are not weight-decayed when embeddings train.
        identity["model"]["trim_vocabulary"] = True
    return identity


def stage1_key(cfg: DictConfig) -> str:
    return fingerprint(json.dumps(stage1_identity(cfg), sort_keys=True, default=str), n=20)


def encoders_root(cache_root: Path, cfg: DictConfig) -> Path:
    """``paths.encoder_cache_dir`` (e.g. shared storage on a cluster), else ``<cache>/encoders``."""
    configured = cfg.paths.get("encoder_cache_dir")
    return Path(configured).expanduser() if configured else cache_root / "encoders"


def entry_dir(cache_root: Path, cfg: DictConfig) -> Path:
    size = "full" if cfg.intermediate.size is None else cfg.intermediate.size
    return encoders_root(cache_root, cfg) / f"{cfg.intermediate.name}-{size}-{stage1_key(cfg)}"


def file_digests(entry: Path) -> dict[str, str]:
    """SHA-256 of every file of an entry (the marker excepted): its manifest."""
    digests = {}
    for path in sorted(p for p in entry.rglob("*") if p.is_file() and p.name != MARKER):
        digests[str(path.relative_to(entry))] = file_digest(path)
    return digests


def is_complete(entry: Path) -> bool:
    """An entry is complete only once its marker, written last, exists."""
    return (entry / MARKER).is_file() and (entry / "config.json").is_file()


def verify(entry: Path) -> str | None:
    """None when every file matches the manifest in the marker; else what is wrong (truncated, altered,
    missing or extra file), so the entry is rebuilt instead of read."""
    try:
        marker = json.loads((entry / MARKER).read_text())
    except (OSError, ValueError):
        return f"{entry / MARKER} is unreadable"
    manifest = marker.get("files") if isinstance(marker, dict) else None
    if not isinstance(manifest, dict):
        return f"{entry / MARKER} is not a manifest"
    found = file_digests(entry)
    if found != manifest:
        changed = sorted(set(found) ^ set(manifest) | {k for k in found if manifest.get(k) != found[k]})
        return f"{entry} does not match its manifest ({', '.join(changed)})"
    return None
