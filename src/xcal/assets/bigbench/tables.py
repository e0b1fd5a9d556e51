"""What a built task is on disk: its columns, its hash splits, its parquet files."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

MULTIEMO_SPLITS: tuple[tuple[str, float], ...] = (("train", 0.8), ("dev", 0.9), ("test", 1.0))
INTERMEDIATE_SPLITS: tuple[tuple[str, float], ...] = (("train", 0.9), ("dev", 1.0))


def split_fraction(key: str) -> float:
    """Map a text to [0, 1) by its SHA-1: stable everywhere, unlike Python's salted ``hash``."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def assign_split(key: str, splits: Sequence[tuple[str, float]]) -> str:
    """Name of the split whose cumulative upper bound first exceeds the key's fraction."""
    fraction = split_fraction(key)
    for name, upper in splits:
        if fraction < upper:
            return name
    return splits[-1][0]


SEQUENCE_SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("label", pa.int64())])
PAIR_SCHEMA = pa.schema(
    [("id", pa.string()), ("text", pa.string()), ("text_pair", pa.string()), ("label", pa.int64())]
)
CHOICE_SCHEMA = pa.schema(
    [("id", pa.string()), ("text", pa.string()), ("choices", pa.list_(pa.string())), ("label", pa.int64())]
)


def write_parquet(path: Path, schema: pa.Schema, columns: dict[str, list[Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({name: columns[name] for name in schema.names}, schema=schema)
    pq.write_table(table, path, compression="zstd")
    return table.num_rows
