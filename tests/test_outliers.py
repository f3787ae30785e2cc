"""X-ray hits and hot pixels: a spike inflates a frame's std, so standardisation hands the network
the same specimen at a contrast set by how many spikes the frame caught. A model folder that says
so (the Au layout's) has spikes replaced in training and in predict; the segmentation recipes instead
replace them in half the training frames, so the model holds whether or not the user's software
removed them, and the build judges every model on both versions of each held-out frame."""

import numpy as np

import emzoo
from emzoo.data.pipeline import SampleRecipe
from emzoo.inference.predictor import Predictor
from emzoo.normalize import remove_outliers
from emzoo.train.config import TrainConfig


def test_segmentation_recipes_despike_half_their_training_frames_and_restoration_recipes_none():
    seg = TrainConfig.from_recipe("unet-4-424-emsim-hrtem-seg", data="d", output_dir="x")
    assert seg.despike_prob == 0.5 and seg.remove_outliers is None and seg.identity()["despike_prob"] == 0.5
    assert TrainConfig.from_recipe("hrnet-w18-small-emsim-haadf-seg", data="d", output_dir="x").despike_prob == 0.5
    denoise = TrainConfig.from_recipe("unet-4-424-emsim-denoise", data="d", output_dir="x")
    assert denoise.despike_prob == 0.0 and denoise.remove_outliers is None and "despike_prob" not in denoise.identity()


def test_despike_augmentation_replaces_spikes_in_training_frames_only():
    rng = np.random.default_rng(0)
    image = _spiky_frame()
    always = SampleRecipe(task="denoise", image_size=None, augment=True, despike_prob=1.0)
    never = SampleRecipe(task="denoise", image_size=None, augment=True, despike_prob=0.0)
    evaluation = SampleRecipe(task="denoise", image_size=None, augment=False, despike_prob=1.0)
    spike = lambda recipe: float(recipe(image, image, "f", np.random.default_rng(0))["image"].abs().max())  # noqa: E731
    assert spike(always) < 5 < spike(never)  # in units of the frame's std: the hit is gone, or 60 std high
    assert spike(evaluation) > 5  # validation and test frames are scored as recorded
    halves = [
        SampleRecipe(task="denoise", image_size=None, despike_prob=0.5)(image, image, "f", rng) for _ in range(40)
    ]
    despiked = sum(float(s["image"].abs().max()) < 5 for s in halves)
    assert 10 <= despiked <= 30


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


def test_the_card_says_the_model_was_trained_with_and_without_spikes(tmp_path):
    model = emzoo.create_model("emzoo_unet_2_44", num_classes=1)
    emzoo.save_pretrained(model, tmp_path / "m", task="segment", despike_prob=0.5)
    assert emzoo.load(tmp_path / "m").emzoo_cfg["despike_prob"] == 0.5
    assert "(50% despiked), so either kind of input is fine" in (tmp_path / "m" / "README.md").read_text()
