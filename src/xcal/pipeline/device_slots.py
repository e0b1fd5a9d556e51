"""Several jobs to one device: which device each running job of a grid uses, and how many share it.

A fine-tuning job at batch 16-32 leaves a large GPU mostly waiting on kernel launches, so a grid runs more jobs per
GPU-hour when ``k`` of its jobs share each device (``hydra/launcher=shared_gpu``). The plan (:class:`DevicePlan`)
is ``k`` slots per device, laid out round-robin over the devices (slot ``i`` is device ``i mod G``), so the first
jobs spread over every GPU before any doubles up. A job leases the first free slot (:func:`lease`) for its whole
run: an OS file lock per slot, released by the kernel if the job dies, so at most ``k`` jobs share a device even
across two sweeps started on the same machine, and a freed slot goes to the next job. On a machine without a GPU
the ``k`` jobs share the CPU (one "device"), each with ``cores / k`` threads.

Torch-free at import (the launcher plugin imports this in Hydra's process before any job starts).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout
from omegaconf import DictConfig

from xcal.errors import XcalError
from xcal.utils.messages import bullets, counted

if TYPE_CHECKING:
    from xcal.pipeline.plan import JobPlan

log = logging.getLogger(__name__)
CPU = None  # the device of a CPU slot


class DevicePlanError(XcalError, ValueError):
    """Every problem of a launcher setting, in one message, before any job starts."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"hydra/launcher=shared_gpu has {counted(len(problems), 'problem')} (no job was started):\n"
                         f"{bullets(problems)}")


@dataclass(frozen=True)
class Slot:
    """One place for a running job: its device (a CUDA index, or None for the CPU) and which of the device's ``k``
    places it is."""

    device: int | None
    place: int

    @property
    def device_name(self) -> str:
        return "cpu" if self.device is CPU else f"cuda:{self.device}"

    @property
    def lock_name(self) -> str:
        return f"{'cpu' if self.device is CPU else f'cuda{self.device}'}-{self.place}.lock"


@dataclass(frozen=True)
class DevicePlan:
    """``jobs_per_device`` jobs at once on each of ``devices`` (CUDA indices; ``(None,)``: the CPU)."""

    devices: tuple[int | None, ...]
    jobs_per_device: int

    @property
    def concurrency(self) -> int:
        """How many jobs run at once: the launcher's worker count."""
        return self.jobs_per_device * len(self.devices)

    def slots(self) -> list[Slot]:
        """Round-robin over the devices: the first ``G`` slots are one per device, the next ``G`` the second place
        on each, ... so the first free slot is always on a device with the fewest jobs."""
        g = len(self.devices)
        return [Slot(self.devices[i % g], i // g) for i in range(self.concurrency)]

    def threads_per_job(self, cores: int | None = None) -> int:
        """Torch intra-op threads each job gets: the machine's cores shared out, at least one."""
        return max(1, (cores or os.cpu_count() or 1) // self.concurrency)


def visible_gpus() -> int:
    """CUDA devices this process sees (``CUDA_VISIBLE_DEVICES`` applied); 0 without CUDA. Imports torch."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def gpu_memory_gb(device: int) -> float:
    import torch

    return torch.cuda.get_device_properties(device).total_memory / 1e9


def ram_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9


def plan_problems(jobs_per_device: object, devices: Sequence[object] | None, *, gpu: bool, visible: int,
                  cores: int, memory_per_job_gb: object = None,
                  device_memory_gb: Sequence[float] = ()) -> list[str]:
    """What is wrong with a setting, each problem a sentence with the fix: ``k`` not a whole number >= 1, a device
    that is not visible, more jobs on a device than its memory (``memory_per_job_gb`` given) or the CPU's cores
    fit. ``device_memory_gb``: each planned device's memory (GPU) or the machine's RAM (CPU), in plan order."""
    problems = []
    k = jobs_per_device
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        problems.append(f"hydra.launcher.jobs_per_device={k!r}: must be a whole number >= 1 (how many jobs share "
                        "each device at once)")
        k = None
    if gpu and visible == 0:
        problems.append("the jobs train on a GPU (trainer.accelerator=gpu) but this machine sees none "
                        "(CUDA_VISIBLE_DEVICES, drivers); use trainer=cpu to share the CPU")
    if devices is not None:
        if not gpu:
            problems.append(f"hydra.launcher.devices={list(devices)} names GPUs, but the jobs run on the CPU "
                            "(trainer=cpu); leave it null")
        else:
            bad = [d for d in devices if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d < visible]
            if bad or not devices or len(set(devices)) != len(devices):
                problems.append(f"hydra.launcher.devices={list(devices)}: each must be a distinct visible GPU "
                                f"index; this machine sees {counted(visible, 'GPU')}"
                                f"{f' (0-{visible - 1})' if visible else ''}")
    if k is None:
        return problems
    if not gpu and k > cores:
        problems.append(f"hydra.launcher.jobs_per_device={k}: {k} jobs on the CPU need at least a core each; this "
                        f"machine has {counted(cores, 'core')}")
    if memory_per_job_gb is not None:
        if isinstance(memory_per_job_gb, bool) or not isinstance(memory_per_job_gb, int | float) \
                or memory_per_job_gb <= 0:
            problems.append(f"hydra.launcher.memory_per_job_gb={memory_per_job_gb!r}: must be a number of GB > 0 "
                            "(or null: not checked)")
        else:
            for index, memory in enumerate(device_memory_gb):
                fit = int(memory // memory_per_job_gb)
                if k > fit:
                    where = "the CPU's RAM" if not gpu else f"GPU {devices[index] if devices else index}"
                    problems.append(f"hydra.launcher.jobs_per_device={k}: {k} jobs of {memory_per_job_gb:g} GB "
                                    f"need {k * memory_per_job_gb:g} GB; {where} has {memory:.0f} GB, so at "
                                    f"most {fit} fit")
                    break
    return problems


def device_plan(jobs_per_device: object, devices: Sequence[int] | None = None, *, gpu: bool,
                memory_per_job_gb: float | None = None) -> DevicePlan:
    """The plan for this machine (GPUs counted here), or :class:`DevicePlanError` with every problem."""
    visible = visible_gpus() if gpu else 0
    planned: tuple[int | None, ...] = tuple(devices) if devices is not None else (
        tuple(range(visible)) if gpu else (CPU,))
    memory: list[float] = []
    if memory_per_job_gb is not None:
        memory = [gpu_memory_gb(d) for d in planned if d is not None and 0 <= d < visible] if gpu else [ram_gb()]
    problems = plan_problems(jobs_per_device, devices, gpu=gpu, visible=visible, cores=os.cpu_count() or 1,
                             memory_per_job_gb=memory_per_job_gb, device_memory_gb=memory)
    if problems:
        raise DevicePlanError(problems)
    return DevicePlan(planned, int(jobs_per_device))


def slots_dir(cache_root: Path) -> Path:
    """Where a machine's slot locks live: per host, so a cache on shared storage does not pool two machines' GPUs."""
    return cache_root / "device_slots" / socket.gethostname()


@contextmanager
def lease(plan: DevicePlan, directory: Path, poll_seconds: float = 0.5) -> Iterator[Slot]:
    """Hold the first free slot of ``plan`` (in :meth:`DevicePlan.slots` order) until the block ends; when every
    slot is held (another sweep on this machine), wait for one."""
    directory.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        for slot in plan.slots():
            lock = FileLock(str(directory / slot.lock_name))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue
            try:
                yield slot
            finally:
                lock.release()
            return
        if not waited:
            log.info("all %d device slots on this machine are held (another sweep?); waiting for one",
                     plan.concurrency)
            waited = True
        time.sleep(poll_seconds)


def trains_on_gpu(accelerator: str) -> bool:
    """Whether the job's Trainer runs on a CUDA GPU (``trainer.accelerator``: ``gpu``, or ``auto`` with one
    visible)."""
    accelerator = str(accelerator)
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and visible_gpus() > 0)


@contextmanager
def shared_device(job: JobPlan, launcher: DictConfig | None) -> Iterator[JobPlan]:
    """The job's plan on the device slot it holds for its run, when its sweep runs under
    ``hydra/launcher=shared_gpu`` (``launcher``: the job's ``hydra.launcher``); otherwise ``job`` unchanged.

    The placed plan trains on the slot's GPU (``trainer.devices=[i]``; Lightning then sets the CUDA device) with
    the job's share of the CPU threads (``num_threads``, unless set). Its config hash was taken before (the slot
    changes where a job runs, not what it computes), so a re-run under any launcher finds it finished."""
    k = None if launcher is None else launcher.get("jobs_per_device")
    if k is None:
        yield job
        return
    gpu = trains_on_gpu(job.trainer["accelerator"])
    trainer_devices = job.trainer.get("devices")
    if gpu and str(trainer_devices) != "1":
        raise DevicePlanError([f"trainer.devices={trainer_devices}: a job shares one device with others "
                               "here, so it trains on one (trainer=gpu); trainer=ddp spans devices"])
    devices = launcher.get("devices")
    plan = device_plan(k, None if devices is None else list(devices), gpu=gpu)
    from xcal.assets.cache import cache_dir

    with lease(plan, slots_dir(cache_dir(job.paths.cache_dir))) as slot:
        threads = int(job.num_threads or plan.threads_per_job())
        print(f"[xcal] device slot {slot.device_name} place {slot.place} ({k} jobs per device, {plan.concurrency} "
              f"at once), {threads} CPU threads", flush=True)
        yield job.placed(threads, [slot.device] if gpu else None)
