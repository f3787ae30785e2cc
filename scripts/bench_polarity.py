"""How much of a frame a segmentation model may find before ``polarity="auto"`` skips its second,
inverted pass (`emzoo.inference.polarity.NOTHING`): whole-frame Dice and particle-free area per
share, judged as `emzoo zoo build` judges (`emzoo.judge.whole_images`: each frame as recorded,
despiked and on a smooth background).

    python scripts/bench_polarity.py unet-4-424-emsim-haadf-seg --split val --shares 0 0.01 0.05 0.1 0.2

A share of 0 is the rule before it: a second pass only where the image's skewness disagrees.
"""

from __future__ import annotations

import argparse

from emzoo.build import subset_for
from emzoo.hub import load
from emzoo.inference import polarity
from emzoo.judge import whole_image_scores, whole_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="shipped segmentation checkpoints")
    parser.add_argument("--split", default="val", choices=("val", "test"))
    parser.add_argument("--shares", type=float, nargs="+", default=(0.0, polarity.NOTHING))
    args = parser.parse_args()
    print("| Checkpoint | Split | Share | Whole-frame Dice | Particle-free area |")
    print("|---|---|---|---|---|")
    for name in args.names:
        model, subset = load(name, verify=False), subset_for(name)
        for share in args.shares:
            polarity.NOTHING = share  # read by finds_nothing at each call
            scores = whole_image_scores(whole_images(model, subset, args.split))
            print(
                f"| {name} | {args.split} | {share:g} | {scores['whole_dice']:.3f} | "
                f"{100 * scores['particle_free_area']:.2f}% |",
                flush=True,
            )


if __name__ == "__main__":
    main()
