"""SHA-256, the one hash xcal names things by: a file's digest (checksums, manifests, PyPI artifacts) and
short fingerprints (cache keys, shortened names).

A fingerprint names something already on disk (a tokenization cache, a normalised source, a stage-1
encoder), so each caller builds the text it hashes exactly as before; only the hashing lives here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tqdm.auto import tqdm

_CHUNK = 1 << 20
_PROGRESS_FROM = 50_000_000  # bytes: a bar only where hashing takes long enough to wonder about


def file_digest(path: Path, progress: bool = False) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks; ``progress`` shows a bar for files of 50 MB and more."""
    path = Path(path)
    digest = hashlib.sha256()
    total = path.stat().st_size if progress else 0
    with open(path, "rb") as handle, tqdm(
        total=total, unit="B", unit_scale=True, desc=f"sha256 {path.name}", leave=False,
        disable=total < _PROGRESS_FROM,
    ) as bar:
        while block := handle.read(_CHUNK):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def fingerprint(*parts: str | bytes, n: int) -> str:
    """The first ``n`` hex digits of the SHA-256 of ``parts`` in turn (text as UTF-8)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8") if isinstance(part, str) else part)
    return digest.hexdigest()[:n]
