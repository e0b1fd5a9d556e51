"""Parsing the lines of one XGLUE release file into canonical columns, counting what is malformed.

The file's shape (columns, header, label spellings) is the task's ``release`` entry in the task registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from xcal.data.errors import DataSourceError, old_release_message
from xcal.data.layouts import ReleaseFiles
from xcal.data.tasks import XGLUE_PUBLIC_UNLABELLED_TEST, TaskSpec

__all__ = ["Tally", "expected_lines", "old_release", "read_columns", "table_schema"]

# How many malformed lines a Tally keeps as examples for messages and logs.
MAX_EXAMPLES = 5


class _LabelMap:
    """Release label spellings -> index into ``spec.labels``."""

    def __init__(self, spec: TaskSpec, layout: ReleaseFiles) -> None:
        raw_labels = (*((str(i), name) for i, name in enumerate(spec.labels) if layout.numbered_labels),
                      *layout.raw_labels)
        self.index = {name: i for i, name in enumerate(spec.labels)}
        for raw, name in raw_labels:
            self.index[raw] = spec.labels.index(name)
        self.allowed = ", ".join(dict.fromkeys((*(raw for raw, _ in raw_labels), *spec.labels)))

    def get(self, raw: str) -> int | None:
        return self.index.get(raw)


@dataclass
class Tally:
    """Malformed lines of one file: how many, and the first few described."""

    lines: int = 0  # data lines seen (header and blank lines excluded)
    bad: int = 0
    examples: list[str] = field(default_factory=list)
    first_bad: str = ""  # the first bad line itself, shortened, for the wrong-layout message
    unlabelled: int = 0  # bad lines holding every column but the label (an xglue_public test file)

    def add(self, line_no: int, why: str, line: str) -> None:
        self.bad += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"line {line_no}: {why}")
        if not self.first_bad:
            shown = line if len(line) <= 120 else line[:117] + "..."
            self.first_bad = f"line {line_no}: {why}: {shown!r}"


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its end of line); a BOM is dropped, CRLF accepted."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for line_no, line in enumerate(handle, start=1):
                yield line_no, line.rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise DataSourceError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}): the XGLUE release "
                              f"files are UTF-8; re-download or re-extract it.") from exc
    except OSError as exc:
        raise DataSourceError(f"cannot read {path}: {exc.strerror or exc}; check the file's permissions.") from exc


def _fields(line: str, width: int) -> list[str]:
    """Tab-separated fields; trailing empty fields beyond ``width`` (a stray tab at the end) are dropped."""
    parts = line.split("\t")
    while len(parts) > width and parts[-1].strip() == "":
        parts.pop()
    return [part.strip() for part in parts]


def _parse_sequence(line: str, spec: TaskSpec, layout: ReleaseFiles, labels: _LabelMap) -> tuple[tuple, str]:
    """One labelled line -> ((text, text_pair, label), "") or ((), why it is malformed)."""
    width = len(layout.columns)
    parts = _fields(line, width)
    if len(parts) != width:
        return (), f"{len(parts)} columns, expected {width}"
    if layout.skip_first:
        parts = parts[1:]
    *texts, raw = parts
    label = labels.get(raw)
    if label is None:
        return (), f"unknown label {raw!r}"
    text = texts[0]
    pair = " ".join(part for part in texts[1:] if part)
    if not text or not pair:
        return (), "empty text field"
    return (text, pair, label), ""


def _parse_token(line: str, labels: _LabelMap) -> tuple[tuple[str, int] | None, str]:
    """One ``word label`` line -> ((word, tag), "") or (None, why it is malformed)."""
    # A tab, if any, is the separator; else the last space (a Vietnamese UD word can hold a space).
    parts = line.strip().split("\t") if "\t" in line else line.strip().rsplit(" ", 1)
    if len(parts) != 2:
        return None, f"{len(parts)} columns, expected 2 (word label)"
    word, raw = parts[0].strip(), parts[1].strip()
    tag = labels.get(raw)
    if tag is None:
        return None, f"unknown label {raw!r}"
    if not word:
        return None, "empty word"
    return (word, tag), ""


def _sequence_columns(path: Path, spec: TaskSpec, layout: ReleaseFiles, split: str, tally: Tally,
                      limit: int | None = None) -> dict[str, list]:
    labels = _LabelMap(spec, layout)
    ids: list[str] = []
    texts: list[str] = []
    pairs: list[str] = []
    gold: list[int] = []
    header_pending = layout.has_header(split)
    may_lack_labels, width = _may_lack_labels(spec, split), len(layout.columns)
    n = 0
    for line_no, line in _lines(path):
        if not line.strip():
            continue
        if header_pending:
            header_pending = False
            # The header is dropped unless the line is data after all (a file saved without its header).
            if not _parse_sequence(line, spec, layout, labels)[0]:
                continue
        if limit is not None and tally.lines >= limit:
            break
        tally.lines += 1
        row, why = _parse_sequence(line, spec, layout, labels)
        if row:
            ids.append(f"{split}-{n}")
            texts.append(row[0])
            pairs.append(row[1])
            gold.append(row[2])
        else:
            tally.add(line_no, why, line)
            if may_lack_labels and len(_fields(line, width)) == width - 1:
                tally.unlabelled += 1
        n += 1
    columns: dict[str, list] = {"id": ids, "text": texts, "text_pair": pairs, "label": gold}
    if "ndcg" in spec.scores:
        columns["group"] = list(texts)
    return columns


def _token_columns(path: Path, spec: TaskSpec, layout: ReleaseFiles, split: str, tally: Tally,
                   limit: int | None = None) -> dict[str, list]:
    labels = _LabelMap(spec, layout)
    ids: list[str] = []
    sentences: list[list[str]] = []
    tag_lists: list[list[int]] = []
    words: list[str] = []
    tags: list[int] = []
    broken = False
    n = 0

    def close() -> None:
        nonlocal words, tags, broken, n
        if words or broken:
            if not broken:
                ids.append(f"{split}-{n}")
                sentences.append(words)
                tag_lists.append(tags)
            n += 1
        words, tags, broken = [], [], False

    for line_no, line in _lines(path):
        if not line.strip() or line.startswith("-DOCSTART-"):
            close()
            continue
        if limit is not None and tally.lines >= limit:
            break
        tally.lines += 1
        item, why = _parse_token(line, labels)
        if item is None:
            tally.add(line_no, why, line)
            broken = True
        else:
            words.append(item[0])
            tags.append(item[1])
    if limit is None:
        close()
    return {"id": ids, "tokens": sentences, "tags": tag_lists}


def read_columns(path: Path, spec: TaskSpec, split: str, tally: Tally, limit: int | None = None) -> dict[str, list]:
    """The canonical columns of one release file (the first ``limit`` data lines when given)."""
    reader = _token_columns if spec.head == "token" else _sequence_columns
    return reader(path, spec, spec.release, split, tally, limit)


def _may_lack_labels(spec: TaskSpec, split: str) -> bool:
    """Whether a file may be an ``xglue_public`` test file, whose lines have every column but the label."""
    return split == "test" and spec.name in XGLUE_PUBLIC_UNLABELLED_TEST


def table_schema(spec: TaskSpec) -> pa.Schema:
    """The Arrow schema of a read file: the canonical columns of the task's head."""
    if spec.head == "token":
        return pa.schema([("id", pa.string()), ("tokens", pa.list_(pa.string())), ("tags", pa.list_(pa.int64()))])
    fields = [("id", pa.string()), ("text", pa.string()), ("text_pair", pa.string()), ("label", pa.int64())]
    if "ndcg" in spec.scores:
        fields.append(("group", pa.string()))
    return pa.schema(fields)


def expected_lines(spec: TaskSpec, split: str) -> str:
    """What the lines of a task's file should hold, for messages."""
    layout = spec.release
    if spec.head == "token":
        labels = " ".join(spec.labels)
        return (f"one 'word label' per line (space- or tab-separated), a blank line between sentences, "
                f"labels from: {labels}")
    header = "a header line, then " if layout.has_header(split) else ""
    return (f"{header}{len(layout.columns)} tab-separated columns ({', '.join(layout.columns)}), "
            f"labels from: {_LabelMap(spec, layout).allowed}")


def old_release(spec: TaskSpec, path: Path, tally: Tally) -> str | None:
    """The old-release message when most lines lack (only) the label column, else None."""
    if tally.unlabelled * 2 <= tally.lines:
        return None
    where = f"{path} ({tally.unlabelled} of {tally.lines} lines have no label column)"
    return old_release_message(spec.name, where, "target")

