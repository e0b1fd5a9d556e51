"""The DataModule on the real embedded data: nested sizes, aligned eval sets, padding, caching."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch

from conftest import make_datamodule
from xcal.data.datamodule import EvalSet, TaskDataModule, token_budget_batches
from xcal.data.resumable import EpochSeededSampler
from xcal.data.tokenize import CACHE_VERSION
from xcal.integrity import manifest_path, problem
from xcal.models.encoder import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer(e5_model_dir: Path):
    return load_tokenizer(str(e5_model_dir))


@pytest.fixture(scope="module")
def token_cache(xcal_cache: Path) -> Path:
    """The shared tokenization cache, as the pipeline uses it (tokenizing real splits takes seconds)."""
    return xcal_cache / "tokenized"


def make_dm(embedded_data_dir: Path, tokenizer, cache: Path, task: str = "multiemo", **kwargs) -> TaskDataModule:
    return make_datamodule(task, embedded_data_dir, tokenizer, cache_dir=cache, **kwargs)


def test_train_sizes_are_nested(embedded_data_dir, tokenizer, token_cache) -> None:
    small = make_dm(embedded_data_dir, tokenizer, token_cache, task="vitaminc", train_size=100, data_seed=2)
    large = make_dm(embedded_data_dir, tokenizer, token_cache, task="vitaminc", train_size=400, data_seed=2)
    small.setup("fit")
    large.setup("fit")
    assert len(small.train_set) == 100 and len(large.train_set) == 400
    assert small.train_set["input_ids"] == large.train_set["input_ids"][:100]
    other = make_dm(embedded_data_dir, tokenizer, token_cache, task="vitaminc", train_size=100, data_seed=3)
    other.setup("fit")
    assert other.train_set["input_ids"] != small.train_set["input_ids"]


def test_eval_sets_hold_the_same_aligned_ids_in_every_language(embedded_data_dir, tokenizer, token_cache) -> None:
    dm = make_dm(embedded_data_dir, tokenizer, token_cache, eval_size=40, eval_languages=("en", "de", "zh", "pt"),
                 eval_splits=("dev", "test"))
    dm.setup("predict")
    assert dm.eval_keys == [EvalSet(lang, split) for split in ("dev", "test") for lang in ("en", "de", "zh", "pt")]
    for split in ("dev", "test"):
        english = dm.eval_sets[EvalSet("en", split)]
        assert len(english) == 40
        for lang in ("de", "zh", "pt"):
            other = dm.eval_sets[EvalSet(lang, split)]
            assert set(other["id"]) <= set(english["id"])
            assert len(other) >= 36  # pt misses ~2% of rows, zh ~1% (empty translations)
            by_id = dict(zip(english["id"], english["labels"], strict=True))
            assert all(by_id[i] == y for i, y in zip(other["id"], other["labels"], strict=True))
    assert not set(dm.eval_sets[EvalSet("en", "dev")]["id"]) & set(dm.eval_sets[EvalSet("en", "test")]["id"])


def test_dynamic_padding_and_pair_encoding(embedded_data_dir, tokenizer, token_cache) -> None:
    dm = make_dm(embedded_data_dir, tokenizer, token_cache, task="vitaminc", train_size=64, batch_size=8)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    lengths = batch["attention_mask"].sum(1)
    assert batch["input_ids"].shape[1] == int(lengths.max()) <= 128
    first = batch["input_ids"][0, : int(lengths[0])].tolist()
    assert first[0] == tokenizer.bos_token_id and first[-1] == tokenizer.eos_token_id
    # a sentence pair: <s> evidence </s></s> claim </s>
    assert first.count(tokenizer.eos_token_id) == 3
    assert set(batch["labels"].tolist()) <= {0, 1, 2}


def test_tokenization_is_cached_on_disk(embedded_data_dir, tokenizer, tmp_path) -> None:
    dm = make_dm(embedded_data_dir, tokenizer, tmp_path / "tok", task="epistemic_reasoning", train_size=50)
    dm.setup("fit")
    files = sorted((tmp_path / "tok").rglob("*.arrow"))
    assert [f.name for f in files] == [f"dev-L128-v{CACHE_VERSION}.arrow", f"train-L128-v{CACHE_VERSION}.arrow"]
    stamps = [f.stat().st_mtime_ns for f in files]
    again = make_dm(embedded_data_dir, tokenizer, tmp_path / "tok", task="epistemic_reasoning", train_size=50)
    again.setup("fit")
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert again.train_set["input_ids"] == dm.train_set["input_ids"]


def test_tokenizer_fingerprint_ignores_truncation_state(tokenizer) -> None:
    from xcal.data.tokenize import tokenizer_fingerprint

    before = tokenizer_fingerprint(tokenizer)
    tokenizer(["a b c"], truncation=True, max_length=17)
    assert tokenizer_fingerprint(tokenizer) == before


def test_token_budget_batches_cover_every_example_within_budget() -> None:
    lengths = [5, 5, 6, 8, 10, 20, 40, 40, 100, 300]
    batches = token_budget_batches(lengths, max_tokens=64, max_batch=4)
    assert [i for b in batches for i in b] == list(range(len(lengths)))
    assert batches == [[0, 1, 2, 3], [4, 5], [6], [7], [8], [9]]
    for batch in batches:
        assert len(batch) <= 4
        assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= 64


def test_a_truncated_or_altered_tokenization_cache_file_is_rebuilt(embedded_data_dir, tokenizer, tmp_path,
                                                                     caplog) -> None:
    """Each cached Arrow split has a SHA-256 manifest; a damaged file is detected, rebuilt, never read."""
    dm = make_dm(embedded_data_dir, tokenizer, tmp_path / "tok", task="epistemic_reasoning", train_size=50)
    dm.setup("fit")
    train = next((tmp_path / "tok").rglob(f"train-L128-v{CACHE_VERSION}.arrow"))
    assert manifest_path(train).is_file() and problem(train) is None
    expected = dm.train_set["input_ids"]
    del dm  # its Arrow file is memory-mapped: damage a new copy (a later run's view), not the mapped pages
    for damage in ("truncate", "alter"):
        data = train.read_bytes()
        damaged = train.with_name("damaged")
        damaged.write_bytes(data[: len(data) // 2] if damage == "truncate" else data[:-64] + b"\0" * 64)
        os.replace(damaged, train)
        assert problem(train) is not None
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="xcal.data.tokenize"):
            again = make_dm(embedded_data_dir, tokenizer, tmp_path / "tok", task="epistemic_reasoning", train_size=50)
            again.setup("fit")
        assert "tokenization cache file rebuilt" in caplog.text, damage
        assert problem(train) is None and again.train_set["input_ids"] == expected
        del again


def test_the_training_order_depends_only_on_seed_and_epoch_and_resumes_exactly() -> None:
    lengths = [(i * 37) % 61 + 3 for i in range(200)]
    a, b = EpochSeededSampler(200, 7, 8, lengths), EpochSeededSampler(200, 7, 8, lengths)
    torch.manual_seed(123)  # the global RNG plays no part
    first = list(a)
    assert sorted(first) == list(range(200)) and first == list(b)
    a.set_epoch(1)
    second = list(a)
    assert second != first and sorted(second) == list(range(200))
    assert list(EpochSeededSampler(200, 8, 8, lengths)) != first  # another seed, another order
    # batches of similar length: padding per batch far below a random order's
    pad = lambda order: sum(max(lengths[i] for i in order[k:k + 8]) * 8 for k in range(0, 200, 8))  # noqa: E731
    assert pad(first) < 0.8 * pad(list(torch.randperm(200, generator=torch.Generator().manual_seed(0))))
    b.resume_at(1, 3)  # killed after 3 batches of epoch 1
    assert list(b) == second[24:]
    assert list(b) == second  # the skip applies once
    c = EpochSeededSampler(200, 7, 8, lengths)
    c.resume_at(1, 3)
    c.set_epoch(2)  # a different epoch iterated first: no skip there
    assert len(list(c)) == 200


def test_pinned_memory_reaches_every_loader_and_is_on_only_for_a_cuda_trainer(embedded_data_dir, tokenizer,
                                                                               token_cache) -> None:
    from xcal.pipeline.build import pin_memory

    for pinned in (False, True):
        dm = make_dm(embedded_data_dir, tokenizer, token_cache, train_size=16, val_size=8, eval_size=4,
                     eval_languages=("en", "de"), eval_splits=("dev",), pin_memory=pinned)
        dm.setup("fit")
        dm.setup("predict")
        loaders = [dm.train_dataloader(), dm.val_dataloader(), *dm.predict_dataloader()]
        assert len(loaders) == 4 and all(loader.pin_memory is pinned for loader in loaders)
    assert pin_memory("cpu") is False
    assert pin_memory("gpu") is torch.cuda.is_available()
