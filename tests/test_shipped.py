"""The checkpoints that ship with emzoo: loadable by name offline with an empty Hugging Face
cache, through emzoo and through timm, pinned by sha256, preferring a Hub download when the
user's cache holds one, and within the size budget."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import timm
import torch

import emzoo
from emzoo.errors import EmzooError
from emzoo.hub import check_pinned
from emzoo.zoo import PINS_FILE, SHIPPED_DIR, ZOO

from .conftest import build_hf_cache

PINS = json.loads(PINS_FILE.read_text()) if PINS_FILE.is_file() else {}
SHIPPED = sorted(PINS)
EXAMPLE = emzoo.__path__[0] + "/examples/hrtem_au_nanoparticles.tif"


def test_the_zoo_ships_models():
    assert len(SHIPPED) >= 1
    for name in SHIPPED:
        assert "cem500k" not in name  # names say what the weights were trained on
        assert ZOO[name].shipped_folder is not None


def test_shipped_size_budget():
    total = sum(p.stat().st_size for p in SHIPPED_DIR.rglob("*") if p.is_file())
    assert total <= 64 * 2**20, f"{total / 2**20:.1f} MB"


@pytest.mark.parametrize("name", SHIPPED)
def test_load_by_name_offline(name, hf_cache):
    entry = ZOO[name]
    model = emzoo.load(name)  # verified against its test pair, weights pinned by sha256
    assert model.emzoo_cfg["source"] == str(entry.shipped_folder)
    assert model.emzoo_cfg["task"] == entry.task
    lo, hi = model.emzoo_cfg["pixel_size_nm"]
    assert 0 < lo < hi
    config = json.loads((entry.shipped_folder / "config.json").read_text())
    assert config["pretrained_cfg"]["tag"] == entry.tag  # provenance: never another entry's tag
    card = (entry.shipped_folder / "README.md").read_text()
    assert "Training cost" in card and "nm/px" in card and "| test |" in card
    via_timm = timm.create_model(entry.timm_name, pretrained=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, via_timm.state_dict()[key]), key


def test_changed_weights_are_refused(tmp_path):
    name = SHIPPED[0]
    folder = shutil.copytree(ZOO[name].shipped_folder, tmp_path / name)
    check_pinned(ZOO[name], folder)
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(EmzooError, match="sha256 differs"):
        check_pinned(ZOO[name], folder)


def test_a_hub_copy_in_the_users_cache_wins(hf_cache):
    name = SHIPPED[0]
    entry = ZOO[name]
    snapshot = build_hf_cache(hf_cache, entry.hub_id, entry.shipped_folder, refs=(entry.revision,))
    model = emzoo.load(name)
    assert model.emzoo_cfg["source"] == str(snapshot)
    assert "Hugging Face cache" in emzoo.info(name)["weights"]


def test_predict_cli_by_name(tmp_path):
    seg = next((n for n in SHIPPED if ZOO[n].task == "segment"), SHIPPED[0])
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "emzoo", "predict", EXAMPLE, "--model", seg, "--output-dir", str(out), "--quiet"],
        capture_output=True,
        text=True,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["written"] == 1
    result = emzoo.io.read(next(out.glob("*.tif")))[0]
    assert np.isfinite(result).all()
