"""Contrast polarity: which way up a segmentation model needs the image.

A segmentation checkpoint learned its particles bright (HAADF/ADF-STEM) or dark (HRTEM); its
recipe says which. Given the other polarity (an export with an inverted lookup table, a BF-STEM
image given to the HAADF model), U-Net 4/424 found almost nothing: Dice 0.12 on the corpus' inverted
test frames, 0.60 on the same frames inverted back.

``polarity="auto"`` inverts an image only when two cues agree: the image's own contrast says its
particles are the other way up (the sign of Kelly's skewness of the smoothed intensities: a
minority of bright particles skews them bright), and the model finds more particle in the inverted
image than in the image as it is, confidently (mean probability inside its mask above
``CONFIDENCE``). Each cue alone misleads: the skewness flips where particles fill most of the frame,
and the model's area is no cue where it finds nothing either way; without the confidence, a bare
lattice without its x-ray spikes, inverted, was called 41% particle. A checkpoint calibrated at
build time carries its own confidence (``polarity_confidence``, chosen on its validation split by
:mod:`emzoo.calibration`). An image whose skewness agrees with the model and in which it finds
particles costs nothing more; the others cost a second pass.

Where a particle fills most of an inverted frame, its skewness says "the right way up" and the model
is sure of nothing in it as it is: the shipped HAADF model called nothing on 3 of the 9 test frames at
least half particle, all inverted, and found them inverted at Dice 0.83-0.96 with a confidence of
0.73-0.77, under its calibrated 0.83 (docs/bench_large_particles.md). So where the model is sure
of nothing as it is (``NOTHING``) and most of the frame inverted (``MOSTLY``), a lower confidence
(``MOSTLY_CONFIDENCE``) suffices: the particle-free frames of the validation split, inverted, were
called at most 21% particle.

The area cue fails the other way where a wrong-way-up model finds something: it calls the support,
more of the frame than the particles. So an inverted pass much surer of its particles
(:func:`surer_inverted`) wins whatever the areas.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from torch import nn

from emzoo.errors import ConfigError
from emzoo.zoo import RECIPES

POLARITIES = ("auto", "as-is", "inverted")
SMOOTHING_PX = 2.0  # the skewness of the noise is not the particles'
CONFIDENCE = 0.8  # inverted particles are found surely (0.83-0.95 on the corpus' inverted HAADF frames)
# the share of a frame the model is sure of (probability at its calibrated peak) below which it found
# nothing there (scripts/bench_polarity.py)
NOTHING = 0.01
MOSTLY = 0.3  # ... and at least this share called particle inverted: a frame a particle mostly fills
MOSTLY_CONFIDENCE = 0.7  # then this confidence suffices (0.73-0.80 on such inverted frames)
# a wrong-way-up model that finds something calls the support: more area than the particles, less sure
# of it. Where the inverted pass is surer of its particles by SURER_BY (and above MOSTLY_CONFIDENCE),
# it wins whatever the areas. Chosen on the validation splits: it changed 0-2 of the 540 decisions per
# checkpoint, none for the worse in Dice or particle-free area, and none on the U-Nets' test splits
# (scripts/bench_polarity.py, docs/bench_polarity.md)
SURER_BY = 0.15


def check_polarity(polarity: str) -> str:
    if polarity not in POLARITIES:
        raise ConfigError(f"polarity={polarity!r}: expected one of {', '.join(POLARITIES)}")
    return polarity


def model_particle_contrast(model: nn.Module) -> str | None:
    """How particles look in the model's training images ("bright", "dark"), from its recipe;
    None where no recipe says (a model trained elsewhere: ``auto`` leaves its images as they are)."""
    recipe = RECIPES.get((getattr(model, "emzoo_cfg", None) or {}).get("recipe") or "")
    return getattr(recipe, "particle_contrast", None)


def image_contrast(image: np.ndarray) -> str:
    """The image's particle contrast as its intensities say: "bright" where the smoothed intensities
    skew bright (Kelly's percentile skewness: robust to spikes, offset and gain), else "dark"."""
    smooth = ndimage.gaussian_filter(np.asarray(image, np.float32), SMOOTHING_PX)
    low, median, high = np.percentile(smooth, [10, 50, 90])
    return "bright" if high + low - 2 * median > 0 else "dark"


def model_polarity_confidence(model: nn.Module) -> float:
    """How sure the model must be of an inverted image's particles: its calibrated value, else
    ``CONFIDENCE``."""
    return float((getattr(model, "emzoo_cfg", None) or {}).get("polarity_confidence", CONFIDENCE))


def inverted_confidence(as_is: np.ndarray, inverted: np.ndarray) -> float | None:
    """The model's mean foreground probability inside its mask of the inverted image, where it finds
    more particle there than in the image as it is; None where it does not."""
    mask = inverted >= 0.5
    if not mask.any() or mask.mean() <= (as_is >= 0.5).mean():
        return None
    return float(inverted[mask].mean())


def prefers_inverted(
    as_is: np.ndarray, inverted: np.ndarray, confidence: float = CONFIDENCE, nothing_as_is: bool = False
) -> bool:
    """Whether the model's foreground probabilities on the inverted image beat those on the image as
    it is: surer of its particles (:func:`surer_inverted`, where it found some as it is), or more
    particle, found with a mean probability above ``confidence`` (or above
    ``MOSTLY_CONFIDENCE`` where it is most of the frame and ``nothing_as_is``: the model was sure of
    nothing in the image as it is, see :func:`finds_nothing`)."""
    if not nothing_as_is and surer_inverted(as_is, inverted):
        return True
    found = inverted_confidence(as_is, inverted)
    if found is None:
        return False
    mostly = nothing_as_is and (inverted >= 0.5).mean() >= MOSTLY
    return found > (min(confidence, MOSTLY_CONFIDENCE) if mostly else confidence)


def surer_inverted(as_is: np.ndarray, inverted: np.ndarray) -> bool:
    """Whether the model is surer of what it calls particle in the inverted image than in the image as
    it is, by ``SURER_BY``: an inverted HRTEM particle of 640 px had, as it is, its support called
    (68% of the frame, mean probability 0.62) and, inverted, itself (30%, 0.77)."""
    called, called_inverted = as_is >= 0.5, inverted >= 0.5
    if not (called.any() and called_inverted.any()):
        return False
    found = float(inverted[called_inverted].mean())
    return found >= MOSTLY_CONFIDENCE and found >= float(as_is[called].mean()) + SURER_BY


def finds_nothing(probability: np.ndarray, sure: float = 0.5) -> bool:
    """Whether a model is sure (``probability >= sure``, its calibrated peak) of less than ``NOTHING``
    of the frame. Its unsure regions do not count: they are dropped, and a sparse scene of small
    particles it is sure of must not cost (and risk) an inverted pass, whose bright support a model
    calls most of the frame."""
    return bool((probability >= max(sure, 0.5)).mean() < NOTHING)
