"""What ``--mixed-precision auto`` (training) and ``--precision auto`` (inference) choose on this
machine, and why: bf16's measured speed-up over float32 and, for inference, how far bf16 moves
each shipped model's output (relative to its range). Writes docs/bench_precision.json.

    python scripts/bench_precision.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

import emzoo
from emzoo.inference.engines import fold_batchnorm
from emzoo.inference.precision import OUTPUT_RTOL, machine_id
from emzoo.train.precision import measure

OUT = Path(__file__).resolve().parents[1] / "docs" / "bench_precision.json"
TRAIN = (("emzoo_unet_2_44", 128, 8), ("emzoo_unet_4_424", 128, 8), ("emzoo_hrnet_w18_small", 128, 8))


def _seconds(fn, repeats: int = 3) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


@torch.inference_mode()
def inference_row(name: str, size: int = 1024) -> dict:
    model = emzoo.load(name)
    net = fold_batchnorm(model).to(memory_format=torch.channels_last)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 1, size, size)).astype(np.float32))

    def forward(bf16: bool) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return net(x.contiguous(memory_format=torch.channels_last)).float()

    fp32, bf16 = _seconds(lambda: forward(False)), _seconds(lambda: forward(True))
    ref, low = forward(False), forward(True)
    change = float((low - ref).abs().max()) / (float(ref.max() - ref.min()) or 1.0)
    chosen = emzoo.Predictor(model, precision="auto").precision
    return {
        "model": name,
        "size": size,
        "speedup": round(fp32 / bf16, 2),
        "output_change": round(change, 4),
        "auto": chosen,
    }


def main() -> None:
    report = {
        "machine": machine_id(),
        "torch": torch.__version__,
        "output_rtol": OUTPUT_RTOL,
        "train": [],
        "inference": [],
    }
    for arch, size, batch in TRAIN:
        result = measure(emzoo.create_model(arch), batch, size, torch.device("cpu"))
        report["train"].append({"arch": arch, "image_size": size, "batch": batch, **result})
        print(
            f"train     {arch:<24} bf16 {result['speedup']:.2f}x  "
            f"losses agree {result['losses_agree']}  -> {result['choice']}"
        )
    for entry in sorted(
        e.name for e in emzoo.ZOO.values() if e.shipped_folder is not None and not emzoo.tasks.get_task(e.task).pretext
    ):
        row = inference_row(entry)
        report["inference"].append(row)
        print(
            f"inference {entry:<36} bf16 {row['speedup']:.2f}x  "
            f"output change {row['output_change']:.3f}  -> {row['auto']}"
        )
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
