"""Print the README's table of the checkpoints that ship with emzoo, from their own folders:
task, modality, pixel-size range, size, held-out test metrics and what training them cost.

    .venv/bin/python scripts/zoo_table.py
"""

import json
import math

from safetensors import safe_open

from emzoo.zoo import ZOO


def n_params(path) -> int:
    with safe_open(str(path), "pt") as f:
        return sum(
            math.prod(f.get_slice(k).get_shape()) for k in f.keys() if "running" not in k and "num_batches" not in k
        )


print(
    "| Name | Task | Trained on (modality, nm/px) | Parameters | Weights "
    "| Build's test metrics (held-out corpus at the size of the checkpoint's latest run: 128^2 crops, or the "
    "whole 256^2 frames segmentation and restoration now train on (super-resolution: their 512^2 targets); "
    "whole_*: whole 256^2 frames, for segmentation each also despiked and, in runs since the smooth-background "
    "recipes, on a smooth background too) "
    "| Training cost |"
)
print("|---|---|---|---|---|---|---|")
for name, entry in sorted(ZOO.items(), key=lambda kv: (kv[1].task != "pretext", kv[1].task, kv[0])):
    folder = entry.shipped_folder
    if folder is None:
        continue
    config = json.loads((folder / "config.json").read_text())
    meta = config["emzoo"]
    lo, hi = meta["pixel_size_nm"]
    size = (folder / "model.safetensors").stat().st_size
    size_text = f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 2**10:.0f} kB"
    metrics = ", ".join(f"{m['name']} {m['value']:.3f}" for m in meta.get("metrics", []))
    cost = meta.get("train_cost", {})
    where = f"{cost.get('cpu_cores')} CPU cores" + (f" + {cost['gpu']}" if cost.get("gpu") else "")
    print(
        f"| `{name}` | {entry.task} | {meta.get('modality')}, {lo:g}-{hi:g} | "
        f"{n_params(folder / 'model.safetensors'):,} | {size_text} {meta.get('weights_dtype')} "
        f"| {metrics} | {cost.get('wall_seconds', 0) / 60:.1f} min, {cost.get('steps')} steps, {where} |"
    )
