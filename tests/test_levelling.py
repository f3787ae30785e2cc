"""Levelling (emzoo.inference.levelling): an unevenly lit empty support is not particle, and the
plane is fitted under the background only, so particles neither bend it nor vanish."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import emzoo
from emzoo.errors import ConfigError
from emzoo.inference.levelling import level
from emzoo.inference.predictor import Predictor

SEG = "unet-4-424-emsim-haadf-seg"
RNG = np.random.default_rng(0)
YY, XX = np.mgrid[0:256, 0:256] / 256.0


def test_a_plane_under_the_background_is_removed_and_the_particles_kept():
    ramp = 40 * XX - 25 * YY
    particle = (YY - 0.5) ** 2 + (XX - 0.75) ** 2 < 0.35**2  # a large bright particle, 35% of the field
    image = 100 + ramp + 80 * particle + RNG.normal(0, 1, XX.shape)
    levelled = level(image, 1, background=~particle)
    assert np.std(levelled[~particle]) < 1.5  # the ramp (std ~14) is gone
    assert levelled[particle].mean() - levelled[~particle].mean() == pytest.approx(80, abs=2)
    whole = level(image, 1)  # fitted to everything, the particle bends the plane
    assert np.std(whole[~particle]) > 2 * np.std(levelled[~particle])


def test_only_a_plane_that_rises_above_the_background_s_scatter_is_removed():
    flat = 100 + RNG.normal(0, 10, XX.shape)
    assert level(flat, 1, min_swing=10) is None  # a plane fitted to noise is no ramp
    assert level(flat, 1) is not None
    assert level(flat + 30 * XX, 1, min_swing=10) is not None
    # low-dose counts (as bench_empty_support's): every block's median is one of a few integers,
    # their means still show the ramp
    rng, x = np.random.default_rng(3), np.mgrid[0:512, 0:512][1] / 512
    assert level(rng.poisson(5 + 2 * x).astype(np.float64), 1, min_swing=10) is not None
    assert level(rng.poisson(6, x.shape).astype(np.float64), 1, min_swing=10) is None


def test_too_small_or_too_little_background_is_left_alone():
    assert level(np.ones((32, 32)), 1) is None
    assert level(np.ones((128, 128)), 1, background=np.zeros((128, 128), bool)) is None


def test_a_ramp_on_an_empty_support_is_not_particle():
    image = 100 + 30 * np.mgrid[0:512, 0:512][1] / 512 + np.random.default_rng(1).normal(0, 10, (512, 512))
    model = emzoo.load(SEG)
    off = Predictor(model, level="off")
    assert (off(image, 0.05) > 0.5).mean() > 0.1  # the bright side called particle, as before
    plane = Predictor(model, level="plane")
    assert (plane(image, 0.05) > 0.5).mean() < 0.005
    assert plane.last_scale.levelled and "levelled" in plane.last_scale.describe()
    assert plane.last_scale.to_dict()["levelled"] is True


def test_level_plane_keeps_the_example_s_particles():
    image, meta = emzoo.io.read(Path(emzoo.__file__).parent / "examples" / "haadf_nanoparticles.tif")
    model = emzoo.load(SEG)
    off = emzoo.predict(model, image, pixel_size=meta["pixel_size_nm"], level="off") > 0.5
    plane = emzoo.predict(model, image, pixel_size=meta["pixel_size_nm"], level="plane") > 0.5
    assert off.mean() > 0.02
    assert 2 * (off & plane).sum() / (off.sum() + plane.sum()) > 0.95


def test_level_is_checked_first():
    with pytest.raises(ConfigError, match="level='tilt'"):
        Predictor(emzoo.load(SEG), level="tilt")
    with pytest.raises(ConfigError, match="only segmentation"):
        Predictor(emzoo.load("unet-4-424-emsim-denoise"), level="plane")
    assert Predictor(emzoo.load("unet-4-424-emsim-denoise")).level == "off"
