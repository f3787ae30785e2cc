"""``--mixed-precision auto``: bf16 only where it is measured to pay on this machine. A few
training steps of the generator run in float32 and under bf16 autocast from the same weights;
bf16 is kept when it is at least ``MIN_SPEEDUP`` faster and its losses stay within
``LOSS_RTOL`` of float32's. The decision is cached per machine, model and shape."""

from __future__ import annotations

import copy
import logging
import os
import time

import torch
from torch import nn

from emzoo.inference.precision import MIN_SPEEDUP, cached

_log = logging.getLogger("emzoo.train")
LOSS_RTOL = 0.05
STEPS = 3


def _steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> tuple[float, list[float]]:
    """Seconds per step (after one warm-up step) and the losses of ``STEPS`` Adam steps."""
    model = copy.deepcopy(model).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    losses = []
    start = 0.0
    for i in range(STEPS + 1):
        if i == 1:
            start = time.perf_counter()
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.l1_loss(model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / STEPS, losses[1:]


def measure(model: nn.Module, batch_size: int, image_size: int, device: torch.device) -> dict:
    """Time and losses of float32 vs bf16 steps of ``model`` on random images."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, model.in_chans, image_size, image_size, generator=g).to(device)
    y = torch.randn(batch_size, model.num_classes, image_size, image_size, generator=g).to(device)
    model = copy.deepcopy(model).to(device)  # the caller's model stays where it is
    runs: dict[bool, list] = {False: [], True: []}
    for _ in range(2):  # interleaved rounds, best of each: one-off start-up costs do not decide
        for bf16 in (False, True):
            runs[bf16].append(_steps(model, x, y, bf16=bf16))
    fp32_time, fp32_losses = min(runs[False])
    bf16_time, bf16_losses = min(runs[True])
    agree = all(abs(a - b) <= LOSS_RTOL * max(abs(a), 1e-6) for a, b in zip(fp32_losses, bf16_losses))
    speedup = fp32_time / max(bf16_time, 1e-9)
    return {
        "choice": "bf16" if speedup >= MIN_SPEEDUP and agree else "no",
        "speedup": round(speedup, 3),
        "losses_agree": agree,
    }


def choose_precision(requested: str, model: nn.Module, batch_size: int, image_size: int, cpu: bool = False) -> str:
    """``requested`` unless it is ``auto``; then the measured choice (cached). Several processes
    could measure differently, so a multi-process CPU run stays in float32."""
    if requested != "auto":
        return requested
    device = torch.device("cuda" if torch.cuda.is_available() and not cpu else "cpu")
    if device.type == "cpu" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return "no"
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "no"
    arch = getattr(model, "pretrained_cfg", {}).get("architecture", type(model).__name__)
    key = f"train|{arch}|{model.num_classes}|{batch_size}|{image_size}"
    result = cached(key, lambda: measure(model, batch_size, min(image_size, 256), device))
    _log.info(
        "mixed precision auto: %s (bf16 %.2fx float32, losses agree: %s)",
        result["choice"],
        result["speedup"],
        result["losses_agree"],
    )
    return result["choice"]
