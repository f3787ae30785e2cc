"""Empty supports: how much of an image without particles each shipped segmentation model calls
particle, as ``emzoo.predict`` runs it (scale, polarity and border at their defaults).

The images are what a microscopist meets between particles, unlike the corpus' particle-free
frames (lattices and supports at an even illumination): a flat support with noise; the same with
a gentle ramp (uneven illumination: 30% of the mean across the field); a support whose thickness
varies in blobs tens of pixels across; a low-dose frame (5-7 counts/px) with a ramp, and with a
gentler one (5-5.75 counts/px: less than the noise's std across the field), as counted (white
noise) and as a camera records it (``emzoo.data.noise``: neighbour-correlated counts); and the empty
upper-right quarter of the shipped HAADF example (no particle there), as it is and zoomed 2x with
no pixel size (a crop a user enlarged), and the same quarter of the whole example's prediction
(the quarter is no different, only the crop's normalisation). 512^2 each, one seed. Writes
docs/bench_empty_support.json and .md.

    .venv/bin/python scripts/bench_empty_support.py [--models NAME ...]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

import emzoo
from emzoo import io
from emzoo.data.noise import record
from emzoo.inference.predictor import Predictor
from emzoo.zoo import ZOO

EXAMPLE = Path(emzoo.__file__).parent / "examples" / "haadf_nanoparticles.tif"
WHOLE = "its quarter, whole example predicted"


def empty_supports() -> dict[str, tuple[np.ndarray, float | None]]:
    """Particle-free images and their pixel sizes (nm/px; None: withheld)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:512, :512] / 512
    thickness = ndimage.gaussian_filter(rng.normal(0, 1, (512, 512)), 40)
    example, meta = io.read(EXAMPLE)
    h, w = example.shape
    corner = example[: h // 2, w // 2 :]
    gentle = 5 + 0.75 * xx  # counts/px: a ramp fainter than the noise's std across the field
    return {
        "flat support + noise": (100 + rng.normal(0, 10, (512, 512)), 0.05),
        "ramp 30% + noise": (100 + 30 * xx + rng.normal(0, 10, (512, 512)), 0.05),
        "thickness blobs + noise": (100 + 20 * thickness / thickness.std() + rng.normal(0, 10, (512, 512)), 0.05),
        "low dose + ramp": (rng.poisson(5 + 2 * xx).astype(np.float64), 0.05),
        "low dose + gentle ramp": (rng.poisson(gentle).astype(np.float64), 0.05),
        "same, camera noise": (record(gentle, "hrtem", rng).astype(np.float64), 0.05),
        "HAADF example, empty quarter": (corner, meta["pixel_size_nm"]),
        "same, zoomed 2x, no pixel size": (ndimage.zoom(corner, 2, order=1), None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="shipped segmentation models (default: all)")
    parser.add_argument("--out", type=Path, default=Path("docs/bench_empty_support.json"))
    args = parser.parse_args()
    names = args.models or [n for n, e in sorted(ZOO.items()) if e.shipped_folder is not None and e.task == "segment"]
    images = empty_supports()
    example, meta = io.read(EXAMPLE)  # the quarter again, the whole example predicted: a crop's normalisation
    quarter = np.s_[: example.shape[0] // 2, example.shape[1] // 2 :]
    start = time.perf_counter()
    rows = {}
    for name in names:
        predictor = Predictor(emzoo.load(name))
        rows[name] = {label: round(float((predictor(x, px) > 0.5).mean()), 4) for label, (x, px) in images.items()}
        rows[name][WHOLE] = round(float((predictor(example, meta["pixel_size_nm"]) > 0.5)[quarter].mean()), 4)
        print(name, rows[name], flush=True)
    result = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "seconds": round(time.perf_counter() - start, 1),
        "area_called_particle": rows,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        f"Measured by `scripts/bench_empty_support.py` on {result['machine']} ({result['seconds']:.0f} s): "
        "the share of a particle-free image called particle (target: < 0.5%).",
        "",
        "| Model | " + " | ".join([*images, WHOLE]) + " |",
        "|---|" + "---|" * (len(images) + 1),
    ]
    lines += [f"| {n} | " + " | ".join(f"{100 * v:.1f}%" for v in r.values()) + " |" for n, r in rows.items()]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
