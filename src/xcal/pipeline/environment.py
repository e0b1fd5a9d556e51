"""The software and threads a run trained under, kept in its record.

A fixed seed repeats a training run only within one environment: the same stage-1 config trained after a
reinstall parted from its earlier runs at its third validation. Naming the versions in each record lets a reader
tell a seed's variance from a library's.
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

import torch

#: The distributions whose versions can change a trained model's numbers (kernels, schedulers, tokenisation).
PACKAGES = ("xcal", "torch", "transformers", "tokenizers", "pytorch-lightning", "torchmetrics", "numpy")


def environment() -> dict[str, Any]:
    """Python, the :data:`PACKAGES` installed (a missing one is left out), torch's intra-op threads and the CPU
    architecture."""
    packages: dict[str, str] = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"python": platform.python_version(), "packages": packages, "torch_threads": torch.get_num_threads(),
            "machine": platform.machine()}
