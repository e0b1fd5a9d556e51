"""Lightning loggers from the ``logger`` config group (CSV and W&B by default), as the job's plan holds them."""

from __future__ import annotations

import copy
import netrc
import os
from pathlib import Path
from typing import Any

from hydra.utils import get_class
from pytorch_lightning.loggers import Logger

from xcal.calibration.registry import RAW
from xcal.pipeline.plan import JobPlan
from xcal.pipeline.record import calibrated_entries


def wandb_mode(requested: str | None) -> str:
    """``auto`` → online when an API key is configured (env or ``wandb login``), else offline."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if requested and requested != "auto":
        return requested
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        auth = None
    return "online" if auth else "offline"


def build_loggers(plan: JobPlan, output_dir: Path, run_name: str) -> list[Logger]:
    loggers: list[Logger] = []
    for name, node in plan.loggers.items():
        kwargs: dict[str, Any] = copy.deepcopy(node)
        logger_cls = get_class(kwargs.pop("_target_"))
        if name == "wandb":
            kwargs["mode"] = wandb_mode(kwargs.get("mode"))
            kwargs["name"] = run_name
            if not kwargs.get("job_type"):  # the stages this job runs: filter stage-1 jobs from target-only ones
                kwargs["job_type"] = "target" if plan.intermediate is None else "intermediate+target"
            # the resolved config, so dashboards can filter and group by size, task and seed
            kwargs["config"] = copy.deepcopy(plan.config)
            Path(kwargs["save_dir"]).mkdir(parents=True, exist_ok=True)
        loggers.append(logger_cls(**kwargs))
    return loggers


def table_columns() -> tuple[str, ...]:
    """The W&B summary table's metric columns: the registry's table metrics, each with its interval bounds."""
    from xcal.metrics import TABLE, get_metric, metric_names

    return tuple(key for name in metric_names(shown=TABLE) for key in (name, *get_metric(name).interval_keys()))


def log_zeroshot_media(loggers: list[Logger], zeroshot: dict[str, Any], plot_dir: Path) -> None:
    """W&B only: a per-language summary table (one row per split and calibrator, ``none`` raw) and the reliability
    diagrams as images."""
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        metrics = table_columns()
        columns = ["language", "split", "calibrator", *metrics]
        rows = []
        for lang, splits in zeroshot.items():
            for split, entry in splits.items():
                for calibrator, values in ((RAW, entry), *calibrated_entries(entry).items()):
                    rows.append([lang, split, calibrator, *(values.get(m) for m in metrics)])
        logger.log_table(key="zeroshot/table", columns=columns, data=rows)
        for lang, splits in zeroshot.items():
            for split, entry in splits.items():
                name = entry.get("reliability_diagram")
                if name and (plot_dir / name).is_file():
                    logger.log_image(key=f"reliability/{lang}/{split}", images=[str(plot_dir / name)])
