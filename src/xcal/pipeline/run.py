"""One job: validate → assets → stage 1 (cached) → stage 2 → zero-shot evaluation → results.json."""

from __future__ import annotations

import gc
import json
import logging
import resource
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout
from omegaconf import DictConfig, OmegaConf

import xcal
from xcal.assets.cache import cache_dir, data_dir
from xcal.atomic import atomic_write_json
from xcal.data.sources import SourceSettings, eval_languages
from xcal.data.tasks import NO_TASK, TASKS
from xcal.errors import XcalError
from xcal.models.encoder import EMBEDDED_PREFIX, load_tokenizer, resolve_model_path
from xcal.models.vocab import TrimmedEmbedding, original_embedding, restore_vocabulary
from xcal.pipeline import encoder_cache
from xcal.pipeline.evaluate import predict_logits, save_predictions, zero_shot_metrics
from xcal.pipeline.loggers import build_loggers, log_zeroshot_media
from xcal.pipeline.results import flat_metrics, language_means, write_results
from xcal.pipeline.resume import config_hash, keep_previous_result
from xcal.pipeline.stages import train_stage
from xcal.pipeline.validate import ConfigError, data_problems, validate_config

log = logging.getLogger(__name__)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def is_out_of_memory(exc: BaseException) -> bool:
    """A failed allocation: Python's MemoryError, torch's OutOfMemoryError (GPU), or the CPU allocator's
    RuntimeError ("DefaultCPUAllocator: can't allocate memory")."""
    if isinstance(exc, MemoryError | torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "not enough memory" in text)


def failure_reason(exc: BaseException) -> str:
    """What results.json says about a failed job; out of memory comes with what to lower."""
    reason = f"{type(exc).__name__}: {exc}"
    if is_out_of_memory(exc):
        reason = (f"out of memory ({reason.splitlines()[0][:300]}); lower intermediate.batch_size / "
                  "target.batch_size or *.eval_tokens_per_batch, or use model.freeze_embeddings=true")
    return reason


def stage_sources(cfg: DictConfig, data_root: Path) -> dict[str, SourceSettings]:
    """Where each stage's task is read from (``intermediate`` absent when the stage is skipped)."""
    sources = {}
    for stage in ("intermediate", "target"):
        block = cfg[stage]
        if block.name != NO_TASK and (stage == "target" or block.size != 0):
            sources[stage] = SourceSettings.from_block(TASKS[block.name], block, data_root, stage)
    return sources


def ensure_assets(cfg: DictConfig, root: Path) -> None:
    """Fetch and convert the embedded model and data once, if this job uses any of them."""
    uses_embedded = cfg.model.name_or_path.startswith(EMBEDDED_PREFIX) or any(
        TASKS[name].source == "embedded" for name in (cfg.intermediate.name, cfg.target.name) if name != NO_TASK
    )
    if uses_embedded:
        from xcal.assets.fetch import ensure_embedded_assets

        ensure_embedded_assets(root)


def prepare(cfg: DictConfig) -> tuple[Path, dict[str, SourceSettings], str]:
    """Everything checkable before training: config, assets, data files and sizes. Returns the cache
    root, each stage's data source and the resolved model path."""
    validate_config(cfg)
    root = cache_dir(cfg.paths.cache_dir)
    ensure_assets(cfg, root)
    sources = stage_sources(cfg, data_dir(root))
    problems = data_problems(cfg, sources)
    if problems:
        raise ConfigError(problems)
    return root, sources, resolve_model_path(cfg.model.name_or_path, root)


def _train_stage1(cfg: DictConfig, root: Path, sources: dict[str, SourceSettings], model_path: str, tokenizer,
                  loggers, output_dir: Path, target: Path, checkpoint_dir: Path) -> dict[str, Any]:
    """Train stage 1 and write the encoder to ``target`` atomically (temp directory, then rename)."""
    inter = cfg.intermediate
    module, _, _, outcome = train_stage(
        cfg, "intermediate", TASKS[inter.name], inter, inter.size, model_path, tokenizer, sources["intermediate"],
        root / "tokenized", loggers, output_dir, checkpoint_dir=checkpoint_dir, seed=encoder_cache.stage1_seed(cfg),
    )
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if isinstance(module.encoder.get_input_embeddings(), TrimmedEmbedding):  # the cache serves any data
        restore_vocabulary(module.encoder, original_embedding(model_path))
    module.encoder.save_pretrained(tmp, safe_serialization=True)
    info = {"skipped": False, "key": encoder_cache.stage1_key(cfg), **outcome.as_dict(),
            "identity": encoder_cache.stage1_identity(cfg)}
    atomic_write_json(tmp / encoder_cache.MARKER, {**info, "files": encoder_cache.file_digests(tmp)})
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return info


def _stage1(cfg: DictConfig, root: Path, sources: dict[str, SourceSettings], model_path: str, tokenizer, loggers,
            output_dir: Path) -> tuple[str, dict[str, Any]]:
    """Train the intermediate stage, or reuse the cached encoder trained with identical settings.

    Jobs on the same key serialise on a file lock: one trains, the others wait and reuse. The lock is
    an OS lock (fcntl), released by the kernel when its holder dies, so a crashed job never blocks the
    rest; the next holder resumes the crashed one's checkpoint (kept beside the entry)."""
    if "intermediate" not in sources:
        return model_path, {"skipped": True}
    if not cfg.get("stage1_cache", True):
        target = output_dir / "intermediate_encoder"
        info = _train_stage1(cfg, root, sources, model_path, tokenizer, loggers, output_dir, target,
                             output_dir / "checkpoints" / "intermediate")
        return str(target), {**info, "reused": False, "cache_dir": None}
    entry = encoder_cache.entry_dir(root, cfg)
    entry.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(entry) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("another job is training stage 1 for %s; waiting for it to reuse its encoder", entry.name)
        lock.acquire()
    try:
        if encoder_cache.is_complete(entry):
            problem = encoder_cache.verify(entry)
            if problem is None:
                info = json.loads((entry / encoder_cache.MARKER).read_text())
                info.pop("files", None)
                return str(entry), {**info, "reused": True, "cache_dir": str(entry)}
            log.warning("stage-1 cache entry rebuilt: %s", problem)
            shutil.rmtree(entry, ignore_errors=True)
        info = _train_stage1(cfg, root, sources, model_path, tokenizer, loggers, output_dir, entry,
                             entry.with_name(entry.name + ".checkpoints"))
    finally:
        lock.release()
    return str(entry), {**info, "reused": False, "cache_dir": str(entry)}


class JobBusyError(XcalError, RuntimeError):
    pass


def run(cfg: DictConfig, output_dir: Path, run_name: str = "run") -> dict[str, Any]:
    """Run all three stages; always leaves a results.json (``status`` ok or failed).

    One job per output directory at a time: a second process started on the same directory (a sweep
    launched twice, say) stops at once instead of interleaving its files with the first one's."""
    output_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(output_dir / ".xcal.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise JobBusyError(f"another xcal job is running in {output_dir}; wait for it to finish (its "
                           "results.json will appear) or choose another hydra.run.dir / sweep_name") from None
    try:
        return _run(cfg, output_dir, run_name)
    finally:
        lock.release()


def _run(cfg: DictConfig, output_dir: Path, run_name: str) -> dict[str, Any]:
    started = time.perf_counter()
    gc.collect()  # a previous job of the same multirun process may still hold its models in reference cycles
    root, sources, model_path = prepare(cfg)  # config problems raise before anything is written
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    keep_previous_result(output_dir, config_hash(cfg))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    record: dict[str, Any] = {"status": "running", "xcal_version": xcal.__version__, "config_hash": config_hash(cfg),
                              "config": resolved}
    loggers = []
    try:
        tokenizer = load_tokenizer(model_path)
        loggers = build_loggers(cfg, output_dir, run_name)
        encoder_path, stage1 = _stage1(cfg, root, sources, model_path, tokenizer, loggers, output_dir)
        record["intermediate"] = stage1
        # The stage-1 module and its trainer reference each other, so only the cycle collector frees them
        # (weights, optimizer state, a restored 250k-row embedding): do it before stage 2 loads its encoder.
        gc.collect()

        target = cfg.target
        spec = TASKS[target.name]
        languages = eval_languages(sources["target"], spec, target.languages, target.eval_splits)
        record["languages"] = languages.as_dict()  # a hub copy may lack some of the task's languages
        module, trainer, dm, outcome = train_stage(
            cfg, "target", spec, target, target.train_size, encoder_path, tokenizer, sources["target"],
            root / "tokenized", loggers, output_dir,
            datamodule_kwargs={"eval_size": target.eval_size, "eval_languages": languages.evaluated,
                               "eval_splits": tuple(target.eval_splits)},
            checkpoint_dir=output_dir / "checkpoints" / "target",
        )
        record["target"] = outcome.as_dict()

        eval_start = time.perf_counter()
        predictions = predict_logits(trainer, module, dm)
        zeroshot, temperature = zero_shot_metrics(
            predictions, n_bins=cfg.calibration.n_bins, bootstrap=cfg.calibration.bootstrap, seed=cfg.seed,
            temperature_scaling=cfg.calibration.temperature_scaling,
            plot_dir=output_dir / "plots" if cfg.calibration.reliability_diagrams else None, task=spec,
        )
        if cfg.calibration.get("save_predictions", True):
            record["predictions"] = save_predictions(predictions, output_dir / "predictions")
        primary = "test" if "test" in target.eval_splits else target.eval_splits[0]
        record.update(
            status="ok",
            temperature=temperature,
            primary_split=primary,
            zeroshot=zeroshot,
            mean_over_languages={s: language_means(zeroshot, s) for s in target.eval_splits},
            evaluation={"seconds": round(time.perf_counter() - eval_start, 3),
                        "examples": int(sum(p.counts.numel() for p in predictions.values())),
                        "labelled_positions": int(sum(p.labels.numel() for p in predictions.values()))},
        )
        flat = flat_metrics(zeroshot, primary)
        for logger in loggers:
            logger.log_metrics(flat, step=trainer.global_step)
        log_zeroshot_media(loggers, zeroshot, output_dir / "plots")
    except BaseException as exc:
        record.update(status="failed", error=failure_reason(exc), traceback=traceback.format_exc())
        if is_out_of_memory(exc):
            # The failed step's tensors live on in the traceback's frames: free them so recording works.
            traceback.clear_frames(exc.__traceback__)
        raise
    finally:
        record["seconds"] = round(time.perf_counter() - started, 3)
        record["peak_rss_mb"] = round(_peak_rss_mb(), 1)
        write_results(output_dir, record)
        for logger in loggers:
            logger.finalize("success" if record["status"] == "ok" else "failed")
    return record
