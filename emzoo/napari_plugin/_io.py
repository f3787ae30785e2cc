"""Micrographs into napari with their pixel size, and result layers out of it with theirs: the
reader, the TIFF writers and the bundled samples. emzoo.io does the reading and writing; this
module only says how a file becomes a layer (scale, units, one slider for a frame series)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emzoo import io
from emzoo.errors import EmzooError

EXTENSIONS = (".dm3", ".dm4", ".emd", ".ser", ".mrc", ".tif", ".tiff")
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"


def layer_geometry(pixel_size_nm: float | None, ndim: int) -> dict[str, Any]:
    """``scale``/``units`` of a layer whose last two axes have ``pixel_size_nm`` (a frame axis
    in front keeps step 1, in frames); nothing when the file does not say."""
    if not pixel_size_nm:
        return {}
    frames = ndim - 2
    return {"scale": (1.0,) * frames + (pixel_size_nm, pixel_size_nm), "units": ("pixel",) * frames + ("nm", "nm")}


def layer_data(path: str | Path) -> tuple[np.ndarray, dict[str, Any], str]:
    """One file as a napari LayerData tuple: a 2-D image, or a (frames, H, W) stack."""
    path = Path(path)
    array, meta = io.read(path, frames="each")
    pixel = meta.get("pixel_size_nm")
    # micrographs are mostly background with a few bright or dark outliers: the display range
    # from robust percentiles, as emzoo's PNG previews (the data stay untouched)
    low, high = (float(v) for v in np.percentile(array, [0.5, 99.5]))
    kwargs = {
        "name": path.stem,
        **layer_geometry(pixel, array.ndim),
        "contrast_limits": (low, high if high > low else low + 1),
        "metadata": {"emzoo": {"source": str(path), **meta}},
    }
    return array, kwargs, "image"


def get_reader(path: str | list[str]) -> Callable | None:
    """npe2 reader: the files emzoo reads; None for anything else (napari asks the next reader)."""
    paths = [path] if isinstance(path, str) else list(path)
    if not paths or not all(str(p).lower().endswith(EXTENSIONS) for p in paths):
        return None
    return read_layers


def read_layers(path: str | list[str]) -> list[tuple]:
    paths = [path] if isinstance(path, str) else list(path)
    return [layer_data(p) for p in paths]


def pixel_size_of(meta: dict[str, Any]) -> float | None:
    """A layer's pixel size in nm from its scale and units (None where its units are pixels)."""
    scale = meta.get("scale")
    if scale is None or len(scale) < 2:
        return None
    units = meta.get("units") or ()
    unit = str(units[-1]) if units else "pixel"
    if unit in ("pixel", "px", ""):
        return None
    import pint

    return float((float(scale[-1]) * pint.Unit(unit)).to("nm").magnitude)


def _write(path: str, data: Any, meta: dict, dtype: str | None) -> list[str]:
    pixel = pixel_size_of(meta)
    array = np.asarray(data)
    if dtype == "uint16" and array.dtype.kind == "f":  # an image as 16-bit: its range stretched to 0..65535
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        array = np.round((array - low) / max(high - low, 1e-12) * 65535)
    try:
        written = io.write(path, array, {"pixel_size_nm": pixel}, dtype=dtype)
    except EmzooError as e:
        raise ValueError(str(e)) from None  # napari shows a ValueError's message in its notification
    return [str(written)]


def write_tiff(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 writer: images as float32, labels as uint16, the pixel size kept."""
    labels = np.asarray(data).dtype.kind in "iub"
    return _write(path, data, meta, "uint16" if labels else "float32")


def write_tiff_uint16(path: str, data: Any, meta: dict) -> list[str]:
    return _write(path, data, meta, "uint16")


def _sample(name: str) -> list[tuple]:
    data, kwargs, kind = layer_data(EXAMPLES_DIR / f"{name}.tif")
    return [(data, kwargs, kind)]


def sample_haadf() -> list[tuple]:
    return _sample("haadf_nanoparticles")


def sample_hrtem() -> list[tuple]:
    return _sample("hrtem_au_nanoparticles")


def sample_adf() -> list[tuple]:
    return _sample("adf_stem_noisy")
