"""One prepared GPU benchmark (at most ~8 minutes): plain fp32 eager PyTorch against emzoo, per
model, for inference (a 2048^2 and an 8192^2 micrograph) and training steps (pretraining and
fine-tuning), in images/s and megapixels/s, with model FLOP utilisation against the GPU's bf16
peak. Prints a table and writes JSON (default docs/bench_gpu.json).

    python scripts/bench_gpu.py                  # on the GPU machine
    python scripts/bench_gpu.py --smoke          # a tiny CPU run that checks the script works

Plain: ``model(x)`` on the whole image, float32, NCHW, ``torch.no_grad``; a float32 eager
training step with ``.item()`` every step. emzoo: ``emzoo.Predictor`` (BN folded, channels_last,
bf16 where within tolerance, tiles batched) and the Trainer's own step (bf16 autocast, no
per-step host sync, channels_last, optionally torch.compile).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

import emzoo
from emzoo.train.speed import bench_trainer, plain_step, trainer_step

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}  # dense
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "bench_gpu.json"


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeats: int, warmup: int = 1) -> float:
    """Seconds per call after ``warmup`` calls (device work included)."""
    for _ in range(warmup):
        fn()
    _sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync()
    return (time.perf_counter() - start) / repeats


def forward_flops(model: torch.nn.Module, size: int, device: str) -> float:
    """FLOPs of one forward pass on a size x size image (PyTorch's own counter)."""
    x = torch.zeros(1, model.in_chans, size, size, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return float(counter.get_total_flops())


def peak_flops(override: float | None) -> float | None:
    if override:
        return override * 1e12
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v * 1e12 for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def inference_rows(arch: str, sizes: list[int], device: str, repeats: int, peak: float | None) -> list[dict]:
    model = emzoo.create_model(arch).to(device).eval()
    rows = []
    for size in sizes:
        image = np.random.default_rng(0).normal(size=(size, size)).astype(np.float32)
        x = torch.from_numpy(image)[None, None].to(device)

        def plain(x: torch.Tensor = x) -> None:
            with torch.no_grad():
                model(x).cpu()

        predictor = emzoo.Predictor(model, precision="auto")
        plain_s = timed(plain, repeats)
        emzoo_s = timed(lambda predictor=predictor, image=image: predictor(image), repeats)
        flops = forward_flops(model, min(size, 2048), device) * (size / min(size, 2048)) ** 2
        rows.append(
            {
                "kind": "inference",
                "arch": arch,
                "size": size,
                "plain_s": round(plain_s, 4),
                "emzoo_s": round(emzoo_s, 4),
                "speedup": round(plain_s / emzoo_s, 2),
                "emzoo_mp_s": round(size * size / 1e6 / emzoo_s, 1),
                "precision": predictor.precision,
                "mfu": round(flops / emzoo_s / peak, 4) if peak else None,
            }
        )
        print(_line(rows[-1]), flush=True)
    return rows


def training_rows(arch: str, modes: list[str], batch: int, size: int, device: str, steps: int, peak, data) -> list:
    rows = []
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, size, size, generator=g).to(device)
    y = torch.randn(batch, 1, size, size, generator=g).to(device)
    flops_per_image = 3 * forward_flops(emzoo.create_model(arch).to(device), size, device)  # fwd + bwd ~ 3x fwd
    for mode in modes:
        ref = plain_step(arch, mode, device=device)
        plain_s = timed(lambda ref=ref: ref(x, y), steps)
        trainer = bench_trainer(arch, mode, data[mode], batch, size, compile="off", mixed_precision="auto")
        step = trainer_step(trainer)
        emzoo_s = timed(lambda step=step: step(x, y), steps, warmup=2)
        rows.append(
            {
                "kind": f"train-{mode}",
                "arch": arch,
                "size": size,
                "batch": batch,
                "plain_img_s": round(batch / plain_s, 1),
                "emzoo_img_s": round(batch / emzoo_s, 1),
                "speedup": round(plain_s / emzoo_s, 2),
                "precision": trainer.mixed_precision,
                "mfu": round(flops_per_image * batch / emzoo_s / peak, 4) if peak else None,
            }
        )
        print(_line(rows[-1]), flush=True)
    return rows


def _line(row: dict) -> str:
    if row["kind"] == "inference":
        return (
            f"{row['kind']:<15} {row['arch']:<22} {row['size']:>5}^2  plain {row['plain_s']:.3f}s  emzoo "
            f"{row['emzoo_s']:.3f}s ({row['emzoo_mp_s']} MP/s, {row['precision']})  x{row['speedup']}  MFU {row['mfu']}"
        )
    return (
        f"{row['kind']:<15} {row['arch']:<22} {row['size']:>5}^2  plain {row['plain_img_s']} img/s  emzoo "
        f"{row['emzoo_img_s']} img/s ({row['precision']})  x{row['speedup']}  MFU {row['mfu']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="emzoo_unet_4_424,emzoo_hrnet_w18")
    parser.add_argument("--sizes", default="2048,8192", help="inference image sides")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=256, help="training crop side")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--repeats", type=int, default=3, help="timed inference runs")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak (default: by name)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on any device: checks that the script runs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.smoke:
        args.archs, args.sizes, args.batch_size, args.image_size, args.steps, args.repeats = (
            "emzoo_unet_2_44",
            "64",
            2,
            32,
            1,
            1,
        )
    peak = peak_flops(args.peak_tflops)
    side = max(64, args.image_size)
    data = {
        "pretrain": emzoo.data.simulated("pretext", n=12, size=side, seed=0, progress=False),
        "finetune": emzoo.data.simulated("denoise", n=12, size=side, seed=0, progress=False),
    }
    rows = []
    for arch in args.archs.split(","):
        rows += inference_rows(arch, [int(s) for s in args.sizes.split(",")], device, args.repeats, peak)
        rows += training_rows(
            arch, ["pretrain", "finetune"], args.batch_size, args.image_size, device, args.steps, peak, data
        )
    report = {
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "peak_bf16_tflops": peak / 1e12 if peak else None,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
