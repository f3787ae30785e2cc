"""Draw a few samples of each simulated dataset, read back through emzoo's own loaders:
docs/simulated_samples.png.

    .venv/bin/python scripts/plot_samples.py [--out docs/simulated_samples.png]
"""

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from emzoo.data import load_dataset  # noqa: E402
from emzoo.data.simulate import simulate_dataset  # noqa: E402
from emzoo.tasks import RESTORATION_TASKS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/simulated_samples.png"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    seg = simulate_dataset("segment", tmp / "au", n=8, size=256, seed=1, progress=False)
    tem = simulate_dataset("denoise", tmp / "tem", n=6, size=256, seed=2, progress=False)
    fig, axes = plt.subplots(3, 4, figsize=(12, 9.4))
    au = load_dataset(seg, "segment", "train", image_size=None, augment=False, remove_outliers=False)
    for k in range(2):
        s = au[k]
        axes[0, 2 * k].imshow(s["image"][0], cmap="gray")
        axes[0, 2 * k].set_title(f"HRTEM, Au on a-C (abTEM) #{k}")
        axes[0, 2 * k + 1].imshow(s["image"][0], cmap="gray")
        axes[0, 2 * k + 1].contour(s["target"][0], levels=[0.5], colors="orange", linewidths=1)
        axes[0, 2 * k + 1].set_title("particle mask (projected Au potential)")
    for j, task in enumerate(RESTORATION_TASKS):
        s = load_dataset(tem, task, "train", image_size=None, augment=False)[0]
        if j == 0:
            axes[1, 0].imshow(s["image"][0], cmap="gray")
            axes[1, 0].set_title("ADF-STEM input: Poisson + scan noise + background")
        axes[1, j + 1].imshow(s["target"][0], cmap="gray")
        axes[1, j + 1].set_title(f"target: {task}")
    pre = load_dataset(tem, "pretext", "train", image_size=128, seed=0)
    for k in range(2):
        s = pre[k]
        axes[2, 2 * k].imshow(s["image"][0], cmap="gray")
        axes[2, 2 * k].set_title("pretext input (corrupted)")
        axes[2, 2 * k + 1].imshow(s["target"][0], cmap="gray")
        axes[2, 2 * k + 1].set_title("pretext target (clean)")
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=70)
    print(args.out, np.round(args.out.stat().st_size / 1e3), "kB")


if __name__ == "__main__":
    main()
