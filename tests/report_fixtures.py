"""A synthetic sweep on disk, in the exact layout ``xcal -m`` writes, with a planted size effect.

Every eval set's predictions are built so that their *actual* top-label ECE (15 uniform bins) is
``base[lang] + slope * (log2(size) - centre) + noise * z`` to float precision: examples sit at seven
confidence levels, one per bin, each level is over-confident by exactly the target ECE (the number of
correct answers per level is rounded, then the level's confidences are shifted by less than half an
example's worth so the gap is exact). The ``results.json`` metrics are then computed from the saved logits
with ``xcal.metrics.calibration_report``, exactly as the pipeline does, so the file and the predictions agree.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xcal.metrics import calibration_report

NUM_CLASSES = 3
#: Base ECE per language at the centre of the size range; zero-shot languages start less calibrated.
BASE_ECE = {"en": 0.08, "de": 0.10, "fr": 0.11, "zh": 0.13}
#: Extra ECE of the no-intermediate baseline (size 0) over the base.
BASELINE_EXTRA = 0.03
TEMPERATURE = 1.25
FULL_SIZE = 25_600


def _png_1x1() -> bytes:
    """The smallest valid PNG (one grey pixel): a stand-in reliability diagram a browser can decode."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + \
        chunk(b"IEND", b"")


def planted_logits(target_ece: float, n: int, rng: np.random.Generator, n_bins: int = 15) -> tuple[np.ndarray,
                                                                                                 np.ndarray]:
    """``(logits float32 [n, 3], labels int64 [n])`` whose top-label ECE with ``n_bins`` uniform bins is
    ``target_ece`` (every populated bin over-confident by exactly that much)."""
    if not 0.005 <= target_ece <= 0.3:
        raise ValueError(f"planted ECE {target_ece:.4f} is outside [0.005, 0.3]; use a smaller slope or noise")
    if n < 16:
        raise ValueError(f"n={n}: the planted ECE needs at least 16 examples")
    width = 1.0 / n_bins
    levels = np.array([(k + 0.5) * width for k in range(n_bins) if (k + 0.5) * width > 0.55])
    levels = levels[-max(1, min(len(levels), n // 16)):]  # >= 16 examples per level
    # the per-level shift that makes the gap exact is at most half an example (0.5 / m): keep it in the bin
    jitter = max(0.0, min(0.2 * width, 0.9 * (0.5 * width - 0.5 / (n // len(levels)))))
    level_of = np.arange(n) % len(levels)
    conf = levels[level_of] + rng.uniform(-jitter, jitter, n)
    correct = np.zeros(n, dtype=bool)
    for j in range(len(levels)):
        members = np.flatnonzero(level_of == j)
        if members.size == 0:
            continue
        k = round(members.size * (conf[members].mean() - target_ece))
        correct[rng.choice(members, size=k, replace=False)] = True
        # shift the level so that mean confidence - accuracy is exactly the target (< half an example)
        conf[members] += k / members.size + target_ece - conf[members].mean()
    pred = rng.integers(0, NUM_CLASSES, n)
    others = (pred[:, None] + np.array([1, 2])[None, :]) % NUM_CLASSES  # the two other classes, random order
    swap = rng.random(n) < 0.5
    others[swap] = others[swap][:, ::-1]
    probs = np.zeros((n, NUM_CLASSES))
    rows = np.arange(n)
    probs[rows, pred] = conf
    probs[rows, others[:, 0]] = (1.0 - conf) * 0.7
    probs[rows, others[:, 1]] = (1.0 - conf) * 0.3
    labels = np.where(correct, pred, np.where(rng.random(n) < 0.6, others[:, 0], others[:, 1]))
    return np.log(probs).astype(np.float32), labels.astype(np.int64)


def _report(logits: np.ndarray, labels: np.ndarray, temperature: float | None, n_bins: int, bootstrap: int,
            seed: int) -> dict[str, Any]:
    """The metrics the pipeline writes for one eval set (raw, and ``ts`` under the temperature)."""
    raw = torch.from_numpy(logits).double()
    y = torch.from_numpy(labels)
    entry = calibration_report(torch.softmax(raw, dim=-1), y, n_bins=n_bins, bootstrap=bootstrap, seed=seed)
    if temperature is not None:
        entry["ts"] = calibration_report(torch.softmax(raw / temperature, dim=-1), y, n_bins=n_bins,
                                         bootstrap=bootstrap, seed=seed)
    entry["examples"] = int(labels.shape[0])
    return entry


def planted_ece(language: str, size: int, seed: int, *, languages: tuple[str, ...], slope: float, noise: float,
                centre: float) -> float:
    """The ECE the fixture plants for one (language, size, seed): base + slope*(log2 size - centre) + noise."""
    index = languages.index(language)
    base = BASE_ECE.get(language, 0.10 + 0.01 * index)
    z = np.random.default_rng([7, index, size, seed]).standard_normal()
    if size == 0:
        return base + BASELINE_EXTRA + noise * z
    return base + slope * (math.log2(size) - centre) + noise * z


def job_name(intermediate: str, size: int | None, target: str, seed: int) -> str:
    return f"{intermediate}-{'full' if size is None else size}_{target}_seed{seed}"


def write_synthetic_sweep(
    root: Path,
    *,
    sizes: Iterable[int | None] = (0, 100, 400, 1600, 6400),
    seeds: Iterable[int] = (0, 1, 2),
    languages: Iterable[str] = ("en", "de", "fr", "zh"),
    slope_per_doubling: float = -0.01,
    noise: float = 0.002,
    n: int = 400,
    with_predictions: bool = True,
    fail: Iterable[tuple[int | None, int]] = (),
    corrupt: Iterable[tuple[int | None, int]] = (),
    missing: Iterable[tuple[int | None, int]] = (),
    slopes: Mapping[str, float] | None = None,
    name: str = "synthetic",
    intermediate: str = "mnli",
    target: str = "xnli",
    model: str = "xlmr_large",
    name_or_path: str = "xlm-roberta-large",
    split: str = "test",
    n_bins: int = 15,
    bootstrap: int = 20,
    with_plots: bool = True,
    temperature_scaling: bool = True,
) -> Path:
    """Write ``root/multirun/<name>/<job>/results.json`` (+ ``predictions/*.npz``, ``plots/*.png``) for every
    (size, seed); returns the sweep directory.

    ``size=None`` is the full training set (``FULL_SIZE`` examples). ``temperature_scaling=False`` writes
    ``temperature: null`` and no ``ts`` entries (half the work: each entry costs a full calibration report).
    ``slopes`` overrides the planted slope per language. ``fail`` / ``corrupt`` / ``missing`` cells (size, seed)
    get a failed record, a truncated results.json, or only a started job's ``.hydra`` folder. Deterministic: the
    same arguments give the same numbers (only the npz zip timestamps differ).
    """
    languages = tuple(languages)
    sizes, seeds = tuple(sizes), tuple(seeds)
    fail, corrupt, missing = set(fail), set(corrupt), set(missing)
    numeric = [FULL_SIZE if s is None else s for s in sizes]
    logs = [math.log2(s) for s in numeric if s > 0]
    centre = (min(logs) + max(logs)) / 2 if logs else 0.0
    sweep_dir = Path(root) / "multirun" / name
    png = _png_1x1()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # hundreds of small reports: threads only add overhead (and contend under xdist)
    try:
        _write_jobs(sweep_dir, png, sizes=sizes, numeric=numeric, seeds=seeds, languages=languages, centre=centre,
                    slope_per_doubling=slope_per_doubling, slopes=slopes or {}, noise=noise, n=n,
                    with_predictions=with_predictions, fail=fail, corrupt=corrupt, missing=missing, name=name,
                    intermediate=intermediate, target=target, model=model, name_or_path=name_or_path, split=split,
                    n_bins=n_bins, bootstrap=bootstrap, with_plots=with_plots,
                    temperature=TEMPERATURE if temperature_scaling else None)
    finally:
        torch.set_num_threads(threads)
    return sweep_dir


def _write_jobs(sweep_dir: Path, png: bytes, *, sizes: tuple[int | None, ...], numeric: list[int],
                seeds: tuple[int, ...], languages: tuple[str, ...], centre: float, slope_per_doubling: float,
                slopes: Mapping[str, float], noise: float, n: int, with_predictions: bool,
                fail: set[tuple[int | None, int]], corrupt: set[tuple[int | None, int]],
                missing: set[tuple[int | None, int]], name: str, intermediate: str, target: str, model: str,
                name_or_path: str, split: str, n_bins: int, bootstrap: int, with_plots: bool,
                temperature: float | None) -> None:
    for size, numeric_size in zip(sizes, numeric, strict=True):
        for seed in seeds:
            job_dir = sweep_dir / job_name(intermediate, size, target, seed)
            (job_dir / ".hydra").mkdir(parents=True, exist_ok=True)
            (job_dir / ".hydra" / "overrides.yaml").write_text(
                f"- intermediate={intermediate}\n- intermediate.size={'null' if size is None else size}\n"
                f"- target={target}\n- seed={seed}\n")
            config = {
                "seed": seed, "data_seed": 0, "sweep_name": name,
                "model": {"name": model, "name_or_path": name_or_path},
                "intermediate": {"name": intermediate, "size": size},
                "target": {"name": target, "eval_size": None, "languages": list(languages), "eval_splits": [split]},
                "calibration": {"n_bins": n_bins, "temperature_scaling": temperature is not None,
                                "bootstrap": bootstrap,
                                "save_predictions": with_predictions},
            }
            (job_dir / ".hydra" / "config.yaml").write_text(json.dumps(config, indent=1))  # JSON is YAML
            cell = (size, seed)
            if cell in missing:
                continue
            config_hash = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:20]
            if cell in fail:
                record: dict[str, Any] = {"status": "failed", "xcal_version": "0.1.0", "config_hash": config_hash,
                                          "config": config, "error": "RuntimeError: CUDA out of memory\nTraceback..."}
                (job_dir / "results.json").write_text(json.dumps(record, indent=1))
                continue
            zeroshot: dict[str, Any] = {}
            for li, language in enumerate(languages):
                slope = slopes.get(language, slope_per_doubling)
                ece = planted_ece(language, numeric_size, seed, languages=languages, slope=slope, noise=noise,
                                  centre=centre)
                rng = np.random.default_rng([11, li, numeric_size, seed])
                logits, labels = planted_logits(ece, n, rng, n_bins)
                entry = _report(logits, labels, temperature, n_bins, bootstrap, seed)
                if with_plots:
                    (job_dir / "plots").mkdir(exist_ok=True)
                    (job_dir / "plots" / f"reliability_{language}_{split}.png").write_bytes(png)
                    entry["reliability_diagram"] = f"reliability_{language}_{split}.png"
                if with_predictions:
                    (job_dir / "predictions").mkdir(exist_ok=True)
                    np.savez_compressed(job_dir / "predictions" / f"{language}_{split}.npz", logits=logits,
                                        labels=labels, counts=np.ones(n, dtype=np.int64))
                zeroshot[language] = {split: entry}
            record = {
                "status": "ok", "xcal_version": "0.1.0", "config_hash": config_hash, "config": config,
                "intermediate": {"skipped": True} if numeric_size == 0 else
                {"skipped": False, "train_examples": numeric_size, "reused": False},
                "target": {"train_examples": 1600, "steps": 100, "seconds": 1.0},
                "temperature": temperature, "primary_split": split, "zeroshot": zeroshot,
                "mean_over_languages": {split: {m: float(np.mean([zeroshot[la][split][m] for la in languages]))
                                                for m in ("accuracy", "ece", "brier", "nll")}},
                "evaluation": {"seconds": 0.1, "examples": n * len(languages)}, "seconds": 2.0,
            }
            if with_predictions:
                record["predictions"] = "predictions"
            text = json.dumps(record, indent=1)
            if cell in corrupt:
                text = text[: len(text) // 2]  # a copy cut off mid-file
            (job_dir / "results.json").write_text(text)


#: A committed study in miniature (the findings and the live-versus-study comparison read it): 3 languages,
#: 2 seeds, no example bootstrap or plots.
STUDY_LANGUAGES = ("en", "de", "ja")
STUDY_SETTINGS = {"languages": STUDY_LANGUAGES, "name": "study", "target": "multiemo", "model": "me5_small",
                  "n": 200, "bootstrap": 0, "with_plots": False, "seeds": (0, 1)}


def write_synthetic_study(root: Path) -> Path:
    """none (size 0), vitaminc 1000/4000/16000: ECE falls 0.02 per doubling (planted), baseline highest."""
    write_synthetic_sweep(root, sizes=(0,), intermediate="none", **STUDY_SETTINGS)
    return write_synthetic_sweep(root, sizes=(1000, 4000, 16000), intermediate="vitaminc", slope_per_doubling=-0.02,
                                 **STUDY_SETTINGS)
