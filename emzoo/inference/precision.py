"""bf16 only where it is measured to pay on this machine. Speed is measured once per machine and
architecture and cached; accuracy is checked per model against float32, so a model whose outputs
bf16 would change beyond ``OUTPUT_RTOL`` keeps float32."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable

import torch
from torch import nn

from emzoo.fsutil import atomic_write_text, cache_root

MIN_SPEEDUP = 1.15  # bf16 must be at least this much faster to be chosen
OUTPUT_RTOL = 0.02  # largest bf16 - fp32 output difference, relative to the output's range
PRECISIONS = ("auto", "float32", "bfloat16")


def machine_id() -> str:
    """What decides bf16's speed here: the GPU, or the CPU's bf16 instructions and thread count."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        flags = ",".join(flag for flag in ("avx512_bf16", "amx_bf16", "avx512f") if flag in text)
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}[{flags}]x{torch.get_num_threads()}"


def cached(key: str, measure: Callable[[], dict]) -> dict:
    """``measure()``'s result for ``key``, measured once per machine and kept in emzoo's cache."""
    key = f"{machine_id()}|torch {torch.__version__}|{key}"
    path = cache_root() / "precision.json"
    try:
        known = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        known = {}
    if key not in known:
        known[key] = {**measure(), "machine": machine_id()}
        atomic_write_text(path, json.dumps(known, indent=1))
    return known[key]


def _seconds(run: Callable[[], object], repeats: int = 3) -> float:
    run()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


@torch.inference_mode()
def inference_precision(net: nn.Module, device: torch.device, size: int = 256) -> str:
    """``bfloat16`` where it is faster for this architecture on this machine and keeps this
    model's output within ``OUTPUT_RTOL`` of float32; else ``float32``."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "float32"
    x = torch.randn(1, net.in_chans, size, size, generator=torch.Generator().manual_seed(0)).to(device)

    def forward(bf16: bool) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return net(x).float()

    arch = getattr(net, "pretrained_cfg", {}).get("architecture", type(net).__name__)
    speed = cached(
        f"inference|{arch}|{size}",
        lambda: {"speedup": round(_seconds(lambda: forward(False)) / max(_seconds(lambda: forward(True)), 1e-9), 3)},
    )
    if speed["speedup"] < MIN_SPEEDUP:
        return "float32"
    ref, low = forward(False), forward(True)
    spread = float(ref.max() - ref.min()) or 1.0
    return "bfloat16" if float((low - ref).abs().max()) <= OUTPUT_RTOL * spread else "float32"
