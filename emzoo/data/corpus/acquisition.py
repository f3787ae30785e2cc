"""Recording a noise-free image: dose, Poisson and read noise, camera MTF or scan artefacts,
gain, offset, quantisation, hot pixels, X-rays, contrast inversion."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from emzoo.data.corpus.constants import STEM_COLLECTION
from emzoo.data.corpus.imaging import _background


def _mtf(image: np.ndarray, f0: float) -> np.ndarray:
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.rfftfreq(image.shape[1])[None, :]
    mtf = np.sinc(fx) * np.sinc(fy) * np.exp(-(fx**2 + fy**2) / f0**2)
    return np.fft.irfft2(np.fft.rfft2(image) * mtf, s=image.shape)


def _acquire(
    rng: np.random.Generator, signal: np.ndarray, signal_2x: np.ndarray, modality: str, pixel_nm: float, version: int
):
    """Record a noise-free scene: returns (recorded image, targets in the same units, params)."""
    size = signal.shape[0]
    field = _background(rng, size)
    amplitude = rng.uniform(0.0, 0.8)
    if version >= 2 and modality in ("hrtem", "bf"):  # uneven illumination, milder than a STEM background
        amplitude *= 0.35
    bg = field * amplitude * max(signal.mean(), 0.05)
    with_bg = signal + bg
    dose = float(np.exp(rng.uniform(np.log(10), np.log(5000))))  # e/A^2
    e_per_px = max(dose * (pixel_nm * 10) ** 2 * STEM_COLLECTION.get(modality, 1.0), 1.0)
    scale = e_per_px / max(with_bg.mean(), 1e-6)
    counts = rng.poisson(np.clip(with_bg, 0, None) * scale).astype(np.float64)
    params: dict = {"dose_e_per_A2": round(dose, 1), "electrons_per_px": round(e_per_px, 2)}
    clean, clean_bgfree, sr = with_bg * scale, signal * scale, signal_2x * scale
    if modality == "hrtem":  # a camera: its MTF blurs signal and noise alike
        f0 = float(rng.uniform(0.25, 1.0))
        counts, clean, clean_bgfree = _mtf(counts, f0), _mtf(clean, f0), _mtf(clean_bgfree, f0)
        params["mtf_f0"] = round(f0, 3)
    else:  # a scan: rows jitter, the flyback smears the first columns
        jitter = float(rng.uniform(0, 0.7))
        shifts = rng.normal(0, jitter, size=size)
        counts = np.stack([ndimage.shift(row, s, order=1, mode="nearest") for row, s in zip(counts, shifts)])
        flyback = int(rng.integers(0, max(2, size // 25)))
        if flyback:
            counts[:, :flyback] = ndimage.uniform_filter1d(counts[:, : 2 * flyback], 5, axis=1)[:, :flyback]
        counts *= rng.normal(1.0, rng.uniform(0, 0.03), size=(size, 1))
        params.update(line_jitter_px=round(jitter, 2), flyback_px=flyback)
    read = float(rng.uniform(0, 3))
    gain = float(np.exp(rng.uniform(np.log(0.5), np.log(20))))
    offset = float(rng.uniform(0, 300))
    recorded = gain * (counts + rng.normal(0, read, size=counts.shape)) + offset
    targets = [gain * t + offset for t in (clean, clean_bgfree, sr)]
    hot = rng.random(recorded.shape) < rng.uniform(0, 2e-4)
    recorded[hot] += gain * e_per_px * rng.uniform(5, 50, size=int(hot.sum()))
    n_xray = int(rng.poisson(2)) if modality == "hrtem" else 0
    for _ in range(n_xray):
        y, x = rng.integers(0, size, 2)
        recorded[y : y + 2, x : x + int(rng.integers(1, 4))] += gain * e_per_px * rng.uniform(10, 100)
    dtype = str(rng.choice(["uint8", "uint16", "float32"], p=[0.3, 0.5, 0.2]))
    if dtype == "uint8":  # an 8-bit export: rescaled, a little saturation at both ends
        lo, hi = np.percentile(recorded, [0.05, 99.95])
        a = 250.0 / max(hi - lo, 1e-9)
        recorded, targets = (recorded - lo) * a, [(t - lo) * a for t in targets]
    top = {"uint8": 255.0, "uint16": 65535.0}.get(dtype)
    if top is not None:
        recorded = np.clip(np.round(recorded), 0, top)
    inverted = bool(rng.random() < 0.15)
    if inverted:
        ref = top if top is not None else float(recorded.max())
        recorded, targets = ref - recorded, [ref - t for t in targets]
    params.update(
        read_noise_e=round(read, 2),
        gain=round(gain, 3),
        offset=round(offset, 1),
        dtype=dtype,
        hot_pixels=int(hot.sum()),
        xray_spikes=n_xray,
        inverted=inverted,
    )
    return recorded.astype(dtype), [t.astype(np.float32) for t in targets], params
