"""Segmentation checkpoints (shipped names or folders, e.g. an earlier version taken out of git) on
1024^2 scenes of a seed no model was trained on, as a microscopist runs them: pixel size withheld,
``scale="auto"``, each model's calibrated defaults. Per scene Dice (or the area called particle on a
particle-free scene), then pooled Dice and the mean particle-free area per model.

    git archive HEAD~1 emzoo/checkpoints/unet-4-424-emsim-hrtem-seg | tar -x -C /tmp/before
    python scripts/bench_large_scenes.py unet-4-424-emsim-hrtem-seg \\
        /tmp/before/emzoo/checkpoints/unet-4-424-emsim-hrtem-seg --group tem --scenes 10
"""

from __future__ import annotations

import argparse

import numpy as np

from emzoo.data.corpus import SEGMENT_GROUP, simulate_sample
from emzoo.data.corpus.constants import SEGMENT_CORPUS_VERSION
from emzoo.hub import load
from emzoo.inference.predictor import Predictor

SEED, SIZE = 1, 1024  # the figure's scenes (scripts/plot_segment.py --large)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="shipped segmentation checkpoints or their folders")
    parser.add_argument("--group", choices=("stem", "tem"), default="tem")
    parser.add_argument("--scenes", type=int, default=10, help="the first this many scenes of the group")
    args = parser.parse_args()
    predictors = [Predictor(load(m, verify=False)) for m in args.models]
    totals = [[0, 0, 0] for _ in args.models]  # tp, called, true
    empty: list[list[float]] = [[] for _ in args.models]
    print("| Scene | " + " | ".join(args.models) + " |")
    print("|---|" + "---|" * len(args.models))
    index, done = 0, 0
    while done < args.scenes:
        sample = simulate_sample(SEED, "test", index, SIZE, version=SEGMENT_CORPUS_VERSION)
        index += 1
        if SEGMENT_GROUP.get(sample["modality"]) != args.group:
            continue
        done += 1
        truth = sample["instances"] > 0
        cells = []
        for k, predictor in enumerate(predictors):
            called = predictor(sample["image"]) > 0.5
            if truth.any():
                tp = int((called & truth).sum())
                totals[k] = [totals[k][0] + tp, totals[k][1] + int(called.sum()), totals[k][2] + int(truth.sum())]
                cells.append(f"Dice {2 * tp / max(called.sum() + truth.sum(), 1):.2f}")
            else:
                empty[k].append(float(called.mean()))
                cells.append(f"{100 * called.mean():.2f}% called")
        inverted = ", inverted" if sample["params"].get("inverted") else ""
        print(
            f"| {index - 1}: {sample['modality']} {sample['content']}{inverted} | " + " | ".join(cells) + " |",
            flush=True,
        )
    pooled = [
        f"Dice {2 * tp / max(c + t, 1):.3f}, particle-free {100 * np.mean(e or [0]):.2f}%"
        for (tp, c, t), e in zip(totals, empty)
    ]
    print("| **pooled** | " + " | ".join(pooled) + " |")


if __name__ == "__main__":
    main()
