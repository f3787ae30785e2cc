"""Writing the corpus in the loaders' layouts, resumably, in parallel; its index; the cached default."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from emzoo import io
from emzoo.data.corpus.constants import CORPUS_VERSION, MODALITIES, MODALITY_CYCLE, SEGMENT_GROUP
from emzoo.data.corpus.sample import simulate_sample
from emzoo.errors import ConfigError
from emzoo.fsutil import atomic_write, atomic_write_text, cache_root


def _sample_name(index: int, modality: str) -> str:
    return f"{index:05d}_{modality}"


def _write_sample(out: Path, seed: int, split: str, index: int, size: int, version: int = CORPUS_VERSION) -> dict:
    """Simulate and write one sample into every layout; its index file is written last."""
    record_path = out / "index" / split / f"{index:05d}.json"
    if record_path.is_file():
        return json.loads(record_path.read_text())
    start = time.perf_counter()
    s = simulate_sample(seed, split, index, size, version)
    name = _sample_name(index, s["modality"])
    meta = {"pixel_size_nm": s["pixel_size_nm"]}
    meta_2x = {"pixel_size_nm": s["pixel_size_nm"] / 2}
    image = io.write(out / "pretext" / split / s["modality"] / f"{name}.tif", s["image"], meta)
    restore = out / "restore" / split
    _link(image, restore / "image" / f"{name}.tif")
    io.write(restore / "noNoise" / f"{name}.tif", s["clean"], meta)
    io.write(restore / "noBackgroundnoNoise" / f"{name}.tif", s["bgfree"], meta)
    io.write(restore / "noNoiseNoBackgroundSuperresolution" / f"{name}.tif", s["sr"], meta_2x)
    group = SEGMENT_GROUP.get(s["modality"])
    if group:
        seg = out / "segment" / group / split
        _link(image, seg / "images" / f"{name}.tif")
        io.write(seg / "masks" / f"{name}.png", (s["instances"] > 0).astype(np.uint8), dtype="uint8")
        io.write(seg / "instances" / f"{name}.tif", s["instances"], meta, dtype="uint16")
    record = {
        "name": name,
        "split": split,
        "index": index,
        "modality": s["modality"],
        "content": s["content"],
        "pixel_size_nm": round(s["pixel_size_nm"], 6),
        "size": size,
        "segment_group": group,
        "particle_fraction": round(float((s["instances"] > 0).mean()), 5),
        "particles": s["particles"],
        "params": s["params"],
        "seconds": round(time.perf_counter() - start, 3),
    }
    record_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(record_path, json.dumps(record))
    return record


def _link(src: Path, dst: Path) -> None:
    """The same recorded image in another layout, as a hard link (a copy where links fail)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def _work(job: tuple) -> dict:
    return _write_sample(*job)


def build_corpus(
    out: str | Path,
    n_train: int = 960,
    n_val: int = 96,
    n_test: int = 192,
    size: int = 256,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    version: int = CORPUS_VERSION,
    modalities: tuple[str, ...] | None = None,
) -> Path:
    """Write (or finish) the corpus in ``out``; returns ``out``. Samples already written are kept.
    ``modalities`` keeps only the samples of those modalities (the others' indices stay unused)."""
    if modalities is not None and not set(modalities) <= set(MODALITIES):
        raise ConfigError(f"modalities {modalities}: expected some of {', '.join(MODALITIES)}")
    if size < 64 or size % 16:
        raise ConfigError(f"size {size}: expected a multiple of 16, at least 64 pixels")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"workers {workers!r}: expected a whole number of processes >= 1")
    counts = {"train": n_train, "val": n_val, "test": n_test}
    for split, n in counts.items():
        if n < 0:
            raise ConfigError(f"n_{split} {n}: expected a count >= 0")
    out = Path(out)
    manifest_path = out / "corpus.json"
    wanted = {"version": version, "size": size, "seed": seed, "counts": counts}
    if modalities is not None:
        wanted["modalities"] = sorted(modalities)
    if manifest_path.is_file():
        done = json.loads(manifest_path.read_text())
        if {k: done.get(k) for k in wanted} == wanted:
            return out
    if (out / "index").is_dir() and (out / ".build.json").is_file():
        previous = json.loads((out / ".build.json").read_text())
        same = ("version", "size", "seed")
        if {k: previous.get(k) for k in same} != {k: wanted[k] for k in same}:
            raise ConfigError(f"{out}: holds a corpus of other parameters ({previous}); choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / ".build.json").write_text(json.dumps(wanted))
    jobs = [
        (out, seed, split, i, size, version)
        for split, n in counts.items()
        for i in range(n)
        if modalities is None or MODALITY_CYCLE[i % len(MODALITY_CYCLE)] in modalities
    ]
    start = time.perf_counter()
    records: list[dict] = []
    workers = workers or os.cpu_count() or 1
    with tqdm(total=len(jobs), desc="simulating the corpus", unit="img", disable=not progress) as bar:
        if workers == 1:
            for job in jobs:
                records.append(_work(job))
                bar.update(1)
        else:
            with ProcessPoolExecutor(workers) as pool:
                for record in pool.map(_work, jobs, chunksize=4):
                    records.append(record)
                    bar.update(1)
    _write_index(out, records, wanted, time.perf_counter() - start, workers)
    return out


def _write_index(out: Path, records: list[dict], wanted: dict, seconds: float, workers: int) -> None:
    lines = "".join(json.dumps(r) + "\n" for r in records)
    atomic_write_text(out / "index.jsonl", lines)
    per_modality: dict[str, dict] = {}
    for modality in MODALITIES:
        rows = [r for r in records if r["modality"] == modality]
        if rows:
            per_sample = float(np.mean([r["seconds"] for r in rows]))
            per_modality[modality] = {
                "samples": len(rows),
                "seconds_per_sample_one_core": round(per_sample, 3),
                "images_per_second_one_core": round(1 / max(per_sample, 1e-9), 3),
                "content": dict(Counter(r["content"] for r in rows)),
            }
    pixel = [r["pixel_size_nm"] for r in records]
    manifest = dict(
        wanted,
        samples=len(records),
        pixel_size_nm=[min(pixel, default=None), max(pixel, default=None)],
        per_modality=per_modality,
        build_seconds=round(seconds, 1),
        workers=workers,
    )
    atomic_write_text(out / "corpus.json", json.dumps(manifest, indent=1))


def records(root: str | Path, split: str | None = None, modality: str | None = None) -> list[dict]:
    """The corpus index, optionally one split and one modality."""
    rows = [json.loads(line) for line in (Path(root) / "index.jsonl").read_text().splitlines() if line]
    return [
        r for r in rows if (split is None or r["split"] == split) and (modality is None or r["modality"] == modality)
    ]


def subset_records(root: str | Path, subset: str) -> list[dict]:
    """The training split's index rows of one part of the corpus (``segment/tem``: its modalities)."""
    rows = records(root, split="train")
    if subset.startswith("segment/"):
        rows = [r for r in rows if SEGMENT_GROUP.get(r["modality"]) == subset.split("/", 1)[1]]
    return rows


def subset_pixel_range(root: str | Path, subset: str) -> tuple[list[float], str]:
    """The pixel sizes (nm/px) of a corpus part's training split, and its modalities."""
    rows = subset_records(root, subset)
    sizes = [r["pixel_size_nm"] for r in rows]
    return [round(min(sizes), 5), round(max(sizes), 5)], ", ".join(sorted({r["modality"] for r in rows}))


def seen_diameters_nm(record: dict) -> list[float]:
    """Diameters (nm) of the particles an index row's image shows, as seen in the frame; empty
    for a particle-free image (a bare lattice or support). Corpora before v3 record only the
    particle's own diameter."""
    seen = (p.get("seen_diameter_nm", p.get("diameter_nm")) for p in record.get("particles", []))
    return [d for d in seen if d]


def default_corpus(progress: bool = True, workers: int | None = None, **kwargs) -> Path:
    """The corpus with the given parameters, built once into emzoo's cache (``$EMZOO_CACHE``)."""
    params = dict(n_train=960, n_val=96, n_test=192, size=256, seed=0)
    params.update(kwargs)
    version = params.pop("version", CORPUS_VERSION)
    if params.get("modalities") is None:
        params.pop("modalities", None)
    else:
        params["modalities"] = sorted(params["modalities"])
    key = hashlib.sha1(json.dumps([version, sorted(params.items())]).encode()).hexdigest()[:10]
    path = cache_root() / "corpus" / f"emsim-v{version}-{key}"
    return build_corpus(path, progress=progress, workers=workers, version=version, **params)
