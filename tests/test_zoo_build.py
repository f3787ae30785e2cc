"""`emzoo zoo build` reruns on a tiny corpus: a challenger (warm start or a fine-tune from the
shipped pretext) replaces a shipped folder only when its held-out metric beats the shipped one's,
and every run is logged with its summed cost."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

import emzoo
import emzoo.build as zoo_build
import emzoo.judge as judge
from emzoo import io
from emzoo.data.corpus import build_corpus
from emzoo.errors import ConfigError
from emzoo.fsutil import sha256_file
from emzoo.tasks import get_task
from emzoo.train.evaluation import CALIBRATION_THRESHOLDS, calibrate_threshold, score
from emzoo.zoo.catalog import SHIPPED_DIR, ZOO

NAME = "unet-2-44-emsim-hrtem-seg"  # the smallest shipped fine-tune, and its pretext
BASE = "unet-2-44-emsim"


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    corpus = build_corpus(
        tmp_path / "corpus", n_train=4, n_val=2, n_test=2, size=256, workers=1, progress=False, version=3,
        modalities=("hrtem",),
    )  # fmt: skip
    monkeypatch.setattr(zoo_build, "corpus_for", lambda recipe: corpus)
    monkeypatch.setattr(zoo_build, "BUILD_LOG", tmp_path / "log.jsonl")
    monkeypatch.setattr(zoo_build, "CURVES_DIR", tmp_path / "curves")
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
    assert record["kept"] is False and record["test"]["whole_dice"] < record["shipped_test"]["whole_dice"]
    assert sha256_file(shipped / NAME / "model.safetensors") == before
    (run,) = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert run["from_pretext"] == BASE and run["steps"] == 2 and not run["kept"]
    assert run["calibrated_threshold"] in CALIBRATION_THRESHOLDS
    assert run["border"] in ("mirror", "zero") and 0.5 <= run["polarity_confidence"] < 1  # chosen on validation
    assert (tmp_path / run["curve"].replace("build_curves", "curves")).stat().st_size > 1000
    # one run folder per pretext version, settled by a cosine schedule
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name == f"{NAME}-from-{sha256_file(shipped / BASE / 'model.safetensors')[:8]}"
    assert json.loads((folder / "run.json").read_text())["config"]["lr_schedule"] == "cosine"
    # the same run again: the finished one stays as the log's record, the new one takes the next name
    zoo_build.build_one(ZOO[NAME], tmp_path / "runs", out=shipped, steps=2, progress=False, from_pretext=True)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [folder.name, f"{folder.name}-2"]
    # the recipe despikes half its frames; --keep-spikes trains on the inputs as recorded, in a run of its own
    zoo_build.build_one(
        ZOO[NAME], tmp_path / "runs", out=shipped, steps=2, progress=False, from_pretext=True, keep_spikes=True
    )
    configs = {p.name: json.loads((p / "run.json").read_text())["config"] for p in (tmp_path / "runs").iterdir()}
    assert configs[folder.name]["despike_prob"] == 0.5
    assert configs[f"{folder.name}-spikes-kept"]["despike_prob"] == 0.0
    # the judge scores each held-out frame as recorded, with its spikes replaced and on a smooth background
    test_split = zoo_build.corpus_for(None) / "segment" / "tem" / "test"
    pairs = judge.whole_images(emzoo.load(shipped / NAME), test_split.parent, "test")
    assert len(pairs) == 3 * len(list((test_split / "masks").glob("*.png")))


def test_a_winning_warm_start_sums_its_cost(shipped, tmp_path, monkeypatch):
    shipped_cost = json.loads((shipped / NAME / "config.json").read_text())["emzoo"]["train_cost"]
    before = sha256_file(shipped / NAME / "model.safetensors")
    scored = zoo_build.held_out  # the shipped model scores 0: any run beats it

    def held_out(folder, *args):
        return {"whole_dice": 0.0} if folder == shipped / NAME else scored(folder, *args)

    monkeypatch.setattr(zoo_build, "held_out", held_out)
    record = zoo_build.build_one(ZOO[NAME], tmp_path / "runs", out=shipped, warm=True, steps=2, progress=False)
    assert record["kept"] is True and sha256_file(shipped / NAME / "model.safetensors") != before
    cost = json.loads((shipped / NAME / "config.json").read_text())["emzoo"]["train_cost"]
    assert len(cost["runs"]) == len(shipped_cost["runs"]) + 1
    assert cost["steps"] == shipped_cost["steps"] + 2
    assert cost["runs"][-1]["run"] == f"{NAME}-warm{len(shipped_cost['runs'])}"


def test_a_pretext_has_nothing_to_start_from(shipped, tmp_path):
    with pytest.raises(ConfigError, match="no pretext to start from"):
        zoo_build.build_one(ZOO[BASE], tmp_path / "runs", out=shipped, from_pretext=True, progress=False)


class _Logits(torch.nn.Module):
    """Logits = the input, through a 1x1 head: what the calibration sees, known exactly."""

    num_classes = 1

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Conv2d(1, 1, 1)
        torch.nn.init.ones_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    def get_classifier(self):
        return self.head

    def forward(self, x):
        return self.head(x)


def test_the_best_threshold_is_folded_into_the_head():
    truth = torch.zeros(2, 1, 8, 8)
    truth[:, :, 2:6, 2:6] = 1
    logits = torch.full_like(truth, -2.0)  # background: p = 0.12
    logits[truth > 0] = 1.0  # p = 0.73
    logits[:, :, 2:4, 2:6] = -0.5  # half the particle is faint: p = 0.38, missed at 0.5
    model = _Logits()
    threshold = calibrate_threshold(model, [(logits, truth)])
    assert threshold == 0.35  # every threshold in (0.12, 0.38) is perfect; the one nearest 0.5
    with torch.no_grad():
        assert torch.equal(model(logits) > 0, truth > 0)  # at the usual 0.5, now exact


def test_validation_on_its_own_calibration_split_is_one_pass():
    """Scoring the split the threshold is chosen on runs the network over it once, with the same
    metrics as scoring a second copy of that split."""
    truth = torch.zeros(4, 1, 8, 8)
    truth[:, :, 2:6, 2:6] = 1
    logits = torch.full_like(truth, -2.0)
    logits[truth > 0] = 1.0
    logits[1:3, :, 2:4, 2:6] = -0.5
    batches = [{"image": logits[:2], "target": truth[:2]}, {"image": logits[2:], "target": truth[2:]}]
    model, calls = _Logits(), []
    model.register_forward_hook(lambda *_: calls.append(1))
    task = get_task("segment")
    once = score(model, batches, task, calibrate_on=batches)
    assert len(calls) == 2  # two batches, one pass
    twice = score(model, batches, task, calibrate_on=list(batches))
    assert len(calls) == 6 and once == twice and once["threshold"] == 0.35 and once["dice"] == pytest.approx(1.0)


def test_a_threshold_that_paints_particle_free_images_does_not_compete():
    truth = torch.zeros(1, 1, 8, 8)
    truth[:, :, 2:6, 2:6] = 1
    logits = torch.full_like(truth, -2.0)
    logits[truth > 0] = 1.0
    logits[:, :, 2:4, 2:6] = -0.5
    lattice = torch.zeros(8, 8).numpy()  # p = 0.5 everywhere on a particle-free image
    model = _Logits()
    threshold = calibrate_threshold(model, [(logits, truth)], empty_logits=[lattice], max_false_area=0.0)
    assert threshold == 0.5  # 0.35 would be perfect on the particles, and call the whole lattice particle


def test_a_tie_does_not_replace_the_shipped_weights():
    pretext, denoise, segment = get_task("pretext"), get_task("denoise"), get_task("segment")
    assert not judge.clearly_better(pretext, 0.13217, 0.13223)  # 0.05% lower L1: noise
    assert judge.clearly_better(pretext, 0.125, 0.13223)
    assert not judge.clearly_better(denoise, 21.33, 21.30) and judge.clearly_better(denoise, 21.4, 21.3)  # dB
    assert not judge.clearly_better(segment, 0.652, 0.649) and judge.clearly_better(segment, 0.66, 0.649)


def test_a_segmentation_challenger_wins_by_dice_or_by_fewer_false_particles():
    segment = get_task("segment")
    shipped = {"whole_dice": 0.66, "particle_free_area": 0.039}
    assert judge.beats(segment, {"whole_dice": 0.68, "particle_free_area": 0.039}, shipped)
    assert not judge.beats(segment, {"whole_dice": 0.68, "particle_free_area": 0.05}, shipped)  # more false area
    assert judge.beats(segment, {"whole_dice": 0.658, "particle_free_area": 0.004}, shipped)  # same Dice, 10x fewer
    assert not judge.beats(segment, {"whole_dice": 0.62, "particle_free_area": 0.0}, shipped)  # paid with Dice
    assert not judge.beats(segment, {"whole_dice": 0.66, "particle_free_area": 0.037}, shipped)  # within noise


def test_reproduce_scores_segmentation_at_the_validation_threshold():
    from emzoo.train.evaluation import score

    truth = torch.zeros(2, 1, 8, 8)
    truth[:, :, 2:6, 2:6] = 1
    logits = torch.where(truth > 0, -0.5, -2.0)  # particles at p = 0.38: a run still below 0.5
    batches = [{"image": logits, "target": truth}]
    segment = get_task("segment")
    assert score(_Logits(), batches, segment)["dice"] == 0.0  # at 0.5 it looks as if nothing was learned
    calibrated = score(_Logits(), batches, segment, calibrate_on=batches)
    assert calibrated["dice"] == 1.0 and calibrated["threshold"] == 0.35


def test_a_denoiser_is_judged_on_the_corpus_noise_and_on_a_detectors(tmp_path):
    """Each denoise test frame counts as recorded and recorded again by a real detector (the two
    halves are logged apart); other restoration tasks, whose target is not the input without its
    noise, count each frame once."""
    yy, xx = np.mgrid[:96, :96]
    clean = (100 + 40 * np.sin(xx / 4.0) * np.cos(yy / 6.0)).astype(np.float32)
    rng = np.random.default_rng(0)
    for target_folder in ("noNoise", "noBackgroundnoNoise"):
        for k in range(2):
            io.write(tmp_path / "image" / f"{k}.tif", (clean + rng.normal(0, 10, clean.shape)).astype(np.float32))
            io.write(tmp_path / target_folder / f"{k}.tif", clean)
    model = emzoo.load("unet-4-424-emsim-denoise")
    scores = judge.whole_frame_psnr(model, tmp_path, get_task("denoise"))
    halves = (scores["whole_psnr_recorded"], scores["whole_psnr_detector"])
    assert scores["whole_psnr"] == pytest.approx(sum(halves) / 2, abs=1e-3) and abs(halves[0] - halves[1]) > 0.01
    assert list(judge.whole_frame_psnr(model, tmp_path, get_task("bg-removal"))) == ["whole_psnr"]


def test_a_run_name_the_log_holds_is_not_reused_after_the_cache_is_cleared(tmp_path, monkeypatch):
    """A run the log records (its curve committed) whose folder a cleared cache lost keeps its name:
    the next run takes the next one instead of overwriting that run's curve."""
    monkeypatch.setattr(zoo_build, "CURVES_DIR", tmp_path / "curves")
    (tmp_path / "curves").mkdir()
    run = tmp_path / "runs" / f"{NAME}-warm2"
    assert zoo_build._unfinished_or_new(run) == run
    (tmp_path / "curves" / f"{run.name}.png").write_bytes(b"png")
    assert zoo_build._unfinished_or_new(run) == run.with_name(f"{run.name}-2")
    run.mkdir(parents=True)  # an unfinished run of that name on disk: resumed, whatever the log holds
    assert zoo_build._unfinished_or_new(run) == run
