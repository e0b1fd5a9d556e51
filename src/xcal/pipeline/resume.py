"""Re-running a sweep: finished jobs are skipped, so a sweep command can simply be run again.

A job is finished when its ``results.json`` says ``status: ok`` and was written for the same config
(its hash, which leaves out where outputs go and how they are logged). A job whose config changed, or
that failed or was killed, runs again; its stage checkpoints let it resume rather than restart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from xcal.pipeline.record import RESULTS_FILE, JobRecord, read_record_or_none
from xcal.utils.digest import fingerprint

# Keys that change where and how a job reports, not what it computes.
NOT_HASHED = ("paths", "logger", "tags", "sweep_name", "hydra")


# Keys xcal no longer has, each with the value whose behaviour is the one that remains: a job recorded with
# that value computed what today's code computes, so it stays finished (``model.fast_dropout: false`` was
# torch's own dropout, the only dropout now).
RETIRED = {("model", "fast_dropout"): False}


def _hashed(cfg: DictConfig) -> dict[str, Any]:
    resolved = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k not in NOT_HASHED]),
                                      resolve=True)
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
        for (group, key), value in RETIRED.items():
            if isinstance(resolved.get(group), dict) and key not in resolved[group]:
                resolved[group][key] = value
        return cls(current, frozenset({current, _digest(resolved)}))


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
