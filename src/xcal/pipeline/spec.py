"""What a training stage is told: :class:`StageSpec` (its settings, read from the config once) and
:class:`Workspace` (what every stage of one job shares). Torch-free, so the stage-1 cache key is cheap."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from omegaconf import DictConfig

from xcal.data.mixture import Mixture, is_mixture
from xcal.data.tasks import TASKS, TaskSpec

if TYPE_CHECKING:
    from pytorch_lightning.loggers import Logger
    from transformers import PreTrainedTokenizerBase

    from xcal.data.sources import SourceSettings

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
    zero-shot sets (empty for stage 1)."""

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

    @classmethod
    def from_config(cls, cfg: DictConfig, stage: Stage, eval_languages: tuple[str, ...] = ()) -> StageSpec:
        """The stage's settings; ``eval_languages`` are the target languages to evaluate (those the source has)."""
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
            eval_size=block.eval_size if target else None, eval_languages=tuple(eval_languages) if target else (),
            eval_splits=tuple(block.eval_splits) if target else (),
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
    """What every stage of one job shares: the config (trainer, optimizer, model), the tokenizer, where each
    stage's data is read from, the cache root (tokenized data, stage-1 encoders), loggers and output dir."""

    cfg: DictConfig
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
