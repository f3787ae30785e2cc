"""Particle measurements a microscopist can use, built on scikit-image.

From a probability map or mask: holes filled, specks below a minimum area (in nm^2) removed,
touching particles split by a watershed on the distance transform, particles cut by the border
optionally excluded; per particle: area, equivalent diameter, maximum and minimum Feret
diameters, circularity and centroid, in nm where the pixel size is known.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emzoo.errors import DataError
from emzoo.fsutil import atomic_write
from emzoo.inference.scale import check_pixel_size

MIN_DIAMETER_NM = 0.4  # smaller "particles" are noise: one or two atoms across
MIN_AREA_PX = 12  # without a pixel size
FIELDS = (
    "particle",
    "area_px",
    "equivalent_diameter_px",
    "feret_max_px",
    "feret_min_px",
    "circularity",
    "centroid_y_px",
    "centroid_x_px",
    "touches_border",
)
NM_FIELDS = ("area_nm2", "equivalent_diameter_nm", "feret_max_nm", "feret_min_nm", "centroid_y_nm", "centroid_x_nm")


@dataclass
class ParticleReport:
    labels: np.ndarray  # one id per particle, 0 for background
    rows: list[dict]
    summary: dict


def default_min_area_nm2() -> float:
    return math.pi / 4 * MIN_DIAMETER_NM**2


def _min_feret(coords: np.ndarray) -> float:
    """Smallest caliper width of a pixel set (every 2 degrees), pixel extent included."""
    angles = np.deg2rad(np.arange(0, 180, 2))
    directions = np.stack([np.cos(angles), np.sin(angles)], 1)
    proj = coords @ directions.T
    return float((proj.max(0) - proj.min(0)).min() + 1)


def _split_touching(mask: np.ndarray) -> np.ndarray:
    """Label particles, splitting touching ones: a watershed of the distance transform from its
    h-maxima (one per convex particle; h grows with the typical particle radius so rough edges
    of a predicted mask do not split one particle in two)."""
    from scipy import ndimage
    from skimage.measure import label
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    components = label(mask, connectivity=2)
    if components.max() == 0:
        return components
    distance = ndimage.distance_transform_edt(mask)
    radius = float(np.median(ndimage.maximum(distance, components, np.arange(1, components.max() + 1))))
    markers = label(h_maxima(distance, max(1.0, 0.08 * radius)))
    labels = watershed(-distance, markers, mask=mask)
    # a component with no marker of its own (thin, small) stays one particle
    orphans = (labels == 0) & mask
    if orphans.any():
        extra = label(orphans, connectivity=2)
        labels[extra > 0] = extra[extra > 0] + labels.max()
    return labels


def analyze_particles(
    mask_or_probability: np.ndarray,
    pixel_size_nm: float | None = None,
    *,
    threshold: float = 0.5,
    min_area_nm2: float | None = None,
    split_touching: bool = True,
    exclude_border: bool = False,
) -> ParticleReport:
    """Particles in a segmentation result (a probability map or a binary mask)."""
    from scipy import ndimage
    from skimage.measure import regionprops
    from skimage.morphology import remove_small_objects
    from skimage.segmentation import clear_border

    array = np.asarray(mask_or_probability)
    if array.ndim != 2:
        raise DataError(f"particle analysis: a 2-D mask or probability map expected, got shape {array.shape}")
    pixel_size_nm = check_pixel_size(pixel_size_nm, "pixel_size_nm")
    if array.dtype.kind == "f":
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        if not (np.isfinite(array).all() and -1e-3 <= low and high <= 1 + 1e-3):
            raise DataError(
                f"particle analysis: values from {low:g} to {high:g}; expected a probability map (0 to 1), "
                "a binary mask or integer labels (an image must go through a segmentation model first)"
            )
    elif array.dtype.kind not in "biu":
        raise DataError(f"particle analysis: {array.dtype} values; expected a probability map, a mask or labels")
    mask = array > threshold if array.dtype.kind == "f" else array > 0
    mask = ndimage.binary_fill_holes(mask)
    if pixel_size_nm:
        min_area_px = (min_area_nm2 if min_area_nm2 is not None else default_min_area_nm2()) / pixel_size_nm**2
    else:
        min_area_px = MIN_AREA_PX
    mask = remove_small_objects(mask, max_size=max(1, int(round(min_area_px))) - 1) if min_area_px > 1 else mask
    if split_touching:
        labels = _split_touching(mask)
    else:
        from skimage.measure import label

        labels = label(mask, connectivity=2)
    if exclude_border:
        labels = clear_border(labels)
    rows = []
    h, w = labels.shape
    for region in regionprops(labels):
        if region.area < min_area_px:
            continue
        minr, minc, maxr, maxc = region.bbox
        perimeter = max(region.perimeter, 1e-9)
        row = {
            "particle": len(rows) + 1,
            "area_px": int(region.area),
            "equivalent_diameter_px": round(float(region.equivalent_diameter_area), 3),
            "feret_max_px": round(float(region.feret_diameter_max) + 1, 3),
            "feret_min_px": round(_min_feret(region.coords.astype(float)), 3),
            "circularity": round(float(min(1.0, 4 * math.pi * region.area / perimeter**2)), 4),
            "centroid_y_px": round(float(region.centroid[0]), 2),
            "centroid_x_px": round(float(region.centroid[1]), 2),
            "touches_border": bool(minr == 0 or minc == 0 or maxr == h or maxc == w),
        }
        if pixel_size_nm:
            p = pixel_size_nm
            row.update(
                area_nm2=round(region.area * p * p, 5),
                equivalent_diameter_nm=round(row["equivalent_diameter_px"] * p, 4),
                feret_max_nm=round(row["feret_max_px"] * p, 4),
                feret_min_nm=round(row["feret_min_px"] * p, 4),
                centroid_y_nm=round(row["centroid_y_px"] * p, 4),
                centroid_x_nm=round(row["centroid_x_px"] * p, 4),
            )
        rows.append(row)
    return ParticleReport(labels=labels, rows=rows, summary=summarize(rows, labels, pixel_size_nm))


def summarize(rows: list[dict], labels: np.ndarray, pixel_size_nm: float | None) -> dict:
    unit = "nm" if pixel_size_nm else "px"
    diameters = [r[f"equivalent_diameter_{unit}"] for r in rows]
    return {
        "count": len(rows),
        f"mean_diameter_{unit}": round(float(np.mean(diameters)), 4) if rows else None,
        f"median_diameter_{unit}": round(float(np.median(diameters)), 4) if rows else None,
        f"std_diameter_{unit}": round(float(np.std(diameters)), 4) if rows else None,
        "area_fraction": round(float((labels > 0).mean()), 5),
        "pixel_size_nm": pixel_size_nm,
    }


def write_csv(path: str | Path, rows: list[dict], pixel_size_nm: float | None) -> Path:
    fields = (
        (["frame"] if rows and "frame" in rows[0] else []) + list(FIELDS) + (list(NM_FIELDS) if pixel_size_nm else [])
    )

    def _write(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

    return atomic_write(path, _write)


def write_histogram(path: str | Path, rows: list[dict], pixel_size_nm: float | None, title: str = "") -> Path:
    """Size distribution (equivalent diameters) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    unit = "nm" if pixel_size_nm else "px"
    diameters = [r[f"equivalent_diameter_{unit}"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    if diameters:
        ax.hist(diameters, bins=min(30, max(5, len(diameters) // 3)), color="#4477aa", edgecolor="white")
        ax.axvline(float(np.mean(diameters)), color="#cc6677", label=f"mean {np.mean(diameters):.3g} {unit}")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no particles", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"equivalent diameter ({unit})")
    ax.set_ylabel("particles")
    # a file name that is not UTF-8 (latin-1 bytes on disk) is shown with its bad bytes replaced
    shown = (title or f"{len(diameters)} particles").encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    ax.set_title(shown, fontsize=9)
    fig.tight_layout()
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)
    return out
