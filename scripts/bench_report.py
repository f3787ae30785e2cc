"""Render docs/bench_*.json (written by the bench scripts) as the README's markdown tables.

.venv/bin/python scripts/bench_report.py
"""

import json
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def load(name: str):
    path = DOCS / name
    return json.loads(path.read_text()) if path.is_file() else None


def main() -> None:
    train = load("bench_train.json")
    pretrain = load("bench_train_pretrain.json")  # pretraining rows, when run separately
    if train and pretrain:
        train["rows"] = pretrain["rows"] + [r for r in train["rows"] if r["mode"] != "pretrain"]
    if train:
        print(f"Training step, {train['image_size']}^2, batch {train['batch_size']} (`scripts/bench_train.py`):\n")
        print(
            "| Step | Network | plain eager fp32 NCHW (img/s) | emzoo (img/s) | speed-up | loss curve, max rel. diff |"
        )
        print("|---|---|---|---|---|---|")
        for r in train["rows"]:
            diff = f"{100 * r['curve_max_rel_diff']:.2f}%" if "curve_max_rel_diff" in r else "-"
            print(
                f"| {r['mode']} | `{r['arch']}` | {r['plain_img_s']} | {r['emzoo_img_s']} | {r['speedup']}x | {diff} |"
            )
        print()
    data = load("bench_data.json")
    if data:
        print(
            f"Data loader (`scripts/bench_data.py`): {data['loader_images_per_s']} images/s from 16-bit TIFFs "
            f"(256^2 crops, pretext corruption, {data['workers']} workers) against what emzoo's fine-tuning step "
            "consumes (batch 16):\n"
        )
        print("| Network | step consumes (img/s) | loader / step |")
        print("|---|---|---|")
        for r in data["models"]:
            print(f"| `{r['arch']}` | {r['step_images_per_s']} | {r['loader_over_step']}x |")
        print()
    rows = (load("bench_predict_unet.json") or []) + (load("bench_predict_hrnet.json") or [])
    if rows:
        _predict_table(rows)


def _predict_table(rows: list[dict]) -> None:
    print(
        "Inference, default tiles, PyTorch engine / ONNX Runtime engine (`scripts/bench_predict.py`; "
        "'vs plain': the plain eager fp32 NCHW whole-image forward's time over emzoo's):\n"
    )
    print(
        "| Network | Image | MP/s (torch / ORT) | peak RSS (GB) | tiled / whole-image time | vs plain (torch / ORT) "
        "| tiled vs whole at 1024^2: max / mean abs diff (output std) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        diff = ""
        if "tiled_vs_whole_max_abs" in r:
            diff = f"{r['tiled_vs_whole_max_abs']:.2g} / {r['tiled_vs_whole_mean_abs']:.2g}"
            diff += f" ({r['whole_output_std']:.2g})"
        ratio = f"{r['tiling_overhead']}x" if "tiling_overhead" in r else ""
        plain = f"{r['speedup_vs_plain']}x / {r.get('ort_speedup_vs_plain', '-')}x" if "speedup_vs_plain" in r else ""
        speed = f"{r['mp_per_s']} / {r.get('ort_mp_per_s', '-')}"
        print(f"| `{r['arch']}` | {r['size']}^2 | {speed} | {r['peak_rss_gb']} | {ratio} | {plain} | {diff} |")
    by = {(r["arch"], r["size"]): r for r in rows}
    for arch in sorted({r["arch"] for r in rows}):
        if (arch, 1024) in by and (arch, 8192) in by:
            small, large = by[(arch, 1024)], by[(arch, 8192)]
            ort = f", ONNX Runtime {large['ort_seconds'] / small['ort_seconds']:.0f}x" if "ort_seconds" in large else ""
            ratio = large["seconds"] / small["seconds"]
            text = f"8192^2 took {ratio:.0f}x the time of 1024^2 with PyTorch{ort} (64x the pixels)."
            print(f"\n`{arch}`: {text}", end="")
    print()


if __name__ == "__main__":
    main()
