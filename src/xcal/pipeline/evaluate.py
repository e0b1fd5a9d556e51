"""Stage 3: zero-shot evaluation on every language and split, raw and temperature-scaled."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from xcal.calibration import fit_temperature
from xcal.data.datamodule import EvalSet, TaskDataModule
from xcal.metrics import calibration_report, plot_reliability_diagram


def predict_logits(trainer: pl.Trainer, model: pl.LightningModule, dm: TaskDataModule
                   ) -> dict[EvalSet, tuple[torch.Tensor, torch.Tensor]]:
    """Logits and labels for every evaluation set, in the datamodule's order."""
    dm.setup("predict")
    loaders = dm.predict_dataloader()
    with warnings.catch_warnings():
        # Lightning cannot inject drop_last=False into a custom batch sampler; ours drops nothing.
        warnings.filterwarnings("ignore", message=".*custom batch sampler.*")
        outputs = trainer.predict(model, dataloaders=loaders)
    if len(loaders) == 1:
        outputs = [outputs]
    result = {}
    for key, batches in zip(dm.eval_keys, outputs, strict=True):
        logits = torch.cat([b["logits"] for b in batches])
        labels = torch.cat([b["labels"] for b in batches])
        result[key] = (logits, labels)
    return result


def zero_shot_metrics(
    predictions: dict[EvalSet, tuple[torch.Tensor, torch.Tensor]],
    *,
    n_bins: int,
    bootstrap: int,
    seed: int,
    temperature_scaling: bool,
    fit_split: str = "dev",
    plot_dir: Path | None = None,
) -> tuple[dict[str, dict[str, dict[str, Any]]], float | None]:
    """Per language and split: every calibration metric raw, and under the temperature fit on
    English ``fit_split`` logits (the zero-shot setting: no target-language labels are used)."""
    temperature = None
    if temperature_scaling:
        fit_key = EvalSet("en", fit_split)
        if fit_key not in predictions:
            raise ValueError(f"temperature scaling needs English {fit_split} predictions; evaluate split "
                             f"{fit_split!r} in English or set calibration.temperature_scaling=false")
        temperature = fit_temperature(*predictions[fit_key])
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for key, (logits, labels) in predictions.items():
        probs = torch.softmax(logits.double(), dim=-1)
        entry = calibration_report(probs, labels, n_bins=n_bins, bootstrap=bootstrap, seed=seed)
        if temperature is not None:
            scaled = torch.softmax(logits.double() / temperature, dim=-1)
            entry["ts"] = calibration_report(scaled, labels, n_bins=n_bins, bootstrap=bootstrap, seed=seed)
        if plot_dir is not None:
            name = f"reliability_{key.language}_{key.split}.png"
            plot_reliability_diagram(probs, labels, plot_dir / name, n_bins=n_bins,
                                     title=f"{key.language} {key.split} (raw)")
            entry["reliability_diagram"] = name
        table.setdefault(key.language, {})[key.split] = entry
    return table, temperature
