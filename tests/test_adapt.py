"""`emzoo adapt`: self-supervised fine-tuning on the user's own images, through the Trainer.

A few steps on small images (the quality is measured by scripts/bench_adapt.py, not here): the
blind spot hides what it must, n2n pairs independent frames, the result is an ordinary model
folder with its card, inputs are never changed, a rerun resumes or returns the finished model,
and bad input is one line."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import emzoo
from emzoo import io
from emzoo.data.noise import measured_correlation, realistic_noise
from emzoo.data.selfsupervised import MASK_SPACING, blind_spot, correlated_axis
from emzoo.train.objectives import BlindSpot

SIZE = 96


def _clean(seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    return (np.sin(xx / 5.0) * np.cos(yy / 7.0) + 0.1 * rng.normal(size=(SIZE, SIZE))).astype(np.float32)


def test_blind_spot_hides_the_centre_and_its_correlated_neighbours():
    rng = np.random.default_rng(0)
    patch = rng.normal(size=(40, 40)).astype(np.float32)
    masked, mask = blind_spot(patch, rng, axis=1)
    ys, xs = np.nonzero(mask)
    assert len(ys) == (40 // MASK_SPACING) ** 2
    assert not np.any(masked[ys, xs] == patch[ys, xs])  # replaced (median of off-line neighbours)
    inner = (xs >= 2) & (xs < 38)
    assert not np.any(masked[ys[inner], xs[inner] + 1] == patch[ys[inner], xs[inner] + 1])  # structN2V
    # the objective only scores the masked pixels
    import torch

    target = torch.from_numpy(np.stack([patch, mask]))[None]
    out = torch.from_numpy(patch)[None, None].clone()
    out[0, 0][torch.from_numpy(mask) == 0] += 100.0  # errors where no pixel is masked do not count
    assert float(BlindSpot().loss(out, target)) == pytest.approx(0.0)


def test_realistic_noise_correlates_horizontal_neighbours_and_is_detected():
    frames = realistic_noise(_clean(), "hrtem", np.random.default_rng(1), frames=2, dose=50)
    vertical, horizontal = measured_correlation(frames[0], frames[1])
    assert horizontal == pytest.approx(0.5, abs=0.1) and abs(vertical) < 0.1
    assert correlated_axis([frames[:1]]) == 1
    assert correlated_axis([np.random.default_rng(2).normal(size=(1, SIZE, SIZE)).astype(np.float32)]) is None


def _digest(folder: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())).hexdigest()


def test_adapt_n2v_from_files_writes_a_model_folder_and_leaves_inputs_alone(tmp_path):
    inputs = tmp_path / "in"
    for k in range(2):
        noisy = realistic_noise(_clean(k), "haadf", np.random.default_rng(k))[0]
        io.write(inputs / f"m{k}.tif", noisy, {"pixel_size_nm": 0.05})
    before = _digest(inputs)
    model = emzoo.adapt(None, sorted(inputs.glob("*.tif")), output_dir=tmp_path / "out", steps=4, progress=False)
    assert _digest(inputs) == before
    info = model.emzoo_cfg["adaptation"]
    assert info["method"] == "n2v" and info["images"] == 2 and info["steps"] == 4
    assert info["adapted_from"] == "unet-4-424-emsim-denoise" and info["struct_axis"] == 1
    assert set(info["held_out_before"]) == {"masked_mse"}
    folder = tmp_path / "out" / "model"
    assert model.emzoo_cfg["pixel_size_nm"] == pytest.approx([0.04, 0.0625])  # the adapted scale, +-25%
    card = (folder / "README.md").read_text()
    assert "emzoo adapt" in card and "unet-4-424-emsim-denoise" in card
    again = emzoo.load(folder)  # an ordinary folder: loads, verifies its test pair, predicts
    out = emzoo.predict(again, io.read(inputs / "m0.tif")[0], pixel_size=0.05)
    assert out.shape == (SIZE, SIZE) and np.isfinite(out).all()
    # a rerun of the finished adaptation returns it, trains nothing
    assert emzoo.adapt(None, sorted(inputs.glob("*.tif")), output_dir=tmp_path / "out", steps=4, progress=False)


def test_auto_picks_n2n_for_frame_series_and_scores_against_the_other_frames(tmp_path, caplog):
    frames = realistic_noise(_clean(), "hrtem", np.random.default_rng(0), frames=4)
    with caplog.at_level("INFO", logger="emzoo.adapt"):
        model = emzoo.adapt(None, [frames], output_dir=tmp_path / "a", steps=3, progress=False)
    assert "n2n" in caplog.text
    info = model.emzoo_cfg["adaptation"]
    assert info["method"] == "n2n" and info["frames"] == [4]
    assert "psnr_vs_other_frames" in info["held_out_after"]


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    """kill -9 after the first epoch's checkpoint; the same command again finishes the budget."""
    import signal
    import time

    noisy = realistic_noise(_clean(), "haadf", np.random.default_rng(0))[0]
    io.write(tmp_path / "a.tif", noisy)
    cmd = [sys.executable, "-m", "emzoo", "adapt", str(tmp_path / "a.tif"), "--output-dir", str(tmp_path / "o")]
    cmd += ["--steps", "400", "--patch-size", "32", "--quiet"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "o" / "run" / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and not (checkpoints.is_dir() and any(checkpoints.glob("step_*"))):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(checkpoints.glob("step_*")), "no checkpoint within 2 minutes"
    assert not (tmp_path / "o" / "model").exists()
    done = subprocess.run([*cmd[:-3], "--steps", "20", "--patch-size", "32", "--quiet"], capture_output=True, env=env)
    assert done.returncode == 0, done.stderr
    info = emzoo.load(tmp_path / "o" / "model").emzoo_cfg["adaptation"]
    assert info["steps"] >= 16  # resumed past the checkpoint, not from step 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="n2n"), "one frame"),
        (dict(model="unet-4-424-emsim-haadf-seg"), "segment"),
        (dict(minutes=-1), "minutes"),
        (dict(steps=1.5), "steps"),
        (dict(method="noise2self"), "method"),
        (dict(patch=4), "patch"),
        (dict(pixel_size=1e9), "pixel"),
    ],
)
def test_bad_input_is_one_line(tmp_path, kwargs, message):
    image = realistic_noise(_clean(), "haadf", np.random.default_rng(0))[0]
    args = dict(model=None, output_dir=tmp_path / "x", steps=1, progress=False) | kwargs
    with pytest.raises(emzoo.EmzooError, match=message) as err:
        emzoo.adapt(args.pop("model"), [image], **args)
    assert "\n" not in str(err.value)


def test_bad_arrays_are_refused(tmp_path):
    with pytest.raises(emzoo.DataError, match="expected"):
        emzoo.adapt(None, [np.zeros((2, 2, 2, 2))], output_dir=tmp_path / "x", steps=1)
    with pytest.raises(emzoo.DataError, match="at least"):
        emzoo.adapt(None, [np.random.rand(16, 16)], output_dir=tmp_path / "x", steps=1)
    with pytest.raises(emzoo.DataError, match="NaN"):
        emzoo.adapt(None, [np.full((64, 64), np.nan)], output_dir=tmp_path / "x", steps=1)


def test_cli_adapt_then_predict_with_the_adapted_folder(tmp_path):
    noisy = realistic_noise(_clean(), "hrtem", np.random.default_rng(0))[0]
    io.write(tmp_path / "in" / "a.tif", noisy, {"pixel_size_nm": 0.02})
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = [sys.executable, "-m", "emzoo"]
    proc = subprocess.run(
        [
            *run,
            "adapt",
            str(tmp_path / "in" / "a.tif"),
            "--output-dir",
            str(tmp_path / "ad"),
            "--steps",
            "2",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["method"] == "n2v"
    proc = subprocess.run(
        [
            *run,
            "predict",
            str(tmp_path / "in"),
            "--model",
            str(tmp_path / "ad" / "model"),
            "--output-dir",
            str(tmp_path / "pred"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "pred" / "a.tif").is_file()
    bad = subprocess.run(
        [*run, "adapt", str(tmp_path / "in" / "a.tif"), "--output-dir", str(tmp_path / "b"), "--method", "n2n"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("emzoo: error: ") and bad.stderr.count("\n") == 1
