"""Working scale: run a model where the image's particles look like the ones it was trained on.

A checkpoint records the pixel-size range (nm/px) of its training data and, for segmentation,
the range of particle diameters (px of its input) it saw. The zoom from the image to the
network's grid (``working = image * zoom``) is

- ``scale=<float>``: that zoom, as given;
- ``scale="auto"``, restoration: the pixel size brought into the trained range (1.0 when unknown);
- ``scale="auto"``, segmentation: a ladder of zooms by factors of 2 (each rung below the first
  costs a quarter of the one above). At each rung the particles found are measured; the anchor is
  the finest rung where the mask is mostly round particles of a size the model was trained on, and
  a finer rung replaces it only where its mask agrees with the anchor's. This works whether or not
  the pixel size is known: a 30 nm particle at 0.0075 nm/px (4,000 px), which a 424-px receptive
  field sees as texture and its lattice fringes as stripes, is anchored where it is ~100 px
  across (the anti-aliased resampling removes the fringes), while particles the model already
  segments at the native scale are kept there. A known pixel size bounds the ladder to the trained
  pixel-size range, widened by ``PIXEL_SLACK``.

Outputs come back at the input's size (2x for super-resolution).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from torch import nn

from emzoo.errors import ConfigError, DataError

_log = logging.getLogger("emzoo.predict")
MIN_RESCALE = 0.02  # resampling by less than 2% is not worth the blur
PIXEL_SIZE_LIMITS = (1e-5, 1e4)  # nm/px: from below a picometre to 10 um; anything else is a misread file
MAX_WORKING_PIXELS = 2**27  # 134 Mpx (~11,600^2): beyond this an upsampling asks for more than a workstation has
MIN_WORKING_SIDE = 64  # px: the coarsest rung of the ladder keeps at least this many pixels across
PIXEL_SLACK = 4.0  # auto may leave the trained pixel-size range by this factor when particles ask for it
MIN_ROUNDNESS = 0.3  # minor/major axis: below this a "particle" is a stripe (lattice fringes)
MIN_SOLIDITY = 0.7  # area / convex area: below this a "particle" is ragged texture
MIN_SHAPED = 0.8  # a rung's mask is trusted when this much of it is particle-shaped
DEFAULT_PARTICLE_PX = (6.0, 120.0)  # when a checkpoint records no particle range
EMPTY_FRACTION = 0.005  # a native mask below this area is taken as particle-free (coarser rungs are not asked)
AGREEMENT = 0.85  # Dice between a rung's mask and the next coarser one's for the two to agree


@dataclass
class ScaleChoice:
    """What a prediction ran at: reported in logs, CSV/JSON summaries and the Space."""

    zoom: float  # working grid pixels per input pixel
    method: str  # "given", "pixel-size", "particles", "native"
    working_pixel_size_nm: float | None = None
    particle_diameter_px: float | None = None  # median particle diameter on the working grid
    candidates: list | None = None  # (zoom, fit, median diameter px) per rung, for auto
    polarity: str | None = None  # segmentation: "as-is" or "inverted" (emzoo.inference.polarity)
    levelled: bool | None = None  # segmentation with level="plane": whether a plane was subtracted
    unsure_dropped: int | None = None  # segmentation with a peak: pixels of regions it never reached

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def describe(self) -> str:
        text = f"scale {self.zoom:.4g} ({self.method})"
        if self.working_pixel_size_nm:
            text += f", working pixel size {self.working_pixel_size_nm:.4g} nm"
        if self.particle_diameter_px:
            text += f", particles ~{self.particle_diameter_px:.0f} px across there"
        if self.polarity == "inverted":
            text += ", image inverted (its particles have the other contrast than the model's)"
        if self.levelled:
            text += ", levelled (the plane under the first pass's background subtracted)"
        if self.unsure_dropped:
            text += f", {self.unsure_dropped} px in regions the model was never sure of left as background"
        return text


def _cfg(model: nn.Module) -> dict:
    return getattr(model, "emzoo_cfg", None) or {}


def model_pixel_range(model: nn.Module) -> tuple[float, float] | None:
    value = _cfg(model).get("pixel_size_nm")
    if not value:
        return None
    lo, hi = (value, value) if isinstance(value, (int, float)) else value
    return float(lo), float(hi)


def model_particle_range(model: nn.Module) -> tuple[float, float]:
    """Particle diameters (px of the network's input) the checkpoint was trained on."""
    value = _cfg(model).get("particle_px")
    if value and len(value) == 2 and 0 < value[0] < value[1]:
        return float(value[0]), float(value[1])
    rf = getattr(model, "receptive_field", None)
    return (DEFAULT_PARTICLE_PX[0], min(DEFAULT_PARTICLE_PX[1], rf / 3)) if rf else DEFAULT_PARTICLE_PX


def check_pixel_size(pixel_size_nm, name: str = "pixel_size") -> float | None:
    """A plausible pixel size in nm, or None; one line naming the value otherwise."""
    if pixel_size_nm is None:
        return None
    if isinstance(pixel_size_nm, bool) or not isinstance(pixel_size_nm, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name}={pixel_size_nm!r}: expected a number of nm per pixel")
    value = float(pixel_size_nm)
    lo, hi = PIXEL_SIZE_LIMITS
    if not (np.isfinite(value) and lo <= value <= hi):
        raise DataError(f"{name}={pixel_size_nm!r}: expected a pixel size between {lo:g} and {hi:g} nm per pixel")
    return value


def check_scale(scale) -> float | str:
    if scale is None or scale == "auto":
        return "auto"
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise ConfigError(f"scale={scale!r}: expected 'auto' or a positive zoom factor (0.5 halves the image)")
    if not (np.isfinite(scale) and 1e-3 <= float(scale) <= 16):
        raise ConfigError(f"scale={scale!r}: expected 'auto' or a zoom factor between 0.001 and 16")
    return float(scale)


def working_shape(shape: tuple[int, int], zoom: float) -> tuple[int, int]:
    out = (max(8, round(shape[0] * zoom)), max(8, round(shape[1] * zoom)))
    if out[0] * out[1] > MAX_WORKING_PIXELS:
        raise DataError(
            f"image of {shape[0]}x{shape[1]} px at scale {zoom:.4g} would be {out[0]}x{out[1]} px; "
            "check the pixel size, or pass a smaller scale"
        )
    return out


def pixel_zoom(model: nn.Module, pixel_size_nm: float | None) -> float:
    """The zoom that brings a known pixel size into the model's trained range (1.0: it is in it)."""
    bounds = model_pixel_range(model)
    if bounds is None or pixel_size_nm is None:
        return 1.0
    target = min(max(pixel_size_nm, bounds[0]), bounds[1])
    zoom = pixel_size_nm / target  # finer working pixels (zoom > 1) where the image's are coarser
    return 1.0 if abs(zoom - 1.0) < MIN_RESCALE else zoom


def zoom_limits(model: nn.Module, pixel_size_nm: float | None, shape: tuple[int, int]) -> tuple[float, float]:
    """The zooms auto may try: the coarsest keeps ``MIN_WORKING_SIDE`` px, the finest stays within
    the pixel budget; a known pixel size keeps the working pixel size near the trained range."""
    lo = min(1.0, MIN_WORKING_SIDE / max(shape))
    hi = min(2.0, math.sqrt(MAX_WORKING_PIXELS / 4 / (shape[0] * shape[1])))
    bounds = model_pixel_range(model)
    if bounds is not None and pixel_size_nm is not None:
        lo = max(lo, pixel_size_nm / (bounds[1] * PIXEL_SLACK))
        hi = min(max(hi, pixel_zoom(model, pixel_size_nm)), pixel_size_nm / (bounds[0] / PIXEL_SLACK))
        hi = max(hi, lo)
    return lo, hi


def particle_fit(mask: np.ndarray, particle_px: tuple[float, float]) -> tuple[float, float | None, float]:
    """How much of ``mask`` is round particles within the trained diameter range, their
    area-weighted median diameter (px), and how much of it is particle-shaped at all (round and
    solid, any size). Stripes (fringes) and ragged texture count against both."""
    from skimage.measure import label, regionprops

    regions = [r for r in regionprops(label(mask, connectivity=2)) if r.area >= 4]
    if not regions:
        return 0.0, None, 0.0
    areas = np.array([r.area for r in regions], float)
    diameters = np.array([r.equivalent_diameter_area for r in regions])
    roundness = np.array([r.axis_minor_length / max(r.axis_major_length, 1e-6) for r in regions])
    solidity = np.array([r.solidity for r in regions])
    shaped = (roundness >= MIN_ROUNDNESS) & (solidity >= MIN_SOLIDITY)
    good = shaped & (diameters >= particle_px[0]) & (diameters <= particle_px[1])
    order = np.argsort(diameters)
    cumulative = np.cumsum(areas[order])
    median = float(diameters[order][np.searchsorted(cumulative, cumulative[-1] / 2)])
    return float(areas[good].sum() / areas.sum()), median, float(areas[shaped].sum() / areas.sum())


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two masks (1 where both are empty)."""
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


def choose_by_particles(
    segment: Callable[[float], np.ndarray],
    shape: tuple[int, int],
    zoom_range: tuple[float, float],
    particle_px: tuple[float, float],
) -> tuple[float, dict[float, np.ndarray], list]:
    """Walk a ladder of zooms (factors of 2 from the finest allowed, at most 1 unless the particles
    are still small there, down to the coarsest); ``segment(zoom)`` returns the foreground
    probability at that zoom. Chosen: the finest rung whose mask is particle-shaped (round, solid)
    and agrees with the next coarser rung's, itself particle-shaped (Dice >= ``AGREEMENT``): the
    finest scale where the model sees the same particles as one scale down. Stripes from lattice
    fringes, ragged texture and particles missed at a fine scale fail this; failing everywhere,
    the finest rung where the mask is round particles of the trained size.
    Returns the chosen zoom, the maps computed and a per-rung (zoom, fit, median diameter) table."""
    lo, hi = zoom_range
    top = min(max(1.0, lo), hi)
    ladder = [top]
    while ladder[-1] / 2 >= lo * 0.999:
        ladder.append(ladder[-1] / 2)
    maps: dict[float, np.ndarray] = {}
    rows = []  # (zoom, fit, median, shape quality)
    for zoom in ladder:
        maps[zoom] = segment(zoom)
        rows.append((zoom, *particle_fit(maps[zoom] >= 0.5, particle_px)))
    # the particles are still small at the finest rung: go finer while the budget allows
    while rows[0][2] is not None and rows[0][2] < particle_px[0] and rows[0][0] * 2 <= hi * 1.001:
        zoom = rows[0][0] * 2
        maps[zoom] = segment(zoom)
        rows.insert(0, (zoom, *particle_fit(maps[zoom] >= 0.5, particle_px)))
    table = [(z, fit, median) for z, fit, median, _ in rows]
    native = 1.0 if 1.0 in maps else rows[0][0]
    if float((maps[native] >= 0.5).mean()) < EMPTY_FRACTION:  # (nearly) particle-free where the model sees finest
        return native, maps, table
    # finest first: a rung whose mask is particle-shaped and agrees with a coarser one's, itself
    # particle-shaped (the same particles seen at two scales: not stripes, not texture)
    for i, (zoom, _, median, shape) in enumerate(rows):
        if median is None or shape < MIN_SHAPED:
            continue
        for coarser, _, _, coarse_shape in rows[i + 1 :]:
            if coarse_shape < MIN_SHAPED:
                continue
            reference = resample(maps[coarser], maps[zoom].shape) >= 0.5
            if dice(maps[zoom] >= 0.5, reference) >= AGREEMENT:
                return zoom, maps, table
    native_row = next(row for row in rows if row[0] == native)
    if native_row[3] >= MIN_SHAPED:  # round, solid particles at native scale, only of an untrained size
        return native, maps, table
    # no two scales agree: the finest rung where the mask is round particles of a trained size,
    # the coarsest rung excluded (nothing coarser vouches for it; there a lattice blurs into blobs)
    checked = table[:-1] if len(table) > 1 else table
    best_fit = max(fit for _, fit, _ in checked)
    if best_fit <= 0:  # no particle of a trained size anywhere: the finest sensible rung
        return native, maps, table
    return next(z for z, fit, _ in checked if fit >= 0.8 * best_fit), maps, table


def resample(array: np.ndarray, shape: tuple[int, int], order: int = 1) -> np.ndarray:
    """Resize the last two axes of ``array`` to ``shape`` (anti-aliased when shrinking)."""
    from skimage.transform import resize

    if array.shape[-2:] == tuple(shape):
        return array
    shrinking = shape[0] < array.shape[-2] or shape[1] < array.shape[-1]
    # leading axes keep their size, which resize leaves untouched (no interpolation, no smoothing)
    out = resize(
        array, (*array.shape[:-2], *shape), order=order, mode="reflect", anti_aliasing=shrinking, preserve_range=True
    )
    return out.astype(np.float32)
