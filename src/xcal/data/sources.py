"""Reading a task's split for one language as an Arrow-backed ``datasets.Dataset``."""

from __future__ import annotations

from pathlib import Path

import datasets

from xcal.data.tasks import TaskSpec
from xcal.errors import XcalError


class DataSourceError(XcalError, FileNotFoundError):
    pass


def split_path(data_root: Path, task: TaskSpec, language: str, split: str) -> Path:
    return data_root / task.name / language / f"{split}.parquet"


def load_split(data_root: Path, task: TaskSpec, language: str, split: str) -> datasets.Dataset:
    """Load one split of an embedded task (built by ``xcal-fetch``)."""
    if task.source != "embedded":
        raise DataSourceError(f"task {task.name!r} has source {task.source!r}; only 'embedded' is readable here")
    path = split_path(data_root, task, language, split)
    if not path.is_file():
        raise DataSourceError(
            f"{path} is missing: the embedded data for task {task.name!r} ({language}, {split}) has not "
            f"been built. Run `xcal-fetch` (or `make fetch`) to download and build it."
        )
    # The Arrow copy goes beside, not inside, the checksummed data directory.
    return datasets.Dataset.from_parquet(str(path), cache_dir=str(data_root.parent / "hf_datasets"))
