"""xcal's CPU dropout is dropout: the keep rate, unbiased scaling, independent elements, gradients, the
seeded RNG and train/eval behaviour of ``nn.Dropout``."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertModel

from xcal.models.dropout import FastDropout, fast_dropout, keep_mask, scale_mask, use_fast_dropout

N = 1 << 22


def within_sigmas(observed: float, p: float, n: int, sigmas: float = 5.0) -> bool:
    return abs(observed - p) <= sigmas * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_keep_rate_and_scaling_match_nn_dropout(p):
    torch.manual_seed(0)
    out = fast_dropout(torch.ones(N), p)
    kept = out != 0
    keep_probability = 1 - round(p * 65536) / 65536
    assert abs(keep_probability - (1 - p)) <= 2**-17
    assert within_sigmas(float(kept.float().mean()), keep_probability, N)
    assert torch.all(out[kept] == 1 / keep_probability)  # kept values scaled by the exact inverse
    assert within_sigmas(float(out.mean()) * keep_probability, keep_probability, N)  # unbiased: E[out] = x


def test_mask_elements_are_independent_across_and_within_random_words():
    """Elements share 64-bit words four at a time: neighbours (same word and across words) are dropped
    together at rate p^2, and each of the four lanes is dropped at rate p."""
    torch.manual_seed(1)
    p = 0.1
    dropped = ~keep_mask((N,), p)
    for lag in (1, 2, 3, 4, 5):
        both = float((dropped[:-lag] & dropped[lag:]).float().mean())
        assert within_sigmas(both, p * p, N - lag), (lag, both)
    lanes = dropped.view(-1, 4).float().mean(0)
    assert all(within_sigmas(float(rate), p, N // 4) for rate in lanes), lanes


def test_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(2)
    x = torch.randn(64, 48, requires_grad=True)
    out = fast_dropout(x, 0.2)
    out.sum().backward()
    kept = out.detach() != 0
    scale = 65536 / (65536 - round(0.2 * 65536))
    assert 0.7 < float(kept.float().mean()) < 0.9
    torch.testing.assert_close(x.grad, kept.float() * scale, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.detach()[kept], x.detach()[kept] * scale)


def test_the_scale_mask_is_the_keep_mask_times_the_scale_and_one_torch_draw_seeds_it():
    torch.manual_seed(7)
    keep = keep_mask((300, 7), 0.25)
    after_keep = torch.rand(1)
    torch.manual_seed(7)
    scaled = scale_mask((300, 7), 0.25)
    assert scaled.dtype == torch.float32 and scaled.shape == (300, 7)
    assert torch.equal(scaled, keep.float() * (65536 / (65536 - 16384)))
    assert torch.equal(torch.rand(1), after_keep)  # each mask consumed the same torch draws (one seed)


def test_seeded_like_torch_dropout_and_identity_when_off():
    x = torch.randn(1000)
    torch.manual_seed(5)
    a = fast_dropout(x, 0.1)
    torch.manual_seed(5)
    assert torch.equal(fast_dropout(x, 0.1), a)
    assert not torch.equal(fast_dropout(x, 0.1), a)
    assert fast_dropout(x, 0.1, training=False) is x and fast_dropout(x, 0.0) is x
    assert torch.count_nonzero(fast_dropout(x, 1.0)) == 0


def test_every_dropout_of_an_encoder_is_swapped_and_follows_train_and_eval():
    model = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=32), add_pooling_layer=False)
    before = sum(type(m) is nn.Dropout for m in model.modules())
    ps = sorted(m.p for m in model.modules() if type(m) is nn.Dropout)
    assert use_fast_dropout(model) == before == 7  # embeddings + (attention probs, 2 outputs) x 2 layers
    assert not any(type(m) is nn.Dropout for m in model.modules())
    assert sorted(m.p for m in model.modules() if isinstance(m, FastDropout)) == ps
    ids = torch.randint(3, 50, (4, 9))
    model.eval()
    assert torch.equal(model(input_ids=ids).last_hidden_state, model(input_ids=ids).last_hidden_state)
    model.train()
    assert not torch.equal(model(input_ids=ids).last_hidden_state, model(input_ids=ids).last_hidden_state)


def test_backward_keeps_only_the_boolean_decisions():
    """One byte an element is saved for backward (the keep decisions), not the 4-byte float mask or the input;
    the gradient made from it is the one of the float mask."""
    saved = []
    x = torch.randn(64, 48, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        torch.manual_seed(3)
        out = fast_dropout(x, 0.1)
    assert [(t.dtype, tuple(t.shape)) for t in saved] == [(torch.bool, (64, 48))]
    out.backward(torch.ones_like(out))
    torch.manual_seed(3)
    torch.testing.assert_close(x.grad, scale_mask((64, 48), 0.1), rtol=0, atol=0)
