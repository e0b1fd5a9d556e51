"""The machine a benchmark runs on, and a process's peak memory."""

from __future__ import annotations

import os
import platform
import resource
from pathlib import Path
from typing import Any

import torch


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loadavg_1m() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def machine(threads: int | None) -> dict[str, Any]:
    """The machine and library versions (read from the installed packages' metadata: importing Lightning and
    transformers here would cost the parent seconds it does not otherwise spend)."""
    from importlib.metadata import version

    if threads:
        torch.set_num_threads(threads)
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "transformers": version("transformers"),
        "pytorch_lightning": version("pytorch_lightning"),
        "python": platform.python_version(),
        "loadavg_1m_at_start": loadavg_1m(),
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
