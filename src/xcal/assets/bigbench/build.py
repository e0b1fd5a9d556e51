"""The whole embedded-data build: read the sdist once, build every task, write the manifest last."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path

from xcal.assets.artifacts import BIGBENCH
from xcal.assets.bigbench.archive import licence_note, read_members
from xcal.assets.bigbench.extract import verify_members
from xcal.assets.bigbench.intermediate import CHOICE_TASKS, PAIR_TASKS, build_choice_task, build_pair_task
from xcal.assets.bigbench.multiemo import MULTIEMO_LANGUAGES, build_multiemo, multiemo_member
from xcal.atomic import atomic_directory
from xcal.data.tasks import EMBEDDED_TASKS
from xcal.integrity import directory_is_intact, write_directory_manifest

MANIFEST_NAME = "xcal_manifest.json"
FORMAT_VERSION = 1  # bump when the output changes, so old builds are rebuilt rather than trusted


def is_built(out_dir: Path, tasks: Iterable[str] | None = None) -> bool:
    """True only if the manifest exists, is current, and every file it lists matches size and hash.

    ``tasks``: check only those tasks' files (a job reads its own tasks; a machine may be handed only them);
    None checks every task.

    Hashing ~40 MB of parquet takes well under a second, a fair price for never training on a
    partially overwritten or edited file.
    """
    wanted = tuple(EMBEDDED_TASKS if tasks is None else tasks)
    unknown = sorted(set(wanted) - set(EMBEDDED_TASKS))
    if unknown:
        raise ValueError(f"not embedded tasks: {', '.join(unknown)}; embedded: {', '.join(EMBEDDED_TASKS)}")
    return directory_is_intact(
        Path(out_dir), MANIFEST_NAME, lambda manifest: manifest.get("format") == FORMAT_VERSION,
        required=[f"{task}/meta.json" for task in wanted],
        only=None if tasks is None else (lambda rel: rel.split("/", 1)[0] in wanted),
    )


def needed_members() -> tuple[list[str], list[str]]:
    """The task.json members every build needs, and the READMEs read if the sdist has them."""
    wanted = [multiemo_member(lang) for lang in MULTIEMO_LANGUAGES]
    wanted += [t.member for t in PAIR_TASKS] + [t.member for t in CHOICE_TASKS]
    task_dirs = {"multiemo", *(t.member.split("/")[0] for t in (*PAIR_TASKS, *CHOICE_TASKS))}
    optional = [f"{d}/README.md" for d in task_dirs] + [f"{d}/README" for d in task_dirs]
    optional += [
        f"{multiemo_member('en').rsplit('/', 1)[0]}/README.md",
        "goal_step_wikihow/step_inference/README.md",
    ]
    return wanted, optional


def build_datasets(archive: Path, out_dir: Path) -> Path:
    """Build every embedded dataset from the sdist (or the committed extract of its members) into ``out_dir``
    (atomically); no-op if built."""
    archive, out_dir = Path(archive), Path(out_dir)
    if is_built(out_dir):
        return out_dir
    started = time.perf_counter()
    members, sha256 = read_members(archive, *needed_members())
    read_seconds = time.perf_counter() - started
    verify_members(members, archive)
    readmes = {k: v for k, v in members.items() if not k.endswith("task.json")}
    # The members are the sdist's whichever archive held them (the sdist or the committed extract).
    source = {"file": BIGBENCH.filename, "sha256": BIGBENCH.sha256,
              "read_from": {"file": archive.name, "sha256": sha256}}

    with atomic_directory(out_dir) as tmp:
        build_multiemo(members, tmp / "multiemo", source, licence_note("multiemo", readmes))
        for task in PAIR_TASKS:
            task_dir = task.member.split("/")[0]
            build_pair_task(
                task, members[task.member], tmp / task.name, source, licence_note(task_dir, readmes)
            )
        for ctask in CHOICE_TASKS:
            task_dir = ctask.member.split("/")[0]
            build_choice_task(
                ctask, members[ctask.member], tmp / ctask.name, source, licence_note(task_dir, readmes)
            )
        seconds = time.perf_counter() - started
        write_directory_manifest(
            tmp,
            MANIFEST_NAME,
            {
                "format": FORMAT_VERSION,
                "tasks": list(EMBEDDED_TASKS),
                "sdist": source,
                "build_seconds": round(seconds, 2),
                "read_seconds": round(read_seconds, 2),
            },
        )
    print(
        f"[xcal] built embedded datasets in {out_dir} in {seconds:.1f} s "
        f"(reading the sdist {read_seconds:.1f} s)",
        file=sys.stderr,
    )
    return out_dir
