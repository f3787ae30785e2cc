"""Segmentation where real micrographs break it: by particle size, with the pixel size known and
withheld, on particle-free crystals and supports, and in the border strip.

On the held-out test split of the segmentation corpus (corpus 3: particles of 1-60 nm, from ~6 px
to larger than the frame, on amorphous and crystalline supports; other random streams than
training), plus ``--large`` 1024^2 STEM scenes of the same recipe from another seed (modality
``haadf-1024``/``adf-1024``: particles up to ~1,500 px, far beyond any receptive field), each shipped
segmentation model runs through ``emzoo.predict`` as a user would:

- ``known``: the file's pixel size given, ``scale="auto"``;
- ``withheld``: no pixel size, ``scale="auto"`` (the model picks its working scale from the image);
- ``native``: no pixel size, ``scale=1`` (what a model without a scale choice does);
- ``spike-free``: as ``known``, on the frame with its x-ray hits and hot pixels replaced by the local
  median (what a scanning detector or a cleaned camera frame gives: most real micrographs);
- ``zero-pad``: as ``known``, with the network's own zero padding at the image border (``--zero-pad``;
  the other modes use the border context each checkpoint was calibrated to, mirrored unless its
  config says ``zero``);
- ``as-is``: as ``known``, with ``polarity="as-is"``: images whose particles have the other contrast
  than the model's (the corpus records 15% with an inverted lookup table) are not inverted first.

Per particle-size bin (the image's mean true particle diameter: 1-3, 3-10, 10-30, 30-60 nm) and per
modality: pixel-pooled Dice, particle count error and mean equivalent-diameter error
(scikit-image analysis of the prediction vs of the true instance labels, particles of at least
0.4 nm included). On particle-free images: area called particle and particles found. Border:
false-positive rate (predicted particle where there is none) in the outer 32 px vs the interior.
Writes docs/bench_segment.json and docs/bench_segment.md.

    .venv/bin/python scripts/bench_segment.py [--models NAME ...] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import emzoo
from emzoo import io
from emzoo.build import corpus_for
from emzoo.calibration import border_strip
from emzoo.data.corpus import MODALITY_CYCLE, SEGMENT_GROUP, records, seen_diameters_nm, simulate_sample
from emzoo.data.corpus.constants import SEGMENT_CORPUS_VERSION
from emzoo.inference.particles import analyze_particles
from emzoo.inference.polarity import model_polarity_confidence
from emzoo.inference.predictor import Predictor, model_border
from emzoo.normalize import remove_outliers
from emzoo.zoo import RECIPES, ZOO

BINS = ((1, 3), (3, 10), (10, 30), (30, 60))
# mode: (scale, pixel size known, spikes removed from the input, mirrored border context, polarity)
MODES = {  # scale, pixel size known, despiked, mirrored border (None: the checkpoint's calibrated one), polarity
    "known": ("auto", True, False, None, "auto"),
    "withheld": ("auto", False, False, None, "auto"),
    "native": (1.0, False, False, None, "auto"),
    "spike-free": ("auto", True, True, None, "auto"),
    "zero-pad": ("auto", True, False, False, "auto"),
    "as-is": ("auto", True, False, None, "as-is"),
}


def size_bin(diameter_nm: float) -> str | None:
    for lo, hi in BINS:
        if lo <= diameter_nm < hi or (hi == BINS[-1][1] and diameter_nm >= lo):
            return f"{lo}-{hi} nm"
    return "<1 nm" if diameter_nm < 1 else None


class Tally:
    """Pixel and particle sums of one (model, mode, modality, bin) cell."""

    def __init__(self) -> None:
        self.tp = self.fp = self.fn = 0
        self.count_true = self.count_pred = 0
        self.diam_true: list[float] = []
        self.diam_pred: list[float] = []
        self.images = 0

    def add(self, mask: np.ndarray, truth_labels: np.ndarray, pixel: float, found) -> None:
        truth = truth_labels > 0
        self.tp += int((mask & truth).sum())
        self.fp += int((mask & ~truth).sum())
        self.fn += int((~mask & truth).sum())
        # the true instances, as labelled (touching particles stay apart)
        ids, areas = np.unique(truth_labels[truth], return_counts=True)
        keep = areas * pixel**2 >= np.pi / 4 * 0.4**2
        self.count_true += int(keep.sum())
        self.diam_true += list(2 * np.sqrt(areas[keep] / np.pi) * pixel)
        self.count_pred += found.summary["count"]
        self.diam_pred += [row["equivalent_diameter_nm"] for row in found.rows]
        self.images += 1

    def row(self) -> dict:
        dice = 2 * self.tp / max(2 * self.tp + self.fp + self.fn, 1)
        mean_true = float(np.mean(self.diam_true)) if self.diam_true else None
        mean_pred = float(np.mean(self.diam_pred)) if self.diam_pred else None
        return {
            "images": self.images,
            "dice": round(dice, 4),
            "count_true": self.count_true,
            "count_pred": self.count_pred,
            "count_error": round((self.count_pred - self.count_true) / max(self.count_true, 1), 4),
            "mean_diameter_true_nm": round(mean_true, 3) if mean_true else None,
            "mean_diameter_pred_nm": round(mean_pred, 3) if mean_pred else None,
            "diameter_error": round(mean_pred / mean_true - 1, 4) if mean_true and mean_pred else None,
        }


_LARGE: dict[str, list] = {}


def large_scenes(group: str, n: int) -> list[dict]:
    """``n`` STEM scenes of 1024^2 (corpus 3's recipe, seed 1: never trained on), where a particle
    can span ~1,500 px: the real micrographs' case of particles far larger than a receptive field.
    Fresh copies per call (the caller pops the arrays)."""
    if group != "stem" or n <= 0:
        return []
    if group not in _LARGE:
        found, index = [], 0
        while len(found) < n:
            if MODALITY_CYCLE[index % len(MODALITY_CYCLE)] in ("haadf", "adf"):
                s = simulate_sample(1, "test", index, 1024, version=SEGMENT_CORPUS_VERSION)
                if s["particles"]:
                    found.append(
                        {
                            "modality": f"{s['modality']}-1024",
                            "content": s["content"],
                            "pixel_size_nm": s["pixel_size_nm"],
                            "particles": s["particles"],
                            "image": s["image"],
                            "truth": s["instances"].astype(int),
                        }
                    )
            index += 1
        _LARGE[group] = found
    return [dict(r) for r in _LARGE[group]]


def bench_model(name: str, limit: int | None, n_large: int = 0, zero_pad: bool = False) -> dict:
    model = emzoo.load(name)
    modes = {m: v for m, v in MODES.items() if zero_pad or m != "zero-pad"}
    predictors = {
        (mirror, polarity): Predictor(model, mirror_border=mirror, polarity=polarity)
        for *_, mirror, polarity in modes.values()
    }
    corpus = corpus_for(RECIPES[ZOO[name].recipe])
    group = "tem" if "hrtem" in name else "stem"
    folder = corpus / "segment" / group / "test"
    samples = [r for r in records(corpus, split="test") if SEGMENT_GROUP.get(r["modality"]) == group]
    samples = samples[:limit] if limit else samples
    cells: dict[tuple, Tally] = defaultdict(Tally)
    empty: dict[tuple, list] = defaultdict(list)
    border = defaultdict(lambda: [0, 0, 0, 0])  # fp in strip, background px in strip, fp inside, background inside
    scales: dict[str, list] = defaultdict(list)
    scenes = [(r, folder / "images" / f"{r['name']}.tif", folder / "instances" / f"{r['name']}.tif") for r in samples]
    scenes += [(r, None, None) for r in large_scenes(group, n_large)]
    for r, image_path, truth_path in tqdm(scenes, desc=name, unit="img"):
        if image_path is None:
            image, truth = r.pop("image"), r.pop("truth")
        else:
            image, truth = io.read(image_path)[0], io.read(truth_path)[0].astype(int)
        pixel = r["pixel_size_nm"]
        diameters = seen_diameters_nm(r)
        for mode, (scale, known, despiked, mirror, polarity) in modes.items():
            predictor = predictors[(mirror, polarity)]
            prob = predictor(remove_outliers(image) if despiked else image, pixel if known else None, scale=scale)
            found = analyze_particles(prob, pixel)
            mask = found.labels > 0
            scales[mode].append(predictor.last_scale.zoom)
            strip = border_strip(mask.shape)
            background = truth == 0
            tally = border[mode]
            tally[0] += int((mask & background & strip).sum())
            tally[1] += int((background & strip).sum())
            tally[2] += int((mask & background & ~strip).sum())
            tally[3] += int((background & ~strip).sum())
            if not diameters:
                empty[(mode, r["modality"], r["content"])].append((float(mask.mean()), found.summary["count"]))
                continue
            bin_name = size_bin(float(np.mean(diameters)))
            for key in ((mode, r["modality"], bin_name), (mode, "all", bin_name), (mode, r["modality"], "all")):
                cells[key].add(mask, truth, pixel, found)
    return {
        "model": name,
        "corpus": corpus.name,
        "images": len(samples),
        "border_context": model_border(model),
        "polarity_confidence": model_polarity_confidence(model),
        "cells": [{"mode": m, "modality": mod, "bin": b, **t.row()} for (m, mod, b), t in sorted(cells.items())],
        "particle_free": [
            {
                "mode": m,
                "modality": mod,
                "content": c,
                "images": len(v),
                "area_called_particle": round(float(np.mean([a for a, _ in v])), 5),
                "particles_found": int(sum(n for _, n in v)),
            }
            for (m, mod, c), v in sorted(empty.items())
        ],
        "border": {
            m: {
                "fp_rate_outer_32px": round(t[0] / max(t[1], 1), 5),
                "fp_rate_interior": round(t[2] / max(t[3], 1), 5),
            }
            for m, t in border.items()
        },
        "median_zoom": {m: float(np.median(v)) for m, v in scales.items()},
    }


def write_markdown(result: dict, path: Path) -> None:
    lines = [
        f"Measured by `scripts/bench_segment.py` on {result['machine']} ({result['seconds']:.0f} s), "
        "held-out test split of the segmentation corpus (corpus 3), whole 256^2 frames, and 1024^2 STEM scenes "
        "(`-1024`). "
        "Dice / count error / mean-diameter error per particle-size bin (the image's mean particle diameter).",
        "",
        "| Model | pixel size | modality | " + " | ".join(f"{lo}-{hi} nm" for lo, hi in BINS) + " | all sizes |",
        "|---|---|---|" + "---|" * (len(BINS) + 1),
    ]
    for model in result["models"]:
        cells = {(c["mode"], c["modality"], c["bin"]): c for c in model["cells"]}
        modalities = sorted({c["modality"] for c in model["cells"]})
        for mode in (m for m in MODES if m in model["border"]):
            for modality in modalities:
                row = [model["model"], mode, modality]
                for bin_name in [f"{lo}-{hi} nm" for lo, hi in BINS] + ["all"]:
                    c = cells.get((mode, modality, bin_name))
                    if c is None or modality == "all" and bin_name == "all":
                        row.append("")
                        continue
                    derr = f"{100 * c['diameter_error']:+.0f}%" if c["diameter_error"] is not None else "-"
                    row.append(f"{c['dice']:.2f} / {100 * c['count_error']:+.0f}% / {derr} ({c['images']})")
                lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Particle-free images (crystal lattices, bare supports): area called particle and particles found; "
        "border: false-positive rate in the outer 32 px vs the interior.",
        "",
        "| Model | pixel size | particle-free: area / particles (images) | border FP rate: outer 32 px / interior |",
        "|---|---|---|---|",
    ]
    for model in result["models"]:
        for mode in (m for m in MODES if m in model["border"]):  # results of before a mode was added
            free = [f for f in model["particle_free"] if f["mode"] == mode]
            n = sum(f["images"] for f in free)
            area = sum(f["area_called_particle"] * f["images"] for f in free) / max(n, 1)
            count = sum(f["particles_found"] for f in free)
            b = model["border"][mode]
            lines.append(
                f"| {model['model']} | {mode} | {100 * area:.2f}% / {count} ({n}) "
                f"| {100 * b['fp_rate_outer_32px']:.2f}% / {100 * b['fp_rate_interior']:.2f}% |"
            )
    lines += ["", "Each checkpoint's inference defaults, chosen on its validation split (`emzoo zoo calibrate`):", ""]
    lines += [
        f"- {m['model']}: border context `{m['border_context']}`, polarity confidence {m['polarity_confidence']}"
        for m in result["models"]
        if "border_context" in m
    ]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="shipped segmentation models (default: all)")
    parser.add_argument("--limit", type=int, help="test images per model (default: all)")
    parser.add_argument("--large", type=int, default=4, help="extra 1024^2 STEM scenes with large particles")
    parser.add_argument("--out", type=Path, default=Path("docs/bench_segment.json"))
    parser.add_argument("--append", action="store_true", help="keep the other models already in --out")
    parser.add_argument("--zero-pad", action="store_true", help="also run with zero padding at the border")
    args = parser.parse_args()
    names = args.models or [n for n, e in sorted(ZOO.items()) if e.shipped_folder is not None and e.task == "segment"]
    start = time.perf_counter()
    models = [bench_model(name, args.limit, args.large, args.zero_pad) for name in names]
    seconds = time.perf_counter() - start
    if args.append and args.out.is_file():
        before = json.loads(args.out.read_text())
        models = [m for m in before["models"] if m["model"] not in names] + models
        seconds += before["seconds"]
    result = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "seconds": seconds,
        "limit": args.limit,
        "large": args.large,
        "models": models,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    write_markdown(result, args.out.with_suffix(".md"))
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
