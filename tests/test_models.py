"""Every architecture builds, runs on awkward sizes, adapts channels, and has the receptive
field its name states."""

import pytest
import timm
import torch

import emzoo
from emzoo.models import measure_receptive_field, receptive_field
from emzoo.zoo import UNET_POOLS

GENERATORS = [n for n in timm.list_models("emzoo_*") if n != "emzoo_patchgan"]
UNETS = [f"emzoo_unet_{b}_{rf}" for b, rf in UNET_POOLS]


def test_timm_finds_every_arch_after_import():
    expected = set(UNETS) | {"emzoo_hrnet_w18", "emzoo_hrnet_w18_small", "emzoo_patchgan"}
    assert expected <= set(timm.list_models("emzoo_*"))
    # every zoo entry's weights are addressable through timm as arch.tag, with a full Hub id
    pretrained = set(timm.list_pretrained("emzoo_*"))
    for entry in emzoo.ZOO.values():
        assert entry.timm_name in pretrained
        cfg = timm.models.get_pretrained_cfg(entry.timm_name)
        assert cfg.hf_hub_id == f"{entry.hub_id}@{entry.revision}" and cfg.hf_hub_id.count("/") == 1


@pytest.mark.parametrize("arch", GENERATORS)
def test_generator_any_size(arch):
    model = timm.create_model(arch, in_chans=1).eval()
    assert model.in_chans == 1 and model.num_classes == 1
    for h, w in [(37, 53), (64, 64)]:
        with torch.no_grad():
            y = model(torch.randn(2, 1, h, w))
        assert y.shape == (2, 1, h, w)
        assert torch.isfinite(y).all()


def test_patchgan_scores_patches():
    d = emzoo.create_model("emzoo_patchgan")
    out = d(torch.randn(2, 2, 256, 256))
    assert out.shape == (2, 1, 30, 30)  # 70x70 patches on a 256^2 pair


@pytest.mark.parametrize("arch", ["emzoo_unet_2_44", "emzoo_hrnet_w18_small"])
def test_head_and_input_channels(arch):
    model = timm.create_model(arch, in_chans=3, num_classes=2).eval()
    assert model(torch.randn(1, 3, 40, 40)).shape == (1, 2, 40, 40)
    model.reset_classifier(5)
    assert model(torch.randn(1, 3, 40, 40)).shape == (1, 5, 40, 40)


def test_unet_sizes_match_paper():
    for arch in UNETS:
        n = sum(p.numel() for p in timm.create_model(arch).parameters())
        assert 7_000 < n < 140_000, (arch, n)  # the paper: 8k to 130k parameters
    assert timm.create_model("emzoo_unet_2_44", width=8).bottleneck.conv1.out_channels == 32


def test_receptive_field_formula_reproduces_paper():
    assert receptive_field((2, 2)) == 44
    assert receptive_field((2, 6)) == 84
    assert receptive_field((6, 2)) == 116
    assert receptive_field((2, 2, 2)) == 96
    assert receptive_field((2, 2, 2, 2)) == 200
    for (b, rf), pools in UNET_POOLS.items():
        model = timm.create_model(f"emzoo_unet_{b}_{rf}")
        assert len(pools) == b and model.receptive_field == rf


@pytest.mark.parametrize("arch", UNETS)
def test_receptive_field_measured(arch):
    """The stated field lies within the measured extents over one period of the pooling grid,
    and the largest measured extent is within 12% of it (the extent depends on where the pixel
    sits on the pooling grid; see ../shared/design.md)."""
    model = timm.create_model(arch).eval()
    rf = model.receptive_field
    extents = measure_receptive_field(model)
    assert min(extents) <= rf <= max(extents), (rf, extents)
    assert max(extents) <= 1.12 * rf, (rf, extents)
