"""Tiled inference on this CPU: megapixels/s for 1024^2, 4096^2 and 8192^2 inputs (PyTorch and
ONNX Runtime engines), peak memory, tiled vs whole-image time and difference, and emzoo's predict
against a plain eager float32 NCHW whole-image forward. Each measurement runs in its own process
so peak memory is its own.

    .venv/bin/python scripts/bench_predict.py [--archs ...] [--sizes 1024,4096,8192] [--out docs/bench_predict.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch


def _model(arch: str):
    import emzoo

    torch.manual_seed(0)
    model = emzoo.create_model(arch)
    with torch.no_grad():  # BN statistics of a trained-like model
        model.train()
        model(torch.randn(2, 1, 128, 128))
    return model.eval()


def _timed(fn, repeats: int) -> float:
    """Best of ``repeats`` wall-clock runs (small images: one run is mostly noise)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _repeats(size: int) -> int:
    return 3 if size <= 1024 else 1


def _plain(arch: str, image: np.ndarray, row: dict) -> dict:
    """The reference: eager, float32, NCHW, autograd on, the whole image in one forward."""
    x = torch.from_numpy(image)[None, None]
    plain = _model(arch)
    plain(x[..., :256, :256])
    seconds = _timed(lambda: plain(x), _repeats(image.shape[0]))
    speedups = {"plain_seconds": round(seconds, 2), "speedup_vs_plain": round(seconds / row["seconds"], 2)}
    if "ort_seconds" in row:
        speedups["ort_speedup_vs_plain"] = round(seconds / row["ort_seconds"], 2)
    return speedups


def measure(arch: str, size: int, ort: bool = True) -> dict:
    """One (arch, size) measurement, in this process."""
    from emzoo.inference.predictor import predict

    torch.set_num_threads(2)
    model = _model(arch)
    image = np.random.default_rng(0).normal(size=(size, size)).astype(np.float32)
    predict(model, image[:256, :256])  # warm-up
    seconds = _timed(lambda: predict(model, image), _repeats(size))
    row = {"arch": arch, "size": size, "seconds": round(seconds, 2), "mp_per_s": round(size * size / 1e6 / seconds, 3)}
    row["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)  # torch engine only
    if ort:
        start = time.perf_counter()
        predict(model, image[:256, :256], engine="onnxruntime")  # exports once (cached), then warm
        row["ort_first_call_seconds"] = round(time.perf_counter() - start, 2)
        row["ort_seconds"] = round(_timed(lambda: predict(model, image, engine="onnxruntime"), _repeats(size)), 2)
        ort_out = predict(model, image, engine="onnxruntime") if size <= 4096 else None
        row["ort_mp_per_s"] = round(size * size / 1e6 / row["ort_seconds"], 3)
        if size <= 4096:
            ref = predict(model, image)
            row["ort_vs_torch_max_rel"] = float(np.abs(ort_out - ref).max() / max(1.0, np.abs(ref).max()))
    if size == 4096:  # tiling overhead: default tiles against one whole-image forward of the same pixels
        start = time.perf_counter()
        predict(model, image, tile=0)
        row["whole_seconds"] = round(time.perf_counter() - start, 2)
        row["tiling_overhead"] = round(seconds / row["whole_seconds"], 2)
        row.update(_plain(arch, image, row))
    if size == 1024:  # correctness with real tiling (the smallest valid tile >= 512); speed vs plain
        from emzoo.inference.tiling import RAMP, default_margin

        divisor = getattr(model, "size_divisor", 1)
        tile = -(-max(512, 2 * default_margin(model) + RAMP + divisor) // divisor) * divisor
        whole = predict(model, image, tile=0)
        diff = np.abs(whole - predict(model, image, tile=tile))
        row["check_tile"] = tile
        row["tiled_vs_whole_max_abs"] = float(diff.max())
        row["tiled_vs_whole_mean_abs"] = float(diff.mean())
        row["whole_output_std"] = float(whole.std())
        row.update(_plain(arch, image, row))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="emzoo_unet_2_44,emzoo_unet_4_424,emzoo_hrnet_w18")
    parser.add_argument("--sizes", default="1024,4096,8192")
    parser.add_argument("--one", nargs=2, metavar=("ARCH", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--no-ort", action="store_true", help="skip the ONNX Runtime engine")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), ort=not args.no_ort)))
        return
    rows = []
    for arch in args.archs.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            cmd = [sys.executable, __file__, "--one", arch, str(size)] + (["--no-ort"] if args.no_ort else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr[-2000:], file=sys.stderr)
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    by = {(r["arch"], r["size"]): r for r in rows}
    for arch in args.archs.split(","):
        if (arch, 1024) in by and (arch, 8192) in by:
            for key in ("seconds", "ort_seconds"):
                if key in by[(arch, 1024)] and key in by[(arch, 8192)]:
                    ratio = by[(arch, 8192)][key] / by[(arch, 1024)][key]
                    by[(arch, 8192)][key.replace("seconds", "time_ratio_vs_1024").lstrip("_")] = round(ratio, 1)
    head = ["arch", "size", "MP/s", "ORT MP/s", "peak GB", "tiling x", "vs plain", "ORT vs plain", "max diff"]
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        diff = r.get("tiled_vs_whole_max_abs")
        cells = [r["arch"], r["size"], r["mp_per_s"], r.get("ort_mp_per_s", "-"), r["peak_rss_gb"]]
        cells += [r.get("tiling_overhead", "-"), r.get("speedup_vs_plain", "-")]
        cells += [r.get("ort_speedup_vs_plain", "-"), "-" if diff is None else f"{diff:.1e}"]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    if args.out:  # rows already in the file for other (arch, size) pairs are kept
        keep = json.loads(args.out.read_text()) if args.out.is_file() else []
        fresh = {(r["arch"], r["size"]) for r in rows}
        merged = [r for r in keep if (r["arch"], r["size"]) not in fresh] + rows
        merged.sort(key=lambda r: (r["arch"], r["size"]))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(merged, indent=2))


if __name__ == "__main__":
    main()
