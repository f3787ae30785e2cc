"""`emzoo zoo build` reruns on a tiny corpus: a challenger (warm start or a fine-tune from the
shipped pretext) replaces a shipped folder only when its held-out metric beats the shipped one's,
and every run is logged with its summed cost."""

import dataclasses
import json
import shutil

import pytest

import emzoo.build as zoo_build
from emzoo.data.corpus import build_corpus
from emzoo.errors import ConfigError
from emzoo.fsutil import sha256_file
from emzoo.zoo.catalog import SHIPPED_DIR, ZOO

NAME = "unet-2-44-emsim-hrtem-seg"  # the smallest shipped fine-tune, and its pretext
BASE = "unet-2-44-emsim"


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    corpus = build_corpus(
        tmp_path / "corpus", n_train=4, n_val=2, n_test=2, size=128, workers=1, progress=False, version=3,
        modalities=("hrtem",),
    )  # fmt: skip
    monkeypatch.setattr(zoo_build, "corpus_for", lambda recipe: corpus)
    monkeypatch.setattr(zoo_build, "BUILD_LOG", tmp_path / "log.jsonl")
    recipe_config = zoo_build.train_config  # the recipe's, shrunk to the tiny corpus
    tiny = lambda *a, **k: dataclasses.replace(recipe_config(*a, **k), batch_size=2, image_size=64)  # noqa: E731
    monkeypatch.setattr(zoo_build, "train_config", tiny)
    out = tmp_path / "shipped"
    for name in (NAME, BASE):
        shutil.copytree(SHIPPED_DIR / name, out / name)
    return out


def test_a_challenger_that_loses_leaves_the_shipped_folder(shipped, tmp_path):
    before = sha256_file(shipped / NAME / "model.safetensors")
    record = zoo_build.build_one(ZOO[NAME], tmp_path / "runs", out=shipped, steps=2, progress=False, from_pretext=True)
    # two steps from the pretext cannot beat thousands of fine-tuning steps
    assert record["kept"] is False and record["test"]["dice"] < record["shipped_test"]["dice"]
    assert sha256_file(shipped / NAME / "model.safetensors") == before
    (run,) = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert run["from_pretext"] == BASE and run["steps"] == 2 and not run["kept"]
    # one run folder per pretext version, settled by a cosine schedule
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name == f"{NAME}-from-{sha256_file(shipped / BASE / 'model.safetensors')[:8]}"
    assert json.loads((folder / "run.json").read_text())["config"]["lr_schedule"] == "cosine"


def test_a_winning_warm_start_sums_its_cost(shipped, tmp_path, monkeypatch):
    shipped_cost = json.loads((shipped / NAME / "config.json").read_text())["emzoo"]["train_cost"]
    before = sha256_file(shipped / NAME / "model.safetensors")
    monkeypatch.setattr(zoo_build, "_held_out", lambda *a: {"dice": 0.0})  # a shipped model any run beats
    record = zoo_build.build_one(ZOO[NAME], tmp_path / "runs", out=shipped, warm=True, steps=2, progress=False)
    assert record["kept"] is True and sha256_file(shipped / NAME / "model.safetensors") != before
    cost = json.loads((shipped / NAME / "config.json").read_text())["emzoo"]["train_cost"]
    assert len(cost["runs"]) == len(shipped_cost["runs"]) + 1
    assert cost["steps"] == shipped_cost["steps"] + 2
    assert cost["runs"][-1]["run"] == f"{NAME}-warm{len(shipped_cost['runs'])}"


def test_a_pretext_has_nothing_to_start_from(shipped, tmp_path):
    with pytest.raises(ConfigError, match="no pretext to start from"):
        zoo_build.build_one(ZOO[BASE], tmp_path / "runs", out=shipped, from_pretext=True, progress=False)
