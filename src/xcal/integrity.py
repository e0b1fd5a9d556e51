"""Checksums for cached files: a truncated or altered cache file is detected and rebuilt, never read.

Two manifests, both of sizes and SHA-256 digests (:func:`xcal.utils.digest.file_digest`):

- a cache file xcal writes (tokenized Arrow splits, normalised source parquet) gets one beside it,
  ``<file>.sha256``: ``{"bytes": size, "sha256": digest}``;
- a built asset directory (the embedded datasets, the converted e5 model) holds one for all its files,
  ``{header..., "files": {relative path: {"size": size, "sha256": digest}}}``.

Stage-1 encoder entries keep their digests in the entry's marker. The key names differ for history's sake:
caches on disk are read by these exact names, so they stay.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from xcal.atomic import atomic_write_json
from xcal.utils.digest import file_digest


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def write_manifest(path: Path) -> None:
    """Record ``path``'s size and digest (atomically) once the file itself is complete."""
    atomic_write_json(manifest_path(path), {"bytes": path.stat().st_size, "sha256": file_digest(path)})


def problem(path: Path) -> str | None:
    """None when ``path`` matches its manifest (or has none yet: written before manifests, or killed between
    the file's rename and its manifest, so the file is whole); else what is wrong with it."""
    try:
        manifest = json.loads(manifest_path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return f"{manifest_path(path)} is unreadable"
    size = path.stat().st_size
    if size != manifest.get("bytes"):
        return f"{path} has {size} bytes, its manifest says {manifest.get('bytes')} (truncated or altered)"
    if file_digest(path) != manifest.get("sha256"):
        return f"{path} does not match the SHA-256 in its manifest (altered)"
    return None


def discard_if_damaged(path: Path) -> str | None:
    """Remove ``path`` and its manifest when they disagree, so the caller rebuilds it; returns the reason."""
    if not path.is_file():
        return None
    reason = problem(path)
    if reason is not None:
        path.unlink(missing_ok=True)
        manifest_path(path).unlink(missing_ok=True)
    return reason


# -------------------------------------------------------------------------------- directories


def write_directory_manifest(root: Path, name: str, header: dict[str, Any]) -> None:
    """``root/name``: ``header`` and the size and digest of every other file under ``root``."""
    files = {
        str(p.relative_to(root)): {"size": p.stat().st_size, "sha256": file_digest(p)}
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != name
    }
    atomic_write_json(root / name, {**header, "files": files})


def directory_is_intact(
    root: Path, name: str, current: Callable[[dict[str, Any]], Any], required: Iterable[str] = (),
    only: Callable[[str], bool] | None = None,
) -> bool:
    """True only when ``root/name`` parses, ``current(manifest)`` accepts its header, it lists every
    ``required`` file, and every file it lists is there with the recorded size and digest.

    ``only`` (a relative path -> bool) checks just the listed files it accepts: a reader of part of a directory
    (one task's data) is not refused for parts it never reads, which a machine handed only that part lacks."""
    try:
        manifest = json.loads((root / name).read_text(encoding="utf-8"))
        files: dict[str, dict[str, Any]] = manifest["files"]
        if not current(manifest) or any(rel not in files for rel in required):
            return False
        if only is not None:
            files = {rel: entry for rel, entry in files.items() if only(rel)}
        paths = {rel: root / rel for rel in files}
        if any(not p.is_file() or p.stat().st_size != files[rel]["size"] for rel, p in paths.items()):
            return False
        return all(file_digest(p) == files[rel]["sha256"] for rel, p in paths.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
