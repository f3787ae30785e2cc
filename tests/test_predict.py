"""Tiled prediction equals whole-image prediction for every U-Net; outputs per task; the
predict CLI on folders of 16-bit TIFFs; ONNX and TorchScript exports match PyTorch."""

import csv
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile
import timm
import torch

import emzoo
from emzoo import EmzooError
from emzoo import io as emzoo_io
from emzoo.export import export
from emzoo.inference.particles import analyze_particles
from emzoo.inference.predictor import predict
from emzoo.inference.tiling import default_margin
from emzoo.zoo import UNET_POOLS
from tests.conftest import trained_model

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("b,rf", list(UNET_POOLS))
def test_tiled_equals_whole_image_for_every_unet(b, rf):
    model = trained_model(f"emzoo_unet_{b}_{rf}")
    margin, divisor = default_margin(model), model.size_divisor
    tile = (2 * margin + 32) // divisor * divisor + 2 * divisor  # the smallest tiles: the hardest case
    size = tile + divisor + 5  # two tiles a side, the border ones off the pooling grid
    image = RNG.normal(size=(size, size + 7)).astype(np.float32)
    whole = predict(model, image, tile=0)
    tiled = predict(model, image, tile=tile, batch_size=3)
    assert whole.shape == image.shape
    assert np.abs(whole - tiled).max() < 1e-4


def test_hrnet_tiles_have_no_visible_seams():
    """HRNet's field is larger than a tile, so tiles differ slightly from the whole image; at the
    default tiling the difference is small and no seam shows (pixel-to-pixel jumps in the tiled
    output stay close to those of the whole-image output)."""
    model = trained_model("emzoo_hrnet_w18_small")
    image = RNG.normal(size=(640, 640)).cumsum(0).astype(np.float32)
    whole = predict(model, image, tile=0)
    tiled = predict(model, image)
    assert np.abs(whole - tiled).mean() < 0.2 * whole.std()
    for axis in (0, 1):
        jumps_tiled = np.abs(np.diff(tiled, axis=axis)).mean(1 - axis)
        jumps_whole = np.abs(np.diff(whole, axis=axis)).mean(1 - axis)
        assert (jumps_tiled / jumps_whole).max() < 2.0


def test_outputs_by_task():
    seg = trained_model("emzoo_unet_2_44", num_classes=1)
    seg.emzoo_cfg = {"task": "segment"}
    image = RNG.normal(size=(70, 90)).astype(np.float32)
    prob = predict(seg, image)
    assert prob.shape == (70, 90) and 0 <= prob.min() and prob.max() <= 1
    mask = predict(seg, image, output="mask")
    assert set(np.unique(mask)) <= {0, 1}
    sr = trained_model("emzoo_unet_2_44")
    sr.emzoo_cfg = {"task": "super-res"}
    assert predict(sr, image).shape == (140, 180)
    den = trained_model("emzoo_unet_2_44")
    den.emzoo_cfg = {"task": "denoise"}
    out = predict(den, image * 1000 + 5000)  # back in the input's units
    assert abs(float(np.median(out)) - 5000) < 5000
    with pytest.raises(EmzooError, match="expected a 2-D array"):
        predict(den, np.zeros((2, 8, 8)))


def test_measure_particles():
    mask = np.zeros((40, 40), np.uint8)
    mask[5:15, 5:15] = 1
    mask[25:29, 20:24] = 1
    rows = sorted(analyze_particles(mask, pixel_size_nm=0.5).rows, key=lambda r: -r["area_px"])
    assert [r["area_px"] for r in rows] == [100, 16]
    assert rows[0]["area_nm2"] == pytest.approx(25.0)
    assert rows[1]["equivalent_diameter_nm"] == pytest.approx(2 * np.sqrt(16 / np.pi) * 0.5, rel=1e-3)


def _folder_hash(folder) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(p.name.encode() + (p.read_bytes() if p.is_file() else b""))
    return h.hexdigest()


def test_predict_cli_on_16bit_tiffs(tmp_path):
    model = trained_model("emzoo_unet_2_44")
    model.emzoo_cfg = {"task": "segment"}
    folder = emzoo.save_pretrained(model, tmp_path / "model", task="segment")
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(3):
        tifffile.imwrite(
            inputs / f"m{i}.tif",
            RNG.integers(0, 65535, (130, 150), dtype=np.uint16),
            imagej=True,
            resolution=(10.0, 10.0),
            metadata={"unit": "nm"},
        )
    (inputs / "broken.tif").write_bytes(b"not a tiff")
    before = _folder_hash(inputs)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "emzoo", "predict", str(inputs), "--model", str(folder), "--quiet"]
    proc = subprocess.run([*cmd, "--output-dir", str(tmp_path / "out")], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("emzoo: error: ") and "broken.tif" in proc.stderr
    proc = subprocess.run(
        [*cmd, "--output-dir", str(tmp_path / "out"), "--skip-bad", "--png"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["written"] == 3 and len(report["skipped"]) == 1 and "broken.tif" in report["skipped"][0]
    out, meta = emzoo_io.read(tmp_path / "out" / "m0.tif")
    assert out.shape == (130, 150) and meta["pixel_size_nm"] == pytest.approx(0.1)
    with open(tmp_path / "out" / "m0_particles.csv") as fh:
        assert "equivalent_diameter_nm" in next(csv.reader(fh))
    assert (tmp_path / "out" / "m1.png").exists()
    assert _folder_hash(inputs) == before  # inputs untouched
    same = subprocess.run([*cmd, "--output-dir", str(inputs)], capture_output=True, text=True, env=env)
    assert same.returncode == 2 and "holds the input" in same.stderr


@pytest.mark.parametrize(
    "fmt,arch",
    # HRNet's ONNX export takes ~90 s here; it is exercised by `emzoo export` in the README instead
    [("onnx", "emzoo_unet_2_116"), ("torchscript", "emzoo_unet_2_116"), ("torchscript", "emzoo_hrnet_w18_small")],
)
def test_exports_match_pytorch(tmp_path, fmt, arch):
    folder = emzoo.save_pretrained(trained_model(arch), tmp_path / "m")
    report = export(str(folder), fmt, tmp_path / "out")
    assert report["max_rel_diff_vs_pytorch"] <= 1e-4
    assert (tmp_path / "out" / report["file"]).stat().st_size > 1000
    with pytest.raises(EmzooError, match="exists and is not empty"):
        export(str(folder), fmt, tmp_path / "out")


def test_every_generator_has_a_traceable_core():
    for arch in timm.list_models("emzoo_*"):
        if arch != "emzoo_patchgan":
            assert hasattr(emzoo.create_model(arch), "forward_padded"), arch


@pytest.mark.parametrize("arch", ["emzoo_unet_4_424", "emzoo_hrnet_w18_small"])
def test_fold_batchnorm_keeps_outputs(arch):
    from emzoo.inference.engines import fold_batchnorm

    model = trained_model(arch)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the caller's model is untouched
    x = torch.randn(1, 1, 96, 96)
    with torch.no_grad():
        ref = model(x)
        assert float((folded(x) - ref).abs().max() / ref.abs().max()) < 5e-5


def test_tile_origins_cover_every_length_on_the_grid():
    from emzoo.inference.tiling import starts

    for length in range(100, 3000, 37):
        for tile, stride, divisor in [(480, 384, 48), (512, 464, 4), (2304, 1824, 48)]:
            origins = starts(length, tile, stride, divisor)
            assert origins[0] == 0 and origins[-1] + tile >= length
            assert all(s % divisor == 0 for s in origins)
            assert all(0 < b - a <= stride for a, b in zip(origins, origins[1:]))


def test_default_tiles_split_large_images_evenly():
    from emzoo.inference.tiling import default_tile, starts

    model = emzoo.create_model("emzoo_unet_4_424")
    margin = default_margin(model)
    tile = default_tile(model, margin, 4096)
    assert tile <= 2400 and tile % model.size_divisor == 0
    assert len(starts(4096, tile, tile - 2 * margin, model.size_divisor)) == 2  # 2 x 2 tiles, not 3 x 3


def test_onnxruntime_engine_matches_torch_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("EMZOO_CACHE", str(tmp_path / "cache"))
    model = trained_model("emzoo_unet_2_116")
    image = RNG.normal(size=(700, 650)).astype(np.float32)
    ref = predict(model, image, tile=336)
    out = predict(model, image, tile=336, engine="onnxruntime")
    assert np.abs(out - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    cached = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    predict(model, image[:200, :200], engine="onnxruntime")
    assert cached[0].stat().st_mtime_ns == stamp  # same weights: no second export
    with pytest.raises(EmzooError, match="engine 'tensorrt'"):
        predict(model, image, engine="tensorrt")


def test_predict_runs_in_eval_mode_and_leaves_the_model_alone():
    model = trained_model("emzoo_unet_2_44")
    image = RNG.normal(size=(96, 80)).astype(np.float32)
    ref = predict(model, image)
    model.train()
    out = predict(model, image)  # batch statistics would change the output
    assert model.training
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_predict_cli_keeps_every_output_and_every_user_file(tmp_path):
    """Inputs that share a stem get their own outputs; a user's file in --output-dir is never
    replaced without --overwrite; a rerun finishes only what is missing."""
    model = trained_model("emzoo_unet_2_44")
    folder = emzoo.save_pretrained(model, tmp_path / "model", task="denoise")
    inputs = tmp_path / "in"
    for rel in ("a.tif", "a.png", "sub1/x.tif", "sub2/x.tif"):
        (inputs / rel).parent.mkdir(parents=True, exist_ok=True)
        emzoo_io.write(inputs / rel, RNG.integers(0, 255, (40, 40)).astype(np.uint8), dtype="uint8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "emzoo",
        "predict",
        str(inputs),
        "--model",
        str(folder),
        "--quiet",
        "--output-dir",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.tif"))
    assert written == ["a_png.tif", "a_tif.tif", "sub1/x.tif", "sub2/x.tif"]
    again = json.loads(subprocess.run(cmd, capture_output=True, text=True, env=env).stdout)
    assert again["written"] == 0 and again["done_before"] == 4  # a rerun skips finished images
    (out / "sub1" / "x.tif").unlink()
    again = json.loads(subprocess.run(cmd, capture_output=True, text=True, env=env).stdout)
    assert again["written"] == 1  # and redoes exactly the missing one
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "a_tif.tif").write_bytes(b"my own data")
    proc = subprocess.run([*cmd[:-1], str(mine)], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "was not written by emzoo" in proc.stderr
    assert (mine / "a_tif.tif").read_bytes() == b"my own data"


@pytest.mark.parametrize("kwargs", [{"batch_size": -1}, {"batch_size": 0}, {"overlap": -2}, {"tile": -64}])
def test_predict_refuses_bad_numbers(kwargs):
    model = trained_model("emzoo_unet_2_44")
    with pytest.raises(EmzooError, match="expected a whole number"):
        predict(model, np.zeros((64, 64), np.float32), **kwargs)
