"""The LightningModule: encoder + task head, trained with cross-entropy (optionally smoothed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "ln.weight")


class EncoderClassifier(pl.LightningModule):
    """One stage's model. ``stage`` prefixes every logged key (``intermediate/train_loss``...)."""

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
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.num_labels = num_labels
        self.stage = stage
        self.lr = lr
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.warmup_ratio = warmup_ratio
        self.label_smoothing = label_smoothing
        self.train_acc = MulticlassAccuracy(num_classes=num_labels, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=num_labels, average="micro")
        # from_pretrained returns the encoder in eval mode and Lightning (>= 2.2) keeps each module's
        # mode as it finds it, so without this, dropout would be silently off during training.
        self.train()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(hidden, attention_mask)

    def _loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch["input_ids"], batch["attention_mask"])
        loss = F.cross_entropy(logits, batch["labels"], label_smoothing=self.label_smoothing)
        return loss, logits

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, logits = self._loss(batch)
        self.train_acc(logits.detach(), batch["labels"])
        n = batch["labels"].shape[0]
        self.log(f"{self.stage}/train_loss", loss, prog_bar=True, batch_size=n)
        self.log(f"{self.stage}/train_acc", self.train_acc, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, logits = self._loss(batch)
        self.val_acc(logits, batch["labels"])
        n = batch["labels"].shape[0]
        self.log(f"{self.stage}/val_loss", loss, prog_bar=True, batch_size=n)
        self.log(f"{self.stage}/val_acc", self.val_acc, prog_bar=True, batch_size=n)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> dict:
        return {"logits": self(batch["input_ids"], batch["attention_mask"]).float(), "labels": batch["labels"]}

    def configure_optimizers(self) -> Any:
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if param.requires_grad:
                (no_decay if name.endswith(NO_DECAY) else decay).append(param)
        groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
        optimizer = self.optimizer_factory(groups, lr=self.lr)
        if self.scheduler_factory is None:
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, num_warmup_steps=int(self.warmup_ratio * total),
                                           num_training_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
