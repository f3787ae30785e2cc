"""Build DigitalMicrograph DM3/DM4 files byte by byte (no library writes them), following the
tag-tree format that rosettasciio's reader parses: big-endian structure, little-endian data."""

import struct
from pathlib import Path

import numpy as np

DM_DATA_TYPES = {np.dtype("float32"): 2, np.dtype("uint16"): 10, np.dtype("int16"): 1, np.dtype("uint8"): 6}
SIMPLE = {"float": (6, "<f"), "long": (3, "<l")}


class _DM:
    def __init__(self, version: int):
        self.version = version

    def lq(self, value: int) -> bytes:
        return struct.pack(">q" if self.version == 4 else ">l", value)

    def name(self, tag_id: int, name: str) -> bytes:
        return struct.pack(">bH", tag_id, len(name)) + name.encode()

    def data(self, name: str, info: list[int], payload: bytes) -> bytes:
        body = b"%%%%" + self.lq(len(info)) + b"".join(self.lq(i) for i in info) + payload
        size = struct.pack(">q", len(body)) if self.version == 4 else b""
        return self.name(21, name) + size + body

    def simple(self, name: str, kind: str, value) -> bytes:
        code, fmt = SIMPLE[kind]
        return self.data(name, [code], struct.pack(fmt, value))

    def text(self, name: str, value: str) -> bytes:
        chars = np.array([ord(c) for c in value], "<u2")
        return self.data(name, [20, 4, len(chars)], chars.tobytes())

    def array(self, name: str, array: np.ndarray) -> bytes:
        code = {np.dtype("float32"): 6, np.dtype("uint16"): 4, np.dtype("int16"): 2, np.dtype("uint8"): 10}
        flat = np.ascontiguousarray(array).ravel()
        el = code[flat.dtype]
        return self.data(name, [20, el, flat.size], flat.astype(flat.dtype.newbyteorder("<")).tobytes())

    def group(self, name: str, children: list[bytes]) -> bytes:
        size = struct.pack(">q", sum(map(len, children))) if self.version == 4 else b""
        return self.name(20, name) + b"\x00\x01" + size + self.lq(len(children)) + b"".join(children)


def write_dm(path: Path, image: np.ndarray, pixel_size: float, units: str = "nm", version: int = 3) -> Path:
    """One 2-D image with a spatial calibration, as a DM3 (version=3) or DM4 (version=4) file."""
    dm = _DM(version)
    h, w = image.shape
    axis = [dm.simple("Origin", "float", 0.0), dm.simple("Scale", "float", pixel_size), dm.text("Units", units)]
    image_data = dm.group(
        "ImageData",
        [
            dm.group(
                "Calibrations",
                [
                    dm.group(
                        "Brightness",
                        [dm.simple("Origin", "float", 0.0), dm.simple("Scale", "float", 1.0), dm.text("Units", "")],
                    ),
                    dm.group("Dimension", [dm.group("", axis), dm.group("", axis)]),
                ],
            ),
            dm.array("Data", image),
            dm.simple("DataType", "long", DM_DATA_TYPES[image.dtype]),
            dm.group("Dimensions", [dm.simple("", "long", w), dm.simple("", "long", h)]),
        ],
    )
    entry = dm.group("", [image_data, dm.group("ImageTags", []), dm.text("Name", "emzoo test")])
    root = dm.group("ImageList", [entry])
    body = b"\x00\x01" + dm.lq(1) + root + b"\x00" * 8
    header = struct.pack(">l", version) + dm.lq(len(body)) + struct.pack(">l", 1)
    path.write_bytes(header + body)
    return path
