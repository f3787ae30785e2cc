"""Quality of the shipped checkpoints on the held-out test split of the corpus each was trained on
(its own random streams, never seen in training), per modality, side by side with classical
baselines run on the same whole images.

- denoise: PSNR / SSIM against the noise-free image; baselines: the best Gaussian filter (sigma
  chosen on these test images themselves) and BM3D (the `bm3d` package, sigma chosen likewise).
- bg-removal: against the background-free image; baseline: the best of a Gaussian high-pass and a
  rolling ball, then the best Gaussian.
- super-res: against the 2x background-free image; baseline: bicubic of the best-Gaussian image.
- segment: Dice over each modality's images, particle count and mean diameter (scikit-image
  analysis of the prediction vs the true instances), and the area called particle on images
  without particles (crystal lattices, bare supports).

PSNR uses the target's range, after a least-squares gain/offset fit of each result to its target
(every method alike). Writes docs/quality.json and
docs/quality.md (the README's table).

    .venv/bin/python scripts/bench_quality.py [--per-modality 12] [--models NAME ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import emzoo
from emzoo import io
from emzoo.build import corpus_for
from emzoo.data.corpus import MODALITIES, SEGMENT_GROUP, records, seen_diameters_nm
from emzoo.inference.particles import analyze_particles, default_min_area_nm2
from emzoo.judge import fit_levels
from emzoo.tasks import get_task
from emzoo.zoo import RECIPES, ZOO

SIGMAS = (0.5, 0.8, 1.2, 1.8, 2.7, 4.0)
BM3D_FRACTIONS = (0.5, 1.0, 2.0)  # x the noise std estimated from the image


def psnr_ssim(result: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """PSNR and SSIM after a least-squares gain and offset fit of the result to the target (as in
    CARE's evaluation), the same for every method: levels an image carries no information about
    (detector offset, the background's mean) do not decide the score."""
    span = float(target.max() - target.min()) or 1.0
    result = fit_levels(result, target)
    return (
        float(peak_signal_noise_ratio(target, result, data_range=span)),
        float(structural_similarity(target, result, data_range=span)),
    )


def best_of(candidates: dict, pairs: list[tuple[np.ndarray, np.ndarray]], make) -> tuple[str, list]:
    """The candidate parameter with the best mean PSNR over the pairs (chosen on the test set)."""
    scored = {}
    for key, param in candidates.items():
        outs = [psnr_ssim(make(x, param), t) for x, t in pairs]
        scored[key] = outs
    key = max(scored, key=lambda k: np.mean([p for p, _ in scored[k]]))
    return key, scored[key]


def rolling_ball_background(image: np.ndarray) -> np.ndarray:
    from skimage.restoration import rolling_ball

    return rolling_ball(ndimage.gaussian_filter(image, 2), radius=max(8, image.shape[0] // 8))


def classical(task: str, pairs: list, with_bm3d: bool) -> dict:
    """The classical pipelines' scores, parameters chosen on these images."""
    gauss = {f"gaussian sigma {s}": s for s in SIGMAS}
    out = {}
    if task == "denoise":
        key, scores = best_of(gauss, pairs, lambda x, s: ndimage.gaussian_filter(x, s))
        out["best Gaussian"] = (key, scores)
        if with_bm3d:
            import bm3d
            from skimage.restoration import estimate_sigma

            def run_bm3d(x, f):
                lo, hi = x.min(), x.max()
                scaled = (x - lo) / (hi - lo + 1e-12)
                sigma = f * max(float(estimate_sigma(scaled)), 1e-3)
                return bm3d.bm3d(scaled, sigma_psd=sigma) * (hi - lo) + lo

            key, scores = best_of({f"BM3D {f} x estimated sigma": f for f in BM3D_FRACTIONS}, pairs, run_bm3d)
            out["BM3D"] = (key, scores)
    elif task == "bg-removal":
        removers = {
            f"high-pass {w}px": (lambda x, w=w: x - ndimage.gaussian_filter(x, w) + np.median(x)) for w in (8, 16, 32)
        }
        removers["rolling ball"] = lambda x: x - rolling_ball_background(x) + np.percentile(x, 1)
        combos = {f"{r} + gaussian {s}": (fn, s) for r, fn in removers.items() for s in SIGMAS[:4]}
        key, scores = best_of(combos, pairs, lambda x, p: ndimage.gaussian_filter(p[0](x), p[1]))
        out["background subtraction + best Gaussian"] = (key, scores)
    else:
        key, scores = best_of(
            gauss,
            pairs,
            lambda x, s: ndimage.zoom(ndimage.gaussian_filter(x, s), 2, order=3, grid_mode=True, mode="grid-mirror"),
        )
        out["best Gaussian, then bicubic 2x"] = (key, scores)
    return out


def restoration_rows(names: list[str], per_modality: int, with_bm3d: bool) -> list[dict]:
    rows = []
    tasks = sorted({ZOO[n].task for n in names if get_task(ZOO[n].task).target_folder})
    for task in tasks:
        corpus = corpus_for(RECIPES[f"emsim-{task}"])  # the test split of the corpus these models trained on
        for modality in MODALITIES:
            samples = records(corpus, split="test", modality=modality)[:per_modality]
            folder = corpus / "restore" / "test"
            data = [
                (
                    io.read(folder / "image" / f"{r['name']}.tif")[0].astype(np.float64),
                    io.read(folder / get_task(task).target_folder / f"{r['name']}.tif")[0].astype(np.float64),
                    r["pixel_size_nm"],
                )
                for r in samples
            ]
            pairs = [(x, t) for x, t, _ in data]
            identity = [psnr_ssim(x if task != "super-res" else ndimage.zoom(x, 2, order=3), t) for x, t in pairs]
            base = {"task": task, "modality": modality, "n": len(pairs)}
            rows.append({**base, "method": "input (identity / bicubic)", **_mean(identity)})
            for method, (key, scores) in classical(task, pairs, with_bm3d).items():
                rows.append({**base, "method": method, "parameters": key, **_mean(scores)})
            for name in (n for n in names if ZOO[n].task == task):
                model = emzoo.load(name)
                scores = [psnr_ssim(emzoo.predict(model, x, pixel_size=p).astype(np.float64), t) for x, t, p in data]
                rows.append({**base, "method": name, **_mean(scores)})
    return rows


def _mean(scores: list[tuple[float, float]]) -> dict:
    return {
        "psnr": round(float(np.mean([p for p, _ in scores])), 2),
        "ssim": round(float(np.mean([s for _, s in scores])), 4),
    }


def segmentation_rows(names: list[str], per_modality: int) -> list[dict]:
    rows = []
    for name in (n for n in names if ZOO[n].task == "segment"):
        model = emzoo.load(name)
        corpus = corpus_for(RECIPES[ZOO[name].recipe])  # the test split of its own training corpus
        group = "tem" if "hrtem" in name else "stem"
        for modality in (m for m, g in SEGMENT_GROUP.items() if g == group):
            samples = records(corpus, split="test", modality=modality)
            with_particles = [r for r in samples if seen_diameters_nm(r)][:per_modality]
            empty = [r for r in samples if not seen_diameters_nm(r)][:per_modality]
            tp = fp = fn = total_px = 0
            count_true = count_pred = 0
            diam_true, diam_pred, empty_area = [], [], []
            folder = corpus / "segment" / group / "test"
            for r in with_particles + empty:
                image = io.read(folder / "images" / f"{r['name']}.tif")[0]
                truth = io.read(folder / "instances" / f"{r['name']}.tif")[0].astype(int)
                prob = emzoo.predict(model, image, pixel_size=r["pixel_size_nm"])
                pred = analyze_particles(prob, r["pixel_size_nm"])
                mask = pred.labels > 0
                if not seen_diameters_nm(r):
                    empty_area.append(float(mask.mean()))
                    continue
                t = truth > 0
                total_px += t.size
                tp += int((mask & t).sum())
                fp += int((mask & ~t).sum())
                fn += int((~mask & t).sum())
                ids, areas = np.unique(truth[truth > 0], return_counts=True)
                keep = areas * r["pixel_size_nm"] ** 2 >= default_min_area_nm2()
                count_true += int(keep.sum())
                diam_true += list(2 * np.sqrt(areas[keep] / np.pi) * r["pixel_size_nm"])
                count_pred += pred.summary["count"]
                diam_pred += [row["equivalent_diameter_nm"] for row in pred.rows]
            rows.append(
                {
                    "task": "segment",
                    "modality": modality,
                    "method": name,
                    "n_particle_images": len(with_particles),
                    "n_empty_images": len(empty),
                    "dice": round(2 * tp / max(2 * tp + fp + fn, 1), 4),
                    "count_true": count_true,
                    "count_pred": count_pred,
                    "count_error": round((count_pred - count_true) / max(count_true, 1), 4),
                    "mean_diameter_true_nm": round(float(np.mean(diam_true)), 4) if diam_true else None,
                    "mean_diameter_pred_nm": round(float(np.mean(diam_pred)), 4) if diam_pred else None,
                    "diameter_error": round(float(np.mean(diam_pred) / np.mean(diam_true) - 1), 4)
                    if diam_pred and diam_true
                    else None,
                    "empty_area_called_particle": round(float(np.mean(empty_area)), 5) if empty_area else None,
                }
            )
            truth_px = tp + fn
            rows.append(
                {
                    "task": "segment",
                    "modality": modality,
                    "method": "all foreground (trivial)",
                    "dice": round(2 * truth_px / max(truth_px + total_px, 1), 4),
                }
            )
    return rows


def write_markdown(result: dict, path: Path) -> None:
    lines = [
        f"Measured by `scripts/bench_quality.py` on {result['machine']} ({result['seconds']:.0f} s): "
        f"{result['per_modality']} held-out corpus test images per modality, whole 256^2 frames.",
        "",
    ]
    restoration = [r for r in result["rows"] if r["task"] != "segment"]
    if restoration:
        lines += [
            "| Task | Modality | Method | PSNR (dB) | SSIM | gain over best classical (dB) |",
            "|---|---|---|---|---|---|",
        ]
        for r in restoration:
            best = max(
                (
                    q["psnr"]
                    for q in restoration
                    if q["task"] == r["task"]
                    and q["modality"] == r["modality"]
                    and not q["method"].startswith(("input", "unet", "hrnet"))
                ),
                default=None,
            )
            gain = f"{r['psnr'] - best:+.2f}" if best is not None and r["method"].startswith(("unet", "hrnet")) else ""
            lines.append(
                f"| {r['task']} | {r['modality']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {gain} |"
            )
        lines.append("")
    seg = [r for r in result["rows"] if r["task"] == "segment"]
    if seg:
        lines += [
            "| Model | Modality | Dice | particles (true / found) | count error | mean diameter true / found (nm) "
            "| diameter error | area called particle on particle-free images |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in seg:
            if "trivial" in r["method"]:
                lines.append(f"| {r['method']} | {r['modality']} | {r['dice']:.3f} | | | | | |")
                continue
            diam = f"{r['mean_diameter_true_nm']} / {r['mean_diameter_pred_nm']}"
            empty = (
                f"{100 * r['empty_area_called_particle']:.2f}%" if r["empty_area_called_particle"] is not None else ""
            )
            derr = f"{100 * r['diameter_error']:+.1f}%" if r["diameter_error"] is not None else ""
            lines.append(
                f"| {r['method']} | {r['modality']} | {r['dice']:.3f} | {r['count_true']} / {r['count_pred']} "
                f"| {100 * r['count_error']:+.1f}% | {diam} | {derr} | {empty} |"
            )
    path.write_text("\n".join(lines) + "\n")


def _table_order(row: dict) -> tuple:
    """Per task and modality: the input and classical baselines (in the order measured), then the models."""
    model = row["method"] in ZOO
    return row["task"], MODALITIES.index(row["modality"]), model, row["method"] if model else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-modality", type=int, default=12, help="test images per modality")
    parser.add_argument("--models", nargs="*", help="shipped names (default: every shipped fine-tuned model)")
    parser.add_argument("--no-bm3d", action="store_true", help="skip BM3D (the slow baseline)")
    parser.add_argument("--out", type=Path, default=Path("docs/quality.json"))
    parser.add_argument(
        "--append", action="store_true", help="replace only these models' rows (and their tasks' baselines) in --out"
    )
    args = parser.parse_args()
    names = args.models or [n for n, e in sorted(ZOO.items()) if e.shipped_folder is not None and e.task != "pretext"]
    start = time.perf_counter()
    rows = segmentation_rows(names, args.per_modality)
    rows += restoration_rows(names, args.per_modality, not args.no_bm3d)
    import platform

    import torch

    seconds = time.perf_counter() - start
    if args.append and args.out.is_file():  # same images (same --per-modality): rows are comparable
        before = json.loads(args.out.read_text())
        if before["per_modality"] != args.per_modality:
            parser.error(f"--append: {args.out} was measured with --per-modality {before['per_modality']}")
        fresh = {(r["task"], r["modality"], r["method"]) for r in rows}
        rows = [r for r in before["rows"] if (r["task"], r["modality"], r["method"]) not in fresh] + rows
        rows = list({(r["task"], r["modality"], r["method"]): r for r in rows}.values())  # a baseline once
        names = sorted(set(before["models"]) | set(names))
        seconds += before["seconds"]
    result = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "per_modality": args.per_modality,
        "seconds": seconds,
        "models": names,
        "rows": sorted(rows, key=_table_order),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    write_markdown(result, args.out.with_suffix(".md"))
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
