"""One planned job (:func:`xcal.pipeline.plan.plan_job`): assets and data checks → stage 1 (cached) → stage 2 →
zero-shot evaluation → results.json."""

from __future__ import annotations

import copy
import gc
import logging
import resource
import sys
import time
import traceback
from pathlib import Path

import torch
from filelock import FileLock, Timeout

import xcal
from xcal.assets.cache import cache_dir, data_dir
from xcal.data.sources import SourceSettings, eval_languages
from xcal.errors import XcalError
from xcal.models.encoder import EMBEDDED_PREFIX, load_tokenizer, resolve_model_path
from xcal.pipeline.environment import environment
from xcal.pipeline.evaluate import predict_logits, save_predictions, zero_shot_metrics
from xcal.pipeline.loggers import build_loggers, log_zeroshot_media
from xcal.pipeline.plan import JobPlan
from xcal.pipeline.record import JobRecord, english_temperature, flat_metrics, language_means, write_record
from xcal.pipeline.resume import keep_previous_result
from xcal.pipeline.spec import StageSpec, Workspace
from xcal.pipeline.stage1 import get_or_train
from xcal.pipeline.stages import StageResult, train_stage
from xcal.pipeline.validate import ConfigError, data_problems

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


def stage_sources(plan: JobPlan, data_root: Path) -> dict[str, SourceSettings | dict[str, SourceSettings]]:
    """Where each stage's task is read from (``intermediate`` absent when the stage is skipped; a mixture's:
    each task's, by name)."""
    sources: dict[str, SourceSettings | dict[str, SourceSettings]] = {}
    for spec in plan.stages:
        if spec.mixture is not None:
            sources[spec.stage] = spec.mixture.sources(data_root)
        else:
            sources[spec.stage] = SourceSettings.from_block(spec.task, spec.source, data_root, spec.stage)
    return sources


def ensure_assets(plan: JobPlan, root: Path) -> None:
    """Fetch and convert the embedded assets this job reads, once: the converted model only when
    ``model.name_or_path`` names it, the data of its embedded tasks only (a machine handed a local model and
    that data runs the job; the rest of the cache is never asked for; a skipped stage 1 reads none)."""
    embedded_model = plan.model.name_or_path.startswith(EMBEDDED_PREFIX)
    tasks = [task.name for spec in plan.stages for task in (spec.mixture.tasks if spec.mixture else (spec.task,))
             if task.origin == "embedded"]
    if embedded_model or tasks:
        from xcal.assets.fetch import ensure_embedded_assets

        ensure_embedded_assets(root, model=embedded_model, tasks=tasks)


def prepare(plan: JobPlan) -> tuple[JobPlan, Path, dict[str, SourceSettings | dict[str, SourceSettings]], str]:
    """The rest of what is checkable before training, once the config is planned: assets, data files and sizes
    (a :class:`~xcal.pipeline.validate.ConfigError` listing every problem). Returns the plan finished with the
    target languages its source has, the cache root, each stage's data source and the resolved model path."""
    root = cache_dir(plan.paths.cache_dir)
    ensure_assets(plan, root)
    sources = stage_sources(plan, data_dir(root))
    problems = data_problems(plan, sources)
    if problems:
        raise ConfigError(problems)
    target = plan.target
    languages = eval_languages(sources["target"], target.task, plan.requested_languages, target.eval_splits)
    return plan.evaluating(languages), root, sources, resolve_model_path(plan.model.name_or_path, root)


class JobBusyError(XcalError, RuntimeError):
    pass


def run(plan: JobPlan, output_dir: Path, run_name: str = "run") -> JobRecord:
    """Run all three stages of a planned job; always leaves a results.json (``status`` ok or failed) once its data
    checks pass.

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
        return _run(plan, output_dir, run_name)
    finally:
        lock.release()


def _run(plan: JobPlan, output_dir: Path, run_name: str) -> JobRecord:
    started = time.perf_counter()
    gc.collect()  # a previous job of the same multirun process may still hold its models in reference cycles
    # data problems raise before anything is written
    plan, root, sources, model_path = prepare(plan)
    if plan.num_threads:
        torch.set_num_threads(plan.num_threads)
    keep_previous_result(output_dir, plan.hashes.current)
    record: JobRecord = {"status": "running", "xcal_version": xcal.__version__, "config_hash": plan.hashes.current,
                         "config": copy.deepcopy(plan.config), "environment": environment()}
    loggers: list = []
    try:
        work = Workspace(plan, root, sources, model_path, load_tokenizer(model_path), output_dir, loggers)
        loggers.extend(build_loggers(plan, output_dir, run_name))
        _stages(work, record)
    except BaseException as exc:
        record.update(status="failed", error=failure_reason(exc), traceback=traceback.format_exc())
        if is_out_of_memory(exc):
            # The failed step's tensors live on in the traceback's frames: free them so recording works.
            traceback.clear_frames(exc.__traceback__)
        raise
    finally:
        record["seconds"] = round(time.perf_counter() - started, 3)
        record["peak_rss_mb"] = round(_peak_rss_mb(), 1)
        write_record(output_dir, record)
        for logger in loggers:
            logger.finalize("success" if record["status"] == "ok" else "failed")
        wandb = sys.modules.get("wandb")
        if wandb is not None and wandb.run is not None:
            wandb.finish()  # the job's W&B run ends with the job: the next job in this process starts its own
    return record


def _stages(work: Workspace, record: JobRecord) -> None:
    """Stage 1 (cached), stage 2 and the zero-shot evaluation, each filling its part of ``record``."""
    plan = work.plan
    stage1 = get_or_train(work)
    record["intermediate"] = stage1.record
    # The stage-1 module and its trainer reference each other, so only the cycle collector frees them
    # (weights, optimizer state, a restored 250k-row embedding): do it before stage 2 loads its encoder.
    gc.collect()

    assert plan.languages is not None, "prepare() finishes the plan with the target's languages"
    record["languages"] = plan.languages.as_dict()  # a hub copy may lack some of the task's languages
    spec = plan.target
    result = train_stage(work, spec, stage1.encoder_path, work.output_dir / "checkpoints" / "target")
    record["target"] = result.as_dict()
    _evaluate(work, spec, result, record)


def _evaluate(work: Workspace, spec: StageSpec, result: StageResult, record: JobRecord) -> None:
    """Zero-shot metrics of every language and split, raw and under each selected calibrator, into ``record``
    and the loggers; the record's status becomes ok."""
    calibration, output_dir = work.plan.calibration, work.output_dir
    eval_start = time.perf_counter()
    predictions = predict_logits(result.trainer, result.module, result.datamodule)
    zeroshot = zero_shot_metrics(
        predictions, n_bins=calibration.n_bins, bootstrap=calibration.bootstrap, seed=work.plan.seed,
        calibrators=list(calibration.calibrators),
        plot_dir=output_dir / "plots" if calibration.reliability_diagrams else None, task=spec.task,
    )
    if calibration.save_predictions:
        record["predictions"] = save_predictions(predictions, output_dir / "predictions")
    primary = "test" if "test" in spec.eval_splits else spec.eval_splits[0]
    record.update(
        status="ok",
        temperature=english_temperature(zeroshot),
        primary_split=primary,
        zeroshot=zeroshot,
        mean_over_languages={s: language_means(zeroshot, s) for s in spec.eval_splits},
        evaluation={"seconds": round(time.perf_counter() - eval_start, 3),
                    "examples": int(sum(p.counts.numel() for p in predictions.values())),
                    "labelled_positions": int(sum(p.labels.numel() for p in predictions.values()))},
    )
    flat = flat_metrics(zeroshot, primary)
    for logger in work.loggers:
        logger.log_metrics(flat, step=result.trainer.global_step)
    log_zeroshot_media(work.loggers, zeroshot, output_dir / "plots")
