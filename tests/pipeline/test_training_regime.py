"""The trained regime: English dev calibration logged through the torchmetrics classes, early stopping that
keeps the best weights, the learning curve, and ``intermediate.seed`` as part of the stage-1 cache key."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from test_config import make_cfg as _config
from torch.utils.data import DataLoader

from xcal.metrics import brier_score, expected_calibration_error, negative_log_likelihood
from xcal.models.encoder import load_encoder
from xcal.models.heads import SequenceClassificationHead
from xcal.models.module import EncoderClassifier
from xcal.pipeline.history import ValidationHistory
from xcal.pipeline.spec import StageSpec
from xcal.pipeline.stage1 import stage1_identity, stage1_key
from xcal.pipeline.stages import _outcome_metrics, _restore_best, early_stopping, validation_interval
from xcal.pipeline.validate import config_problems


def _module(encoder_dir: Path, n_bins: int = 15, lr: float = 1e-3) -> EncoderClassifier:
    return EncoderClassifier(load_encoder(str(encoder_dir)), SequenceClassificationHead(32, 3), 3, stage="target",
                             lr=lr, optimizer=torch.optim.AdamW, n_bins=n_bins)


def _batches(n_batches: int, seed: int, batch: int = 8) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(4, 100, (batch, 7), generator=g),
             "attention_mask": torch.ones(batch, 7, dtype=torch.long),
             "labels": torch.randint(0, 3, (batch,), generator=g)} for _ in range(n_batches)]


def _trainer(**kwargs) -> pl.Trainer:
    settings = {"accelerator": "cpu", "logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
                "enable_model_summary": False, "num_sanity_val_steps": 0}
    return pl.Trainer(**{**settings, **kwargs})


def test_validation_logs_the_functional_calibration_metrics(tiny_encoder_dir: Path) -> None:
    """The epoch values logged through the Metric classes equal the functional API on all dev predictions."""
    torch.manual_seed(0)
    module = _module(tiny_encoder_dir, n_bins=10)
    batches = _batches(4, seed=1)
    [logged] = _trainer().validate(module, dataloaders=DataLoader(batches, batch_size=None), verbose=False)
    module.eval()
    with torch.no_grad():
        logits = torch.cat([module(b["input_ids"], b["attention_mask"]) for b in batches]).double()
    labels = torch.cat([b["labels"] for b in batches])
    probs = torch.softmax(logits, -1)
    expected = {
        "ece": expected_calibration_error(probs, labels, n_bins=10),
        "brier": brier_score(probs, labels),
        "nll": negative_log_likelihood(probs, labels),
        "confidence": probs.amax(-1).mean(),
        "acc": (probs.argmax(-1) == labels).double().mean(),
    }
    for name, value in expected.items():
        assert logged[f"target/val_{name}"] == pytest.approx(float(value), abs=1e-5), name
    assert logged["target/val_loss"] == pytest.approx(float(expected["nll"]), abs=1e-5)  # equal-size batches


def test_early_stopping_keeps_the_best_validations_weights(tiny_encoder_dir: Path, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """Random labels: the model memorises train and English dev loss rises, so the run stops after
    ``patience`` validations without improvement and the weights evaluated are the best validation's."""
    torch.manual_seed(0)
    module = _module(tiny_encoder_dir, lr=3e-3)
    history = ValidationHistory("target")
    stoppers, best = early_stopping("target", 2, True, tmp_path / "ckpt")
    trainer = _trainer(max_epochs=30, callbacks=[history, *stoppers], enable_checkpointing=True)
    train, dev = _batches(4, seed=2), _batches(2, seed=3)
    with caplog.at_level(logging.INFO, logger="xcal.pipeline.history"):
        trainer.fit(module, train_dataloaders=DataLoader(train, batch_size=None),
                    val_dataloaders=DataLoader(dev, batch_size=None))
    losses = [row["val_loss"] for row in history.rows]
    kept = history.best()
    # one log line a validation, so a job's log shows the stage's progress without a terminal
    lines = [r.getMessage() for r in caplog.records if r.name == "xcal.pipeline.history"]
    assert len(lines) == len(losses)
    assert lines[0].startswith(f"target step 4, epoch 0: English dev loss {losses[0]:.4f}, acc ")
    assert lines[0].endswith("(best so far)")
    assert lines[-1].endswith(f"(best loss {kept['val_loss']:.4f} at step {kept['step']})")
    assert len(history.rows) < 30 and trainer.should_stop
    assert kept["val_loss"] == min(losses)
    assert len(losses) == losses.index(min(losses)) + 1 + 2  # stopped after exactly `patience` worse checks
    assert [row["step"] for row in history.rows] == [4 * (i + 1) for i in range(len(losses))]
    assert {"val_acc", "val_ece", "val_brier", "val_nll", "val_confidence"} <= set(kept)

    _restore_best(module, best)
    [again] = _trainer().validate(module, dataloaders=DataLoader(dev, batch_size=None), verbose=False)
    assert again["target/val_loss"] == pytest.approx(kept["val_loss"], abs=1e-5)

    metrics, stopping = _outcome_metrics(trainer, "target", history, best)
    assert metrics["val_loss"] == kept["val_loss"] and "train_loss" in metrics
    assert stopping == {"early_stopping": True, "epochs_trained": float(len(losses)), "kept_step": kept["step"],
                        "kept_epoch": kept["epoch"], "stopped_early": True}


def test_no_patience_means_no_early_stopping(tmp_path: Path) -> None:
    assert early_stopping("target", None, True, tmp_path) == ([], None)
    assert early_stopping("target", 2, False, tmp_path) == ([], None)


def test_validation_interval_applies_only_to_longer_epochs() -> None:
    spec = replace(StageSpec.from_config(_config(), "target"), val_every_n_steps=125, batch_size=16)
    assert validation_interval(spec, 250) == 125  # 250 steps an epoch: validate twice per epoch
    assert validation_interval(spec, 125) is None  # exactly 125 steps: at the epoch's end
    assert validation_interval(spec, 50) is None
    assert validation_interval(replace(spec, val_every_n_steps=None), 250) is None
    # regression: a step cap inside the first epoch (make run's stage 1: 50 of 63 steps) validated never, and
    # early stopping failed for want of a dev loss
    capped = replace(spec, val_every_n_steps=250, max_steps=50)
    assert validation_interval(capped, 63) == 50
    assert validation_interval(replace(capped, val_every_n_steps=20), 63) == 20
    assert validation_interval(replace(capped, max_steps=2000), 250) is None  # epochs of 250


def test_a_mixture_capped_at_its_example_count_validates_by_its_cap() -> None:
    """regression: a size-4,000 mixture of 3,864 + 136 examples at batch 16 has 242 + 9 = 251 batches an epoch,
    not 4000 / 16 = 250; capped at 250 steps it ended before its epoch's validation and early stopping failed for
    want of a dev loss. The interval is counted from the loader the stage trains on."""
    from xcal.data.resumable import TaskBatchSampler

    batches = len(TaskBatchSampler([3864, 136], seed=0, batch_size=16))
    assert batches == 251
    spec = replace(StageSpec.from_config(_config(), "target"), val_every_n_steps=None, batch_size=16, max_steps=250)
    assert validation_interval(spec, batches) == 250


def test_trainer_max_steps_caps_a_stage_that_sets_none() -> None:
    """regression: ``trainer.max_steps=2`` stopped the target stage before its first validation and early
    stopping failed for want of a dev loss; the stage now validates by its cap. ``<stage>.max_steps`` wins."""
    spec = StageSpec.from_config(_config("trainer.max_steps=2"), "target")
    assert spec.max_steps == 2 and validation_interval(spec, 800) == 2
    assert StageSpec.from_config(_config(), "target").max_steps is None  # trainer.max_steps=-1: no cap
    own = StageSpec.from_config(_config("trainer.max_steps=2", "intermediate=vitaminc"), "intermediate")
    assert own.max_steps == 2000  # conf/intermediate/vitaminc.yaml's own cap


def test_history_survives_a_checkpoint_round_trip() -> None:
    history = ValidationHistory("target")
    history.rows = [{"step": 5, "epoch": 0, "val_loss": 1.2}, {"step": 10, "epoch": 0, "val_loss": math.nan},
                    {"step": 15, "epoch": 1, "val_loss": 1.1}]
    restored = ValidationHistory("target")
    restored.load_state_dict(history.state_dict())
    assert restored.rows == history.rows
    assert restored.best()["step"] == 15  # NaN rows never win


def test_intermediate_seed_decides_the_stage1_key() -> None:
    default = _config("seed=3")
    assert default.intermediate.seed == 3 and stage1_identity(default)["seed"] == 3
    held = [stage1_key(_config(f"seed={s}", "intermediate.seed=0")) for s in (0, 1, 2)]
    assert len(set(held)) == 1  # one stage-1 encoder serves every target seed
    assert held[0] == stage1_key(_config("seed=0"))
    assert stage1_key(_config("seed=0", "intermediate.seed=1")) != held[0]
    assert "seed" not in stage1_identity(default)["intermediate"]


def test_dev_size_counts_for_the_stage1_key_only_under_early_stopping() -> None:
    stopped = [stage1_key(_config("intermediate.val_size=" + v)) for v in ("100", "200")]
    plain = [stage1_key(_config("intermediate.patience=null", "intermediate.val_size=" + v)) for v in ("100", "200")]
    assert stopped[0] != stopped[1] and plain[0] == plain[1]


def test_bad_regime_settings_are_named() -> None:
    problems = config_problems(_config("target.patience=0", "intermediate.val_every_n_steps=-5",
                                       "intermediate.seed=-1"))
    assert any(p.startswith("target.patience=0 must be an integer >= 1 or null") for p in problems)
    assert any(p.startswith("intermediate.val_every_n_steps=-5") for p in problems)
    assert any(p.startswith("intermediate.seed=-1 must be an integer >= 0") for p in problems)
    assert config_problems(_config()) == []


def test_embedded_study_grid_trains_until_dev_stops_improving() -> None:
    cfg = _config("experiment=embedded_study")
    assert cfg.intermediate.seed == 0 and cfg.intermediate.patience == 2 and cfg.target.patience == 2
    assert cfg.target.eval_size == 1000 and list(cfg.target.eval_splits) == ["dev", "test"]
    assert "fast_dropout" not in cfg.model
