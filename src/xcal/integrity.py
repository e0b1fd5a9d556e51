"""Checksums for cached files: a truncated or altered cache file is detected and rebuilt, never read.

Every cache file xcal writes (tokenized Arrow splits, normalised source parquet) gets a manifest beside it,
``<file>.sha256``, holding its size and SHA-256; stage-1 encoder entries keep theirs in the entry's marker.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from xcal.atomic import atomic_write_json


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def write_manifest(path: Path) -> None:
    """Record ``path``'s size and digest (atomically) once the file itself is complete."""
    atomic_write_json(manifest_path(path), {"bytes": path.stat().st_size, "sha256": sha256_file(path)})


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
    if sha256_file(path) != manifest.get("sha256"):
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
