"""A run's folder: ``run.json`` (config, command, versions, data), ``metrics.jsonl``, rotating
checkpoints written atomically, the best ``model/``, ``result.json`` and the loss curves."""

from __future__ import annotations

import errno
import json
import os
import platform
import shutil
import sys
from pathlib import Path

import torch

from emzoo.errors import ConfigError
from emzoo.fsutil import atomic_write_text
from emzoo.version import __version__

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
CHECKPOINTS = "checkpoints"
MODEL_DIR = "model"


def versions() -> dict:
    import accelerate
    import timm

    return {
        "emzoo": __version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "accelerate": accelerate.__version__,
        "python": platform.python_version(),
    }


def latest_checkpoint(out: Path) -> Path | None:
    folder = out / CHECKPOINTS
    if not folder.is_dir():
        return None
    done = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("step_"))
    return done[-1] if done else None


def check_output_dir(out: Path, identity: dict, resume: str | None) -> None:
    """A new folder, or this same run's folder when resuming. A run that stopped before its first
    checkpoint left nothing to resume: its files are cleared and it starts again."""
    run_file = out / RUN_FILE
    if not run_file.is_file():
        if out.exists() and any(p for p in out.iterdir() if not p.name.startswith(".")):
            raise ConfigError(f"output_dir {out}: not empty and not an emzoo run; choose a new folder")
        return
    previous = json.loads(run_file.read_text()).get("config", {})
    prev_identity = {k: previous.get(k) for k in identity}
    if prev_identity != identity:
        diff = {k: (prev_identity[k], v) for k, v in identity.items() if prev_identity[k] != v}
        raise ConfigError(f"output_dir {out}: holds another run (differs in {diff}); choose a new folder")
    if latest_checkpoint(out) is None and not (out / RESULT_FILE).is_file():
        for name in (RUN_FILE, METRICS_FILE, MODEL_DIR, CHECKPOINTS, "logs"):
            path = out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        return
    if not resume:
        raise ConfigError(
            f"output_dir {out}: holds this run already; pass resume_from_checkpoint='latest' to continue it, "
            "or choose a new folder"
        )


def resume_path(out: Path, resume: str) -> Path:
    path = latest_checkpoint(out) if resume == "latest" else Path(resume)
    if path is None or not path.is_dir():
        raise ConfigError(f"resume_from_checkpoint {resume}: no checkpoint in {out}")
    return path


def save_checkpoint(accelerator, out: Path, step: int, keep: int) -> Path:
    """``accelerator.save_state`` into a hidden folder renamed into place (a checkpoint exists
    whole or not at all, also after a kill mid-save), keeping the newest ``keep``."""
    folder = out / CHECKPOINTS
    final = folder / f"step_{step:08d}"
    tmp = folder / f".tmp_step_{step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp))
    except RuntimeError as e:  # torch.save's writer on a full disk: "PytorchStreamWriter failed writing file"
        if "writ" not in str(e).lower():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        detail = str(e).strip().splitlines()[-1][:160]
        raise OSError(errno.ENOSPC, f"cannot write the checkpoint (is the disk full?): {detail}", str(final)) from None
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        done = sorted(p for p in folder.iterdir() if p.name.startswith("step_"))
        for old in done[: max(0, len(done) - keep)]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def write_run_file(out: Path, record: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out / RUN_FILE, json.dumps({**record, "command": sys.argv, "versions": versions()}, indent=2, default=str)
    )


def append_metrics(out: Path, row: dict) -> None:
    with open(out / METRICS_FILE, "a") as f:
        f.write(json.dumps(row) + "\n")


def plot_history(history: list[dict], path: Path, title: str = "") -> None:
    """Training losses and validation metrics against steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in history if r["split"] == "train"]
    val = [r for r in history if r["split"] == "val"]
    metrics = sorted({k for r in val for k in r} - {"step", "epoch", "split"})  # one panel each: own scale
    fig, axes = plt.subplots(1, 1 + len(metrics), figsize=(4 + 3 * len(metrics), 3.2), squeeze=False)
    axes = axes[0]
    for key in sorted({k for r in train for k in r} - {"step", "epoch", "split"}):
        axes[0].plot([r["step"] for r in train], [r[key] for r in train], label=key)
    axes[0].set_xlabel("step")
    axes[0].set_title("training loss")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8)
    for ax, key in zip(axes[1:], metrics):
        points = [(r["step"], r[key]) for r in val if key in r]
        ax.plot(*zip(*points), marker="o", markersize=3)
        ax.set_xlabel("step")
        ax.set_title(f"validation {key}")
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def time_is_up(accelerator, state, minutes: float, bar) -> bool:
    """Whether a run's wall-time budget (summed over resumes) is spent, decided by the main process
    for all; the progress bar's total becomes the steps the budget allows at the speed so far (an ETA)."""
    import torch
    from accelerate.utils import broadcast

    budget = minutes * 60
    if state.step >= 3:
        bar.total = max(state.step, int(state.step * budget / max(state.seconds, 1e-9)))
        bar.refresh()
    flag = torch.tensor([float(state.seconds >= budget)], device=accelerator.device)
    if accelerator.num_processes > 1:
        flag = broadcast(flag)
    return bool(flag.item())


def lr_schedulers(optimizers, schedule: str, total_steps: int) -> list:
    """The schedulers a run steps and checkpoints: none for a constant rate; cosine: from the set
    rate to 0 at ``total_steps``."""
    if schedule == "constant":
        return []
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR
    return [cosine(opt, T_max=max(1, total_steps)) for opt in optimizers if opt is not None]


def gather_object(items: list) -> list:
    """Every process's items, in rank order (Accelerate's, imported only when a run finishes)."""
    from accelerate.utils import gather_object as gather

    return gather(items)
