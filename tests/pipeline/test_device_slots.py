"""Several jobs to one device (``hydra/launcher=shared_gpu``): the round-robin slot layout, leases that cap each
device at k jobs and hand a freed slot to the next job, each job's device and thread share, one message for a bad
setting before any job, and a real 2-job sweep on the CPU whose jobs run at once and train one stage-1 encoder."""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from test_sweeps import results, tiny_overrides, xcal

from xcal.pipeline import device_slots
from xcal.pipeline.app import CONFIG_DIR
from xcal.pipeline.device_slots import DevicePlan, DevicePlanError, Slot, lease, plan_problems, shared_device
from xcal.pipeline.launchers import launcher_problem
from xcal.pipeline.plan import plan_job


def test_slots_go_round_robin_over_the_devices() -> None:
    plan = DevicePlan((0, 1), 3)
    assert plan.concurrency == 6
    assert [(s.device, s.place) for s in plan.slots()] == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
    assert plan.slots()[3].lock_name == "cuda1-1.lock" and plan.slots()[3].device_name == "cuda:1"
    assert plan.threads_per_job(16) == 2 and plan.threads_per_job(4) == 1  # never 0
    cpu = DevicePlan((None,), 2)
    assert [s.lock_name for s in cpu.slots()] == ["cpu-0.lock", "cpu-1.lock"]
    assert cpu.threads_per_job(2) == 1 and cpu.slots()[0].device_name == "cpu"


def test_a_plan_on_this_machine_without_a_gpu_shares_the_cpu(monkeypatch) -> None:
    monkeypatch.setattr(device_slots, "visible_gpus", lambda: 0)
    plan = device_slots.device_plan(2, gpu=False)
    assert plan == DevicePlan((None,), 2)
    monkeypatch.setattr(device_slots, "visible_gpus", lambda: 2)
    assert device_slots.device_plan(3, gpu=True) == DevicePlan((0, 1), 3)
    assert device_slots.device_plan(3, [1], gpu=True) == DevicePlan((1,), 3)


@pytest.mark.parametrize(("setting", "message"), [
    (dict(jobs_per_device=0), "hydra.launcher.jobs_per_device=0: must be a whole number >= 1"),
    (dict(jobs_per_device=1.5), "hydra.launcher.jobs_per_device=1.5: must be a whole number >= 1"),
    (dict(jobs_per_device="4"), "hydra.launcher.jobs_per_device='4': must be a whole number >= 1"),
    (dict(jobs_per_device=2, visible=0), "the jobs train on a GPU (trainer.accelerator=gpu) but this machine sees "
                                         "none"),
    (dict(jobs_per_device=2, devices=[0, 2]), "hydra.launcher.devices=[0, 2]: each must be a distinct visible GPU "
                                              "index; this machine sees 2 GPUs (0-1)"),
    (dict(jobs_per_device=2, devices=[1, 1]), "hydra.launcher.devices=[1, 1]: each must be a distinct visible GPU"),
    (dict(jobs_per_device=8, memory_per_job_gb=20, device_memory_gb=[143.8, 143.8]),
     "hydra.launcher.jobs_per_device=8: 8 jobs of 20 GB need 160 GB; GPU 0 has 144 GB, so at most 7 fit"),
    (dict(jobs_per_device=3, gpu=False), "hydra.launcher.jobs_per_device=3: 3 jobs on the CPU need at least a core "
                                         "each; this machine has 2 cores"),
    (dict(jobs_per_device=2, gpu=False, devices=[0]), "hydra.launcher.devices=[0] names GPUs, but the jobs run on "
                                                      "the CPU"),
])
def test_each_bad_setting_is_named_with_its_fix(setting: dict, message: str) -> None:
    args = {"devices": None, "gpu": True, "visible": 2, "cores": 2, **setting}
    problems = plan_problems(args.pop("jobs_per_device"), args.pop("devices"), **args)
    assert len(problems) == 1 and problems[0].startswith(message), problems


def test_every_problem_comes_in_one_message() -> None:
    problems = plan_problems(0, [5], gpu=True, visible=1, cores=16)
    assert len(problems) == 2
    assert str(DevicePlanError(problems)).startswith("hydra/launcher=shared_gpu has 2 problems (no job was started):")
    assert plan_problems(4, None, gpu=True, visible=1, cores=16, memory_per_job_gb=30, device_memory_gb=[143.8]) == []


def test_leases_cap_each_device_and_a_freed_slot_goes_to_the_next_job(tmp_path: Path) -> None:
    plan = DevicePlan((0, 1), 2)
    jobs = [ExitStack() for _ in range(4)]
    slots = [job.enter_context(lease(plan, tmp_path)) for job in jobs]
    assert [(s.device, s.place) for s in slots] == [(0, 0), (1, 0), (0, 1), (1, 1)]

    # a fifth job finds every slot held and waits (it says so: the event observed); it gets the slot freed next
    all_held, got = threading.Event(), []

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "all 4 device slots on this machine are held" in record.getMessage():
                all_held.set()

    def fifth() -> None:
        with lease(plan, tmp_path, poll_seconds=0.05) as slot:
            got.append(slot)

    handler, level = Seen(), device_slots.log.level
    device_slots.log.addHandler(handler)
    device_slots.log.setLevel(logging.INFO)
    try:
        waiter = threading.Thread(target=fifth)
        waiter.start()
        assert all_held.wait(60), "the fifth lease never found every slot held"
        assert got == []
        jobs[3].close()  # GPU 1's second place ends
        waiter.join(60)
    finally:
        device_slots.log.removeHandler(handler)
        device_slots.log.setLevel(level)
        for job in jobs:
            job.close()
    assert got == [Slot(1, 1)]


def test_a_freed_slot_is_reused_before_a_later_one(tmp_path: Path) -> None:
    plan = DevicePlan((0, 1), 2)
    with lease(plan, tmp_path) as first, lease(plan, tmp_path) as second:
        with lease(plan, tmp_path) as third:
            assert (first.device, second.device, third.device) == (0, 1, 0)
        with lease(plan, tmp_path) as again:  # the third's slot, not GPU 1's second place
            assert again == third


def job_plan(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return plan_job(compose("config", overrides=["paths.output_dir=/tmp/x", *overrides]))


def test_a_job_without_the_shared_launcher_is_untouched(tmp_path: Path) -> None:
    plan = job_plan(f"paths.cache_dir={tmp_path}")
    with shared_device(plan, OmegaConf.create({"_target_": "hydra._internal.core_plugins.basic_launcher"})) as job:
        assert job is plan


def test_gpu_jobs_get_their_slots_device_and_a_thread_share(tmp_path: Path, monkeypatch) -> None:
    """No GPU needed: the device index goes into the job's Trainer config (Lightning sets the CUDA device)."""
    monkeypatch.setattr(device_slots, "visible_gpus", lambda: 2)
    monkeypatch.setattr(device_slots.os, "cpu_count", lambda: 16)
    launcher = OmegaConf.create({"jobs_per_device": 2, "devices": None})
    plan = job_plan("trainer=gpu", f"paths.cache_dir={tmp_path}")
    with shared_device(plan, launcher) as a, shared_device(plan, launcher) as b, shared_device(plan, launcher) as c:
        assert [j.trainer["devices"] for j in (a, b, c)] == [[0], [1], [0]]
        assert [j.config["trainer"]["devices"] for j in (a, b, c)] == [[0], [1], [0]]  # as results.json records
        assert a.num_threads == 4 and a.config["num_threads"] == 4  # 16 cores over 2 x 2 jobs
        assert a.hashes == plan.hashes  # the composed config's hash
        assert plan.trainer["devices"] == 1 and plan.num_threads is None  # the composed job's plan is unchanged
    assert sorted(p.name for p in (tmp_path / "device_slots").glob("*/*.lock")) == [
        "cuda0-0.lock", "cuda0-1.lock", "cuda1-0.lock"]
    pinned = job_plan("trainer=gpu", f"paths.cache_dir={tmp_path}", "num_threads=3")
    with shared_device(pinned, OmegaConf.create({"jobs_per_device": 2, "devices": [1]})) as job:
        assert job.trainer["devices"] == [1] and job.num_threads == 3
    ddp = job_plan("trainer=ddp", f"paths.cache_dir={tmp_path}")
    with pytest.raises(DevicePlanError, match=r"trainer.devices=-1: a job shares one device with others here"), \
            shared_device(ddp, launcher):
        pass


def test_the_launcher_config_composes_and_names_its_plugin() -> None:
    assert launcher_problem("shared_gpu") is None  # hydra-joblib-launcher is installed
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=shared_gpu", "hydra.launcher.jobs_per_device=3"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.xcal_launchers.shared_gpu_launcher.SharedGpuLauncher"
    assert launcher.jobs_per_device == 3 and launcher.devices is None and launcher.batch_size == 1


@pytest.mark.slow
def test_a_bad_k_is_one_message_before_any_job(tiny_xlmr_dir, embedded_assets, tmp_path) -> None:
    proc = xcal("-m", *tiny_overrides(tiny_xlmr_dir, tmp_path / "encoders"), "sweep_name=bad_k", "logger=csv",
                "seed=0,1", "hydra/launcher=shared_gpu", "hydra.launcher.jobs_per_device=0", cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "xcal: error: hydra/launcher=shared_gpu has 1 problem (no job was started):\n  - " \
           "hydra.launcher.jobs_per_device=0: must be a whole number >= 1" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "multirun" / "bad_k").glob("*/results.json"))


@pytest.mark.slow
def test_two_jobs_share_the_cpu_at_once_and_train_one_stage1_encoder(tiny_xlmr_dir, embedded_assets,
                                                                     tmp_path) -> None:
    """Two target variants of one stage-1 setting under the shared launcher (k=2 on the CPU): each job holds its own
    slot, they run at the same time (one waits on the other's stage-1 training: the waiting is logged), and the
    encoder is trained once."""
    cache = tmp_path / "cache"
    proc = xcal("-m", *tiny_overrides(tiny_xlmr_dir, tmp_path / "encoders"), "sweep_name=shared", "logger=csv",
                f"paths.cache_dir={cache}", "intermediate.size=24", "target.lr=1e-3,2e-3",
                "hydra/launcher=shared_gpu", "hydra.launcher.jobs_per_device=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = results(tmp_path / "multirun" / "shared")
    assert len(found) == 2 and all(r["status"] == "ok" for r in found.values())
    assert sorted(r["intermediate"]["reused"] for r in found.values()) == [False, True]
    assert len(list((tmp_path / "encoders").glob("*/xcal_stage1.json"))) == 1
    assert proc.stdout.count("another job is training stage 1") == 1, proc.stdout[-3000:]  # they overlapped
    leased = sorted(line.split("[xcal] device slot ", 1)[1].split(" (")[0] for line in proc.stdout.splitlines()
                    if "[xcal] device slot " in line)
    assert leased == ["cpu place 0", "cpu place 1"], proc.stdout[-3000:]
    assert proc.stdout.count("(2 jobs per device, 2 at once), 1 CPU threads") == 2
    assert all(r["config"]["num_threads"] == 1 for r in found.values())  # the cores shared out, as recorded
    # the recorded hash is the composed config's: the same grid under the basic launcher finds both finished
    again = xcal("-m", *tiny_overrides(tiny_xlmr_dir, tmp_path / "encoders"), "sweep_name=shared", "logger=csv",
                 f"paths.cache_dir={cache}", "intermediate.size=24", "target.lr=1e-3,2e-3", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "every job of the grid (2) already finished with this config, skipped" in again.stdout
