"""One pass over the composed config: :func:`plan_job` checks it (every problem at once, a
:class:`~xcal.pipeline.validate.ConfigError`, before any download or training) and reads it into the
:class:`JobPlan` that the stages, the builders, the stage-1 cache, the evaluation and the loggers take. Nothing
after it reads the DictConfig. The ``xcal`` command plans a job before it imports the training stack (Lightning).

What needs the data (sizes against the rows that exist, the languages a hub copy has) can only be checked once the
assets are there: :func:`xcal.pipeline.run.prepare` does that and finishes the plan (:meth:`JobPlan.evaluating`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

from omegaconf import DictConfig, OmegaConf

from xcal.data.mixture import is_mixture
from xcal.data.sources import Languages
from xcal.data.tasks import NO_TASK
from xcal.models.compiled import CompileSettings
from xcal.pipeline.resume import ConfigHashes
from xcal.pipeline.spec import StageSpec, wants_unpadded
from xcal.pipeline.stage1 import Stage1Key
from xcal.pipeline.validate import validate_config


@dataclass(frozen=True)
class ModelSettings:
    """``model.*``: the pre-trained encoder and how it is fine-tuned."""

    name_or_path: str
    pooling: str  # cls | mean
    freeze_embeddings: bool
    head_dropout: float
    unpad_tokens: bool  # real tokens only, where the architecture allows (build.unpad_tokens)
    trim_vocabulary: bool  # only the embedding rows of the job's tokens
    cudnn_attention: bool


@dataclass(frozen=True)
class CalibrationSettings:
    """``calibration.*``: the evaluation's bins, intervals, calibrators and outputs, and the training loss's
    label smoothing."""

    n_bins: int
    bootstrap: int
    calibrators: tuple[str, ...]
    reliability_diagrams: bool
    save_predictions: bool
    label_smoothing: float


@dataclass(frozen=True)
class CheckpointSettings:
    """``checkpoint.*``: how often a stage saves its trainer state, so that a killed job resumes."""

    enabled: bool
    every_n_minutes: float | None
    every_n_steps: int | None


@dataclass(frozen=True)
class PathSettings:
    """The ``paths.*`` a job reads (its output directory is its caller's)."""

    cache_dir: str | None  # None: $XCAL_CACHE, else ~/.cache/xcal
    encoder_cache_dir: str | None  # None: <cache>/encoders


@dataclass(frozen=True)
class JobPlan:
    """One job, checked and typed: its stages, settings, stage-1 cache key and config hashes.

    The Hydra ``_target_`` nodes (trainer, optimizer, scheduler, loggers) are kept as resolved plain containers and
    instantiated where their objects are built (:mod:`xcal.pipeline.build`, :mod:`xcal.pipeline.loggers`); ``config``
    is the resolved config that results.json and the W&B run record."""

    intermediate: StageSpec | None  # None: stage 1 is skipped (size 0, or intermediate=none)
    target: StageSpec
    requested_languages: tuple[str, ...]  # target.languages; empty: every language the source has
    model: ModelSettings
    calibration: CalibrationSettings
    checkpoint: CheckpointSettings
    seed: int
    data_seed: int
    num_threads: int | None  # torch's intra-op threads; None: torch's default
    stage1_cache: bool
    paths: PathSettings
    compile: CompileSettings | None  # None: the eager forward
    stage1: Stage1Key | None  # None when stage 1 is skipped
    trainer: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    loggers: dict[str, dict[str, Any]]  # by name, those with a _target_
    config: dict[str, Any]
    hashes: ConfigHashes
    languages: Languages | None = None  # the target languages its source has: set by :meth:`evaluating`

    @property
    def stages(self) -> tuple[StageSpec, ...]:
        """The stages that train, in order."""
        return tuple(spec for spec in (self.intermediate, self.target) if spec is not None)

    def evaluating(self, languages: Languages) -> JobPlan:
        """The plan finished with the target languages its data source has: the target stage evaluates those."""
        return replace(self, target=replace(self.target, eval_languages=languages.evaluated), languages=languages)

    def placed(self, num_threads: int, devices: list[int] | None) -> JobPlan:
        """The plan on a device slot (``hydra/launcher=shared_gpu``): its share of the CPU threads and, on a GPU, the
        slot's device, in the recorded config too. The hashes stay the composed config's: a slot changes where a job
        runs, not what it computes."""
        config = copy.deepcopy(self.config)
        config["num_threads"] = num_threads
        trainer = dict(self.trainer)
        if devices is not None:
            trainer["devices"] = list(devices)
            config["trainer"]["devices"] = list(devices)
        return replace(self, num_threads=num_threads, trainer=trainer, config=config)


def plan_job(cfg: DictConfig) -> JobPlan:
    """Check ``cfg`` (a :class:`~xcal.pipeline.validate.ConfigError` listing every problem) and read it, once."""
    validate_config(cfg)
    config = _resolved(cfg)
    inter, model, calibration, checkpoint = cfg.intermediate, cfg.model, cfg.calibration, cfg.checkpoint
    trains_stage1 = inter.size != 0 and (is_mixture(inter) or inter.name != NO_TASK)
    return JobPlan(
        intermediate=StageSpec.from_config(cfg, "intermediate") if trains_stage1 else None,
        target=StageSpec.from_config(cfg, "target"),
        requested_languages=tuple(cfg.target.languages or ()),
        model=ModelSettings(
            name_or_path=str(model.name_or_path), pooling=str(model.pooling),
            freeze_embeddings=bool(model.freeze_embeddings), head_dropout=float(model.head_dropout),
            unpad_tokens=wants_unpadded(cfg), trim_vocabulary=bool(model.get("trim_vocabulary", False)),
            cudnn_attention=bool(model.get("cudnn_attention", False)),
        ),
        calibration=CalibrationSettings(
            n_bins=int(calibration.n_bins), bootstrap=int(calibration.bootstrap),
            calibrators=tuple(calibration.calibrators), reliability_diagrams=bool(calibration.reliability_diagrams),
            save_predictions=bool(calibration.save_predictions), label_smoothing=float(calibration.label_smoothing),
        ),
        checkpoint=CheckpointSettings(
            enabled=bool(checkpoint.enabled),
            every_n_minutes=None if checkpoint.every_n_minutes is None else float(checkpoint.every_n_minutes),
            every_n_steps=None if checkpoint.every_n_steps is None else int(checkpoint.every_n_steps),
        ),
        seed=int(cfg.seed), data_seed=int(cfg.data_seed),
        num_threads=None if cfg.num_threads is None else int(cfg.num_threads),
        stage1_cache=bool(cfg.stage1_cache),
        paths=PathSettings(cfg.paths.get("cache_dir"), cfg.paths.get("encoder_cache_dir")),
        compile=CompileSettings.from_block(cfg.get("compile")),
        stage1=Stage1Key.of(cfg) if trains_stage1 else None,
        trainer=copy.deepcopy(config["trainer"]),
        optimizer=copy.deepcopy(config["optimizer"]),
        scheduler=copy.deepcopy(config.get("scheduler")) or None,
        loggers={name: copy.deepcopy(node) for name, node in (config.get("logger") or {}).items()
                 if isinstance(node, dict) and "_target_" in node},
        config=config,
        hashes=ConfigHashes.of(cfg),
    )


def _resolved(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config, as a job records it (a sweep's composed job, checked by the grid callback, also holds
    ``hydra``, which a running job's config does not)."""
    kept = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]) if "hydra" in cfg else cfg
    return OmegaConf.to_container(kept, resolve=True)
