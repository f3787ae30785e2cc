"""Tiled prediction on micrographs of any size.

Tiles start on the network's pooling grid and overlap by twice a margin taken from the
receptive field, so every output pixel that is kept saw all the input it depends on: for the
U-Nets the tiled result equals the whole-image forward. Where tiles overlap beyond the margins
they are blended with a raised-cosine window (seamless for HRNet, whose field is larger than any
practical tile). Normalisation is the model's own, computed once over the whole image. Tile
outputs are accumulated as they come, so memory grows with the image, not with the tile count.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emzoo.errors import EmzooError
from emzoo.fsutil import atomic_write_text
from emzoo.inference.particles import analyze_particles, write_csv, write_histogram
from emzoo.inference.scale import resample, working_scale
from emzoo.normalize import norm_params

HRNET_MARGIN = 64  # pixels; HRNet's field spans the whole tile, this keeps seams invisible
RAMP = 32  # width of the blending ramp beyond the margins
MAX_TILE = 2400  # pixels; default tiles stay near this side (at most ~10% over, to avoid a sliver row)
TILE_BATCH_PIXELS = 2400 * 2400  # pixels per forward pass (U-Nets: ~0.2 GB of activations per megapixel)
HRNET_BATCH_PIXELS = 1024 * 1024  # HRNet keeps full-resolution branches: ~6x the memory per pixel
ENGINES = ("torch", "onnxruntime")
OUTPUTS = ("auto", "logits", "probability", "mask")


def _round_up(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


def model_task(model: nn.Module) -> str:
    return (getattr(model, "emzoo_cfg", None) or {}).get("task", "pretext")


def output_pixel_size(task: str, pixel_size_nm: float | None) -> float | None:
    """The result's pixel size: super-resolution halves it, every other task keeps it."""
    return pixel_size_nm / 2 if task == "super-res" and pixel_size_nm else pixel_size_nm


def default_margin(model: nn.Module) -> int:
    """Context (pixels) a tile needs beyond what it keeps: half the receptive field."""
    divisor = getattr(model, "size_divisor", 1)
    rf = getattr(model, "receptive_field", None)
    margin = math.ceil(rf / 2) if rf else HRNET_MARGIN
    return _round_up(margin, divisor)


def default_tile(model: nn.Module, margin: int, length: int | None = None) -> int:
    """The tile side: big enough that the discarded margins cost little (about 10 margins, at
    least 512, about ``MAX_TILE`` at most), then resized so tiles split ``length`` evenly: smaller,
    or up to ~10% larger where that saves a whole row of tiles."""
    divisor = getattr(model, "size_divisor", 1)
    context = 2 * margin + (0 if getattr(model, "receptive_field", None) else RAMP)
    largest = min(max(512, _round_up(10 * margin, divisor)), MAX_TILE)
    if length is None or length <= largest:
        return largest
    count = max(1, math.ceil((length - context) / (largest - context) - 0.1))  # up to ~10% over: no sliver row
    return _round_up(math.ceil((length - context) / count) + context, divisor)


def pixel_budget(model: nn.Module) -> int:
    """Pixels one forward pass may take, so memory stays bounded whatever the image size."""
    return TILE_BATCH_PIXELS if getattr(model, "receptive_field", None) else HRNET_BATCH_PIXELS


def default_batch(model: nn.Module, tile: int) -> int:
    """Tiles per forward pass: up to 4, within the model's pixel budget."""
    return max(1, min(4, pixel_budget(model) // (tile * tile)))


def _starts(length: int, tile: int, stride: int, divisor: int) -> list[int]:
    """Tile origins on the pooling grid covering [0, length), ``stride`` apart at most. The last
    one is flush with the end when that lands on the grid, otherwise it reaches past the end and
    the model pads it as it pads the whole image."""
    starts = [0]
    flush = (length - tile) // divisor * divisor
    while starts[-1] + tile < length:
        step = starts[-1] + stride
        starts.append(flush if starts[-1] < flush <= step and flush + tile >= length else step)
    return starts


def _window(size: int, lead: bool, trail: bool, margin: int, ramp: int) -> np.ndarray:
    """1-D weights of a tile: zero on a margin next to an inner edge, then a raised-cosine ramp;
    flat 1 towards the image border."""
    w = np.ones(size, np.float32)
    profile = np.concatenate([np.zeros(margin), 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp + 2)[1:-1])])
    profile = profile[: size // 2].astype(np.float32)
    if lead:
        w[: len(profile)] = profile
    if trail:
        w[size - len(profile) :] = profile[::-1]
    return w


def _tiles(h: int, w: int, tile: int, stride: int, divisor: int) -> Iterator[tuple[int, int]]:
    for y in _starts(h, tile, stride, divisor):
        for x in _starts(w, tile, stride, divisor):
            yield y, x


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An inference copy of ``model`` with every batch norm that directly follows a convolution
    folded into it (``convN``/``bnN`` pairs and Conv-BN runs in Sequentials): one pass fewer over
    memory per layer, same outputs to float rounding."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model = copy.deepcopy(model).eval()

    def fold(parent: nn.Module, conv_name: str, bn_name: str) -> None:
        conv, bn = parent._modules[conv_name], parent._modules.get(bn_name)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
            parent._modules[conv_name] = fuse_conv_bn_eval(conv, bn)
            parent._modules[bn_name] = nn.Identity()

    for module in list(model.modules()):
        names = list(module._modules)
        if isinstance(module, nn.Sequential):
            for first, second in zip(names, names[1:]):
                fold(module, first, second)
        else:
            for name in names:
                if name.startswith("conv") and "bn" + name[4:] in module._modules:
                    fold(module, name, "bn" + name[4:])
    return model


def _runner(model: nn.Module, engine: str, channels_last: bool) -> Callable[[np.ndarray], np.ndarray]:
    """A function from a float32 NCHW batch to the network's float32 output, on ``engine``."""
    if engine == "onnxruntime":
        from emzoo.export import onnx_session

        session = onnx_session(model)
        return lambda batch: session.run(None, {"image": np.ascontiguousarray(batch)})[0]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = fold_batchnorm(model).to(memory_format=fmt)  # an eval-mode copy: the caller's model stays as it is
    device = next(model.parameters()).device

    def run(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(device).contiguous(memory_format=fmt)
        return net(x).float().cpu().numpy()

    return run


@torch.inference_mode()
def predict(
    model: nn.Module,
    image: np.ndarray,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    *,
    output: str = "auto",
    normalization: str | None = None,
    progress: bool = False,
    channels_last: bool = True,
    engine: str = "torch",
    pixel_size: float | None = None,
) -> np.ndarray:
    """Run ``model`` over a 2-D image of any size; numpy in, numpy out.

    ``pixel_size`` (nm/px): when it lies outside the pixel-size range the model was trained at,
    the image is resampled to the model's scale and the output brought back to the input's grid
    (2x for super-resolution); unknown, it is assumed to fit (with a one-line warning).

    ``output``: ``auto`` gives the restored image in the input's units for restoration tasks,
    particle probabilities for segmentation; ``logits`` gives raw network outputs; ``mask``
    thresholded (binary) or arg-max (multi-class) labels. Super-resolution models return 2x.
    ``tile``/``overlap``/``batch_size`` default from the receptive field and the image size;
    ``tile=0`` runs the whole image at once. ``engine="onnxruntime"`` runs an ONNX export of the
    model (made once per set of weights, cached, checked against PyTorch to 1e-4 relative).
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise EmzooError(f"image of shape {image.shape}; expected a 2-D array (one micrograph)")
    if not np.isfinite(image).all():
        raise EmzooError("image has NaN/Inf pixels; expected finite values")
    if output not in OUTPUTS:
        raise EmzooError(f"output {output!r}: expected one of {', '.join(OUTPUTS)}")
    for name, value, low in (("tile", tile, 0), ("overlap", overlap, 0), ("batch_size", batch_size, 1)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < low):
            raise EmzooError(f"{name}={value!r}: expected a whole number >= {low}")
    task = model_task(model)
    zoom = working_scale(model, pixel_size)
    method = normalization or (getattr(model, "emzoo_cfg", None) or {}).get("normalization", "standardize")
    params = norm_params(image, method)
    x = image.astype(np.float32)  # one working copy, normalised in place: memory grows with the image only
    x -= params[0]
    x /= params[1]
    native_shape = x.shape
    if zoom != 1.0:
        scaled = (max(8, round(x.shape[0] / zoom)), max(8, round(x.shape[1] / zoom)))
        x = resample(x, scaled)
    if task == "super-res":
        x = F.interpolate(torch.from_numpy(x)[None, None], scale_factor=2, mode="bicubic", align_corners=False)[0, 0]
        x = x.numpy()
    if engine not in ENGINES:
        raise EmzooError(f"--engine {engine}: expected one of {', '.join(ENGINES)}")
    divisor = getattr(model, "size_divisor", 1)
    margin = default_margin(model)
    if overlap is not None:
        margin = _round_up(max(overlap // 2 - RAMP // 2, 0), divisor)
    h, w = x.shape
    if tile is None:  # images within the pixel budget run whole: no margins to recompute
        tile = 0 if h * w <= pixel_budget(model) else default_tile(model, margin, max(h, w))
    if tile == 0 or (h <= tile and w <= tile):
        result = _runner(model, engine, channels_last)(x[None, None])[0]
    else:
        if tile % divisor:
            raise EmzooError(f"--tile {tile}: must be a multiple of {divisor} (the model's pooling grid)")
        if tile <= 2 * margin + RAMP:
            raise EmzooError(
                f"--tile {tile}: too small for this model's {2 * margin}-pixel context; use at least "
                f"{_round_up(2 * margin + RAMP + divisor, divisor)}"
            )
        batch_size = batch_size or default_batch(model, tile)
        run = _runner(model, engine, channels_last)
        # exact models (a known receptive field): each tile keeps its centre, margins dropped;
        # otherwise (HRNet) overlapping tiles are blended with a raised-cosine window
        stitch = getattr(model, "receptive_field", None) is not None
        stride = tile - 2 * margin - (0 if stitch else RAMP)
        stride = max(divisor, stride // divisor * divisor)
        acc = np.zeros((model.num_classes, h, w), np.float32)
        weight = None if stitch else np.zeros((h, w), np.float32)
        positions = list(_tiles(h, w, tile, stride, divisor))
        from tqdm.auto import tqdm

        for k in tqdm(range(0, len(positions), batch_size), disable=not progress, desc="tiles", unit="batch"):
            group = positions[k : k + batch_size]
            crops = [x[y : y + tile, xx : xx + tile] for y, xx in group]
            outs = []
            for shape in {c.shape for c in crops}:  # tiles at the border may be smaller; one batch per size
                idx = [i for i, c in enumerate(crops) if c.shape == shape]
                outs += list(zip(idx, run(np.stack([crops[i] for i in idx])[:, None])))
            for i, pred in outs:
                y, xx = group[i]
                th, tw = pred.shape[-2:]
                if stitch:
                    top, left = (margin if y > 0 else 0), (margin if xx > 0 else 0)
                    bottom = th - (margin if y + th < h else 0)
                    right = tw - (margin if xx + tw < w else 0)
                    acc[:, y + top : y + bottom, xx + left : xx + right] = pred[:, top:bottom, left:right]
                    continue
                wy = _window(th, y > 0, y + th < h, margin, RAMP)
                wx = _window(tw, xx > 0, xx + tw < w, margin, RAMP)
                wt = wy[:, None] * wx[None, :]
                acc[:, y : y + th, xx : xx + tw] += pred * wt
                weight[y : y + th, xx : xx + tw] += wt
        if weight is not None:
            acc /= np.maximum(weight, 1e-12)
        result = acc
    if zoom != 1.0:  # back to the input's grid (2x for super-resolution)
        factor = 2 if task == "super-res" else 1
        result = resample(result, (factor * native_shape[0], factor * native_shape[1]))
    return _finish(result, task, output, params)


def _finish(result: np.ndarray, task: str, output: str, params: tuple[float, float]) -> np.ndarray:
    if output == "logits":
        return result if result.shape[0] > 1 else result[0]
    if task == "segment":
        from scipy.special import expit, softmax

        if result.shape[0] == 1:
            prob = expit(result[0])
            return (prob > 0.5).astype(np.uint8) if output == "mask" else prob.astype(np.float32)
        if output == "mask":
            return result.argmax(0).astype(np.uint8)
        return softmax(result, axis=0).astype(np.float32)
    restored = result[0]
    restored *= params[1]  # back to the input's units, in place
    restored += params[0]
    return restored


# ------------------------------------------------------------------------------------- CLI
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


def _outputs_for(stem: Path, task: str, args) -> list[Path]:
    paths = [stem.with_name(stem.name + ".tif")]
    if args.png:
        paths.append(stem.with_name(stem.name + ".png"))
    if task == "segment" and args.output != "logits":
        paths += [stem.with_name(stem.name + "_particles.csv"), stem.with_name(stem.name + "_sizes.png")]
    return paths


def _cmd_predict(args) -> None:
    import json

    from tqdm.auto import tqdm

    import emzoo
    from emzoo import io

    files = _inputs(args.inputs)
    out = Path(args.output_dir).resolve()
    if out.exists() and not out.is_dir():
        raise EmzooError(f"--output-dir {out}: is a file; expected a folder")
    for f, _ in files:
        if out == f.resolve().parent and not args.inputs_are_outputs_ok:
            raise EmzooError(
                f"--output-dir {out}: is where the inputs are; choose a separate folder (inputs stay untouched)"
            )
    model = emzoo.load(args.model, device=args.device)
    task = model_task(model)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EmzooError(f"--output-dir {out}: cannot create it ({e.strerror})") from None
    manifest_path = out / MANIFEST
    ours = set(json.loads(manifest_path.read_text())) if manifest_path.is_file() else set()
    plan = [(path, out / stem) for path, stem in files]
    for _, stem in plan:  # never replace a file emzoo did not write here, unless asked to
        for target in _outputs_for(stem, task, args):
            rel = str(target.relative_to(out))
            if target.exists() and rel not in ours and not args.overwrite:
                raise EmzooError(
                    f"{target}: exists and was not written by emzoo predict; pass --overwrite or "
                    "choose another --output-dir (nothing was changed)"
                )
    skipped, written, done_before = [], 0, 0
    summaries: dict[str, dict] = {}
    for path, stem in tqdm(plan, desc="predict", unit="img", disable=args.quiet):
        targets = _outputs_for(stem, task, args)
        if not args.overwrite and all(str(t.relative_to(out)) in ours and t.is_file() for t in targets):
            done_before += 1  # finished by an earlier, interrupted run
            continue
        for tmp in stem.parent.glob(f".{stem.name}*"):  # temp files an interrupted run left behind
            tmp.unlink(missing_ok=True)
        try:
            image, meta = io.read(path)
            io.check_image(image, path)
            source_pixel = args.pixel_size or meta.get("pixel_size_nm")
            result = predict(
                model,
                image,
                tile=args.tile,
                overlap=args.overlap,
                batch_size=args.batch_size,
                output=args.output,
                engine=args.engine,
                pixel_size=source_pixel,
            )
        except EmzooError as e:
            if not args.skip_bad:
                raise
            skipped.append(str(e))
            continue
        stem.parent.mkdir(parents=True, exist_ok=True)
        pixel = output_pixel_size(task, source_pixel)
        io.write(targets[0], result, {"pixel_size_nm": pixel})
        if args.png:
            io.write(targets[1], result)
        if task == "segment" and args.output != "logits":  # logits are not probabilities
            report = analyze_particles(
                result,
                pixel,
                min_area_nm2=args.min_area_nm2,
                split_touching=not args.no_split,
                exclude_border=args.exclude_border,
            )
            write_csv(stem.with_name(stem.name + "_particles.csv"), report.rows, pixel)
            write_histogram(stem.with_name(stem.name + "_sizes.png"), report.rows, pixel, title=path.name)
            summaries[str(stem.relative_to(out))] = report.summary
        ours.update(str(t.relative_to(out)) for t in targets)
        atomic_write_text(manifest_path, json.dumps(sorted(ours)))
        written += 1
    report = {"written": written, "done_before": done_before, "skipped": skipped, "output_dir": str(out)}
    if summaries:
        atomic_write_text(out / "particles_summary.json", json.dumps(summaries, indent=2))
        report["particles"] = summaries
    if skipped:
        (out / "skipped.json").write_text(json.dumps(skipped, indent=2))
    print(json.dumps(report, indent=2))


def add_commands(sub) -> None:
    p = sub.add_parser("predict", help="run a model over images or folders (tiled, any size)")
    p.add_argument("inputs", nargs="+", help="image files or folders (PNG/TIFF/MRC/DM3/DM4/EMD/SER/NPY)")
    p.add_argument("--model", required=True, help="zoo name, hf-hub:ORG/NAME, or a folder")
    p.add_argument("--output-dir", required=True, help="a separate folder for the results")
    p.add_argument("--tile", type=int, help="tile size in pixels (default from the receptive field; 0: whole image)")
    p.add_argument("--overlap", type=int, help="tile overlap in pixels (default from the receptive field)")
    p.add_argument("--batch-size", type=int, help="tiles per forward pass (default: up to 4, memory-bounded)")
    p.add_argument(
        "--engine", default="torch", choices=ENGINES, help="onnxruntime: faster on CPU, exported once and cached"
    )
    p.add_argument("--output", default="auto", choices=("auto", "probability", "mask", "logits"))
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ...")
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
