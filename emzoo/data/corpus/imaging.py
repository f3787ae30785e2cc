"""Imaging a scene: HRTEM by abTEM multislice (plus absorption), STEM in the incoherent
approximation, the particle footprints, backgrounds, drift and scan distortion."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from emzoo.data.corpus.constants import STEM_EXPONENT


def _splat(xy_px: np.ndarray, weights: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear deposit of weighted points on a grid (positions in pixels)."""
    h, w = shape
    x0 = np.floor(xy_px[:, 0]).astype(int)
    y0 = np.floor(xy_px[:, 1]).astype(int)
    fx, fy = xy_px[:, 0] - x0, xy_px[:, 1] - y0
    grid = np.zeros(shape, np.float64)
    for dx, dy, wt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xs, ys = x0 + dx, y0 + dy
        ok = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
        np.add.at(grid, (ys[ok], xs[ok]), (weights * wt)[ok])
    return grid


def _hrtem(
    rng: np.random.Generator, xyz: np.ndarray, numbers: np.ndarray, fov: float, gpts: int
) -> tuple[np.ndarray, dict]:
    """Plane-wave multislice image intensity (mean 1) of the atoms, by abTEM."""
    import abtem
    import ase

    depth = float(xyz[:, 2].max()) + 4.0 if len(xyz) else 4.0
    atoms = ase.Atoms(
        numbers=numbers,
        positions=np.column_stack([xyz[:, :2] % fov, xyz[:, 2] + 2.0]),
        cell=[fov, fov, depth],
        pbc=True,
    )
    energy = float(rng.choice([200e3, 300e3]))
    corrected = rng.random() < 0.5
    sampling = fov / gpts
    params = {
        "energy_kV": energy / 1e3,
        "defocus_A": float(rng.uniform(-150, 150) if corrected else rng.uniform(-900, 300) * max(1.0, sampling / 0.3)),
        "Cs_A": float(rng.uniform(-3e4, 3e4) if corrected else rng.uniform(0.5e7, 1.5e7)),
        "semiangle_cutoff_mrad": float(rng.uniform(12, 30)),
        "focal_spread_A": float(rng.uniform(10, 60)),
        "angular_spread_mrad": float(rng.uniform(0.05, 0.5)),
    }
    ctf = abtem.CTF(
        energy=energy,
        defocus=params["defocus_A"],
        Cs=params["Cs_A"],
        semiangle_cutoff=params["semiangle_cutoff_mrad"],
        focal_spread=params["focal_spread_A"],
        angular_spread=params["angular_spread_mrad"],
    )
    potential = abtem.Potential(
        atoms, gpts=gpts, slice_thickness=max(2.0, min(4.0, 8 * sampling)), projection="infinite"
    )
    with abtem.config.set({"fft": "numpy"}):  # one plan per size: the same bytes in every process
        wave = abtem.PlaneWave(energy=energy).multislice(potential)
        intensity = wave.apply_ctf(ctf).intensity().compute(progress_bar=False).array
    intensity = np.asarray(intensity, np.float64).T  # abTEM indexes (x, y); images are (row, column)
    return intensity / intensity.mean(), {k: round(v, 3) for k, v in params.items()}


def _absorb(
    rng: np.random.Generator, image: np.ndarray, xyz: np.ndarray, numbers: np.ndarray, fov: float, gpts: int
) -> tuple[np.ndarray, dict]:
    """Scattering outside the objective aperture (thermal diffuse and high-angle elastic): a
    mass-thickness attenuation exp(-k * sum Z^1.7 per A^2), which the multislice at the corpus'
    sampling cannot represent (its grid holds angles up to only ~lambda / 3 sampling). Heavy
    particles darken, thin carbon hardly does: the amplitude contrast of real HRTEM of metals."""
    pixel = fov / gpts
    density = _splat(xyz[:, :2] / pixel, numbers.astype(float) ** 1.7, (gpts, gpts)) / pixel**2
    density = ndimage.gaussian_filter(density, 0.6 / pixel, mode="wrap")
    k = float(np.exp(rng.uniform(np.log(1e-4), np.log(4e-4))))
    attenuated = image * np.exp(-k * density)
    return attenuated / attenuated.mean(), {"absorption_per_Z17_per_A2": round(k, 6)}


def _stem(rng: np.random.Generator, xyz: np.ndarray, numbers: np.ndarray, fov: float, gpts: int, detector: str):
    """Incoherent STEM image (max ~1): atoms weighted by Z^n, convolved with a probe with tails."""
    lo, hi = STEM_EXPONENT[detector]
    exponent = float(rng.uniform(lo, hi))
    pixel = fov / gpts
    sigma = float(rng.uniform(0.35, 0.9))  # probe, A
    image = _splat(xyz[:, :2] / pixel, numbers.astype(float) ** exponent, (gpts, gpts))
    probe = 0.85 * ndimage.gaussian_filter(image, sigma / pixel, mode="wrap")
    image = probe + 0.15 * ndimage.gaussian_filter(image, 4 * sigma / pixel, mode="wrap")
    image /= max(np.percentile(image, 99.9), 1e-12)
    if detector == "abf":
        image = 1.0 - 0.6 * np.clip(image, 0, 1.5)
    return image, {"detector_exponent": round(exponent, 2), "probe_sigma_A": round(sigma, 2)}


def _footprints(particles: list[dict], fov: float, size: int) -> tuple[np.ndarray, list[float]]:
    """Instance labels (1..n, later particles on top) from the convex hull of each particle's
    projected atoms, and each particle's diameter as seen (equivalent-area, nm)."""
    from skimage.morphology import convex_hull_image

    pixel = fov / size
    labels = np.zeros((size, size), np.uint16)
    yy, xx = np.mgrid[0:size, 0:size]
    for k, p in enumerate(particles, start=1):
        xy = p["positions"][:, :2] / pixel
        x0, y0 = np.floor(xy.min(axis=0)).astype(int) - 2
        x1, y1 = np.ceil(xy.max(axis=0)).astype(int) + 3
        w, h = x1 - x0, y1 - y0
        grid = np.zeros((h, w), bool)
        ix = np.clip(np.round(xy - [x0, y0]).astype(int), 0, [w - 1, h - 1])
        grid[ix[:, 1], ix[:, 0]] = True
        hull = convex_hull_image(grid)
        ys, xs = np.nonzero(hull)
        ys, xs = ys + y0, xs + x0
        ok = (ys >= 0) & (ys < size) & (xs >= 0) & (xs < size)
        labels[ys[ok], xs[ok]] = k
    del yy, xx
    areas = np.bincount(labels.ravel(), minlength=len(particles) + 1)[1:]
    return labels, [round(float(2 * np.sqrt(a / np.pi) * pixel / 10), 3) for a in areas]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma=size / rng.uniform(3, 10), mode="reflect")
    field = (field - field.min()) / (np.ptp(field) + 1e-12)
    yy, xx = np.mgrid[0:size, 0:size] / size
    ramp = rng.uniform(-0.5, 0.5) * xx + rng.uniform(-0.5, 0.5) * yy
    field = field + ramp - (field + ramp).min()
    return field / max(field.max(), 1e-12)


def _motion_blur(rng: np.random.Generator, image: np.ndarray, max_px: float) -> tuple[np.ndarray, dict]:
    """Specimen drift (a line kernel) and vibration (isotropic Gaussian) during the exposure."""
    length = float(rng.uniform(0, max_px))
    angle = float(rng.uniform(0, np.pi))
    vib = float(rng.uniform(0, 0.4 * max_px))
    steps = max(1, int(np.ceil(length * 2)))
    out = np.zeros_like(image)
    for t in np.linspace(-0.5, 0.5, steps):
        out += ndimage.shift(image, (t * length * np.sin(angle), t * length * np.cos(angle)), order=1, mode="wrap")
    out = ndimage.gaussian_filter(out / steps, vib, mode="wrap") if vib > 0 else out / steps
    return out, {"drift_blur_px": round(length, 2), "vibration_px": round(vib, 2)}


def _scan_distortion(
    rng: np.random.Generator, arrays: list[np.ndarray], orders: list[int], warp: dict | None = None
) -> tuple[list, dict]:
    """Slow-scan drift: one affine warp (shear and stretch) applied to the scene and its labels;
    ``warp`` (a previous call's parameters) applies the same warp again."""
    if warp is None:
        shear, stretch = float(rng.normal(0, 0.03)), float(rng.normal(0, 0.02))
    else:
        shear, stretch = warp["drift_shear"], warp["drift_stretch"]
    matrix = np.array([[1 + stretch, 0.0], [shear, 1.0]])
    out = []
    for array, order in zip(arrays, orders):
        centre = np.array(array.shape) / 2
        offset = centre - matrix @ centre
        out.append(ndimage.affine_transform(array, matrix, offset=offset, order=order, mode="reflect"))
    return out, {"drift_shear": round(shear, 4), "drift_stretch": round(stretch, 4)}
