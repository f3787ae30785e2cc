"""What levelling changes where a microscopist sees it: U-Net 4/424 HAADF (``--level`` off and
plane) on the unevenly lit empty supports of ``scripts/bench_empty_support.py`` and on the shipped
HAADF example, the particles it finds outlined in red. Writes docs/levelling.png.

    .venv/bin/python scripts/plot_levelling.py [--model NAME]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import emzoo
from emzoo.inference.predictor import Predictor

sys.path.insert(0, str(Path(__file__).parent))
from bench_empty_support import EXAMPLE, empty_supports  # noqa: E402

CASES = ("ramp 30% + noise", "low dose + ramp", "HAADF example, empty quarter")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet-4-424-emsim-haadf-seg")
    parser.add_argument("--out", type=Path, default=Path("docs/levelling.png"))
    args = parser.parse_args()
    supports = empty_supports()
    image, meta = emzoo.io.read(EXAMPLE)
    items = [(name, *supports[name]) for name in CASES] + [("HAADF example", image, meta["pixel_size_nm"])]
    model = emzoo.load(args.model)
    fig, axes = plt.subplots(2, len(items), figsize=(4 * len(items), 9.4))
    for row, level in enumerate(("off", "plane")):
        predictor = Predictor(model, level=level)
        for col, (name, x, pixel_size) in enumerate(items):
            mask = predictor(x, pixel_size) > 0.5
            ax = axes[row, col]
            ax.imshow(x, cmap="gray")
            ax.contour(mask, [0.5], colors="r", linewidths=0.8)
            ax.set_title(f"{name}\nlevel={level}: {100 * mask.mean():.1f}% called particle", fontsize=10)
            ax.axis("off")
    fig.suptitle(f"{args.model}: particles found (red), without and with levelling under the background")
    fig.tight_layout()
    fig.savefig(args.out, dpi=70)
    print(args.out)


if __name__ == "__main__":
    main()
