"""Embedded default data, simulated, written in the real datasets' own layouts so the real
loaders are what the rest of emzoo uses.

- ``segment``: HRTEM of Au nanoparticles (octahedra, decahedra, icosahedra; ~2-20 nm) on
  amorphous carbon by abTEM multislice (300 kV plane wave, CTF with random defocus, Poisson
  dose), masks from the projected potential of the gold atoms; Sytwu et al.'s HDF5 layout.
- ``denoise`` / ``bg-removal`` / ``super-res``: atomic-resolution ADF-STEM of eight crystal
  structures in the incoherent (Z^1.7) imaging approximation, with Poisson noise, scan noise and a
  low-frequency background, plus the clean, background-free and 2x targets; TEMImageNet's layout.
- ``pretext``: unlabeled 16-bit TIFFs in nested folders (CEM500K's layout), a mix of HRTEM,
  ADF-STEM and cellular-EM-like textures.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

from emzoo import io
from emzoo.errors import ConfigError
from emzoo.fsutil import cache_root, new_folder
from emzoo.tasks import RESTORATION_TASKS, TASK_NAMES

SIM_VERSION = 2  # 2: deterministic FFTs (the same seed gives the same bytes in every process)
# abTEM's default FFTW_MEASURE times candidate plans in each process, so rounding, and after it every
# Poisson draw that follows, changed from run to run. numpy's pocketfft has one plan per size (and
# was 1.7x faster here than FFTW_ESTIMATE, FFTW's deterministic planner).
ABTEM_CONFIG = {"fft": "numpy"}
SPLIT_FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}
TEM_FOLDERS = ("image", "noNoise", "noBackgroundnoNoise", "noNoiseNoBackgroundSuperresolution")


# ------------------------------------------------------------------------ HRTEM Au on carbon
def _au_particle(rng: np.random.Generator, diameter_nm: float):
    from ase.cluster import Decahedron, Icosahedron, Octahedron

    d = diameter_nm * 10.0
    shape = rng.choice(["octahedron", "decahedron", "icosahedron"])
    if shape == "octahedron":
        length = max(3, int(round(d / 2.88)) + 1)
        atoms = Octahedron("Au", length=length, cutoff=max(0, int(rng.integers(0, length // 2 + 1)) - 1))
    elif shape == "decahedron":
        p = max(2, int(round(d / 2.88 / 2)) + 1)
        atoms = Decahedron("Au", p=p, q=max(1, p // 2), r=int(rng.integers(0, 2)))
    else:
        atoms = Icosahedron("Au", noshells=max(2, int(round(d / 2.88 / 2)) + 1))
    atoms.rotate(rng.uniform(0, 360), "z")
    atoms.rotate(rng.uniform(0, 360), "x")
    atoms.rotate(rng.uniform(0, 360), "z")
    atoms.positions -= atoms.positions.mean(axis=0)
    return atoms, str(shape)


def _resample(array: np.ndarray, size: int, order: int = 1) -> np.ndarray:
    return ndimage.zoom(array, size / array.shape[0], order=order, grid_mode=True, mode="grid-wrap")


def simulate_hrtem_au(
    rng: np.random.Generator,
    size: int = 256,
    diameters_nm: tuple[float, float] = (2.0, 12.0),
    max_particles: int = 3,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """One HRTEM image of Au particles on amorphous carbon and its particle mask."""
    import abtem
    import ase

    n_particles = int(rng.integers(1, max_particles + 1))
    diameters = np.exp(rng.uniform(*np.log(diameters_nm), size=n_particles))
    fov = float(max(51.2, 2.4 * diameters.max() * 10.0 * np.sqrt(n_particles) / 1.4))  # Angstrom
    thickness = float(rng.uniform(20.0, 50.0)) if fov < 100 else float(rng.uniform(15.0, 30.0))
    gold = ase.Atoms(cell=[fov, fov, 1.0])
    placed: list[tuple[np.ndarray, float]] = []
    shapes, placed_diameters = [], []
    for d in diameters:
        particle, shape = _au_particle(rng, float(d))
        radius = float(np.linalg.norm(particle.positions[:, :2], axis=1).max())
        for _ in range(50):
            centre = rng.uniform(radius + 2, fov - radius - 2, size=2) if fov > 2 * radius + 4 else np.full(2, fov / 2)
            if all(np.linalg.norm(centre - c) > radius + r + 5 for c, r in placed):
                break
        else:
            continue
        placed.append((centre, radius))
        shapes.append(shape)
        placed_diameters.append(round(float(d), 2))
        particle.positions += [centre[0], centre[1], 0.0]
        gold += particle
    z_top = thickness + 2.0
    gold.positions[:, 2] += z_top - gold.positions[:, 2].min()
    depth = float(gold.positions[:, 2].max()) + 4.0
    n_carbon = int(0.1 * fov * fov * thickness)  # amorphous carbon, ~2 g/cm^3
    carbon_xyz = rng.uniform([0, 0, 0], [fov, fov, thickness], (n_carbon, 3))
    carbon = ase.Atoms(numbers=np.full(n_carbon, 6), positions=carbon_xyz)
    atoms = carbon + gold
    atoms.cell = [fov, fov, depth]
    atoms.pbc = True
    gpts = 256 if fov <= 64 else 512
    energy = 300e3
    potential = abtem.Potential(atoms, gpts=gpts, slice_thickness=4, projection="infinite")
    defocus = float(rng.uniform(-200.0, 200.0))
    cs = float(rng.uniform(-1e4, 1e4))  # Angstrom: an aberration-corrected instrument
    ctf = abtem.CTF(energy=energy, defocus=defocus, Cs=cs, semiangle_cutoff=float(rng.uniform(10.0, 20.0)))
    gold.cell = atoms.cell
    gold.pbc = True
    with abtem.config.set(ABTEM_CONFIG):
        exit_wave = abtem.PlaneWave(energy=energy).multislice(potential)
        intensity = exit_wave.apply_ctf(ctf).intensity().compute(progress_bar=False).array
        projected = (
            abtem.Potential(gold, gpts=gpts, slice_thickness=depth, projection="infinite")
            .build()
            .project()
            .compute(progress_bar=False)
            .array
        )
    sampling = fov / gpts
    smooth = ndimage.gaussian_filter(projected, sigma=1.5 / sampling, mode="wrap")
    mask = ndimage.binary_fill_holes(smooth > 0.1 * smooth.max()) if smooth.max() > 0 else np.zeros_like(smooth, bool)
    image = np.clip(_resample(intensity, size), 0, None)
    mask = _resample(mask.astype(np.float32), size, order=1) > 0.5
    dose = float(np.exp(rng.uniform(np.log(100.0), np.log(1000.0))))
    counts = rng.poisson(image / image.mean() * dose).astype(np.float32)
    meta = {
        "pixel_size_nm": fov / size / 10.0,
        "diameters_nm": placed_diameters,
        "shapes": shapes,
        "defocus_A": round(defocus, 1),
        "carbon_thickness_A": round(thickness, 1),
        "dose_e_per_px": round(dose, 1),
    }
    return counts, mask.astype(np.uint8), meta


# --------------------------------------------------------------------- ADF-STEM (TEMImageNet)
def _structures():
    from ase.build import bulk
    from ase.spacegroup import crystal

    return {
        "Au-fcc": lambda: bulk("Au", "fcc", a=4.08, cubic=True),
        "W-bcc": lambda: bulk("W", "bcc", a=3.16, cubic=True),
        "Si-diamond": lambda: bulk("Si", "diamond", a=5.43, cubic=True),
        "MgO-rocksalt": lambda: bulk("MgO", "rocksalt", a=4.21, cubic=True),
        "GaAs-zincblende": lambda: bulk("GaAs", "zincblende", a=5.65, cubic=True),
        "GaN-wurtzite": lambda: bulk("GaN", "wurtzite", a=3.19, c=5.19, orthorhombic=True),
        "Ti-hcp": lambda: bulk("Ti", "hcp", a=2.95, c=4.68, orthorhombic=True),
        "SrTiO3-perovskite": lambda: crystal(
            ["Sr", "Ti", "O"], basis=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)], spacegroup=221, cellpar=4.0
        ),
    }


def _columns(structure, zone: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Projected atomic columns of one unit cell: xy positions, Z^1.7 weights, and the
    in-plane periodic cell."""
    from ase.build import surface

    atoms = structure if zone == "001" else surface(structure, (1, 1, 0), 1, periodic=True)
    cell = np.asarray(atoms.cell)
    pos = atoms.positions
    keys = np.round(pos[:, :2], 2)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    weights = np.bincount(inverse.ravel(), weights=atoms.numbers.astype(float) ** 1.7)
    return uniq, weights, cell[:2, :2]


def _render_columns(xy, weights, shape, pixel, sigma) -> np.ndarray:
    """Sum of Gaussian probes at the column positions (incoherent ADF imaging)."""
    h, w = shape
    image = np.zeros(shape, np.float64)
    radius = int(np.ceil(4 * sigma / pixel))
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    for (x, y), wt in zip(xy / pixel, weights):
        cx, cy = int(np.floor(x)), int(np.floor(y))
        if not (-radius <= cx < w + radius and -radius <= cy < h + radius):
            continue
        kernel = wt * np.exp(-((xx + cx - x) ** 2 + (yy + cy - y) ** 2) * pixel**2 / (2 * sigma**2))
        y0, y1, x0, x1 = cy - radius, cy + radius + 1, cx - radius, cx + radius + 1
        ky0, kx0 = max(0, -y0), max(0, -x0)
        ky1, kx1 = kernel.shape[0] - max(0, y1 - h), kernel.shape[1] - max(0, x1 - w)
        image[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)] += kernel[ky0:ky1, kx0:kx1]
    return image


def simulate_adf_stem(rng: np.random.Generator, size: int = 256) -> tuple[dict[str, np.ndarray], dict]:
    """One ADF-STEM image with TEMImageNet's four versions: noisy input, noise-free,
    noise- and background-free, and noise/background-free at 2x resolution."""
    structures = _structures()
    name = str(rng.choice(sorted(structures)))
    zone = "001" if "wurtzite" in name or "hcp" in name else str(rng.choice(["001", "110"]))
    xy, weights, cell = _columns(structures[name](), zone)
    pixel_hr = float(rng.uniform(0.06, 0.12))  # Angstrom per pixel at 2x
    extent = 2 * size * pixel_hr
    theta = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    reach = int(np.ceil(1.5 * extent / min(np.linalg.norm(cell, axis=1)))) + 1
    ij = np.stack(np.meshgrid(np.arange(-reach, reach + 1), np.arange(-reach, reach + 1)), -1).reshape(-1, 2)
    lattice = (ij @ cell)[:, None, :] + xy[None]
    pos = (lattice.reshape(-1, 2) @ rot.T) + extent / 2 + rng.uniform(0, 2, size=2)
    wts = np.tile(weights, len(ij))
    keep = np.all((pos > -3) & (pos < extent + 3), axis=1)
    sigma = float(rng.uniform(0.35, 0.6))
    clean_hr = _render_columns(pos[keep], wts[keep], (2 * size, 2 * size), pixel_hr, sigma)
    clean_hr /= clean_hr.max()
    clean = clean_hr.reshape(size, 2, size, 2).mean(axis=(1, 3))
    yy, xx = np.mgrid[0:size, 0:size] / size
    background = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma=size / 6, mode="reflect")
    background = (background - background.min()) / (np.ptp(background) + 1e-12)
    background = rng.uniform(0.2, 1.0) * (background + rng.uniform(-0.5, 0.5) * (xx - yy))
    background -= background.min()
    with_bg = clean + background
    dose = float(rng.uniform(30.0, 300.0))
    noisy = rng.poisson(with_bg * dose).astype(np.float64) / dose
    shifts = rng.normal(0, rng.uniform(0.1, 0.6), size=size)  # scan distortion, pixels per row
    noisy = np.stack([ndimage.shift(row, s, order=1, mode="nearest") for row, s in zip(noisy, shifts)])
    noisy *= rng.normal(1.0, 0.02, size=(size, 1))  # line-to-line gain jitter
    noisy += rng.normal(0, 0.02, size=noisy.shape)
    images = {
        "image": noisy,
        "noNoise": with_bg,
        "noBackgroundnoNoise": clean,
        "noNoiseNoBackgroundSuperresolution": clean_hr,
    }
    meta = {"structure": name, "zone_axis": zone, "pixel_size_nm": 2 * pixel_hr / 10, "dose": round(dose, 1)}
    return images, meta


# -------------------------------------------------------------------- cellular-EM-like texture
def simulate_cellular(rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """Membrane-bounded compartments with granular cytoplasm, as in CEM500K's SEM/TEM patches."""
    field = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma=rng.uniform(6, 20), mode="wrap")
    level = np.quantile(field, rng.uniform(0.55, 0.8))
    inside = field > level
    edges = ndimage.binary_dilation(inside) ^ ndimage.binary_erosion(inside)
    image = 0.6 + 0.15 * inside - 0.45 * ndimage.gaussian_filter(edges.astype(float), 1.0)
    image += 0.08 * ndimage.gaussian_filter(rng.normal(size=(size, size)), 1.5)
    image = ndimage.gaussian_filter(image, rng.uniform(0.5, 1.5))
    return np.clip(image + rng.normal(0, rng.uniform(0.02, 0.08), size=image.shape), 0, 1)


# -------------------------------------------------------------------------- dataset writers
def _split_counts(n: int) -> dict[str, int]:
    n_val = max(1, round(n * SPLIT_FRACTIONS["val"]))
    n_test = max(1, round(n * SPLIT_FRACTIONS["test"]))
    n_train = n - n_val - n_test
    if n_train < 1:
        raise ConfigError(f"n {n}: too few images for train/val/test splits; use at least 3")
    return {"train": n_train, "val": n_val, "test": n_test}


def _write_segment(out: Path, n: int, size: int, rng, progress) -> list[dict]:
    import h5py

    records = []
    for split, count in _split_counts(n).items():
        images = np.zeros((count, 1, size, size), np.float32)
        labels = np.zeros((count, 1, size, size), np.uint8)
        for i in range(count):
            images[i, 0], labels[i, 0], meta = simulate_hrtem_au(rng, size)
            records.append({"split": split, "index": i, **meta})
            progress()
        (out / split).mkdir(parents=True, exist_ok=True)
        with h5py.File(out / split / f"Au_sim_{split}_Images.h5", "w") as f:
            f.create_dataset("images", data=images, compression="gzip")
        with h5py.File(out / split / f"Au_sim_{split}_Labels.h5", "w") as f:
            f.create_dataset("labels", data=labels, compression="gzip")
    return records


def _write_tem(out: Path, n: int, size: int, rng, progress) -> list[dict]:
    records = []
    for split, count in _split_counts(n).items():
        for i in range(count):
            images, meta = simulate_adf_stem(rng, size)
            for folder in TEM_FOLDERS:
                io.write(out / split / folder / f"{i:05d}.png", images[folder])
            records.append({"split": split, "file": f"{i:05d}.png", **meta})
            progress()
    return records


def _write_pretext(out: Path, n: int, size: int, rng, progress) -> list[dict]:
    records = []
    for split, count in _split_counts(n).items():
        for i in range(count):
            kind = ("cellular", "hrtem", "adf-stem")[i % 3]
            if kind == "cellular":
                image, meta = simulate_cellular(rng, size), {}
            elif kind == "hrtem":
                image, _, meta = simulate_hrtem_au(rng, size)
            else:
                versions, meta = simulate_adf_stem(rng, size)
                image = versions["image"]
            data = (io.to_uint8(image, 0.1, 99.9).astype(np.uint16) * 257).astype(np.uint16)
            rel = Path(split) / kind / f"{kind}_{i:05d}.tif"
            io.write(out / rel, data, {"pixel_size_nm": meta.get("pixel_size_nm")})
            records.append({"file": str(rel), "kind": kind, **meta})
            progress()
    return records


WRITERS: dict[str, Callable] = {
    "segment": _write_segment,
    "denoise": _write_tem,
    "bg-removal": _write_tem,
    "super-res": _write_tem,
    "pretext": _write_pretext,
}


def simulate_dataset(task: str, out: str | Path, n: int = 24, size: int = 256, seed: int = 0, progress: bool = True):
    """Write a simulated dataset for ``task`` into ``out`` (atomically: it appears complete or
    not at all) and return its path."""
    if task not in WRITERS:
        raise ConfigError(f"task {task!r}: expected one of {', '.join(TASK_NAMES)}")
    if size < 32 or size % 2:
        raise ConfigError(f"size {size}: expected an even size of at least 32 pixels")
    _split_counts(n)  # refuse too few images before any folder or progress bar appears
    rng = np.random.default_rng(seed)
    with new_folder(out) as tmp:
        with tqdm(total=n, desc=f"simulating {task}", disable=not progress, unit="img") as bar:
            records = WRITERS[task](tmp, n, size, rng, lambda: bar.update(1))
        manifest = {"task": task, "n": n, "size": size, "seed": seed, "version": SIM_VERSION, "samples": records}
        (tmp / "simulation.json").write_text(json.dumps(manifest, indent=1))
    return Path(out)


def cache_dir() -> Path:
    return cache_root() / "simulated"


def simulated(task: str, n: int = 24, size: int = 256, seed: int = 0, progress: bool = True) -> Path:
    """A simulated dataset for ``task``, built once and cached, keyed by its parameters
    (the three TEMImageNet tasks share one)."""
    kind = "tem" if task in RESTORATION_TASKS else task
    key = hashlib.sha1(json.dumps([kind, n, size, seed, SIM_VERSION]).encode()).hexdigest()[:10]
    path = cache_dir() / f"{kind}-n{n}-s{size}-seed{seed}-{key}"
    if not (path / "simulation.json").is_file():
        if path.exists():
            shutil.rmtree(path)
        simulate_dataset(task, path, n=n, size=size, seed=seed, progress=progress)
    return path
