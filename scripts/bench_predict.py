"""Tiled inference on this CPU: megapixels/s for 1024^2, 4096^2 and 8192^2 inputs, peak memory,
tiled vs whole-image time and difference, and emzoo's predict against a plain eager float32
NCHW whole-image forward. Each measurement runs in its own process so peak memory is its own.

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


def measure(arch: str, size: int) -> dict:
    """One (arch, size) measurement, in this process."""
    from emzoo.predict import predict

    torch.set_num_threads(2)
    model = _model(arch)
    image = np.random.default_rng(0).normal(size=(size, size)).astype(np.float32)
    predict(model, image[:256, :256])  # warm-up
    start = time.perf_counter()
    predict(model, image)
    seconds = time.perf_counter() - start
    row = {"arch": arch, "size": size, "seconds": round(seconds, 2), "mp_per_s": round(size * size / 1e6 / seconds, 3)}
    if size == 4096:  # tiling overhead: default tiles against one whole-image forward of the same pixels
        start = time.perf_counter()
        predict(model, image, tile=0)
        row["whole_seconds"] = round(time.perf_counter() - start, 2)
        row["tiling_overhead"] = round(seconds / row["whole_seconds"], 2)
    if size == 1024:  # correctness with real tiling (the smallest valid tile >= 512) and speed vs plain
        from emzoo.predict import RAMP, default_margin

        divisor = getattr(model, "size_divisor", 1)
        tile = -(-max(512, 2 * default_margin(model) + RAMP + divisor) // divisor) * divisor
        whole = predict(model, image, tile=0)
        diff = np.abs(whole - predict(model, image, tile=tile))
        row["check_tile"] = tile
        row["tiled_512_vs_whole_max_abs"] = float(diff.max())
        row["tiled_512_vs_whole_mean_abs"] = float(diff.mean())
        start = time.perf_counter()
        predict(model, image, tile=0)
        row["whole_seconds"] = round(time.perf_counter() - start, 2)
        x = torch.from_numpy(image)[None, None]
        plain = _model(arch)  # eager, float32, NCHW, autograd on: the reference code's forward
        plain(x[..., :256, :256])
        start = time.perf_counter()
        plain(x)
        row["plain_seconds"] = round(time.perf_counter() - start, 2)
        row["speedup_vs_plain_whole"] = round(row["plain_seconds"] / row["whole_seconds"], 2)
    row["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="emzoo_unet_2_44,emzoo_unet_4_424,emzoo_hrnet_w18")
    parser.add_argument("--sizes", default="1024,4096,8192")
    parser.add_argument("--one", nargs=2, metavar=("ARCH", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]))))
        return
    rows = []
    for arch in args.archs.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            proc = subprocess.run([sys.executable, __file__, "--one", arch, str(size)], capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr[-2000:], file=sys.stderr)
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    by = {(r["arch"], r["size"]): r for r in rows}
    for arch in args.archs.split(","):
        if (arch, 1024) in by and (arch, 8192) in by:
            ratio = by[(arch, 8192)]["seconds"] / by[(arch, 1024)]["seconds"]
            by[(arch, 8192)]["time_ratio_vs_1024"] = round(ratio, 1)
    print(f"\n{'arch':<18} {'size':>6} {'MP/s':>7} {'peak GB':>8} {'tiling x':>9} {'vs plain':>9} {'max diff':>9}")
    for r in rows:
        diff = r.get("tiled_512_vs_whole_max_abs")
        print(
            f"{r['arch']:<18} {r['size']:>6} {r['mp_per_s']:>7} {r['peak_rss_gb']:>8} "
            f"{r.get('tiling_overhead', '-'):>9} {r.get('speedup_vs_plain_whole', '-'):>9} "
            f"{'-' if diff is None else f'{diff:.1e}':>9}"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
