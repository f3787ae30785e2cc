"""The noise real detectors make, for measuring denoisers (and training them on it).

From a noise-free image: Poisson counting at a dose, Gaussian read noise, and the correlations
that independent-pixel models miss: a TEM camera's charge sharing (the noise of horizontal
neighbours correlates ~0.5, vertical ones ~0, as measured on real camera frames) and, for STEM,
the detector's bandwidth along the fast scan axis plus a random offset per scan line. A frame
series splits the same dose over independent frames (dose-fractionated recording).
"""

from __future__ import annotations

import numpy as np

STEM = ("haadf", "adf", "abf", "bf")
DOSE = {"hrtem": 20.0, "bf": 20.0, "haadf": 6.0, "adf": 6.0, "abf": 8.0}  # mean counts per pixel, whole series
READ_NOISE = 0.8  # counts, per frame
LINE_NOISE = 0.05  # scan-line offset, in units of the mean signal


def _neighbour_sum(counts: np.ndarray) -> np.ndarray:
    """Average each pixel with its right-hand neighbour: noise correlation 0.5 along x, 0 along y."""
    return 0.5 * (counts + np.roll(counts, -1, axis=-1))


def expected_counts(clean: np.ndarray, dose: float) -> np.ndarray:
    """The mean counts per pixel a detector records of ``clean`` at ``dose`` (mean counts per
    pixel): contrast kept, no zero counts. The noise-free target in the recording's units."""
    lo, hi = np.percentile(clean, [0.5, 99.5])
    signal = 0.1 + 0.9 * np.clip((clean - lo) / max(hi - lo, 1e-12), 0, 1)
    return signal / signal.mean() * dose


def record(expected: np.ndarray, modality: str, rng: np.random.Generator) -> np.ndarray:
    """One noisy recording of ``expected`` counts: Poisson, read noise, the neighbour correlation
    and (STEM) a random offset per scan line."""
    counts = rng.poisson(expected).astype(np.float32) + rng.normal(0, READ_NOISE, expected.shape)
    counts = _neighbour_sum(counts)  # charge sharing (camera) or detector bandwidth (STEM fast axis)
    if modality in STEM:
        counts += rng.normal(0, LINE_NOISE * float(expected.mean()), (counts.shape[0], 1))
    return counts.astype(np.float32)


def realistic_noise(
    clean: np.ndarray, modality: str, rng: np.random.Generator, frames: int = 1, dose: float | None = None
) -> np.ndarray:
    """``frames`` noisy recordings (frames, H, W) of ``clean`` in counts; their sum holds the dose
    (mean counts per pixel over the whole series)."""
    dose = DOSE.get(modality, 10.0) if dose is None else dose
    expected = expected_counts(clean, dose / frames)
    return np.stack([record(expected, modality, rng) for _ in range(frames)])


def neighbour_correlation(noise: np.ndarray) -> tuple[float, float]:
    """Correlation of ``noise`` between vertical and between horizontal neighbours (mean removed)."""
    d = noise.astype(np.float64) - noise.mean()

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        return float((a * b).mean() / max(np.sqrt((a * a).mean() * (b * b).mean()), 1e-12))

    return corr(d[1:], d[:-1]), corr(d[:, 1:], d[:, :-1])


def measured_correlation(frame_a: np.ndarray, frame_b: np.ndarray) -> tuple[float, float]:
    """Noise correlation of vertical and horizontal neighbours from two frames of one field (their
    difference is noise only): how the correlation quoted above is measured on real frames."""
    return neighbour_correlation(frame_a.astype(np.float64) - frame_b)
