"""A toy calibrator, declared in this one file: mix the softmax with the uniform distribution by a mass fitted on
the fit set's NLL (a grid of 51 masses in [0, 0.5]). Importing the module registers it as ``toy_shrink``; then
``calibration.calibrators=[...,toy_shrink]`` runs it in a job and ``xcal-report --calibrators toy_shrink`` re-scores
a finished sweep with it -- no other file changes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from xcal.calibration import Calibrator, register_calibrator

NAME = "toy_shrink"
MASSES = torch.linspace(0.0, 0.5, 51, dtype=torch.float64)


@register_calibrator(NAME, display="toy shrinkage")
class ToyShrink(Calibrator):
    """``(1 - mass) * softmax(logits) + mass / C``."""

    state_keys = ("mass",)

    def __init__(self) -> None:
        super().__init__()
        self.mass = 0.0

    def _fit(self, logits: Tensor, labels: Tensor) -> None:
        p_true = torch.softmax(logits, dim=1).gather(1, labels[:, None])  # (N, 1)
        mixed = (1 - MASSES) * p_true + MASSES / logits.shape[1]  # (N, masses)
        self.mass = float(MASSES[int((-mixed.log()).mean(0).argmin())])

    def _apply(self, logits: Tensor) -> Tensor:
        return (1 - self.mass) * torch.softmax(logits, dim=1) + self.mass / logits.shape[1]

    def _state(self) -> dict[str, Any]:
        return {"mass": self.mass}

    def _load(self, state: Mapping[str, Any], num_classes: int) -> None:
        self.mass = float(state["mass"])
