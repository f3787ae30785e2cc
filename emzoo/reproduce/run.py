"""``emzoo reproduce``: the paper's experiment end to end, at a preset's scale.

1. datasets for every task (simulated, or the real ones under ``--data-root``);
2. self-supervised Pix2Pix pretraining of each generator on unlabeled images (or the zoo's
   shipped pretext checkpoints);
3. fine-tuning of each generator on each task twice, from the pretrained weights and from
   random init, with the same data, seed and budget;
4. test-split metrics at the paper's checkpoints (5, 30 and 60 of 60 epochs) scaled to the budget;
5. a report (:mod:`emzoo.reproduce.report`).

Each finished stage leaves a ``result.json``; an interrupted reproduce resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from emzoo.data import load_dataset
from emzoo.errors import ConfigError
from emzoo.reproduce.plan import Stage, budget, data_for, plan, stage_config, write_paper_commands
from emzoo.reproduce.presets import DATA_DIRS, PRESETS, Preset
from emzoo.reproduce.report import write_report
from emzoo.tasks import FINETUNE_TASKS, get_task
from emzoo.train import run


def run_stage(stage: Stage, cfg) -> dict:
    """Train one stage, resuming it if an earlier reproduce was interrupted inside it."""
    result_file = stage.out / "result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    if (stage.out / "run.json").is_file():  # interrupted: resume (or restart, with no checkpoint yet)
        cfg = replace(cfg, resume_from_checkpoint="latest")
    return run(cfg)


def trivial_baselines(preset: Preset, data: dict[str, str]) -> dict[str, dict[str, float]]:
    """What a model that learned nothing scores on each task's test split, measured the way the
    runs are: Dice of all-foreground and all-background masks; L1 of returning the input."""
    out = {}
    for task in FINETUNE_TASKS:
        ds = load_dataset(data[task], task, "test", image_size=preset.image_size, seed=0, num_classes=2)
        images = torch.stack([ds[i]["image"] for i in range(len(ds))])
        targets = torch.stack([ds[i]["target"] for i in range(len(ds))])
        t = get_task(task)
        if t.segmentation:
            full = torch.full_like(targets, 20.0)
            out[task] = {
                "all foreground": t.summarize(t.per_sample_stats(full, targets))["dice"],
                "all background": t.summarize(t.per_sample_stats(-full, targets))["dice"],
            }
        else:
            out[task] = {"identity (input)": t.summarize(t.per_sample_stats(images, targets))["l1"]}
    return out


def _seed(value) -> int:
    try:
        seed = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"seeds {value!r}: expected whole numbers from 0 to 2**32 - 1, comma-separated") from None
    if not 0 <= seed < 2**32:
        raise ConfigError(f"seeds {seed}: expected whole numbers from 0 to 2**32 - 1")
    return seed


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
        raise ConfigError(f"preset {preset_name}: expected one of {', '.join(PRESETS)}")
    preset = PRESETS[preset_name]
    seeds = [_seed(s) for s in seeds] if seeds else list(preset.default_seeds)
    out = Path(out)
    root = Path(data_root) if data_root else None
    if root is not None:  # checked before anything is written
        missing = [f"{d}/" for d in dict.fromkeys(DATA_DIRS.values()) if not (root / d).exists()]
        if missing:
            raise ConfigError(f"data_root {root}: no {', '.join(missing)}; expected cem500k/, au/ and temimagenet/")
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
    for task in ("pretext", *FINETUNE_TASKS):
        data[task] = data_for(preset, task, root)
    results = {}
    start = time.perf_counter()
    from tqdm.auto import tqdm

    cost = [(budget(preset, st.kind, st.arch) or 1) * (3 if st.kind == "pretrain" else 1) for st in stages]
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
