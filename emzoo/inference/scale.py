"""Physical scale: run a model at the pixel size it was trained at.

A checkpoint records the pixel-size range (nm/px) of its training data. An image whose pixel
size lies outside it is resampled to the nearest end of the range (anti-aliased when shrinking),
the model runs there, and its output is brought back to the input's grid.
"""

from __future__ import annotations

import logging

import numpy as np
from torch import nn

from emzoo.errors import EmzooError

_log = logging.getLogger("emzoo.predict")
MIN_RESCALE = 0.02  # resampling by less than 2% is not worth the blur


def model_pixel_range(model: nn.Module) -> tuple[float, float] | None:
    value = (getattr(model, "emzoo_cfg", None) or {}).get("pixel_size_nm")
    if not value:
        return None
    lo, hi = (value, value) if isinstance(value, (int, float)) else value
    return float(lo), float(hi)


def working_scale(model: nn.Module, pixel_size_nm: float | None) -> float:
    """The zoom factor from the image to the model's scale (1.0: run as it is)."""
    if pixel_size_nm is not None and not (np.isfinite(pixel_size_nm) and pixel_size_nm > 0):
        raise EmzooError(f"pixel_size {pixel_size_nm}: expected a positive size in nm per pixel")
    bounds = model_pixel_range(model)
    if bounds is None:
        return 1.0
    if pixel_size_nm is None:
        _log.warning(
            "pixel size unknown (not in the file, no --pixel-size): assumed to be within the model's "
            "%.4g-%.4g nm/px; pass pixel_size= / --pixel-size if it is not",
            *bounds,
        )
        return 1.0
    target = min(max(pixel_size_nm, bounds[0]), bounds[1])
    zoom = pixel_size_nm / target
    return 1.0 if abs(zoom - 1.0) < MIN_RESCALE else zoom


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
