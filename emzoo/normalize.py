"""Intensity normalisation used identically in training, prediction and the Space.

A model records its method in its config (``emzoo.normalization``); :func:`normalize` applies
it and returns the affine parameters so outputs can be mapped back to input units.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.stats import median_abs_deviation

from emzoo.errors import ConfigError

METHODS = ("standardize", "percentile", "none")


def remove_outliers(image: np.ndarray, threshold: float = 5.0, size: int = 3, tail: float = 0.1) -> np.ndarray:
    """Replace x-ray hits and hot or dead pixels by the local median: pixels further than
    ``threshold`` robust standard deviations from the local median (as in Sytwu et al.'s
    preprocessing) that are also among the frame's most extreme (``tail`` percent at either end).
    Without that second test, the peaks of atom columns one or two pixels wide and the edges of
    particles in a clean frame count as outliers: up to 17% of a HAADF frame was replaced.
    Float32 out (float64 for float64 in: such values may not fit float32)."""
    image = image.astype(np.float64 if image.dtype == np.float64 else np.float32, copy=False)  # no uint wrap-around
    median = ndimage.median_filter(image, size=size, mode="reflect")
    residual = image - median
    mad = median_abs_deviation(residual, axis=None, scale="normal")
    if mad == 0:
        mad = float(residual.std()) or 1.0
    low, high = np.percentile(image, [tail, 100 - tail])
    outliers = (np.abs(residual) > threshold * mad) & ((image > high) | (image < low))  # ties: saturated, bounded
    return np.where(outliers, median, image)


def standardize_params(image: np.ndarray) -> tuple[float, float]:
    # only float64 (or wider) can hold values whose squares overflow: no extra pass for other images
    peak = float(np.abs(image).max()) if image.dtype.kind == "f" and image.dtype.itemsize > 4 else 0.0
    if peak > 1e150:  # squares of such values overflow even float64: measure in units of the peak
        scaled = image / peak
        return float(scaled.mean()) * peak, float(scaled.std()) * peak or 1.0
    mean = float(image.mean(dtype=np.float64))  # float64: float16 sums overflow, 1e40 squares too
    std = float(np.std(image, dtype=np.float64))
    return mean, std if 0 < std < np.inf else 1.0


def percentile_params(image: np.ndarray, low: float = 1.0, high: float = 99.0) -> tuple[float, float]:
    lo, hi = np.percentile(image.astype(np.float64, copy=False), [low, high])
    return float(lo), float(hi - lo) if hi > lo else 1.0


def norm_params(image: np.ndarray, method: str = "standardize") -> tuple[float, float]:
    """The (shift, scale) of a normalisation method for this image."""
    if method == "standardize":
        return standardize_params(image)
    if method == "percentile":
        return percentile_params(image)
    if method == "none":
        return 0.0, 1.0
    raise ConfigError(f"normalization {method!r}: expected one of {', '.join(METHODS)}")


def apply_params(image: np.ndarray, params: tuple[float, float]) -> np.ndarray:
    """``(image - shift) / scale`` as float32, computed in float64 where float32 would overflow."""
    big = image.dtype == np.float64 and max(abs(params[0]), params[1]) > 1e30
    x = image.astype(np.float64 if big else np.float32)  # one working copy, normalised in place
    x -= params[0]
    x /= params[1]
    return x.astype(np.float32, copy=False)


def undo_params(output: np.ndarray, params: tuple[float, float]) -> np.ndarray:
    """An output back in the input's units (float64 where float32 would overflow)."""
    if max(abs(params[0]), params[1]) > 1e30:
        return output.astype(np.float64) * params[1] + params[0]
    output *= params[1]  # in place: memory grows with the image only
    output += params[0]
    return output


def normalize(image: np.ndarray, method: str = "standardize") -> tuple[np.ndarray, tuple[float, float]]:
    """Normalise with the method's shift and scale; returns both so the same transform can be
    applied to a target or undone on an output."""
    params = norm_params(image, method)
    return apply_params(image, params), params
