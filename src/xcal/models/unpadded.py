"""The encoder forward on real tokens only: BERT-family layers with padding removed between attentions.

A batch padded to its longest sentence spends the padding's share of every matmul on positions whose
output is thrown away (on the length-grouped MultiEmo batches about 20% in training and more in
evaluation, where the sets are small and their lengths spread). Here the embeddings are computed as the
model computes them, then the padding positions are dropped: the projections, the feed-forward and the
layer norms run on the ``[N, H]`` real tokens (``N`` = the mask's sum). The attention core sees each
sentence's own tokens: on a GPU through the fused variable-length attention kernels (flash, with dropout; no
padding at all), on the CPU scattered back to ``[B, T]`` under the key mask (the variable-length kernels are
GPU-only; nested tensors have only SDPA's unfused math kernel there). The result at real positions is the
padded forward's, up to float summation order (tested); padding positions are 0.

It uses the layers' own modules (query/key/value, self-output, intermediate, output), so weights, dropout
and activations are the model's; only the order of calls is written here. Architectures whose layers do
not have that structure (or add cross-attention, chunked feed-forward, relative positions) use the
model's own forward instead: :func:`unpadded_unsupported` says why.
"""

from __future__ import annotations

from functools import cached_property

import torch
from torch import nn
from torch.nn import functional as F

# Encoder layers with BertLayer's structure: attention.self.{query,key,value}, attention.output,
# intermediate, output. RoBERTa and XLM-R copy it module for module.
SUPPORTED_LAYERS = ("BertLayer", "RobertaLayer", "XLMRobertaLayer", "CamembertLayer")


def unpadded_unsupported(encoder: nn.Module) -> str | None:
    """``None`` when :func:`unpadded_hidden_states` computes exactly what ``encoder`` computes, else why not."""
    config = getattr(encoder, "config", None)
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if config is None or layers is None or not hasattr(encoder, "embeddings"):
        return f"{type(encoder).__name__} has no embeddings + encoder.layer structure"
    kinds = {type(layer).__name__ for layer in layers}
    if not kinds <= set(SUPPORTED_LAYERS):
        return f"layers {sorted(kinds)} are not one of {', '.join(SUPPORTED_LAYERS)}"
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        return "decoder / cross-attention models are not supported"
    if getattr(config, "chunk_size_feed_forward", 0):
        return "chunked feed-forward is not supported"
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        return f"position_embedding_type={config.position_embedding_type!r} (relative) is not supported"
    return None


def _pad(rows: torch.Tensor, index: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """``[N, D]`` real rows → ``[B, T, D]`` with zeros at padding positions."""
    # In place into fresh zeros: the out-of-place index_copy would clone the zeros first (one more pass).
    return rows.new_zeros(batch * length, rows.shape[-1]).index_copy_(0, index, rows).view(batch, length, -1)


class RealTokens:
    """Where a batch's real tokens sit: ``index`` into the flattened ``[B * T]`` positions, the ``[B, 1, 1, T]``
    key mask (also as an additive bias), and the ``[B + 1]`` sentence offsets into the ``[N]`` real rows (for
    ragged attention)."""

    def __init__(self, attention_mask: torch.Tensor) -> None:
        mask = attention_mask.bool()
        self.batch, self.length = mask.shape
        self.index = mask.reshape(-1).nonzero().squeeze(1)
        self.key_mask = mask[:, None, None, :]
        self.offsets = F.pad(mask.sum(1, dtype=torch.int32).cumsum(0, dtype=torch.int32), (1, 0))  # as flash takes

    @cached_property
    def key_bias(self) -> torch.Tensor:
        """The key mask to add to scores: 0 at real keys, -inf at padding (an add is cheaper than a masked fill);
        made once per batch, on first use (only the written-out CPU attention uses it)."""
        return torch.zeros(self.key_mask.shape, device=self.key_mask.device).masked_fill_(~self.key_mask,
                                                                                          float("-inf"))


def _ragged(rows: torch.Tensor, tokens: RealTokens) -> torch.Tensor:
    """``[N, heads, d]`` real rows as a ``[B, heads, j, d]`` jagged nested tensor (no padding)."""
    # Bounds given, not computed from the offsets: every sentence has at least one real token (its special
    # tokens), and T is the longest.
    nested = torch.nested.nested_tensor_from_jagged(rows, offsets=tokens.offsets.long(), min_seqlen=1,
                                                    max_seqlen=tokens.length)
    return nested.transpose(1, 2)


def _flash_usable(q: torch.Tensor) -> bool:
    """Flash attention's kernels: fp16/bf16 on an Ampere or newer GPU, unless SDPA's flash backend is off."""
    return (q.dtype in (torch.float16, torch.bfloat16) and torch.backends.cuda.flash_sdp_enabled()
            and torch.cuda.get_device_capability(q.device) >= (8, 0))


def _ragged_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, tokens: RealTokens, dropout: float,
                      scale: float) -> torch.Tensor:
    """Attention of ``[N, heads, d]`` real rows within each sentence (offsets ``tokens.offsets``), no padding.

    On a GPU, the fused variable-length kernels are called directly (flash for bf16/fp16 from Ampere on,
    memory-efficient otherwise; both differentiable, with dropout): the nested-tensor route to the same
    kernels cost ~150 ms of Python dispatch per training step on an H200. Elsewhere (CPU), the nested-tensor
    route: SDPA's math kernel."""
    if q.is_cuda:
        offsets, length = tokens.offsets, tokens.length
        if _flash_usable(q):
            return torch.ops.aten._flash_attention_forward(q, k, v, offsets, offsets, length, length, dropout,
                                                           False, False, scale=scale)[0]
        grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
        return torch.ops.aten._efficient_attention_forward(q[None], k[None], v[None], None, offsets, offsets, length,
                                                           length, dropout, 0, grad, scale=scale)[0][0]
    q, k, v = (_ragged(x, tokens) for x in (q, k, v))
    context = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scale)
    return context.transpose(1, 2).values()


def _projections(attention: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Query, key and value of ``[N, H]`` rows side by side, ``[N, 3H]``: one matrix product over the three
    weights stacked when the projections are plain ``nn.Linear`` (the same sums, and no concatenation of
    outputs afterwards); otherwise each module is called, so adapters wrapped around them (LoRA...) apply."""
    modules = attention.query, attention.key, attention.value
    if all(type(m) is nn.Linear for m in modules) and len({m.bias is None for m in modules}) == 1:
        bias = None if modules[0].bias is None else torch.cat([m.bias for m in modules])
        return F.linear(hidden, torch.cat([m.weight for m in modules]), bias)
    return torch.cat([m(hidden) for m in modules], dim=-1)


# Padded length x head size up to which the written-out attention beats SDPA's fused CPU kernel in evaluation;
# above it the fused kernel wins (the measured shapes are in docs/performance.md).
WRITTEN_OUT_ATTENTION_MAX = 3072


def _attention(layer: nn.Module, hidden: torch.Tensor, tokens: RealTokens, ragged: bool) -> torch.Tensor:
    """Self-attention of one layer on real rows ``[N, H]``: projections on real rows; the attention core either
    ragged (:func:`_ragged_attention`, no padding at all) or on ``[B, heads, T, d]`` under the key mask; back to
    real rows."""
    attention = layer.attention.self
    heads, size = attention.num_attention_heads, attention.attention_head_size
    scale = getattr(attention, "scaling", size**-0.5)
    dropout = attention.dropout.p if attention.training else 0.0
    if ragged:  # each projection's own contiguous [N, heads, d] rows, as the varlen kernels were measured with
        q, k, v = (m(hidden).view(-1, heads, size) for m in (attention.query, attention.key, attention.value))
        return _ragged_attention(q, k, v, tokens, dropout, scale).reshape(-1, heads * size)
    batch, length = tokens.batch, tokens.length
    padded = _pad(_projections(attention, hidden), tokens.index, batch, length)
    q, k, v = padded.view(batch, length, 3, heads, size).permute(2, 0, 3, 1, 4)
    if q.device.type == "cpu" and (dropout > 0 or length * size <= WRITTEN_OUT_ATTENTION_MAX):
        # With dropout SDPA falls back to this math on CPU anyway (its fused CPU kernel takes none); written
        # out, the probabilities go through the layer's own dropout module.
        scores = torch.matmul(q, k.transpose(-1, -2)).mul_(scale).add_(tokens.key_bias)
        context = torch.matmul(attention.dropout(scores.softmax(-1)), v)  # the module is a no-op in eval mode
    else:  # GPU: fused kernels with dropout; CPU evaluation of long sentences: the fused kernel
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=tokens.key_mask, dropout_p=dropout, scale=scale)
    return context.transpose(1, 2).reshape(batch * length, heads * size).index_select(0, tokens.index)


def unpadded_hidden_states(encoder: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                           ragged: bool | None = None) -> torch.Tensor:
    """``last_hidden_state [B, T, H]`` of a BERT-family ``encoder`` (see :func:`unpadded_unsupported`),
    computed on real tokens only; padding positions are 0. ``ragged`` (default: on a GPU) computes attention
    on nested tensors rather than on padded ``[B, T]`` blocks."""
    tokens = RealTokens(attention_mask)
    ragged = input_ids.is_cuda if ragged is None else ragged
    embedded = encoder.embeddings(input_ids=input_ids)
    hidden = embedded.reshape(tokens.batch * tokens.length, -1).index_select(0, tokens.index)
    for layer in encoder.encoder.layer:
        attended = layer.attention.output(_attention(layer, hidden, tokens, ragged), hidden)
        hidden = layer.output(layer.intermediate(attended), attended)
    return _pad(hidden, tokens.index, tokens.batch, tokens.length)
