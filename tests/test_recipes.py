"""A recipe is translated into a training configuration in one place (TrainConfig.from_recipe), so
`pretrain/finetune --recipe`, `zoo build` and the recipe's card agree."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from emzoo.build import train_config
from emzoo.cli import build_parser
from emzoo.cli.train import _resolve
from emzoo.data import transforms
from emzoo.data.noise import neighbour_correlation
from emzoo.data.pipeline import SampleRecipe
from emzoo.data.transforms import smooth_background
from emzoo.train.config import TrainConfig
from emzoo.zoo import RECIPES, ZOO


def _cli(argv):
    return _resolve(build_parser(argv).parse_args(argv), argv[0])


def test_pretrain_recipe_is_followed_exactly():
    cfg = _cli(["pretrain", "--recipe", "unet-2-44-emsim", "--data", "simulated", "--output-dir", "x"])
    recipe = RECIPES[ZOO["unet-2-44-emsim"].recipe]
    assert cfg.max_steps == 1000 and cfg.ndf == recipe.ndf == 16 and cfg.arch == "emzoo_unet_2_44"
    assert cfg.batch_size == recipe.batch_size and cfg.image_size == recipe.image_size
    explicit = _cli(["pretrain", "--recipe", "unet-2-44-emsim", "--data", "d", "--output-dir", "x", "--max-steps", "7"])
    assert explicit.max_steps == 7  # the command line wins where it says something


def test_finetune_recipe_keeps_the_recipes_head_setting_and_base():
    cfg = _cli(["finetune", "--recipe", "unet-4-424-emsim-hrtem-seg", "--data", "d", "--output-dir", "x"])
    assert cfg.prior_head == RECIPES["emsim-hrtem-seg"].prior_head
    assert cfg.model == "unet-4-424-emsim" and cfg.task == "segment"


def test_zoo_build_uses_the_same_translation(tmp_path):
    entry = ZOO["unet-4-424-emsim-denoise"]
    built = train_config(entry, tmp_path, tmp_path / "run", None)
    direct = TrainConfig.from_recipe(entry.name, data=built.data, output_dir=built.output_dir)
    for key in ("max_steps", "batch_size", "image_size", "lr", "betas", "ndf", "task", "mode"):
        assert getattr(built, key) == getattr(direct, key), key


def test_zoo_build_background_prob_changes_that_share_only(tmp_path):
    """`emzoo zoo build --background-prob`: another share of smooth backgrounds, the rest the recipe's."""
    entry = ZOO["unet-4-424-emsim-hrtem-seg"]
    built = train_config(entry, tmp_path, tmp_path / "run", None)
    other = train_config(entry, tmp_path, tmp_path / "run", None, background_prob=0.6)
    assert built.background_prob == RECIPES[entry.recipe].background_prob != 0.6 == other.background_prob
    assert {**built.augmentations(), "background_prob": 0.6} == other.augmentations()


def test_evaluate_command_runs(tmp_path):
    from emzoo.data.simulate import simulated

    data = simulated("segment", n=6, size=64, seed=0, progress=False)
    proc = subprocess.run(
        [sys.executable, "-m", "emzoo", "evaluate", "--model", "unet-2-44-emsim-hrtem-seg", "--data", str(data)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "dice" in json.loads(proc.stdout)
    assert Path(data).is_dir()


def test_restoration_trains_on_the_whole_frames_it_is_judged_on():
    """The corpus' restore frames are 256^2 and the build judges whole frames: restoration trains on
    them (on 128^2 crops the crops' PSNR rose while the whole frames' fell); super-resolution on
    their 512^2 targets, at the same pixels per step."""
    for task, window in (("denoise", (256, 4)), ("bg-removal", (256, 4)), ("super-res", (512, 2))):
        cfg = TrainConfig.from_recipe(f"unet-4-424-emsim-{task}", data="d", output_dir="x")
        assert (cfg.image_size, cfg.batch_size) == window, task


def assert_share(field: str, share: float, recipe_of: str, not_of: str) -> None:
    """``recipe_of``'s checkpoint changes this share of its training frames (a run of its own, by
    the run's identity); ``not_of``'s changes none."""
    cfg = TrainConfig.from_recipe(recipe_of, data="d", output_dir="x")
    assert getattr(cfg, field) == share and cfg.identity()[field] == share
    assert not getattr(TrainConfig.from_recipe(not_of, data="d", output_dir="x"), field)


def square_particle(top: int, bottom: int, contrast: float) -> tuple[np.ndarray, np.ndarray]:
    """A 128^2 noisy support with one square particle and its mask."""
    image = np.random.default_rng(0).normal(100, 5, (128, 128)).astype(np.float32)
    mask = np.zeros((128, 128), np.uint8)
    mask[top:bottom, top:bottom] = 1
    image[mask > 0] += contrast
    return image, mask


def test_denoisers_also_train_on_a_real_detectors_noise():
    """The denoise recipe re-records half its frames with emzoo.data.noise's detector (the noise
    `emzoo adapt` is measured on); the input's noise is then neighbour-correlated and the target is
    in the recording's units. Other tasks' targets are not the input without noise: never re-recorded."""
    assert_share("detector_noise_prob", 0.5, "unet-4-424-emsim-denoise", "unet-4-424-emsim-bg-removal")
    yy, xx = np.mgrid[:128, :128]
    clean = (100 + 50 * np.sin(xx / 5.0) * np.cos(yy / 7.0)).astype(np.float32)
    noisy = clean + np.random.default_rng(0).normal(0, 1, clean.shape).astype(np.float32)
    correlations = []
    for seed in range(6):
        sample = SampleRecipe("denoise", image_size=128, detector_noise_prob=1.0)(
            noisy, clean, "x", np.random.default_rng(seed)
        )
        noise = (sample["image"] - sample["target"])[0].numpy()
        correlations.append(max(neighbour_correlation(noise), key=abs))
        assert np.corrcoef(sample["target"].flatten(), sample["image"].flatten())[0, 1] > 0.3  # one scene
    assert min(correlations) > 0.3  # charge sharing along one axis (the frame may be rotated)
    kept = SampleRecipe("denoise", image_size=128, detector_noise_prob=0.0)(noisy, clean, "x", np.random.default_rng(0))
    assert abs(neighbour_correlation((kept["image"] - kept["target"])[0].numpy())[1]) < 0.1  # the corpus' own input
    bg = SampleRecipe("bg-removal", image_size=128, detector_noise_prob=1.0)(
        noisy, clean, "x", np.random.default_rng(0)
    )
    assert torch.equal(bg["image"], kept["image"])


def test_segmentation_also_trains_on_smooth_backgrounds(monkeypatch):
    """The segmentation recipes give 30% of their frames a smooth random background (a ramp and
    blobs, 0.5-3x the frame's std): the label stays exact, the low frequencies change, and
    restoration never gets it (its target would no longer match)."""
    assert_share("background_prob", 0.3, "unet-4-424-emsim-haadf-seg", "unet-4-424-emsim-denoise")
    image, mask = square_particle(40, 80, contrast=40)
    with_bg = smooth_background(image, np.random.default_rng(1))
    change = with_bg - image
    assert 0.5 * image.std() <= change.std() <= 3.0 * image.std() + 1e-3
    assert np.abs(np.diff(change, axis=1)).max() < 0.2 * change.std() * 3  # smooth: no edges of its own
    calls = []
    monkeypatch.setattr(transforms, "smooth_background", lambda x, rng: calls.append(1) or x + 1)
    for share, task, target in ((1.0, "segment", mask), (0.0, "segment", mask), (1.0, "denoise", image)):
        SampleRecipe(task, image_size=64, background_prob=share)(image, target, "x", np.random.default_rng(3))
    assert len(calls) == 1  # segmentation's training frames only


def test_segmentation_also_trains_on_zoomed_windows():
    """30% of the segmentation recipes' frames are a window of 40-75% of the frame enlarged to the
    crop and normalised on its own (a user's zoomed crop): the label moves with the image, and a
    window of bare support comes out stretched to unit std, labelled background."""
    assert_share("zoom_window_prob", 0.3, "unet-4-424-emsim-hrtem-seg", "unet-4-424-emsim-denoise")
    image, mask = square_particle(44, 84, contrast=60)  # in every window of >= 40% of the frame
    window, label = transforms.zoomed_window(image, mask, np.random.default_rng(1), size=96)
    assert window.shape == label.shape == (96, 96)
    assert label.any() and ((window > 130) == (label > 0)).mean() > 0.97  # the particle and its label stay aligned
    sizes = {int(transforms.zoomed_window(image, mask, np.random.default_rng(s), size=96)[1].sum()) for s in range(8)}
    assert max(sizes) > 1.5 * 40 * 40 * (96 / 128) ** 2  # particles enlarged beyond what the frame holds
    bare = np.random.default_rng(5).normal(100, 5, (128, 128)).astype(np.float32)
    sample = SampleRecipe("segment", image_size=64, zoom_window_prob=1.0)(
        bare, np.zeros((128, 128), np.uint8), "x", np.random.default_rng(2)
    )
    assert sample["image"].std() > 0.9 and not sample["target"].any()  # stretched as such a crop is at prediction
