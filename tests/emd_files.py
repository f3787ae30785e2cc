"""Build Thermo Fisher Velox ``.emd`` files with h5py (Velox's own writer is not public): the
HDF5 layout rosettasciio's Velox reader parses, a JSON ``Version``, image data as
(y, x, frame) under ``Data/Image/<uuid>/Data`` and its JSON metadata as a uint8 column."""

import json
import uuid
from pathlib import Path

import h5py
import numpy as np


def _json_bytes(obj: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)


def write_velox_emd(path: Path, image: np.ndarray, pixel_size_m: float) -> Path:
    metadata = {
        "BinaryResult": {
            "PixelSize": {"width": str(pixel_size_m), "height": str(pixel_size_m)},
            "PixelUnitX": "m",
            "PixelUnitY": "m",
            "Offset": {"x": "0", "y": "0"},
            "DetectorIndex": "0",
        },
        "Detectors": {"Detector-0": {"DetectorName": "BM-Ceta", "DetectorType": "ImagingDetector"}},
        "Acquisition": {"AcquisitionStartDatetime": {"DateTime": "1700000000"}},
        "Optics": {"AccelerationVoltage": "300000"},
        "Scan": {},
        "CustomProperties": {},
    }
    with h5py.File(path, "w") as f:
        f.create_dataset("Version", data=[json.dumps({"format": "Velox", "version": "11"}).encode()])
        group = f.create_group(f"Data/Image/{uuid.uuid4().hex}")
        group.create_dataset("Data", data=image[:, :, None])
        group.create_dataset("Metadata", data=_json_bytes(metadata)[:, None])
    return path
