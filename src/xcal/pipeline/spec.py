"""What a training stage is told: :class:`StageSpec` (its settings, read from the config once, by
:func:`xcal.pipeline.plan.plan_job`) and :class:`Workspace` (what every stage of one job shares). Torch-free."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from omegaconf import DictConfig

from xcal.data.mixture import Mixture, is_mixture
from xcal.data.sources import SOURCE_KEYS
from xcal.data.tasks import TASKS, TaskSpec

if TYPE_CHECKING:
    from pytorch_lightning.loggers import Logger
    from transformers import PreTrainedTokenizerBase

    from xcal.data.sources import SourceSettings
    from xcal.pipeline.plan import JobPlan

Stage = Literal["intermediate", "target"]


def stage1_seed(cfg: DictConfig) -> int:
    """``intermediate.seed`` (default ``${seed}``, the job's): fixing it shares one stage-1 encoder across
    the seeds of the target stage."""
    seed = cfg.intermediate.seed
    return int(cfg.seed if seed is None else seed)


def wants_unpadded(cfg: DictConfig) -> bool:
    """``model.unpad_tokens`` (true in every model yaml): the encoder computes real tokens only, on the CPU and
    on GPUs, where the fused variable-length attention made it the faster forward too
    (benchmarks/results/gpu.json)."""
    return bool(cfg.model.unpad_tokens)


@dataclass(frozen=True)
class StageSpec:
    """One training stage: which task, how much of it, and how it is optimised and stopped.

    Built from the stage's config block (``cfg.intermediate`` or ``cfg.target``) by :meth:`from_config`; every
    key is one that ``conf/<stage>_base.yaml`` sets, except ``max_steps``: every intermediate task sets it but
    ``none``, no target does; its one default (None, no cap) is here. The eval fields are the target stage's
    zero-shot sets (empty for stage 1; the target's languages are filled in once the data source says which it
    has, :meth:`xcal.pipeline.plan.JobPlan.evaluating`). ``source`` holds the block's source knobs
    (:data:`~xcal.data.sources.SOURCE_KEYS` it sets), which :func:`xcal.pipeline.run.stage_sources` reads."""

    stage: Stage
    task: TaskSpec | Mixture  # a Mixture: stage 1 on several tasks at once (intermediate=mixture)
    train_size: int | None  # None = the whole English training set
    epochs: int
    batch_size: int
    lr: float
    max_length: int
    val_size: int | None  # English dev examples per validation; 0 = none, None = all
    eval_batch_size: int
    eval_tokens_per_batch: int
    group_by_length: bool
    stratify: bool
    patience: int | None  # early stopping on English dev loss; None = off
    val_every_n_steps: int | None
    max_steps: int | None
    seed: int  # weights init, dropout and batch order of this stage
    eval_size: int | None = None
    eval_languages: tuple[str, ...] = ()
    eval_splits: tuple[str, ...] = ()
    source: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: DictConfig, stage: Stage) -> StageSpec:
        """The stage's settings (a checked config's: :func:`xcal.pipeline.plan.plan_job` calls this)."""
        block = cfg[stage]
        target = stage == "target"
        task = Mixture.from_block(block) if not target and is_mixture(block) else TASKS[block.name]
        return cls(
            stage=stage, task=task, train_size=block.train_size if target else block.size,
            epochs=block.epochs, batch_size=block.batch_size, lr=float(block.lr), max_length=block.max_length,
            val_size=block.val_size, eval_batch_size=block.eval_batch_size,
            eval_tokens_per_batch=block.eval_tokens_per_batch, group_by_length=block.group_by_length,
            stratify=block.stratify, patience=block.patience, val_every_n_steps=block.val_every_n_steps,
            max_steps=_step_cap(cfg, block),
            seed=int(cfg.seed) if target else stage1_seed(cfg),
            eval_size=block.eval_size if target else None, eval_splits=tuple(block.eval_splits) if target else (),
            source={key: block[key] for key in SOURCE_KEYS if key in block},
        )

    @property
    def mixture(self) -> Mixture | None:
        return self.task if isinstance(self.task, Mixture) else None


def _step_cap(cfg: DictConfig, block: DictConfig) -> int | None:
    """``<stage>.max_steps`` (absent from every target's yaml and from intermediate=none), else a positive
    ``trainer.max_steps``: the stage must know its cap to validate before it (else early stopping has nothing)."""
    cap = block.get("max_steps")
    if cap is None and cfg.trainer.get("max_steps", -1) > 0:
        cap = int(cfg.trainer.max_steps)
    return cap


@dataclass
class Workspace:
    """What every stage of one job shares: its plan (trainer, optimizer, model settings), the tokenizer, where each
    stage's data is read from, the cache root (tokenized data, stage-1 encoders), loggers and output dir."""

    plan: JobPlan
    cache_root: Path
    # a stage's source; a mixture stage's: each task's, by task name
    sources: dict[str, SourceSettings | dict[str, SourceSettings]]
    model_path: str  # the pre-trained encoder
    tokenizer: PreTrainedTokenizerBase
    output_dir: Path
    loggers: list[Logger] = field(default_factory=list)

    @property
    def token_cache(self) -> Path:
        return self.cache_root / "tokenized"
