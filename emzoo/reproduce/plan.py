"""The stages of an experiment (pretraining, then fine-tuning from pretrained and from random
weights) and the training configuration of each."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from emzoo.data.corpus import default_corpus
from emzoo.data.simulate import simulated
from emzoo.errors import ConfigError
from emzoo.reproduce.presets import DATA_DIRS, PAPER_FRACTIONS, Preset
from emzoo.tasks import FINETUNE_TASKS, RESTORATION_TASKS, get_task
from emzoo.train import TrainConfig
from emzoo.zoo import RECIPES, ZOO


@dataclass
class Stage:
    key: str
    kind: str  # pretrain | finetune
    arch: str
    task: str
    init: str = ""  # pretrained | random
    seed: int = 0
    out: Path = field(default_factory=Path)
    model: str = ""  # finetune: what it starts from (a pretraining stage's model, a shipped name, random:ARCH)


def arch_label(arch: str) -> str:
    name = arch.removeprefix("emzoo_")
    if name.startswith("unet_"):
        b, rf = name.split("_")[1:]
        return f"U-Net {b}/{rf}"
    return name.replace("hrnet_", "HRNet ").replace("_", "-")


def plan(preset: Preset, seeds: list[int], out: Path, pretrain: bool = False) -> list[Stage]:
    """The stages in order; each fine-tune names the model it starts from: this run's pretraining
    (when the preset pretrains, or ``pretrain``), else the zoo's shipped pretext checkpoint."""
    pretraining = preset.pretrained == "pretrain" or pretrain
    stages = []
    if pretraining:
        stages = [Stage(f"pretrain/{a}", "pretrain", a, "pretext", out=out / "pretrain" / a) for a in preset.archs]
    bases = {a: str(out / "pretrain" / a / "model") if pretraining else shipped_pretext(a) for a in preset.archs}
    for seed in seeds:
        for task in FINETUNE_TASKS:
            for arch in preset.archs:
                for init in ("pretrained", "random"):
                    key = f"finetune/{task}/{arch}/{init}/seed{seed}"
                    model = bases[arch] if init == "pretrained" else f"random:{arch}"
                    stages.append(Stage(key, "finetune", arch, task, init, seed, out / key, model))
    return stages


CORPUS_SUBSETS = {"pretext": "pretext", "segment": "segment/tem"}  # restoration tasks: "restore"


def data_for(preset: Preset, task: str, data_root: Path | None) -> str:
    if data_root is not None:  # reproduce() checked that every folder is there
        return str(data_root / DATA_DIRS[task])
    if preset.corpus:
        return str(default_corpus(**dict(preset.corpus)) / CORPUS_SUBSETS.get(task, "restore"))

    kind = "tem" if task in RESTORATION_TASKS else task
    return str(simulated(task, n=preset.sim_n[kind], size=preset.sim_size, seed=0, progress=True))


def budget(preset: Preset, kind: str, arch: str = "") -> int:
    return preset.pretrain_steps if kind == "pretrain" else preset.steps_for(arch)


def shipped_pretext(arch: str) -> str:
    """The zoo's shipped pretext checkpoint of an architecture (trained on the simulated corpus)."""
    for entry in ZOO.values():
        if entry.arch == arch and entry.built_by_zoo and get_task(entry.task).pretext:
            return entry.name
    raise ConfigError(f"{arch}: no shipped pretext checkpoint; run with pretrain=True")


def learning_rate(stage: Stage, preset: Preset, segment: bool) -> float:
    """Pretraining at the preset's (the paper's) rate; fine-tuning at its own, by task and network."""
    if stage.kind == "pretrain":
        return preset.lr
    if segment:
        return preset.segment_lr or preset.lr
    return dict(preset.arch_finetune_lr).get(stage.arch, preset.finetune_lr or preset.lr)


def stage_config(stage: Stage, preset: Preset, data: str):
    steps = budget(preset, stage.kind, stage.arch)
    segment = stage.kind == "finetune" and get_task(stage.task).segmentation
    test_at = sorted({max(1, round(f * steps)) for f in PAPER_FRACTIONS}) if stage.kind == "finetune" else []
    return TrainConfig(
        mode=stage.kind,
        data=data,
        output_dir=str(stage.out),
        task=stage.task,
        arch=stage.arch if stage.kind == "pretrain" else None,
        model=stage.model or None,
        max_steps=steps or None,
        epochs=preset.epochs or 60,
        batch_size=preset.batch_size,
        image_size=preset.image_size,
        lr=learning_rate(stage, preset, segment),
        head_lr_scale=preset.head_lr_scale if segment else 1.0,
        seed=stage.seed,
        num_workers=preset.num_workers,
        checkpointing_steps=max(1, steps // 2) if steps else None,
        test_at_steps=test_at,
        keep_checkpoints=False,
        ndf=preset.ndf,
        compile="off",
        progress=False,
        extra={"reproduce_stage": stage.key},
    )


def write_paper_commands(preset: Preset, seeds: list[int], out: Path, data_root: Path | None) -> Path:
    """The exact `accelerate launch` commands and configs of the paper's scale."""
    out.mkdir(parents=True, exist_ok=True)
    root = data_root or Path("/data")
    lines = [
        "#!/usr/bin/env bash",
        "# emzoo reproduce --preset paper: the paper's runs (Kazimi et al., CVPRW 2024)",
        "set -euo pipefail",
        "",
    ]
    pre = RECIPES["pix2pix-cem500k"]
    for arch in preset.archs:
        lines.append(
            f"accelerate launch scripts/pretrain.py --arch {arch} --data {root / 'cem500k'} "
            f"--output-dir {out / 'pretrain' / arch} --epochs {pre.epochs} --batch-size {pre.batch_size} "
            f"--image-size {pre.image_size} --lr {pre.lr} --l1-lambda {pre.l1_lambda:g} --num-workers 8"
        )
    for seed in seeds:
        for task in FINETUNE_TASKS:
            recipe = RECIPES["au-seg" if get_task(task).segmentation else f"temimagenet-{task}"]
            for arch in preset.archs:
                for init in ("pretrained", "random"):
                    model = out / "pretrain" / arch / "model" if init == "pretrained" else f"random:{arch}"
                    run_dir = out / "finetune" / task / arch / init / f"seed{seed}"
                    lines.append(
                        f"accelerate launch scripts/finetune.py --model {model} --task {task} "
                        f"--data {root / DATA_DIRS[task]} --output-dir {run_dir} "
                        f"--epochs {recipe.epochs} --batch-size {recipe.batch_size} --image-size {recipe.image_size} "
                        f"--lr {recipe.lr} --seed {seed} --num-workers 8"
                    )
    path = out / "commands.sh"
    path.write_text("\n".join(lines) + "\n")
    os.chmod(path, 0o755)
    return path
