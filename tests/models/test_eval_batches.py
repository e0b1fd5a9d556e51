"""Evaluation batches: one token-budget loader per eval set, every example once and in the set's order, little
padding on the real embedded data, and each set's predictions equal to the set predicted in one batch, for every
head type."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from test_heads import make_module, tokenizer  # noqa: F401  (the in-memory tokenizer fixture)

from conftest import make_datamodule
from xcal.data.datamodule import EvalSet, column
from xcal.data.tasks import MULTIEMO_LANGUAGES, TASKS
from xcal.models.encoder import load_tokenizer
from xcal.pipeline.evaluate import predict_logits


def test_each_set_is_served_once_in_order_within_the_budget(e5_model_dir: Path, embedded_data_dir: Path,
                                                             xcal_cache: Path) -> None:
    """The real MultiEmo dev sets in all 11 languages: each set's loader serves its rows once, in order, in
    batches within the budget; length-sorted, short sentences are not padded to the longest."""
    dm = make_datamodule("multiemo", embedded_data_dir, load_tokenizer(str(e5_model_dir)),
                         cache_dir=xcal_cache / "tokenized", eval_size=60, val_size=0,
                         eval_languages=MULTIEMO_LANGUAGES, eval_splits=("dev",), eval_tokens_per_batch=2048)
    dm.setup("predict")
    loaders = dm.predict_dataloader()
    assert len(loaders) == len(dm.eval_keys) == len(MULTIEMO_LANGUAGES)
    for ds, loader in zip(dm.eval_sets.values(), loaders, strict=True):
        batches = loader.batch_sampler.batches
        assert [i for b in batches for i in b] == list(range(len(ds)))  # consecutive rows, the set's order
        lengths = np.asarray(column(ds, "length"))
        assert (np.diff(lengths) >= 0).all()  # sorted by length in setup
        assert all(len(b) <= dm.eval_batch_size and (len(b) == 1 or len(b) * lengths[b].max() <= 2048)
                   for b in batches)
        padded = sum(len(b) * int(lengths[b].max()) for b in batches)
        # 60 sentences in 2 batches of ~40 short and ~20 long ones: 55-67% of padding all to the longest
        assert len(batches) == 2 and padded < 0.7 * len(ds) * lengths.max(), (padded, len(ds), lengths.max())
        served = [ids[: int(mask.sum())] for batch in loader
                  for ids, mask in zip(batch["input_ids"].tolist(), batch["attention_mask"], strict=True)]
        assert served == column(ds, "input_ids")


# -- each set predicted in batches equals the set predicted at once, for each head -----------------------------

HEAD_TASKS = {"sequence": ("multiemo", 4), "token": ("ner", 5), "multiple_choice": ("social_iqa", 3),
              "span": ("squad", 2)}


def _rows(head: str, n: int, seed: int, classes: int) -> list[dict]:
    """``n`` examples of random length (3-12 tokens; unsorted: batches are cut from the set as it is)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        length = int(rng.integers(3, 13))
        ids = [2, *rng.integers(5, 120, length - 2).tolist(), 3]
        if head == "multiple_choice":
            options = [ids[: int(rng.integers(3, length + 1))] for _ in range(classes)]
            rows.append({"input_ids": options, "attention_mask": [[1] * len(o) for o in options],
                         "labels": int(rng.integers(classes)), "length": max(map(len, options))})
            continue
        if head == "token":  # words on some positions, -100 elsewhere (special tokens, later sub-words)
            labels = [int(rng.integers(classes)) if 0 < i < length - 1 and rng.random() < 0.7 else -100
                      for i in range(length)]
        elif head == "span":
            start = int(rng.integers(1, length - 1))
            labels = [start, int(rng.integers(start, length - 1))]
        else:
            labels = int(rng.integers(classes))
        rows.append({"input_ids": ids, "attention_mask": [1] * length, "labels": labels, "length": length})
    return rows


@pytest.mark.parametrize("head", list(HEAD_TASKS))
def test_predictions_equal_each_set_predicted_alone(head: str, tokenizer) -> None:  # noqa: F811
    task, classes = HEAD_TASKS[head]
    spec = TASKS[task]
    dm = make_datamodule(task, Path("unused"), tokenizer, eval_batch_size=4, eval_tokens_per_batch=48)
    sizes = {"en": 7, "de": 11, "ja": 1, "ru": 9}
    for seed, (language, n) in enumerate(sizes.items()):
        dm.eval_sets[EvalSet(language, "dev")] = datasets.Dataset.from_list(_rows(head, n, seed, spec.num_labels))
    module = make_module(head, classes).eval()
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    predicted = predict_logits(trainer, module, dm)
    assert list(predicted) == dm.eval_keys
    cuts = [len(loader.batch_sampler) for loader in dm.predict_dataloader()]
    assert max(cuts) > 1, "the test must exercise sets cut into several batches"
    for key, ds in dm.eval_sets.items():
        alone = dm.collator([ds[i] for i in range(len(ds))])  # the whole set as one batch, in its own order
        with torch.no_grad():
            reference = module.predict_step(alone, 0)
        got = predicted[key]
        assert got.counts.tolist() == reference["counts"].tolist()
        assert got.labels.tolist() == reference["labels"].tolist()
        width = reference["logits"].shape[-1]
        torch.testing.assert_close(got.logits.double().softmax(-1)[:, :width],
                                   reference["logits"].double().softmax(-1), atol=1e-5, rtol=1e-4)
        if head == "span":  # positions past this set's longest sentence: widened, probability exactly 0
            assert float(got.logits.double().softmax(-1)[:, width:].abs().sum()) == 0.0
        else:
            assert got.logits.shape == reference["logits"].shape
