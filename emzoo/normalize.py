"""Intensity normalisation used identically in training, prediction and the Space.

A model records its method in its config (``emzoo.normalization``); :func:`normalize` applies
it and returns the affine parameters so outputs can be mapped back to input units.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

METHODS = ("standardize", "percentile", "none")


def remove_outliers(image: np.ndarray, threshold: float = 5.0, size: int = 3) -> np.ndarray:
    """Replace x-ray hits and hot pixels (further than ``threshold`` robust standard deviations
    from the local median) by the local median, as in Sytwu et al.'s preprocessing."""
    median = ndimage.median_filter(image, size=size, mode="reflect")
    residual = image - median
    mad = np.median(np.abs(residual - np.median(residual))) * 1.4826
    if mad == 0:
        mad = float(residual.std()) or 1.0
    outliers = np.abs(residual) > threshold * mad
    return np.where(outliers, median, image).astype(np.float32, copy=False)


def standardize_params(image: np.ndarray) -> tuple[float, float]:
    mean = float(image.mean())
    std = float(image.std())
    return mean, std if std > 0 else 1.0


def percentile_params(image: np.ndarray, low: float = 1.0, high: float = 99.0) -> tuple[float, float]:
    lo, hi = np.percentile(image, [low, high])
    return float(lo), float(hi - lo) if hi > lo else 1.0


def norm_params(image: np.ndarray, method: str = "standardize") -> tuple[float, float]:
    """The (shift, scale) of a normalisation method for this image."""
    if method == "standardize":
        return standardize_params(image)
    if method == "percentile":
        return percentile_params(image)
    if method == "none":
        return 0.0, 1.0
    raise ValueError(f"unknown normalisation '{method}'; expected one of {METHODS}")


def normalize(image: np.ndarray, method: str = "standardize") -> tuple[np.ndarray, tuple[float, float]]:
    """``(image - shift) / scale`` with the method's shift and scale; returns both so the same
    transform can be applied to a target or undone on an output."""
    shift, scale = norm_params(image, method)
    return ((image - shift) / scale).astype(np.float32, copy=False), (shift, scale)
