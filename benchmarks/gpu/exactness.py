"""The real-token forward against the model's padded forward on the GPU: hidden states in fp32 (no TF32) and
under bf16 autocast, and the two forwards' parameter gradients."""

from __future__ import annotations

import copy

import torch

from gpu.batches import unpack
from gpu.run import Run


def max_differences(encoder, batches: list[dict[str, torch.Tensor]], device: str, bf16: bool) -> tuple[float, float]:
    """The largest |padded - real-token| hidden state at real positions over ``batches``, and the largest
    |hidden state| (the scale it is read against)."""
    from xcal.models.unpadded import unpadded_hidden_states

    worst, scale = 0.0, 0.0
    with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
        for batch in batches:
            ref = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            got = unpadded_hidden_states(encoder, batch["input_ids"], batch["attention_mask"])
            real = batch["attention_mask"].bool()
            worst = max(worst, float((ref[real] - got[real]).abs().max()))
            scale = max(scale, float(ref[real].abs().max()))
    return worst, scale


def gradient_cosine(encoder, batch: dict[str, torch.Tensor], device: str) -> float:
    """The cosine of the parameter gradients of the padded and the real-token forward under bf16 autocast."""
    from xcal.models.unpadded import unpadded_hidden_states

    real = batch["attention_mask"].bool()
    grads = []
    for unpad in (False, True):
        encoder.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=True):
            if unpad:
                hidden = unpadded_hidden_states(encoder, batch["input_ids"], batch["attention_mask"])
            else:
                hidden = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        hidden[real].float().pow(2).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in encoder.parameters() if p.grad is not None]))
    return float(torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0))


def exactness(run: Run) -> dict[str, float]:
    """The real-token forward against the padded one on the eval batches: max |difference| of the hidden states
    at real positions in fp32 without TF32 (the memory-efficient varlen kernel on a GPU), the same under bf16
    autocast (flash), and the cosine of the two forwards' parameter gradients under bf16 autocast."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    encoder = copy.deepcopy(run.encoder).to(run.device).eval()
    batches = [{k: v.to(run.device) for k, v in unpack(packed, run.pad_id).items()}
               for packed in next(iter(run.inputs["eval"].values()))[::8]]
    out: dict[str, float] = {}
    for name, bf16 in (("fp32", False), ("bf16", True)):
        out[f"max_abs_diff_{name}"], out[f"max_abs_value_{name}"] = max_differences(encoder, batches, run.device,
                                                                                    bf16)
    out["bf16_gradient_cosine"] = gradient_cosine(encoder, batches[0], run.device)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    del encoder
    return out
