"""Contrast polarity, with the shipped HAADF segmentation model: an image whose particles are dark
(an inverted export, a BF-STEM image) is inverted before the model sees it, an image the right
way up is left alone even where its particles fill most of the frame (its intensities then skew
the other way), and the choice is reported."""

import json

import numpy as np
import pytest

import emzoo
from emzoo import io
from emzoo.cli import main
from emzoo.data.corpus import simulate_sample
from emzoo.data.corpus.constants import SEGMENT_CORPUS_VERSION
from emzoo.errors import ConfigError
from emzoo.inference.polarity import image_contrast, model_particle_contrast, prefers_inverted, surer_inverted
from emzoo.inference.predictor import Predictor
from emzoo.normalize import remove_outliers
from tests.test_scale import SEG, dice, haadf_scene


@pytest.fixture(scope="module")
def seg():
    return emzoo.load(SEG)


def corpus_frame(index: int):
    """A held-out frame of the segmentation corpus (its generator is seeded: the bytes it ships)."""
    sample = simulate_sample(0, "test", index, 256, version=SEGMENT_CORPUS_VERSION)
    return sample["image"], sample["instances"] > 0, sample["pixel_size_nm"], sample["params"]["inverted"]


def test_an_inverted_frame_is_turned_the_right_way_up(seg):
    image, truth, pixel, inverted = corpus_frame(49)  # HAADF recorded with an inverted lookup table
    assert inverted and model_particle_contrast(seg) == "bright" and image_contrast(image) == "dark"
    as_is = dice(Predictor(seg, polarity="as-is")(image, pixel) > 0.5, truth)  # 0.12 before smooth backgrounds
    predictor = Predictor(seg)
    assert as_is < 0.9 <= dice(predictor(image, pixel) > 0.5, truth)
    assert predictor.last_scale.polarity == "inverted" and "inverted" in predictor.last_scale.describe()


def test_the_right_way_up_is_left_alone_even_where_particles_fill_the_frame(seg):
    """A frame 80% particle skews dark, but the model finds less in the inverted image: left as it
    is. An image whose intensities skew the model's way, with particles found in it, costs no second pass."""
    image, truth, pixel, inverted = corpus_frame(1)
    assert not inverted and truth.mean() > 0.7 and image_contrast(image) == "dark"
    predictor, as_is = Predictor(seg), Predictor(seg, polarity="as-is")
    np.testing.assert_allclose(predictor(image, pixel), as_is(image, pixel), atol=1e-6)
    assert predictor.last_scale.polarity == "as-is"
    scene, _ = haadf_scene((256, 256), [(70, 70), (170, 90), (120, 190)], [30, 34, 32])  # 15% particle
    assert image_contrast(scene) == "bright"
    predictor, as_is = Predictor(seg, level="off"), Predictor(seg, polarity="as-is", level="off")  # one pass each
    calls = []
    predictor._at_scale = lambda *a, run=predictor._at_scale: calls.append(1) or run(*a)
    np.testing.assert_allclose(predictor(scene), as_is(scene), atol=1e-6)
    assert len(calls) == 1 and predictor.last_scale.polarity == "as-is"


def test_a_bare_lattice_is_not_inverted_into_particles(seg):
    """A particle-free HAADF lattice without its x-ray spikes skews dark, and inverted the model
    calls 41% of it particle, hesitantly: the confidence test keeps it as it is."""
    image, truth, pixel, _ = corpus_frame(69)
    image = remove_outliers(image)
    assert not truth.any() and image_contrast(image) == "dark"
    predictor = Predictor(seg)
    assert (predictor(image, pixel) > 0.5).mean() < 0.1
    assert predictor.last_scale.polarity == "as-is"


def test_polarity_is_checked_and_reported_by_the_cli(seg, tmp_path, capsys):
    with pytest.raises(ConfigError, match="polarity"):
        Predictor(seg, polarity="negative")
    with pytest.raises(ConfigError, match="only segmentation"):
        Predictor(emzoo.load("unet-4-424-emsim-denoise"), polarity="inverted")
    image, _ = haadf_scene((160, 160), [(60, 60), (100, 110)], [18, 15], seed=1)
    io.write(tmp_path / "in" / "dark.tif", image.max() - image)
    cmd = ["predict", str(tmp_path / "in"), "--model", SEG, "--quiet"]  # in this process: no 3 torch imports
    for polarity, expected in (("inverted", "inverted"), ("as-is", "as-is"), ("auto", None)):
        out = tmp_path / polarity
        code = main([*cmd, "--output-dir", str(out), "--polarity", polarity])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        (scale,) = json.loads(captured.out)["scale"].values()
        assert scale["polarity"] == expected if expected else scale["polarity"] in ("as-is", "inverted")


def test_an_inverted_frame_a_particle_mostly_fills_is_turned_the_right_way_up(seg):
    """A particle filling 62% of an inverted ADF frame skews it the model's way, and the model finds
    nothing in it as it is: the second pass is taken anyway, and the inverted frame, mostly particle,
    is accepted at a lower confidence (before: nothing called, Dice 0)."""
    image, truth, pixel, inverted = corpus_frame(83)
    assert inverted and truth.mean() > 0.6 and image_contrast(image) == "bright"
    assert dice(Predictor(seg, polarity="as-is")(image, pixel) > 0.5, truth) < 0.1
    predictor = Predictor(seg)
    assert dice(predictor(image, pixel) > 0.5, truth) >= 0.9
    assert predictor.last_scale.polarity == "inverted"


def test_an_inverted_pass_much_surer_of_its_particles_wins_over_more_area():
    """A wrong-way-up model calls the support (78% of the frame, unsure) and, inverted, the particle
    (22%, sure): the area rule keeps the support; the surer pass wins where it is surer by
    ``SURER_BY`` and sure enough, and only where the model found something as it is."""
    particle = np.zeros((64, 64), bool)
    particle[16:44, 16:48] = True
    as_is = np.where(particle, 0.1, 0.62)  # the support, unsure
    inverted = np.where(particle, 0.8, 0.05)
    assert surer_inverted(as_is, inverted) and prefers_inverted(as_is, inverted)
    assert not prefers_inverted(as_is, inverted, nothing_as_is=True)  # then the rules for "nothing" decide
    assert not prefers_inverted(np.where(particle, 0.1, 0.7), inverted)  # not surer by enough
    assert not prefers_inverted(np.where(particle, 0.1, 0.52), np.where(particle, 0.68, 0.05))  # not sure enough
