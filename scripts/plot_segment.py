"""What a microscopist sees: the shipped segmentation models on held-out images unlike the old
corpus (particles larger than the frame, lattice fringes, particles on crystals, particle-free
lattices), pixel size withheld, ``scale="auto"``; the particles found drawn over the image next to
the truth. Writes docs/segment_overlays.png; with ``--large``, docs/segment_overlays_large.png: 1024^2
scenes from a seed no model was trained on, particles of hundreds of pixels with lattice fringes,
inverted frames a particle mostly fills, bare lattices and supports (the issue's real micrographs' cases).

    .venv/bin/python scripts/plot_segment.py [--large]
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import emzoo
from emzoo import io
from emzoo.build import corpus_for
from emzoo.data.corpus import SEGMENT_GROUP, records, simulate_sample
from emzoo.data.corpus.constants import SEGMENT_CORPUS_VERSION
from emzoo.inference.predictor import Predictor
from emzoo.io import to_uint8
from emzoo.zoo import RECIPES

MODELS = {
    "stem": ("unet-4-424-emsim-haadf-seg", "hrnet-w18-small-emsim-haadf-seg"),
    "tem": ("unet-4-424-emsim-hrtem-seg", "hrnet-w18-small-emsim-hrtem-seg"),
}
# seed 1's test scenes at 1024^2 (never trained on): particles of 312 px on a lattice, an inverted
# particle of 466 px on a lattice, an inverted particle filling 85% of the field, one of 993 px
# on a lattice, a bare lattice, an HRTEM particle of 639 px, a bare HRTEM support
LARGE_SCENES = (19, 35, 11, 13, 41, 0, 2)
Scene = tuple[str, str, np.ndarray, np.ndarray]  # group, title, image, truth mask


def pick(corpus: Path) -> list[dict]:
    """Per group: the test image with the largest particles, one on a crystal, one particle-free lattice."""
    rows = []
    for group in ("stem", "tem"):
        test = [r for r in records(corpus, split="test") if SEGMENT_GROUP.get(r["modality"]) == group]
        with_particles = [r for r in test if r["particles"]]
        largest = max(
            with_particles, key=lambda r: max(p["seen_diameter_nm"] / r["pixel_size_nm"] for p in r["particles"])
        )
        on_crystal = next((r for r in with_particles if r["content"] == "particles-on-lattice"), None)
        lattice = next((r for r in test if r["content"] == "lattice"), None)
        rows += [(group, r) for r in (largest, on_crystal, lattice) if r is not None]
    return rows


def corpus_scenes() -> Iterator[Scene]:
    corpus = corpus_for(RECIPES["emsim-haadf-seg"])
    for group, r in pick(corpus):
        folder = corpus / "segment" / group / "test"
        image = io.read(folder / "images" / f"{r['name']}.tif")[0]
        truth = io.read(folder / "instances" / f"{r['name']}.tif")[0] > 0
        yield group, f"{r['modality']} {r['content']}, {r['pixel_size_nm']:.3f} nm/px", image, truth


def large_scenes() -> Iterator[Scene]:
    for index in LARGE_SCENES:
        s = simulate_sample(1, "test", index, 1024, version=SEGMENT_CORPUS_VERSION)
        largest = max((p["seen_diameter_nm"] / s["pixel_size_nm"] for p in s["particles"]), default=0)
        title = f"{s['modality']} {s['content']}, 1024^2" + (f", largest {largest:.0f} px" if largest else "")
        if s["params"].get("inverted"):
            title += ", inverted"
        yield SEGMENT_GROUP[s["modality"]], title, s["image"], s["instances"] > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="1024^2 scenes unlike the corpus' frames")
    args = parser.parse_args()
    scenes = list(large_scenes() if args.large else corpus_scenes())
    fig, axes = plt.subplots(len(scenes), 3, figsize=(9, 3 * len(scenes)))
    predictors = {}
    for row, (group, title, image, truth) in enumerate(scenes):
        gray = to_uint8(image)
        axes[row, 0].imshow(gray, cmap="gray")
        if truth.any():
            axes[row, 0].contour(truth, [0.5], colors="lime", linewidths=0.8)
        axes[row, 0].set_title(f"{title}\ntruth", fontsize=8)
        for col, name in enumerate(MODELS[group], start=1):
            if name not in predictors:
                predictors[name] = Predictor(emzoo.load(name))
            prob = predictors[name](image)  # pixel size withheld: the model picks its scale
            mask = prob > 0.5
            dice = 2 * (mask & truth).sum() / max(mask.sum() + truth.sum(), 1)
            axes[row, col].imshow(gray, cmap="gray")
            if mask.any():
                axes[row, col].contour(mask, [0.5], colors="orange", linewidths=0.8)
            choice = predictors[name].last_scale
            score = f"Dice {dice:.2f}" if truth.any() else f"{100 * mask.mean():.2f}% called particle"
            turned = ", inverted" if choice.polarity == "inverted" else ""
            axes[row, col].set_title(
                f"{name.replace('-emsim', '')}\n{score}, scale {choice.zoom:.3g}{turned}", fontsize=8
            )
            print(f"{title} | {name} | {score} | {choice.describe()}", flush=True)
        for ax in axes[row]:
            ax.axis("off")
    fig.tight_layout()
    out = Path("docs/segment_overlays_large.png" if args.large else "docs/segment_overlays.png")
    fig.savefig(out, dpi=80)
    print(out)


if __name__ == "__main__":
    main()
