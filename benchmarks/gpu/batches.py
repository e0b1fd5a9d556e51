"""The exported (packed) batches back as the padded batches xcal's collator makes, and their token counts."""

from __future__ import annotations

from typing import Any

import torch


def unpack(packed: dict[str, torch.Tensor], pad_id: int) -> dict[str, torch.Tensor]:
    """Packed real tokens → the padded batch xcal's collator makes (padded to the longest, right-padded)."""
    lengths = packed["lengths"].long()
    mask = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
    ids = torch.full(mask.shape, pad_id, dtype=torch.long)
    ids[mask] = packed["ids"].long()
    return {"input_ids": ids, "attention_mask": mask.long(), "labels": packed["labels"]}


def train_batches(inputs: dict[str, Any], task: str, size: int, pad_id: int) -> list[dict[str, torch.Tensor]]:
    """The exported training batches of ``size`` examples; a larger size is made of consecutive exported batches
    of the largest size that divides it (length-grouped neighbours, so the merged batches stay length-grouped)."""
    exported = sorted((int(key.split("/")[1]) for key in inputs["train"] if key.startswith(f"{task}/")), reverse=True)
    base = next((b for b in exported if size % b == 0), None)
    if base is None:
        raise SystemExit(f"no exported {task} batch size divides {size}; exported: {sorted(exported)}")
    packed, k = inputs["train"][f"{task}/{base}"], size // base
    merged = [{key: torch.cat([b[key] for b in packed[i:i + k]]) for key in packed[i]}
              for i in range(0, len(packed) - k + 1, k)]
    return [unpack(b, pad_id) for b in merged]


def stats(batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    padded = sum(b["input_ids"].numel() for b in batches)
    return {"real_tokens": real, "padded_tokens": padded, "mean_length": real / sum(len(b["labels"]) for b in batches)}
