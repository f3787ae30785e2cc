"""Save -> load round trips through folders and a hand-built Hugging Face cache (offline, real
huggingface_hub), strictness, safety and the errors users see."""

import json

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file

import emzoo
from emzoo import EmzooError
from emzoo.models import ResidualUNet
from tests.conftest import build_hf_cache

X = torch.randn(2, 1, 48, 40, generator=torch.Generator().manual_seed(1))


def _trained_like(arch: str = "emzoo_unet_2_44", **kwargs) -> torch.nn.Module:
    """A model whose BN statistics and weights are not the init values."""
    model = emzoo.create_model(arch, **kwargs)
    model.train()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model(torch.randn(4, model.in_chans, 32, 32) * 3 + 1)
    return model.eval()


def test_folder_round_trip(tmp_path):
    model = _trained_like()
    out = emzoo.save_pretrained(model, tmp_path / "m", task="denoise")
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "test_pair.safetensors", "README.md"}
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "emzoo_unet_2_44" and config["emzoo"]["task"] == "denoise"
    loaded = emzoo.load(tmp_path / "m")
    assert not loaded.training
    assert torch.equal(loaded(X), model(X))
    assert loaded.emzoo_cfg["task"] == "denoise"
    # saving a loaded model again gives the same network (models are plain timm modules: the
    # hub functions are the one way in and out, as timm.create_model is)
    emzoo.save_pretrained(loaded, tmp_path / "m2")
    assert torch.equal(emzoo.load(tmp_path / "m2")(X), model(X))
    assert not hasattr(ResidualUNet, "from_pretrained")  # the model layer does not reach up into the hub


def test_saving_replaces_atomically(tmp_path):
    target = tmp_path / "m"
    emzoo.save_pretrained(_trained_like(), target)
    emzoo.save_pretrained(_trained_like("emzoo_unet_3_96"), target)
    assert json.loads((target / "config.json").read_text())["architecture"] == "emzoo_unet_3_96"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary folders left behind


@pytest.mark.parametrize("ref", ["v1.0", "main"])
def test_hf_cache_round_trip_offline(tmp_path, hf_cache, ref):
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE
    model = _trained_like("emzoo_hrnet_w18_small")
    folder = emzoo.save_pretrained(model, tmp_path / "export")
    build_hf_cache(hf_cache, "someorg/some-emzoo-model", folder, refs=(ref,))
    loaded = emzoo.load(f"hf-hub:someorg/some-emzoo-model@{ref}")
    with torch.no_grad():
        assert torch.equal(loaded(X), model(X))
    assert torch.equal(emzoo.load("hf-hub:someorg/some-emzoo-model", revision=ref)(X), loaded(X))


def test_zoo_name_resolves_through_cache_at_pinned_revision(tmp_path, hf_cache):
    entry = emzoo.ZOO["unet-2-44-cem500k"]
    model = _trained_like(entry.arch)
    build_hf_cache(hf_cache, entry.hub_id, emzoo.save_pretrained(model, tmp_path / "e"), refs=(entry.revision,))
    loaded = emzoo.load("unet-2-44-cem500k")
    assert torch.equal(loaded(X), model(X))
    assert loaded.emzoo_cfg["zoo_name"] == "unet-2-44-cem500k"
    assert "in the local Hugging Face cache" in emzoo.info("unet-2-44-cem500k")["weights"]
    # timm reads the same folder format: its own hf-hub loader gives the same model
    via_timm = timm.create_model(f"hf-hub:{entry.hub_id}@{entry.revision}", pretrained=True).eval()
    assert torch.equal(via_timm(X), model(X))


def test_unavailable_weights_explain_themselves(hf_cache):
    with pytest.raises(EmzooError) as err:
        emzoo.load("hrnet-cem500k")
    msg = str(err.value)
    assert "emzoo/hrnet-cem500k@v1.0" in msg and "HF_HUB_CACHE" in msg and "emzoo pretrain --recipe" in msg
    with pytest.raises(EmzooError, match="did you mean 'hrnet-cem500k'"):
        emzoo.load("hrnet-cem5000k")
    with pytest.raises(EmzooError, match="no such folder"):
        emzoo.load("./runs/does-not-exist")
    with pytest.raises(EmzooError, match="not a Hub id"):
        emzoo.load("hf-hub:noslash")


def test_loading_is_strict(tmp_path):
    folder = emzoo.save_pretrained(_trained_like(), tmp_path / "m")
    state = load_file(folder / "model.safetensors")
    state.pop("head.bias")
    state["extra.weight"] = torch.zeros(1)
    save_file(state, folder / "model.safetensors")
    with pytest.raises(EmzooError, match=r"missing keys \['head.bias'\].*unexpected keys \['extra.weight'\]"):
        emzoo.load(folder)


def test_changed_weights_fail_the_test_pair(tmp_path):
    folder = emzoo.save_pretrained(_trained_like(), tmp_path / "m")
    state = load_file(folder / "model.safetensors")
    state["head.bias"] += 1.0
    save_file(state, folder / "model.safetensors")
    with pytest.raises(EmzooError, match="does not reproduce test_pair"):
        emzoo.load(folder)
    assert emzoo.load(folder, verify=False) is not None


def test_pickles_are_refused(tmp_path):
    folder = emzoo.save_pretrained(_trained_like(), tmp_path / "m")
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(EmzooError, match="only pickle weights.*never unpickles"):
        emzoo.load(folder)
    with pytest.raises(EmzooError, match="pickle files are never loaded"):
        emzoo.load(folder / "pytorch_model.bin")


def test_corrupt_files_name_the_file(tmp_path):
    folder = emzoo.save_pretrained(_trained_like(), tmp_path / "m")
    (folder / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(EmzooError, match="model.safetensors: not a readable safetensors file"):
        emzoo.load(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(EmzooError, match="config.json: not valid JSON"):
        emzoo.load(folder)


def test_head_swap_keeps_the_body(tmp_path, caplog):
    model = _trained_like()
    folder = emzoo.save_pretrained(model, tmp_path / "m")
    seg = emzoo.load(folder, num_classes=2)
    assert seg(X).shape == (2, 2, 48, 40)
    assert seg.emzoo_new_keys == ["head.weight", "head.bias"]
    body = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    for key, value in body.items():
        assert torch.equal(seg.state_dict()[key], value), key


def test_in_chans_adaptation_preserves_grayscale_output(tmp_path):
    model = _trained_like()
    folder = emzoo.save_pretrained(model, tmp_path / "m")
    rgb = emzoo.load(folder, in_chans=3)
    assert rgb.in_chans == 3
    torch.testing.assert_close(rgb(X.repeat(1, 3, 1, 1)), model(X), atol=1e-5, rtol=1e-4)


def test_list_and_info():
    names = emzoo.list_models()
    assert "hrnet-cem500k" in names and len([n for n in names if n.endswith("-cem500k")]) == 10
    assert emzoo.list_models("unet-4-*-cem500k") == ["unet-4-200-cem500k", "unet-4-360-cem500k", "unet-4-424-cem500k"]
    info = emzoo.info("unet-4-424-cem500k")
    assert info["arch"] == "emzoo_unet_4_424" and info["recipe"]["l1_lambda"] == 100.0
    assert info["hub_id"] == "emzoo/unet-4-424-cem500k" and "not published" in info["weights"]
    assert emzoo.info("hrnet-cem500k-au-seg")["base_model"] == "hrnet-cem500k"
