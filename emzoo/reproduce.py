"""``emzoo reproduce``: the paper's experiment end to end, at a preset's scale.

1. datasets for every task (simulated, or the real ones under ``--data-root``);
2. self-supervised Pix2Pix pretraining of each generator on unlabeled images;
3. fine-tuning of each generator on each task twice, from the pretrained weights and from
   random init, with the same data, seed and budget;
4. test-split metrics at the paper's checkpoints (5, 30 and 60 of 60 epochs) scaled to the budget;
5. a report: results.md / results.csv laid out like the paper's Tables 2 and 3, convergence plots,
   and a verdict computed from the numbers. Every model is exported with its card.

It only composes the pieces of the other modules (data, Trainer, cards). Each finished stage
leaves a ``result.json``; an interrupted reproduce resumes where it stopped.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from emzoo.errors import EmzooError
from emzoo.train.metrics import SELECTION

TASKS = ("segment", "denoise", "bg-removal", "super-res")
PAPER_FRACTIONS = (5 / 60, 30 / 60, 60 / 60)
CHECKPOINT_LABELS = ("5/60", "30/60", "60/60")
DATA_DIRS = {
    "pretext": "cem500k",
    "segment": "au",
    "denoise": "temimagenet",
    "bg-removal": "temimagenet",
    "super-res": "temimagenet",
}


@dataclass(frozen=True)
class Preset:
    name: str
    archs: tuple[str, ...]
    small_arch: str  # the small pretrained model compared with the large random ones
    large_archs: tuple[str, ...]
    sim_n: dict[str, int]
    sim_size: int
    image_size: int
    batch_size: int
    pretrain_steps: int
    finetune_steps: int
    ndf: int = 64
    epochs: int | None = None  # paper: epochs instead of steps
    lr: float = 2e-4
    num_workers: int = 0
    notes: str = ""
    pretrained: str = "pretrain"  # pretrain: pretraining stages in the run; shipped: the zoo's emsim checkpoints
    corpus: tuple[tuple[str, int], ...] = ()  # simulated corpus parameters (default_corpus), else small sets
    arch_steps: tuple[tuple[str, int], ...] = ()  # fine-tuning steps where an architecture differs
    default_seeds: tuple[int, ...] = (0,)

    def steps_for(self, arch: str) -> int:
        return dict(self.arch_steps).get(arch, self.finetune_steps)


PRESETS = {
    "smoke": Preset(
        name="smoke",
        archs=("emzoo_unet_2_44", "emzoo_unet_4_424"),
        small_arch="emzoo_unet_2_44",
        large_archs=("emzoo_unet_4_424",),
        sim_n={"pretext": 12, "segment": 14, "tem": 14},
        sim_size=64,
        image_size=48,
        batch_size=4,
        pretrain_steps=6,
        finetune_steps=6,
        ndf=16,
        notes="CI check that every stage runs; its numbers mean nothing.",
    ),
    "cpu-small": Preset(
        name="cpu-small",
        archs=("emzoo_unet_2_44", "emzoo_unet_4_424", "emzoo_hrnet_w18_small"),
        small_arch="emzoo_unet_2_44",
        large_archs=("emzoo_unet_4_424", "emzoo_hrnet_w18_small"),
        sim_n={"pretext": 60, "segment": 60, "tem": 80},
        sim_size=256,
        image_size=80,
        batch_size=8,
        pretrain_steps=1000,
        finetune_steps=200,
        ndf=16,
        pretrained="shipped",
        corpus=(("n_train", 192), ("n_val", 24), ("n_test", 48), ("seed", 1), ("size", 256), ("version", 2)),
        arch_steps=(("emzoo_hrnet_w18_small", 60),),
        default_seeds=(0, 1, 2),
        notes=(
            "A 2-core CPU in under 20 minutes: fine-tuning from the zoo's shipped pretext checkpoints (the weights "
            "`emzoo.load` gives) against random init, on a corpus drawn with another seed than the one they were "
            "pretrained on (HRTEM nanoparticle segmentation; denoising, background removal and 2x super-resolution "
            "on every modality)."
        ),
    ),
    "paper": Preset(
        name="paper",
        archs=(
            "emzoo_unet_2_44",
            "emzoo_unet_2_84",
            "emzoo_unet_2_116",
            "emzoo_unet_3_96",
            "emzoo_unet_3_176",
            "emzoo_unet_3_240",
            "emzoo_unet_4_200",
            "emzoo_unet_4_360",
            "emzoo_unet_4_424",
            "emzoo_hrnet_w18",
        ),
        small_arch="emzoo_unet_2_44",
        large_archs=("emzoo_unet_4_424", "emzoo_hrnet_w18"),
        sim_n={"pretext": 2000, "segment": 500, "tem": 1000},
        sim_size=256,
        image_size=256,
        batch_size=64,
        pretrain_steps=0,
        finetune_steps=0,
        epochs=60,
        num_workers=8,
        notes="The paper's scale: 60 epochs, batch 128 (pretraining) / 16 (Au) / 64 (TEMImageNet); GPUs.",
    ),
}


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


def _arch_label(arch: str) -> str:
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
        for task in TASKS:
            for arch in preset.archs:
                for init in ("pretrained", "random"):
                    key = f"finetune/{task}/{arch}/{init}/seed{seed}"
                    model = bases[arch] if init == "pretrained" else f"random:{arch}"
                    stages.append(Stage(key, "finetune", arch, task, init, seed, out / key, model))
    return stages


CORPUS_SUBSETS = {"pretext": "pretext", "segment": "segment/tem"}  # restoration tasks: "restore"


def _data_for(preset: Preset, task: str, data_root: Path | None) -> str:
    if data_root is not None:
        path = data_root / DATA_DIRS[task]
        if not path.exists():
            raise EmzooError(f"--data-root {data_root}: no {DATA_DIRS[task]}/ for task '{task}'")
        return str(path)
    if preset.corpus:
        from emzoo.data.corpus import default_corpus

        return str(default_corpus(**dict(preset.corpus)) / CORPUS_SUBSETS.get(task, "restore"))
    from emzoo.data.simulate import simulated

    kind = "tem" if task in ("denoise", "bg-removal", "super-res") else task
    return str(simulated(task, n=preset.sim_n[kind], size=preset.sim_size, seed=0, progress=True))


def _budget(preset: Preset, kind: str, arch: str = "") -> int:
    return preset.pretrain_steps if kind == "pretrain" else preset.steps_for(arch)


def shipped_pretext(arch: str) -> str:
    """The zoo's shipped pretext checkpoint of an architecture (trained on the simulated corpus)."""
    from emzoo.zoo import ZOO

    for entry in ZOO.values():
        if entry.arch == arch and entry.built_by_zoo and entry.task == "pretext":
            return entry.name
    raise EmzooError(f"{arch}: no shipped pretext checkpoint; run with --pretrain")


def stage_config(stage: Stage, preset: Preset, data: str):
    from emzoo.train import TrainConfig

    steps = _budget(preset, stage.kind, stage.arch)
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
        lr=preset.lr,
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


def run_stage(stage: Stage, cfg) -> dict:
    """Train one stage, resuming it if an earlier reproduce was interrupted inside it."""
    from emzoo.train import run

    result_file = stage.out / "result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    if (stage.out / "run.json").is_file():
        if (stage.out / "checkpoints").is_dir() and any((stage.out / "checkpoints").iterdir()):
            cfg = replace(cfg, resume_from_checkpoint="latest")
        else:
            shutil.rmtree(stage.out)  # died before its first checkpoint: start it again
    return run(cfg)


def trivial_baselines(preset: Preset, data: dict[str, str]) -> dict[str, dict[str, float]]:
    """What a model that learned nothing scores on each task's test split, measured the way the
    runs are: Dice of all-foreground and all-background masks; L1 of returning the input."""
    import torch

    from emzoo.data import load_dataset
    from emzoo.train.metrics import per_sample_stats, summarize

    out = {}
    for task in TASKS:
        ds = load_dataset(data[task], task, "test", image_size=preset.image_size, seed=0, num_classes=2)
        images = torch.stack([ds[i]["image"] for i in range(len(ds))])
        targets = torch.stack([ds[i]["target"] for i in range(len(ds))])
        if task == "segment":
            full = torch.full_like(targets, 20.0)
            out[task] = {
                "all foreground": summarize(task, per_sample_stats(task, full, targets))["dice"],
                "all background": summarize(task, per_sample_stats(task, -full, targets))["dice"],
            }
        else:
            out[task] = {"identity (input)": summarize(task, per_sample_stats(task, images, targets))["l1"]}
    return out


def reproduce(
    preset_name: str,
    out: str | Path,
    seeds: list[int] | None = None,
    data_root: str | Path | None = None,
    dry_run: bool = False,
    pretrain: bool = False,
) -> dict:
    """Run a preset's experiment (resuming a stopped one in ``out``); ``pretrain`` re-runs the
    pretraining from scratch where the preset would start from the zoo's shipped checkpoints."""
    if preset_name not in PRESETS:
        raise EmzooError(f"--preset {preset_name}: expected one of {', '.join(PRESETS)}")
    preset = PRESETS[preset_name]
    seeds = seeds or list(preset.default_seeds)
    out = Path(out)
    root = Path(data_root) if data_root else None
    if preset_name == "paper":
        script = write_paper_commands(preset, seeds, out, root)
        if root is None or dry_run:
            print(f"wrote {script}; pass --data-root with cem500k/, au/ and temimagenet/ to run it")
            return {"commands": str(script)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "reproduce.json").write_text(
        json.dumps(
            {
                "preset": preset.name,
                "seeds": seeds,
                "data_root": str(root) if root else "simulated",
                "pretrain": pretrain,
            },
            indent=2,
        )
    )
    stages = plan(preset, seeds, out, pretrain)
    data = {}
    print(f"[reproduce] stage 1/5: datasets ({'real, ' + str(root) if root else 'simulated'})", flush=True)
    for task in ("pretext", *TASKS):
        data[task] = _data_for(preset, task, root)
    results = {}
    start = time.perf_counter()
    from tqdm.auto import tqdm

    cost = [(_budget(preset, st.kind, st.arch) or 1) * (3 if st.kind == "pretrain" else 1) for st in stages]
    with tqdm(total=sum(cost), desc="reproduce", unit="step-equiv") as bar:  # a GAN step costs ~3 steps
        for stage, weight in zip(stages, cost):
            bar.set_postfix_str(stage.key)
            results[stage.key] = run_stage(stage, stage_config(stage, preset, data[stage.task]))
            bar.update(weight)
    baselines = trivial_baselines(preset, data)
    print("[reproduce] stage 5/5: report", flush=True)
    report = write_report(preset, seeds, stages, results, out, baselines)
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report


# ------------------------------------------------------------------------------------ report
def _metric_rows(preset: Preset, seeds: list[int], stages: list[Stage], results: dict) -> list[dict]:
    rows = []
    for task in TASKS:
        metric = SELECTION[task][0]
        for arch in preset.archs:
            for init in ("pretrained", "random"):
                per_seed = []
                for stage in stages:
                    if stage.kind == "finetune" and (stage.task, stage.arch, stage.init) == (task, arch, init):
                        tests = results[stage.key].get("test_at_steps", [])
                        per_seed.append([t[metric] for t in tests])
                values = np.array(per_seed, dtype=float)  # seeds x checkpoints
                row = {"task": task, "metric": metric, "model": _arch_label(arch), "arch": arch, "init": init}
                for j, label in enumerate(CHECKPOINT_LABELS[: values.shape[1]]):
                    row[f"{label} mean"] = float(values[:, j].mean())
                    row[f"{label} std"] = float(values[:, j].std()) if len(seeds) > 1 else None
                rows.append(row)
    return rows


def verdict(preset: Preset, rows: list[dict]) -> tuple[str, dict]:
    """A paragraph computed from the numbers: does pretraining win early, at the end, and do small
    pretrained models match larger random ones?"""

    def value(task, arch, init, label):
        for r in rows:
            if (r["task"], r["arch"], r["init"]) == (task, arch, init):
                return r.get(f"{label} mean")
        return None

    def better(task, a, b):
        larger = SELECTION[task][1]
        return a > b if larger else a < b

    early_wins, early_total, final_wins, final_total = 0, 0, 0, 0
    for task in TASKS:
        for arch in preset.archs:
            p, r = value(task, arch, "pretrained", "5/60"), value(task, arch, "random", "5/60")
            if p is not None and r is not None:
                early_total += 1
                early_wins += better(task, p, r)
            p, r = value(task, arch, "pretrained", "60/60"), value(task, arch, "random", "60/60")
            if p is not None and r is not None:
                final_total += 1
                final_wins += better(task, p, r)
    small_matches, small_total = 0, 0
    for task in TASKS:
        for large in preset.large_archs:
            s = value(task, preset.small_arch, "pretrained", "60/60")
            big = value(task, large, "random", "60/60")
            if s is None or big is None:
                continue
            small_total += 1
            tolerance = 0.02 * abs(big)
            small_matches += better(task, s, big) or abs(s - big) <= tolerance
    stats = {
        "early_wins": early_wins,
        "early_total": early_total,
        "final_wins": final_wins,
        "final_total": final_total,
        "small_matches": small_matches,
        "small_total": small_total,
    }

    def share(a, b):
        return f"{a} of {b}"

    early = (
        "Pretraining wins early"
        if early_wins > early_total / 2
        else "Pretraining does not win early"
        if early_wins < early_total / 2
        else "Pretraining ties early"
    )
    text = (
        f"{early} at this scale: at the first checkpoint (5/60 of the budget) the pretrained generator beats the "
        f"random-init one in {share(early_wins, early_total)} model/task pairs, and at the end (60/60) in "
        f"{share(final_wins, final_total)}. The small pretrained {_arch_label(preset.small_arch)} matches or beats "
        f"the larger random-init models ({', '.join(_arch_label(a) for a in preset.large_archs)}) in "
        f"{share(small_matches, small_total)} comparisons at the end (match: within 2%). "
    )
    if early_wins <= early_total / 2 or small_matches <= small_total / 2:
        text += (
            "Where this run does not show the paper's advantage, the likely reason is the budget: a few hundred "
            "steps of pretraining on simulated images, far from the paper's 60 epochs on CEM500K."
        )
    else:
        text += "This agrees with the paper's finding that pretraining speeds up convergence."
    return text, stats


def _plot_convergence(preset: Preset, stages: list[Stage], results: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for task in TASKS:
        metric = SELECTION[task][0]
        fig, axes = plt.subplots(1, len(preset.archs), figsize=(4 * len(preset.archs), 3.2), squeeze=False)
        for ax, arch in zip(axes[0], preset.archs):
            for init, color in (("pretrained", "tab:orange"), ("random", "tab:blue")):
                for stage in stages:
                    if stage.kind == "finetune" and (stage.task, stage.arch, stage.init) == (task, arch, init):
                        hist = [json.loads(line) for line in (stage.out / "metrics.jsonl").read_text().splitlines()]
                        val = [h for h in hist if h["split"] == "val" and metric in h]
                        ax.plot(
                            [h["step"] for h in val],
                            [h[metric] for h in val],
                            color=color,
                            alpha=0.8,
                            label=init if stage.seed == 0 else None,
                        )
            ax.set_title(f"{_arch_label(arch)}: {task}")
            ax.set_xlabel("step")
            ax.set_ylabel(f"validation {metric}")
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"convergence_{task}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path.name)
    return paths


def trivial_flags(stages: list[Stage], results: dict, baselines: dict) -> list[str]:
    """Runs that end where a model that learned nothing would (within 1% of a trivial baseline)."""
    flags = []
    for stage in (s for s in stages if s.kind == "finetune"):
        tests = results[stage.key].get("test_at_steps", [])
        metric = SELECTION[stage.task][0]
        if not tests or stage.task not in baselines:
            continue
        final = tests[-1][metric]
        for name, value in baselines[stage.task].items():
            if abs(final - value) <= 0.01 * max(abs(value), 1e-3) + (0.005 if stage.task == "segment" else 0):
                flags.append(f"{stage.key}: ends at {final:.4f}, the {name} baseline ({value:.4f})")
    return flags


def targets(preset: Preset, rows: list[dict]) -> list[str]:
    """The reproduction targets (issue 14), each met or missed by how much."""

    def value(task, arch, init, label):
        return next(
            (r.get(f"{label} mean") for r in rows if (r["task"], r["arch"], r["init"]) == (task, arch, init)), None
        )

    lines = []
    for arch in preset.archs:
        p, r = value("segment", arch, "pretrained", "5/60"), value("segment", arch, "random", "5/60")
        if p is not None and r is not None:
            gap = p - r
            lines.append(
                f"segmentation, {_arch_label(arch)} at 5/60: pretrained - random = {gap:+.3f} Dice "
                f"(target >= +0.20: {'met' if gap >= 0.2 else f'missed by {0.2 - gap:.3f}'})"
            )
    for task in TASKS[1:]:
        for arch in preset.archs:
            p, r = value(task, arch, "pretrained", "5/60"), value(task, arch, "random", "5/60")
            if p is not None and r:
                drop = (r - p) / r
                lines.append(
                    f"{task}, {_arch_label(arch)} at 5/60: pretrained L1 {100 * drop:.1f}% lower than random "
                    f"(target >= 30%: {'met' if drop >= 0.3 else f'missed by {100 * (0.3 - drop):.1f} points'})"
                )
    for label in ("5/60", "30/60"):
        for large in preset.large_archs[:1]:
            s_val, big = (
                value("segment", preset.small_arch, "pretrained", label),
                value("segment", large, "random", label),
            )
            if s_val is not None and big is not None:
                ok = s_val >= big - 0.02 * abs(big)
                lines.append(
                    f"segmentation at {label}: small pretrained {_arch_label(preset.small_arch)} {s_val:.3f} vs "
                    f"random {_arch_label(large)} {big:.3f} Dice (target: matches or beats, within 2%: "
                    f"{'met' if ok else f'missed by {big - s_val:.3f}'})"
                )
    return lines


def write_report(
    preset: Preset, seeds: list[int], stages: list[Stage], results: dict, out: Path, baselines: dict | None = None
) -> dict:
    baselines = baselines or {}
    rows = _metric_rows(preset, seeds, stages, results)
    with open(out / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text, stats = verdict(preset, rows)
    plots = _plot_convergence(preset, stages, results, out)
    lines = [
        f"# emzoo reproduce: preset `{preset.name}`",
        "",
        f"{preset.notes} Seeds: {', '.join(map(str, seeds))}. Budget: {preset.pretrain_steps or preset.epochs} "
        f"pretraining and {preset.finetune_steps or preset.epochs} fine-tuning "
        f"{'steps' if preset.pretrain_steps else 'epochs'} per model, batch {preset.batch_size}, "
        f"{preset.image_size}^2 crops. Test-split metrics at the paper's checkpoints (5, 30, 60 of 60 epochs) "
        "scaled to the budget. Every number below was measured by this run (`results.csv`).",
        "",
        "## Verdict",
        "",
        text,
        "",
    ]
    for task, title in (
        ("segment", "Au nanoparticle segmentation (Dice, higher is better) — cf. the paper's Table 2"),
        ("denoise", "Denoising (L1, lower is better) — cf. Table 3"),
        ("bg-removal", "Noise + background removal (L1, lower is better) — cf. Table 3"),
        ("super-res", "2x super-resolution (L1, lower is better) — cf. Table 3"),
    ):
        lines += [
            f"## {title}",
            "",
            "| Model | Init | " + " | ".join(CHECKPOINT_LABELS) + " |",
            "|---|---|" + "---|" * len(CHECKPOINT_LABELS),
        ]
        for r in (r for r in rows if r["task"] == task):
            cells = []
            for label in CHECKPOINT_LABELS:
                mean, std = r.get(f"{label} mean"), r.get(f"{label} std")
                cells.append("-" if mean is None else f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else ""))
            lines.append(f"| {r['model']} | {r['init']} | " + " | ".join(cells) + " |")
        for name, value in baselines.get(task, {}).items():  # what learning nothing scores
            lines.append(f"| *trivial: {name}* | - | " + " | ".join(f"{value:.4f}" for _ in CHECKPOINT_LABELS) + " |")
        lines += ["", f"![convergence {task}](convergence_{task}.png)", ""]
    flags = trivial_flags(stages, results, baselines)
    lines += ["## Runs that learned nothing", ""]
    lines += [f"- {f}" for f in flags] if flags else ["None: every run ends away from the trivial baselines."]
    goal_lines = targets(preset, rows)
    if goal_lines:
        lines += ["", "## Targets", ""] + [f"- {g}" for g in goal_lines]
    lines += [""]
    lines += ["## Models", "", "Every trained model is a `emzoo.save_pretrained` folder with its card:", ""]
    lines += [f"- `{s.key}/model`" for s in stages]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    return {
        "results_md": str(out / "results.md"),
        "results_csv": str(out / "results.csv"),
        "plots": plots,
        "verdict": stats,
        "trivial_runs": flags,
        "targets": goal_lines,
    }


def write_paper_commands(preset: Preset, seeds: list[int], out: Path, data_root: Path | None) -> Path:
    """The exact `accelerate launch` commands and configs of the paper's scale."""
    from emzoo.zoo import RECIPES

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
        for task in TASKS:
            recipe = RECIPES["au-seg" if task == "segment" else f"temimagenet-{task}"]
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


# ----------------------------------------------------------------------------------- CLI
def _cmd_reproduce(args) -> None:
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()] if args.seeds else None
    report = reproduce(args.preset, args.output_dir, seeds, args.data_root, args.dry_run, args.pretrain)
    print(json.dumps(report, indent=2))


def add_commands(sub) -> None:
    p = sub.add_parser("reproduce", help="run the paper's experiment end to end and report")
    p.add_argument("--preset", default="cpu-small", choices=sorted(PRESETS))
    p.add_argument("--output-dir", default="runs/reproduce")
    p.add_argument("--seeds", help="comma-separated seeds (default: the preset's; cpu-small: 0,1,2)")
    p.add_argument(
        "--pretrain", action="store_true", help="cpu-small: re-run the pretraining from scratch too (slower)"
    )
    p.add_argument("--data-root", help="real datasets: cem500k/, au/, temimagenet/ (default: simulated)")
    p.add_argument("--dry-run", action="store_true", help="paper preset: only write commands.sh")
    p.set_defaults(func=_cmd_reproduce)
