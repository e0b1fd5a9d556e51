"""Evaluation batches cut across languages: every example once, fewer and fuller batches on the real
embedded data, and predictions put back per set, in each set's order, for every head type."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from test_heads import make_module, tokenizer  # noqa: F401  (the in-memory tokenizer fixture)

from xcal.data.datamodule import EvalSet, TaskDataModule, column, token_budget_batches
from xcal.data.pooled import PooledEvalSets
from xcal.data.tasks import MULTIEMO_LANGUAGES, TASKS
from xcal.models.encoder import load_tokenizer
from xcal.pipeline.evaluate import predict_logits


def test_locate_maps_pooled_indices_back_to_set_and_row() -> None:
    sets = [datasets.Dataset.from_dict({"input_ids": [[5]] * n, "attention_mask": [[1]] * n, "labels": list(range(n))})
            for n in (2, 0, 3)]
    pool = PooledEvalSets(sets)
    assert len(pool) == 5
    which, rows = pool.locate([0, 1, 2, 4])
    assert which.tolist() == [0, 0, 2, 2] and rows.tolist() == [0, 1, 0, 2]
    assert [int(item["labels"]) for item in pool.__getitems__([4, 0, 2])] == [2, 0, 0]
    assert int(pool[3]["labels"]) == 1
    with pytest.raises(IndexError, match=r"\[0, 5\)"):
        pool.locate([5])


def test_pooled_batches_cover_every_example_once_in_fewer_fuller_batches(e5_model_dir: Path,
                                                                         embedded_data_dir: Path,
                                                                         xcal_cache: Path) -> None:
    """The real MultiEmo dev sets in all 11 languages at the task's budget: the pooled loader serves each
    example exactly once, within the budget, and computes less padding than cutting per language."""
    spec = TASKS["multiemo"]
    dm = TaskDataModule(spec, embedded_data_dir, load_tokenizer(str(e5_model_dir)),
                        cache_dir=xcal_cache / "tokenized", eval_size=60, val_size=0,
                        eval_languages=MULTIEMO_LANGUAGES, eval_splits=("dev",), eval_tokens_per_batch=2048)
    dm.setup("predict")
    loader = dm.predict_dataloader()
    batches = loader.batch_sampler.batches
    total = sum(len(ds) for ds in dm.eval_sets.values())
    assert sorted(i for b in batches for i in b) == list(range(total))
    lengths = np.concatenate([column(ds, "length") for ds in dm.eval_sets.values()])
    assert all(len(b) <= dm.eval_batch_size and (len(b) == 1 or len(b) * lengths[b].max() <= 2048) for b in batches)
    mixed = sum(len(set(loader.dataset.locate(b)[0].tolist())) > 1 for b in batches)
    per_set = [token_budget_batches(column(ds, "length"), 2048, dm.eval_batch_size) for ds in dm.eval_sets.values()]
    per_set_padded = sum(len(b) * max(column(ds, "length")[i] for i in b)
                         for ds, cut in zip(dm.eval_sets.values(), per_set, strict=True) for b in cut)
    pooled_padded = sum(len(b) * int(lengths[b].max()) for b in batches)
    assert mixed > len(batches) // 2, "most pooled batches should hold more than one language"
    assert len(batches) < sum(map(len, per_set)) and pooled_padded < 0.9 * per_set_padded, (
        len(batches), sum(map(len, per_set)), pooled_padded, per_set_padded)
    served = [row for batch in loader for row in batch["input_ids"].tolist()]
    assert len(served) == total


# -- predictions back per set, for each head ----------------------------------------------------------------

HEAD_TASKS = {"sequence": ("multiemo", 4), "token": ("ner", 5), "multiple_choice": ("social_iqa", 3),
              "span": ("squad", 2)}


def _rows(head: str, n: int, seed: int, classes: int) -> list[dict]:
    """``n`` examples of random length (3-12 tokens; unsorted, so the set order must be restored)."""
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
def test_pooled_predictions_equal_each_set_predicted_alone(head: str, tokenizer) -> None:  # noqa: F811
    task, classes = HEAD_TASKS[head]
    spec = TASKS[task]
    dm = TaskDataModule(spec, Path("unused"), tokenizer, eval_batch_size=4, eval_tokens_per_batch=48)
    sizes = {"en": 7, "de": 11, "ja": 1, "ru": 9}
    for seed, (language, n) in enumerate(sizes.items()):
        dm.eval_sets[EvalSet(language, "dev")] = datasets.Dataset.from_list(_rows(head, n, seed, spec.num_labels))
    module = make_module(head, classes).eval()
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    pooled = predict_logits(trainer, module, dm)
    assert list(pooled) == dm.eval_keys
    mixed = [len(set(dm.predict_dataloader().dataset.locate(b)[0].tolist()))
             for b in dm.predict_dataloader().batch_sampler.batches]
    assert max(mixed) > 1, "the test must exercise batches that mix sets"
    for key, ds in dm.eval_sets.items():
        alone = dm.collator([ds[i] for i in range(len(ds))])  # the whole set as one batch, in its own order
        with torch.no_grad():
            reference = module.predict_step(alone, 0)
        got = pooled[key]
        assert got.counts.tolist() == reference["counts"].tolist()
        assert got.labels.tolist() == reference["labels"].tolist()
        width = reference["logits"].shape[-1]
        torch.testing.assert_close(got.logits.double().softmax(-1)[:, :width],
                                   reference["logits"].double().softmax(-1), atol=1e-5, rtol=1e-4)
        if head == "span":  # positions past this set's longest sentence: widened, probability exactly 0
            assert float(got.logits.double().softmax(-1)[:, width:].abs().sum()) == 0.0
        else:
            assert got.logits.shape == reference["logits"].shape
