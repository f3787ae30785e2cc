"""Measuring emzoo's own training step (the benchmarks time the real Trainer, not a copy)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

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
