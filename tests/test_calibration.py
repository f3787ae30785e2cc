"""Inference defaults chosen on the validation split (``emzoo.calibration``): the border context
where zero padding is no worse on every count, the polarity confidence that makes the fewest wrong
inversions, both carried in the checkpoint's config and honoured by ``predict``."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import emzoo
from emzoo.calibration import (
    BorderScores,
    border_scores,
    choose_polarity_confidence,
    recalibrate,
)
from emzoo.data.corpus import build_corpus
from emzoo.errors import ConfigError
from emzoo.fsutil import sha256_file
from emzoo.inference.polarity import CONFIDENCE
from emzoo.inference.predictor import Predictor
from emzoo.zoo.catalog import SHIPPED_DIR, ZOO
from tests.test_scale import SEG, haadf_scene

SMALL = "unet-2-44-emsim-hrtem-seg"


def test_the_confidence_in_the_middle_of_the_fewest_wrong_inversions_wins_but_never_below_the_default():
    cases = [(0.97, True), (0.93, True), (0.88, False), (0.7, False)]  # a bare support at 0.88
    assert choose_polarity_confidence(cases) == 0.9  # 0.88-0.92 all make no error: their middle
    # inverting all three is one error (0.50-0.84 do it), but the bar is not lowered below the default
    assert choose_polarity_confidence([(0.9, True), (0.95, False), (0.85, True)]) == CONFIDENCE
    assert choose_polarity_confidence([]) == CONFIDENCE


def test_border_scores_count_the_strip_against_the_interior():
    truth = np.zeros((128, 128), bool)
    truth[50:70, 50:70] = True
    logits = np.where(truth, 5.0, -5.0)
    logits[0:4, :] = 5.0  # a band of false particle along the top edge
    scores = border_scores([(logits, truth), (np.full((128, 128), -5.0), np.zeros((128, 128), bool))])
    strip_background = (128 * 128 - 64 * 64) * 2
    assert scores.strip_excess == pytest.approx(4 * 128 / strip_background, abs=1e-5)
    assert scores.dice == pytest.approx(2 * 400 / (2 * 400 + 4 * 128), abs=1e-4) and scores.particle_free_area == 0
    worse = BorderScores(scores.dice - 0.01, 0.0, 0.0)
    assert not worse.no_worse_than(scores) and not scores.no_worse_than(BorderScores(1.0, 0.0, 0.0))
    assert BorderScores(scores.dice - 0.004, 0.0, 0.0).no_worse_than(scores)  # within the split's noise


def test_predict_follows_the_checkpoints_border_and_refuses_a_bad_one():
    model = emzoo.load(SEG)
    image, _ = haadf_scene((160, 160), [(0, 80), (100, 120)], [20, 15], seed=1)
    mirrored = Predictor(model, mirror_border=True)(image, scale=1.0)
    model.emzoo_cfg["border"] = "zero"
    zero = Predictor(model)
    assert zero.mirror_border is False
    np.testing.assert_allclose(zero(image, scale=1.0), Predictor(model, mirror_border=False)(image, scale=1.0))
    assert not np.allclose(mirrored, zero(image, scale=1.0), atol=1e-3)
    assert Predictor(model, mirror_border=True).mirror_border  # an explicit choice overrides the config
    model.emzoo_cfg["border"] = "reflect"
    with pytest.raises(ConfigError, match="border='reflect'"):
        Predictor(model)


def test_recalibrating_a_shipped_folder_keeps_its_weights(tmp_path):
    corpus = build_corpus(
        tmp_path / "corpus", n_train=2, n_val=3, n_test=2, size=256, workers=1, progress=False, version=3,
        modalities=("hrtem",),
    )  # fmt: skip
    folder = tmp_path / SMALL
    shutil.copytree(SHIPPED_DIR / SMALL, folder)
    before = sha256_file(folder / "model.safetensors")
    chosen = recalibrate(folder, ZOO[SMALL], corpus)
    assert chosen["border"] in ("mirror", "zero") and 0.5 <= chosen["polarity_confidence"] < 1.0
    assert sha256_file(folder / "model.safetensors") == before
    meta = json.loads((folder / "config.json").read_text())["emzoo"]
    assert meta["border"] == chosen["border"] and meta["polarity_confidence"] == chosen["polarity_confidence"]
    assert meta["level"] == chosen["level"] in ("off", "plane") and set(chosen["level_scores"]) == {"off", "plane"}
    scores = chosen["level_scores"]
    plane_no_worse = scores["plane"]["dice"] >= scores["off"]["dice"] - 0.005 and all(
        scores["plane"][k] <= scores["off"][k] + 0.005 for k in ("particle_free_area", "strip_excess")
    )
    assert (chosen["level"] == "plane") == plane_no_worse
    assert Predictor(emzoo.load(folder)).level == chosen["level"]
    assert f"levelling `{chosen['level']}`" in (folder / "README.md").read_text()
    dice = next(m["value"] for m in meta["metrics"] if m["name"] == "whole_dice")
    assert dice == chosen["test"]["whole_dice"]  # the card's metrics are the ones scored with the choice
    assert f"border context `{chosen['border']}`" in (folder / "README.md").read_text()
    assert Predictor(emzoo.load(folder)).mirror_border == (chosen["border"] == "mirror")


def test_zoo_calibrate_names_what_it_cannot_calibrate():
    proc = subprocess.run(
        [sys.executable, "-m", "emzoo", "zoo", "calibrate", "unet-4-424-emsim-denoise"], capture_output=True, text=True
    )
    assert proc.returncode != 0 and "not shipped segmentation checkpoints: unet-4-424-emsim-denoise" in proc.stderr
    assert "Traceback" not in proc.stderr
