"""Loading the encoder: the embedded default, a local directory, or a hub name."""

from __future__ import annotations

from pathlib import Path

from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from xcal.errors import XcalError

EMBEDDED_PREFIX = "embedded:"


class ModelLoadError(XcalError, RuntimeError):
    pass


def resolve_model_path(name_or_path: str, cache_root: Path) -> str:
    """``embedded:<name>`` → the converted checkpoint in the cache; anything else unchanged."""
    if name_or_path.startswith(EMBEDDED_PREFIX):
        from xcal.assets.cache import model_dir

        return str(model_dir(cache_root, name_or_path[len(EMBEDDED_PREFIX):]))
    return name_or_path


def _load_error(name_or_path: str, exc: Exception) -> ModelLoadError:
    local = Path(name_or_path).expanduser()
    if local.exists() or name_or_path.startswith(("/", ".", "~")):
        hint = (f"{local} exists but is not a complete transformers checkpoint" if local.exists()
                else f"{local} does not exist")
    else:
        hint = ("it is not a local directory, so it was looked up on the Hugging Face hub, which could "
                "not be reached or has no such model. Download it where the hub is reachable "
                f"(`hf download {name_or_path} --local-dir DIR`) and set model.name_or_path=DIR, "
                "or use the embedded default model=me5_small")
    return ModelLoadError(f"cannot load model.name_or_path={name_or_path!r}: {hint}. ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})")


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except Exception as exc:  # transformers raises OSError, ValueError, HF hub errors...
        raise _load_error(name_or_path, exc) from exc


def load_encoder(name_or_path: str, freeze_embeddings: bool = False) -> nn.Module:
    """The bare encoder (no task head, no pooler) with optionally frozen word embeddings."""
    try:
        encoder = AutoModel.from_pretrained(name_or_path, add_pooling_layer=False)
    except TypeError:
        encoder = AutoModel.from_pretrained(name_or_path)
    except Exception as exc:
        raise _load_error(name_or_path, exc) from exc
    if freeze_embeddings:
        encoder.get_input_embeddings().weight.requires_grad_(False)
    return encoder
