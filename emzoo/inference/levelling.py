"""Levelling: a micrograph less the smooth surface its background lies on (uneven illumination, a
support's thickness gradient), fitted only where a first pass found no particles, as SPM and EM
tools level a surface with its features masked.

Without it the segmentation models called the bright (HAADF) or dark (HRTEM) side of an unevenly
lit empty support particle: U-Net 4/424 HAADF 24% of a support with a 30% ramp, HRTEM 47%. A
plane or quadric fitted to the whole image removed the ramp but cost Dice on the corpus (HAADF
0.92 -> 0.87 / 0.79: large particles bend the fit); fitted under the first pass's background it
removes the ramp at a smaller cost (docs/bench_levelling.md). What cost remained came from frames
with no ramp to speak of: where the first pass missed large dark HRTEM particles, the plane
leaned towards them and levelling lost the rest. So the plane is subtracted only where it rises
across the frame by ``SIGNIFICANT_SWING`` times the scatter of the background's block means about
it, an uneven illumination rather than the trace of a missed particle (the bench counts the
validation frames that pass). The calibration decides per checkpoint. The second pass keeps the
first's normalisation: standardised again, a bare lattice without its gradient gained contrast
and was called particle (U-Net HAADF, a despiked test lattice: 2.1% -> 12.6%; kept: 4.2%).
``level="plane"`` costs a second pass; ``"auto"`` is the checkpoint's own choice (``level`` in its
config, made on its validation split by :mod:`emzoo.calibration`), ``"off"`` where it has none.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import median_abs_deviation
from torch import nn

from emzoo.errors import ConfigError

LEVELS = ("auto", "off", "plane")
BLOCKS = 16  # the image is fitted as BLOCKS x BLOCKS block medians: robust to noise and spikes
MIN_BACKGROUND = 0.9  # a block is background when this share of it is
MIN_SIDE = 64  # smaller images are not levelled
SIGNIFICANT_SWING = 10.0  # a plane's rise across the frame, in scatters of the background's block means


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise ConfigError(f"level={level!r}: expected one of {', '.join(LEVELS)}")
    return level


def model_level(model: nn.Module) -> str:
    """The levelling a checkpoint was calibrated to; ``"off"`` where it has none."""
    return (getattr(model, "emzoo_cfg", None) or {}).get("level", "off")


def _design(y: np.ndarray, x: np.ndarray, order: int) -> np.ndarray:
    terms = [np.ones_like(y), y, x] + ([y * y, x * x, x * y] if order >= 2 else [])
    return np.stack([t.ravel() for t in terms], 1)


def level(
    image: np.ndarray, order: int = 1, background: np.ndarray | None = None, min_swing: float = 0.0
) -> np.ndarray | None:
    """``image`` less a robustly fitted polynomial surface of ``order`` (1: a plane, 2: a quadric),
    its mean level kept; fitted to the blocks that are mostly ``background`` where that mask is
    given (three rounds, blocks further than 2.5 MADs from the fit left out). None where the image
    is too small, too little of it is background to fit to, or the surface rises across the frame
    by less than ``min_swing`` times the scatter (MAD) of the fitted blocks' means about it."""
    h, w = image.shape
    if min(h, w) < MIN_SIDE:
        return None
    bh, bw = h // BLOCKS, w // BLOCKS

    def blocks(a: np.ndarray) -> np.ndarray:
        tiles = a[: BLOCKS * bh, : BLOCKS * bw].reshape(BLOCKS, bh, BLOCKS, bw)
        return tiles.transpose(0, 2, 1, 3).reshape(-1, bh * bw)

    tiles = blocks(np.asarray(image, np.float64))
    medians = np.median(tiles, -1)
    usable = np.ones(len(medians), bool) if background is None else blocks(background).mean(-1) >= MIN_BACKGROUND
    centres = (np.arange(BLOCKS) + 0.5) / BLOCKS - 0.5
    a = _design(*np.meshgrid(centres, centres, indexing="ij"), order)
    if usable.sum() < 3 * a.shape[1]:  # three blocks per coefficient at least
        return None
    keep = usable.copy()
    for _ in range(3):
        coef = np.linalg.lstsq(a[keep], medians[keep], rcond=None)[0]
        fitted = a @ coef
        residual = medians - fitted
        spread = median_abs_deviation(residual[keep], scale="normal") + 1e-12
        keep = usable & (np.abs(residual - np.median(residual[keep])) < 2.5 * spread)
        if keep.sum() < len(coef):
            return None
    if min_swing > 0:  # means, not medians: low-dose counts make every block's median the same integer
        scatter = median_abs_deviation(tiles.mean(-1)[keep] - fitted[keep], scale="normal")
        if np.ptp(fitted) < min_swing * scatter:
            return None
    yy, xx = np.meshgrid((np.arange(h) + 0.5) / h - 0.5, (np.arange(w) + 0.5) / w - 0.5, indexing="ij")
    surface = (_design(yy, xx, order) @ coef).reshape(h, w)
    return (image - surface + coef[0]).astype(np.float32)
