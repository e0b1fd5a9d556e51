"""One hub parquet file's columns turned into the canonical columns of the task's head (``xcal.data.tasks``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from xcal.data.errors import DataSourceError
from xcal.data.hub_labels import BadValue, label_index
from xcal.data.layouts import HubColumns
from xcal.data.tasks import TaskSpec

__all__ = ["Part", "convert"]

_ID_COLUMNS = ("id", "idx", "uid")


def _strings(table: pa.Table, column: str) -> list[str]:
    return ["" if v is None else str(v) for v in table.column(column).to_pylist()]


def _joined(table: pa.Table, columns: Sequence[str]) -> list[str]:
    parts = [_strings(table, c) for c in columns]
    return [" ".join(p for p in row if p.strip()) for row in zip(*parts, strict=True)]


def _text_array(table: pa.Table, columns: Sequence[str]) -> pa.ChunkedArray | pa.Array:
    if len(columns) == 1:
        column = table.column(columns[0])
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            return pc.fill_null(column.cast(pa.string()), "")
    return pa.array(_joined(table, columns), pa.string())



@dataclass
class Part:
    """One file in canonical columns, plus the hub's ids and which rows have a label."""

    columns: dict[str, Any]
    hub_ids: list[str | None] | None
    labelled: list[bool]


class _At:
    """The row being converted, for the message about a bad value."""

    row = 0


def convert(spec: TaskSpec, table: pa.Table, path: Path, remap: tuple[int, ...] | None) -> Part:
    """The canonical columns of one parquet file (rows without a label are marked, not yet dropped)."""
    layout = spec.hub_columns
    id_column = next((c for c in _ID_COLUMNS if c in table.column_names), None)
    hub_ids = _strings(table, id_column) if id_column else None
    labelled = [True] * table.num_rows
    at = _At()
    try:
        if spec.head == "token":
            columns = _token_columns(spec, layout, table, remap, labelled, at)
        elif spec.head == "span":
            columns = _span_columns(layout, table, at)
        else:
            columns = _label_columns(spec, layout, table, remap, labelled, at)
    except (ValueError, TypeError, AttributeError, pa.ArrowException) as exc:
        raise DataSourceError(f"{path} row {at.row}: {exc} (task {spec.name}, hub columns "
                              f"{', '.join(layout.columns)}); check that the repo and config hold this task") from exc
    return Part(columns, hub_ids, labelled)


def _token_columns(spec: TaskSpec, layout: HubColumns, table: pa.Table, remap: tuple[int, ...] | None,
                   labelled: list[bool], at: _At) -> dict[str, Any]:
    words = table.column(layout.tokens).to_pylist()
    tags: list[list[int]] = []
    for at.row, (ws, ts) in enumerate(zip(words, table.column(layout.label).to_pylist(), strict=True)):
        ws, ts = ws or [], ts or []
        if len(ws) != len(ts):
            raise BadValue(f"{len(ws)} words but {len(ts)} tags")
        indices = [label_index(t, spec.labels, remap) for t in ts]
        labelled[at.row] = bool(ws) and all(i is not None for i in indices)
        tags.append([i if i is not None else -1 for i in indices])
    return {"tokens": pa.array([[str(w) for w in ws or []] for ws in words], pa.list_(pa.string())),
            "tags": pa.array(tags, pa.list_(pa.int64()))}


def _span_columns(layout: HubColumns, table: pa.Table, at: _At) -> dict[str, Any]:
    starts, texts = [], []
    for at.row, answer in enumerate(table.column(layout.answers).to_pylist()):
        answer = answer or {}
        answer_texts, answer_starts = answer.get("text") or [], answer.get("answer_start") or []
        if answer_texts and answer_starts:
            starts.append(int(answer_starts[0]))
            texts.append(str(answer_texts[0]))
        else:  # squad_v2 unanswerable
            starts.append(-1)
            texts.append("")
    return {"text": _text_array(table, layout.text), "text_pair": _text_array(table, layout.text_pair),
            "answer_start": pa.array(starts, pa.int64()), "answer_text": pa.array(texts, pa.string())}


def _label_columns(spec: TaskSpec, layout: HubColumns, table: pa.Table, remap: tuple[int, ...] | None,
                   labelled: list[bool], at: _At) -> dict[str, Any]:
    """Sequence and multiple-choice heads: text (and text_pair or choices), one label per row."""
    text_columns = layout.text
    if layout.alt_text and not all(c in table.column_names for c in text_columns):
        text_columns = layout.alt_text
    columns: dict[str, Any] = {"text": _text_array(table, text_columns)}
    if spec.head == "sequence" and spec.pair:
        columns["text_pair"] = _text_array(table, layout.text_pair)
    raw_labels = table.column(layout.label).to_pylist()
    if spec.head == "multiple_choice":
        choices = _choice_lists(table, layout)
        for at.row, options in enumerate(choices):
            if len(options) != spec.num_labels:
                raise BadValue(f"{len(options)} choices, expected {spec.num_labels}")
        columns["choices"] = pa.array(choices, pa.list_(pa.string()))
    keys = [c.get("label") or [] for c in table.column(layout.choices[0]).to_pylist()] if layout.key_in_choices else []
    labels: list[int] = []
    for at.row, value in enumerate(raw_labels):
        index = _key_index(value, keys[at.row]) if layout.key_in_choices else label_index(value, spec.labels, remap)
        labelled[at.row] = index is not None
        labels.append(-1 if index is None else index)
    columns["label"] = pa.array(labels, pa.int64())
    if layout.group:
        columns["group"] = _text_array(table, (layout.group,))
    return columns


def _key_index(value: Any, keys: list[str]) -> int | None:
    """commonsenseqa: the answer key (a letter) looked up in the row's choice labels."""
    key = "" if value is None else str(value).strip()
    if key and key not in keys:
        raise BadValue(f"answer key {key!r} is not one of the row's choice labels {keys}")
    return keys.index(key) if key else None


def _choice_lists(table: pa.Table, layout: HubColumns) -> list[list[str]]:
    if len(layout.choices) > 1:
        per_option = [_strings(table, c) for c in layout.choices]
        return [list(options) for options in zip(*per_option, strict=True)]
    values = table.column(layout.choices[0]).to_pylist()
    if layout.key_in_choices:  # commonsenseqa: {label: [A..E], text: [...]}
        values = [(v or {}).get("text") or [] for v in values]
    return [["" if o is None else str(o) for o in (v or [])] for v in values]
