"""The atoms of a scene: nanoparticles (fcc cuts, twins, Ino decahedra, icosahedra) placed
isolated, touching or overlapping; crystals and 2-D materials in a zone axis; amorphous supports."""

from __future__ import annotations

import numpy as np

from emzoo.data.corpus.constants import METALS, PARTICLE_SHAPES, SUPPORTS


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


def _inside(pos: np.ndarray, shape: str, r: float) -> np.ndarray:
    """Which fcc sites (A, centred) a particle of ``shape`` and radius ``r`` keeps."""
    ax = np.abs(pos)
    l1 = ax.sum(axis=1)
    return {
        "sphere": np.linalg.norm(pos, axis=1) <= r,
        "octahedron": l1 <= 1.35 * r,
        "truncated-octahedron": (l1 <= 1.5 * r) & (ax.max(axis=1) <= r),
        "cuboctahedron": (ax[:, [0, 1, 2]] + ax[:, [1, 2, 0]]).max(axis=1) <= 1.4 * r,
        "cube": ax.max(axis=1) <= 0.85 * r,
        "twinned": (l1 <= 1.5 * r) & (ax.max(axis=1) <= r),
    }[shape]


def _twin(pos: np.ndarray, shape: str) -> np.ndarray:
    """A twinned particle's one half mirrored through a {111} plane: a twin boundary across it."""
    if shape == "twinned":
        normal = np.ones(3) / np.sqrt(3)
        side = pos @ normal > 0
        pos[side] -= 2 * np.outer(pos[side] @ normal, normal)
    return pos


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
    pos = _twin(pos[_inside(pos, shape, r)], shape)
    if shape == "twinned":
        pos = np.unique(np.round(pos, 2), axis=0)
    return pos, shape


def _record(pos, centre, radius, shape, element, orientation, diameter_a, arrangement) -> dict:
    """One placed particle: its atoms (A) and what the corpus index says of it."""
    return {
        "positions": pos,
        "centre": centre,
        "radius": radius,
        "shape": shape,
        "element": element,
        "orientation": orientation,
        "diameter_nm": round(diameter_a / 10, 3),
        "arrangement": arrangement,
    }


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
        particles.append(_record(pos, centre, radius, shape, element, orientation, d, arrangement))
        atoms_used += len(pos)
    return particles


LARGE_MAX_NM = 60.0  # corpus 3: particle diameters up to 60 nm, larger than the field at fine pixel sizes


def _fcc_in_window(
    rng: np.random.Generator, element: str, diameter_a: float, rotation: np.ndarray, centre: np.ndarray, fov: float
) -> tuple[np.ndarray, str]:
    """Atoms of one fcc particle (sphere, octahedron, truncated octahedron, cuboctahedron, cube or
    twinned), rotated and centred, kept only where they project inside the field: a 60 nm particle
    cut by a 3 nm field costs the atoms of its visible column, not its ~7 million. Built a layer of
    unit cells at a time so memory stays flat whatever the size."""
    a = METALS[element]
    shape = str(rng.choice(PARTICLE_SHAPES[:6]))
    r = diameter_a / 2
    n = int(np.ceil(1.2 * r / a)) + 1
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    plane = np.stack(np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij"), -1).reshape(-1, 2)
    kept = []
    for i in range(-n, n + 1):
        cells = np.column_stack([np.full(len(plane), i), plane])
        pos = ((cells[:, None, :] + basis[None]) * a).reshape(-1, 3)
        pos = _twin(pos[_inside(pos, shape, r)], shape) @ rotation.T
        pos[:, :2] += centre
        visible = np.all((pos[:, :2] >= 0) & (pos[:, :2] < fov), axis=1)
        kept.append(pos[visible])
    pos = np.concatenate(kept) if kept else np.zeros((0, 3))
    if shape == "twinned":
        pos = np.unique(np.round(pos, 2), axis=0)
    return pos, shape


def _place_large_particles(
    rng: np.random.Generator, fov: float, pixel_a: float, max_atoms: int, crystalline_support: bool
) -> list[dict]:
    """Corpus 3: particles from ~6 px (at least 1 nm) up to 60 nm or 1.5 fields across, so at fine
    pixel sizes one particle fills and overflows the crop; isolated, touching, overlapping or
    agglomerated, often cut by the border. Atoms are kept inside the field only."""
    element = str(rng.choice(sorted(METALS)))
    d_min = max(10.0, 6 * pixel_a)
    d_max = max(d_min * 1.5, min(10 * LARGE_MAX_NM, 1.5 * fov))
    mean_d = float(np.exp(rng.uniform(np.log(d_min), np.log(d_max))))
    coverage = rng.uniform(0.05, 0.5)
    n = int(np.clip(round(coverage * fov**2 / (np.pi * mean_d**2 / 4)), 1, 40))
    arrangement = str(rng.choice(["isolated", "touching", "overlapping", "agglomerate"], p=[0.4, 0.25, 0.15, 0.2]))
    particles: list[dict] = []
    atoms_used = 0
    for _ in range(n):
        d = float(np.clip(mean_d * rng.normal(1.0, 0.15), d_min * 0.8, d_max * 1.2))
        radius = d / 2
        rotation, orientation = _random_rotation(rng, zone_axis=rng.random() < 0.6)
        for _attempt in range(60):
            if particles and arrangement != "isolated" and rng.random() < 0.8:
                other = particles[int(rng.integers(len(particles)))]
                gap = {"touching": (0.92, 1.0), "overlapping": (0.55, 0.9), "agglomerate": (0.7, 0.98)}[arrangement]
                angle = rng.uniform(0, 2 * np.pi)
                centre = other["centre"] + (other["radius"] + radius) * rng.uniform(*gap) * np.array(
                    [np.cos(angle), np.sin(angle)]
                )
            else:
                centre = rng.uniform(-0.3 * radius, fov + 0.3 * radius, size=2)
            factor = 1.0 if arrangement == "isolated" else 0.5
            if all(np.linalg.norm(centre - p["centre"]) > factor * (p["radius"] + radius) + 2 for p in particles):
                break
        else:
            continue
        # the visible part only; skip a particle that would exceed the atom budget (the first one stays)
        pos, shape = _fcc_in_window(rng, element, d, rotation, centre, fov)
        if len(pos) == 0 or (atoms_used + len(pos) > max_atoms and particles):
            continue
        pos[:, 2] -= pos[:, 2].min()
        record = _record(pos, centre, radius, shape, element, orientation, d, arrangement)
        particles.append(dict(record, support="crystal" if crystalline_support else "amorphous"))
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
