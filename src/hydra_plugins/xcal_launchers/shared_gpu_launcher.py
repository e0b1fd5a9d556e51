"""``hydra/launcher=shared_gpu``: k jobs of a grid at once on each device of one machine.

Hydra's joblib launcher runs the jobs (one worker process per running job, one job per dispatch) with
``jobs_per_device x devices`` workers; each job leases its device slot itself (:mod:`xcal.pipeline.device_slots`),
because a joblib worker is not told which worker it is. The setting is checked once, before the first job: a bad
``jobs_per_device``, an invisible device, or more jobs than a device's memory or the CPU's cores fit is one
message and exit status 2.

This module is imported by Hydra's plugin scan on every ``xcal`` start, so it imports neither torch nor joblib;
hydra-joblib-launcher is imported only when a sweep is launched through it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from xcal.pipeline.device_slots import DevicePlan, DevicePlanError, device_plan, trains_on_gpu

log = logging.getLogger(__name__)


class SharedGpuLauncher(Launcher):
    """joblib's launcher with its worker count set from the device plan (``n_jobs`` is not a setting here)."""

    def __init__(self, jobs_per_device: Any = 1, devices: Sequence[int] | None = None,
                 memory_per_job_gb: float | None = None, **joblib: Any) -> None:
        self.jobs_per_device = jobs_per_device
        self.devices = None if devices is None else list(devices)
        self.memory_per_job_gb = memory_per_job_gb
        # hydra-joblib-launcher's _core.launch reads these four attributes off its launcher.
        self.joblib = {k: v for k, v in joblib.items() if k != "n_jobs"}
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.task_function = task_function
        self.hydra_context = hydra_context

    def plan(self) -> DevicePlan:
        """The device plan for the sweep's primary config (its trainer decides GPU or CPU)."""
        assert self.config is not None
        devices = self.devices if not OmegaConf.is_config(self.devices) else OmegaConf.to_container(self.devices)
        return device_plan(self.jobs_per_device, devices, gpu=trains_on_gpu(self.config.trainer.accelerator),
                           memory_per_job_gb=self.memory_per_job_gb)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        try:
            plan = self.plan()
        except DevicePlanError as exc:
            print(f"xcal: error: {exc}", file=sys.stderr)
            sys.exit(2)
        from hydra_plugins.hydra_joblib_launcher import _core

        self.joblib["n_jobs"] = max(1, min(plan.concurrency, len(job_overrides)))
        where = "the CPU" if plan.devices == (None,) else "GPU " + ", ".join(str(d) for d in plan.devices)
        log.info("shared_gpu: %d jobs, %d at once: %d per device on %s", len(job_overrides),
                 self.joblib["n_jobs"], plan.jobs_per_device, where)
        return _core.launch(launcher=self, job_overrides=job_overrides, initial_job_idx=initial_job_idx)
