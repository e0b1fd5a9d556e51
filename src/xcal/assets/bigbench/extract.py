"""The 16 ``task.json`` members of the bigbench 1.0.0 sdist, committed beside this module.

The package index stopped serving ``bigbench==1.0.0`` (on 2026-12-04 its simple page lists only 0.0.1
and ``/pypi/bigbench/1.0.0/json`` answers "This package version is not available"), so a fresh
machine could no longer build the embedded data. The members xcal reads are therefore committed,
verbatim, as one ``tar.xz`` (21.6 MB instead of the 358 MB sdist) with the sdist's own member paths,
so :func:`~xcal.assets.bigbench.archive.read_members` reads either archive the same way. Each
member's SHA-256, taken from the verified sdist, is pinned in :data:`MEMBER_SHA256`;
``python -m xcal.assets.bigbench.extract SDIST`` rebuilds the file from the sdist, checking each member
against the pinned hash first.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import lzma
import sys
import tarfile
from pathlib import Path

from xcal.assets.artifacts import BIGBENCH, AssetError
from xcal.assets.bigbench.archive import TASKS_ROOT, read_members

EXTRACT = Path(__file__).with_name("bigbench-1.0.0-tasks.tar.xz")
TOP_DIR = "bigbench-1.0.0/"  # the sdist's top directory, kept so member paths match the sdist's

# SHA-256 of each member as read from bigbench-1.0.0.tar.gz (sha256 1bb398a5...c5c2).
MEMBER_SHA256 = {
    "epistemic_reasoning/task.json": "98209623d1bf28ed6b99ec50b772b367f24467d190ceb9d1c0298e91c04548f1",
    "goal_step_wikihow/step_inference/task.json": "e3cba757d9f6050a90f4a9d7b32d0159f2c0d69a4b6656588f56593f85193494",
    "multiemo/all_sentence_de/task.json": "814fd8b2067e90e4b332c572bac1192a542add01ba5e782c392adc064e240ff7",
    "multiemo/all_sentence_en/task.json": "5b78ed07bf7151b5101618aa6e4e2fdbd33fb08c0e1e7ec36d93003467590569",
    "multiemo/all_sentence_es/task.json": "d1135557f66ea7e0f17f2d3bad6dda165079d438580e36f4e4e96f6fb964f8e5",
    "multiemo/all_sentence_fr/task.json": "f6be821c4ba9fc46ef15750172bf155603b9dfc43fd37eacdc5ba9f3b20efbc4",
    "multiemo/all_sentence_it/task.json": "cb714bfc1c067bb7f6fb8d3332f685bc7427707304fa3048b6c385abd8d6a83e",
    "multiemo/all_sentence_ja/task.json": "aba75b2f32e3a9e5e99d525de943f48e574824314020426de0efa7afdd5f9187",
    "multiemo/all_sentence_nl/task.json": "a107480086b65ecd3da0fb8b89e08272c098a885b378804103e76678f5947ce2",
    "multiemo/all_sentence_pl/task.json": "9626fc0aec9eb2a09768d9adcf139fe03bede7546f10aaa8751e552d53c5a5c7",
    "multiemo/all_sentence_pt/task.json": "dec16fbdec3052fcfe019e588c01c3fde935361f00189317cdca70b67607471d",
    "multiemo/all_sentence_ru/task.json": "872967ad320e15b1981b203db6681947afc6dd4eccf64aee36f8186a6ff98a3d",
    "multiemo/all_sentence_zh/task.json": "08cc05493e78e7d9ac1240d2c9d8ee472b443b12f00e587ef5149d12854de227",
    "presuppositions_as_nli/task.json": "c65abd117007552b12453da7cc7b2d781042f5a34f6e6f6892ab3287d469d0ee",
    "social_iqa/task.json": "edc9f568b70ae6d4af0783764dbe4e4f18aa1242c675a93f534338d73a565348",
    "vitaminc_fact_verification/task.json": "10f83da50374701fc7ce69162a7a167b14e1a86351201aa8bf14b56fa0a3214f",
}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_members(members: dict[str, bytes], origin: Path) -> None:
    """Raise :class:`AssetError` unless every pinned member read from ``origin`` is the sdist's, byte for byte."""
    changed = sorted(rel for rel, pinned in MEMBER_SHA256.items() if rel in members and _digest(members[rel]) != pinned)
    if changed:
        raise AssetError(
            f"{origin} does not hold the bigbench 1.0.0 members: {', '.join(changed)} differ from the sdist's. "
            f"Restore the committed file with `git checkout -- {EXTRACT.name}`, or rebuild it from the sdist with "
            f"`python -m xcal.assets.bigbench.extract {BIGBENCH.filename}`."
        )


def write_extract(members: dict[str, bytes], out: Path) -> Path:
    """Write ``members`` (task-relative paths) as a deterministic tar.xz: sorted, no times, owners or modes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(members):
            info = tarfile.TarInfo(TOP_DIR + TASKS_ROOT + rel)
            info.size, info.mode = len(members[rel]), 0o644
            tar.addfile(info, io.BytesIO(members[rel]))
    out.write_bytes(lzma.compress(buffer.getvalue(), preset=9 | lzma.PRESET_EXTREME))
    return out


def main(argv: list[str] | None = None) -> int:
    from xcal.assets.bigbench.build import needed_members  # build imports this module

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sdist", type=Path, help=f"{BIGBENCH.filename} (SHA-256 {BIGBENCH.sha256})")
    parser.add_argument("--out", type=Path, default=EXTRACT)
    args = parser.parse_args(argv)
    wanted, optional = needed_members()
    members, _ = read_members(args.sdist, wanted, optional)
    verify_members(members, args.sdist)
    for rel, data in sorted(members.items()):
        print(f'    "{rel}": "{_digest(data)}",')
    write_extract(members, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, SHA-256 {_digest(args.out.read_bytes())})",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
