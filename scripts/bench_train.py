"""Training-step images/s of emzoo's Trainer (channels_last + torch.compile on CPU) against a
plain eager float32 NCHW PyTorch step of the same networks and losses (what the paper's and
Pix2Pix's reference code do), for pretraining (Pix2Pix) and fine-tuning (L1 + L2), plus a short
loss-curve comparison to show convergence is unchanged.

    .venv/bin/python scripts/bench_train.py [--archs emzoo_unet_2_44,...] [--out docs/bench_train.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from emzoo.data import load_dataset
from emzoo.data.simulate import simulated
from emzoo.train.speed import bench_trainer, images_per_second, plain_step, trainer_step


def batches(data: Path, mode: str, batch_size: int, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    ds = load_dataset(data, "pretext" if mode == "pretrain" else "denoise", "train", image_size=256)
    out = []
    for b in range(n):
        items = [ds[(b * batch_size + i) % len(ds)] for i in range(batch_size)]
        out.append((torch.stack([s["image"] for s in items]), torch.stack([s["target"] for s in items])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="emzoo_unet_2_44,emzoo_unet_4_424,emzoo_hrnet_w18")
    parser.add_argument("--modes", default="pretrain,finetune")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    parser.add_argument("--curve-steps", type=int, default=12, help="steps of the loss-curve comparison (0: skip)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    data = simulated("denoise", n=48, size=256, progress=False)
    rows = []
    for mode in args.modes.split(","):
        data_batches = batches(data, mode, args.batch_size, max(args.curve_steps, 1))
        for arch in args.archs.split(","):
            x, y = data_batches[0]
            plain = images_per_second(plain_step(arch, mode), x, y, args.steps)
            torch.manual_seed(0)
            trainer = bench_trainer(arch, mode, data, batch_size=args.batch_size, compile="on")
            ours = images_per_second(trainer_step(trainer), x, y, args.steps, warmup=2)
            row = {
                "mode": mode,
                "arch": arch,
                "plain_img_s": round(plain, 2),
                "emzoo_img_s": round(ours, 2),
                "speedup": round(ours / plain, 2),
            }
            if args.curve_steps:
                key = "loss_l1" if mode == "pretrain" else "loss"
                ref, new = plain_step(arch, mode), trainer_step(bench_trainer(arch, mode, data, args.batch_size))
                curve_ref = [ref(bx, by)[key] for bx, by in data_batches[: args.curve_steps]]
                curve_new = [new(bx, by)[key] for bx, by in data_batches[: args.curve_steps]]
                row["curve_plain"] = [round(v, 4) for v in curve_ref]
                row["curve_emzoo"] = [round(v, 4) for v in curve_new]
                row["curve_max_rel_diff"] = round(
                    float(np.max(np.abs(np.array(curve_new) / np.array(curve_ref) - 1))), 4
                )
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{'mode':<9} {'arch':<18} {'plain img/s':>12} {'emzoo img/s':>12} {'speedup':>8} {'curve diff':>10}")
    for r in rows:
        diff = f"{100 * r['curve_max_rel_diff']:.1f}%" if "curve_max_rel_diff" in r else "-"
        speeds = f"{r['plain_img_s']:>12} {r['emzoo_img_s']:>12} {r['speedup']:>7}x"
        print(f"{r['mode']:<9} {r['arch']:<18} {speeds} {diff:>10}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"batch_size": args.batch_size, "image_size": 256, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
