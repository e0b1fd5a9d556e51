"""A small XGLUE release in the official file names and layouts, for tests of everything that reads it.

The real release cannot be downloaded here (it sits behind XGLUE's terms), so tests write one: the same
directory names, file names, headers, label spellings and column orders as ``xglue_full_dataset``
(see /work/shared/XGLUE.md), with deterministic, varied rows. :func:`example_rows` says, independently of
any reader, what a correct reader must return for each written file.
"""

from __future__ import annotations

import random
from pathlib import Path

from xcal.data.tasks import TASKS, XGLUE_TASKS

RELEASE_DIR = "xglue_full_dataset"
# The one malformed line of the release: in XNLI German dev, example 5 has a stray tab inside its premise
# (4 columns instead of 3), on line 6 of the file. It keeps its example number, so the German ids skip dev-5.
MALFORMED = ("xnli", "de", "dev", 5)
MALFORMED_LINE = 6
# QADSM rows whose ad description is empty in every file (the title alone is the text pair).
EMPTY_DESCRIPTION = 3
# WPR: this many consecutive rows share a query.
WPR_GROUP = 3
# Tasks whose test files the old xglue_public release (Data_Format.txt of 2020-05-27) had without the label column.
UNLABELED_TEST = ("nc", "qadsm", "wpr", "qam")
MIN_N = 10  # every file must show every label of NC (10 classes)

_DIRS = {"xnli": "XNLI", "paws_x": "PAWSX", "nc": "NC", "qadsm": "QADSM", "wpr": "WPR", "qam": "QAM",
         "ner": "NER", "pos": "POS"}
_WORDS = ("river", "stone", "market", "garden", "winter", "letter", "engine", "silver", "harbor", "valley",
          "candle", "mirror", "forest", "bridge", "window", "paper", "orange", "castle", "pocket", "thunder",
          "ladder", "meadow", "island", "copper", "velvet", "anchor", "lantern", "pepper", "saddle", "tunnel")
# A word in the language's own script, so the reader is exercised on real UTF-8.
_NATIVE = {"ar": "مرحبا", "bg": "здравей", "de": "Grüße", "el": "γειά", "es": "año", "fr": "été", "hi": "नमस्ते",
           "it": "città", "nl": "één", "pl": "żółw", "pt": "ação", "ru": "привет", "sw": "habari", "th": "สวัสดี",
           "tr": "güneş", "ur": "سلام", "vi": "tiếng", "zh": "你好", "en": "hello"}
_XNLI_RAW = ("entailment", "neutral", "contradictory")
_NER_TYPES = ("PER", "ORG", "LOC", "MISC")


def file_name(task: str, language: str, split: str) -> str:
    """The release path of one file, relative to ``xglue_full_dataset``."""
    directory = _DIRS[task]
    if task == "xnli":
        name = "multinli.train.en.tsv" if split == "train" else f"{language}.{split}"
    elif task == "paws_x":
        name = "en/train.tsv" if split == "train" else f"{language}/{split}_2k.tsv"
    elif task in ("ner", "pos"):
        name = f"{language}.{split}"
    else:
        name = f"xglue.{task}.{language}.{split}"
    return f"{directory}/{name}"


def _rng(*parts: object) -> random.Random:
    return random.Random("/".join(map(str, parts)))  # str seeds are stable across runs and PYTHONHASHSEED


def _phrase(rng: random.Random, k: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(k))


def _labels(task: str, language: str, split: str, n: int) -> list[int]:
    """Every label at least once (n >= number of labels), shuffled; the same in every language of a parallel set."""
    k = TASKS[task].num_labels
    labels = [i % k for i in range(n)]
    _rng(task, split, "" if TASKS[task].aligned else language, "labels").shuffle(labels)
    return labels


def _sequence_records(task: str, language: str, split: str, n: int) -> list[tuple[list[str], int]]:
    """(text fields in file order, label index) per example."""
    native = _NATIVE[language]
    records = []
    for i, label in enumerate(_labels(task, language, split, n)):
        # Parallel sets: the content is chosen per example, not per language, so languages are "translations".
        rng = _rng(task, split, i, "" if TASKS[task].aligned else language)
        if task == "xnli":
            fields = [f"{language} premise {i} {native} {_phrase(rng, 5)}",
                      f"{language} hypothesis {i} {_phrase(rng, 3)}"]
        elif task == "paws_x":
            fields = [f"{language} sentence {i} {native} {_phrase(rng, 6)}",
                      f"{language} reordered {i} {_phrase(rng, 6)}"]
        elif task == "nc":
            fields = [f"{native} headline {i} {_phrase(rng, 3)}", f"{language} body {i}. {_phrase(rng, 12)}."]
        elif task == "qadsm":
            description = "" if i == EMPTY_DESCRIPTION else f"{_phrase(rng, 6)} {native}"
            fields = [f"{language} query {i} {_phrase(rng, 2)}", f"ad {i} {_phrase(rng, 3)}", description]
        elif task == "wpr":
            group = i // WPR_GROUP
            fields = [f"{language} query {group} {_phrase(_rng(task, split, language, 'q', group), 2)}",
                      f"page {i} {native} {_phrase(rng, 3)}", f"snippet {i} {_phrase(rng, 10)}"]
        else:  # qam
            fields = [f"{language} question {i} {_phrase(rng, 4)}?", f"passage {i} {native} {_phrase(rng, 14)}."]
        records.append((fields, label))
    return records


def _raw_label(task: str, label: int) -> str:
    """The label as the release spells it."""
    if task == "xnli":
        return _XNLI_RAW[label]
    if task in ("nc", "qadsm"):
        return TASKS[task].labels[label]
    return str(label)  # paws-x 0/1, wpr 0-4, qam 0/1


def _ner_sentence(rng: random.Random, i: int, language: str) -> list[tuple[str, str]]:
    tags: list[str] = []
    if i < len(_NER_TYPES):  # the first sentences of every file show every B-/I- tag
        tags += ["O", f"B-{_NER_TYPES[i]}", f"I-{_NER_TYPES[i]}"]
    length = rng.randint(4, 9)
    while len(tags) < length:
        if rng.random() < 0.35:
            kind = rng.choice(_NER_TYPES)
            tags += [f"B-{kind}"] + [f"I-{kind}"] * rng.randint(0, 1)
        else:
            tags.append("O")
    words = [rng.choice(_WORDS).capitalize() if tag != "O" else rng.choice(_WORDS) for tag in tags]
    words[0] = f"{_NATIVE[language]}{i}"
    return list(zip(words, tags, strict=True))


def _token_records(task: str, language: str, split: str, n: int) -> list[list[tuple[str, str]]]:
    rng = _rng(task, split, language)
    if task == "ner":
        return [_ner_sentence(rng, i, language) for i in range(n)]
    tags = list(TASKS["pos"].labels)
    rng.shuffle(tags)
    sentences, k = [], 0
    for i in range(n):  # a shuffled cycle through all 17 tags: all appear within the first ~5 sentences
        length = rng.randint(3, 8)
        sentence = [(f"{_NATIVE[language]}{i}" if j == 0 else rng.choice(_WORDS), tags[(k + j) % len(tags)])
                    for j in range(length)]
        k += length
        sentences.append(sentence)
    return sentences


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _sequence_lines(task: str, language: str, split: str, n: int, old_release: bool = False) -> list[str]:
    labelled = not (old_release and split == "test" and task in UNLABELED_TEST)
    lines = []
    if task == "paws_x":
        lines.append("id\tsentence1\tsentence2\tlabel")
    elif task == "xnli" and split == "train":
        lines.append("premise\thypo\tlabel")
    for i, (fields, label) in enumerate(_sequence_records(task, language, split, n)):
        fields = list(fields)
        if (task, language, split, i) == MALFORMED:
            fields[0] = fields[0].replace(" ", "\t", 1)  # the stray tab
        if task == "paws_x":
            fields.insert(0, str(i + 1))
        lines.append("\t".join([*fields, _raw_label(task, label)] if labelled else fields))
    return lines


def _token_lines(task: str, language: str, split: str, n: int) -> list[str]:
    lines = []
    for sentence in _token_records(task, language, split, n):
        lines += [f"{word} {tag}" for word, tag in sentence]
        lines.append("")
    return lines


def _file_lines(task: str, language: str, split: str, n: int, old_release: bool) -> list[str]:
    if TASKS[task].head == "token":
        return _token_lines(task, language, split, n)
    return _sequence_lines(task, language, split, n, old_release)


def _chosen(languages: dict[str, tuple[str, ...]] | None) -> dict[str, tuple[str, ...]]:
    chosen = {task: TASKS[task].languages for task in XGLUE_TASKS}
    for task, subset in (languages or {}).items():
        if task not in chosen:
            raise ValueError(f"{task!r} is not an XGLUE task; use one of {', '.join(XGLUE_TASKS)}")
        unknown = set(subset) - set(chosen[task])
        if unknown:
            raise ValueError(f"{sorted(unknown)} are not languages of {task}: {chosen[task]}")
        chosen[task] = tuple(subset)
    return chosen


def write_official_release(root: Path, languages: dict[str, tuple[str, ...]] | None = None, n: int = 12, *,
                           old_release: bool = False) -> Path:
    """Write ``root/xglue_full_dataset/`` for all 8 labelled XGLUE tasks and return its path.

    Files: the English train file of every task, and dev and test for every language of the task (or the subset
    ``languages[task]``), ``n`` examples each (sentences for NER/POS), every label present in every train and dev
    file. As in the real release: XNLI's train file and every PAWS-X file start with a header line; PAWS-X rows
    start with an id; XNLI spells contradiction ``contradictory``; QADSM labels are Good/Bad, WPR 0-4, QAM and
    PAWS-X 0/1; every test file is labelled (xglue_full_dataset, 2020-11-26), unless ``old_release``: then the NC,
    QADSM, WPR and QAM test files have no label column, as in the old xglue_public release; NER/POS hold
    ``word label`` lines with a blank line after each sentence. QADSM row 3 has an empty ad description.

    Exactly one line is malformed: ``XNLI/de.dev`` line 6 (example 5) has a stray tab inside its premise, so it
    has 4 columns instead of 3; a reader skips it (skipped=1) and returns ``n - 1`` German dev rows.
    """
    if n < MIN_N:
        raise ValueError(f"n={n} is too small: every file must show all {MIN_N} NC labels; use n >= {MIN_N}")
    release = Path(root) / RELEASE_DIR
    for task, langs in _chosen(languages).items():
        _write(release / file_name(task, "en", "train"), _file_lines(task, "en", "train", n, old_release))
        for language in langs:
            for split in ("dev", "test"):
                _write(release / file_name(task, language, split), _file_lines(task, language, split, n, old_release))
    return release


def example_rows(task: str, language: str, split: str, n: int = 12) -> list[dict]:
    """What a correct reader returns for a file of :func:`write_official_release`, in the canonical layout.

    Written from the records, not from the files, so a test comparing a reader's table with these rows checks
    the reader's parsing (headers, id column, label spellings, joined fields, the skipped malformed line).
    """
    if TASKS[task].head == "token":
        labels = TASKS[task].labels
        return [{"id": f"{split}-{i}", "tokens": [word for word, _ in sentence],
                 "tags": [labels.index(tag) for _, tag in sentence]}
                for i, sentence in enumerate(_token_records(task, language, split, n))]
    rows = []
    for i, (fields, label) in enumerate(_sequence_records(task, language, split, n)):
        if (task, language, split, i) == MALFORMED:
            continue
        row = {"id": f"{split}-{i}", "text": fields[0], "text_pair": " ".join(f for f in fields[1:] if f),
               "label": label}
        if task == "wpr":
            row["group"] = fields[0]
        rows.append(row)
    return rows
