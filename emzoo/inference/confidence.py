"""Hysteresis on a segmentation model's own confidence: a region it calls particle is kept only
where it is sure of it somewhere, its probability peaking at ``peak`` or above (Canny's hysteresis
thresholding, :func:`skimage.filters.apply_hysteresis_threshold`, with the decision threshold as
the low one).

Why: what the checkpoints call particle on an empty support (a support's thickness blobs, a
crop of the shipped example with no particle in it) is mostly where the network hedges, its
probability barely above 0.5, while true particles mostly reach far higher. The peak is chosen
per checkpoint on its validation split by :mod:`emzoo.calibration`, as high as costs no
measurable Dice (``emzoo zoo calibrate`` prints every peak's scores); 0.5 (the decision
threshold) keeps every region, and is what a checkpoint without a calibrated peak gets.
"""

from __future__ import annotations

import numpy as np
from skimage.filters import apply_hysteresis_threshold
from torch import nn

from emzoo.errors import ConfigError

OFF = 0.5  # the decision threshold itself: every region is kept
PEAKS = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))  # 0.50 .. 0.95, what calibration tries


def check_peak(peak) -> float | str:
    if peak == "auto":
        return peak
    if isinstance(peak, bool) or not isinstance(peak, (int, float, np.integer, np.floating)) or not OFF <= peak < 1:
        raise ConfigError(f"peak={peak!r}: expected 'auto' or a probability in [0.5, 1)")
    return float(peak)


def model_peak(model: nn.Module) -> float:
    """The peak a checkpoint was calibrated to; 0.5 (every region kept) where it has none."""
    return float((getattr(model, "emzoo_cfg", None) or {}).get("peak", OFF))


def unsure_regions(foreground: np.ndarray, peak: float) -> np.ndarray:
    """Pixels called particle (probability > 0.5) in regions whose probability stays below ``peak``."""
    called = foreground > OFF
    if peak <= OFF or not called.any():
        return np.zeros_like(called)
    return called & ~apply_hysteresis_threshold(foreground, OFF, np.nextafter(peak, 0))


def drop_unsure(raw: np.ndarray, unsure: np.ndarray) -> np.ndarray:
    """The network's raw (C, H, W) output with the ``unsure`` pixels turned to background, as sure of
    it as the network was of particle there (one logit: negated; several: the background class
    raised as far above the best other as it was below)."""
    if not unsure.any():
        return raw
    raw = raw.copy()
    if raw.shape[0] == 1:
        raw[0][unsure] = -raw[0][unsure]
    else:
        best_other = raw[1:, unsure].max(0)
        raw[0][unsure] = 2 * best_other - raw[0][unsure]
    return raw
