"""Reading the BIG-bench sdist: the wanted ``task.json`` members in one streaming pass, hashed as read."""

from __future__ import annotations

import hashlib
import json
import lzma
import tarfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from xcal.assets.artifacts import BIGBENCH, AssetError

TASKS_ROOT = "bigbench/benchmark_tasks/"  # members are "<sdist top dir>/" + this + relative path
UPSTREAM_TASKS_URL = "https://github.com/google/BIG-bench/tree/main/bigbench/benchmark_tasks"


class _HashingReader:
    """File wrapper that hashes and counts every byte the gzip stream pulls through it."""

    def __init__(self, handle: Any, bar: tqdm) -> None:
        self._handle = handle
        self._bar = bar
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.sha256.update(data)
        self._bar.update(len(data))
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _fix_hint(path: Path) -> str:
    if path.name.endswith(".tar.xz"):  # the extract committed with xcal, not a download
        return f"Restore it with `git checkout -- {path}`."
    return f"Delete {path} and re-run `xcal-fetch` to download it again."


def read_members(
    sdist_path: Path, wanted: Iterable[str], optional: Iterable[str] = ()
) -> tuple[dict[str, bytes], str]:
    """Read the ``wanted`` (and, if present, ``optional``) task-relative members in one pass.

    Returns their bytes and the archive's SHA-256. Raises :class:`AssetError` naming the file when
    the archive is unreadable, truncated, or lacks a wanted member.
    """
    wanted, optional = set(wanted), set(optional) - set(wanted)
    found: dict[str, bytes] = {}
    if not sdist_path.is_file():
        raise AssetError(f"BIG-bench sdist not found at {sdist_path}. Run `xcal-fetch` to download it.")
    total = sdist_path.stat().st_size
    try:
        with (
            open(sdist_path, "rb") as raw,
            tqdm(
                total=total, unit="B", unit_scale=True, desc=f"reading {sdist_path.name}", leave=False
            ) as bar,
        ):
            reader = _HashingReader(raw, bar)
            # "r|*" reads the stream (gz: the sdist, xz: the committed extract) strictly forward, so the hash
            # sees every byte exactly once.
            with tarfile.open(fileobj=reader, mode="r|*") as tar:  # type: ignore[call-overload]
                for member in tar:
                    _, sep, rel = member.name.partition("/" + TASKS_ROOT)
                    if not sep or not member.isfile() or (rel not in wanted and rel not in optional):
                        continue
                    handle = tar.extractfile(member)
                    assert handle is not None
                    found[rel] = handle.read()
                    if len(found) == len(wanted) + len(optional):
                        break
            reader.drain()
            digest = reader.sha256.hexdigest()
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
        raise AssetError(
            f"{sdist_path} is truncated or corrupt ({type(exc).__name__}: {exc}). {_fix_hint(sdist_path)}"
        ) from exc
    if sdist_path.name == BIGBENCH.filename and digest != BIGBENCH.sha256:
        raise AssetError(
            f"{sdist_path} has SHA-256 {digest}, expected {BIGBENCH.sha256}. {_fix_hint(sdist_path)}"
        )
    missing = sorted(wanted - found.keys())
    if missing:
        raise AssetError(
            f"{sdist_path} lacks {len(missing)} member(s) under {TASKS_ROOT}: {', '.join(missing)}. "
            f"It is not the bigbench 1.0.0 sdist or it is damaged. {_fix_hint(sdist_path)}"
        )
    return found, digest


def task_examples(raw: bytes, member: str) -> list[dict[str, Any]]:
    try:
        examples = json.loads(raw)["examples"]
    except (ValueError, KeyError, TypeError) as exc:
        raise AssetError(
            f"member {member} of the BIG-bench sdist is not a task.json with examples: {exc}"
        ) from exc
    return examples


def target_index(example: dict[str, Any], options: Sequence[str], member: str) -> int:
    """Index in ``options`` of the single option whose target score is 1."""
    scores = example["target_scores"]
    winners = [k for k, v in scores.items() if v == 1]
    if len(winners) != 1 or winners[0] not in options:
        raise AssetError(f"{member}: expected exactly one correct option among {list(options)}, got {scores}")
    return options.index(winners[0])


def licence_note(task_dir: str, readmes: dict[str, bytes]) -> str:
    """The licence line a task README states, or where to look: the sdist carries no READMEs."""
    for rel, raw in readmes.items():
        if rel.startswith(task_dir + "/"):
            for line in raw.decode("utf-8", "replace").splitlines():
                if "licen" in line.lower():
                    return line.strip()
            return f"see README ({rel})"
    return (
        "The bigbench 1.0.0 sdist holds no README for this task; BIG-bench itself is Apache-2.0. "
        f"See README: {UPSTREAM_TASKS_URL}/{task_dir} for the source dataset's terms."
    )
