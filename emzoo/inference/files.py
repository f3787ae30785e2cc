"""Prediction over files and folders (``emzoo predict`` is this function and a print).

Outputs keep each input's path below its folder. Nothing is lost: an output never lands on an
input or inside an input folder, a file emzoo did not write is never replaced without
``overwrite``, and every image's outputs are recorded in the folder's manifest as *pending*
before they are written and *done* after, so a run killed at any moment is finished by a rerun
(pending outputs are redone). Two runs into one folder take turns on the manifest (a lock file)
and neither loses the other's records. Per image the manifest keeps the particle summary and the
working scale, so ``particles_summary.json`` always covers every image done, resumed or not.
"""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from emzoo import io
from emzoo.errors import ConfigError, DataError, EmzooError
from emzoo.fsutil import atomic_write_text
from emzoo.inference.particles import analyze_particles, write_csv, write_histogram
from emzoo.inference.predictor import Predictor, output_pixel_size
from emzoo.inference.scale import check_pixel_size
from emzoo.io import IMAGE_SUFFIXES

MANIFEST = ".emzoo-predict.json"  # what emzoo wrote here: image -> {"state", "outputs", "summary", "scale"}
LOCK = ".emzoo-predict.lock"
SUMMARY, SKIPPED = "particles_summary.json", "skipped.json"
FOLDER_FILES = "<folder>"  # the manifest's record of the folder-wide files


@dataclass
class FileOptions:
    """How each file is read, what is written and how particles are measured."""

    pixel_size: float | None = None  # nm/px for files that do not say (a file's own value wins if None)
    frames: str = "each"  # stacks: each frame (a stack out) or their mean
    png: bool = False
    min_area_nm2: float | None = None
    split_touching: bool = True
    exclude_border: bool = False
    overwrite: bool = False
    skip_bad: bool = False
    scale: float | str = "auto"


@dataclass
class FilesReport:
    output_dir: Path
    written: list[str] = field(default_factory=list)
    done_before: int = 0
    skipped: list[str] = field(default_factory=list)
    particles: dict = field(default_factory=dict)
    scales: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {
            "written": len(self.written),
            "done_before": self.done_before,
            "skipped": self.skipped,
            "output_dir": str(self.output_dir),
            "scale": self.scales,
        }
        if self.particles:
            out["particles"] = self.particles
        return out


def find_inputs(paths: list[str | Path]) -> list[tuple[Path, Path]]:
    """(file, output name stem) pairs: a folder's files keep their path below it, and the
    extension joins the name where two inputs would otherwise share one (a.tif and a.png)."""
    found: list[tuple[Path, Path]] = []
    for raw in paths:
        p = Path(raw)
        if str(raw) == "":
            raise DataError("input '': expected an image file or a folder")
        if p.is_dir():
            found += [
                (q, q.relative_to(p))
                for q in sorted(p.rglob("*"))
                if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES and not q.name.startswith(".")
            ]
        elif p.exists() and not p.is_file():
            raise DataError(f"{raw}: not a regular file (a device, FIFO or socket); expected an image file")
        elif p.is_file():
            found.append((p, Path(p.name)))
        else:
            raise DataError(f"{raw}: no such file or folder")
    if not found:
        raise DataError(f"{', '.join(map(str, paths))}: no images found (PNG/TIFF/MRC/DM3/DM4/EMD/SER/NPY)")
    stems = [rel.with_suffix("") for _, rel in found]
    named = []
    for (path, rel), stem in zip(found, stems):
        if stems.count(stem) > 1:
            stem = rel.with_name(f"{rel.stem}_{rel.suffix.lstrip('.').lower()}")
        named.append((path, stem))
    if len({str(s).lower() for _, s in named}) < len(named):
        raise DataError(f"{', '.join(map(str, paths))}: two inputs would write the same outputs; predict them apart")
    return named


def check_output_dir(output_dir: str | Path, files: list[tuple[Path, Path]]) -> Path:
    """The output folder: not a file, not an input folder nor one that holds inputs."""
    if str(output_dir) == "":
        raise ConfigError("output_dir '': expected a folder for the results")
    out = Path(output_dir).resolve()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output_dir {out}: is a file; expected a folder")
    for f, _ in files:
        source = f.resolve()
        if out == source.parent or out in source.parents:
            raise ConfigError(
                f"output_dir {out}: holds the input {f}; choose a folder outside the inputs (inputs stay untouched)"
            )
    return out


def _outputs_for(stem: Path, analyse: bool, png: bool) -> list[Path]:
    paths = [stem.with_name(stem.name + ".tif")]
    if png:
        paths.append(stem.with_name(stem.name + ".png"))
    if analyse:
        paths += [stem.with_name(stem.name + "_particles.csv"), stem.with_name(stem.name + "_sizes.png")]
    return paths


@contextmanager
def _manifest(out: Path) -> Iterator[dict]:
    """The folder's manifest, read and written under an exclusive lock (other runs wait)."""
    with open(out / LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            path = out / MANIFEST
            records = json.loads(path.read_text()) if path.is_file() else {}
            if isinstance(records, list):  # written by emzoo < 0.2: a list of finished outputs
                records = {name: {"state": "done", "outputs": [name]} for name in records}
            yield records
            atomic_write_text(path, json.dumps(records, indent=1, sort_keys=True))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _owned(records: dict) -> dict[str, str]:
    """Every output path emzoo wrote or began to write here -> its image's state."""
    return {o: r["state"] for r in records.values() for o in r.get("outputs", [])}


def _check_nothing_foreign(plan, out: Path, analyse: bool, options: FileOptions) -> None:
    """Never replace a file emzoo did not write here (outputs, summary, skip list) unless asked."""
    with _manifest(out) as records:
        owned = _owned(records)
    extra = ([out / SUMMARY] if analyse else []) + ([out / SKIPPED] if options.skip_bad else [])
    for target in [t for _, stem in plan for t in _outputs_for(stem, analyse, options.png)] + extra:
        if target.exists() and str(target.relative_to(out)) not in owned and not options.overwrite:
            raise DataError(
                f"{target}: exists and was not written by emzoo predict; pass overwrite=True "
                "or choose another output folder (nothing was changed)"
            )


def _write_listing(out: Path, name: str, content) -> None:
    """particles_summary.json / skipped.json, recorded as emzoo's own."""
    with _manifest(out) as records:
        own = records.setdefault(FOLDER_FILES, {"state": "done", "outputs": []})
        if name not in own["outputs"]:
            own["outputs"].append(name)
    atomic_write_text(out / name, json.dumps(content, indent=2))


def _leftover_temps(stem: Path) -> list[Path]:
    """Hidden temp files of an interrupted atomic write of this stem's outputs (and nothing else)."""
    pattern = re.compile(rf"^\.{re.escape(stem.name[:64])}\.[a-z0-9_]{{8}}\.(tif|png|csv)$")
    return [p for p in stem.parent.glob(".*") if pattern.match(p.name)] if stem.parent.is_dir() else []


def _predict_one(predictor: Predictor, path: Path, options: FileOptions):
    image, meta = io.read(path, frames=options.frames)
    frames = image if image.ndim == 3 else image[None]
    for k, frame in enumerate(frames):
        io.check_image(frame, f"{path} (frame {k})" if image.ndim == 3 else path)
    source_pixel = check_pixel_size(
        options.pixel_size if options.pixel_size is not None else meta.get("pixel_size_nm"),
        "pixel_size" if options.pixel_size is not None else f"{path}: pixel size in the file",
    )
    results, scales = [], []
    for frame in frames:
        results.append(predictor(frame, source_pixel, scale=options.scale))
        scales.append(predictor.last_scale.to_dict())
    return (np.stack(results) if image.ndim == 3 else results[0]), results, source_pixel, scales


def _particles(results: list, pixel: float | None, options: FileOptions) -> tuple[list[dict], dict]:
    """Particles of every frame (numbered on from frame to frame) and the summary: of the one
    image, or per frame for a stack."""
    rows, per_frame = [], []
    for k, result in enumerate(results):
        report = analyze_particles(
            result,
            pixel,
            min_area_nm2=options.min_area_nm2,
            split_touching=options.split_touching,
            exclude_border=options.exclude_border,
        )
        rows += [
            dict(r, particle=len(rows) + i + 1, **({"frame": k} if len(results) > 1 else {}))
            for i, r in enumerate(report.rows)
        ]
        per_frame.append(report.summary)
    return rows, per_frame[0] if len(per_frame) == 1 else {"frames": per_frame}


def predict_files(
    model: nn.Module | Predictor,
    inputs: list[str | Path] | str | Path,
    output_dir: str | Path,
    options: FileOptions | None = None,
    *,
    progress: bool = False,
    **option_values,
) -> FilesReport:
    """Run ``model`` (or a prepared :class:`Predictor`) over image files and folders into
    ``output_dir``: a result TIFF per input (pixel size kept; a stack for a stack), an optional PNG
    preview, and for segmentation a particle CSV, a size histogram and ``particles_summary.json``.
    Options as :class:`FileOptions` or keywords. Returns what was written, skipped and measured."""
    from tqdm.auto import tqdm

    options = options or FileOptions(**option_values)
    for name in ("pixel_size", "min_area_nm2"):
        value = getattr(options, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
            raise ConfigError(f"{name}={value!r}: expected a positive number")
    check_pixel_size(options.pixel_size)
    predictor = model if isinstance(model, Predictor) else Predictor(model)
    files = find_inputs([inputs] if isinstance(inputs, (str, Path)) else list(inputs))
    out = check_output_dir(output_dir, files)
    task = predictor.task
    analyse = task.analyses_particles(predictor.output)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"output_dir {out}: cannot create it ({e.strerror})") from None
    report = FilesReport(out)
    try:
        plan = [(path, out / stem) for path, stem in files]
        _check_nothing_foreign(plan, out, analyse, options)
        for path, stem in tqdm(plan, desc="predict", unit="img", disable=not progress):
            _one(predictor, path, stem, out, task, analyse, options, report)
        if report.skipped and not report.written and not report.done_before:
            raise DataError(f"every input was bad ({len(report.skipped)}); first: {report.skipped[0]}")
        with _manifest(out) as records:
            done = {k: r for k, r in sorted(records.items()) if r["state"] == "done" and r.get("summary")}
        if analyse and done:
            summaries = {k: r["summary"] for k, r in done.items()}
            _write_listing(out, SUMMARY, summaries)
            report.particles = {k: v for k, v in summaries.items() if k in report.written}
        if report.skipped:
            _write_listing(out, SKIPPED, report.skipped)
    finally:
        if created and out.is_dir() and not any(p for p in out.iterdir() if p.name not in (LOCK, MANIFEST)):
            for name in (LOCK, MANIFEST):
                (out / name).unlink(missing_ok=True)
            out.rmdir()  # a refused or failed run leaves no empty folder behind
    return report


def _one(predictor, path: Path, stem: Path, out: Path, task, analyse: bool, options: FileOptions, report) -> None:
    key = str(stem.relative_to(out))
    targets = _outputs_for(stem, analyse, options.png)
    names = [str(t.relative_to(out)) for t in targets]
    with _manifest(out) as records:
        record = records.get(key)
        if record and record["state"] == "done" and not options.overwrite and all(t.is_file() for t in targets):
            report.done_before += 1
            return
    for tmp in _leftover_temps(stem):
        tmp.unlink(missing_ok=True)
    try:
        result, results, source_pixel, scales = _predict_one(predictor, path, options)
    except EmzooError as e:
        if not options.skip_bad:
            raise
        report.skipped.append(str(e))
        return
    with _manifest(out) as records:  # pending before any byte is written: a kill here is redone later
        records[key] = {"state": "pending", "outputs": names, "input": str(path)}
    pixel = output_pixel_size(task, source_pixel)
    stem.parent.mkdir(parents=True, exist_ok=True)
    io.write(targets[0], result, {"pixel_size_nm": pixel})
    if options.png:
        io.write(targets[1], results[0])  # a stack's preview: its first frame
    summary = None
    if analyse:
        rows, summary = _particles(results, pixel, options)
        write_csv(targets[-2], rows, pixel)
        write_histogram(targets[-1], rows, pixel, title=path.name)
        summary = dict(summary, scale=scales[0] if len(scales) == 1 else scales)
    with _manifest(out) as records:
        records[key] = {"state": "done", "outputs": names, "input": str(path), "summary": summary, "scale": scales}
    report.written.append(key)
    report.scales[key] = scales[0] if len(scales) == 1 else scales
