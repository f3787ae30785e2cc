"""Training as users run it: real Accelerate runs on tiny simulated data, exact resume after a
real SIGKILL, a real 2-process torchrun (gloo), and the errors that stop bad runs early."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import emzoo
from emzoo import EmzooError
from emzoo.data.simulate import simulate_dataset
from emzoo.train import TrainConfig, Trainer, run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tem_data(tmp_path_factory) -> Path:
    """A tiny TEMImageNet-layout dataset (ADF-STEM simulation; 40 ms an image)."""
    return simulate_dataset("denoise", tmp_path_factory.mktemp("data") / "tem", n=14, size=48, seed=0, progress=False)


@pytest.fixture(scope="module")
def seg_data(tmp_path_factory) -> Path:
    """A tiny Au-HDF5-layout segmentation dataset (synthetic discs on noise: fast)."""
    import h5py
    import numpy as np

    root = tmp_path_factory.mktemp("data") / "au"
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 4), ("test", 4)):
        yy, xx = np.mgrid[:48, :48]
        labels = np.zeros((n, 1, 48, 48), np.uint8)
        for i in range(n):
            cy, cx, r = rng.integers(12, 36, 2).tolist() + [int(rng.integers(5, 10))]
            labels[i, 0] = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        images = (rng.normal(size=labels.shape) + 2.0 * labels).astype(np.float32)
        (root / split).mkdir(parents=True)
        with h5py.File(root / split / f"Au_{split}_Images.h5", "w") as f:
            f["images"] = images
        with h5py.File(root / split / f"Au_{split}_Labels.h5", "w") as f:
            f["labels"] = labels
    return root


def cfg(tmp_path: Path, data: Path, **kw) -> TrainConfig:
    base = dict(
        mode="pretrain",
        arch="emzoo_unet_2_44",
        data=str(data),
        output_dir=str(tmp_path / "run"),
        batch_size=2,
        image_size=32,
        max_steps=4,
        progress=False,
        compile="off",
    )
    base.update(kw)
    return TrainConfig(**base)


def test_gan_step_updates_both_networks(tmp_path, tem_data):
    trainer = Trainer(cfg(tmp_path, tem_data))
    g0 = {k: v.clone() for k, v in trainer.g.state_dict().items()}
    d0 = {k: v.clone() for k, v in trainer.d.state_dict().items()}
    batch = next(iter(trainer.train_loader))
    losses = trainer._gan_step(*trainer._to_device(batch))
    assert set(losses) == {"loss_d", "loss_g_gan", "loss_l1"}
    changed = lambda before, after: [k for k in before if not torch.equal(before[k], after[k])]  # noqa: E731
    g_changed = changed(g0, trainer.g.state_dict())
    d_changed = changed(d0, trainer.d.state_dict())
    assert any(k.endswith("weight") and "conv" in k for k in g_changed), "generator not updated"
    assert any(k.startswith("model.0.weight") for k in d_changed), "discriminator not updated"
    assert all(p.requires_grad for p in trainer.d.parameters())  # D unfrozen again after the G step


def test_pretrain_then_finetune_then_evaluate(tmp_path, tem_data):
    result = run(cfg(tmp_path, tem_data, max_steps=6, checkpointing_steps=3))
    out = tmp_path / "run"
    assert result["steps"] == 6 and set(result["test"]) == {"l1", "psnr", "ssim"}
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000003", "step_00000006"]
    record = json.loads((out / "run.json").read_text())
    assert record["data"]["layout"] == "temimagenet" and record["versions"]["torch"] == torch.__version__
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["split"] for r in rows} == {"train", "val"}
    assert (out / "loss_curve.png").stat().st_size > 1000
    pretrained = emzoo.load(out / "model")
    assert pretrained.emzoo_cfg["task"] == "pretext" and pretrained.emzoo_cfg["remove_outliers"] is False
    card = (out / "model" / "README.md").read_text()
    assert f"| {result['test']['l1']:.4f} |" in card  # the card states the measured test L1

    # fp32: 'auto' picks bf16 where it measures faster, and evaluate_model (fp32) would differ by ~1e-4
    ft = run(
        cfg(tmp_path / "ft", tem_data, mode="finetune", model=str(out / "model"), task="denoise", mixed_precision="no")
    )
    model = emzoo.load(tmp_path / "ft" / "run" / "model")
    assert model.emzoo_cfg["task"] == "denoise" and model.emzoo_cfg["base_model"] == str(out / "model")
    assert model.emzoo_cfg["metrics"][0]["split"] == "test"
    from emzoo.train import evaluate_model

    metrics = evaluate_model(str(tmp_path / "ft" / "run" / "model"), str(tem_data), split="test", image_size=32)
    assert metrics["task"] == "denoise" and metrics["l1"] == pytest.approx(ft["test"]["l1"], rel=1e-4)


def test_segmentation_head_swap_and_metrics(tmp_path, seg_data):
    folder = emzoo.save_pretrained(emzoo.create_model("emzoo_unet_2_44"), tmp_path / "pre")
    result = run(cfg(tmp_path, seg_data, mode="finetune", model=str(folder), task="segment", num_classes=3))
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["new_keys"] == ["head.weight", "head.bias"]
    assert set(result["test"]) == {"dice", "iou"} and 0 <= result["test"]["dice"] <= 1
    binary = run(cfg(tmp_path / "b", seg_data, mode="finetune", model="random:emzoo_unet_2_44", task="segment"))
    assert set(binary["test"]) == {"dice", "iou"}
    # the Au layout's spikes are removed before normalisation; the folder says so, for predict
    assert emzoo.load(tmp_path / "b" / "run" / "model").emzoo_cfg["remove_outliers"] is True


def test_averaged_weights_are_validated_and_exported(tmp_path, seg_data):
    settings = dict(mode="finetune", model="random:emzoo_unet_2_44", task="segment", max_steps=3)
    trainer = Trainer(cfg(tmp_path, seg_data, ema_decay=0.5, **settings))
    trainer.train()  # one validation, at the end: the best model is the last step's average
    exported, live = load_file(tmp_path / "run/model/model.safetensors"), trainer.g.state_dict()
    average, body = trainer.ema.module.state_dict(), [k for k in exported if k != "head.bias"]  # the threshold's
    assert all(torch.equal(exported[k], average[k].contiguous()) for k in body)
    assert not all(torch.equal(exported[k], live[k].contiguous()) for k in body)
    assert "EMA decay 0.5" in (tmp_path / "run/model/README.md").read_text()
    with pytest.raises(EmzooError, match="ema_decay 1.0: expected a number between 0 and 1"):
        cfg(tmp_path, seg_data, ema_decay=1.0, **settings)


def test_segmentation_is_chosen_at_its_validation_threshold_and_exported_with_it(tmp_path, seg_data):
    """A warm start's head drifts from the threshold its weights had folded in (U-Net 2/44's Dice at
    0.5 fell from 0.47 to 0.06 while it learned): validation scores at the split's best threshold."""
    from emzoo.train.evaluation import score

    # fp32: validation under a measured bf16 autocast scores other pixels than the exported model in fp32
    settings = dict(mode="finetune", model="random:emzoo_unet_2_44", task="segment", max_steps=30, lr=1e-3)
    trainer = Trainer(cfg(tmp_path, seg_data, mixed_precision="no", **settings))
    trainer.train()
    with torch.no_grad():
        trainer.g.get_classifier().bias += 3.0  # the drift: nearly every pixel above 0.5
    trainer.state.best = None
    trainer._validate("dice")
    row = trainer.state.history[-1]
    at_half = score(trainer.g, trainer.val_loader, trainer.objective, trainer._to_device)
    assert row["threshold"] > 0.5 and row["dice"] > at_half["dice"] + 0.1
    exported = emzoo.load(tmp_path / "run" / "model", verify=False)  # its 0.5 is the chosen threshold
    again = score(exported, trainer.val_loader, trainer.objective, trainer._to_device)
    assert again["dice"] == pytest.approx(row["dice"], abs=1e-6)


def _cli(*args: str, env: dict | None = None, wait: bool = True):
    cmd = [sys.executable, "-m", "emzoo", *args]
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=300)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=full_env)


def test_killed_run_resumes_to_identical_weights(tmp_path, tem_data):
    common = [
        "pretrain",
        "--arch",
        "emzoo_unet_2_44",
        "--data",
        str(tem_data),
        "--batch-size",
        "2",
        "--image-size",
        "32",
        "--max-steps",
        "7",
        "--checkpointing-steps",
        "2",
        "--compile",
        "off",
        "--lr-schedule",
        "cosine",  # a resumed run must continue the rate's curve too, not restart it
        "--ema-decay",
        "0.7",  # and the weights' average, which the exported model holds
        "--quiet",
    ]
    full = _cli(*common, "--output-dir", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr
    # the run kills itself with SIGKILL during step 6: mid-epoch, between checkpoints (the hook
    # lives here, in the test, not in the library)
    killer = (
        "import os, signal, sys\n"
        "from emzoo.train.trainer import Trainer\n"
        "step = Trainer._gan_step\n"
        "def dying_step(self, x, y):\n"
        "    if self.state.step == 5:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return step(self, x, y)\n"
        "Trainer._gan_step = dying_step\n"
        "from emzoo.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    cut_args = [*common, "--output-dir", str(tmp_path / "cut")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", killer, *cut_args], capture_output=True, text=True, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (tmp_path / "cut" / "checkpoints" / "step_00000004").is_dir()
    again = _cli(*common, "--output-dir", str(tmp_path / "cut"))
    assert again.returncode == 2 and "--resume-from-checkpoint latest" in again.stderr
    resumed = _cli(*common, "--output-dir", str(tmp_path / "cut"), "--resume-from-checkpoint", "latest")
    assert resumed.returncode == 0, resumed.stderr
    for name in ("checkpoints/step_00000007/model.safetensors", "checkpoints/step_00000007/model_1.safetensors"):
        a, b = load_file(tmp_path / "full" / name), load_file(tmp_path / "cut" / name)  # generator, discriminator
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    a, b = load_file(tmp_path / "full/model/model.safetensors"), load_file(tmp_path / "cut/model/model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a), "the exported average"
    assert (
        json.loads((tmp_path / "cut" / "result.json").read_text())["rank_weight_hashes"]
        == json.loads((tmp_path / "full" / "result.json").read_text())["rank_weight_hashes"]
    )


@pytest.mark.parametrize("script", ["pretrain", "finetune"])
def test_torchrun_two_cpu_processes(tmp_path, tem_data, script):
    """Only the main process writes run and model folders: fine-tuning runs twice in a row
    (a race once made 2 runs in 3 fail at the end) and every run ends with one complete model."""
    extra = (
        ["--arch", "emzoo_unet_2_44"]
        if script == "pretrain"
        else ["--model", "random:emzoo_unet_2_44", "--task", "denoise"]
    )
    for attempt in range(2 if script == "finetune" else 1):
        out = tmp_path / f"ddp{attempt}"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nproc_per_node",
                "2",
                "--master_port",
                str(29500 + (script == "finetune")),
                str(ROOT / "scripts" / f"{script}.py"),
                *extra,
                "--data",
                str(tem_data),
                "--output-dir",
                str(out),
                "--batch-size",
                "2",
                "--image-size",
                "32",
                "--max-steps",
                "3",
                "--cpu",
                "--compile",
                "off",
                "--quiet",
            ],
            capture_output=True,
            text=True,
            timeout=400,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert proc.returncode == 0, f"run {attempt}: {proc.stderr[-3000:]}"
        result = json.loads((out / "result.json").read_text())
        hashes = result["rank_weight_hashes"]
        assert len(hashes) == 2 and hashes[0] == hashes[1]  # both ranks ran and stayed in sync
        assert json.loads((out / "run.json").read_text())["processes"] == 2
        assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["checkpoints", "model"]  # no temp folders
        emzoo.load(out / "model")


def test_bad_runs_stop_early_with_one_line(tmp_path, tem_data, seg_data):
    with pytest.raises(EmzooError, match="unknown architecture 'emzoo_unet_9_9'"):
        Trainer(cfg(tmp_path / "a", tem_data, arch="emzoo_unet_9_9"))
    with pytest.raises(EmzooError, match="a temimagenet dataset cannot train 'segment'"):
        Trainer(cfg(tmp_path / "b", tem_data, mode="finetune", model="random:emzoo_unet_2_44", task="segment"))
    with pytest.raises(EmzooError, match="smaller than the crop size 64"):
        Trainer(cfg(tmp_path / "c", tem_data, image_size=64))
    with pytest.raises(EmzooError, match="batch_size 64: larger than the training split"):
        Trainer(cfg(tmp_path / "d", tem_data, batch_size=64))
    (tmp_path / "e" / "run").mkdir(parents=True)
    (tmp_path / "e" / "run" / "notes.txt").write_text("mine")
    with pytest.raises(EmzooError, match="not empty and not an emzoo run"):
        Trainer(cfg(tmp_path / "e", tem_data))
    run(cfg(tmp_path / "f", tem_data, max_steps=1))
    with pytest.raises(EmzooError, match="holds another run"):
        Trainer(cfg(tmp_path / "f", seg_data, mode="finetune", model="random:emzoo_unet_2_44", task="segment"))
    proc = _cli(
        "finetune",
        "--model",
        "nope-model",
        "--task",
        "segment",
        "--data",
        str(seg_data),
        "--output-dir",
        str(tmp_path / "g"),
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "emzoo: error: unknown model 'nope-model' (see `emzoo list`; folders and hf-hub:ORG/NAME work too)"
    ]


def test_a_segmentation_head_starts_at_the_class_prior(tmp_path, seg_data):
    """A kept head (pretext output, or a random offset of random sign) is what left U-Net 2/44 at
    all-foreground: the new head's output is the training masks' log-odds, whatever the init."""
    import math

    trainer = Trainer(cfg(tmp_path, seg_data, mode="finetune", model="random:emzoo_unet_2_44", task="segment"))
    head = trainer.generator.get_classifier()
    masks = [trainer.train_set[i]["target"] for i in range(min(32, len(trainer.train_set)))]
    fraction = float(torch.cat([m.flatten() for m in masks]).mean())
    assert head.bias.item() == pytest.approx(math.log(fraction / (1 - fraction)), abs=1e-4)
    assert head.weight.abs().max() < 0.05 and trainer.new_keys == ["head.weight", "head.bias"]
    kept = Trainer(
        cfg(
            tmp_path / "kept",
            seg_data,
            mode="finetune",
            model="random:emzoo_unet_2_44",
            task="segment",
            prior_head=False,
        )
    )
    assert kept.new_keys == [] and abs(kept.generator.get_classifier().bias.item() - head.bias.item()) > 1e-3


def test_cosine_schedule_decays_the_rate_to_zero(tmp_path, tem_data):
    trainer = Trainer(cfg(tmp_path, tem_data, lr_schedule="cosine", lr=1e-3, compile="off"))
    trainer.train()
    for optimizer in (trainer.opt_g, trainer.opt_d):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(EmzooError, match="lr_schedule 'linear'"):
        cfg(tmp_path, tem_data, lr_schedule="linear")
