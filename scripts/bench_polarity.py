"""How much of a frame a segmentation model may find before ``polarity="auto"`` skips its second,
inverted pass (`emzoo.inference.polarity.NOTHING`): whole-frame Dice and particle-free area per
share, judged as `emzoo zoo build` judges (`emzoo.judge.whole_images`: each frame as recorded,
despiked and on a smooth background).

    python scripts/bench_polarity.py unet-4-424-emsim-haadf-seg --split val --shares 0 0.01 0.05 0.1 0.2

A share of 0 is the rule before it: a second pass only where the image's skewness disagrees. The
last column counts the decisions the surer-pass rule (`emzoo.inference.polarity.surer_inverted`: the
inverted pass wins where the model is surer of its particles there by ``SURER_BY``) took otherwise
than the rules before it; ``--surer off`` scores the split without it.
"""

from __future__ import annotations

import argparse

from emzoo.build import subset_for
from emzoo.hub import load
from emzoo.inference import polarity
from emzoo.inference import predictor as predictor_module
from emzoo.judge import whole_image_scores, whole_images

LIBRARY_RULE = polarity.prefers_inverted  # the predictor's own, kept before it is replaced below


def counting_surer_decisions(changed: list[int]):
    """``prefers_inverted``, appending 1 to ``changed`` where the surer-pass rule decides otherwise
    than the rules before it."""

    def decide(as_is, inverted, confidence=polarity.CONFIDENCE, nothing_as_is=False) -> bool:
        chosen = LIBRARY_RULE(as_is, inverted, confidence, nothing_as_is)
        saved, polarity.SURER_BY = polarity.SURER_BY, float("inf")
        before = LIBRARY_RULE(as_is, inverted, confidence, nothing_as_is)
        polarity.SURER_BY = saved
        if chosen != before:
            changed.append(1)
        return chosen

    return decide


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="shipped segmentation checkpoints")
    parser.add_argument("--split", default="val", choices=("val", "test"))
    parser.add_argument("--shares", type=float, nargs="+", default=(0.0, polarity.NOTHING))
    parser.add_argument("--surer", choices=("on", "off"), default="on", help="the surer-pass rule")
    args = parser.parse_args()
    if args.surer == "off":
        polarity.SURER_BY = float("inf")
    changed: list[int] = []
    predictor_module.prefers_inverted = counting_surer_decisions(changed)
    print("| Checkpoint | Split | Share | Surer-pass rule | Whole-frame Dice | Particle-free area | Changed |")
    print("|---|---|---|---|---|---|---|")
    for name in args.names:
        model, subset = load(name, verify=False), subset_for(name)
        for share in args.shares:
            polarity.NOTHING = share  # read by finds_nothing at each call
            changed.clear()
            scores = whole_image_scores(whole_images(model, subset, args.split))
            print(
                f"| {name} | {args.split} | {share:g} | {args.surer} | {scores['whole_dice']:.3f} | "
                f"{100 * scores['particle_free_area']:.2f}% | {len(changed)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
