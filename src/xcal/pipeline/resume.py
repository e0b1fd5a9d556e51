"""Re-running a sweep: finished jobs are skipped, so a sweep command can simply be run again.

A job is finished when its ``results.json`` says ``status: ok`` and was written for the same config
(its hash, which leaves out where outputs go and how they are logged). A job whose config changed, or
that failed or was killed, runs again; its stage checkpoints let it resume rather than restart. A skipped
job's directory is left as it was (:class:`KeepFinishedJobs`).
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from xcal.pipeline.record import RESULTS_FILE, JobRecord, read_record_or_none
from xcal.utils.digest import fingerprint

# Keys that change where and how a job reports, not what it computes.
NOT_HASHED = ("paths", "logger", "tags", "sweep_name", "hydra")


# Keys xcal no longer has, each with the value whose behaviour is the one that remains: a job recorded with
# that value computed what today's code computes, so it stays finished (``model.fast_dropout: false`` was
# torch's own dropout, the only dropout now).
RETIRED = {("model", "fast_dropout"): False}


# Opt-in blocks added after jobs were recorded: with ``enabled: false`` a job computes what it computed before the
# block existed, so the block is left out of the hash (every recorded job stays finished); enabled, it counts.
OPT_IN = ("compile",)


def _with_retired_keys(resolved: dict[str, Any]) -> bool:
    """Put back each :data:`RETIRED` key with its value; whether anything changed."""
    changed = False
    for (group, key), value in RETIRED.items():
        if isinstance(resolved.get(group), dict) and key not in resolved[group]:
            resolved[group][key] = value
            changed = True
    return changed


def _calibrators_as_temperature_scaling(resolved: dict[str, Any]) -> bool:
    """``calibration.calibrators`` replaced ``calibration.temperature_scaling``: a job recorded with ``true``
    computed what ``[temperature]`` computes (raw and English-dev temperature scaling), ``false`` what ``[]``
    does; whether the config had one of those two lists."""
    block = resolved.get("calibration")
    if not isinstance(block, dict) or block.get("calibrators") not in ([], ["temperature"]):
        return False
    block["temperature_scaling"] = bool(block.pop("calibrators"))
    return True


#: Rewrites of today's resolved config into one a finished job of the same computation may have been recorded
#: with (each in place, returning whether it applied); every combination is tried.
MIGRATIONS: tuple[Callable[[dict[str, Any]], bool], ...] = (_with_retired_keys, _calibrators_as_temperature_scaling)


def _hashed(cfg: DictConfig) -> dict[str, Any]:
    skip = {*NOT_HASHED, *(k for k in OPT_IN if k in cfg and not cfg[k].get("enabled", False))}
    resolved = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k not in skip]), resolve=True)
    trainer = resolved.get("trainer", {})
    for key in ("enable_progress_bar", "enable_model_summary", "log_every_n_steps"):
        trainer.pop(key, None)
    return resolved


def _digest(resolved: dict[str, Any]) -> str:
    return fingerprint(json.dumps(resolved, sort_keys=True, default=str), n=20)


def config_hash(cfg: DictConfig) -> str:
    """A stable hash of everything that determines a job's numbers."""
    return _digest(_hashed(cfg))


@dataclass(frozen=True)
class ConfigHashes:
    """A job's config hash (written into its results.json) and every hash a finished result of the same
    computation may carry (:data:`RETIRED`): computed once per job, from one resolve of the config."""

    current: str
    recorded: frozenset[str]

    @classmethod
    def of(cls, cfg: DictConfig) -> ConfigHashes:
        resolved = _hashed(cfg)
        current = _digest(resolved)
        recorded = {current}
        for count in range(1, len(MIGRATIONS) + 1):
            for chosen in itertools.combinations(MIGRATIONS, count):
                migrated = copy.deepcopy(resolved)
                if all(migrate(migrated) for migrate in chosen):
                    recorded.add(_digest(migrated))
        return cls(current, frozenset(recorded))


def finished_record(output_dir: Path, config: DictConfig | ConfigHashes) -> JobRecord | None:
    """The job's results if it already finished with this config (or its :class:`ConfigHashes`, when the
    caller has them already), else None (run it)."""
    hashes = config if isinstance(config, ConfigHashes) else ConfigHashes.of(config)
    record = read_record_or_none(output_dir / RESULTS_FILE)
    if record is None or record.get("status") != "ok" or record.get("config_hash") not in hashes.recorded:
        return None
    return record


def keep_previous_result(output_dir: Path, current_hash: str) -> Path | None:
    """A finished result of a *different* config in this directory is moved aside, never overwritten."""
    record = read_record_or_none(output_dir / RESULTS_FILE)
    if record is None or record.get("status") != "ok" or record.get("config_hash") == current_hash:
        return None
    kept = output_dir / f"results.{record.get('config_hash', 'unhashed')}.json"
    (output_dir / RESULTS_FILE).replace(kept)
    return kept


class KeepFinishedJobs(Callback):
    """Hydra callback: re-running a sweep leaves each finished job's ``.hydra/`` as it was.

    Hydra writes a job's config, overrides and hydra.yaml before the job starts, so a skipped job's record
    of the config it ran with would be replaced by today's (keys reordered, retired keys gone): a committed
    study would show a diff of every job after a no-op re-run. The files are read before the sweep and put
    back once the job has ended with its results.json untouched; a job that ran again keeps Hydra's new ones.
    """

    def __init__(self) -> None:
        self._kept: dict[Path, tuple[bytes, dict[str, bytes]]] = {}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        subdir = config.hydra.output_subdir
        if subdir is None:
            return
        for results in Path(config.hydra.sweep.dir).glob(f"*/{RESULTS_FILE}"):
            record = read_record_or_none(results)
            if record is not None and record.get("status") == "ok":
                self._kept[results.parent / subdir] = (results.read_bytes(), _files(results.parent / subdir))

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        """In-process launchers (the basic one): restored as soon as the job is skipped."""
        if config.hydra.output_subdir is not None:
            self._restore(Path(config.hydra.runtime.output_dir) / config.hydra.output_subdir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Launchers whose jobs run in other processes (joblib, submitit, Ray): restored after the sweep."""
        for hydra_dir in list(self._kept):
            self._restore(hydra_dir)

    def _restore(self, hydra_dir: Path) -> None:
        kept = self._kept.pop(hydra_dir, None)
        results = hydra_dir.parent / RESULTS_FILE
        if kept is None or not results.is_file() or results.read_bytes() != kept[0]:
            return
        now = _files(hydra_dir)  # jobs outside this sweep's grid were not touched: left as they are
        for name in now.keys() - kept[1].keys():
            (hydra_dir / name).unlink()
        for name, content in kept[1].items():
            if now.get(name) != content:
                (hydra_dir / name).write_bytes(content)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.glob("*") if p.is_file()}
