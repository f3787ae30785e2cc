"""Bad input, each kind once: a one-line error that names what was wrong (never a traceback),
no silently wrong result, no file lost. The table in docs/bad_input.md lists these cases."""

import json
import math
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import emzoo
from emzoo import io as emzoo_io
from emzoo.cli import main
from emzoo.errors import CheckpointError, ConfigError, DataError, EmzooError, ModelNotFoundError
from tests.conftest import trained_model

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def denoiser(tmp_path_factory):
    return emzoo.save_pretrained(
        trained_model("emzoo_unet_2_44"), tmp_path_factory.mktemp("m") / "denoise", task="denoise"
    )


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    return emzoo.save_pretrained(
        trained_model("emzoo_unet_2_44"), tmp_path_factory.mktemp("m") / "segment", task="segment"
    )


def _cli(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    return code, err


def _one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert err.startswith("emzoo: error: ") and "\n" not in err and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


def _edit_config(folder, **changes):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if key == "emzoo":
            config["emzoo"].update(value)
        else:
            config[key] = value
    path.write_text(json.dumps(config))


def _copy(folder, tmp_path, name="m"):
    import shutil

    return shutil.copytree(folder, tmp_path / name)


# ------------------------------------------------------------------------------ images (API)
def test_complex_images_are_refused_not_cast(denoiser):
    model = emzoo.load(denoiser)
    with pytest.raises(DataError, match="complex"):
        emzoo.predict(model, np.ones((32, 32), np.complex64))


def test_float16_and_huge_values_give_finite_results(denoiser):
    model = emzoo.load(denoiser)
    image = RNG.normal(1000, 50, (48, 48))
    out16 = emzoo.predict(model, image.astype(np.float16))  # np.std overflowed in float16
    assert np.isfinite(out16).all()
    huge = emzoo.predict(model, image * 1e40)  # 1e40 does not fit float32
    assert np.isfinite(huge).all() and 1e41 < np.abs(huge).mean() < 1e44


def test_tiny_and_rgb_arrays_are_named_for_what_they_are(tmp_path):
    np.save(tmp_path / "one.npy", np.ones((1, 1), np.float32))
    with pytest.raises(EmzooError, match="1x1 pixels; expected an image of at least 2x2"):
        emzoo_io.read(tmp_path / "one.npy")
    rgb = np.repeat(RNG.random((40, 30, 1)), 3, axis=2).astype(np.float32)  # HxWx3, not 40 images of 30x3
    np.save(tmp_path / "rgb.npy", rgb)
    gray, meta = emzoo.io.read(tmp_path / "rgb.npy")  # emzoo.io is reachable from `import emzoo`
    assert gray.shape == (40, 30)


def test_float64_beyond_float32_is_not_called_nan(tmp_path):
    emzoo_io.write(tmp_path / "big.tif", RNG.random((32, 32)) * 1e300)
    image, _ = emzoo_io.read(tmp_path / "big.tif")
    assert image.dtype == np.float64 and np.isfinite(image).all()
    emzoo_io.check_image(image, "big.tif")


def test_stacks_predict_each_frame_or_their_mean(tmp_path, capsys, denoiser):
    """A 2-frame int16 MRC (as SerialEM writes) is a stack, not an error."""
    frames = RNG.integers(0, 2000, (2, 64, 64)).astype(np.int16)
    with mrcfile.new(tmp_path / "movie.mrc") as mrc:
        mrc.set_data(frames)
        mrc.voxel_size = 2.5  # angstrom
    code, err = _cli(capsys, "predict", tmp_path / "movie.mrc", "--model", denoiser, "--output-dir", tmp_path / "each")
    assert code == 0, err
    stack, meta = emzoo_io.read(tmp_path / "each" / "movie.tif", frames="each")
    assert stack.shape == (2, 64, 64) and meta["pixel_size_nm"] == pytest.approx(0.25)
    code, err = _cli(
        capsys,
        "predict",
        tmp_path / "movie.mrc",
        "--model",
        denoiser,
        "--frames",
        "mean",
        "--output-dir",
        tmp_path / "m",
    )
    assert code == 0, err
    assert emzoo_io.read(tmp_path / "m" / "movie.tif")[0].shape == (64, 64)
    with pytest.raises(EmzooError, match="stack of 2 frames.*frames="):
        emzoo_io.read(tmp_path / "movie.mrc")


def test_a_245_character_name_predicts(tmp_path, capsys, denoiser):
    name = "x" * 241 + ".tif"
    emzoo_io.write(tmp_path / "in" / name, RNG.random((32, 32)).astype(np.float32))
    code, err = _cli(capsys, "predict", tmp_path / "in", "--model", denoiser, "--png", "--output-dir", tmp_path / "out")
    assert code == 0, err
    assert (tmp_path / "out" / name).is_file() and not list((tmp_path / "out").glob(".*.tif"))


# ------------------------------------------------------------------------------ arguments
def test_outputs_that_do_not_fit_the_task_are_refused(denoiser, segmenter):
    with pytest.raises(ConfigError, match="needs a segmentation model"):
        emzoo.predict(emzoo.load(denoiser), np.ones((32, 32)), output="mask")
    with pytest.raises(ConfigError, match="output 'bogus'"):  # checked before any inference ran
        emzoo.Predictor(emzoo.load(segmenter), output="bogus")


def test_evaluate_refuses_scoring_a_segmenter_as_a_denoiser(segmenter):
    with pytest.raises(ConfigError, match="is a 'segment' model"):
        emzoo.train.evaluate_model(str(segmenter), "simulated", task="denoise", sim_n=8, sim_size=64)


def test_logits_write_no_particle_table(tmp_path, capsys, segmenter):
    emzoo_io.write(tmp_path / "in" / "a.tif", RNG.random((32, 32)).astype(np.float32))
    code, err = _cli(
        capsys, "predict", tmp_path / "in", "--model", segmenter, "--output", "logits", "--output-dir", tmp_path / "o"
    )
    assert code == 0, err
    assert (tmp_path / "o" / "a.tif").is_file() and not (tmp_path / "o" / "a_particles.csv").exists()


@pytest.mark.parametrize("device", ["cuda", "cuda:7", "mps", "gpu0"])
def test_devices_this_machine_lacks(tmp_path, capsys, denoiser, device):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    emzoo_io.write(tmp_path / "a.tif", RNG.random((32, 32)).astype(np.float32))
    code, err = _cli(
        capsys, "predict", tmp_path / "a.tif", "--model", denoiser, "--device", device, "--output-dir", tmp_path / "o"
    )
    _one_line_error(code, err, f"device '{device}'", "this machine has cpu")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (
            ["finetune", "--model", "random:emzoo_unet_2_44", "--task", "segment", "--num-classes", "0"],
            "--num-classes 0",
        ),
        (["finetune", "--model", "random:emzoo_unet_2_44", "--task", "denoise", "--lr", "nan"], "--lr nan"),
        (["pretrain", "--arch", "emzoo_patchgan"], "discriminator"),
        (["finetune", "--model", "random:emzoo_patchgan", "--task", "denoise"], "--model random:emzoo_patchgan"),
        (["pretrain", "--arch", "emzoo_unet_2_44", "--gradient-accumulation-steps", "0"], "--gradient-accumulation"),
        (["pretrain", "--arch", "emzoo_unet_2_44", "--num-workers", "-1"], "--num-workers -1"),
        (["pretrain", "--arch", "emzoo_unet_2_44", "--seed", "-1"], "--seed -1"),
        (["pretrain", "--arch", "emzoo_unet_2_44", "--seed", str(2**40)], "--seed 1099511627776"),
        (["pretrain", "--arch", "emzoo_unet_2_44", "--report-to", "bogus"], "--report-to 'bogus'"),
        (["pretrain", "--arch", "emzoo_unet_2_44", "--image-size", "7"], "--image-size 7"),
        (["pretrain", "--arch", "emzoo_unet_2_44", "--data", "corpus:bogus"], "no such corpus part"),
    ],
)
def test_training_arguments(tmp_path, capsys, args, fragment):
    data = [] if "--data" in args else ["--data", "simulated"]
    code, err = _cli(capsys, *args, *data, "--output-dir", tmp_path / "run")
    _one_line_error(code, err, fragment)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["reproduce", "--seeds", "abc"], "--seeds 'abc'"),
        (["data", "corpus", "--workers", "-1"], "--workers -1"),
        (["demo", "--port", "99999"], "--port 99999"),
        (["demo", "--models", "/nonexistent/model"], "/nonexistent/model: no such folder"),
        (["reproduce", "--preset", "paper", "--data-root", "/nonexistent"], "--data-root /nonexistent: no cem500k/"),
        (["reproduce", "--data-root", "/nonexistent"], "--data-root /nonexistent: no cem500k/"),
        (["zoo", "build", "unet-2-44-emsim-hrtem-seg", "--warm-start", "--background-prob", "1.5"], "0 to 1"),
    ],
)
def test_other_commands_check_their_arguments_first(tmp_path, capsys, args, fragment):
    code, err = _cli(capsys, *args, *(["--output-dir", tmp_path / "r"] if args[0] == "reproduce" else []))
    if args[0] == "data":
        code, err = _cli(capsys, *args, "--out", tmp_path / "c")
    _one_line_error(code, err, fragment)
    assert not (tmp_path / "r").exists() and not (tmp_path / "c").exists()


def test_library_refuses_what_the_cli_refuses(denoiser, tmp_path):
    """The same checks from Python: channels, constant images, devices, particle inputs."""
    from emzoo.inference.particles import analyze_particles

    for kwargs in ({"num_classes": 0}, {"num_classes": -1}, {"in_chans": 0}):
        with pytest.raises(ConfigError, match="expected a whole number of channels"):
            emzoo.create_model("emzoo_unet_2_44", **kwargs)
    with pytest.raises(ConfigError, match="num_classes 0"):
        emzoo.load(denoiser, num_classes=0)
    with pytest.raises(DataError, match="constant image"):
        emzoo.predict(emzoo.load(denoiser), np.ones((32, 32), np.float32))
    with pytest.raises(ConfigError, match="device 'cuda:7': not available here"):
        emzoo.load(denoiser, device="cuda:7")
    mask = np.zeros((32, 32))
    mask[8:16, 8:16] = 1
    for pixel in (-1.0, float("nan"), True):
        with pytest.raises(EmzooError, match="pixel_size_nm"):
            analyze_particles(mask, pixel)
    with pytest.raises(DataError, match="expected a probability map"):
        analyze_particles(RNG.random((32, 32)) * 1000, 0.1)  # a raw image, not a segmentation


def test_a_name_or_a_half_model_predicts_like_the_model(denoiser):
    image = RNG.random((48, 48)).astype(np.float32)
    model = emzoo.load(denoiser)
    expected = emzoo.predict(model, image)
    np.testing.assert_allclose(emzoo.predict(str(denoiser), image), expected, rtol=1e-5, atol=1e-5)
    half = emzoo.predict(emzoo.load(denoiser).half(), image)
    assert np.isfinite(half).all() and np.abs(half - expected).max() < 0.05 * np.ptp(expected)


def test_arrays_and_tiffs_read_as_what_they_are(tmp_path):
    import tifffile

    np.save(tmp_path / "two.npy", RNG.random((64, 64, 2)).astype(np.float32))
    with pytest.raises(DataError, match="two channels last"):
        emzoo_io.read(tmp_path / "two.npy", frames="each")
    rgb = (RNG.random((3, 40, 50)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "planar.tif", rgb, photometric="rgb", planarconfig="separate")
    image, meta = emzoo_io.read(tmp_path / "planar.tif")  # one gray image, not a 3-frame stack
    assert image.shape == (40, 50) and meta["frames"] == 1
    with pytest.raises(DataError, match="cannot write complex128"):
        emzoo_io.write(tmp_path / "c.tif", np.ones((4, 4), complex))
    nan = RNG.random((20, 20))
    nan[0, 0] = np.nan
    emzoo_io.write(tmp_path / "nan.png", nan)
    preview = emzoo_io.read(tmp_path / "nan.png")[0]
    assert preview[0, 0] == 0 and preview.max() == 255  # NaN black, the rest scaled as if it were absent


def test_copies_of_shipped_folders_are_checked_against_the_registry(tmp_path):
    """Shipped folders older than the weights pin: a copy with an edited task, a config asking
    for a huge network, or changed weights without the test pair are refused."""
    from emzoo.zoo import ZOO

    def unpinned(entry) -> bool:  # written before save_pretrained pinned sha256 and task in the files
        config = json.loads((entry.shipped_folder / "config.json").read_text())
        return "weights_sha256" not in config["emzoo"]

    old = [e for e in ZOO.values() if e.shipped_folder is not None and unpinned(e) and e.task != "denoise"]
    if not old:
        pytest.skip("every shipped folder carries its own pins now")
    entry = min(old, key=lambda e: (e.shipped_folder / "model.safetensors").stat().st_size)
    shipped = entry.shipped_folder
    edited = _copy(shipped, tmp_path, "task")
    _edit_config(edited, emzoo={"task": "denoise"})
    with pytest.raises(CheckpointError, match=f"is the shipped {entry.name}"):
        emzoo.load(edited)
    huge = _copy(shipped, tmp_path, "huge")
    config = json.loads((huge / "config.json").read_text())
    _edit_config(huge, model_args={**config["model_args"], "width": 20000})
    with pytest.raises(CheckpointError, match="the config does not belong to these weights"):
        emzoo.load(huge)
    scaled = _copy(shipped, tmp_path, "scaled")
    weights = load_file(scaled / "model.safetensors")
    save_file({k: v * 1.01 if v.is_floating_point() else v for k, v in weights.items()}, scaled / "model.safetensors")
    (scaled / "test_pair.safetensors").unlink()
    with pytest.raises(CheckpointError, match="cannot be verified"):
        emzoo.load(scaled)


def test_save_pretrained_never_deletes_a_users_folder(tmp_path, denoiser):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds files that are not a model's"):
        emzoo.save_pretrained(emzoo.load(denoiser), folder, task="denoise")
    assert (folder / "notes.txt").read_text() == "mine"
    again = emzoo.save_pretrained(emzoo.load(denoiser), tmp_path / "model", task="denoise")
    emzoo.save_pretrained(emzoo.load(denoiser), again, task="denoise")  # a model folder is replaced whole
    assert emzoo.load(again) is not None


def test_an_architecture_name_is_not_a_checkpoint():
    with pytest.raises(
        ModelNotFoundError, match="'emzoo_unet_2_44' is an architecture, not a checkpoint.*create_model"
    ):
        emzoo.load("emzoo_unet_2_44")


# ------------------------------------------------------------------------------ checkpoint folders
@pytest.mark.parametrize(
    "edit, fragment",
    [
        ("null", "expected timm's config format"),
        ({"model_args": {"in_chans": 1, "bogus_width": 3}}, "model_args do not fit"),
        ({"emzoo": {"normalization": "zscore"}}, "normalization 'zscore'"),
        ({"emzoo": {"task": "colourise"}}, "task 'colourise'"),
        ({"num_classes": 3}, "disagrees with model.safetensors"),
        ({"architecture": "emzoo_unet_4_424"}, "disagrees with model.safetensors"),
    ],
)
def test_configs_that_disagree_are_one_line(tmp_path, capsys, denoiser, edit, fragment):
    folder = _copy(denoiser, tmp_path)
    if edit == "null":
        (folder / "config.json").write_text("null")
    else:
        _edit_config(folder, **edit)
    with pytest.raises(CheckpointError, match=fragment.replace("(", r"\(")):
        emzoo.load(folder)
    code, err = _cli(capsys, "predict", folder / "README.md", "--model", folder, "--output-dir", tmp_path / "o")
    _one_line_error(code, err, fragment)


def test_a_folder_claiming_another_task_is_refused(tmp_path, segmenter):
    folder = _copy(segmenter, tmp_path)
    _edit_config(folder, emzoo={"task": "denoise"})  # a segmenter's weights, served as a denoiser
    with pytest.raises(CheckpointError, match="says task 'denoise' but the weights were saved for 'segment'"):
        emzoo.load(folder)


def test_replaced_weights_are_caught_without_the_test_pair(tmp_path, denoiser):
    folder = _copy(denoiser, tmp_path)
    state = load_file(folder / "model.safetensors")
    state["head.bias"] = state["head.bias"] + 1
    save_file(state, folder / "model.safetensors", metadata={"format": "pt", "emzoo_task": "denoise"})
    (folder / "test_pair.safetensors").unlink()
    with pytest.raises(CheckpointError, match="sha256 differs"):
        emzoo.load(folder)


def test_a_corrupt_test_pair_is_one_line(tmp_path, denoiser):
    folder = _copy(denoiser, tmp_path)
    (folder / "test_pair.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="test_pair.safetensors: unreadable"):
        emzoo.load(folder)


# ------------------------------------------------------------------------------ runs
def test_segmentation_at_the_images_own_size_trains(tmp_path, capsys):
    """The resize augmentation used to shrink 64^2 images below a 64^2 crop on every seed."""
    common = ["--model", "random:emzoo_unet_2_44", "--task", "segment", "--data", "simulated", "--sim-n", "10"]
    common += ["--sim-size", "64", "--image-size", "64", "--batch-size", "2", "--max-steps", "2", "--quiet"]
    code, err = _cli(capsys, "finetune", *common, "--output-dir", tmp_path / "run", "--compile", "off")
    assert code == 0, err


def test_a_run_that_died_before_its_first_checkpoint_does_not_block(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    identity = {"mode": "finetune", "task": "denoise", "arch": None, "model": "random:emzoo_unet_2_44"}
    identity |= {"data": "simulated", "seed": 0, "image_size": 32}
    (tmp_path / "run" / "run.json").write_text(json.dumps({"config": identity}))
    (tmp_path / "run" / "metrics.jsonl").write_text("")
    common = ["--model", "random:emzoo_unet_2_44", "--task", "denoise", "--data", "simulated", "--sim-n", "10"]
    common += ["--sim-size", "64", "--image-size", "32", "--batch-size", "2", "--max-steps", "2", "--quiet"]
    code, err = _cli(capsys, "finetune", *common, "--output-dir", tmp_path / "run", "--compile", "off")
    assert code == 0, err
    assert math.isfinite(json.loads((tmp_path / "run" / "result.json").read_text())["best_val"]["l1"])


def test_a_folder_builds_its_engine_once(tmp_path, capsys, denoiser, monkeypatch):
    """predict used to rebuild its runner (BN folding, or an ONNX session + weight hash) per image."""
    from emzoo.inference import predictor

    calls = []
    real = predictor.make_engine
    monkeypatch.setattr(predictor, "make_engine", lambda *a, **k: calls.append(1) or real(*a, **k))
    for i in range(3):
        emzoo_io.write(tmp_path / "in" / f"{i}.tif", RNG.random((32, 32)).astype(np.float32))
    code, err = _cli(capsys, "predict", tmp_path / "in", "--model", denoiser, "--output-dir", tmp_path / "o")
    assert code == 0, err
    assert len(calls) == 1


def test_export_into_a_file_is_one_line(tmp_path, capsys, denoiser):
    (tmp_path / "taken").write_text("mine")
    code, err = _cli(capsys, "export", "--model", denoiser, "--format", "torchscript", "--out", tmp_path / "taken")
    _one_line_error(code, err, "is a file; expected a new folder")
    assert (tmp_path / "taken").read_text() == "mine"
    code, err = _cli(
        capsys, "predict", denoiser / "README.md", "--model", denoiser, "--output-dir", tmp_path / "taken" / "o"
    )
    _one_line_error(code, err, "--output-dir")


def test_a_full_disk_while_checkpointing_is_one_line(tmp_path, capsys):
    """torch.save on a full disk raises a RuntimeError from its C++ writer; the run says which
    checkpoint could not be written, leaves no half-written folder, and the CLI prints one line."""
    from emzoo.train.run_folder import save_checkpoint

    class FullDisk:
        is_main_process = True

        def wait_for_everyone(self):
            pass

        def save_state(self, folder):
            Path(folder).mkdir(parents=True)
            (Path(folder) / "model.safetensors").write_bytes(b"partial")
            raise RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file")

    with pytest.raises(OSError, match="is the disk full") as error:
        save_checkpoint(FullDisk(), tmp_path, 10, keep=2)
    assert "step_00000010" in error.value.filename
    assert not any((tmp_path / "checkpoints").iterdir())


def test_a_latin1_file_name_predicts(tmp_path, capsys, segmenter):
    import os

    folder = tmp_path / "in"
    folder.mkdir()
    emzoo_io.write(folder / os.fsdecode(b"caf\xe9.tif"), RNG.random((48, 48)).astype(np.float32))
    code, err = _cli(capsys, "predict", folder, "--model", segmenter, "--output-dir", tmp_path / "o", "--quiet")
    assert code == 0, err
    assert (tmp_path / "o" / os.fsdecode(b"caf\xe9_sizes.png")).is_file()


def test_empty_output_paths_and_folders_of_micrographs(tmp_path, capsys, denoiser):
    code, err = _cli(capsys, "export", "--model", denoiser, "--format", "onnx", "--out", "")
    _one_line_error(code, err, "--out '': expected a folder path")
    folder = tmp_path / "session"
    folder.mkdir()
    for name in ("a.tif", "b.tif"):
        emzoo_io.write(folder / name, RNG.random((64, 64)).astype(np.float32))
    code, err = _cli(
        capsys, "adapt", folder, "--model", denoiser, "--output-dir", tmp_path / "adapted", "--steps", "1", "--quiet"
    )
    assert code == 0, err  # a folder stands for the micrographs in it, as for predict
    config = json.loads((tmp_path / "adapted" / "model" / "config.json").read_text())
    assert config["emzoo"]["adaptation"]["images"] == 2
