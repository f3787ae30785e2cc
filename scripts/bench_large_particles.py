"""Where a segmentation checkpoint loses its whole-frame Dice: the test frames that are mostly
particle (one particle larger than the field) against the others, at the native scale and at coarser
working scales, and how many such frames the training split holds.

    python scripts/bench_large_particles.py unet-4-424-emsim-haadf-seg

Each test frame is scored as recorded, with the checkpoint's calibrated inference defaults
(`emzoo.inference.predictor.Predictor`: border, polarity, levelling, peak).
"""

from __future__ import annotations

import argparse

import numpy as np

from emzoo import io
from emzoo.build import subset_for
from emzoo.hub import load
from emzoo.inference.predictor import Predictor
from emzoo.zoo.catalog import SHIPPED_DIR

MOSTLY = 0.5  # a frame at least this fraction particle
SCALES = (1.0, 0.5, 0.25)


def particle_fraction(mask_path) -> float:
    return float((io.read(mask_path)[0] > 0).mean())


def dice(counts: np.ndarray) -> float:
    tp, fp, fn = counts
    return float(2 * tp / max(2 * tp + fp + fn, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="shipped segmentation checkpoints")
    parser.add_argument("--folder", help="score this model folder (a build's challenger) instead of the shipped one")
    parser.add_argument("--scales", type=float, nargs="+", default=SCALES, help="working scales (default: 1 0.5 0.25)")
    args = parser.parse_args()
    for name in args.names:
        subset = subset_for(name)
        train = [particle_fraction(m) for m in sorted((subset / "train" / "masks").glob("*.png"))]
        held = sum(f for f in train if f >= MOSTLY) / max(sum(train), 1e-9)
        print(
            f"## {name}\n\nTraining split: {len(train)} frames, {sum(f == 0 for f in train)} particle-free, "
            f"{sum(f >= MOSTLY for f in train)} at least {MOSTLY:.0%} particle ({held:.0%} of the particle pixels).\n"
        )
        predictor = Predictor(load(args.folder or SHIPPED_DIR / name, verify=False), output="logits")
        counts = {(group, scale): np.zeros(3) for group in ("mostly", "other") for scale in args.scales}
        rows = []
        for mask_path in sorted((subset / "test" / "masks").glob("*.png")):
            truth = io.read(mask_path)[0] > 0
            if not truth.any():
                continue
            image = io.read(subset / "test" / "images" / f"{mask_path.stem}.tif")[0]
            group = "mostly" if truth.mean() >= MOSTLY else "other"
            per_scale = []
            for scale in args.scales:
                called = predictor(image, None, scale=scale) > 0
                frame = np.array([(called & truth).sum(), (called & ~truth).sum(), (~called & truth).sum()], float)
                counts[group, scale] += frame
                per_scale.append(dice(frame))
            if group == "mostly":
                rows.append((mask_path.stem, truth.mean(), per_scale))
        n_mostly = len(rows)
        print("| Test frames | " + " | ".join(f"Dice at scale {s:g}" for s in args.scales) + " |")
        print("|---|" + "---|" * len(args.scales))
        for group, label in (("mostly", f"at least {MOSTLY:.0%} particle ({n_mostly})"), ("other", "the others")):
            print(f"| {label} | " + " | ".join(f"{dice(counts[group, s]):.3f}" for s in args.scales) + " |")
        print("\n| Frame | Particle fraction | " + " | ".join(f"Dice at {s:g}" for s in args.scales) + " |")
        print("|---|---|" + "---|" * len(args.scales))
        for stem, fraction, per_scale in rows:
            print(f"| {stem} | {fraction:.2f} | " + " | ".join(f"{d:.2f}" for d in per_scale) + " |")
        print(flush=True)


if __name__ == "__main__":
    main()
