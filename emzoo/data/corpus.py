"""A simulated materials-EM corpus: broad, labelled, deterministic per sample, resumable.

Each sample is one scene imaged once, then recorded by a randomised detector:

- ``hrtem``: abTEM multislice (200/300 kV plane wave; CTF with defocus, Cs, objective aperture,
  focal spread and angular spread) of Au/Pt/Pd/Ag/Cu nanoparticles (spheres, octahedra, truncated
  octahedra, cuboctahedra, cubes, twinned particles, Ino decahedra, icosahedra; zone-axis or random
  orientations; isolated, touching, overlapping) on amorphous carbon, SiN or SiO2 of varied
  thickness, or thin crystals / 2-D materials (no particles); drift and vibration blur.
- ``haadf`` / ``adf`` / ``abf``: STEM in the incoherent approximation (projected atoms weighted
  by Z^n, convolved with a probe with tails; ABF as dark columns of a Z^0.6 image), ``bf``: STEM
  bright field by reciprocity with the HRTEM pipeline. Crystals of many structures and zone axes,
  and nanoparticles on supports. Scan line jitter, drift distortion and flyback artefacts.
- Acquisition: dose 10-5,000 e/A^2 (Poisson), read noise, detector MTF (TEM cameras), gain and
  offset, 8/16/32-bit quantisation with saturation, hot pixels, X-ray spikes, smooth background,
  contrast inversion; pixel sizes from 0.005 to 0.2 nm/px depending on modality and content.

Labels: semantic and instance particle masks, the noise-free image, the background-free image and
the 2x background-free image, all in the recorded image's units, plus every parameter and the
pixel size per sample (in the TIFF and in ``index.jsonl``). Layouts (read by the loaders as they are):

    pretext/{split}/{modality}/NAME.tif                         CEM500K's nested folders
    restore/{split}/image|noNoise|noBackgroundnoNoise|noNoiseNoBackgroundSuperresolution/NAME.tif
                                                                TEMImageNet's folders
    segment/{tem|stem}/{split}/images|masks|instances/NAME.*   images/ + masks/
    index.jsonl, corpus.json

Every sample draws from its own generator seeded by (seed, split, index), so a sample is the same
bytes whatever the order or the number of workers, the test split never shares a stream with
training, and an interrupted build resumes at the first missing sample.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

from emzoo import io
from emzoo.errors import EmzooError
from emzoo.fsutil import atomic_write_text, cache_root

CORPUS_VERSION = 2  # 2: absorption (amplitude contrast) in HRTEM and BF-STEM
MODALITY_CYCLE = ("hrtem", "haadf", "hrtem", "adf", "hrtem", "haadf", "abf", "bf")
MODALITIES = tuple(dict.fromkeys(MODALITY_CYCLE))
SPLITS = {"train": 0, "val": 1, "test": 2}
SEGMENT_GROUP = {"hrtem": "tem", "haadf": "stem", "adf": "stem"}  # where particles have one contrast
RESTORE_FOLDERS = ("image", "noNoise", "noBackgroundnoNoise", "noNoiseNoBackgroundSuperresolution")
METALS = {"Au": 4.08, "Pt": 3.92, "Pd": 3.89, "Ag": 4.09, "Cu": 3.61}
SUPPORTS = {"a-C": ((6,), 0.10), "a-SiN": ((14, 7), 0.09), "a-SiO2": ((14, 8, 8), 0.066)}  # Z, atoms/A^3
PARTICLE_SHAPES = (
    "sphere",
    "octahedron",
    "truncated-octahedron",
    "cuboctahedron",
    "cube",
    "twinned",
    "decahedron",
    "icosahedron",
)
STEM_EXPONENT = {"haadf": (1.7, 2.0), "adf": (1.3, 1.6), "abf": (0.5, 0.7)}
STEM_COLLECTION = {"haadf": 0.1, "adf": 0.3, "abf": 0.5, "bf": 0.8}


# ------------------------------------------------------------------------------------ atoms
def _lattice_structures() -> dict:
    from ase.build import bulk, graphene, mx2
    from ase.spacegroup import crystal

    return {
        "Si-diamond": lambda: bulk("Si", "diamond", a=5.43, cubic=True),
        "GaAs-zincblende": lambda: bulk("GaAs", "zincblende", a=5.65, cubic=True),
        "MgO-rocksalt": lambda: bulk("MgO", "rocksalt", a=4.21, cubic=True),
        "CeO2-fluorite": lambda: bulk("CeO2", "fluorite", a=5.41, cubic=True),
        "GaN-wurtzite": lambda: bulk("GaN", "wurtzite", a=3.19, c=5.19, orthorhombic=True),
        "ZnO-wurtzite": lambda: bulk("ZnO", "wurtzite", a=3.25, c=5.21, orthorhombic=True),
        "SrTiO3-perovskite": lambda: crystal(
            ["Sr", "Ti", "O"], basis=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)], spacegroup=221, cellpar=3.905
        ),
        "MoS2-2H": lambda: mx2("MoS2", kind="2H", a=3.18, thickness=3.19, vacuum=0.0),
        "WSe2-2H": lambda: mx2("WSe2", kind="2H", a=3.28, thickness=3.34, vacuum=0.0),
        "graphene": lambda: graphene("C2", a=2.46, vacuum=0.0),
    }


def _random_rotation(rng: np.random.Generator, zone_axis: bool) -> tuple[np.ndarray, str]:
    """A rotation matrix: a low-index zone axis along the beam (z) then a spin about z, or uniform."""
    from scipy.spatial.transform import Rotation

    spin = Rotation.from_euler("z", rng.uniform(0, 360), degrees=True)
    if not zone_axis:
        return Rotation.random(random_state=rng).as_matrix(), "random"
    zone = ("001", "011", "111")[int(rng.integers(3))]
    axis = np.array([int(c) for c in zone], float)
    tilt, _ = Rotation.align_vectors([[0, 0, 1]], [axis / np.linalg.norm(axis)])
    return (spin * tilt).as_matrix(), f"[{zone}]"


def _fcc_particle(rng: np.random.Generator, element: str, diameter_a: float) -> tuple[np.ndarray, str]:
    """Atom positions (A, centred) of one fcc nanoparticle and its shape name."""
    a = METALS[element]
    shape = str(rng.choice(PARTICLE_SHAPES))
    if shape in ("decahedron", "icosahedron") and diameter_a <= 70:
        from ase.cluster import Decahedron, Icosahedron

        shells = max(2, int(round(diameter_a / a / 1.4)))
        if shape == "decahedron":
            atoms = Decahedron(element, p=shells, q=max(1, shells // 2), r=int(rng.integers(0, 2)), latticeconstant=a)
        else:
            atoms = Icosahedron(element, noshells=shells, latticeconstant=a)
        pos = atoms.positions - atoms.positions.mean(axis=0)
        return pos, shape
    if shape in ("decahedron", "icosahedron"):
        shape = "twinned"
    r = diameter_a / 2
    n = int(np.ceil(1.2 * r / a)) + 1
    cells = np.stack(np.meshgrid(*[np.arange(-n, n + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    pos = ((cells[:, None, :] + basis[None]) * a).reshape(-1, 3)
    ax = np.abs(pos)
    l1 = ax.sum(axis=1)
    keep = {
        "sphere": np.linalg.norm(pos, axis=1) <= r,
        "octahedron": l1 <= 1.35 * r,
        "truncated-octahedron": (l1 <= 1.5 * r) & (ax.max(axis=1) <= r),
        "cuboctahedron": (ax[:, [0, 1, 2]] + ax[:, [1, 2, 0]]).max(axis=1) <= 1.4 * r,
        "cube": ax.max(axis=1) <= 0.85 * r,
        "twinned": (l1 <= 1.5 * r) & (ax.max(axis=1) <= r),
    }[shape]
    pos = pos[keep]
    if shape == "twinned":  # mirror one half through a {111} plane: a twin boundary across the particle
        normal = np.ones(3) / np.sqrt(3)
        side = pos @ normal > 0
        pos[side] -= 2 * np.outer(pos[side] @ normal, normal)
        pos = np.unique(np.round(pos, 2), axis=0)
    return pos, shape


def _place_particles(rng: np.random.Generator, fov: float, pixel_a: float, max_atoms: int) -> list[dict]:
    """Particles of one element and a common size (15% spread) at a random coverage, with an
    arrangement: isolated, touching or overlapping. Positions in A, z from 0 up."""
    element = str(rng.choice(sorted(METALS)))
    d_max = min(200.0, fov / 1.6)
    d_min = min(max(10.0, 10 * pixel_a), d_max)
    mean_d = float(np.exp(rng.uniform(np.log(d_min), np.log(d_max))))
    coverage = rng.uniform(0.05, 0.45)
    n = int(np.clip(round(coverage * fov**2 / (np.pi * mean_d**2 / 4)), 1, 40))
    arrangement = str(rng.choice(["isolated", "touching", "overlapping"], p=[0.5, 0.3, 0.2]))
    particles: list[dict] = []
    atoms_used = 0
    for _ in range(n):
        d = float(np.clip(mean_d * rng.normal(1.0, 0.15), d_min * 0.8, d_max))
        pos, shape = _fcc_particle(rng, element, d)
        if atoms_used + len(pos) > max_atoms and particles:
            break
        rotation, orientation = _random_rotation(rng, zone_axis=rng.random() < 0.5)
        pos = pos @ rotation.T
        radius = float(np.linalg.norm(pos[:, :2], axis=1).max())
        for _attempt in range(60):
            if particles and arrangement != "isolated" and rng.random() < 0.7:
                other = particles[int(rng.integers(len(particles)))]
                gap = rng.uniform(0.92, 1.0) if arrangement == "touching" else rng.uniform(0.55, 0.9)
                angle = rng.uniform(0, 2 * np.pi)
                centre = other["centre"] + (other["radius"] + radius) * gap * np.array([np.cos(angle), np.sin(angle)])
            else:
                centre = rng.uniform(-0.2 * radius, fov + 0.2 * radius, size=2)
            factor = 1.0 if arrangement == "isolated" else 0.5
            if all(np.linalg.norm(centre - p["centre"]) > factor * (p["radius"] + radius) + 2 for p in particles):
                break
        else:
            continue
        pos[:, :2] += centre
        pos[:, 2] -= pos[:, 2].min()
        particles.append(
            {
                "positions": pos,
                "centre": centre,
                "radius": radius,
                "shape": shape,
                "element": element,
                "orientation": orientation,
                "diameter_nm": round(d / 10, 3),
                "arrangement": arrangement,
            }
        )
        atoms_used += len(pos)
    return particles


def _lattice(rng: np.random.Generator, fov: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """A crystal (or 2-D material) covering the field in a zone axis: positions (A) and Z."""
    from ase.build import surface

    structures = _lattice_structures()
    name = str(rng.choice(sorted(structures)))
    atoms = structures[name]()
    if name in ("MoS2-2H", "WSe2-2H", "graphene"):
        zone, layers = "[001]", int(rng.integers(1, 4))
        stack = atoms.copy()
        for k in range(1, layers):  # AA-stacked layers 6.3 A apart
            layer = atoms.copy()
            layer.positions[:, 2] += 6.3 * k
            stack += layer
        atoms = stack
    elif "wurtzite" in name:
        zone, layers = "[001]", 1
        atoms = atoms.repeat((1, 1, int(rng.integers(4, 12))))
    else:
        hkl = [(0, 0, 1), (1, 1, 0), (1, 1, 1)][int(rng.integers(3))]
        zone = "[" + "".join(map(str, hkl)) + "]"
        atoms = surface(atoms, hkl, int(rng.integers(3, 10)), periodic=True)
    cell = np.asarray(atoms.cell)[:2, :2]
    reach = int(np.ceil(0.75 * fov * np.sqrt(2) / min(np.linalg.norm(cell, axis=1)))) + 2
    ij = np.stack(np.meshgrid(np.arange(-reach, reach + 1), np.arange(-reach, reach + 1)), -1).reshape(-1, 2)
    shifts = ij @ cell
    pos = (atoms.positions[None, :, :2] + shifts[:, None]).reshape(-1, 2)
    theta = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    pos = pos @ rot.T + fov / 2
    z = np.tile(atoms.positions[:, 2], len(ij))
    numbers = np.tile(atoms.numbers, len(ij))
    keep = np.all((pos >= 0) & (pos < fov), axis=1)
    xyz = np.column_stack([pos[keep], z[keep] - z.min()])
    return xyz, numbers[keep], {"structure": name, "zone_axis": zone}


def _support(rng: np.random.Generator, fov: float, max_atoms: int) -> tuple[np.ndarray, np.ndarray, dict]:
    kind = str(rng.choice(sorted(SUPPORTS), p=[0.6, 0.2, 0.2]))
    species, density = SUPPORTS[kind]
    thickness = float(np.clip(np.exp(rng.uniform(np.log(15), np.log(150))), 5, max_atoms / (density * fov**2)))
    n = int(density * fov**2 * thickness)
    xyz = rng.uniform([0, 0, 0], [fov, fov, thickness], (n, 3))
    return xyz, np.resize(np.array(species), n), {"support": kind, "support_thickness_A": round(thickness, 1)}


# ---------------------------------------------------------------------------------- imaging
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


def _scan_distortion(rng: np.random.Generator, arrays: list[np.ndarray], orders: list[int]) -> tuple[list, dict]:
    """Slow-scan drift: one affine warp (shear and stretch) applied to the scene and its labels."""
    shear, stretch = float(rng.normal(0, 0.03)), float(rng.normal(0, 0.02))
    matrix = np.array([[1 + stretch, 0.0], [shear, 1.0]])
    out = []
    for array, order in zip(arrays, orders):
        centre = np.array(array.shape) / 2
        offset = centre - matrix @ centre
        out.append(ndimage.affine_transform(array, matrix, offset=offset, order=order, mode="reflect"))
    return out, {"drift_shear": round(shear, 4), "drift_stretch": round(stretch, 4)}


# ------------------------------------------------------------------------------- acquisition
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


# ------------------------------------------------------------------------------------ scenes
def _pixel_size(rng: np.random.Generator, modality: str, content: str) -> float:
    lo, hi = {"lattice": (0.005, 0.03), "support": (0.01, 0.1)}.get(
        content, (0.01, 0.1) if modality in ("hrtem", "bf") else (0.01, 0.2)
    )
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _content(rng: np.random.Generator, modality: str) -> str:
    if modality in ("hrtem", "haadf", "adf", "bf"):
        p = {"hrtem": [0.75, 0.12, 0.13], "bf": [0.4, 0.3, 0.3]}.get(modality, [0.55, 0.3, 0.15])
    else:
        p = [0.3, 0.6, 0.1]
    return str(rng.choice(["particles", "lattice", "support"], p=p))


def simulate_sample(seed: int, split: str, index: int, size: int = 256, version: int = CORPUS_VERSION) -> dict:
    """One corpus sample: arrays and parameters, from its own seeded generator. ``version`` 1 is
    the corpus before absorption (kept so the checkpoints trained on it stay reproducible)."""
    from ase.data import atomic_numbers

    rng = np.random.default_rng([seed, SPLITS[split], index])
    modality = MODALITY_CYCLE[index % len(MODALITY_CYCLE)]
    content = _content(rng, modality)
    pixel_nm = _pixel_size(rng, modality, content)
    fov = size * pixel_nm * 10.0  # A
    gpts = 2 * size
    coherent = modality in ("hrtem", "bf")
    particles: list[dict] = []
    if content == "lattice":
        xyz, numbers, params = _lattice(rng, fov)
    else:
        xyz, numbers, params = _support(rng, fov, max_atoms=250_000 if coherent else 2_000_000)
        if content == "particles":
            particles = _place_particles(rng, fov, pixel_nm * 10, max_atoms=150_000 if coherent else 2_000_000)
            top = float(xyz[:, 2].max()) if len(xyz) else 0.0
            for p in particles:
                xyz = np.vstack([xyz, p["positions"] + [0, 0, top]])
                numbers = np.concatenate([numbers, np.full(len(p["positions"]), atomic_numbers[p["element"]])])
    if coherent:
        image_2x, optics = _hrtem(rng, xyz, numbers, fov, gpts)
        if version >= 2:
            image_2x, absorbed = _absorb(rng, image_2x, xyz, numbers, fov, gpts)
            optics.update(absorbed)
    else:
        image_2x, optics = _stem(rng, xyz, numbers, fov, gpts, modality)
    params.update(optics)
    if modality == "hrtem":
        image_2x, blur = _motion_blur(rng, image_2x, max_px=3.0)
        params.update(blur)
    labels, seen_diameters = _footprints(particles, fov, size)
    if modality != "hrtem":
        (image_2x,), warp = _scan_distortion(rng, [image_2x], [1])
        (labels,), _ = _scan_distortion(np.random.default_rng([seed, SPLITS[split], index, 1]), [labels], [0])
        params.update(warp)
    signal = image_2x.reshape(size, 2, size, 2).mean(axis=(1, 3))
    recorded, (clean, bgfree, sr), acquisition = _acquire(rng, signal, image_2x, modality, pixel_nm, version)
    params.update(acquisition)
    present = np.unique(labels[labels > 0])
    return {
        "modality": modality,
        "content": content,
        "pixel_size_nm": pixel_nm,
        "image": recorded,
        "clean": clean,
        "bgfree": bgfree,
        "sr": sr,
        "instances": labels,
        "params": params,
        "particles": [
            {
                "element": p["element"],
                "shape": p["shape"],
                "orientation": p["orientation"],
                "diameter_nm": p["diameter_nm"],
                "seen_diameter_nm": seen_diameters[k],
                "arrangement": p["arrangement"],
            }
            for k, p in enumerate(particles)
            if k + 1 in present
        ],
    }


# ------------------------------------------------------------------------------------ writing
def _sample_name(index: int, modality: str) -> str:
    return f"{index:05d}_{modality}"


def _write_sample(out: Path, seed: int, split: str, index: int, size: int, version: int = CORPUS_VERSION) -> dict:
    """Simulate and write one sample into every layout; its index file is written last."""
    record_path = out / "index" / split / f"{index:05d}.json"
    if record_path.is_file():
        return json.loads(record_path.read_text())
    start = time.perf_counter()
    s = simulate_sample(seed, split, index, size, version)
    name = _sample_name(index, s["modality"])
    meta = {"pixel_size_nm": s["pixel_size_nm"]}
    meta_2x = {"pixel_size_nm": s["pixel_size_nm"] / 2}
    image = io.write(out / "pretext" / split / s["modality"] / f"{name}.tif", s["image"], meta)
    restore = out / "restore" / split
    _link(image, restore / "image" / f"{name}.tif")
    io.write(restore / "noNoise" / f"{name}.tif", s["clean"], meta)
    io.write(restore / "noBackgroundnoNoise" / f"{name}.tif", s["bgfree"], meta)
    io.write(restore / "noNoiseNoBackgroundSuperresolution" / f"{name}.tif", s["sr"], meta_2x)
    group = SEGMENT_GROUP.get(s["modality"])
    if group:
        seg = out / "segment" / group / split
        _link(image, seg / "images" / f"{name}.tif")
        io.write(seg / "masks" / f"{name}.png", (s["instances"] > 0).astype(np.uint8), dtype="uint8")
        io.write(seg / "instances" / f"{name}.tif", s["instances"], meta, dtype="uint16")
    record = {
        "name": name,
        "split": split,
        "index": index,
        "modality": s["modality"],
        "content": s["content"],
        "pixel_size_nm": round(s["pixel_size_nm"], 6),
        "size": size,
        "segment_group": group,
        "particle_fraction": round(float((s["instances"] > 0).mean()), 5),
        "particles": s["particles"],
        "params": s["params"],
        "seconds": round(time.perf_counter() - start, 3),
    }
    record_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(record_path, json.dumps(record))
    return record


def _link(src: Path, dst: Path) -> None:
    """The same recorded image in another layout, as a hard link (a copy where links fail)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        io.write(dst, io.read(src)[0], {"pixel_size_nm": io.read(src)[1].get("pixel_size_nm")})


def _work(job: tuple) -> dict:
    return _write_sample(*job)


def build_corpus(
    out: str | Path,
    n_train: int = 960,
    n_val: int = 96,
    n_test: int = 192,
    size: int = 256,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    version: int = CORPUS_VERSION,
    modalities: tuple[str, ...] | None = None,
) -> Path:
    """Write (or finish) the corpus in ``out``; returns ``out``. Samples already written are kept.
    ``modalities`` keeps only the samples of those modalities (the others' indices stay unused)."""
    if modalities is not None and not set(modalities) <= set(MODALITIES):
        raise EmzooError(f"modalities {modalities}: expected some of {', '.join(MODALITIES)}")
    if size < 64 or size % 16:
        raise EmzooError(f"size {size}: expected a multiple of 16, at least 64 pixels")
    counts = {"train": n_train, "val": n_val, "test": n_test}
    for split, n in counts.items():
        if n < 0:
            raise EmzooError(f"n_{split} {n}: expected a count >= 0")
    out = Path(out)
    manifest_path = out / "corpus.json"
    wanted = {"version": version, "size": size, "seed": seed, "counts": counts}
    if modalities is not None:
        wanted["modalities"] = sorted(modalities)
    if manifest_path.is_file():
        done = json.loads(manifest_path.read_text())
        if {k: done.get(k) for k in wanted} == wanted:
            return out
    if (out / "index").is_dir() and (out / ".build.json").is_file():
        previous = json.loads((out / ".build.json").read_text())
        same = ("version", "size", "seed")
        if {k: previous.get(k) for k in same} != {k: wanted[k] for k in same}:
            raise EmzooError(f"{out}: holds a corpus of other parameters ({previous}); choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / ".build.json").write_text(json.dumps(wanted))
    jobs = [
        (out, seed, split, i, size, version)
        for split, n in counts.items()
        for i in range(n)
        if modalities is None or MODALITY_CYCLE[i % len(MODALITY_CYCLE)] in modalities
    ]
    start = time.perf_counter()
    records: list[dict] = []
    workers = workers or os.cpu_count() or 1
    with tqdm(total=len(jobs), desc="simulating the corpus", unit="img", disable=not progress) as bar:
        if workers == 1:
            for job in jobs:
                records.append(_work(job))
                bar.update(1)
        else:
            with ProcessPoolExecutor(workers) as pool:
                for record in pool.map(_work, jobs, chunksize=4):
                    records.append(record)
                    bar.update(1)
    _write_index(out, records, wanted, time.perf_counter() - start, workers)
    return out


def _write_index(out: Path, records: list[dict], wanted: dict, seconds: float, workers: int) -> None:
    lines = "".join(json.dumps(r) + "\n" for r in records)
    atomic_write_text(out / "index.jsonl", lines)
    per_modality: dict[str, dict] = {}
    for modality in MODALITIES:
        rows = [r for r in records if r["modality"] == modality]
        if rows:
            per_sample = float(np.mean([r["seconds"] for r in rows]))
            per_modality[modality] = {
                "samples": len(rows),
                "seconds_per_sample_one_core": round(per_sample, 3),
                "images_per_second_one_core": round(1 / max(per_sample, 1e-9), 3),
                "content": dict(Counter(r["content"] for r in rows)),
            }
    pixel = [r["pixel_size_nm"] for r in records]
    manifest = dict(
        wanted,
        samples=len(records),
        pixel_size_nm=[min(pixel, default=None), max(pixel, default=None)],
        modalities=per_modality,
        build_seconds=round(seconds, 1),
        workers=workers,
    )
    atomic_write_text(out / "corpus.json", json.dumps(manifest, indent=1))


def records(root: str | Path, split: str | None = None, modality: str | None = None) -> list[dict]:
    """The corpus index, optionally one split and one modality."""
    rows = [json.loads(line) for line in (Path(root) / "index.jsonl").read_text().splitlines() if line]
    return [
        r for r in rows if (split is None or r["split"] == split) and (modality is None or r["modality"] == modality)
    ]


def default_corpus(progress: bool = True, workers: int | None = None, **kwargs) -> Path:
    """The corpus with the given parameters, built once into emzoo's cache (``$EMZOO_CACHE``)."""
    params = dict(n_train=960, n_val=96, n_test=192, size=256, seed=0)
    params.update(kwargs)
    version = params.pop("version", CORPUS_VERSION)
    if params.get("modalities") is None:
        params.pop("modalities", None)
    else:
        params["modalities"] = sorted(params["modalities"])
    key = hashlib.sha1(json.dumps([version, sorted(params.items())]).encode()).hexdigest()[:10]
    path = cache_root() / "corpus" / f"emsim-v{version}-{key}"
    return build_corpus(path, progress=progress, workers=workers, version=version, **params)
