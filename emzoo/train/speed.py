"""Measuring emzoo's own training step (the benchmarks time the real Trainer, not a copy)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from emzoo.hub import create_model
from emzoo.train.config import TrainConfig
from emzoo.train.trainer import Trainer


def bench_trainer(
    arch: str,
    mode: str,
    data: str | Path,
    batch_size: int = 16,
    image_size: int = 256,
    compile: str = "on",
    mixed_precision: str = "no",
) -> Trainer:
    """A Trainer set up as a user's run would be, writing into a throw-away folder."""
    out = Path(tempfile.mkdtemp(prefix="emzoo-bench-")) / "run"
    cfg = TrainConfig(
        mode=mode,
        arch=arch if mode == "pretrain" else None,
        model=f"random:{arch}" if mode == "finetune" else None,
        task="pretext" if mode == "pretrain" else "denoise",
        data=str(data),
        output_dir=str(out),
        batch_size=batch_size,
        image_size=image_size,
        max_steps=1000,
        compile=compile,
        mixed_precision=mixed_precision,
        progress=False,
    )
    return Trainer(cfg)


def trainer_step(trainer: Trainer) -> Callable[[torch.Tensor, torch.Tensor], dict]:
    step = trainer._gan_step if trainer.d is not None else trainer._supervised_step

    def run(x: torch.Tensor, y: torch.Tensor) -> dict:
        return step(*trainer._to_device({"image": x, "target": y}))

    return run


def images_per_second(step: Callable, x: torch.Tensor, y: torch.Tensor, steps: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        step(x, y)
    _sync()
    start = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    _sync()  # the step returns device tensors: wait for the GPU before reading the clock
    return x.shape[0] * steps / (time.perf_counter() - start)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def plain_step(arch: str, mode: str, lr: float = 2e-4, l1_lambda: float = 100.0, device: str = "cpu"):
    """The reference a benchmark compares with: eager, float32, NCHW, the same networks,
    optimisers and losses, a host sync (``.item()``) every step, as the paper's code does."""
    torch.manual_seed(0)
    g = create_model(arch).to(device)
    opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.5, 0.999))
    if mode == "finetune":

        def step(x, y):
            out = g(x)
            loss = F.l1_loss(out, y) + F.mse_loss(out, y)
            opt_g.zero_grad()
            loss.backward()
            opt_g.step()
            return {"loss": loss.item()}

        return step
    d = create_model("emzoo_patchgan").to(device)
    opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=(0.5, 0.999))

    def gan_step(x, y):
        fake = g(x)
        real_s, fake_s = d(torch.cat([x, y], 1)), d(torch.cat([x, fake.detach()], 1))
        loss_d = 0.5 * (F.mse_loss(real_s, torch.ones_like(real_s)) + F.mse_loss(fake_s, torch.zeros_like(fake_s)))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        for p in d.parameters():
            p.requires_grad_(False)
        score = d(torch.cat([x, fake], 1))
        loss_l1 = F.l1_loss(fake, y)
        loss_g = F.mse_loss(score, torch.ones_like(score)) + l1_lambda * loss_l1
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        for p in d.parameters():
            p.requires_grad_(True)
        return {"loss_l1": loss_l1.item()}

    return gan_step
