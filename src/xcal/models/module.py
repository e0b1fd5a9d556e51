"""The LightningModule: encoder + task head, trained with cross-entropy (optionally smoothed).

Every head's output is reduced by :func:`flat_logits_and_labels` to classification over labelled
positions, so loss, accuracy and the predictions handed to calibration are computed the same way for
sentences, tags, options and span boundaries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.precision import MixedPrecision, Precision
from pytorch_lightning.utilities import GradClipAlgorithmType
from torch import nn
from torch.nn import functional as F
from torchmetrics import MeanMetric, Metric

from xcal.data.tokenize import IGNORE_INDEX
from xcal.metrics import DEFAULT_N_BINS, dev_metrics
from xcal.models.compiled import CompiledEncoder, CompileSettings, pad_id_of
from xcal.models.heads import HEADS
from xcal.models.unpadded import unpadded_hidden_states

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "ln.weight")


def flat_logits_and_labels(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits [N, K], labels [N])`` over labelled positions only (label -100 dropped).

    Every head's logits have the labels' shape plus a trailing class axis: sequence ``[B, K]``/``[B]``,
    token ``[B, L, K]``/``[B, L]``, multiple choice ``[B, C]``/``[B]``, span ``[B, 2, L]``/``[B, 2]``
    (rows: example 0 start, example 0 end, example 1 start...), so one reshape serves them all.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match labels {tuple(labels.shape)}: logits must "
                         "have the labels' shape plus a class axis")
    flat = logits.reshape(-1, logits.shape[-1])
    flat_labels = labels.reshape(-1)
    keep = flat_labels != IGNORE_INDEX
    return flat[keep], flat_labels[keep]


def smoothed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0,
                           valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy; the smoothing mass is spread over ``valid`` classes only.

    Span logits put padding at the dtype's minimum; torch's smoothing would give those positions
    probability mass in the target and an astronomically large loss, so they are left out of it.
    """
    if label_smoothing == 0.0 or valid is None or bool(valid.all()):
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    log_p = torch.log_softmax(logits.float(), dim=-1)
    nll = -log_p.gather(1, labels.unsqueeze(1)).squeeze(1)
    uniform = -log_p.masked_fill(~valid, 0.0).sum(-1) / valid.sum(-1).clamp_min(1)
    return ((1.0 - label_smoothing) * nll + label_smoothing * uniform).mean()


class WeightedMean(Metric):
    """The mean of ``value`` weighted by ``weight`` (default 1), with no NaN check and so no read of the device.

    torchmetrics' ``MeanMetric`` is the eager step's accuracy, but with ``nan_strategy="disable"`` (its only setting
    without a NaN check's two host reads) torchmetrics 1.9 replaces the weights by ones, so it cannot weigh rows."""

    full_state_update = False
    higher_is_better = True

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("weight", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, value: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        weight = torch.ones_like(value) if weight is None else weight
        self.total += (value.double() * weight).sum()
        self.weight += weight.double().sum()

    def compute(self) -> torch.Tensor:
        return (self.total / self.weight).float()


class EncoderModule(pl.LightningModule):
    """What every stage's model shares: the encoder (on real tokens only when asked), cross-entropy over the
    labelled positions of whichever head a batch goes through, the training step, the optimizer and its schedule.

    :class:`EncoderClassifier` has one head; :class:`xcal.models.mixture.MixtureClassifier` one per task of a
    mixture, chosen per batch. ``stage`` prefixes every logged key (``intermediate/train_loss``...).
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module,
        *,
        stage: str,
        lr: float,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        warmup_ratio: float = 0.0,
        label_smoothing: float = 0.0,
        unpad_tokens: bool = False,
        compile_settings: CompileSettings | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.stage = stage
        self.lr = lr
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.warmup_ratio = warmup_ratio
        self.label_smoothing = label_smoothing
        # Padding positions skipped inside the encoder (xcal.models.unpadded); the caller checks support.
        self.unpad_tokens = unpad_tokens
        # compile.enabled: training steps through the compiled padded forward over length buckets
        # (xcal.models.compiled); None: the eager forward, as every recorded job ran it.
        self.compiled = None if compile_settings is None else CompiledEncoder(compile_settings, pad_id_of(encoder))
        # The compiled step's divergence watch, kept on the device: [first step whose loss was not finite (-1: none),
        # the step counter]; read at epoch ends and before validations (_raise_if_diverged).
        self._divergence: torch.Tensor | None = None
        # A mean of 0/1 correctness works for every head, including span where the class count (the
        # sequence length) changes from batch to batch.
        # No NaN check: the values are 0/1 hits, and the check's two ``.any()`` read the GPU back every step.
        # The compiled step weighs each row (unlabelled ones 0) rather than cutting rows out: WeightedMean.
        self.train_acc = MeanMetric(nan_strategy="disable") if compile_settings is None else WeightedMean()

    def _head_of(self, batch: dict[str, Any]) -> tuple[nn.Module, str]:
        """The head a batch goes through and its kind (one of :data:`xcal.models.heads.HEADS`)."""
        raise NotImplementedError

    def _batch_logits(self, batch: dict[str, Any]) -> torch.Tensor:
        head, kind = self._head_of(batch)
        return self._logits(head, kind, batch["input_ids"], batch["attention_mask"])

    def _score(self, head: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.compiled is not None and self.training:
            hidden = self.compiled(self.encoder, input_ids, attention_mask)
        elif self.unpad_tokens:
            hidden = unpadded_hidden_states(self.encoder, input_ids, attention_mask)
        else:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return head(hidden, attention_mask)

    def _logits(self, head: nn.Module, kind: str, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                ) -> torch.Tensor:
        """``head``'s logits; multiple choice: ``[B, C, L]`` in, one score per option ``[B, C]`` out."""
        multiple_choice = kind == "multiple_choice"
        if multiple_choice != (input_ids.dim() == 3):
            raise ValueError(f"a {kind!r} head takes input_ids of shape "
                             f"{'[B, C, L]' if multiple_choice else '[B, L]'}, got {tuple(input_ids.shape)}")
        if not multiple_choice:
            return self._score(head, input_ids, attention_mask)
        batch, choices, length = input_ids.shape
        scores = self._score(head, input_ids.reshape(batch * choices, length),
                             attention_mask.reshape(batch * choices, length))
        return scores.view(batch, choices)

    @staticmethod
    def _valid_classes(batch: dict[str, torch.Tensor], kind: str) -> torch.Tensor | None:
        """For span heads, which positions of each flat row are real tokens (``[2B, L]``)."""
        if kind != "span":
            return None
        mask = batch["attention_mask"].bool()
        rows = mask.unsqueeze(1).expand(-1, 2, -1).reshape(-1, mask.shape[-1])
        return rows[batch["labels"].reshape(-1) != IGNORE_INDEX]

    def _flat_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                  torch.Tensor]:
        """``(loss, head logits, flat logits, flat labels)``."""
        logits = self._batch_logits(batch)
        flat, labels = flat_logits_and_labels(logits, batch["labels"])
        if labels.numel() == 0:  # nothing labelled (e.g. only empty sentences): no signal, no NaN
            return logits.sum() * 0.0, logits, flat, labels
        kind = self._head_of(batch)[1]
        loss = smoothed_cross_entropy(flat, labels, self.label_smoothing, self._valid_classes(batch, kind))
        return loss, logits, flat, labels

    def _correct(self, flat: torch.Tensor, labels: torch.Tensor, kind: str) -> torch.Tensor:
        """0/1 per labelled position; per example for span (start and end must both be right)."""
        hits = flat.argmax(-1) == labels
        if kind == "span":
            hits = hits.view(-1, 2).all(-1)
        return hits.float()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.compiled is not None and self._head_of(batch)[1] != "span":
            return self._compiled_training_step(batch, batch_idx)
        loss, _, flat, labels = self._flat_loss(batch)
        if not torch.isfinite(loss):  # a diverged run must fail loudly, not train on and report numbers
            raise FloatingPointError(f"{self.stage} loss is {loss.item()} at step {self.global_step} "
                                     f"(batch {batch_idx}); lower {self.stage}.lr or check the data")
        n = labels.numel()
        if n:
            self.train_acc.update(self._correct(flat.detach(), labels, self._head_of(batch)[1]))
            self.log(f"{self.stage}/train_loss", loss, prog_bar=True, batch_size=n)
            self.log(f"{self.stage}/train_acc", self.train_acc, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def _compiled_training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """A training step of the compiled forward that never waits on the device, so the host queues the next step
        while this one runs: the loss over every row with unlabelled rows (-100) left out by the loss itself, not
        cut out by a boolean index (a ``nonzero``: a host sync and a data-dependent shape); accuracy weighted the same
        way; and the loss's finiteness noted on the device and read at the epoch's end and before each validation (a
        diverged run still fails loudly, naming its step, before any number of it is reported). Span heads (their
        label smoothing spreads over each row's own positions) keep :meth:`_flat_loss`."""
        loss, flat, flat_labels, labelled, kind = self._compiled_loss(batch)
        self._note_finite(loss.detach())
        n = flat_labels.numel()
        self.train_acc.update(self._correct(flat.detach(), flat_labels, kind), weight=labelled.float())
        self.log(f"{self.stage}/train_loss", loss, prog_bar=True, batch_size=n)
        self.log(f"{self.stage}/train_acc", self.train_acc, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def _compiled_loss(self, batch: dict[str, torch.Tensor]
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, str]:
        """``(loss, flat logits, flat labels, labelled rows, head kind)`` over every row, without a host sync."""
        head, kind = self._head_of(batch)
        logits = self._logits(head, kind, batch["input_ids"], batch["attention_mask"])
        labels = batch["labels"]
        if logits.shape[:-1] != labels.shape:
            raise ValueError(f"logits {tuple(logits.shape)} do not match labels {tuple(labels.shape)}")
        flat, flat_labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
        labelled = flat_labels != IGNORE_INDEX
        loss = F.cross_entropy(flat, flat_labels, ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing,
                               reduction="sum") / labelled.sum().clamp_min(1)  # 0, not NaN, when nothing is labelled
        return loss, flat, flat_labels, labelled, kind

    def _note_finite(self, loss: torch.Tensor) -> None:
        if self._divergence is None or self._divergence.device != loss.device:
            self._divergence = torch.tensor([-1, self.global_step], device=loss.device)
        first, step = self._divergence[0], self._divergence[1]
        bad = ~torch.isfinite(loss)
        self._divergence = torch.stack([torch.where(bad & (first < 0), step, first), step + 1])

    def _raise_if_diverged(self) -> None:
        """Fail as the eager step does (a FloatingPointError naming the stage and step) if a compiled step's loss was
        not finite; one read of the device per epoch and validation."""
        if self._divergence is None:
            return
        first = int(self._divergence[0])
        if first >= 0:
            raise FloatingPointError(f"{self.stage} loss is not finite at step {first}; lower {self.stage}.lr or "
                                     "check the data")

    def on_train_epoch_end(self) -> None:
        self._raise_if_diverged()

    def on_validation_start(self) -> None:
        self._raise_if_diverged()  # a diverged model's dev numbers are not reported (nor chosen by early stopping)

    def on_train_end(self) -> None:
        self._raise_if_diverged()  # a fit stopped inside an epoch (max_steps)

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        """Lightning's mixed-precision plugin refuses to clip for a fused optimizer (``fused: true``, our
        default), because with fp16 loss scaling such an optimizer unscales inside its step. bf16-mixed
        scales nothing, so the gradients are true gradients and the plain clipping is exact; only a run
        with a loss scaler (16-mixed), and every other precision plugin, keeps Lightning's own path."""
        plugin = self.trainer.precision_plugin
        if not isinstance(plugin, MixedPrecision) or plugin.scaler is not None:
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
            return
        algorithm = GradClipAlgorithmType(gradient_clip_algorithm or GradClipAlgorithmType.NORM)
        Precision.clip_gradients(plugin, optimizer, gradient_clip_val or 0.0, algorithm)  # skips only that check

    def optimizer_groups(self) -> list[dict[str, Any]]:
        """The trained parameters in two groups: weight decay on matrices, none on biases and layer norms."""
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if param.requires_grad:
                (no_decay if name.endswith(NO_DECAY) else decay).append(param)
        return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.optimizer_groups(), lr=self.lr)
        if self.scheduler_factory is None:
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, num_warmup_steps=int(self.warmup_ratio * total),
                                           num_training_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class EncoderClassifier(EncoderModule):
    """One task's model: the encoder and one head.

    ``head_kind`` (one of :data:`xcal.models.heads.HEADS`) decides how inputs are shaped (multiple
    choice takes ``[B, C, L]``) and what counts as a correct prediction (span: start and end both).
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module,
        num_labels: int,
        *,
        stage: str,
        lr: float,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        warmup_ratio: float = 0.0,
        label_smoothing: float = 0.0,
        head_kind: str = "sequence",
        unpad_tokens: bool = False,
        n_bins: int = DEFAULT_N_BINS,
        compile_settings: CompileSettings | None = None,
    ) -> None:
        if head_kind not in HEADS:
            raise ValueError(f"head_kind={head_kind!r} is not known; known: {', '.join(HEADS)}")
        super().__init__(encoder, head, stage=stage, lr=lr, optimizer=optimizer, scheduler=scheduler,
                         warmup_ratio=warmup_ratio, label_smoothing=label_smoothing, unpad_tokens=unpad_tokens,
                         compile_settings=compile_settings)
        self.num_labels = num_labels
        self.head_kind = head_kind
        self.val_acc = MeanMetric(nan_strategy="disable")
        # English dev calibration each validation, through the same Metric classes the evaluation is
        # tested against; span heads score a varying set of positions, not a label distribution.
        self.val_calibration = head_kind != "span"
        if self.val_calibration:
            self.val_metrics = nn.ModuleDict(dev_metrics(n_bins))
            self.val_confidence = MeanMetric(nan_strategy="disable")
        # from_pretrained returns the encoder in eval mode and Lightning (>= 2.2) keeps each module's
        # mode as it finds it, so without this, dropout would be silently off during training.
        self.train()

    def _head_of(self, batch: dict[str, Any]) -> tuple[nn.Module, str]:
        return self.head, self.head_kind

    def _batch_logits(self, batch: dict[str, Any]) -> torch.Tensor:
        return self(batch["input_ids"], batch["attention_mask"])

    def _correct(self, flat: torch.Tensor, labels: torch.Tensor, kind: str | None = None) -> torch.Tensor:
        return super()._correct(flat, labels, self.head_kind if kind is None else kind)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Head logits; multiple choice: ``[B, C, L]`` in, one score per option ``[B, C]`` out."""
        return self._logits(self.head, self.head_kind, input_ids, attention_mask)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, _, flat, labels = self._flat_loss(batch)
        n = labels.numel()
        if n:
            self.val_acc.update(self._correct(flat, labels, self.head_kind))
            self.log(f"{self.stage}/val_loss", loss, prog_bar=True, batch_size=n)
            self.log(f"{self.stage}/val_acc", self.val_acc, prog_bar=True, batch_size=n)
            if self.val_calibration:
                self._log_calibration(flat.float(), labels, n)

    def _log_calibration(self, logits: torch.Tensor, labels: torch.Tensor, n: int) -> None:
        """English dev ECE, Brier, NLL and mean top-label confidence, accumulated over the whole validation
        (epoch-level values, so they equal the functional metrics on all dev predictions)."""
        self.val_confidence.update(torch.softmax(logits, dim=-1).amax(-1))
        for name, metric in self.val_metrics.items():
            metric.update(logits, labels)
            self.log(f"{self.stage}/val_{name}", metric, on_step=False, on_epoch=True, batch_size=n)
        self.log(f"{self.stage}/val_confidence", self.val_confidence, on_step=False, on_epoch=True, batch_size=n)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> dict:
        """``logits [N, K]`` (float32) and ``labels [N]`` over labelled positions, and ``counts [B]``:
        how many of those rows each example owns (1 per sentence or question, the word count for
        tagging, 2 for span), so evaluation can calibrate per token and still rebuild sentences."""
        labels = batch["labels"]
        flat, flat_labels = flat_logits_and_labels(self(batch["input_ids"], batch["attention_mask"]), labels)
        counts = (labels != IGNORE_INDEX).reshape(labels.shape[0], -1).sum(1).to(torch.int64)
        return {"logits": flat.float(), "labels": flat_labels, "counts": counts}
