"""The sweep grid, checked whole before its first job: every bad combination in one message.

Hydra's basic sweeper would stop at the first config that does not compose, after the jobs before
it have run; a grid of sixty jobs whose fortieth names a size beyond the data should cost seconds,
not hours. :class:`ValidateGrid` is a Hydra callback (``hydra.callbacks`` in ``conf/hydra/default.yaml``)
that expands the grid the way the sweeper will, composes every job's config and runs the same
checks each job runs, before any launcher starts. A grid whose every job already finished ends there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict
from omegaconf.errors import OmegaConfBaseException

from xcal.errors import XcalError
from xcal.pipeline.record import RESULTS_FILE, RecordError, read_record
from xcal.utils.messages import bullets, counted

if TYPE_CHECKING:
    from xcal.pipeline.plan import JobPlan


class GridError(XcalError, ValueError):
    """Every offending combination of a sweep grid."""

    def __init__(self, problems: list[str], jobs: int) -> None:
        self.problems = problems
        super().__init__(f"the sweep grid has {counted(len(problems), 'problem')} "
                         f"(of {jobs} jobs; none was started):\n{bullets(problems)}")


def grid_overrides(config: DictConfig) -> list[list[str]]:
    """The jobs of a multirun as override lists, in the order the basic sweeper launches them:
    ``hydra.sweeper.params`` (an experiment's grid) then the command line's sweep overrides."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    params = [f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()]
    arguments = [*params, *config.hydra.overrides.task]
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    batches = BasicSweeper.split_arguments(parser.parse_overrides(arguments), None)
    return [job for batch in batches for job in batch]


def _swept(jobs: list[list[str]]) -> set[str]:
    """The override keys whose value differs between jobs: a job's coordinates in the grid."""
    values: dict[str, set[str]] = {}
    for job in jobs:
        for item in job:
            key, _, value = item.partition("=")
            values.setdefault(key, set()).add(value)
    return {key for key, seen in values.items() if len(seen) > 1}


def _coordinates(overrides: list[str], swept: set[str]) -> str:
    return ",".join(o for o in overrides if o.partition("=")[0] in swept) or "(the single job)"


class GridCheck(NamedTuple):
    """What the grid check found: every problem (naming its job), how many jobs the grid has, and how many of
    them already finished with the same config (the launcher would skip them)."""

    problems: list[str]
    jobs: int
    finished: int


def grid_problems(config: DictConfig, check_data: bool = True) -> GridCheck:
    """Compose each job of the grid, plan those that have not finished (:func:`xcal.pipeline.plan.plan_job`, the
    check each job runs) and collect config and data problems, naming the job."""
    from xcal.pipeline.plan import plan_job
    from xcal.pipeline.validate import ConfigError

    loader = GlobalHydra.instance().config_loader()
    jobs = grid_overrides(config)
    swept = _swept(jobs)
    problems: list[str] = []
    planned: list[tuple[str, JobPlan]] = []
    finished = 0
    for overrides in jobs:
        name = _coordinates(overrides, swept)
        try:
            job = loader.load_sweep_config(config, list(overrides))
        except Exception as exc:  # Hydra raises several types for a config that does not compose
            problems.append(f"{name}: {str(exc).splitlines()[0]}")
            continue
        with open_dict(job):
            job.paths.output_dir = "."  # not a job directory yet (it resolves inside a running job); unhashed
        if _finished(job):
            finished += 1
            continue
        try:
            planned.append((name, plan_job(job)))
        except ConfigError as exc:
            problems += [f"{name}: {p}" for p in exc.problems]
    if check_data:
        problems += _data_problems(planned)
    return GridCheck(problems, len(jobs), finished)


def _finished(job: DictConfig) -> bool:
    """The launcher will skip this job (it finished with this config), so it need not be planned nor its data
    checked: re-running a finished sweep then loads neither the data nor the training stack (nor torch, which
    the calibrator check imports)."""
    from xcal.pipeline.resume import finished_record

    try:
        output_dir = Path(job.hydra.sweep.dir) / str(job.hydra.sweep.subdir)
        return finished_record(output_dir, job) is not None
    except OmegaConfBaseException:  # a path or value that only resolves inside a running job: plan it
        return False


def _data_problems(planned: list[tuple[str, JobPlan]]) -> list[str]:
    """Sizes against the data and the data files, checked once per distinct (stage, task, source, size)."""
    if not planned:
        return []
    from xcal.assets.cache import cache_dir, data_dir
    from xcal.pipeline.run import ensure_assets, stage_sources
    from xcal.pipeline.validate import data_problems

    problems: list[str] = []
    seen: dict[str, list[str]] = {}
    for name, plan in planned:
        root = cache_dir(plan.paths.cache_dir)
        ensure_assets(plan, root)
        sources = stage_sources(plan, data_dir(root))
        blocks = {stage: plan.config[stage] for stage in ("intermediate", "target")}
        key = json.dumps(blocks, sort_keys=True, default=str) + str(sources)
        if key not in seen:
            seen[key] = data_problems(plan, sources)
        problems += [f"{name}: {p}" for p in seen[key]]
    return problems


class ValidateGrid(Callback):
    """Hydra callback: refuse the whole multirun, listing every bad job, before the first job starts."""

    def __init__(self, check_data: bool = True) -> None:
        self.check_data = check_data

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            problems, jobs, finished = grid_problems(config, self.check_data)
        except Exception as exc:  # Hydra would only warn and launch the unchecked grid
            print(f"xcal: error: the sweep grid could not be checked, so no job was started: "
                  f"{type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
            sys.exit(2)
        if problems:
            print(f"xcal: error: {GridError(problems, jobs)}", file=sys.stderr)
            sys.exit(2)
        if jobs and finished == jobs:
            # Launching would compose each job twice more only for it to skip itself: a finished study's
            # re-run is then seconds, not a second or so a job.
            print(f"[xcal] every job of the grid ({jobs}) already finished with this config, skipped: "
                  f"{config.hydra.sweep.dir}")
            sys.exit(0)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Failed jobs do not stop a sweep; they are listed here and make the command exit non-zero."""
        failed = failed_jobs(Path(config.hydra.sweep.dir))
        if failed:
            lines = bullets(f"{name}: {error}" for name, error in failed)
            print(f"xcal: {counted(len(failed), 'job')} of the sweep failed (results.json has "
                  f"status \"failed\"; re-run the same command to retry only them):\n{lines}", file=sys.stderr)
            sys.exit(1)


def failed_jobs(sweep_dir: Path) -> list[tuple[str, str]]:
    """(job name, error) of every job under ``sweep_dir`` whose results.json says it failed."""
    failed = []
    for path in sorted(sweep_dir.glob(f"*/{RESULTS_FILE}")):
        try:
            record = read_record(path)
        except RecordError:
            failed.append((path.parent.name, f"{RESULTS_FILE} is unreadable"))
            continue
        if record.get("status") == "failed":
            failed.append((path.parent.name, str(record.get("error", "")).splitlines()[0][:300]))
    return failed
