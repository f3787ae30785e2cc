"""Self-supervised Pix2Pix pretraining and supervised fine-tuning through Accelerate.

One loop serves both: ``mode="pretrain"`` trains the generator against a conditional PatchGAN
(LSGAN + lambda * L1, both networks updated every step); ``mode="finetune"`` trains it with the
task's loss. Runs checkpoint atomically, resume exactly (same weights as an uninterrupted run on
CPU with a fixed seed), gather metrics exactly over processes and export the best model with
:func:`emzoo.save_pretrained`.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from emzoo.errors import EmzooError
from emzoo.hub import state_hash
from emzoo.train.metrics import SELECTION, is_better, lsgan_loss, per_sample_stats, summarize, task_loss

_log = logging.getLogger("emzoo.train")
RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
MODEL_DIR = "model"


@dataclass
class TrainConfig:
    """Everything a run depends on; written to ``run.json`` so the run can be reproduced."""

    mode: str  # "pretrain" or "finetune"
    data: str
    output_dir: str
    task: str = "pretext"
    arch: str | None = None  # pretrain: the generator architecture
    model: str | None = None  # finetune: zoo name, hf-hub:..., folder, or random:ARCH
    recipe: str | None = None
    epochs: int = 60
    max_steps: int | None = None
    batch_size: int = 16
    image_size: int = 256
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    l1_lambda: float = 100.0
    num_classes: int = 1
    seed: int = 0
    num_workers: int = 0
    checkpointing_steps: int | None = None  # None: at the end of every epoch
    checkpoints_total_limit: int = 2
    resume_from_checkpoint: str | None = None
    mixed_precision: str = "no"
    gradient_accumulation_steps: int = 1
    compile: str = "auto"  # auto | on | off
    channels_last: bool = True
    report_to: str | None = None
    sim_n: int = 48
    sim_size: int = 256
    eval_batches: int | None = None
    test_at_steps: list[int] = field(default_factory=list)  # also score the test split at these steps
    keep_checkpoints: bool = True
    ndf: int = 64  # discriminator width (Pix2Pix: 64)
    progress: bool = True
    cpu: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def identity(self) -> dict:
        """What makes two runs the same run (for refusing unrelated output directories)."""
        return {k: getattr(self, k) for k in ("mode", "task", "arch", "model", "data", "seed", "image_size")}


@dataclass
class TrainState:
    """Progress that checkpoints carry besides weights and optimiser state."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    best: float | None = None
    best_step: int | None = None
    history: list[dict] = field(default_factory=list)

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


class EpochShuffled(Dataset):
    """A dataset seen in a seeded, per-epoch permutation, so every process and every resumed
    run agrees on the order without relying on sampler internals."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, seed, 0
        self.order = np.arange(len(dataset))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.order = np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[int(self.order[index])]


# ------------------------------------------------------------------------------ set-up
def resolve_data(cfg: TrainConfig, split_task: str | None = None) -> Path:
    """``simulated`` means a small simulated dataset for the task, built once and cached."""
    if cfg.data == "simulated":
        from emzoo.data.simulate import simulated

        return simulated(split_task or cfg.task, n=cfg.sim_n, size=cfg.sim_size, seed=0, progress=cfg.progress)
    if cfg.data == "corpus" or cfg.data.startswith("corpus:"):
        from emzoo.data.corpus import default_corpus

        path = default_corpus(progress=cfg.progress) / cfg.data.partition(":")[2]
        if not path.is_dir():
            raise EmzooError(f"--data {cfg.data}: no such corpus folder (pretext, restore, segment/tem, segment/stem)")
        return path
    path = Path(cfg.data).expanduser()
    if not path.exists():
        raise EmzooError(f"--data {cfg.data}: no such file or folder (or use --data simulated)")
    return path


def build_generator(cfg: TrainConfig) -> nn.Module:
    import emzoo

    if cfg.mode == "pretrain":
        if not cfg.arch:
            raise EmzooError("--arch is required for pretraining (e.g. emzoo_unet_2_44; see `emzoo list`)")
        model = emzoo.create_model(cfg.arch)
        model.emzoo_cfg = {"task": "pretext"}
        return model
    if not cfg.model:
        raise EmzooError("--model is required for fine-tuning (a zoo name, hf-hub:ORG/NAME, a folder or random:ARCH)")
    if cfg.model.startswith("random:"):
        model = emzoo.create_model(cfg.model.split(":", 1)[1], num_classes=cfg.num_classes)
        model.emzoo_new_keys = []
        return model
    model = emzoo.load(cfg.model, num_classes=cfg.num_classes if cfg.num_classes != 1 else None)
    new_keys = getattr(model, "emzoo_new_keys", [])
    _log.info("fine-tuning %s: %s", cfg.model, f"new keys {new_keys}" if new_keys else "all weights kept")
    return model


def _versions() -> dict:
    import accelerate
    import timm

    from emzoo import __version__

    return {
        "emzoo": __version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "accelerate": accelerate.__version__,
        "python": platform.python_version(),
    }


def _check_output_dir(out: Path, cfg: TrainConfig) -> None:
    run_file = out / RUN_FILE
    if not run_file.is_file():
        if out.exists() and any(p for p in out.iterdir() if not p.name.startswith(".")):
            raise EmzooError(f"--output-dir {out}: not empty and not an emzoo run; choose a new folder")
        return
    previous = json.loads(run_file.read_text()).get("config", {})
    prev_identity = {k: previous.get(k) for k in cfg.identity()}
    if prev_identity != cfg.identity():
        diff = {k: (prev_identity[k], v) for k, v in cfg.identity().items() if prev_identity[k] != v}
        raise EmzooError(f"--output-dir {out}: holds another run (differs in {diff}); choose a new folder")
    if not cfg.resume_from_checkpoint:
        raise EmzooError(
            f"--output-dir {out}: holds this run already; pass --resume-from-checkpoint latest to continue it, "
            "or choose a new folder"
        )


def latest_checkpoint(out: Path) -> Path | None:
    folder = out / CHECKPOINTS
    if not folder.is_dir():
        return None
    done = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("step_"))
    return done[-1] if done else None


def _loader(dataset: Dataset, cfg: TrainConfig, train: bool) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=False,  # order comes from EpochShuffled
        drop_last=train,
        num_workers=cfg.num_workers,
        pin_memory=torch.cuda.is_available(),
    )


# ------------------------------------------------------------------------------ the run
class Trainer:
    def __init__(self, cfg: TrainConfig):
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState
        from accelerate.utils import ProjectConfiguration, set_seed

        AcceleratorState._reset_state()  # several runs in one process (reproduce), each with its own settings
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        if cfg.compile not in ("auto", "on", "off"):
            raise EmzooError(f"--compile {cfg.compile}: expected auto, on or off")
        self.accelerator = Accelerator(
            mixed_precision=cfg.mixed_precision,
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            cpu=cfg.cpu,
            log_with=cfg.report_to,
            project_config=ProjectConfiguration(project_dir=str(self.out), logging_dir=str(self.out / "logs")),
        )
        acc = self.accelerator
        if acc.is_main_process:
            _check_output_dir(self.out, cfg)
        acc.wait_for_everyone()
        set_seed(cfg.seed)
        self.generator = build_generator(cfg)  # a bad model name fails before any data work
        self.new_keys = getattr(self.generator, "emzoo_new_keys", [])
        with acc.main_process_first():
            self.data_path = resolve_data(cfg)
        self._build_data()
        self.discriminator = None
        if cfg.mode == "pretrain":
            import emzoo

            chans = self.generator.in_chans + self.generator.num_classes
            self.discriminator = emzoo.create_model("emzoo_patchgan", in_chans=chans, ndf=cfg.ndf)
        self.state = TrainState()
        self._prepare()

    # ---------------------------------------------------------------- data
    def _build_data(self) -> None:
        from emzoo.data import load_dataset

        cfg = self.cfg
        common = dict(image_size=cfg.image_size, seed=cfg.seed, num_classes=max(cfg.num_classes, 2))
        self.train_set = load_dataset(self.data_path, cfg.task, "train", **common)
        self.val_set = load_dataset(self.data_path, cfg.task, "val", **common)
        for ds in (self.train_set, self.val_set):
            ds[0]  # fail now, with the file's name, not inside a worker later
        world = self.accelerator.num_processes
        if len(self.train_set) < cfg.batch_size * world:
            raise EmzooError(
                f"--batch-size {cfg.batch_size}: larger than the training split ({len(self.train_set)} images"
                f"{f' over {world} processes' if world > 1 else ''}); lower it or add data"
            )
        self.shuffled = EpochShuffled(self.train_set, cfg.seed)
        self.test_set = None
        if cfg.test_at_steps:
            self.test_set = load_dataset(self.data_path, cfg.task, "test", **common)

    # ---------------------------------------------------------------- models
    def _prepare(self) -> None:
        cfg, acc = self.cfg, self.accelerator
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.generator.to(memory_format=fmt)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
        train_loader, val_loader = _loader(self.shuffled, cfg, True), _loader(self.val_set, cfg, False)
        self.steps_per_epoch = max(1, len(train_loader) // cfg.gradient_accumulation_steps // acc.num_processes)
        self.total_steps = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        if self.discriminator is not None:
            self.discriminator.to(memory_format=fmt)
            opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
            prepared = acc.prepare(self.generator, self.discriminator, opt_g, opt_d, train_loader, val_loader)
            self.g, self.d, self.opt_g, self.opt_d, self.train_loader, self.val_loader = prepared
        else:
            self.g, self.opt_g, self.train_loader, self.val_loader = acc.prepare(
                self.generator, opt_g, train_loader, val_loader
            )
            self.d = self.opt_d = None
        self.test_loader = acc.prepare_data_loader(_loader(self.test_set, cfg, False)) if self.test_set else None
        use_compile = cfg.compile == "on" or (cfg.compile == "auto" and self.total_steps >= 500)
        self.forward_g = torch.compile(self.g) if use_compile else self.g
        self.forward_d = torch.compile(self.d) if use_compile and self.d is not None else self.d
        acc.register_for_checkpointing(self.state)
        if cfg.resume_from_checkpoint:
            path = (
                latest_checkpoint(self.out)
                if cfg.resume_from_checkpoint == "latest"
                else Path(cfg.resume_from_checkpoint)
            )
            if path is None or not path.is_dir():
                raise EmzooError(f"--resume-from-checkpoint {cfg.resume_from_checkpoint}: no checkpoint in {self.out}")
            acc.load_state(str(path))
            _log.info("resumed from %s at step %d", path, self.state.step)
            self.resumed_from = str(path)
        else:
            self.resumed_from = None

    def _to_device(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        fmt = torch.channels_last if self.cfg.channels_last else torch.contiguous_format
        x = batch["image"].to(self.accelerator.device).contiguous(memory_format=fmt)
        y = batch["target"].to(self.accelerator.device)
        if y.ndim == 4:
            y = y.contiguous(memory_format=fmt)
        return x, y

    # ---------------------------------------------------------------- steps
    def _gan_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Pix2Pix: D on (input, target) vs (input, G(input).detach()), then G against a frozen D
        with LSGAN + lambda * L1."""
        acc, d_plain = self.accelerator, self.accelerator.unwrap_model(self.d)
        with acc.autocast():
            fake = self.forward_g(x)
            d_real = self.forward_d(torch.cat([x, y], 1))
            d_fake = self.forward_d(torch.cat([x, fake.detach()], 1))
            loss_d = 0.5 * (lsgan_loss(d_real, True) + lsgan_loss(d_fake, False))
        acc.backward(loss_d)
        self.opt_d.step()
        self.opt_d.zero_grad(set_to_none=True)
        d_plain.requires_grad_(False)
        with acc.autocast():
            loss_gan = lsgan_loss(d_plain(torch.cat([x, fake], 1)), True)
            loss_l1 = torch.nn.functional.l1_loss(fake.float(), y.float())
            loss_g = loss_gan + self.cfg.l1_lambda * loss_l1
        acc.backward(loss_g)
        d_plain.requires_grad_(True)
        self.opt_g.step()
        self.opt_g.zero_grad(set_to_none=True)
        return {"loss_d": loss_d.item(), "loss_g_gan": loss_gan.item(), "loss_l1": loss_l1.item()}

    def _supervised_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        with self.accelerator.autocast():
            loss = task_loss(self.cfg.task, self.forward_g(x), y)
        self.accelerator.backward(loss)
        self.opt_g.step()
        self.opt_g.zero_grad(set_to_none=True)
        return {"loss": loss.item()}

    # ---------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, loader: DataLoader, model: nn.Module | None = None) -> dict[str, float]:
        model = model or self.g
        model.eval()
        rows = []
        for i, batch in enumerate(loader):
            if self.cfg.eval_batches is not None and i >= self.cfg.eval_batches:
                break
            x, y = self._to_device(batch)
            with self.accelerator.autocast():
                out = model(x)
            rows.append(self.accelerator.gather_for_metrics(per_sample_stats(self.cfg.task, out, y)))
        model.train()
        return summarize(self.cfg.task, torch.cat(rows)) if rows else {}

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path:
        acc = self.accelerator
        folder = self.out / CHECKPOINTS
        final = folder / f"step_{self.state.step:08d}"
        tmp = folder / f".tmp_step_{self.state.step:08d}"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if acc.is_main_process:
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)  # a checkpoint exists whole or not at all
            done = sorted(p for p in folder.iterdir() if p.name.startswith("step_"))
            for old in done[: max(0, len(done) - self.cfg.checkpoints_total_limit)]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        return final

    def export(self, folder: Path, metrics: list[dict] | None = None) -> None:
        """Write the generator as a Hub-ready folder (main process only)."""
        import emzoo

        if not self.accelerator.is_main_process:
            return
        model = self.accelerator.unwrap_model(self.g, keep_torch_compile=False)
        cfg = self.cfg
        base = None if cfg.mode == "pretrain" or (cfg.model or "").startswith("random:") else cfg.model
        what = f"Pix2Pix cGAN pretraining (LSGAN + {cfg.l1_lambda:g} x L1)" if cfg.mode == "pretrain" else cfg.task
        summary = (
            f"{what} with emzoo on `{self.data_path}` ({self.train_set.layout} layout, "
            f"{len(self.train_set)} training images), {self.state.step} steps of batch {cfg.batch_size} at "
            f"{cfg.image_size}^2, Adam lr {cfg.lr} betas {tuple(cfg.betas)}, seed {cfg.seed}. "
            "Resolved config and versions: run.json of the run."
        )
        emzoo.save_pretrained(
            model,
            folder,
            task=cfg.task,
            base_model=base,
            recipe=cfg.recipe,
            metrics=metrics or [],
            metrics_source=f"emzoo {cfg.mode} run in {self.out}",
            train_summary=summary,
            zoo_name=cfg.extra.get("zoo_name"),
        )

    # ---------------------------------------------------------------- loop
    def _log_row(self, row: dict) -> None:
        self.state.history.append(row)
        if self.accelerator.is_main_process:
            with open(self.out / METRICS_FILE, "a") as f:
                f.write(json.dumps(row) + "\n")
        if self.cfg.report_to:
            self.accelerator.log({k: v for k, v in row.items() if isinstance(v, (int, float))}, step=row["step"])

    def _write_run_file(self) -> None:
        from emzoo.data.datasets import fingerprint

        if not self.accelerator.is_main_process:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        record = {
            "config": asdict(self.cfg),
            "command": sys.argv,
            "versions": _versions(),
            "processes": self.accelerator.num_processes,
            "data": {
                "path": str(self.data_path),
                "layout": self.train_set.layout,
                "fingerprint": fingerprint(self.train_set),
                "n_train": len(self.train_set),
                "n_val": len(self.val_set),
            },
            "new_keys": self.new_keys,
            "resumed_from": self.resumed_from,
        }
        tmp = self.out / f".{RUN_FILE}.tmp"
        tmp.write_text(json.dumps(record, indent=2, default=str))
        os.replace(tmp, self.out / RUN_FILE)

    def train(self) -> dict:
        from tqdm.auto import tqdm

        cfg, acc, state = self.cfg, self.accelerator, self.state
        self._write_run_file()
        if cfg.report_to:
            acc.init_trackers(
                "emzoo", config={k: v for k, v in asdict(cfg).items() if isinstance(v, (int, float, str))}
            )
        hold_at = int(os.environ.get("EMZOO_TEST_HOLD_AT_STEP", "0"))  # tests: stop here to be killed
        bar = tqdm(
            total=self.total_steps,
            initial=state.step,
            desc=f"{cfg.mode} {cfg.task}",
            disable=not (cfg.progress and acc.is_local_main_process),
            unit="step",
        )
        every = cfg.checkpointing_steps
        metric_name = SELECTION[cfg.task][0]
        start = time.perf_counter()
        self.g.train()
        try:
            while state.step < self.total_steps:
                # Accelerate's loaders call dataset.set_epoch(their own iteration count) when
                # iterated, which restarts at 0 in a resumed process: give them the true epoch.
                self.shuffled.set_epoch(state.epoch)
                self.train_loader.set_epoch(state.epoch)
                loader = self.train_loader
                if state.batches_in_epoch:
                    loader = acc.skip_first_batches(loader, state.batches_in_epoch)
                    loader.set_epoch(state.epoch)
                for batch in loader:
                    x, y = self._to_device(batch)
                    with acc.accumulate(*(m for m in (self.g, self.d) if m is not None)):
                        losses = self._gan_step(x, y) if self.d is not None else self._supervised_step(x, y)
                    state.batches_in_epoch += 1
                    if not acc.sync_gradients:
                        continue
                    state.step += 1
                    bar.update(1)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()})
                    if state.step % 10 == 0 or state.step == 1:
                        self._log_row({"step": state.step, "epoch": state.epoch, "split": "train", **losses})
                    if state.step in cfg.test_at_steps:
                        self._log_row(
                            {
                                "step": state.step,
                                "epoch": state.epoch,
                                "split": "test",
                                **self.evaluate(self.test_loader),
                            }
                        )
                    if hold_at and state.step == hold_at and acc.is_main_process:
                        (self.out / ".held").write_text(str(os.getpid()))
                        time.sleep(3600)
                    if every and state.step % every == 0:
                        self.save_checkpoint()
                    if state.step >= self.total_steps:
                        break
                else:
                    state.epoch += 1
                    state.batches_in_epoch = 0
                self._validate(metric_name)
                if not every or state.step >= self.total_steps:
                    self.save_checkpoint()  # every epoch, and always the final state
        except torch.OutOfMemoryError:
            raise EmzooError(
                f"out of memory at --batch-size {cfg.batch_size}, --image-size {cfg.image_size}; lower them "
                f"(last checkpoint: {latest_checkpoint(self.out)}; resume with --resume-from-checkpoint latest)"
            ) from None
        bar.close()
        elapsed = time.perf_counter() - start
        result = self._finish(metric_name, elapsed)
        if cfg.report_to:
            acc.end_training()
        return result

    def _validate(self, metric_name: str) -> None:
        state = self.state
        metrics = self.evaluate(self.val_loader)
        self._log_row({"step": state.step, "epoch": state.epoch, "split": "val", **metrics})
        if metrics and is_better(self.cfg.task, metrics[metric_name], state.best):
            state.best, state.best_step = metrics[metric_name], state.step
            self.export(self.out / MODEL_DIR)
        self.accelerator.wait_for_everyone()

    def _finish(self, metric_name: str, elapsed: float) -> dict:
        """Test the best model on the held-out split, fill its card, draw the curves."""
        import emzoo
        from emzoo.data import load_dataset

        cfg, acc = self.cfg, self.accelerator
        acc.wait_for_everyone()
        test_metrics: dict[str, float] = {}
        try:
            test_set = load_dataset(
                self.data_path,
                cfg.task,
                "test",
                image_size=cfg.image_size,
                seed=cfg.seed,
                num_classes=max(cfg.num_classes, 2),
            )
        except EmzooError as e:
            _log.warning("no test split evaluated: %s", e)
            test_set = None
        best = emzoo.load(self.out / MODEL_DIR, verify=False).to(acc.device)
        best.to(memory_format=torch.channels_last if cfg.channels_last else torch.contiguous_format)
        if test_set is not None:
            test_loader = acc.prepare_data_loader(_loader(test_set, cfg, False))
            test_metrics = self.evaluate(test_loader, best)
        dataset_name = f"{Path(str(self.data_path)).name} ({self.train_set.layout})"
        card_metrics = [
            {"name": k, "value": v, "dataset": dataset_name, "split": "test"} for k, v in test_metrics.items()
        ]
        if acc.is_main_process:
            best_model = best.cpu()
            best_model.emzoo_cfg.pop("source", None)
            emzoo.save_pretrained(best_model, self.out / MODEL_DIR, metrics=card_metrics)
            plot_history(self.state.history, self.out / "loss_curve.png", title=f"{cfg.mode} {cfg.task}")
        weights_hash = state_hash(acc.unwrap_model(self.g, keep_torch_compile=False))
        result = {
            "rank_weight_hashes": gather_object([weights_hash]),  # equal on every rank when in sync
            "steps": self.state.step,
            "epochs": self.state.epoch,
            "best_val": {metric_name: self.state.best, "step": self.state.best_step},
            "test": test_metrics,
            "train_seconds": round(elapsed, 1),
            "model_dir": str(self.out / MODEL_DIR),
        }
        result["test_at_steps"] = [r for r in self.state.history if r["split"] == "test"]
        if acc.is_main_process:
            (self.out / "result.json").write_text(json.dumps(result, indent=2))
            if not cfg.keep_checkpoints:
                shutil.rmtree(self.out / CHECKPOINTS, ignore_errors=True)
        acc.wait_for_everyone()
        return result


def gather_object(items: list) -> list:
    from accelerate.utils import gather_object as _gather

    return _gather(items)


def plot_history(history: list[dict], path: Path, title: str = "") -> None:
    """Training losses and validation metrics against steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in history if r["split"] == "train"]
    val = [r for r in history if r["split"] == "val"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for key in sorted({k for r in train for k in r} - {"step", "epoch", "split"}):
        axes[0].plot([r["step"] for r in train], [r[key] for r in train], label=key)
    axes[0].set_xlabel("step")
    axes[0].set_title("training loss")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8)
    for key in sorted({k for r in val for k in r} - {"step", "epoch", "split"}):
        axes[1].plot([r["step"] for r in val], [r[key] for r in val], marker="o", label=key)
    axes[1].set_xlabel("step")
    axes[1].set_title("validation")
    axes[1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def run(cfg: TrainConfig) -> dict:
    return Trainer(cfg).train()


def evaluate_model(
    model_name: str,
    data: str,
    task: str | None = None,
    split: str = "test",
    image_size: int | None = None,
    batch_size: int = 4,
    seed: int = 0,
    sim_n: int = 48,
    sim_size: int = 256,
) -> dict[str, float]:
    """Metrics of a trained model on one split of a dataset (``emzoo evaluate``); ``sim_n`` and
    ``sim_size`` pick the ``data="simulated"`` set (the defaults are the training defaults)."""
    import emzoo
    from emzoo.data import load_dataset

    model = emzoo.load(model_name)
    task = task or model.emzoo_cfg.get("task")
    if task is None:
        raise EmzooError(f"--task: {model_name} does not say its task; pass --task")
    config = TrainConfig(mode="finetune", data=data, output_dir="", task=task, sim_n=sim_n, sim_size=sim_size)
    path = resolve_data(config)
    ds = load_dataset(path, task, split, image_size=image_size, seed=seed, num_classes=max(model.num_classes, 2))
    loader = DataLoader(ds, batch_size=batch_size if image_size else 1)
    rows = []
    with torch.no_grad():
        for batch in loader:
            rows.append(per_sample_stats(task, model(batch["image"]), batch["target"]))
    return {"task": task, "split": split, "n": len(ds), **summarize(task, torch.cat(rows))}
