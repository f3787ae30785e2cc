"""Paired augmentation (the same crop/flip/rotation for image and target) and the pretext
corruptions. Randomness comes from a generator seeded by (seed, epoch, index), so a sample is
the same whichever worker or process draws it, and a resumed run sees the same data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from emzoo.data.noise import expected_counts, record
from emzoo.zoo import DEFAULT_CORRUPTION

DETECTOR_DOSE = (2.0, 100.0)  # mean counts per pixel, drawn log-uniformly: low-dose to a well-exposed frame


@dataclass(frozen=True)
class Corruption:
    """Input corruptions of the pretext task (Kazimi et al.: noise and blur; flips and
    rotations are applied to input and target alike). Strengths are emzoo's defaults; the paper
    does not state them. Noise std is in units of the (standardised) image's std."""

    noise_std: tuple[float, float] = DEFAULT_CORRUPTION["noise_std"]
    blur_sigma: tuple[float, float] = DEFAULT_CORRUPTION["blur_sigma"]
    p_noise: float = DEFAULT_CORRUPTION["p_noise"]
    p_blur: float = DEFAULT_CORRUPTION["p_blur"]

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Blur and/or noise; when neither is drawn, noise, so no input is left clean."""
        out = clean
        blur = rng.random() < self.p_blur
        noise = rng.random() < self.p_noise or not blur
        if blur:
            out = ndimage.gaussian_filter(out, sigma=rng.uniform(*self.blur_sigma))
        if noise:
            out = out + rng.normal(0.0, rng.uniform(*self.noise_std), size=out.shape)
        return out.astype(np.float32, copy=False)


BACKGROUND_STRENGTH = (0.5, 3.0)  # a smooth background's std, in units of the image's
ZOOM_WINDOW = (0.4, 0.75)  # a zoomed window's side, as a share of the frame's shorter side


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index])


def random_crop_box(shape: tuple[int, int], size: int, rng: np.random.Generator | None) -> tuple[int, int]:
    """Top-left corner of a ``size`` crop: random with ``rng``, centred without."""
    h, w = shape
    if rng is None:
        return (h - size) // 2, (w - size) // 2
    return int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))


def flip_rotate(arrays: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """One random element of the dihedral group, applied to every array alike."""
    k = int(rng.integers(0, 4))
    flip = bool(rng.integers(0, 2))
    out = []
    for a in arrays:
        a = np.rot90(a, k, axes=(-2, -1))
        out.append(np.ascontiguousarray(a[..., ::-1] if flip else a))
    return out


def random_rescale(
    image: np.ndarray,
    target: np.ndarray | None,
    rng: np.random.Generator,
    scale_range=(0.8, 1.25),
    min_size: int = 0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize augmentation for segmentation: bilinear for the image, nearest for the mask. The
    scale never shrinks the image below ``min_size`` (the crop that follows), so images exactly
    the crop size stay usable."""
    scale = float(rng.uniform(*scale_range))
    scale = max(scale, min_size / min(image.shape)) if min_size else scale
    image = ndimage.zoom(image, scale, order=1)
    if target is not None:
        target = ndimage.zoom(target, scale, order=0)
    return image, target


def zoomed_window(
    image: np.ndarray,
    target: np.ndarray | None,
    rng: np.random.Generator,
    size: int,
    fraction=ZOOM_WINDOW,
) -> tuple[np.ndarray, np.ndarray | None]:
    """A random window of ``fraction`` of the frame enlarged to ``size`` (bilinear image, nearest
    mask): what a user's crop of a larger micrograph, zoomed, gives the network. Normalised after
    this, a window of bare support is stretched to full contrast on its own, as such a crop is at
    prediction (the models called 10-60% of one particle), and particles reach sizes the frames
    never hold whole."""
    side = max(2, round(min(image.shape) * float(rng.uniform(*fraction))))
    top, left = random_crop_box(image.shape, side, rng)
    window = np.s_[top : top + side, left : left + side]
    factor = size / side
    image = ndimage.zoom(image[window].astype(np.float32, copy=False), factor, order=1, grid_mode=True, mode="nearest")
    if target is not None:
        target = ndimage.zoom(target[window], factor, order=0, grid_mode=True, mode="nearest")
    return image, target


def add_noise(image: np.ndarray, rng: np.random.Generator, std_range=(0.0, 0.2)) -> np.ndarray:
    return (image + rng.normal(0.0, rng.uniform(*std_range), size=image.shape)).astype(np.float32)


def smooth_background(image: np.ndarray, rng: np.random.Generator, strength=BACKGROUND_STRENGTH) -> np.ndarray:
    """``image`` plus a smooth random field (uneven illumination, a support's thickness, a
    detector's drift: a ramp and blobs tens of pixels across) of ``strength`` times the image's own
    std. Nothing moves, so a segmentation label stays exact. Without it the segmentation models
    called 25-57% of an empty support with a gentle ramp particle."""
    h, w = image.shape
    field = ndimage.gaussian_filter(rng.normal(size=(h, w)), max(h, w) / rng.uniform(3, 10), mode="reflect")
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    field = field / (field.std() + 1e-12) + rng.uniform(-3, 3) * xx + rng.uniform(-3, 3) * yy
    field = (field - field.mean()) / (field.std() + 1e-12)
    return (image + rng.uniform(*strength) * float(np.std(image)) * field).astype(np.float32)


def detector_recording(clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``clean`` recorded again by a real detector (:mod:`emzoo.data.noise`: a camera's or a
    scan's correlated noise, at a random dose): the noisy input and its target in the same counts."""
    expected = expected_counts(clean, float(np.exp(rng.uniform(*np.log(DETECTOR_DOSE)))))
    detector = "hrtem" if rng.random() < 0.5 else "haadf"  # charge sharing, or scan lines as well
    return record(expected, detector, rng), expected.astype(np.float32)
