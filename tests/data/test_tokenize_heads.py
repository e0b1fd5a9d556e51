"""Tokenization per head with the real XLM-R sentencepiece tokenizer: token labels sit on the first
sub-word of each word, answer spans cover the answer's characters, options are paired with the context."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest

from xcal.data.tokenize import IGNORE_INDEX, answer_token_span, first_subword_labels, tokenize_split
from xcal.models.encoder import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer(e5_model_dir: Path):
    return load_tokenizer(str(e5_model_dir))


def test_first_subword_labels_by_hand() -> None:
    #            <s>   w0    w0    w1   w2    w2    w2   </s>
    word_ids = [None, 0, 0, 1, 2, 2, 2, None]
    assert first_subword_labels(word_ids, [5, 7, 3]) == [-100, 5, -100, 7, 3, -100, -100, -100]


def test_token_labels_are_on_the_first_subword_of_every_word(tokenizer) -> None:
    words = [["Schwarzwälder", "Kirschtorte", "schmeckt", "gut", "."], ["EU", "rejects", "German", "call"]]
    tags = [[1, 2, 0, 0, 0], [3, 0, 7, 0]]
    ds = datasets.Dataset.from_dict({"id": ["a", "b"], "tokens": words, "tags": tags})
    out = tokenize_split(ds, tokenizer, "token", 128, None)
    for row, sentence, sentence_tags in zip(out, words, tags, strict=True):
        labelled = [i for i, y in enumerate(row["labels"]) if y != IGNORE_INDEX]
        # one labelled position per word, in order, carrying that word's tag
        assert [row["labels"][i] for i in labelled] == sentence_tags
        assert len(row["labels"]) == len(row["input_ids"]) == row["length"]
        for position, word in zip(labelled, sentence, strict=True):
            piece = tokenizer.convert_ids_to_tokens(row["input_ids"][position]).lstrip("▁")
            assert word.startswith(piece), (word, piece)
    # "Schwarzwälder" is several pieces: only the first is labelled
    assert sum(y == IGNORE_INDEX for y in out[0]["labels"]) > 2


def test_truncated_words_lose_their_labels_but_nothing_shifts(tokenizer) -> None:
    words = [[f"word{i}" for i in range(40)]]
    ds = datasets.Dataset.from_dict({"id": ["a"], "tokens": words, "tags": [list(range(40))]})
    row = tokenize_split(ds, tokenizer, "token", 16, None)[0]
    kept = [y for y in row["labels"] if y != IGNORE_INDEX]
    assert len(row["input_ids"]) == 16
    assert kept == list(range(len(kept))) and 0 < len(kept) < 40


def test_answer_span_covers_the_answer_characters(tokenizer) -> None:
    context = "The Normans were in Normandy in the 10th and 11th centuries, giving their name to France."
    answer = "10th and 11th centuries"
    start = context.index(answer)
    ds = datasets.Dataset.from_dict({"id": ["q"], "text": ["When were the Normans in Normandy?"],
                                     "text_pair": [context], "answer_start": [start], "answer_text": [answer]})
    row = tokenize_split(ds, tokenizer, "span", 128, None)[0]
    first, last = row["labels"]
    assert 0 < first <= last
    assert tokenizer.decode(row["input_ids"][first:last + 1]).strip() == answer


def test_unanswerable_and_truncated_answers_point_at_the_first_token(tokenizer) -> None:
    context = " ".join(["filler"] * 200) + " the answer is Paris."
    ds = datasets.Dataset.from_dict({"id": ["none", "cut"], "text": ["q?", "q?"], "text_pair": ["short.", context],
                                     "answer_start": [-1, context.index("Paris")], "answer_text": ["", "Paris"]})
    rows = tokenize_split(ds, tokenizer, "span", 64, None)
    assert rows[0]["labels"] == [0, 0] and rows[1]["labels"] == [0, 0]
    assert len(rows[1]["input_ids"]) == 64


def test_answer_token_span_by_hand() -> None:
    offsets = [(0, 0), (0, 4), (0, 0), (0, 3), (4, 9), (10, 12), (0, 0)]
    sequence_ids = [None, 0, None, 1, 1, 1, None]
    assert answer_token_span(offsets, sequence_ids, 4, 12) == (4, 5)
    assert answer_token_span(offsets, sequence_ids, 5, 9) == (4, 4)
    assert answer_token_span(offsets, sequence_ids, 10, 20) == (0, 0)  # runs past the kept context
    assert answer_token_span(offsets, sequence_ids, -1, -1) == (0, 0)


def test_multiple_choice_pairs_context_with_each_option(tokenizer) -> None:
    ds = datasets.Dataset.from_dict({"id": ["m"], "text": ["She opened the umbrella because"],
                                     "choices": [["it rained.", "it was sunny and very very warm.", "no."]],
                                     "label": [1]})
    row = tokenize_split(ds, tokenizer, "multiple_choice", 128, None)[0]
    assert len(row["input_ids"]) == 3 and row["labels"] == 1
    assert row["length"] == max(len(ids) for ids in row["input_ids"])
    for ids, option in zip(row["input_ids"], ds[0]["choices"], strict=True):
        text = tokenizer.decode(ids, skip_special_tokens=True)
        assert text.startswith("She opened the umbrella because") and text.endswith(option)
