"""Would levelling the image first (subtracting a fitted plane or quadric, as SPM and EM tools do
against uneven illumination) stop the segmentation models calling a ramp on an empty support
particle, without costing Dice on images with particles?

For each model: pixel-pooled Dice on the first ``--limit`` validation frames of its corpus group
(particle-free frames: mean area called particle) and the area called particle on the empty
supports of ``scripts/bench_empty_support.py``, as recorded, levelled by a plane and by a quadric
fitted to the whole image, and with ``level="plane"`` (the plane fitted under what a first pass
calls background, subtracted only where it rises clearly above the background's scatter; how many
validation frames it levelled is counted; :mod:`emzoo.inference.levelling`). ``emzoo.predict``
as a user runs it otherwise.
Writes docs/bench_levelling.json/.md.

    .venv/bin/python scripts/bench_levelling.py [--models NAME ...] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import emzoo
from emzoo import io
from emzoo.build import corpus_for
from emzoo.data.corpus import SEGMENT_GROUP, records
from emzoo.inference.levelling import level
from emzoo.inference.predictor import Predictor
from emzoo.zoo import RECIPES, ZOO

sys.path.insert(0, str(Path(__file__).parent))
from bench_empty_support import empty_supports  # noqa: E402

DEFAULT_MODELS = sorted(n for n, e in ZOO.items() if e.task == "segment" and e.shipped_folder is not None)
VARIANTS = {"as recorded": 0, "plane": 1, "quadric": 2, "level=plane": -1}


def segment(predictors: dict[str, Predictor], image: np.ndarray, pixel_size: float | None, order: int) -> np.ndarray:
    """The mask of ``image`` levelled by ``order`` over the whole image; -1: ``level="plane"``, the
    plane fitted under the first pass's background (what ``emzoo.predict`` offers)."""
    if order < 0:
        return predictors["plane"](image, pixel_size) > 0.5
    levelled = level(image, order) if order else image
    return predictors["off"](image if levelled is None else levelled, pixel_size) > 0.5


def bench_model(name: str, limit: int) -> dict:
    model = emzoo.load(name)
    predictors = {mode: Predictor(model, level=mode) for mode in ("off", "plane")}
    corpus = corpus_for(RECIPES[ZOO[name].recipe])
    group = "tem" if "hrtem" in name else "stem"
    folder = corpus / "segment" / group / "val"
    frames = [r for r in records(corpus, split="val") if SEGMENT_GROUP.get(r["modality"]) == group][:limit]
    overlap, total, free = np.zeros(len(VARIANTS)), np.zeros(len(VARIANTS)), [[] for _ in VARIANTS]
    levelled = 0
    for r in frames:
        image = io.read(folder / "images" / f"{r['name']}.tif")[0].astype(np.float64)
        truth = io.read(folder / "instances" / f"{r['name']}.tif")[0] > 0
        for k, order in enumerate(VARIANTS.values()):
            mask = segment(predictors, image, r["pixel_size_nm"], order)
            levelled += order < 0 and bool(predictors["plane"].last_scale.levelled)
            if truth.any():
                overlap[k] += (mask & truth).sum()
                total[k] += mask.sum() + truth.sum()
            else:
                free[k].append(mask.mean())
    empty = {
        label: [round(float(segment(predictors, x, px, order).mean()), 4) for order in VARIANTS.values()]
        for label, (x, px) in empty_supports().items()
    }
    return {
        "model": name,
        "frames": len(frames),
        "frames_levelled": int(levelled),
        "dice": [round(float(v), 4) for v in 2 * overlap / np.maximum(total, 1)],
        "particle_free_area": [round(float(np.mean(v)), 4) if v else None for v in free],
        "empty_supports": empty,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS))
    parser.add_argument("--limit", type=int, default=60, help="validation frames per model")
    parser.add_argument("--out", type=Path, default=Path("docs/bench_levelling.json"))
    args = parser.parse_args()
    start = time.perf_counter()
    rows = [bench_model(name, args.limit) for name in args.models]
    result = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "seconds": round(time.perf_counter() - start, 1),
        "variants": list(VARIANTS),
        "models": rows,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        f"Measured by `scripts/bench_levelling.py` on {result['machine']} ({result['seconds']:.0f} s). "
        "Each cell: " + " / ".join(VARIANTS) + ".",
        "",
        "| Model | val Dice | val particle-free area | " + " | ".join(empty_supports()) + " |",
        "|---|---|---|" + "---|" * len(empty_supports()),
    ]
    for row in rows:
        cells = [" / ".join(f"{v:.3f}" for v in row["dice"])]
        cells.append(" / ".join("-" if v is None else f"{100 * v:.1f}%" for v in row["particle_free_area"]))
        cells += [" / ".join(f"{100 * v:.1f}%" for v in areas) for areas in row["empty_supports"].values()]
        frames = f"{row['frames']} frames, {row['frames_levelled']} levelled"
        lines.append(f"| {row['model']} ({frames}) | " + " | ".join(cells) + " |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
