"""Sweeps for real: small grids through the joblib, submitit_local and Ray launchers, the stage-1 cache
shared by concurrent jobs, re-runs that skip finished jobs, a killed job resuming from its checkpoint,
W&B offline run files, and grids refused whole before their first job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock, Timeout
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from wandb_records import read_offline_run
from xcal.pipeline.app import CONFIG_DIR, job_name
from xcal.pipeline.grid import grid_overrides, grid_problems
from xcal.pipeline.launchers import LAUNCHERS, launcher_problem, requested_launcher
from xcal.pipeline.resume import config_hash, finished_record, keep_previous_result

XCAL = [sys.executable, "-m", "xcal.pipeline.app"]


def tiny_overrides(model: Path, encoders: Path) -> list[str]:
    """The embedded data at small sizes on a 2-layer model: a job takes seconds."""
    return [
        f"model.name_or_path={model}", "model.pooling=cls", "intermediate=epistemic_reasoning",
        "intermediate.epochs=1", "intermediate.batch_size=8", "intermediate.val_size=8", "target.train_size=32",
        "target.epochs=1", "target.batch_size=8", "target.val_size=8", "target.eval_size=16",
        "target.languages=[en,de]", "target.eval_splits=[dev]", "calibration.bootstrap=10",
        "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1", f"paths.encoder_cache_dir={encoders}",
    ]


def xcal(*args: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "1"}
    return subprocess.run([*XCAL, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def results(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep.glob("*/results.json"))}


def check_grid(sweep: Path, sizes: tuple[int, ...], seeds: tuple[int, ...]) -> dict[str, dict]:
    found = results(sweep)
    assert len(found) == len(sizes) * len(seeds), sorted(found)
    for size in sizes:
        for seed in seeds:
            [name] = [n for n in found if n.startswith(f"epistemic_reasoning-{size}_multiemo_seed{seed},")]
            record = found[name]
            assert record["status"] == "ok"
            assert record["config"]["intermediate"]["size"] == size and record["config"]["seed"] == seed
            assert set(record["zeroshot"]) == {"en", "de"}
            assert record["intermediate"]["skipped"] is (size == 0)
    return found


@pytest.mark.slow
def test_joblib_grid_wandb_files_and_a_rerun_that_trains_nothing(tiny_xlmr_dir, embedded_assets, tmp_path) -> None:
    grid = ["-m", *tiny_overrides(tiny_xlmr_dir, tmp_path / "encoders"), "sweep_name=grid", "logger=default",
            "intermediate.size=0,16", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    proc = xcal(*grid, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = tmp_path / "multirun" / "grid"
    found = check_grid(sweep, (0, 16), (0, 1))
    assert len(list((tmp_path / "encoders").glob("epistemic_reasoning-16-*/xcal_stage1.json"))) == 2  # 2 seeds

    # W&B: one offline run per job, grouped by sweep, named by its coordinates, with config and metrics.
    for name, record in found.items():
        [run_file] = (sweep / name / "wandb").glob("offline-run-*/run-*.wandb")
        run = read_offline_run(run_file)
        assert run.group == "grid" and run.name == name
        size = record["config"]["intermediate"]["size"]
        assert run.job_type == ("target" if size == 0 else "intermediate+target")
        assert run.config["intermediate"]["size"] == size and run.config["seed"] == record["config"]["seed"]
        keys = run.logged_keys
        assert {"zeroshot/de/ece", "zeroshot/en/accuracy", "zeroshot/de/ece/temperature", "target/train_loss",
                "target/val_acc"} <= keys
        # the per-language summary table and the reliability diagrams, as W&B media
        assert {"zeroshot/table/_type", "zeroshot/table/nrows", "reliability/de/dev/_type"} <= keys
        assert ("intermediate/train_loss" in keys) is (size > 0)
        logged = next(row["zeroshot/de/ece"] for row in run.history if "zeroshot/de/ece" in row)
        assert logged == pytest.approx(record["zeroshot"]["de"]["dev"]["ece"])

    # The same command again: every job is found finished by the grid check, nothing is launched or rewritten.
    stamps = {p: p.stat().st_mtime_ns for p in sweep.glob("*/results.json")}
    wandb_runs = sorted(sweep.glob("*/wandb/offline-run-*"))  # a job that runs starts one more
    assert len(wandb_runs) == 4
    for config in sweep.glob("*/.hydra/config.yaml"):  # as an older xcal, with other keys, recorded it
        config.write_text("# recorded by an older xcal\n" + config.read_text())
    hydra_files = {p: p.read_bytes() for p in sweep.glob("*/.hydra/*")}
    again = xcal(*grid, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "every job of the grid (4) already finished with this config, skipped" in again.stdout
    assert "already finished, skipped" not in again.stdout and "done in" not in again.stdout  # none launched
    assert {p: p.read_bytes() for p in hydra_files} == hydra_files
    # Launched all the same (as in a partly finished grid), each job finds itself finished and skips.
    each = xcal(*grid, "~hydra.callbacks.validate_grid", cwd=tmp_path)
    assert each.returncode == 0, each.stderr[-3000:]
    assert each.stdout.count("already finished, skipped") == 4 and "done in" not in each.stdout
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert {p: p.read_bytes() for p in hydra_files} == hydra_files  # .hydra/ put back as it was
    assert sorted(sweep.glob("*/wandb/offline-run-*")) == wandb_runs  # no job ran
    assert len(list((tmp_path / "encoders").glob("*/xcal_stage1.json"))) == 2  # no stage 1 trained


@pytest.mark.slow
def test_concurrent_jobs_on_one_stage1_key_train_it_once(tiny_xlmr_dir, embedded_assets, tmp_path) -> None:
    """Two target variants of one stage-1 setting run at the same time: one trains, the other waits and reuses."""
    proc = xcal("-m", *tiny_overrides(tiny_xlmr_dir, tmp_path / "encoders"), "sweep_name=shared", "logger=csv",
                "intermediate.size=24", "target.lr=1e-3,2e-3", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = results(tmp_path / "multirun" / "shared")
    assert len(found) == 2
    assert sorted(r["intermediate"]["reused"] for r in found.values()) == [False, True]
    assert len({r["intermediate"]["cache_dir"] for r in found.values()}) == 1
    assert len(list((tmp_path / "encoders").iterdir())) == 2  # the entry and its lock file


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["submitit_local", "ray"])
def test_grid_through_cluster_launchers(launcher, tiny_xlmr_dir, embedded_assets, tmp_path) -> None:
    extra = ["hydra.launcher.timeout_min=20"] if launcher == "submitit_local" else [
        "+hydra.launcher.ray.init.num_cpus=2", "+hydra.launcher.ray.remote.num_cpus=1"]
    proc = xcal("-m", *tiny_overrides(tiny_xlmr_dir, tmp_path / "encoders"), "sweep_name=cluster", "logger=csv",
                "intermediate.size=0,16", "seed=3", f"hydra/launcher={launcher}", *extra, cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    check_grid(tmp_path / "multirun" / "cluster", (0, 16), (3,))


@pytest.mark.slow
def test_bad_grid_is_refused_whole_before_any_job(tiny_xlmr_dir, embedded_assets, tmp_path) -> None:
    base = [*tiny_overrides(tiny_xlmr_dir, tmp_path / "encoders"), "sweep_name=bad", "logger=csv"]
    # an unknown task is caught on the command line, before Hydra composes anything
    proc = xcal("-m", *base, "intermediate=epistemic_reasoning,nosuch_task", "seed=0,1", cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "intermediate=nosuch_task: no such option in conf/intermediate/" in proc.stderr
    # a size beyond the data: every job of the grid is composed and checked, and every offending one listed
    proc = xcal("-m", *base, "intermediate=epistemic_reasoning,presuppositions_as_nli", "intermediate.size=16,1000",
                "seed=0,1", cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    message = proc.stderr
    assert "none was started" in message and "of 8 jobs" in message
    assert message.count("- intermediate=presuppositions_as_nli,intermediate.size=1000,seed=") == 2
    assert message.count("intermediate.size=1000 exceeds the 648 English training examples") == 2
    assert "epistemic_reasoning" not in message  # its 1790 examples hold every size
    assert not list((tmp_path / "multirun" / "bad").glob("*/results.json"))


def test_the_grid_check_leaves_out_the_data_of_finished_jobs(embedded_assets, tmp_path) -> None:
    """The launcher skips a finished job, so the grid check does not load its data: re-running a finished
    sweep imports no training stack. The same job unfinished is checked and refused."""
    overrides = ["intermediate=presuppositions_as_nli", "intermediate.size=1000", "seed=0",
                 f"hydra.sweep.dir={tmp_path}"]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        config = compose("config", overrides=overrides, return_hydra_config=True)
        problems, jobs, finished = grid_problems(config)
        assert jobs == 1 and finished == 0 and len(problems) == 1
        assert "intermediate.size=1000 exceeds the 648 English training examples" in problems[0]

        [job_overrides] = grid_overrides(config)
        job = GlobalHydra.instance().config_loader().load_sweep_config(config, job_overrides)
        job_dir = tmp_path / job.hydra.sweep.subdir
        job_dir.mkdir()
        (job_dir / "results.json").write_text(json.dumps({"status": "ok", "config_hash": config_hash(job)}))
        assert grid_problems(config) == ([], 1, 1)


def test_a_crashed_lock_holder_does_not_block(tmp_path) -> None:
    """Stage-1 jobs serialise on an OS file lock; the kernel releases it when its holder is killed."""
    lock = tmp_path / "entry.lock"
    script = (f"from filelock import FileLock; import time; held = FileLock({str(lock)!r}); held.acquire(); "
              "print('held', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(Timeout):
        FileLock(str(lock)).acquire(timeout=0.2)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with FileLock(str(lock), timeout=0):  # one attempt, no waiting: the kernel released it with its holder
        pass


def compose_job(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=["paths.output_dir=/tmp/x", *overrides])


def test_config_hash_ignores_where_and_how_a_job_reports() -> None:
    base = config_hash(compose_job())
    assert config_hash(compose_job("logger=csv", "paths.output_dir=/elsewhere", "tags=[a]",
                                   "sweep_name=other", "trainer.enable_progress_bar=false")) == base
    for change in ("seed=1", "intermediate.size=2000", "target.lr=1e-5", "calibration.n_bins=10"):
        assert config_hash(compose_job(change)) != base, change


def test_finished_results_are_found_and_never_overwritten_by_another_config(tmp_path) -> None:
    cfg, other = compose_job(), compose_job("seed=7")
    (tmp_path / "results.json").write_text(json.dumps({"status": "ok", "config_hash": config_hash(cfg)}))
    assert finished_record(tmp_path, cfg)["status"] == "ok"
    assert finished_record(tmp_path, other) is None
    kept = keep_previous_result(tmp_path, config_hash(other))
    assert kept == tmp_path / f"results.{config_hash(cfg)}.json" and kept.is_file()
    assert not (tmp_path / "results.json").exists()
    (tmp_path / "results.json").write_text(json.dumps({"status": "failed", "config_hash": "x"}))
    assert finished_record(tmp_path, cfg) is None and keep_previous_result(tmp_path, "y") is None


def test_a_result_recorded_under_a_retired_key_with_the_kept_behaviour_stays_finished(tmp_path) -> None:
    """``model.fast_dropout`` is gone; results recorded with ``false`` (torch's dropout, what remains) ran the same
    computation, so re-running their sweep skips them; ``true`` (the removed masks) did not, so it runs again."""
    from omegaconf import open_dict

    cfg = compose_job()
    for recorded, finished in ((False, True), (True, False)):
        legacy = compose_job()
        with open_dict(legacy):
            legacy.model.fast_dropout = recorded
        assert config_hash(legacy) != config_hash(cfg)
        (tmp_path / "results.json").write_text(json.dumps({"status": "ok", "config_hash": config_hash(legacy)}))
        assert (finished_record(tmp_path, cfg) is not None) is finished, recorded


def test_a_rerun_puts_back_the_hydra_files_of_jobs_it_skipped_and_keeps_those_of_jobs_it_ran(tmp_path) -> None:
    """Hydra rewrites every job's .hydra/ before the job starts; a committed study must not change when its
    command is re-run, while a job that ran again must keep the record of the config it ran with."""
    from omegaconf import OmegaConf

    from xcal.pipeline.resume import KeepFinishedJobs

    jobs = {name: tmp_path / name for name in ("skipped", "ran_again", "failed")}
    for name, job in jobs.items():
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "config.yaml").write_text(f"recorded: {name}\n")
        (job / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
        status = "failed" if name == "failed" else "ok"
        (job / "results.json").write_text(json.dumps({"status": status, "config_hash": "h"}))
    keep = KeepFinishedJobs()
    sweep = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}, "output_subdir": ".hydra"}})
    keep.on_multirun_start(sweep)
    for job in jobs.values():  # what Hydra does before each job starts
        (job / ".hydra" / "config.yaml").write_text("recorded: today\n")
        (job / ".hydra" / "hydra.yaml").write_text("hydra: {}\n")
    (jobs["ran_again"] / "results.json").write_text(json.dumps({"status": "ok", "config_hash": "new"}))
    job_end = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(jobs["skipped"])}, "output_subdir": ".hydra"}})
    keep.on_job_end(job_end, job_return=None)
    assert (jobs["skipped"] / ".hydra" / "config.yaml").read_text() == "recorded: skipped\n"
    assert sorted(p.name for p in (jobs["skipped"] / ".hydra").iterdir()) == ["config.yaml", "overrides.yaml"]
    keep.on_multirun_end(sweep)  # the jobs a launcher ran in other processes
    for name in ("ran_again", "failed"):
        assert (jobs[name] / ".hydra" / "config.yaml").read_text() == "recorded: today\n", name
        assert (jobs[name] / ".hydra" / "hydra.yaml").is_file(), name


def test_job_names_are_the_grid_coordinates() -> None:
    assert job_name("mnli", 4000, "xnli", 1) == "mnli-4000_xnli_seed1"
    assert job_name("mnli", None, "xnli", 0, "intermediate.size=null,seed=0,target.lr=1e-5") == \
        "mnli-full_xnli_seed0,target.lr=1e-5"
    assert "/" not in job_name("none", 0, "ner", 0, "model.name_or_path=/data/xlmr")
    assert len(job_name("a", 1, "b", 2, ",".join(f"k{i}=v{i}" for i in range(100)))) <= 200


def test_a_missing_launcher_plugin_names_its_pip_install(monkeypatch) -> None:
    assert requested_launcher(["-m", "seed=0,1", "hydra/launcher=ray"]) == "ray"
    assert requested_launcher(["seed=0"]) is None
    assert launcher_problem("joblib") is None  # installed by the [cluster] extra
    monkeypatch.setitem(LAUNCHERS, "ray", ("hydra_plugins.no_such_launcher", "hydra-ray-launcher>=1.2"))
    message = launcher_problem("ray")
    assert "hydra/launcher=ray" in message and "pip install 'hydra-ray-launcher>=1.2'" in message
    proc = subprocess.run([*XCAL, "-m", "hydra/launcher=no_such"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "hydra/launcher" in proc.stderr


def test_slurm_launcher_settings_come_from_config() -> None:
    """No SLURM here: the launcher config composes with the cluster knobs a user sets on the command line."""
    proc = subprocess.run([*XCAL, "--cfg", "hydra", "hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                           "hydra.launcher.gpus_per_node=4", "hydra.launcher.timeout_min=90",
                           "hydra.launcher.array_parallelism=8"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    launcher = proc.stdout.split("\n  launcher:\n", 1)[1]
    for line in ("_target_: hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
                 "partition: gpu", "gpus_per_node: 4", "timeout_min: 90", "array_parallelism: 8"):
        assert f"    {line}\n" in launcher, line


def test_a_grid_check_that_crashes_refuses_the_sweep(monkeypatch, capsys) -> None:
    """Regression: Hydra only warns when a callback raises, so a crashing grid check (an interpolation the
    check could not resolve) used to launch the unchecked grid."""
    from xcal.pipeline import grid

    def crash(config, check_data):
        raise KeyError("Interpolation key 'seed' not found")

    monkeypatch.setattr(grid, "grid_problems", crash)
    with pytest.raises(SystemExit) as exited:
        grid.ValidateGrid().on_multirun_start(config=None)
    assert exited.value.code == 2
    assert "the sweep grid could not be checked, so no job was started: KeyError" in capsys.readouterr().err
