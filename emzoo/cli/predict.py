"""``emzoo predict``: a model over files and folders. Outputs keep each input's relative path;
a file emzoo did not write is never replaced without ``--overwrite``; a rerun finishes exactly
what an interrupted one left undone."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np

from emzoo.errors import ConfigError, EmzooError


def _inputs(paths: list[str]) -> list[tuple[Path, Path]]:
    """(file, output name stem) pairs: a folder's files keep their path below it, and the
    extension joins the name where two inputs would otherwise share one (a.tif and a.png)."""
    from emzoo.io import IMAGE_SUFFIXES

    found: list[tuple[Path, Path]] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found += [
                (q, q.relative_to(p))
                for q in sorted(p.rglob("*"))
                if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES and not q.name.startswith(".")
            ]
        elif p.is_file():
            found.append((p, Path(p.name)))
        else:
            raise EmzooError(f"{raw}: no such file or folder")
    if not found:
        raise EmzooError(f"{', '.join(paths)}: no images found (PNG/TIFF/MRC/DM3/DM4/EMD/SER/NPY)")
    stems = [rel.with_suffix("") for _, rel in found]
    named = []
    for (path, rel), stem in zip(found, stems):
        if stems.count(stem) > 1:
            stem = rel.with_name(f"{rel.stem}_{rel.suffix.lstrip('.').lower()}")
        named.append((path, stem))
    if len({str(s).lower() for _, s in named}) < len(named):
        raise EmzooError(f"{', '.join(paths)}: two inputs would write the same outputs; predict them separately")
    return named


MANIFEST = ".emzoo-predict.json"  # the outputs emzoo wrote in a folder: what a rerun may replace or skip


def _outputs_for(stem: Path, task, args) -> list[Path]:
    paths = [stem.with_name(stem.name + ".tif")]
    if args.png:
        paths.append(stem.with_name(stem.name + ".png"))
    if task.analyses_particles(args.output):
        paths += [stem.with_name(stem.name + "_particles.csv"), stem.with_name(stem.name + "_sizes.png")]
    return paths


def _checked_output_dir(args, files: list[tuple[Path, Path]]) -> Path:
    """The output folder, refused when it is a file or the inputs' own folder."""
    out = Path(args.output_dir).resolve()
    if out.exists() and not out.is_dir():
        raise EmzooError(f"--output-dir {out}: is a file; expected a folder")
    for f, _ in files:
        if out == f.resolve().parent and not args.inputs_are_outputs_ok:
            raise EmzooError(
                f"--output-dir {out}: is where the inputs are; choose a separate folder (inputs stay untouched)"
            )
    for name in ("pixel_size", "min_area_nm2"):
        value = getattr(args, name)
        if value is not None and not 0 < value < float("inf"):
            raise ConfigError(f"--{name.replace('_', '-')} {value}: expected a positive number")
    return out


def _check_nothing_foreign(plan: list[tuple[Path, Path]], out: Path, ours: set[str], task, args) -> None:
    """Never replace a file emzoo did not write here, unless asked to."""
    for _, stem in plan:
        for target in _outputs_for(stem, task, args):
            if target.exists() and str(target.relative_to(out)) not in ours and not args.overwrite:
                raise EmzooError(
                    f"{target}: exists and was not written by emzoo predict; pass --overwrite or "
                    "choose another --output-dir (nothing was changed)"
                )


def _predict_file(predictor, path: Path, args) -> tuple[np.ndarray, list[np.ndarray], float | None]:
    """One file's result (a stack: every frame, stacked again), its frames' results, its pixel size."""
    from emzoo import io

    image, meta = io.read(path, frames=args.frames)
    frames = image if image.ndim == 3 else image[None]
    for k, frame in enumerate(frames):
        io.check_image(frame, f"{path} (frame {k})" if image.ndim == 3 else path)
    source_pixel = args.pixel_size or meta.get("pixel_size_nm")
    results = [predictor(frame, source_pixel) for frame in frames]
    return (np.stack(results) if image.ndim == 3 else results[0]), results, source_pixel


def _write_outputs(stem: Path, targets: list[Path], result, results, pixel, path: Path, args, task) -> dict | None:
    """The result TIFF (pixel size kept), the PNG preview, and for segmentation the particle
    table and size histogram; returns the particle summary."""
    from emzoo import io
    from emzoo.inference.particles import write_csv, write_histogram

    stem.parent.mkdir(parents=True, exist_ok=True)
    io.write(targets[0], result, {"pixel_size_nm": pixel})
    if args.png:
        io.write(targets[1], results[0])  # a stack's preview: its first frame
    if not task.analyses_particles(args.output):  # logits are not probabilities
        return None
    rows, summary = _particles(results, pixel, args)
    write_csv(stem.with_name(stem.name + "_particles.csv"), rows, pixel)
    write_histogram(stem.with_name(stem.name + "_sizes.png"), rows, pixel, title=path.name)
    return summary


def _cmd_predict(args) -> None:
    from tqdm.auto import tqdm

    from emzoo.fsutil import atomic_write_text
    from emzoo.hub import load
    from emzoo.inference.devices import check_device
    from emzoo.inference.predictor import Predictor, output_pixel_size

    files = _inputs(args.inputs)
    out = _checked_output_dir(args, files)
    model = load(args.model, device=check_device(args.device))
    predictor = Predictor(
        model,
        args.tile,
        args.overlap,
        args.batch_size,
        output=args.output,
        engine=args.engine,
        precision=args.precision,
    )  # checks every argument before any image is read
    task = predictor.task
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EmzooError(f"--output-dir {out}: cannot create it ({e.strerror})") from None
    manifest_path = out / MANIFEST
    ours = set(json.loads(manifest_path.read_text())) if manifest_path.is_file() else set()
    plan = [(path, out / stem) for path, stem in files]
    _check_nothing_foreign(plan, out, ours, task, args)
    skipped, written, done_before, summaries = [], 0, 0, {}
    for path, stem in tqdm(plan, desc="predict", unit="img", disable=args.quiet):
        targets = _outputs_for(stem, task, args)
        if not args.overwrite and all(str(t.relative_to(out)) in ours and t.is_file() for t in targets):
            done_before += 1  # finished by an earlier, interrupted run
            continue
        for tmp in stem.parent.glob(f".{glob.escape(stem.name[:64])}.*"):  # what an interrupted run left
            tmp.unlink(missing_ok=True)
        try:
            result, results, source_pixel = _predict_file(predictor, path, args)
        except EmzooError as e:
            if not args.skip_bad:
                raise
            skipped.append(str(e))
            continue
        pixel = output_pixel_size(task, source_pixel)
        summary = _write_outputs(stem, targets, result, results, pixel, path, args, task)
        if summary is not None:
            summaries[str(stem.relative_to(out))] = summary
        ours.update(str(t.relative_to(out)) for t in targets)
        atomic_write_text(manifest_path, json.dumps(sorted(ours)))
        written += 1
    report = {"written": written, "done_before": done_before, "skipped": skipped, "output_dir": str(out)}
    report["precision"] = predictor.precision
    if summaries:
        atomic_write_text(out / "particles_summary.json", json.dumps(summaries, indent=2))
        report["particles"] = summaries
    if skipped:
        atomic_write_text(out / "skipped.json", json.dumps(skipped, indent=2))
    print(json.dumps(report, indent=2))


def _particles(results: list, pixel: float | None, args) -> tuple[list[dict], dict]:
    """Particles of every frame (numbered on from frame to frame) and the summary: of the one
    image, or per frame for a stack."""
    from emzoo.inference.particles import analyze_particles

    rows, per_frame = [], []
    for k, result in enumerate(results):
        report = analyze_particles(
            result,
            pixel,
            min_area_nm2=args.min_area_nm2,
            split_touching=not args.no_split,
            exclude_border=args.exclude_border,
        )
        rows += [
            dict(r, particle=len(rows) + i + 1, **({"frame": k} if len(results) > 1 else {}))
            for i, r in enumerate(report.rows)
        ]
        per_frame.append(report.summary)
    return rows, per_frame[0] if len(per_frame) == 1 else {"frames": per_frame}


def add_commands(sub) -> None:
    p = sub.add_parser("predict", help="run a model over images or folders (tiled, any size)")
    p.add_argument("inputs", nargs="+", help="image files or folders (PNG/TIFF/MRC/DM3/DM4/EMD/SER/NPY)")
    p.add_argument("--model", required=True, help="zoo name, hf-hub:ORG/NAME, or a folder")
    p.add_argument("--output-dir", required=True, help="a separate folder for the results")
    p.add_argument("--tile", type=int, help="tile size in pixels (default from the receptive field; 0: whole image)")
    p.add_argument("--overlap", type=int, help="tile overlap in pixels (default from the receptive field)")
    p.add_argument("--batch-size", type=int, help="tiles per forward pass (default: up to 4, memory-bounded)")
    p.add_argument(
        "--engine",
        default="torch",
        choices=("torch", "onnxruntime"),
        help="onnxruntime: faster on CPU, exported once and cached",
    )
    p.add_argument("--output", default="auto", choices=("auto", "probability", "mask", "logits"))
    p.add_argument(
        "--frames",
        default="each",
        choices=("each", "mean"),
        help="stacks (MRC/TIFF/DM/EMD): predict each frame and write a stack (default), or their mean",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "float32", "bfloat16"),
        help="auto: bf16 where measured faster here and within 2%% of float32 for this model",
    )
    p.add_argument("--png", action="store_true", help="also write an 8-bit PNG preview")
    p.add_argument(
        "--pixel-size",
        type=float,
        help="nm per pixel (default: from the file); images outside the model's "
        "range are resampled to its scale and back",
    )
    p.add_argument("--min-area-nm2", type=float, help="smallest particle kept (default: 0.4 nm across)")
    p.add_argument("--exclude-border", action="store_true", help="drop particles cut by the image border")
    p.add_argument("--no-split", action="store_true", help="do not split touching particles (watershed)")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable files and report them")
    p.add_argument("--overwrite", action="store_true", help="replace existing files in --output-dir")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_predict, inputs_are_outputs_ok=False)
