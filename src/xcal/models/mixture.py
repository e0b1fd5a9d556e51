"""The LightningModule of a mixture stage: one shared encoder, one head per task, one optimizer.

Every batch holds one task (:class:`xcal.data.mixture_datamodule.TaggedCollator` names it), so the batch goes
through that task's head and its loss is the task's own cross-entropy; steps interleave the tasks. English dev
is every task's dev subset: each task's loss, accuracy and calibration are logged
(``intermediate/<task>/val_acc``...), and ``intermediate/val_<metric>`` is their unweighted mean over tasks,
so early stopping weighs a 200-example task as much as a 5,000-example one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torchmetrics import MeanMetric

from xcal.data.mixture_datamodule import TASK_KEY
from xcal.metrics import DEFAULT_N_BINS, dev_metrics, metric_names
from xcal.models.compiled import CompileSettings
from xcal.models.heads import HEADS
from xcal.models.module import EncoderModule

#: What each task's English dev logs (the registry's dev metrics between accuracy and confidence); span heads have
#: no label distribution, so only loss and accuracy.
DEV_METRICS = ("loss", "acc", *metric_names(dev=True), "confidence")


class TaskDevMetrics(nn.Module):
    """One task's English dev numbers over a whole validation."""

    def __init__(self, kind: str, n_bins: int) -> None:
        super().__init__()
        self.loss = MeanMetric(nan_strategy="disable")
        self.acc = MeanMetric(nan_strategy="disable")
        self.calibrated = kind != "span"
        if self.calibrated:
            self.calibration = nn.ModuleDict(dev_metrics(n_bins))
            self.confidence = MeanMetric(nan_strategy="disable")

    def update(self, loss: torch.Tensor, hits: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.loss.update(loss.detach(), weight=labels.numel())
        self.acc.update(hits)
        if self.calibrated:
            self.confidence.update(torch.softmax(logits, dim=-1).amax(-1))
            for metric in self.calibration.values():
                metric.update(logits, labels)

    def compute_and_reset(self) -> dict[str, torch.Tensor]:
        """The validation's values (none when it saw no labelled example), then empty for the next one."""
        names = DEV_METRICS if self.calibrated else DEV_METRICS[:2]
        metrics = [getattr(self, name) if name in ("loss", "acc", "confidence") else self.calibration[name]
                   for name in names]
        values = {name: m.compute() for name, m in zip(names, metrics, strict=True)} if self.loss.update_called else {}
        for metric in metrics:
            metric.reset()
        return values


class MixtureClassifier(EncoderModule):
    """The encoder and a head per task (``heads``, ``kinds``: each task's head and its kind, in mixture order)."""

    def __init__(
        self,
        encoder: nn.Module,
        heads: dict[str, nn.Module],
        kinds: dict[str, str],
        *,
        stage: str,
        lr: float,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        warmup_ratio: float = 0.0,
        label_smoothing: float = 0.0,
        unpad_tokens: bool = False,
        n_bins: int = DEFAULT_N_BINS,
        compile_settings: CompileSettings | None = None,
    ) -> None:
        unknown = {kind for kind in kinds.values() if kind not in HEADS}
        if unknown or set(kinds) != set(heads):
            raise ValueError(f"each task needs a head of a known kind ({', '.join(HEADS)}); got heads for "
                             f"{sorted(heads)} and kinds {kinds}")
        super().__init__(encoder, nn.ModuleDict(heads), stage=stage, lr=lr, optimizer=optimizer, scheduler=scheduler,
                         warmup_ratio=warmup_ratio, label_smoothing=label_smoothing, unpad_tokens=unpad_tokens,
                         compile_settings=compile_settings)
        self.kinds = dict(kinds)
        self.dev = nn.ModuleDict({task: TaskDevMetrics(kind, n_bins) for task, kind in kinds.items()})
        self.train()  # from_pretrained returns eval mode; dropout must be on (see EncoderClassifier)

    def _head_of(self, batch: dict[str, Any]) -> tuple[nn.Module, str]:
        task = batch[TASK_KEY]
        return self.head[task], self.kinds[task]

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        loss, _, flat, labels = self._flat_loss(batch)
        if labels.numel():
            task = batch[TASK_KEY]
            self.dev[task].update(loss, self._correct(flat, labels, self.kinds[task]), flat.float(), labels)

    def on_validation_epoch_end(self) -> None:
        """Each task's dev numbers, and their mean over tasks: ``val_loss`` is what early stopping watches."""
        per_task = {task: metrics.compute_and_reset() for task, metrics in self.dev.items()}
        for task, values in per_task.items():
            for name, value in values.items():
                self.log(f"{self.stage}/{task}/val_{name}", value)
        for name in DEV_METRICS:
            values = [v[name] for v in per_task.values() if name in v]
            if values:
                self.log(f"{self.stage}/val_{name}", torch.stack(values).mean(), prog_bar=name in ("loss", "acc"))
