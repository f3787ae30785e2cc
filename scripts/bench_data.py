"""Is the data loader ever the bottleneck? Images/s the loader delivers (256^2 crops from a
folder of 16-bit TIFFs, pretext corruption included, 2 workers) against images/s a training
step consumes (batch 16, CPU) for emzoo_unet_2_44 and emzoo_hrnet_w18.

    .venv/bin/python scripts/bench_data.py [--images 192] [--workers 2] [--out docs/bench_data.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from torch.utils.data import DataLoader

from emzoo.data import load_dataset
from emzoo.data.simulate import simulated
from emzoo.train.speed import bench_trainer, images_per_second, trainer_step


def make_tiff_folder(root: Path, n: int, size: int = 320) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        path = root / f"grid_{i % 4}" / f"patch_{i:05d}.tif"
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, rng.integers(0, 65535, size=(size, size), dtype=np.uint16))
    return root


def loader_rate(folder: Path, workers: int, batch: int, batches: int) -> float:
    ds = load_dataset(folder, "pretext", "train", image_size=256, val_fraction=0, test_fraction=0)
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    it = iter(loader)
    next(it)  # start the workers
    start = time.perf_counter()
    n = 0
    for _ in range(batches):
        try:
            n += next(it)["image"].shape[0]
        except StopIteration:
            it = iter(loader)
    return n / (time.perf_counter() - start)


def step_rate(arch: str, batch: int, steps: int) -> float:
    """Images/s consumed by emzoo's own fine-tuning step (channels_last + torch.compile)."""
    trainer = bench_trainer(arch, "finetune", simulated("denoise", n=48, size=256, progress=False), batch_size=batch)
    x, y = torch.randn(batch, 1, 256, 256), torch.randn(batch, 1, 256, 256)
    return images_per_second(trainer_step(trainer), x, y, steps, warmup=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_tiff_folder(Path(tmp), args.images)
        loader = loader_rate(folder, args.workers, args.batch_size, batches=args.images // args.batch_size)
    rows = []
    for arch in ("emzoo_unet_2_44", "emzoo_hrnet_w18"):
        consumed = step_rate(arch, args.batch_size, steps=3)
        rows.append(
            {"arch": arch, "step_images_per_s": round(consumed, 1), "loader_over_step": round(loader / consumed, 2)}
        )
    result = {"loader_images_per_s": round(loader, 1), "workers": args.workers, "models": rows}
    print(f"loader ({args.workers} workers, 16-bit TIFF, 256^2 crops + corruption): {loader:.1f} images/s")
    print(f"{'arch':<18} {'step images/s':>14} {'loader / step':>14}")
    for r in rows:
        print(f"{r['arch']:<18} {r['step_images_per_s']:>14} {r['loader_over_step']:>13}x")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
