"""Draw samples of the simulated corpus, one row per modality: the recorded image (as its
file holds it), the particle mask over it, the noise-free, background-free and 2x targets.
Writes docs/corpus_samples.png.

    .venv/bin/python scripts/plot_corpus.py [--corpus DIR] [--out docs/corpus_samples.png]
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from emzoo.data.corpus import MODALITIES, simulate_sample  # noqa: E402


def _show(ax, image, title):
    lo, hi = np.percentile(image, [0.5, 99.5])
    ax.imshow(image, cmap="gray", vmin=lo, vmax=hi)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/corpus_samples.png"))
    parser.add_argument("--per-modality", type=int, default=2, help="samples per modality")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rows = []
    index = 0
    wanted = {m: args.per_modality for m in MODALITIES}
    while any(wanted.values()):
        sample = simulate_sample(args.seed, "test", index, 256)
        index += 1
        if wanted[sample["modality"]]:
            wanted[sample["modality"]] -= 1
            rows.append(sample)
    rows.sort(key=lambda s: MODALITIES.index(s["modality"]))
    fig, axes = plt.subplots(len(rows), 5, figsize=(12, 2.5 * len(rows)))
    for row, s in zip(axes, rows):
        p = s["params"]
        particles = f"{s['particles'][0]['element']} particles" if s["particles"] else None
        what = p.get("structure") or particles or p.get("support")
        _show(
            row[0],
            s["image"],
            f"{s['modality']}: {what}\n{s['pixel_size_nm']:.3f} nm/px, "
            f"{p['dose_e_per_A2']:.0f} e/A², {p['dtype']}{', inverted' if p['inverted'] else ''}",
        )
        _show(row[1], s["image"], f"mask: {len(s['particles'])} particles")
        mask = np.ma.masked_where(s["instances"] == 0, s["instances"])
        row[1].imshow(mask, cmap="tab20", alpha=0.45, interpolation="nearest")
        _show(row[2], s["clean"], "noise-free")
        _show(row[3], s["bgfree"], "background-free")
        _show(row[4], s["sr"], "2x (background-free)")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(args.out)


if __name__ == "__main__":
    main()
