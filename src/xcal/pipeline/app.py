"""The ``xcal`` command: a Hydra app over ``conf/`` (every key overridable, ``-m`` for sweeps)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from xcal.errors import XcalError
from xcal.pipeline.validate import validate_config


def config_dir() -> Path:
    """``conf/`` of a source checkout, else the copy packaged inside the wheel."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[3] / "conf", here.parents[1] / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError("xcal's config directory (conf/) was not found next to the package")


CONFIG_DIR = config_dir()


def _run_name() -> str:
    hc = HydraConfig.get()
    return hc.job.override_dirname or hc.job.name


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        validate_config(cfg)  # before the heavy imports: a typo costs a second, not a minute
        from xcal.pipeline.run import run

        record = run(cfg, output_dir, run_name=_run_name())
    except XcalError as exc:
        print(f"xcal: error: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        wandb = sys.modules.get("wandb")
        if wandb is not None and wandb.run is not None:
            wandb.finish()  # between multirun jobs, or every job lands in one W&B run
    means = record["mean_over_languages"].get(record["primary_split"], {})
    print(f"[xcal] done in {record['seconds']:.0f}s: {output_dir / 'results.json'}")
    return means.get("ece")


if __name__ == "__main__":
    main()
