"""Read and write the images microscopists have: PNG/JPEG, TIFF (8/16/32-bit, float, stacks),
MRC, DM3/DM4, Velox EMD, FEI SER and NumPy, through the field's own libraries (tifffile,
mrcfile, rosettasciio). Everything comes back as float32 with the pixel size in nm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emzoo.errors import ConfigError, DataError, EmzooError
from emzoo.fsutil import atomic_write

FORMATS = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".mrc": "mrc",
    ".mrcs": "mrc",
    ".map": "mrc",
    ".dm3": "dm3",
    ".dm4": "dm4",
    ".emd": "emd",
    ".ser": "ser",
    ".npy": "npy",
}
IMAGE_SUFFIXES = tuple(FORMATS)
UNIT_TO_NM = {
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometers": 1.0,
    "µm": 1e3,
    "um": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "\\u00B5m": 1e3,
    "å": 0.1,
    "a": 0.1,
    "angstrom": 0.1,
    "pm": 1e-3,
    "mm": 1e6,
    "cm": 1e7,
    "m": 1e9,
}


def format_of(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise DataError(
            f"{path}: unsupported format '{suffix or '(none)'}'; expected one of {', '.join(sorted(FORMATS))}"
        )
    return FORMATS[suffix]


def _to_nm(value: float | None, unit: str | None) -> float | None:
    if value is None or unit is None or not np.isfinite(value) or value <= 0:
        return None
    factor = UNIT_TO_NM.get(str(unit).strip().lower())
    return float(value) * factor if factor else None


def _read_pil(path: Path) -> tuple[np.ndarray, dict]:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        if im.mode in ("RGB", "RGBA", "P", "LA", "CMYK", "YCbCr"):
            array = np.asarray(im.convert("RGB")).astype(np.float32)
            # grayscale micrographs saved as RGB: take the luminance
            array = array @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            dtype = "uint8"
        else:
            array = np.asarray(im)
            dtype = str(array.dtype)
    return array, {"source_dtype": dtype, "pixel_size_nm": None}


def _read_tiff(path: Path) -> tuple[np.ndarray, dict]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        array = tif.asarray()
        axes = tif.series[0].axes if tif.series else ""
        if "S" in axes and array.ndim == len(axes):  # colour samples (RGB, planar or not): last axis
            array = np.moveaxis(array, axes.index("S"), -1)
        pixel = None
        page = tif.pages.first
        ij = tif.imagej_metadata or {}
        res = page.tags.get("XResolution")
        if res is not None:
            num, den = res.value
            if num:
                per_unit = num / den
                unit = ij.get("unit")
                if unit is None:
                    res_unit = page.tags.get("ResolutionUnit")
                    unit = {2: "inch", 3: "cm"}.get(int(res_unit.value) if res_unit else 2)
                    if unit == "inch":
                        unit = None  # the default 72 dpi says nothing about the specimen
                pixel = _to_nm(1.0 / per_unit, unit) if per_unit > 0 and unit else None
    return array, {"source_dtype": str(array.dtype), "pixel_size_nm": pixel}


def _read_mrc(path: Path) -> tuple[np.ndarray, dict]:
    import mrcfile

    with mrcfile.open(path, permissive=False) as mrc:
        array = np.array(mrc.data)
        voxel = float(mrc.voxel_size.x)
    return array, {"source_dtype": str(array.dtype), "pixel_size_nm": voxel / 10.0 if voxel > 0 else None}


def _read_rsciio(path: Path, fmt: str) -> tuple[np.ndarray, dict]:
    if fmt in ("dm3", "dm4"):
        from rsciio.digitalmicrograph import file_reader
    elif fmt == "emd":
        from rsciio.emd import file_reader
    else:
        from rsciio.tia import file_reader
    signals = file_reader(str(path))
    images = [s for s in signals if np.asarray(s["data"]).ndim >= 2]
    if not images:
        raise DataError(f"{path}: holds no image (only {len(signals)} spectra or 1-D signals)")
    signal = images[0]
    array = np.asarray(signal["data"])
    signal_axes = [a for a in signal.get("axes", []) if not a.get("navigate", False)]
    pixel = _to_nm(signal_axes[-1].get("scale"), signal_axes[-1].get("units")) if signal_axes else None
    return array, {"source_dtype": str(array.dtype), "pixel_size_nm": pixel}


def _read_npy(path: Path) -> tuple[np.ndarray, dict]:
    array = np.load(path, allow_pickle=False)
    return array, {"source_dtype": str(array.dtype), "pixel_size_nm": None}


FRAMES = ("single", "each", "mean")
FLOAT32_MAX = float(np.finfo(np.float32).max)


def read(
    path: str | Path, *, allow_stack: bool = False, frames: str | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Read an image as float32 (float64 where float32 would overflow). ``frames`` says what a
    stack (MRC/TIFF/DM/EMD movie or series) becomes: ``single`` (default) refuses it, ``each``
    returns ``(N, H, W)`` (as ``allow_stack``), ``mean`` averages the frames into one image.
    ``meta`` has ``pixel_size_nm`` (None when the file does not say), ``source_dtype``, ``shape``,
    ``frames`` and ``format``."""
    frames = frames or ("each" if allow_stack else "single")
    if frames not in FRAMES:
        raise ConfigError(f"frames={frames!r}: expected one of {', '.join(FRAMES)}")
    path = Path(path)
    fmt = format_of(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        if fmt in ("png", "jpeg"):
            array, meta = _read_pil(path)
        elif fmt == "tiff":
            array, meta = _read_tiff(path)
        elif fmt == "mrc":
            array, meta = _read_mrc(path)
        elif fmt == "npy":
            array, meta = _read_npy(path)
        else:
            array, meta = _read_rsciio(path, fmt)
    except EmzooError:
        raise
    except Exception as e:  # every library has its own exceptions for corrupt files
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path}: cannot read as {fmt.upper()} (corrupt or truncated?): {detail}") from None
    if np.iscomplexobj(array) or array.dtype.fields is not None:
        raise DataError(f"{path}: complex or RGB-structured data ({array.dtype}); expected a real-valued image")
    while array.ndim > 2 and array.shape[0] == 1:  # (1, H, W), (1, 1, H, W): one image
        array = array[0]
    if array.ndim == 3 and array.shape[-1] == 1:  # (H, W, 1): one channel
        array = array[..., 0]
    if array.ndim == 3 and array.shape[-1] in (3, 4) and min(array.shape[:2]) > 4:  # an RGB(A) rendering
        array = array[..., :3] @ np.array([0.299, 0.587, 0.114])
    if array.ndim == 3 and array.shape[-1] == 2 and min(array.shape[:2]) > 4:
        raise DataError(
            f"{path}: array of shape {array.shape}: two channels last; expected a 2-D image, or a stack with "
            "frames first (N, H, W)"
        )
    if array.ndim not in (2, 3):
        raise DataError(f"{path}: array of shape {array.shape}; expected a 2-D image or a stack of them")
    if min(array.shape[-2:]) < 2:
        raise DataError(f"{path}: {array.shape[-2]}x{array.shape[-1]} pixels; expected an image of at least 2x2")
    n_frames = array.shape[0] if array.ndim == 3 else 1
    if array.ndim == 3 and frames == "single":
        raise DataError(
            f"{path}: a stack of {n_frames} frames of {array.shape[1]}x{array.shape[2]}; expected one image "
            "(predict each frame with frames='each', or their average with frames='mean')"
        )
    if array.ndim == 3 and frames == "mean":
        array = array.mean(axis=0, dtype=np.float64)
    array = np.ascontiguousarray(array, dtype=np.float64 if _beyond_float32(array) else np.float32)
    meta.update(shape=tuple(array.shape), format=fmt, path=str(path), frames=n_frames)
    return array, meta


def check_image(array: np.ndarray, name: str | Path) -> None:
    """Reject what no model can use: NaN/Inf and constant images."""
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise DataError(f"{name}: {bad} NaN/Inf pixels; expected finite values")
    if float(array.max()) == float(array.min()):
        raise DataError(f"{name}: constant image (every pixel {float(array.min())}); nothing to learn or predict")


# ------------------------------------------------------------------------------------- write
def _beyond_float32(array: np.ndarray) -> bool:
    """Whether casting to float32 would overflow: only floats wider than 32 bits can (integers
    and float16/32 always fit), so other arrays cost no pass over the pixels."""
    if array.dtype.kind != "f" or array.dtype.itemsize <= 4:
        return False
    finite = array[np.isfinite(array)]
    return bool(finite.size) and float(np.abs(finite).max()) > FLOAT32_MAX


def to_uint8(array: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """An 8-bit preview by robust percentile scaling of the finite pixels (NaN/Inf show black)."""
    array = np.asarray(array)
    finite = np.isfinite(array)
    if not finite.any():
        return np.zeros(array.shape, np.uint8)
    lo, hi = np.percentile(array[finite], [low, high])
    scaled = (np.where(finite, array, lo) - lo) / max(hi - lo, 1e-12)
    return (np.clip(scaled, 0, 1) * 255 + 0.5).astype(np.uint8)


def write(path: str | Path, array: np.ndarray, meta: dict | None = None, *, dtype: str | None = None) -> Path:
    """Write atomically. TIFF keeps the data type (float32 by default, or ``dtype``) and writes
    the pixel size (ImageJ resolution in nm); PNG writes an 8-bit preview (or 8/16-bit data
    unchanged when ``dtype`` says so)."""
    path = Path(path)
    meta = meta or {}
    fmt = format_of(path)
    array = np.asarray(array)
    if np.iscomplexobj(array) or array.dtype.kind not in "biuf":
        raise DataError(f"{path}: cannot write {array.dtype} data; expected real numbers (np.abs(...) of complex)")
    if fmt == "tiff":
        import tifffile

        keep = array.dtype in (np.uint8, np.uint16) or _beyond_float32(array)
        data = array.astype(dtype or (array.dtype if keep else np.float32))
        pixel = meta.get("pixel_size_nm")
        kwargs: dict[str, Any] = {"imagej": data.dtype != np.float64, "metadata": {"unit": "nm"} if pixel else {}}
        if pixel:
            kwargs["resolution"] = (1.0 / pixel, 1.0 / pixel)
        return atomic_write(path, lambda tmp: tifffile.imwrite(tmp, data, **kwargs))
    if fmt == "png":
        from PIL import Image

        if dtype in ("uint8", "uint16"):
            data = array.astype(dtype)
        else:
            data = to_uint8(array)
        return atomic_write(path, lambda tmp: Image.fromarray(data).save(tmp, format="PNG"))
    if fmt == "npy":
        return atomic_write(path, lambda tmp: np.save(tmp, array.astype(np.float32)))
    if fmt == "mrc":
        import mrcfile

        def _mrc(tmp: str) -> None:
            with mrcfile.new(tmp, overwrite=True) as mrc:
                mrc.set_data(array.astype(np.float32))
                if meta.get("pixel_size_nm"):
                    mrc.voxel_size = meta["pixel_size_nm"] * 10.0

        return atomic_write(path, _mrc)
    raise ConfigError(f"{path}: emzoo writes TIFF, PNG, MRC and NPY; got '{path.suffix}'")
