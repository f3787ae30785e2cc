"""`emzoo adapt` against the shipped denoiser and the classical baselines, under realistic noise.

Per modality, the first N held-out test scenes of the corpus the shipped denoisers trained on
(noise-free images, never trained on) are recorded with `emzoo.data.noise.realistic_noise`:
Poisson dose, read noise, charge sharing that correlates horizontal neighbours 0.5 (camera) or
the fast-scan bandwidth plus scan-line offsets (STEM). N = 16 images of 256^2 make the pixels of
one 1024^2 micrograph. Scored by PSNR / SSIM against the noise-free image (after the
least-squares gain/offset fit of `bench_quality.py`, every method alike):

- the noisy input; the best Gaussian and BM3D (parameters chosen on these test images);
- the shipped denoiser as it is (``--denoisers``: these zoo names or folders instead, e.g. a build
  run's candidate; ``--no-adapt``: only them and the baselines, the same noisy images drawn);
- `emzoo.adapt` n2v on the single noisy images, for `--minutes` on this machine's CPU;
- with a frame series (the same dose over `--frames` frames): n2n on the frames, and n2v on their
  mean; every method is scored on the series' mean;
- the convergence of n2v from the shipped weights vs from random init at 0.5, 1, 2 and 5 minutes
  (`--curve-modality`), drawn to docs/adapt_convergence.png.

Writes docs/bench_adapt.json and docs/bench_adapt.md.

    .venv/bin/python scripts/bench_adapt.py [--minutes 3] [--modalities hrtem haadf ...]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_quality import _mean, classical, psnr_ssim

import emzoo
from emzoo.data.corpus import MODALITIES, MODALITY_CYCLE, simulate_sample
from emzoo.data.noise import realistic_noise
from emzoo.zoo import RECIPES, ZOO

SHIPPED = "unet-4-424-emsim-denoise"
CURVE_MINUTES = (0.5, 1.0, 2.0, 5.0)


def test_scenes(modality: str, n: int) -> list[np.ndarray]:
    """The noise-free images of the first ``n`` test scenes of ``modality`` in the denoisers' corpus."""
    corpus = dict(RECIPES["emsim-denoise"].corpus)
    indices = [i for i in range(8 * n) if MODALITY_CYCLE[i % len(MODALITY_CYCLE)] == modality][:n]
    return [simulate_sample(0, "test", i, 256, corpus["version"])["clean"].astype(np.float64) for i in indices]


def score(results: list[np.ndarray], cleans: list[np.ndarray]) -> dict:
    return _mean([psnr_ssim(np.asarray(r, np.float64), c) for r, c in zip(results, cleans)])


def adapted_scores(model, inputs, evaluate_on, cleans, minutes, method, work: Path, tag: str) -> tuple[dict, dict]:
    start = time.perf_counter()
    adapted = emzoo.adapt(model, inputs, output_dir=work / tag, minutes=minutes, method=method, progress=False)
    wall = time.perf_counter() - start
    info = adapted.emzoo_cfg["adaptation"]
    results = [emzoo.predict(adapted, x) for x in evaluate_on]
    return score(results, cleans), {"wall_seconds": round(wall, 1), "steps": info["steps"]}


def bench_modality(modality: str, args, work: Path, rng: np.random.Generator) -> list[dict]:
    cleans = test_scenes(modality, args.n_images)
    singles = [realistic_noise(c, modality, rng)[0] for c in cleans]
    series = [realistic_noise(c, modality, rng, frames=args.frames) for c in cleans]
    means = [s.mean(0) for s in series]
    denoisers = {name: emzoo.load(name) for name in args.denoisers}
    rows = []
    recordings = [("single", singles)]
    if modality in args.n2n_modalities:
        recordings.append((f"{args.frames}-frame series (mean)", means))
    for recording, inputs in recordings:
        base = {"modality": modality, "recording": recording, "n": len(cleans)}
        pairs = [(x.astype(np.float64), c) for x, c in zip(inputs, cleans)]
        rows.append({**base, "method": "noisy input", **score(inputs, cleans)})
        for method, (key, scores) in classical("denoise", pairs, True).items():
            rows.append({**base, "method": method, "parameters": key, **_mean(scores)})
        for name, model in denoisers.items():
            label = f"{name} (shipped)" if name in ZOO else name
            rows.append({**base, "method": label, **score([emzoo.predict(model, x) for x in inputs], cleans)})
        if args.no_adapt:
            continue
        tag = f"{modality}-{'single' if recording == 'single' else 'mean'}-n2v"
        quality, cost = adapted_scores(SHIPPED, inputs, inputs, cleans, args.minutes, "n2v", work, tag)
        rows.append({**base, "method": f"adapt n2v, {args.minutes:g} min", **quality, **cost})
        if recording != "single":
            tag = f"{modality}-series-n2n"
            quality, cost = adapted_scores(SHIPPED, series, means, cleans, args.minutes, "n2n", work, tag)
            rows.append({**base, "method": f"adapt n2n, {args.minutes:g} min", **quality, **cost})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def curve(modality: str, args, work: Path, rng: np.random.Generator) -> list[dict]:
    cleans = test_scenes(modality, args.n_images)
    singles = [realistic_noise(c, modality, rng)[0] for c in cleans]
    points = []
    for start in (SHIPPED, "random:emzoo_unet_4_424"):
        for minutes in CURVE_MINUTES:
            tag = f"curve-{start.replace(':', '-')}-{minutes:g}"
            quality, cost = adapted_scores(start, singles, singles, cleans, minutes, "n2v", work, tag)
            points.append({"start": start, "minutes": minutes, **quality, **cost})
            print(json.dumps(points[-1]), flush=True)
    return points


def plot(points: list[dict], modality: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for start, label in ((SHIPPED, "from the shipped denoiser"), ("random:emzoo_unet_4_424", "from random init")):
        pts = [p for p in points if p["start"] == start]
        ax.plot([p["minutes"] for p in pts], [p["psnr"] for p in pts], "o-", label=label)
    ax.set_xlabel("adaptation budget (minutes, 2 CPU cores)")
    ax.set_ylabel("PSNR vs noise-free (dB)")
    ax.set_title(f"emzoo adapt (n2v), U-Net 4/424, {modality}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def write_markdown(result: dict, path: Path) -> None:
    lines = [
        f"Measured by `scripts/bench_adapt.py` on {result['machine']} ({result['seconds']:.0f} s): per modality "
        f"{result['n_images']} held-out test scenes of 256^2 (1 Mpx, one 1024^2 micrograph's pixels), realistic noise; "
        "PSNR / SSIM against the noise-free image; adaptation budgets in wall minutes on this CPU.",
        "",
        "| Modality | Recording | Method | PSNR (dB) | SSIM | vs best classical (dB) | steps |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = result["rows"]
    for r in rows:
        same = [q for q in rows if q["modality"] == r["modality"] and q["recording"] == r["recording"]]
        best = max(q["psnr"] for q in same if q["method"] in ("best Gaussian", "BM3D"))
        gain = f"{r['psnr'] - best:+.2f}" if r["method"] not in ("best Gaussian", "BM3D", "noisy input") else ""
        lines.append(
            f"| {r['modality']} | {r['recording']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {gain} "
            f"| {r.get('steps', '')} |"
        )
    if result.get("curve"):
        lines += ["", f"n2v from the shipped weights vs from random init ({result['curve_modality']}):", ""]
        lines += ["| Minutes | from shipped (dB) | from random init (dB) | difference (dB) |", "|---|---|---|---|"]
        for minutes in CURVE_MINUTES:
            a = next(p for p in result["curve"] if p["minutes"] == minutes and p["start"] == SHIPPED)
            b = next(p for p in result["curve"] if p["minutes"] == minutes and p["start"] != SHIPPED)
            lines.append(f"| {minutes:g} | {a['psnr']:.2f} | {b['psnr']:.2f} | {a['psnr'] - b['psnr']:+.2f} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="adaptation budget per run")
    parser.add_argument("--modalities", nargs="*", default=list(MODALITIES))
    parser.add_argument("--n2n-modalities", nargs="*", default=["hrtem", "haadf"])
    parser.add_argument("--curve-modality", default="hrtem", help="'' to skip the convergence curve")
    parser.add_argument("--n-images", type=int, default=16)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--denoisers", nargs="+", default=[SHIPPED], help="zoo names or model folders to score")
    parser.add_argument("--no-adapt", action="store_true", help="only the denoisers and the classical baselines")
    parser.add_argument("--out", type=Path, default=Path("docs/bench_adapt.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    work = Path(tempfile.mkdtemp(prefix="emzoo-bench-adapt-"))
    start = time.perf_counter()
    try:
        rows = [row for modality in args.modalities for row in bench_modality(modality, args, work, rng)]
        points = curve(args.curve_modality, args, work, rng) if args.curve_modality and not args.no_adapt else []
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "seconds": time.perf_counter() - start,
        "n_images": args.n_images,
        "minutes": args.minutes,
        "rows": rows,
        "curve": points,
        "curve_modality": args.curve_modality,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    if points:
        plot(points, args.curve_modality, args.out.with_name("adapt_convergence.png"))
    write_markdown(result, args.out.with_suffix(".md"))
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
