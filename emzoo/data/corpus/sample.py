"""One corpus sample, from its own seeded generator: scene, image, acquisition, labels."""

from __future__ import annotations

import numpy as np

from emzoo.data.corpus.acquisition import _acquire
from emzoo.data.corpus.constants import CORPUS_VERSION, MODALITY_CYCLE, SPLITS
from emzoo.data.corpus.imaging import _absorb, _footprints, _hrtem, _motion_blur, _scan_distortion, _stem
from emzoo.data.corpus.scene import _lattice, _place_large_particles, _place_particles, _support


def _pixel_size(rng: np.random.Generator, modality: str, content: str) -> float:
    lo, hi = {"lattice": (0.005, 0.03), "support": (0.01, 0.1)}.get(
        content, (0.01, 0.1) if modality in ("hrtem", "bf") else (0.01, 0.2)
    )
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _content_v3(rng: np.random.Generator, modality: str) -> tuple[str, float]:
    """Corpus 3: particles on amorphous or crystalline supports, particle-free lattices and supports,
    and a pixel size spread log-uniformly over 0.005-0.2 nm/px (0.1 for coherent imaging)."""
    content = str(rng.choice(["particles", "particles-on-lattice", "lattice", "support"], p=[0.5, 0.2, 0.15, 0.15]))
    hi = 0.1 if modality in ("hrtem", "bf") else 0.2
    lo, hi = {"lattice": (0.005, 0.03), "particles-on-lattice": (0.005, 0.05)}.get(content, (0.005, hi))
    return content, float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


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
    if version >= 3:
        content, pixel_nm = _content_v3(rng, modality)
    else:
        content = _content(rng, modality)
        pixel_nm = _pixel_size(rng, modality, content)
    fov = size * pixel_nm * 10.0  # A
    gpts = 2 * size
    coherent = modality in ("hrtem", "bf")
    particles: list[dict] = []
    if version >= 3 and content in ("particles", "particles-on-lattice"):
        on_lattice = content == "particles-on-lattice"
        if on_lattice:
            xyz, numbers, params = _lattice(rng, fov)
        else:
            xyz, numbers, params = _support(rng, fov, max_atoms=250_000 if coherent else 2_000_000)
        particles = _place_large_particles(
            rng, fov, pixel_nm * 10, max_atoms=300_000 if coherent else 4_000_000, crystalline_support=on_lattice
        )
        top = float(xyz[:, 2].max()) if len(xyz) else 0.0
        for p in particles:
            xyz = np.vstack([xyz, p["positions"] + [0, 0, top]])
            numbers = np.concatenate([numbers, np.full(len(p["positions"]), atomic_numbers[p["element"]])])
    elif content == "lattice":
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
        # corpus 1 and 2 drew the labels' warp from another stream (masks off by up to a few pixels
        # towards the border); corpus 3 warps the labels exactly as the image
        label_rng = np.random.default_rng([seed, SPLITS[split], index, 1])
        (labels,), _ = _scan_distortion(label_rng, [labels], [0], warp if version >= 3 else None)
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
                **({"support": p["support"]} if "support" in p else {}),
            }
            for k, p in enumerate(particles)
            if k + 1 in present
        ],
    }
