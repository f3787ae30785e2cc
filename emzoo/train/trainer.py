"""Self-supervised Pix2Pix pretraining and supervised fine-tuning through Accelerate.

One loop serves both: ``mode="pretrain"`` trains the generator against a conditional PatchGAN
(LSGAN + lambda * L1, both networks updated every step); ``mode="finetune"`` trains it with the
task's loss. Runs checkpoint atomically, resume exactly (same weights as an uninterrupted run on
CPU with a fixed seed), gather metrics exactly over processes and export the best model.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.utils import ModelEmaV3
from torch.utils.data import DataLoader

from emzoo.data import load_dataset
from emzoo.data.pipeline import fingerprint
from emzoo.errors import ConfigError, EmzooError
from emzoo.hub import create_model, load, save_pretrained, state_hash
from emzoo.tasks import get_task
from emzoo.train import run_folder
from emzoo.train.config import TrainConfig, TrainState, build_generator, resolve_data
from emzoo.train.evaluation import fold_threshold, score
from emzoo.train.loading import EpochShuffled, loader_for
from emzoo.train.objectives import lsgan_loss, objective_for
from emzoo.train.precision import choose_precision
from emzoo.train.run_folder import CHECKPOINTS, MODEL_DIR, RESULT_FILE, gather_object, latest_checkpoint, time_is_up

_log = logging.getLogger("emzoo.train")


class Trainer:
    def __init__(self, cfg: TrainConfig):
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState
        from accelerate.utils import ProjectConfiguration, set_seed

        AcceleratorState._reset_state()  # several runs in one process (reproduce), each with its own settings
        self.cfg = cfg
        self.task = get_task(cfg.task)
        self.out = Path(cfg.output_dir)
        if cfg.compile not in ("auto", "on", "off"):
            raise ConfigError(f"compile {cfg.compile!r}: expected auto, on or off")
        set_seed(cfg.seed)
        self.objective = objective_for(cfg.objective, self.task)  # what the loss and the scores compare
        self.generator = build_generator(cfg)  # a bad model name fails before any data work
        self.mixed_precision = choose_precision(
            cfg.mixed_precision, self.generator, cfg.batch_size, cfg.image_size, cpu=cfg.cpu
        )
        self.accelerator = Accelerator(
            mixed_precision=self.mixed_precision,
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            cpu=cfg.cpu,
            log_with=cfg.report_to,
            project_config=ProjectConfiguration(project_dir=str(self.out), logging_dir=str(self.out / "logs")),
        )
        acc = self.accelerator
        if acc.is_main_process:
            run_folder.check_output_dir(self.out, cfg.identity(), cfg.resume_from_checkpoint)
        acc.wait_for_everyone()
        self.new_keys = list(getattr(self.generator, "emzoo_new_keys", []))
        with acc.main_process_first():
            self.data_path = resolve_data(cfg.data, cfg.task, cfg.sim_n, cfg.sim_size, cfg.progress)
        self._build_data()
        if cfg.mode == "finetune" and self.task.segmentation and cfg.prior_head:
            self._start_head_at_prior()
        self.discriminator = None
        if cfg.mode == "pretrain":
            chans = self.generator.in_chans + self.generator.num_classes
            self.discriminator = create_model("emzoo_patchgan", in_chans=chans, ndf=cfg.ndf)
        self.state = TrainState()
        self._prepare()

    # ---------------------------------------------------------------- data
    def _build_data(self) -> None:
        cfg = self.cfg
        self.data_args = common = dict(
            image_size=cfg.image_size,
            seed=cfg.seed,
            num_classes=max(cfg.num_classes, 2),
            objective=cfg.objective,
            remove_outliers=cfg.remove_outliers,
            **cfg.augmentations(),  # training frames only
        )
        self.train_set = load_dataset(self.data_path, cfg.task, "train", **common)
        self.val_set = load_dataset(self.data_path, cfg.task, "val", **common)
        for ds in (self.train_set, self.val_set):
            ds[0]  # fail now, with the file's name, not inside a worker later
        world = self.accelerator.num_processes
        if len(self.train_set) < cfg.batch_size * world:
            raise ConfigError(
                f"batch_size {cfg.batch_size}: larger than the training split ({len(self.train_set)} images"
                f"{f' over {world} processes' if world > 1 else ''}); lower it or add data"
            )
        self.shuffled = EpochShuffled(self.train_set, cfg.seed)
        self.test_set = None
        if cfg.test_at_steps:
            self.test_set = load_dataset(self.data_path, cfg.task, "test", **common)

    def _start_head_at_prior(self, samples: int = 32) -> None:
        """A segmentation fine-tune starts from a new head whose output is the class prior: small
        weights, bias at the training masks' class frequencies (RetinaNet's prior init). A pretext
        head outputs a restored image, a random one an offset of random sign; Adam needs hundreds
        of steps to undo either, and until then every pixel is foreground (or background)."""
        n = min(samples, len(self.train_set))
        targets = [self.train_set[i]["target"] for i in range(n)]
        classes = max(self.generator.num_classes, 2)
        counts = sum(torch.bincount(t.long().flatten(), minlength=classes)[:classes].double() for t in targets)
        self.generator.reset_classifier(self.generator.num_classes)
        head = self.generator.get_classifier()
        torch.nn.init.normal_(head.weight, std=0.01)
        with torch.no_grad():
            head.bias.copy_(self.task.prior_bias(counts / counts.sum(), self.generator.num_classes))
        keys = [
            f"{name}.{suffix}"
            for name, module in self.generator.named_modules()
            if module is head
            for suffix in ("weight", "bias")
        ]
        self.new_keys = [*dict.fromkeys([*self.new_keys, *keys])]  # in order, once each
        _log.info("segmentation head started at the class prior %s", (counts / counts.sum()).tolist())

    # ---------------------------------------------------------------- models
    def _prepare(self) -> None:
        cfg, acc = self.cfg, self.accelerator
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.generator.to(memory_format=fmt)
        fresh = set(self.new_keys)  # a new head learns from nothing: it may take a larger step
        named = list(self.generator.named_parameters())
        groups = [
            {"params": [p for n, p in named if n not in fresh], "lr": cfg.lr},
            {"params": [p for n, p in named if n in fresh], "lr": cfg.lr * cfg.head_lr_scale},
        ]
        opt_g = torch.optim.Adam(
            [g for g in groups if g["params"]], betas=tuple(cfg.betas), fused=torch.cuda.is_available() and not cfg.cpu
        )
        train_loader, val_loader = loader_for(self.shuffled, cfg, True), loader_for(self.val_set, cfg, False)
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
        self.test_loader = acc.prepare_data_loader(loader_for(self.test_set, cfg, False)) if self.test_set else None
        use_compile = cfg.compile == "on" or (cfg.compile == "auto" and self.total_steps >= 500)
        self.forward_g = torch.compile(self.g) if use_compile else self.g
        self.forward_d = torch.compile(self.d) if use_compile and self.d is not None else self.d
        acc.register_for_checkpointing(self.state)
        self.ema = ModelEmaV3(acc.unwrap_model(self.g), decay=cfg.ema_decay) if cfg.ema_decay else None
        if self.ema is not None:  # the weights' average, saved with the run's checkpoints
            acc.register_for_checkpointing(self.ema)
        # stepped once per optimiser step (not per process, as Accelerate's wrapper would), saved with the run
        self.schedulers = run_folder.lr_schedulers((self.opt_g, self.opt_d), cfg.lr_schedule, self.total_steps)
        for scheduler in self.schedulers:
            acc.register_for_checkpointing(scheduler)
        self.resumed_from = None
        if cfg.resume_from_checkpoint and (latest_checkpoint(self.out) or cfg.resume_from_checkpoint != "latest"):
            path = run_folder.resume_path(self.out, cfg.resume_from_checkpoint)
            acc.load_state(str(path))
            _log.info("resumed from %s at step %d", path, self.state.step)
            self.resumed_from = str(path)

    def _to_device(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        fmt = torch.channels_last if self.cfg.channels_last else torch.contiguous_format
        x = batch["image"].to(self.accelerator.device).contiguous(memory_format=fmt)
        y = batch["target"].to(self.accelerator.device)
        if y.ndim == 4:
            y = y.contiguous(memory_format=fmt)
        return x, y

    # ---------------------------------------------------------------- steps
    def _gan_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Pix2Pix: D on (input, target) vs (input, G(input).detach()), then G vs a frozen D (LSGAN + lambda*L1)."""
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
            loss_l1 = F.l1_loss(fake.float(), y.float())
            loss_g = loss_gan + self.cfg.l1_lambda * loss_l1
        acc.backward(loss_g)
        d_plain.requires_grad_(True)
        self.opt_g.step()
        self.opt_g.zero_grad(set_to_none=True)
        return {"loss_d": loss_d.detach(), "loss_g_gan": loss_gan.detach(), "loss_l1": loss_l1.detach()}

    def _supervised_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        with self.accelerator.autocast():
            loss = self.objective.loss(self.forward_g(x), y)
        self.accelerator.backward(loss)
        self.opt_g.step()
        self.opt_g.zero_grad(set_to_none=True)
        return {"loss": loss.detach()}

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, loader: DataLoader, model=None, calibrate_on: DataLoader | None = None) -> dict[str, float]:
        acc = self.accelerator
        g = model or self.g
        return score(g, loader, self.objective, self._to_device, acc.gather_for_metrics, acc.autocast, calibrate_on)

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path:
        return run_folder.save_checkpoint(self.accelerator, self.out, self.state.step, self.cfg.checkpoints_total_limit)

    def scored_model(self) -> torch.nn.Module:
        """What validation scores and the run exports: the weights' average where there is one."""
        return self.ema.module if self.ema is not None else self.g

    def export(self, folder: Path, metrics: list[dict] | None = None, threshold: float | None = None) -> None:
        """Write the generator as a Hub-ready folder (main process only), ``threshold`` folded in."""
        if not self.accelerator.is_main_process:
            return
        model = self.accelerator.unwrap_model(self.scored_model(), keep_torch_compile=False)
        if threshold not in (None, 0.5):  # the validation split's best: 0.5 means it wherever the model goes
            model = copy.deepcopy(model)
            fold_threshold(model, threshold)
        cfg = self.cfg
        summary = cfg.card_summary(self.data_path, self.train_set, self.state.step, threshold)
        save_pretrained(
            model,
            folder,
            task=cfg.task,
            base_model=None if cfg.mode == "pretrain" or (cfg.model or "").startswith("random:") else cfg.model,
            recipe=cfg.recipe,
            metrics=metrics or [],
            metrics_source=f"emzoo {cfg.mode} run in {self.out}",
            train_summary=summary,
            zoo_name=cfg.extra.get("zoo_name"),
            # what the data pipeline did to the inputs, so predict does the same
            remove_outliers=bool(getattr(getattr(self.train_set, "recipe", None), "remove_outliers", False)),
            **{name: share or None for name, share in cfg.augmentations().items()},
        )

    # ---------------------------------------------------------------- loop
    def _log_row(self, row: dict) -> None:
        self.state.history.append(row)
        if self.accelerator.is_main_process:
            run_folder.append_metrics(self.out, row)
        if self.cfg.report_to:
            self.accelerator.log({k: v for k, v in row.items() if isinstance(v, (int, float))}, step=row["step"])

    def _write_run_file(self) -> None:
        if not self.accelerator.is_main_process:
            return
        record = {
            "config": asdict(self.cfg),
            "mixed_precision": self.mixed_precision,
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
        run_folder.write_run_file(self.out, record)

    def train(self) -> dict:
        from tqdm.auto import tqdm

        cfg, acc, state = self.cfg, self.accelerator, self.state
        self._write_run_file()
        if cfg.report_to:
            acc.init_trackers(
                "emzoo", config={k: v for k, v in asdict(cfg).items() if isinstance(v, (int, float, str))}
            )
        bar = tqdm(
            total=self.total_steps,
            initial=state.step,
            desc=f"{cfg.mode} {cfg.task}",
            disable=not (cfg.progress and acc.is_local_main_process),
            unit="step",
        )
        every = cfg.checkpointing_steps
        metric_name = self.objective.selection[0]
        start = time.perf_counter()
        seconds_before = state.seconds
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
                    for scheduler in self.schedulers:
                        scheduler.step()
                    if self.ema is not None:
                        self.ema.update(acc.unwrap_model(self.g))
                    state.seconds = seconds_before + time.perf_counter() - start
                    bar.update(1)
                    if cfg.max_minutes and time_is_up(acc, state, cfg.max_minutes, bar):
                        self.total_steps = state.step
                    if state.step % 10 == 0 or state.step == 1:  # the only host syncs of the loop
                        losses = {k: float(v) for k, v in losses.items()}
                        bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()})
                        self._log_row({"step": state.step, "epoch": state.epoch, "split": "train", **losses})
                    if state.step in cfg.test_at_steps:
                        self._log_row(
                            {
                                "step": state.step,
                                "epoch": state.epoch,
                                "split": "test",
                                **self.evaluate(self.test_loader, self.scored_model(), calibrate_on=self.val_loader),
                            }
                        )
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
            raise ConfigError(
                f"batch_size {cfg.batch_size}: out of memory at image_size={cfg.image_size}; lower `batch_size` or "
                f"`image_size` (last checkpoint: {latest_checkpoint(self.out)}; resume with "
                "resume_from_checkpoint='latest')"
            ) from None
        bar.close()
        elapsed = time.perf_counter() - start
        result = self._finish(metric_name, elapsed)
        if cfg.report_to:
            acc.end_training()
        return result

    def _validate(self, metric_name: str) -> None:
        state = self.state
        # one-logit segmentation at the split's best threshold: a head drifts (U-Net 2/44 at 0.5: 0.47 -> 0.06)
        metrics = self.evaluate(self.val_loader, self.scored_model(), calibrate_on=self.val_loader)
        self._log_row({"step": state.step, "epoch": state.epoch, "split": "val", **metrics})
        if metrics and self.objective.is_better(metrics[metric_name], state.best):
            state.best, state.best_step = metrics[metric_name], state.step
            self.export(self.out / MODEL_DIR, threshold=metrics.get("threshold"))
        self.accelerator.wait_for_everyone()

    def _finish(self, metric_name: str, elapsed: float) -> dict:
        """Test the best model on the held-out split, fill its card, draw the curves."""
        cfg, acc = self.cfg, self.accelerator
        acc.wait_for_everyone()
        test_metrics: dict[str, float] = {}
        try:
            test_set = load_dataset(self.data_path, cfg.task, "test", **self.data_args)
        except EmzooError as e:
            _log.warning("no test split evaluated: %s", e)
            test_set = None
        best = load(self.out / MODEL_DIR, verify=False).to(acc.device)
        best.to(memory_format=torch.channels_last if cfg.channels_last else torch.contiguous_format)
        if test_set is not None:
            test_loader = acc.prepare_data_loader(loader_for(test_set, cfg, False))
            test_metrics = self.evaluate(test_loader, best)
        dataset_name = f"{Path(str(self.data_path)).name} ({self.train_set.layout})"
        card_metrics = [
            {"name": k, "value": v, "dataset": dataset_name, "split": "test"} for k, v in test_metrics.items()
        ]
        if acc.is_main_process:
            best_model = best.cpu()
            best_model.emzoo_cfg.pop("source", None)
            save_pretrained(best_model, self.out / MODEL_DIR, metrics=card_metrics)
            run_folder.plot_history(self.state.history, self.out / "loss_curve.png", title=f"{cfg.mode} {cfg.task}")
        weights_hash = state_hash(acc.unwrap_model(self.g, keep_torch_compile=False))
        result = {
            "rank_weight_hashes": gather_object([weights_hash]),  # equal on every rank when in sync
            "steps": self.state.step,
            "epochs": self.state.epoch,
            "best_val": {metric_name: self.state.best, "step": self.state.best_step},
            "test": test_metrics,
            "train_seconds": round(elapsed, 1),
            "run_train_seconds": round(self.state.seconds, 1),  # summed over resumed invocations
            "model_dir": str(self.out / MODEL_DIR),
        }
        result["test_at_steps"] = [r for r in self.state.history if r["split"] == "test"]
        if acc.is_main_process:
            (self.out / RESULT_FILE).write_text(json.dumps(result, indent=2))
            if not cfg.keep_checkpoints:
                shutil.rmtree(self.out / CHECKPOINTS, ignore_errors=True)
        acc.wait_for_everyone()
        return result


def run(cfg: TrainConfig) -> dict:
    return Trainer(cfg).train()
