"""Stage 1 and its cache: an intermediate-trained encoder, keyed by what determines it.

Stage 1 depends only on (model, intermediate task, size, data seed, seed, its optimisation
settings; a mixture's task is its tasks and sampling rule). Every target task and evaluation variant that
shares those reuses one training: :func:`get_or_train` returns the cached encoder, or trains stage 1 and
stores it. The key (:class:`Stage1Key`) is taken from the config once, when the job is planned
(:func:`xcal.pipeline.plan.plan_job`); training reads the plan.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout
from omegaconf import DictConfig, OmegaConf

from xcal.atomic import atomic_directory, atomic_write_json
from xcal.data.mixture import SamplingRule, is_mixture
from xcal.data.tasks import TASKS
from xcal.pipeline.spec import Workspace, stage1_seed, wants_unpadded
from xcal.utils.digest import file_digest, fingerprint

if TYPE_CHECKING:
    from xcal.pipeline.plan import JobPlan

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
log = logging.getLogger(__name__)


def stage1_identity(cfg: DictConfig) -> dict[str, Any]:
    """Exactly the config values that determine the stage-1 encoder weights."""
    skip = {*NOT_WEIGHTS, "seed", *(("val_size",) if cfg.intermediate.get("patience") is None else ())}
    inter = {k: v for k, v in OmegaConf.to_container(cfg.intermediate, resolve=True).items() if k not in skip}
    if is_mixture(cfg.intermediate):
        inter = _mixture_identity(inter)
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
    if cfg.get("compile") is not None and cfg.compile.get("enabled", False):
        # Other dropout masks (the compiled kernels' generator) and other float rounding: other weights.
        identity["compile"] = OmegaConf.to_container(cfg.compile, resolve=True)
    if cfg.model.get("trim_vocabulary"):
        # Exact for every token in the data; rows of absent tokens are not weight-decayed when embeddings train.
        identity["model"]["trim_vocabulary"] = True
    return identity


def _mixture_identity(inter: dict[str, Any]) -> dict[str, Any]:
    """A mixture's block less the parameter its rule does not use (a proportional mixture's weights do not depend on
    ``cap``), plus where each hub task is read from (a single task's block holds its ``hub_id``; a mixture's tasks
    are read from their registry repos)."""
    unused = {"cap", "temperature"} - set(SamplingRule.from_block(inter).as_dict())
    inter = {k: v for k, v in inter.items() if k not in unused}
    hub = {name: [TASKS[name].hub_id, TASKS[name].hub_config] for name in inter["tasks"]
           if TASKS[name].origin != "embedded"}
    return {**inter, "hub": hub} if hub else inter


@dataclass(frozen=True)
class Stage1Key:
    """How the cache knows a job's stage-1 encoder: the config values that determine its weights (``identity``,
    recorded in results.json and the entry's marker), their hash (``key``) and the entry's folder name."""

    identity: dict[str, Any]
    key: str
    entry: str  # <intermediate.name>-<size or full>-<key>

    @classmethod
    def of(cls, cfg: DictConfig) -> Stage1Key:
        identity = stage1_identity(cfg)
        key = fingerprint(json.dumps(identity, sort_keys=True, default=str), n=20)
        size = "full" if cfg.intermediate.size is None else cfg.intermediate.size
        return cls(identity, key, f"{cfg.intermediate.name}-{size}-{key}")


def stage1_key(cfg: DictConfig) -> str:
    return Stage1Key.of(cfg).key


def encoders_root(cache_root: Path, configured: str | None) -> Path:
    """``paths.encoder_cache_dir`` (``configured``; e.g. shared storage on a cluster), else ``<cache>/encoders``."""
    return Path(configured).expanduser() if configured else cache_root / "encoders"


def entry_dir(cache_root: Path, plan: JobPlan) -> Path:
    """The cache entry of the job's stage-1 encoder (a job that trains stage 1: ``plan.stage1`` is set)."""
    assert plan.stage1 is not None, "stage 1 is skipped: it has no cache entry"
    return encoders_root(cache_root, plan.paths.encoder_cache_dir) / plan.stage1.entry


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


@dataclass(frozen=True)
class Stage1:
    """Where the target stage's encoder comes from, and stage 1's entry in results.json (``intermediate``)."""

    encoder_path: str
    record: dict[str, Any]


def get_or_train(work: Workspace) -> Stage1:
    """Train the intermediate stage, or reuse the cached encoder trained with identical settings.

    Jobs on the same key serialise on a file lock: one trains, the others wait and reuse. The lock is
    an OS lock (fcntl), released by the kernel when its holder dies, so a crashed job never blocks the
    rest; the next holder resumes the crashed one's checkpoint (kept beside the entry). With
    ``stage1_cache=false`` the encoder is trained into the job's own directory."""
    plan = work.plan
    if plan.intermediate is None:
        return Stage1(work.model_path, {"skipped": True})
    if not plan.stage1_cache:
        target = work.output_dir / "intermediate_encoder"
        info = _train(work, target, work.output_dir / "checkpoints" / "intermediate")
        return Stage1(str(target), {**info, "reused": False, "cache_dir": None})
    entry = entry_dir(work.cache_root, plan)
    entry.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(entry) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("another job is training stage 1 for %s; waiting for it to reuse its encoder", entry.name)
        lock.acquire()
    try:
        cached = _reusable(entry)
        if cached is not None:
            return Stage1(str(entry), {**cached, "reused": True, "cache_dir": str(entry)})
        info = _train(work, entry, entry.with_name(entry.name + ".checkpoints"))
    finally:
        lock.release()
    return Stage1(str(entry), {**info, "reused": False, "cache_dir": str(entry)})


def _reusable(entry: Path) -> dict[str, Any] | None:
    """The marker of a complete entry that matches its manifest (less the manifest), else None; a damaged
    entry is removed, to be rebuilt. Called under the entry's lock."""
    if not is_complete(entry):
        return None
    problem = verify(entry)
    if problem is None:
        info = json.loads((entry / MARKER).read_text())
        info.pop("files", None)
        return info
    log.warning("stage-1 cache entry rebuilt: %s", problem)
    shutil.rmtree(entry, ignore_errors=True)
    return None


def _train(work: Workspace, target: Path, checkpoint_dir: Path) -> dict[str, Any]:
    """Train stage 1 and write the encoder to ``target`` atomically (built under a temporary name, marker last,
    then renamed into place). Called under the entry's (or the job's) lock, so a temporary directory left by a
    killed attempt is nobody's and is removed."""
    from xcal.models.vocab import TrimmedEmbedding, original_embedding, restore_vocabulary
    from xcal.pipeline.environment import environment
    from xcal.pipeline.stages import train_stage  # torch and transformers: only when stage 1 trains

    plan = work.plan
    assert plan.intermediate is not None and plan.stage1 is not None
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    result = train_stage(work, plan.intermediate, work.model_path, checkpoint_dir)
    encoder = result.module.encoder
    if isinstance(encoder.get_input_embeddings(), TrimmedEmbedding):  # the cache serves any data
        restore_vocabulary(encoder, original_embedding(work.model_path))
    info = {"skipped": False, "key": plan.stage1.key, **result.as_dict(), "identity": plan.stage1.identity,
            "environment": environment()}
    with atomic_directory(target) as tmp:
        # mkdtemp makes it owner-only; an entry on shared storage is readable as its parent folder is
        tmp.chmod(target.parent.stat().st_mode & 0o777)
        encoder.save_pretrained(tmp, safe_serialization=True)
        atomic_write_json(tmp / MARKER, {**info, "files": file_digests(tmp)})
    return info
