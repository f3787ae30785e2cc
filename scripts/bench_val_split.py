"""How far a segmentation checkpoint's validation score is from its test score, on the default
validation split (the first 96 samples: 36 frames per segmentation group) and on the segmentation
corpus' larger one (480 samples): crop Dice as the Trainer validates, and whole-frame Dice and
particle-free area as `emzoo.judge` decides.

    python scripts/bench_val_split.py unet-4-424-emsim-haadf-seg unet-4-424-emsim-hrtem-seg
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from emzoo.build import subset_for
from emzoo.hub import load
from emzoo.judge import whole_image_scores, whole_images
from emzoo.train.evaluation import evaluate_model
from emzoo.zoo.catalog import RECIPES, SHIPPED_DIR, ZOO

DEFAULT_N_VAL = 96  # build_corpus's default validation split


def first_samples(subset: Path, split: str, n: int, into: Path) -> Path:
    """A subset folder holding links to the split's samples of index < ``n`` (names start with it)."""
    for kind in ("images", "masks"):
        folder = into / split / kind
        folder.mkdir(parents=True, exist_ok=True)
        for path in sorted((subset / split / kind).iterdir()):
            if int(path.name[:5]) < n:
                (folder / path.name).symlink_to(path)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="shipped segmentation checkpoints")
    args = parser.parse_args()
    print("| Checkpoint | Split | Frames | Crop Dice | Whole-frame Dice | Particle-free area |")
    print("|---|---|---|---|---|---|")
    for name in args.names:
        recipe, subset = RECIPES[ZOO[name].recipe], subset_for(name)
        folder = SHIPPED_DIR / name
        model = load(folder, verify=False)
        with tempfile.TemporaryDirectory() as tmp:
            small = first_samples(subset, "val", DEFAULT_N_VAL, Path(tmp))
            splits = ((f"val, first {DEFAULT_N_VAL} samples", small, "val"), ("val", subset, "val"))
            for label, where, split in (*splits, ("test", subset, "test")):
                crops = evaluate_model(
                    str(folder), str(where), split=split, image_size=recipe.image_size, batch_size=recipe.batch_size
                )
                whole = whole_image_scores(whole_images(model, where, split))
                print(
                    f"| {name} | {label} | {crops['n']} | {crops['dice']:.3f} | {whole['whole_dice']:.3f} "
                    f"| {100 * whole['particle_free_area']:.2f}% |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
