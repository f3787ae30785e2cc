"""What a microscopist sees: the shipped segmentation models on held-out images unlike the old
corpus (particles larger than the frame, lattice fringes, particles on crystals, particle-free
lattices), pixel size withheld, ``scale="auto"``; the particles found drawn over the image next to
the truth. Writes docs/segment_overlays.png.

    .venv/bin/python scripts/plot_segment.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import emzoo
from emzoo import io
from emzoo.build import corpus_for
from emzoo.data.corpus import SEGMENT_GROUP, records
from emzoo.inference.predictor import Predictor
from emzoo.io import to_uint8
from emzoo.zoo import RECIPES

MODELS = {
    "stem": ("unet-4-424-emsim-haadf-seg", "hrnet-w18-small-emsim-haadf-seg"),
    "tem": ("unet-4-424-emsim-hrtem-seg", "hrnet-w18-small-emsim-hrtem-seg"),
}


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


def main() -> None:
    corpus = corpus_for(RECIPES["emsim-haadf-seg"])
    chosen = pick(corpus)
    fig, axes = plt.subplots(len(chosen), 3, figsize=(9, 3 * len(chosen)))
    predictors = {}
    for row, (group, r) in enumerate(chosen):
        folder = corpus / "segment" / group / "test"
        image = io.read(folder / "images" / f"{r['name']}.tif")[0]
        truth = io.read(folder / "instances" / f"{r['name']}.tif")[0] > 0
        gray = to_uint8(image)
        axes[row, 0].imshow(gray, cmap="gray")
        axes[row, 0].contour(truth, [0.5], colors="lime", linewidths=0.8)
        axes[row, 0].set_title(f"{r['modality']} {r['content']}, {r['pixel_size_nm']:.3f} nm/px\ntruth", fontsize=8)
        for col, name in enumerate(MODELS[group], start=1):
            if name not in predictors:
                predictors[name] = Predictor(emzoo.load(name))
            prob = predictors[name](image)  # pixel size withheld: the model picks its scale
            mask = prob > 0.5
            dice = 2 * (mask & truth).sum() / max(mask.sum() + truth.sum(), 1)
            axes[row, col].imshow(gray, cmap="gray")
            if mask.any():
                axes[row, col].contour(mask, [0.5], colors="orange", linewidths=0.8)
            zoom = predictors[name].last_scale.zoom
            score = f"Dice {dice:.2f}" if truth.any() else f"{100 * mask.mean():.2f}% called particle"
            axes[row, col].set_title(f"{name.replace('-emsim', '')}\n{score}, scale {zoom:g}", fontsize=8)
        for ax in axes[row]:
            ax.axis("off")
    fig.tight_layout()
    out = Path("docs/segment_overlays.png")
    fig.savefig(out, dpi=80)
    print(out)


if __name__ == "__main__":
    main()
