"""Token, multiple-choice and span heads, the generalised module, collators and task scores, on a tiny
random BERT built from a config (no download)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from sklearn.metrics import ndcg_score
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from torch.utils.data import DataLoader
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from xcal.data.collate import MultipleChoiceCollator, build_collator
from xcal.data.tasks import TASKS
from xcal.metrics.task_scores import entity_f1, expected_relevance, ndcg_by_group, split_counts, tag_sequences
from xcal.models.heads import (
    MultipleChoiceHead,
    SequenceClassificationHead,
    SpanHead,
    TokenClassificationHead,
    build_head,
)
from xcal.models.module import EncoderClassifier, flat_logits_and_labels
from xcal.pipeline.evaluate import Predictions, task_scores

HIDDEN = 32
PAD = 1  # the test vocabulary puts [PAD] at 1, so padding ids and mask zeros cannot be confused


def tiny_bert(seed: int = 0) -> BertModel:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=120, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, pad_token_id=PAD)
    return BertModel(config, add_pooling_layer=False)


def make_module(kind: str, num_labels: int, *, dropout: float = 0.0, pooling: str = "mean", lr: float = 1e-3,
                label_smoothing: float = 0.0) -> EncoderClassifier:
    head = build_head(kind, HIDDEN, num_labels, dropout, pooling)
    return EncoderClassifier(tiny_bert(), head, num_labels, stage="t", lr=lr, optimizer=torch.optim.AdamW,
                             label_smoothing=label_smoothing, head_kind=kind)


def ids_and_mask(batch: int, length: int, lengths: list[int], seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 120, (batch, length), generator=g)
    mask = (torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]).long()
    return ids.masked_fill(mask == 0, PAD), mask


def token_batch() -> dict[str, torch.Tensor]:
    ids, mask = ids_and_mask(4, 7, [7, 5, 6, 3])
    labels = torch.full((4, 7), -100)
    # first sub-words only; position 0 ([CLS]) and the last real position ([SEP]) stay unlabelled
    labels[0, [1, 2, 4, 5]] = torch.tensor([1, 0, 2, 0])
    labels[1, [1, 3]] = torch.tensor([3, 3])
    labels[2, [1, 2, 3, 4]] = torch.tensor([0, 1, 1, 2])
    labels[3, [1]] = torch.tensor([4])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def mc_batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(5, 120, (4, 3, 6), generator=g)
    mask = torch.ones(4, 3, 6, dtype=torch.long)
    mask[:, 1, 4:] = 0
    return {"input_ids": ids.masked_fill(mask == 0, PAD), "attention_mask": mask, "labels": torch.tensor([0, 2, 1, 2])}


def span_batch() -> dict[str, torch.Tensor]:
    ids, mask = ids_and_mask(4, 8, [8, 6, 5, 8], seed=3)
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([[2, 4], [0, 0], [1, 3], [5, 5]])}


def seq_batch() -> dict[str, torch.Tensor]:
    ids, mask = ids_and_mask(6, 6, [6, 4, 5, 6, 3, 6], seed=4)
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 2, 0, 1, 2])}


BATCHES = {"sequence": (seq_batch, 3), "token": (token_batch, 5), "multiple_choice": (mc_batch, 3),
           "span": (span_batch, 2)}


# ---------------------------------------------------------------- heads and the module


def test_build_head_makes_each_kind_and_names_the_known_ones() -> None:
    assert isinstance(build_head("sequence", HIDDEN, 3, 0.1, "cls"), SequenceClassificationHead)
    assert isinstance(build_head("token", HIDDEN, 9, 0.1, "mean"), TokenClassificationHead)
    assert isinstance(build_head("multiple_choice", HIDDEN, 4, 0.1, "cls"), MultipleChoiceHead)
    assert isinstance(build_head("span", HIDDEN, 2, 0.1, "mean"), SpanHead)
    with pytest.raises(ValueError, match="head type 'crf' is not implemented; known: sequence, token, "
                                         "multiple_choice, span"):
        build_head("crf", HIDDEN, 2, 0.1, "mean")
    with pytest.raises(ValueError, match=r"model\.pooling='max'"):
        build_head("multiple_choice", HIDDEN, 2, 0.1, "max")
    with pytest.raises(ValueError, match="head_kind='crf' is not known"):
        EncoderClassifier(tiny_bert(), SpanHead(HIDDEN), 2, stage="t", lr=1e-3, optimizer=torch.optim.AdamW,
                          head_kind="crf")


@pytest.mark.parametrize(("kind", "shape"), [("sequence", (6, 3)), ("token", (4, 7, 5)),
                                             ("multiple_choice", (4, 3)), ("span", (4, 2, 8))])
def test_output_shapes(kind: str, shape: tuple[int, ...]) -> None:
    make_batch, k = BATCHES[kind]
    batch = make_batch()
    module = make_module(kind, k).eval()
    assert tuple(module(batch["input_ids"], batch["attention_mask"]).shape) == shape


def test_multiple_choice_input_shape_is_checked() -> None:
    module = make_module("multiple_choice", 3)
    ids, mask = ids_and_mask(2, 5, [5, 5])
    with pytest.raises(ValueError, match=r"'multiple_choice' head takes input_ids of shape \[B, C, L\], got \(2, 5\)"):
        module(ids, mask)


def test_flat_logits_drop_unlabelled_positions_in_order() -> None:
    logits = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)  # token: [B=2, L=3, K=2]
    labels = torch.tensor([[-100, 1, -100], [0, -100, 1]])
    flat, flat_labels = flat_logits_and_labels(logits, labels)
    assert torch.equal(flat, torch.tensor([[2.0, 3.0], [6.0, 7.0], [10.0, 11.0]]))
    assert torch.equal(flat_labels, torch.tensor([1, 0, 1]))
    # span [B=2, 2, L=4] → rows (ex0 start, ex0 end, ex1 start, ex1 end)
    span = torch.arange(16, dtype=torch.float32).view(2, 2, 4)
    flat, flat_labels = flat_logits_and_labels(span, torch.tensor([[1, 3], [0, 0]]))
    assert torch.equal(flat, span.view(4, 4)) and torch.equal(flat_labels, torch.tensor([1, 3, 0, 0]))
    flat, flat_labels = flat_logits_and_labels(torch.eye(3), torch.tensor([2, -100, 0]))  # sequence
    assert torch.equal(flat, torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])) and flat_labels.tolist() == [2, 0]
    with pytest.raises(ValueError, match=r"logits \(2, 3\) do not match labels \(3,\)"):
        flat_logits_and_labels(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))


def test_token_loss_ignores_unlabelled_positions() -> None:
    module = make_module("token", 5).eval()
    batch = token_batch()
    loss, logits, _, _ = module._flat_loss(batch)
    keep = batch["labels"] != -100
    expected = torch.nn.functional.cross_entropy(logits[keep], batch["labels"][keep])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # changing the logits' targets at -100 positions cannot matter: relabel them all and compare
    noisy = dict(batch, labels=batch["labels"].masked_fill(~keep & (batch["attention_mask"] == 0), -100))
    assert module._flat_loss(noisy)[0].item() == pytest.approx(loss.item(), rel=1e-6)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_multiple_choice_probabilities_sum_to_one_and_ignore_padding(pooling: str) -> None:
    module = make_module("multiple_choice", 3, pooling=pooling).eval()
    batch = mc_batch()
    with torch.no_grad():
        probs = module(batch["input_ids"], batch["attention_mask"]).softmax(-1)
        assert torch.allclose(probs.sum(-1), torch.ones(4), atol=1e-6)
        # pad every option of the batch 5 positions longer: same scores
        ids = torch.nn.functional.pad(batch["input_ids"], (0, 5), value=PAD)
        mask = torch.nn.functional.pad(batch["attention_mask"], (0, 5), value=0)
        longer = module(ids, mask).softmax(-1)
    assert torch.allclose(probs, longer, atol=1e-5)
    assert not torch.allclose(probs, torch.full_like(probs, 1 / 3), atol=1e-3)  # the options really differ


def test_span_padding_gets_zero_probability_and_no_smoothing_mass() -> None:
    module = make_module("span", 2, label_smoothing=0.1).eval()
    batch = span_batch()
    with torch.no_grad():
        logits = module(batch["input_ids"], batch["attention_mask"])
        probs = logits.softmax(-1)
        padded = (batch["attention_mask"] == 0).unsqueeze(1).expand_as(probs)
        assert int(padded.sum()) == 2 * (2 + 3)
        assert torch.all(probs[padded] == 0.0)
        assert torch.allclose(probs.sum(-1), torch.ones(4, 2), atol=1e-6)
        # the smoothed loss of example 2 (5 real tokens) is the same padded to 8 or cut to its 5 tokens
        one = {k: v[2:3] for k, v in batch.items()}
        cut = {"input_ids": one["input_ids"][:, :5], "attention_mask": one["attention_mask"][:, :5],
               "labels": one["labels"]}
        padded_loss, cut_loss = module._flat_loss(one)[0].item(), module._flat_loss(cut)[0].item()
    assert padded_loss == pytest.approx(cut_loss, rel=1e-5)
    assert padded_loss < 20.0  # smoothing over padding would put it near 1e37


def test_span_accuracy_needs_start_and_end() -> None:
    module = make_module("span", 2)
    batch = span_batch()
    # fixed logits: example 0 right, 1 start right/end wrong, 2 right, 3 both wrong → 2 of 4
    fixed = torch.zeros(4, 2, 8)
    for i, (s, e) in enumerate([(2, 4), (0, 3), (1, 3), (0, 1)]):
        fixed[i, 0, s] = fixed[i, 1, e] = 5.0
    module.forward = lambda input_ids, attention_mask: fixed  # type: ignore[method-assign]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a Trainer
        module.validation_step(batch, 0)
    assert module.val_acc.compute().item() == pytest.approx(0.5)


def test_token_accuracy_is_over_labelled_positions() -> None:
    module = make_module("token", 5)
    batch = token_batch()
    fixed = torch.zeros(4, 7, 5)
    fixed[..., 0] = 1.0  # always predict tag 0: right on the 4 labelled positions whose tag is 0
    module.forward = lambda input_ids, attention_mask: fixed  # type: ignore[method-assign]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module.validation_step(batch, 0)
    assert module.val_acc.compute().item() == pytest.approx(3 / 11)


@pytest.mark.parametrize(("kind", "counts"), [("sequence", [1] * 6), ("token", [4, 2, 4, 1]),
                                              ("multiple_choice", [1] * 4), ("span", [2] * 4)])
def test_predict_step_returns_flat_rows_and_counts(kind: str, counts: list[int]) -> None:
    make_batch, k = BATCHES[kind]
    batch = make_batch()
    module = make_module(kind, k).eval()
    with torch.no_grad():
        out = module.predict_step(batch, 0)
    assert out["counts"].dtype == torch.int64 and out["counts"].tolist() == counts
    assert out["logits"].dtype == torch.float32 and out["logits"].shape[0] == sum(counts)
    assert out["labels"].shape == (sum(counts),) and bool((out["labels"] >= 0).all())
    if kind == "token":
        sentences = split_counts(out["labels"], out["counts"])
        assert [s.tolist() for s in sentences] == [[1, 0, 2, 0], [3, 3], [0, 1, 1, 2], [4]]
        assert out["logits"].shape == (11, 5)
    if kind == "span":
        assert out["logits"].shape == (8, 8) and out["labels"].tolist() == [2, 4, 0, 0, 1, 3, 5, 5]


@pytest.mark.parametrize("kind", ["sequence", "token", "multiple_choice", "span"])
def test_loss_falls_when_overfitting_a_tiny_batch(kind: str) -> None:
    make_batch, k = BATCHES[kind]
    batch = make_batch()
    module = make_module(kind, k, lr=2e-3)
    optimizer = module.configure_optimizers()
    first = module._flat_loss(batch)[0].item()
    for _ in range(30):
        optimizer.zero_grad()
        module._flat_loss(batch)[0].backward()
        optimizer.step()
    module.eval()
    with torch.no_grad():
        last = module._flat_loss(batch)[0].item()
        correct = module._correct(*flat_logits_and_labels(module(batch["input_ids"], batch["attention_mask"]),
                                                          batch["labels"]))
    assert last < first * 0.3, (first, last)
    assert correct.mean().item() == 1.0


def test_lightning_fit_logs_stage_keys_and_predicts_for_span() -> None:
    """Through a real Trainer: span batches of different lengths (K changes per batch) log and predict."""
    batch = span_batch()
    # two batches cut to their own longest example (8 and 6 tokens): the class count differs per batch
    batches = [{k: v[:2] for k, v in batch.items()}, {k: v[1:3] for k, v in batch.items()}]
    batches[1] = dict(batches[1], input_ids=batches[1]["input_ids"][:, :6],
                      attention_mask=batches[1]["attention_mask"][:, :6])
    loader = DataLoader(batches, batch_size=None)  # each item is already a batch
    module = make_module("span", 2, label_smoothing=0.1)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
    logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert set(logged) == {"t/train_loss", "t/train_acc", "t/val_loss", "t/val_acc"}
    assert all(np.isfinite(v) for v in logged.values()) and 0.0 <= logged["t/val_acc"] <= 1.0
    outputs = trainer.predict(module, loader)
    assert [tuple(o["logits"].shape) for o in outputs] == [(4, 8), (4, 6)]
    assert [o["counts"].tolist() for o in outputs] == [[2, 2], [2, 2]]


# ---------------------------------------------------------------- collators


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer built in memory (stable across transformers versions, no download)."""
    vocab = {w: i for i, w in enumerate(["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]", *(f"w{i}" for i in range(115))])}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="[UNK]")), unk_token="[UNK]",
                                  pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    assert tok.pad_token_id == PAD
    return tok


def test_sequence_and_token_collators_pad_to_the_longest(tokenizer: PreTrainedTokenizerFast) -> None:
    seq = build_collator("sequence", tokenizer)([
        {"input_ids": [2, 7, 3], "attention_mask": [1, 1, 1], "labels": 2, "length": 3, "id": "a"},
        {"input_ids": [2, 8, 9, 10, 3], "attention_mask": [1] * 5, "labels": 0, "length": 5, "id": "b"},
    ])
    assert set(seq) == {"input_ids", "attention_mask", "labels"}
    assert seq["input_ids"].tolist() == [[2, 7, 3, PAD, PAD], [2, 8, 9, 10, 3]]
    assert seq["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1] * 5]
    assert seq["labels"].dtype == torch.int64 and seq["labels"].tolist() == [2, 0]
    tok = build_collator("token", tokenizer)([
        {"input_ids": [2, 7, 3], "attention_mask": [1, 1, 1], "labels": [-100, 4, -100], "length": 3},
        {"input_ids": [2, 8, 9, 10, 3], "attention_mask": [1] * 5, "labels": [-100, 1, -100, 2, -100], "length": 5},
    ])
    assert tok["input_ids"].tolist() == [[2, 7, 3, PAD, PAD], [2, 8, 9, 10, 3]]
    assert tok["labels"].tolist() == [[-100, 4, -100, -100, -100], [-100, 1, -100, 2, -100]]


def test_multiple_choice_collator_pads_every_option(tokenizer: PreTrainedTokenizerFast) -> None:
    features = [
        {"input_ids": [[2, 5, 3], [2, 5, 6, 7, 3]], "attention_mask": [[1] * 3, [1] * 5], "labels": 1, "id": "q1"},
        {"input_ids": [[2, 9, 3], [2, 3]], "attention_mask": [[1] * 3, [1] * 2], "labels": 0, "id": "q2"},
    ]
    batch = build_collator("multiple_choice", tokenizer)(features)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].shape == (2, 2, 5)
    assert batch["input_ids"][1].tolist() == [[2, 9, 3, PAD, PAD], [2, 3, PAD, PAD, PAD]]
    assert batch["attention_mask"][0].tolist() == [[1, 1, 1, 0, 0], [1] * 5]
    assert batch["labels"].tolist() == [1, 0]
    fallback = MultipleChoiceCollator(tokenizer)([{k: v for k, v in f.items() if k != "id"} for f in features])
    assert all(torch.equal(batch[k], fallback[k]) for k in batch)
    with pytest.raises(ValueError, match=r"have \[2, 3\] options"):
        build_collator("multiple_choice", tokenizer)(
            [features[0], {"input_ids": [[2, 3]] * 3, "attention_mask": [[1, 1]] * 3, "labels": 0}])


def test_span_collator_keeps_start_end_pairs(tokenizer: PreTrainedTokenizerFast) -> None:
    batch = build_collator("span", tokenizer)([
        {"input_ids": [2, 7, 8, 3, 9, 3], "attention_mask": [1] * 6, "labels": [4, 4], "length": 6},
        {"input_ids": [2, 7, 3, 9], "attention_mask": [1] * 4, "labels": [0, 0], "length": 4},
    ])
    assert batch["input_ids"].tolist() == [[2, 7, 8, 3, 9, 3], [2, 7, 3, 9, PAD, PAD]]
    assert batch["attention_mask"].tolist() == [[1] * 6, [1, 1, 1, 1, 0, 0]]
    assert batch["labels"].dtype == torch.int64 and batch["labels"].tolist() == [[4, 4], [0, 0]]
    with pytest.raises(ValueError, match="head type 'crf' has no collator"):
        build_collator("crf", tokenizer)


# ---------------------------------------------------------------- task scores


@pytest.mark.parametrize("k", [None, 3])
def test_ndcg_by_group_matches_sklearn_per_query(k: int | None) -> None:
    rng = np.random.default_rng(0)
    sizes = [2, 5, 3, 7, 4, 6]
    relevance = [rng.integers(0, 5, n) for n in sizes]
    relevance[2] = np.zeros(3, dtype=np.int64)  # a query with nothing relevant scores 0, as in sklearn
    scores = [rng.random(n) for n in sizes]
    expected = np.mean([ndcg_score([r], [s], k=k) for r, s in zip(relevance, scores, strict=True)])
    # interleave the queries' rows so grouping, not order, decides which rows belong together
    groups = np.concatenate([[f"q{i}"] * n for i, n in enumerate(sizes)])
    order = rng.permutation(len(groups))
    got = ndcg_by_group(torch.tensor(np.concatenate(scores)[order]), torch.tensor(np.concatenate(relevance)[order]),
                        list(groups[order]), k=k)
    assert got == pytest.approx(expected, abs=1e-6)
    assert 0.3 < got < 1.0


def test_expected_relevance_ranks_by_the_whole_distribution() -> None:
    probs = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0, 0.5], [0.2, 0.2, 0.2, 0.2, 0.2]])
    assert expected_relevance(probs).tolist() == pytest.approx([1.0, 2.0, 2.0])
    # ranked by expected relevance, the perfect document (row 1's gold 4) comes first: nDCG 1
    assert ndcg_by_group(expected_relevance(probs[:2]), torch.tensor([1, 4]), ["q", "q"]) == pytest.approx(1.0)
    assert ndcg_by_group(torch.tensor([2.0, 1.0]), torch.tensor([1, 4]), torch.tensor([7, 7])) < 1.0


def test_entity_f1_counts_entities_conll_style() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-MISC", "I-MISC"], ["B-LOC"]]
    pred = [["B-PER", "I-PER", "B-LOC", "B-ORG"], ["B-ORG", "O", "B-MISC", "O"], ["I-LOC"]]
    # gold entities: PER, LOC | ORG, MISC(2 words) | LOC                                      = 5
    # predicted: PER ✓, LOC ✗ (spurious), ORG ✗ (wrong type) | ORG ✓, MISC ✗ (too short) | LOC ✓
    # (a lone I- starts an entity, as in conlleval)                                          = 6, 3 correct
    scores = entity_f1(gold, pred)
    assert scores["precision"] == pytest.approx(3 / 6)
    assert scores["recall"] == pytest.approx(3 / 5)
    assert scores["f1"] == pytest.approx(2 * 0.5 * 0.6 / 1.1)
    assert entity_f1(gold, gold) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    with pytest.raises(ValueError, match="sentence 1 has 4 gold tags but 3 predicted"):
        entity_f1(gold, [pred[0], pred[1][:3], pred[2]])


def test_the_evaluation_scores_entities_of_flat_token_predictions() -> None:
    """The same sentences as the evaluation holds them (one row per labelled word, words per sentence): the
    entity scores counted above, from the argmax of the probabilities."""
    names = TASKS["ner"].labels
    gold = ["B-PER", "I-PER", "O", "B-LOC", "B-ORG", "O", "B-MISC", "I-MISC", "B-LOC"]
    pred = ["B-PER", "I-PER", "B-LOC", "B-ORG", "B-ORG", "O", "B-MISC", "O", "I-LOC"]
    labels = torch.tensor([names.index(tag) for tag in gold])
    probs = torch.nn.functional.one_hot(torch.tensor([names.index(tag) for tag in pred]), len(names)).double()
    flat = Predictions(logits=probs.log(), labels=labels, counts=torch.tensor([4, 4, 1]))
    assert task_scores(TASKS["ner"], flat, probs) == pytest.approx(
        {"entity_precision": 3 / 6, "entity_recall": 3 / 5, "entity_f1": 2 * 0.5 * 0.6 / 1.1})


def test_split_counts_rebuilds_sentences() -> None:
    flat = torch.arange(7)
    assert [t.tolist() for t in split_counts(flat, torch.tensor([3, 1, 3]))] == [[0, 1, 2], [3], [4, 5, 6]]
    names = ("O", "B-PER", "I-PER")
    assert tag_sequences(torch.tensor([1, 2, 0, 0, 1]), torch.tensor([3, 2]), names) == [
        ["B-PER", "I-PER", "O"], ["O", "B-PER"]]
    with pytest.raises(ValueError, match="counts sum to 6 but there are 7 rows"):
        split_counts(flat, torch.tensor([3, 3]))
