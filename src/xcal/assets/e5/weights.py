"""The model half of the conversion: q4 decoding, the BertModel state dict, and its ``config.json``."""

from __future__ import annotations

from typing import Any

import numpy as np
from tqdm.auto import tqdm

from xcal.assets.e5.e5s1 import DTYPE_Q4, Q4_BLOCK_BYTES, QK, E5File, E5Header, expected_tensors


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


def state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """Dequantise every tensor into a BertModel (no pooler) fp32 state dict."""
    out: dict[str, np.ndarray] = {}
    spec = expected_tensors(e5.header)
    for name, (dtype, shape, hf_name) in tqdm(spec.items(), desc="dequantising e5", unit="tensor"):
        t = e5.tensors[name]
        raw = np.frombuffer(e5.raw, dtype=np.uint8, count=t.length, offset=t.offset)
        values = dequantize_q4(raw, t.count) if dtype == DTYPE_Q4 else raw.view("<f4").astype(np.float32)
        out[hf_name] = values.reshape(shape)
    return out


def bert_config(h: E5Header) -> dict[str, Any]:
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
