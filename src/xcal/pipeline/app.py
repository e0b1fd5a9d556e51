"""The ``xcal`` command: a Hydra app over ``conf/`` (every key overridable, ``-m`` for sweeps)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from xcal.errors import XcalError
from xcal.pipeline.device_slots import shared_device
from xcal.pipeline.launchers import launcher_problem, requested_launcher
from xcal.pipeline.overrides import override_problems
from xcal.pipeline.plan import plan_job
from xcal.pipeline.record import RESULTS_FILE, JobRecord
from xcal.pipeline.resume import finished_record
from xcal.utils.digest import fingerprint
from xcal.utils.messages import bullets, counted


def config_dir() -> Path:
    """``conf/`` of a source checkout, else the copy packaged inside the wheel."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[3] / "conf", here.parents[1] / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError("xcal's config directory (conf/) was not found next to the package")


CONFIG_DIR = config_dir()


# A mixture's tasks and rule are in its name (``intermediate.name``), so they are coordinates too.
COORDINATES = ("intermediate", "intermediate.size", "target", "seed", "intermediate.tasks", "intermediate.rule")
MAX_NAME = 200  # file systems allow 255 bytes per directory name


def _items(override_dirname: str) -> list[str]:
    """Hydra's ``override_dirname`` cut at its item separator (``,``), but not inside a list value
    (``intermediate.tasks=[vitaminc,social_iqa]`` is one item)."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(override_dirname):
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth <= 0:
            items.append(override_dirname[start:i])
            start = i + 1
    return [*items, override_dirname[start:]]


def job_name(intermediate: str, size: object, target: str, seed: object, override_dirname: str = "") -> str:
    """A job's name from its grid coordinates (``mnli-4000_xnli_seed1``) plus any other override,
    the same on every machine and every re-run: the job's directory and its W&B run name."""
    size = "full" if size in (None, "None", "null") else size
    rest = [item for item in _items(override_dirname) if item and item.split("=")[0] not in COORDINATES]
    name = re.sub(r"[/\\]", "_", ",".join([f"{intermediate}-{size}_{target}_seed{seed}", *rest]))
    if len(name.encode()) > MAX_NAME:
        digest = fingerprint(name, n=12)
        name = name.encode()[: MAX_NAME - 13].decode(errors="ignore") + "~" + digest
    return name


def run_name(config: Mapping[str, Any], override_dirname: str = "") -> str:
    """:func:`job_name` of a config (composed, or a plan's resolved ``config``)."""
    inter = config["intermediate"]
    return job_name(inter["name"], inter["size"], config["target"]["name"], config["seed"], override_dirname)


if not OmegaConf.has_resolver("xcal_job_name"):
    OmegaConf.register_new_resolver("xcal_job_name", job_name)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def _job(cfg: DictConfig) -> float | None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        plan = plan_job(cfg)  # checked, hashed and read once, before the heavy imports: a typo costs a second
        done = finished_record(output_dir, plan.hashes)
        if done is not None:  # re-running a sweep skips what finished with the same config
            print(f"[xcal] already finished, skipped: {output_dir / RESULTS_FILE}")
            return _objective(done)
        from xcal.pipeline.run import run

        # hydra/launcher=shared_gpu: the job holds a device slot for its run (else the plan is unchanged)
        with shared_device(plan, HydraConfig.get().launcher) as job:
            record = run(job, output_dir, run_name=run_name(plan.config, HydraConfig.get().job.override_dirname))
    except Exception as exc:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            # results.json records the failure; the other jobs of the sweep go on (the end-of-sweep
            # summary lists every failed job and the command exits non-zero).
            print(f"xcal: job failed: {output_dir.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return None
        if isinstance(exc, XcalError):
            print(f"xcal: error: {exc}", file=sys.stderr)
            sys.exit(2)
        raise
    print(f"[xcal] done in {record['seconds']:.0f}s: {output_dir / RESULTS_FILE}")
    return _objective(record)


def _objective(record: JobRecord) -> float | None:
    """What a Hydra sweeper optimises: mean ECE over languages on the primary split."""
    return record["mean_over_languages"].get(record["primary_split"], {}).get("ece")


def main() -> None:
    """The console script: a launcher plugin that is missing is named with its pip line before Hydra starts."""
    problems = [p for p in [launcher_problem(requested_launcher(sys.argv[1:]))] if p]
    problems += override_problems(sys.argv[1:], CONFIG_DIR)
    if problems:
        print(f"xcal: error: the command line has {counted(len(problems), 'problem')}:\n{bullets(problems)}",
              file=sys.stderr)
        sys.exit(2)
    _job()


if __name__ == "__main__":
    main()
