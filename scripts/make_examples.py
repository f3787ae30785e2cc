"""Regenerate the example micrographs bundled with the Space (emzoo/examples/): simulated,
16-bit, with their pixel sizes, from fixed seeds.

    .venv/bin/python scripts/make_examples.py
"""

from pathlib import Path

import numpy as np

from emzoo import io
from emzoo.data.simulate import simulate_adf_stem, simulate_hrtem_au

OUT = Path(__file__).resolve().parents[1] / "emzoo" / "examples"


def to_uint16(image: np.ndarray) -> np.ndarray:
    return (io.to_uint8(image, 0.1, 99.9).astype(np.uint16) * 257).astype(np.uint16)


def main() -> None:
    hrtem, _, meta = simulate_hrtem_au(np.random.default_rng(7), size=256, diameters_nm=(2.0, 5.0))
    io.write(OUT / "hrtem_au_nanoparticles.tif", to_uint16(hrtem), {"pixel_size_nm": meta["pixel_size_nm"]})
    stem, meta = simulate_adf_stem(np.random.default_rng(3), size=256)
    io.write(OUT / "adf_stem_noisy.tif", to_uint16(stem["image"]), {"pixel_size_nm": meta["pixel_size_nm"]})
    for path in sorted(OUT.glob("*.tif")):
        print(path, io.read(path)[1]["pixel_size_nm"])


if __name__ == "__main__":
    main()
