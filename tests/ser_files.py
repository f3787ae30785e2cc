"""Build FEI TIA ``.ser`` image files byte by byte (no library writes them), following the
series header / offset array / data element layout that rosettasciio's TIA reader parses."""

import struct
from pathlib import Path

import numpy as np

TIA_DATA_TYPES = {np.dtype("uint8"): 1, np.dtype("uint16"): 2, np.dtype("int16"): 5, np.dtype("float32"): 7}
IMAGE_SERIES, TIME_TAG = 0x4122, 0x4152


def write_ser(path: Path, image: np.ndarray, pixel_size_m: float) -> Path:
    """One 2-D image, calibrated in metres as TIA stores it."""
    h, w = image.shape
    dimension = struct.pack("<IddII", 1, 0.0, 1.0, 0, 0) + struct.pack("<I", 0)  # one element, no units
    header_size = 30 + len(dimension)
    offsets_at = header_size
    data_at = offsets_at + 8
    header = struct.pack("<HHHIIIIII", 0x4949, 0x0197, 0x0210, IMAGE_SERIES, TIME_TAG, 1, 1, offsets_at, 1)
    element = struct.pack("<ddIddIHII", 0.0, pixel_size_m, 0, 0.0, pixel_size_m, 0, TIA_DATA_TYPES[image.dtype], w, h)
    rows_bottom_up = np.ascontiguousarray(image[::-1])  # TIA stores the bottom row first
    element += rows_bottom_up.astype(image.dtype.newbyteorder("<")).tobytes()
    tag_at = data_at + len(element)
    offsets = struct.pack("<II", data_at, tag_at)
    tag = struct.pack("<HHI", TIME_TAG, 0, 0)
    path.write_bytes(header + dimension + offsets + element + tag)
    return path
