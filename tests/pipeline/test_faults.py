"""Fault injection, for real: jobs killed with SIGKILL in each stage and run again, a stage-1 cache
file truncated, a diverging job inside a sweep, a write that fails with a full disk, a secret in the
environment. Every fault is counted, and so is every finished result lost (must be 0); the counts are
printed at the end of the test session."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import FAULTS
from xcal.atomic import atomic_write_json
from xcal.pipeline.stage1 import MARKER

XCAL = [sys.executable, "-m", "xcal.pipeline.app"]


def tiny(model: Path, encoders: Path, *extra: str) -> list[str]:
    return [f"model.name_or_path={model}", "model.pooling=cls", "intermediate=epistemic_reasoning",
            "intermediate.size=16", "intermediate.epochs=1", "intermediate.batch_size=8", "intermediate.val_size=8",
            "target.train_size=64", "target.epochs=1", "target.batch_size=8", "target.val_size=8",
            "target.eval_size=16", "target.languages=[en,de]", "target.eval_splits=[dev]", "calibration.bootstrap=10",
            "logger=csv", "trainer.enable_progress_bar=false", f"paths.encoder_cache_dir={encoders}", *extra]


def env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def xcal(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*XCAL, *args], cwd=cwd, env=env(), capture_output=True, text=True, timeout=900)


def run_here(args: list[str], out: Path) -> dict:
    """The job of ``args`` run in this process (Hydra's compose API, then :func:`xcal.pipeline.run.run`), as the
    command runs it, without an interpreter's start-up and imports: for the reference runs that no fault touches."""
    from hydra import compose, initialize_config_dir

    from xcal.pipeline.app import CONFIG_DIR
    from xcal.pipeline.plan import plan_job
    from xcal.pipeline.run import run

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[*args, f"paths.output_dir={out}"])
    run(plan_job(cfg), out)
    record = json.loads((out / "results.json").read_text())  # as the other runs are read: from the file
    assert record["status"] == "ok", record.get("error")
    return record


def metrics(path: Path) -> dict:
    record = json.loads(path.read_text())
    assert record["status"] == "ok", record.get("error")
    return record["zeroshot"]


def kill_on(args: list[str], cwd: Path, event: Callable[[], Path | None], deadline_s: float = 600.0) -> Path:
    """Start the job of ``args`` as a command and SIGKILL it the moment ``event`` finds the file that shows the job
    is where the fault belongs; returns that file. The test fails, rather than passing untested, when the job ends
    before the file appears, when the file never comes, or when the job had already exited at the kill."""
    proc = subprocess.Popen([*XCAL, *args], cwd=cwd, env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + deadline_s
        while (found := event()) is None:
            assert proc.poll() is None, f"the job ended (exit {proc.returncode}) before the event: no fault injected"
            assert time.monotonic() < deadline, f"no event in {deadline_s:.0f} s: no fault injected"
            time.sleep(0.005)
        with contextlib.suppress(ProcessLookupError):  # already gone: the return code below says so
            os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:  # a failed wait must not leave the job running
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the job exited ({proc.returncode}) before the kill: no fault injected"
    FAULTS["injected"] += 1
    return found


def first(directory: Path, pattern: str) -> Path | None:
    return next(directory.glob(pattern), None)


# Where each kill lands, and the file whose appearance shows the job is there: stage 1's and stage 2's mid-stage
# checkpoints (``checkpoint.every_n_steps=1``: written after the first step of each), and the first reliability
# diagram of the evaluation (written after the first language's metrics, before the others and results.json).
KILL_POINTS: dict[str, Callable[[Path, Path], Path | None]] = {
    "intermediate": lambda job, encoders: first(encoders, "*.checkpoints/last.ckpt"),
    "target": lambda job, encoders: first(job, "checkpoints/target/last.ckpt"),
    "evaluation": lambda job, encoders: first(job, "plots/reliability_*.png"),
}
EVERY_STEP = "checkpoint.every_n_steps=1"


@pytest.fixture(scope="module")
def uninterrupted(tiny_xlmr_dir, embedded_assets, tmp_path_factory) -> dict:
    """The record of the killed jobs' settings run once, never interrupted."""
    out = tmp_path_factory.mktemp("uninterrupted")
    return run_here(tiny(tiny_xlmr_dir, out / "encoders", EVERY_STEP), out / "job")


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_in_each_stage_then_run_again(point: str, uninterrupted: dict, tiny_xlmr_dir, tmp_path) -> None:
    """Killed in stage 1, stage 2 or the evaluation, a job run again resumes the killed stage's checkpoint (the
    evaluation has none: stage 2 runs again) and finishes with the numbers of a job that was never interrupted;
    no partial results.json and no incomplete cache entry is ever read. (The runs again are in-process; the resume
    test below runs its job again as a command.)"""
    job, encoders = tmp_path / "job", tmp_path / "encoders"
    args = tiny(tiny_xlmr_dir, encoders, EVERY_STEP)
    seen = kill_on([*args, f"hydra.run.dir={job}"], tmp_path, lambda: KILL_POINTS[point](job, encoders))

    # The kill landed where it was meant to: the killed stage had not finished, and no result was written.
    assert not (job / "results.json").exists(), "the kill came after the job had written its results"
    markers = list(encoders.glob(f"*/{MARKER}"))  # a complete stage-1 entry
    assert len(markers) == (0 if point == "intermediate" else 1), f"stage-1 entries at the kill: {markers}"
    if point == "evaluation":
        assert not (job / "checkpoints" / "target").exists()  # stage 2 had finished
    for entry in encoders.glob("*-*"):
        if entry.is_dir() and not entry.name.endswith((".tmp", ".checkpoints")):
            assert (entry / MARKER).is_file()  # complete, or not there at all

    record = run_here(args, job)  # run again
    stage1, stage2 = record["intermediate"], record["target"]
    assert stage1["reused"] is (point != "intermediate")
    assert stage1["resumed_from"] == (str(seen) if point == "intermediate" else None)
    assert stage2["resumed_from"] == (str(seen) if point == "target" else None)
    same = all(record[key] == uninterrupted[key] for key in ("zeroshot", "temperature"))
    if not same:
        FAULTS["results_lost"] += 1
    assert record["zeroshot"] == uninterrupted["zeroshot"]
    assert record["temperature"] == uninterrupted["temperature"]


@pytest.mark.slow
def test_a_resume_from_a_mid_training_checkpoint_is_bit_identical(tiny_xlmr_dir, embedded_assets, tmp_path) -> None:
    """Killed right after a checkpoint in the second epoch of stage 2, the job resumes from it (same batch
    order, same dropout masks) and ends with exactly the numbers of a job that was never interrupted."""
    two_epochs = ["target.epochs=2"]
    expected = run_here(tiny(tiny_xlmr_dir, tmp_path / "encoders", *two_epochs), tmp_path / "reference")

    job = tmp_path / "job"
    # 64 sentences / batch 8 = 8 steps an epoch: step 10 is the second batch of the second epoch.
    args = [*tiny(tiny_xlmr_dir, tmp_path / "encoders", *two_epochs, "checkpoint.every_n_steps=10"),
            f"hydra.run.dir={job}"]
    checkpoint = job / "checkpoints" / "target" / "last.ckpt"
    kill_on(args, tmp_path, lambda: checkpoint if checkpoint.exists() else None)
    assert not (job / "results.json").exists()

    again = xcal(args, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    got = json.loads((job / "results.json").read_text())
    assert got["target"]["resumed_from"] == str(checkpoint) and got["target"]["steps"] == 16
    assert not checkpoint.parent.exists()  # a finished stage leaves no checkpoint behind
    same = all(got[key] == expected[key] for key in ("zeroshot", "temperature"))
    if not same:
        FAULTS["results_lost"] += 1
    assert got["zeroshot"] == expected["zeroshot"]
    assert got["temperature"] == expected["temperature"]
    dev = {k: v for k, v in got["target"].items() if k.startswith("val")}
    assert dev and dev == {k: v for k, v in expected["target"].items() if k.startswith("val")}


@pytest.mark.slow
def test_truncated_cache_entry_is_detected_and_rebuilt(tiny_xlmr_dir, embedded_assets, tmp_path, caplog) -> None:
    run_here(tiny(tiny_xlmr_dir, tmp_path / "encoders"), tmp_path / "a")
    [entry] = [p for p in (tmp_path / "encoders").iterdir() if p.is_dir()]
    weights = entry / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    FAULTS["injected"] += 1
    with caplog.at_level(logging.WARNING, logger="xcal.pipeline.stage1"):
        record = run_here(tiny(tiny_xlmr_dir, tmp_path / "encoders", "target.lr=1e-4"), tmp_path / "b")
    assert record["intermediate"]["reused"] is False  # rebuilt, not read
    assert "stage-1 cache entry rebuilt" in caplog.text
    from xcal.pipeline.stage1 import verify

    assert verify(entry) is None
    if metrics(tmp_path / "a" / "results.json") is None:
        FAULTS["results_lost"] += 1


@pytest.mark.slow
def test_a_diverging_job_fails_alone_and_the_sweep_goes_on(tiny_xlmr_dir, embedded_assets, tmp_path) -> None:
    proc = xcal(["-m", *tiny(tiny_xlmr_dir, tmp_path / "encoders"), "sweep_name=faulty", "intermediate.size=0",
                 "target.lr=5e-5,1e12", "calibration.label_smoothing=0.0"], tmp_path)
    FAULTS["injected"] += 1
    assert proc.returncode == 1
    records = {p.parent.name: json.loads(p.read_text())
               for p in (tmp_path / "multirun" / "faulty").glob("*/results.json")}
    assert sorted(r["status"] for r in records.values()) == ["failed", "ok"]
    failed = next(r for r in records.values() if r["status"] == "failed")
    assert failed["error"].startswith("FloatingPointError: target loss is")
    assert "1 job of the sweep failed" in proc.stderr
    assert failed["config"]["target"]["lr"] == 1e12
    # the report of a sweep lists it (and still reports the good job)
    from xcal.pipeline.grid import failed_jobs

    assert [name for name, _ in failed_jobs(tmp_path / "multirun" / "faulty")] == [
        n for n, r in records.items() if r["status"] == "failed"]


@pytest.mark.slow
def test_a_job_out_of_memory_fails_alone_and_the_report_lists_it(embedded_assets, tmp_path) -> None:
    """A real allocation failure: the sweep runs under an 8 GB address-space limit (a normal job of the
    embedded model peaks near 5 GB of address space here); the batch-512 job cannot get its activations."""
    limit = 8 * 1024**3

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    # The batch-16 job stops after 4 steps: it only has to finish beside the one that cannot allocate.
    args = ["-m", "sweep_name=oom", "intermediate.size=0", "target.train_size=512", "target.batch_size=16,512",
            "target.epochs=1", "trainer.max_steps=4", "target.val_size=0", "target.eval_size=16",
            "target.languages=[en]", "target.eval_splits=[dev]", "calibration.bootstrap=10", "logger=csv",
            "trainer.enable_progress_bar=false"]
    proc = subprocess.run([*XCAL, *args], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=900,
                          preexec_fn=cap_memory)
    FAULTS["injected"] += 1
    assert proc.returncode == 1, proc.stderr[-3000:]
    records = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "multirun" / "oom").glob("*/results.json")}
    by_batch = {r["config"]["target"]["batch_size"]: r for r in records.values()}
    if by_batch[16]["status"] != "ok":
        FAULTS["results_lost"] += 1
    assert by_batch[16]["status"] == "ok" and by_batch[16]["zeroshot"]["en"]["dev"]["n"] == 16
    assert by_batch[512]["status"] == "failed"
    error = by_batch[512]["error"]
    # The first allocation to fail is torch's CPU allocator (RuntimeError) or, in data loading, numpy's
    # (MemoryError); both are named as out of memory, with what to lower.
    assert error.startswith(("out of memory (RuntimeError:", "out of memory (MemoryError:")), error
    assert "target.batch_size" in error
    report = subprocess.run([sys.executable, "-m", "xcal.report.cli", str(tmp_path / "multirun" / "oom")],
                            cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=600)
    failed_name = next(n for n, r in records.items() if r["status"] == "failed")
    assert failed_name in report.stderr and "out of memory" in report.stderr


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path, monkeypatch) -> None:
    target = tmp_path / "results.json"
    atomic_write_json(target, {"status": "ok", "ece": 0.1})

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        atomic_write_json(target, {"status": "ok", "ece": 0.2})
    FAULTS["injected"] += 1
    assert json.loads(target.read_text()) == {"status": "ok", "ece": 0.1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp file left behind


@pytest.mark.slow
def test_same_seed_same_numbers_and_no_secret_in_any_output(tiny_xlmr_dir, embedded_assets, tmp_path, monkeypatch,
                                                             capfd) -> None:
    """Determinism on CPU (two runs, bit for bit: one in this process, one a fresh command) and an API key in
    the environment reaches no output and no file of either."""
    secret = "wandb-key-0123456789abcdef0123456789abcdef"
    monkeypatch.setenv("WANDB_API_KEY", secret)
    monkeypatch.setenv("WANDB_MODE", "offline")
    args = tiny(tiny_xlmr_dir, tmp_path / "enc-one", "logger=default")
    one = run_here(args, tmp_path / "one")
    assert sys.modules["wandb"].run is None  # the job's W&B run ended with it: the next one in this process is new
    proc = subprocess.run([*XCAL, *args, f"hydra.run.dir={tmp_path / 'two'}"], cwd=tmp_path, env=env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    here = capfd.readouterr()
    assert secret not in here.out + here.err + proc.stdout + proc.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert list((tmp_path / "two" / "wandb").glob("offline-run-*/run-*.wandb"))  # W&B saw the environment
    assert one["zeroshot"] == two["zeroshot"] and one["temperature"] == two["temperature"]


def test_a_second_job_on_the_same_output_directory_stops_at_once(tmp_path) -> None:
    from filelock import FileLock

    from xcal.pipeline.run import JobBusyError, run

    held = FileLock(str(tmp_path / ".xcal.lock"))
    held.acquire()
    FAULTS["injected"] += 1
    with pytest.raises(JobBusyError, match="another xcal job is running in"):
        run(None, tmp_path)  # refused before the plan is even read
    held.release()
    assert not (tmp_path / "results.json").exists()
