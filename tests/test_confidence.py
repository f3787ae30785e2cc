"""Hysteresis on the model's confidence (emzoo.inference.confidence): a region called particle is
kept whole where the network is sure of it somewhere and dropped where it only hedges; calibration
raises the peak only as far as costs no Dice."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.special import expit, logit

import emzoo
from emzoo.calibration import choose_peak
from emzoo.cli import main
from emzoo.errors import ConfigError
from emzoo.inference.confidence import drop_unsure, model_peak, unsure_regions
from emzoo.inference.predictor import Predictor

SEG = "unet-4-424-emsim-haadf-seg"


def _probability() -> np.ndarray:
    prob = np.full((40, 40), 0.1)
    prob[2:8, 2:8] = 0.65  # hedged on everywhere
    prob[20:30, 20:30] = 0.6  # unsure at its rim ...
    prob[24:26, 24:26] = 0.97  # ... sure at its core
    return prob


def test_a_region_sure_somewhere_is_kept_whole_and_a_hedged_one_dropped():
    prob = _probability()
    unsure = unsure_regions(prob, 0.9)
    assert unsure[2:8, 2:8].all() and not unsure[20:30, 20:30].any() and unsure.sum() == 36
    assert not unsure_regions(prob, 0.5).any()  # 0.5: every region kept
    assert unsure_regions(prob, 0.65)[2:8, 2:8].all() is np.False_  # reaching the peak counts as sure
    raw = logit(prob)[None]
    kept = expit(drop_unsure(raw, unsure)[0])
    assert (kept > 0.5).sum() == 100 and kept[4, 4] == pytest.approx(0.35)  # as sure of background
    two = np.stack([-raw[0], raw[0]])  # a two-class head: background, particle
    assert (drop_unsure(two, unsure).argmax(0) == (kept > 0.5)).all()


def test_calibration_raises_the_peak_only_as_far_as_costs_no_dice():
    truth = np.zeros((40, 40), bool)
    truth[20:30, 20:30] = True
    empty = np.zeros((40, 40), bool)
    hedged_false = logit(_probability())
    only_hedged = logit(np.where(unsure_regions(_probability(), 0.9), 0.65, 0.1))
    peak, scores = choose_peak([(hedged_false, truth), (only_hedged, empty)])
    assert peak == 0.95 and scores[0.95].particle_free_area == 0 < scores[0.5].particle_free_area
    assert scores[0.95].dice == 1 > scores[0.5].dice
    hedged_true = logit(np.where(truth, 0.7, 0.1))  # the real particle is the hedged one here
    peak, scores = choose_peak([(hedged_true, truth), (only_hedged, empty)])
    assert peak == 0.7 and scores[0.75].dice == 0 and 0.8 not in scores  # the first that costs ends the climb


def test_predictor_follows_the_checkpoint_s_peak_and_reports_what_it_dropped():
    model = emzoo.load(SEG)
    assert model_peak(model) > 0.5  # calibrated on its validation split (its card says which)
    rng = np.random.default_rng(0)
    blobs = ndimage.gaussian_filter(rng.normal(0, 1, (512, 512)), 40)
    image = 100 + 20 * blobs / blobs.std() + rng.normal(0, 10, (512, 512))  # a support's thickness, no particle
    every = Predictor(model, peak=0.5)
    calibrated = Predictor(model)
    assert (every(image, 0.05) > 0.5).mean() > 0.01  # hedged-on blobs called particle
    assert (calibrated(image, 0.05) > 0.5).mean() < 0.005
    assert calibrated.last_scale.unsure_dropped > 0 and "never sure of" in calibrated.last_scale.describe()


def test_peak_is_checked_first(tmp_path, capsys):
    with pytest.raises(ConfigError, match="peak=1.5"):
        Predictor(emzoo.load(SEG), peak=1.5)
    with pytest.raises(ConfigError, match="only segmentation"):
        Predictor(emzoo.load("unet-4-424-emsim-denoise"), peak=0.8)
    assert Predictor(emzoo.load("unet-4-424-emsim-denoise")).peak == 0.5
    image = tmp_path / "x.npy"
    np.save(image, np.ones((64, 64)))
    code = main(["predict", str(image), "--model", SEG, "--output-dir", str(tmp_path / "out"), "--peak", "high"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "emzoo: error: --peak 'high': expected 'auto' or a probability in [0.5, 1)"
    assert not (tmp_path / "out").exists()
