"""Each format is read from a file written by that format's own library (or, where none
exists, built byte by byte in the format's documented layout), with its pixel size."""

import numpy as np
import pytest
import tifffile
from PIL import Image

from emzoo import EmzooError, io
from tests.dm_files import write_dm
from tests.emd_files import write_velox_emd
from tests.ser_files import write_ser

RNG = np.random.default_rng(0)
IMG16 = RNG.integers(0, 65535, size=(40, 56), dtype=np.uint16)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int32", "float32", "float64"])
def test_tiff_dtypes_and_pixel_size(tmp_path, dtype):
    data = (IMG16 // 300).astype(dtype)
    path = tmp_path / "a.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=dtype in ("uint8", "uint16", "float32"),
        resolution=(1 / 0.25, 1 / 0.25),
        metadata={"unit": "nm"} if dtype in ("uint8", "uint16", "float32") else None,
        resolutionunit="CENTIMETER" if dtype in ("int32", "float64") else None,
    )
    array, meta = io.read(path)
    assert array.dtype == np.float32 and np.array_equal(array, data.astype(np.float32))
    assert meta["source_dtype"] == dtype and meta["format"] == "tiff" and meta["shape"] == (40, 56)
    expected = 0.25 if dtype in ("uint8", "uint16", "float32") else 0.25e7  # 0.25 cm per pixel
    assert meta["pixel_size_nm"] == pytest.approx(expected)


def test_tiff_stack(tmp_path):
    stack = np.stack([IMG16, IMG16 // 2, IMG16 // 3])
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack")
    with pytest.raises(EmzooError, match="s.tif: a stack of 3 frames of 40x56; expected one image"):
        io.read(tmp_path / "s.tif")
    array, meta = io.read(tmp_path / "s.tif", allow_stack=True)
    assert array.shape == (3, 40, 56) and np.array_equal(array[1], stack[1])


def test_png_jpeg(tmp_path):
    Image.fromarray((IMG16 >> 8).astype(np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(IMG16).save(tmp_path / "b16.png")
    Image.fromarray((IMG16 >> 8).astype(np.uint8)).convert("RGB").save(tmp_path / "c.jpg", quality=95)
    a, meta = io.read(tmp_path / "a.png")
    assert np.array_equal(a, (IMG16 >> 8)) and meta["pixel_size_nm"] is None
    b, _ = io.read(tmp_path / "b16.png")
    assert np.array_equal(b, IMG16)
    c, meta = io.read(tmp_path / "c.jpg")
    assert c.shape == (40, 56) and meta["format"] == "jpeg" and np.abs(c - (IMG16 >> 8)).mean() < 10


def test_mrc(tmp_path):
    import mrcfile

    with mrcfile.new(tmp_path / "a.mrc") as mrc:
        mrc.set_data(IMG16.astype(np.float32))
        mrc.voxel_size = 3.2  # Angstrom
    array, meta = io.read(tmp_path / "a.mrc")
    assert np.array_equal(array, IMG16.astype(np.float32))
    assert meta["pixel_size_nm"] == pytest.approx(0.32)


@pytest.mark.parametrize("version", [3, 4])
def test_dm3_dm4(tmp_path, version):
    path = write_dm(tmp_path / f"a.dm{version}", IMG16, 0.05, "nm", version)
    array, meta = io.read(path)
    assert np.array_equal(array, IMG16) and meta["source_dtype"] == "uint16"
    assert meta["pixel_size_nm"] == pytest.approx(0.05) and meta["format"] == f"dm{version}"
    float_path = write_dm(tmp_path / "b.dm3", IMG16.astype(np.float32), 1.5, "Å", 3)
    assert io.read(float_path)[1]["pixel_size_nm"] == pytest.approx(0.15)


def test_velox_emd_and_ser(tmp_path):
    emd_array, emd_meta = io.read(write_velox_emd(tmp_path / "a.emd", IMG16, 0.05e-9))
    assert np.array_equal(emd_array, IMG16) and emd_meta["pixel_size_nm"] == pytest.approx(0.05)
    ser_array, ser_meta = io.read(write_ser(tmp_path / "a.ser", IMG16, 0.2e-9))
    assert np.array_equal(ser_array, IMG16) and ser_meta["pixel_size_nm"] == pytest.approx(0.2)


def test_ncem_emd_written_by_rosettasciio(tmp_path):
    from rsciio.emd import file_writer

    signal = {
        "data": IMG16.astype(np.float32),
        "axes": [
            {"name": "y", "size": 40, "scale": 0.1, "offset": 0, "units": "nm", "navigate": False},
            {"name": "x", "size": 56, "scale": 0.1, "offset": 0, "units": "nm", "navigate": False},
        ],
        "metadata": {"General": {"title": "t"}, "Signal": {"signal_type": ""}},
        "original_metadata": {},
    }
    file_writer(str(tmp_path / "n.emd"), signal)
    array, meta = io.read(tmp_path / "n.emd")
    assert np.array_equal(array, IMG16.astype(np.float32)) and meta["pixel_size_nm"] == pytest.approx(0.1)


def test_npy_refuses_pickles(tmp_path):
    np.save(tmp_path / "a.npy", IMG16)
    assert np.array_equal(io.read(tmp_path / "a.npy")[0], IMG16)
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(EmzooError, match="o.npy: cannot read as NPY"):
        io.read(tmp_path / "o.npy")


def test_write_round_trips_atomically(tmp_path):
    data = RNG.normal(size=(30, 20)).astype(np.float32)
    io.write(tmp_path / "f.tif", data, {"pixel_size_nm": 0.07})
    back, meta = io.read(tmp_path / "f.tif")
    assert np.array_equal(back, data) and meta["pixel_size_nm"] == pytest.approx(0.07)
    io.write(tmp_path / "u.tif", IMG16)
    assert io.read(tmp_path / "u.tif")[1]["source_dtype"] == "uint16"
    io.write(tmp_path / "p.png", data)
    preview, _ = io.read(tmp_path / "p.png")
    assert preview.min() == 0 and preview.max() == 255
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.tif", "p.png", "u.tif"]


@pytest.mark.parametrize("suffix", [".tif", ".png", ".mrc", ".dm3", ".dm4", ".emd", ".ser", ".npy"])
def test_corrupt_and_truncated_files(tmp_path, suffix):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(b"this is not an image at all" * 3)
    with pytest.raises(EmzooError, match=rf"bad\{suffix}: cannot read as"):
        io.read(path)


def test_truncated_tiff(tmp_path):
    tifffile.imwrite(tmp_path / "t.tif", IMG16)
    blob = (tmp_path / "t.tif").read_bytes()
    (tmp_path / "t.tif").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(EmzooError, match="t.tif: cannot read as TIFF"):
        io.read(tmp_path / "t.tif")


def test_unsupported_and_bad_values(tmp_path):
    (tmp_path / "a.docx").write_bytes(b"x")
    with pytest.raises(EmzooError, match=r"a.docx: unsupported format '.docx'; expected one of"):
        io.read(tmp_path / "a.docx")
    bad = IMG16.astype(np.float32)
    bad[3, 4] = np.nan
    with pytest.raises(EmzooError, match="nan.npy: 1 NaN/Inf pixels"):
        io.check_image(bad, "nan.npy")
    with pytest.raises(EmzooError, match="flat.tif: constant image"):
        io.check_image(np.full((8, 8), 3.0), "flat.tif")
