"""X-ray hits and hot pixels: a spike inflates a frame's std, so standardisation hands the network
the same specimen at a contrast set by how many spikes the frame caught. The segmentation recipes
replace spikes before normalisation in training, the folder records it, and predict does the same
for that model only (models trained on raw frames keep raw frames)."""

import numpy as np

import emzoo
from emzoo.inference.predictor import Predictor
from emzoo.normalize import remove_outliers
from emzoo.train.config import TrainConfig


def test_segmentation_recipes_remove_spikes_and_restoration_recipes_do_not():
    assert TrainConfig.from_recipe("unet-4-424-emsim-hrtem-seg", data="d", output_dir="x").remove_outliers is True
    assert TrainConfig.from_recipe("hrnet-w18-small-emsim-haadf-seg", data="d", output_dir="x").remove_outliers
    assert TrainConfig.from_recipe("unet-4-424-emsim-denoise", data="d", output_dir="x").remove_outliers is None


def test_spikes_are_replaced_without_unsigned_wrap_around():
    rng = np.random.default_rng(0)
    image = rng.poisson(50, (64, 64)).astype(np.uint8)
    image[10, 10], image[40, 41] = 255, 0  # a hot and a dead pixel
    cleaned = remove_outliers(image)
    assert cleaned.dtype == np.float32
    assert 35 < cleaned[10, 10] < 65 and 35 < cleaned[40, 41] < 65
    assert (cleaned != image).sum() <= 4  # the rest of the frame is untouched


def _spiky_frame() -> np.ndarray:
    rng = np.random.default_rng(1)
    image = rng.normal(100, 5, (64, 64)).astype(np.float32)
    image[20, 30] = 5000.0  # one x-ray hit: the frame's std grows 8x
    return image


def test_predict_removes_spikes_only_for_models_trained_without_them():
    model = emzoo.create_model("emzoo_unet_2_44", num_classes=1)
    model.emzoo_cfg = {"task": "segment", "remove_outliers": True}
    image = _spiky_frame()
    despiked = Predictor(model)(image, scale=1.0)
    np.testing.assert_allclose(despiked, Predictor(model)(remove_outliers(image), scale=1.0), atol=1e-6)
    model.emzoo_cfg = {"task": "segment"}  # trained on raw frames: predict keeps the spike
    assert np.abs(Predictor(model)(image, scale=1.0) - despiked).max() > 1e-3


def test_atom_columns_of_a_clean_frame_are_not_outliers():
    yy, xx = np.mgrid[:128, :128]
    lattice = np.zeros((128, 128), np.float32)
    for cy in range(4, 128, 8):
        for cx in range(4, 128, 8):
            lattice += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 1.0)  # columns ~2 px across
    lattice[64, 60] = 20.0  # one hot pixel between the columns
    cleaned = remove_outliers(lattice)
    assert cleaned[64, 60] < 1.0  # the hot pixel is gone
    assert (cleaned != lattice).mean() <= 0.002  # the columns' peaks are not (there are 256 of them)
