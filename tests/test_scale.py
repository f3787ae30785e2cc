"""Physical scale: an image at another pixel size than the model's is resampled to the model's
scale and the output brought back, so the same scene gives the same mask and the same particle
sizes in nm at 2x and 0.5x the model's pixel size."""

import logging

import numpy as np
import pytest
import torch
from torch import nn

import emzoo
from emzoo.inference.particles import analyze_particles
from emzoo.inference.scale import working_scale

FOV_NM = 12.8
CENTRES_NM = [(3.0, 3.2), (3.5, 9.0), (9.2, 4.1), (8.8, 9.6), (6.3, 6.4)]
DIAMETER_NM = 2.4
NATIVE = 0.05  # nm/px


def scene(pixel_nm: float, seed: int = 0) -> np.ndarray:
    """Bright disks on a dark support (HAADF-like), anti-aliased, with noise."""
    n = int(round(FOV_NM / pixel_nm))
    sub = 4
    coords = (np.arange(n * sub) + 0.5) * pixel_nm / sub
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    disks = np.zeros_like(yy)
    for cy, cx in CENTRES_NM:
        disks += (yy - cy) ** 2 + (xx - cx) ** 2 < (DIAMETER_NM / 2) ** 2
    image = disks.reshape(n, sub, n, sub).mean(axis=(1, 3))
    return (0.2 + image + np.random.default_rng(seed).normal(0, 0.05, image.shape)).astype(np.float32)


class BlobDetector(nn.Module):
    """A fixed 'segmentation model' built for one pixel size: a 9x9 box filter and a threshold,
    so its masks change with the pixel size unless the image is brought to its scale."""

    def __init__(self, pixel_nm: float):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 9, padding=4, padding_mode="replicate")
        with torch.no_grad():
            self.conv.weight.fill_(1 / 81)
            self.conv.bias.fill_(-0.6)
        self.num_classes, self.in_chans = 1, 1
        self.emzoo_cfg = {"task": "segment", "normalization": "standardize", "pixel_size_nm": [pixel_nm, pixel_nm]}

    def forward(self, x):
        return 20 * self.conv(x)


def _to_native(mask: np.ndarray) -> np.ndarray:
    from emzoo.inference.scale import resample

    n = int(round(FOV_NM / NATIVE))
    return resample(mask.astype(np.float32), (n, n)) > 0.5


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("factor", [2.0, 0.5])
def test_same_scene_same_mask_at_other_pixel_sizes(factor):
    model = BlobDetector(NATIVE)
    native = emzoo.predict(model, scene(NATIVE), pixel_size=NATIVE, tile=0) > 0.5
    other_pixel = NATIVE * factor
    other = emzoo.predict(model, scene(other_pixel), pixel_size=other_pixel, tile=0)
    assert other.shape == scene(other_pixel).shape  # back on the input's grid
    assert _iou(_to_native(other > 0.5), native) >= 0.9
    d_native = analyze_particles(native.astype(np.uint8), NATIVE).summary["mean_diameter_nm"]
    d_other = analyze_particles(other, other_pixel).summary["mean_diameter_nm"]
    assert d_other == pytest.approx(d_native, rel=0.05)
    assert d_native == pytest.approx(DIAMETER_NM, rel=0.1)
    assert working_scale(model, other_pixel) == pytest.approx(factor)  # it did run at the model's scale


def test_unknown_pixel_size_warns_once_and_runs_as_is(caplog):
    model = BlobDetector(NATIVE)
    with caplog.at_level(logging.WARNING, logger="emzoo.predict"):
        assert working_scale(model, None) == 1.0
    assert "pixel size unknown" in caplog.text and "0.05" in caplog.text
    assert working_scale(model, 0.1) == pytest.approx(2.0)
    assert working_scale(model, 0.05) == 1.0
    with pytest.raises(emzoo.EmzooError, match="pixel_size"):
        working_scale(model, -1.0)


def test_super_resolution_output_is_twice_the_input_grid():
    model = emzoo.create_model("emzoo_unet_2_44").eval()
    model.emzoo_cfg = {"task": "super-res", "pixel_size_nm": [0.05, 0.05]}
    out = emzoo.predict(model, scene(0.1)[:100, :100], pixel_size=0.1, tile=0)
    assert out.shape == (200, 200)
