"""``emzoo adapt``: fine-tune a zoo model on the user's own micrographs, with no clean image.

Noise2Void-style blind spots (N2V2 replacement, structured along scan lines where the noise
correlates) on single micrographs, Noise2Noise on frame series; starting from the zoo's weights
(the paper's finding: pretrained generators fine-tune faster) through the same Trainer and
Accelerate as ``emzoo finetune``, so ``accelerate launch -m emzoo adapt`` spreads it over GPUs.

The result is an ordinary model folder (``OUTPUT_DIR/model``) that ``emzoo.load``, ``emzoo
predict --model``, the exports and the Space accept; its card says what it was adapted from, on
what and for how long, and the held-out self-supervised numbers before and after. The input files
are only read. A killed run resumes from its last epoch checkpoint when started again.

Scale: adaptation runs at the images' native pixel size, because resampling correlates the noise
that the blind spot relies on being independent; the adapted checkpoint records that pixel size,
so ``predict`` runs it at the scale it was adapted at.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import nn
from torch.utils.data import DataLoader

from emzoo import io
from emzoo.data.selfsupervised import ADAPT_FILE, MIN_SIDE, SelfSupervisedDataset, write_adapt_data
from emzoo.errors import ConfigError, DataError
from emzoo.fsutil import cache_root
from emzoo.hub import create_model, load, save_pretrained
from emzoo.inference.files import find_inputs
from emzoo.inference.predictor import check_image_array, model_task
from emzoo.inference.scale import check_pixel_size
from emzoo.normalize import apply_params, norm_params
from emzoo.train.config import TrainConfig
from emzoo.train.evaluation import score
from emzoo.train.objectives import objective_for
from emzoo.train.run_folder import MODEL_DIR, RESULT_FILE, latest_checkpoint
from emzoo.train.trainer import Trainer

_log = logging.getLogger("emzoo.adapt")
METHODS = ("auto", "n2v", "n2n")
DEFAULT_MODEL = "unet-4-424-emsim-denoise"  # trained on every modality and pixel size of the corpus
DEFAULT_MINUTES = 3.0
ADAPTABLE_TASKS = ("denoise", "pretext")


def _as_stack(item, index: int) -> tuple[np.ndarray, str, float | None]:
    """(frames, H, W) float32, a name and the file's pixel size, from a path or an array."""
    if isinstance(item, (str, Path)):
        path = Path(item)
        array, meta = io.read(path, frames="each")
        name, pixel = path.stem, meta.get("pixel_size_nm")
    else:
        array, name, pixel = np.asarray(item), f"image{index:03d}", None
        if array.ndim not in (2, 3):
            raise DataError(f"images[{index}]: array of shape {array.shape}; expected (H, W) or (frames, H, W)")
    stack = array[None] if array.ndim == 2 else array
    for frame in stack[:1]:
        check_image_array(frame)
    if not np.isfinite(stack).all():
        raise DataError(f"{name}: has NaN/Inf pixels; expected finite values")
    if min(stack.shape[1:]) < MIN_SIDE:
        raise DataError(f"{name}: {stack.shape[1]}x{stack.shape[2]} px; expected at least {MIN_SIDE}x{MIN_SIDE}")
    return stack.astype(np.float32), name, pixel


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out


def choose_method(method: str, stacks: list[np.ndarray]) -> str:
    """``auto``: Noise2Noise when every input holds a frame series, else Noise2Void."""
    if method not in METHODS:
        raise ConfigError(f"method {method!r}: expected one of {', '.join(METHODS)}")
    frames = [s.shape[0] for s in stacks]
    if method == "auto":
        method = "n2n" if min(frames) >= 2 else "n2v"
        _log.info(
            "method auto: %s (%s)",
            method,
            "every input holds a frame series" if method == "n2n" else "single micrographs: blind-spot training",
        )
    if method == "n2n" and min(frames) < 2:
        single = frames.index(min(frames))
        raise DataError(
            f"input {single + 1} holds one frame; n2n needs frame series (several exposures of one field), "
            "use method 'n2v' for single micrographs"
        )
    return method


def _model_ref(model) -> tuple[str, nn.Module]:
    """The model to start from, as a name or folder the Trainer can load, and the loaded model."""
    if isinstance(model, nn.Module):
        raise ConfigError(
            "model: pass a zoo name or a model folder (emzoo.save_pretrained writes one), so the run can resume"
        )
    if model == "":
        raise ConfigError("model '': expected a zoo name or a model folder")
    ref = str(model or DEFAULT_MODEL)
    if ref.startswith("random:"):  # the baseline the zoo's weights are measured against
        loaded = create_model(ref.split(":", 1)[1])
        loaded.emzoo_cfg = {"task": "denoise", "normalization": "standardize"}
        return ref, loaded
    loaded = load(ref)
    task = model_task(loaded)
    if task.name not in ADAPTABLE_TASKS:
        raise ConfigError(
            f"model {ref}: a '{task.name}' model; adapt trains denoisers from a denoising or pretext model "
            f"(e.g. {DEFAULT_MODEL})"
        )
    return ref, loaded


def _fingerprint(stacks: list[np.ndarray], method: str, ref: str) -> str:
    digest = hashlib.sha256(json.dumps([method, ref]).encode())
    for stack in stacks:
        digest.update(str(stack.shape).encode())
        digest.update(np.ascontiguousarray(stack[:, :: max(1, stack.shape[1] // 64), ::7]).tobytes())
    return digest.hexdigest()[:16]


def _files_in(folder: str | Path) -> list[Path]:
    return [path for path, _ in find_inputs([folder])]


def adapt(
    model: str | Path | None,
    images: Sequence | np.ndarray | str | Path,
    *,
    output_dir: str | Path | None = None,
    minutes: float | None = None,
    steps: int | None = None,
    method: str = "auto",
    pixel_size: float | None = None,
    patch: int = 64,
    batch_size: int = 16,
    lr: float = 5e-4,  # measured best of 5e-5..1e-3 for a 1-minute n2v from the shipped denoiser
    seed: int = 0,
    progress: bool = True,
    cpu: bool = False,
    mixed_precision: str = "auto",
) -> nn.Module:
    """Adapt ``model`` (zoo name or folder; default the U-Net 4/424 denoiser) to ``images`` (file
    paths, 2-D arrays or (frames, H, W) frame series) for ``minutes`` (default 3) or ``steps``;
    returns the adapted model (also written to ``output_dir/model``, default a folder in emzoo's
    cache named by the inputs). ``method``: ``n2v`` (single micrographs), ``n2n`` (frame series) or
    ``auto``. Rerunning with the same arguments resumes an interrupted run."""
    if isinstance(images, (str, Path, np.ndarray)):
        images = [images]
    # folders stand for the micrographs in them, as `emzoo predict` reads them
    folder = [isinstance(item, str | Path) and Path(item).is_dir() for item in images]
    images = [found for item, is_dir in zip(images, folder) for found in (_files_in(item) if is_dir else [item])]
    if not images:
        raise DataError("images: none given; expected micrograph files or arrays")
    for name, value in (("minutes", minutes), ("steps", steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
            raise ConfigError(f"{name}={value!r}: expected a positive number")
    if steps is not None and not float(steps).is_integer():
        raise ConfigError(f"steps={steps!r}: expected a whole number")
    for name, value in (("patch", patch), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (16 if name == "patch" else 1):
            raise ConfigError(f"{name}={value!r}: expected a whole number >= {16 if name == 'patch' else 1}")
    pixel_size = check_pixel_size(pixel_size)
    read = [_as_stack(item, k) for k, item in enumerate(images)]
    stacks = [r[0] for r in read]
    names = _unique_names([r[1] for r in read])
    method = choose_method(method, stacks)
    for stack, name in zip(stacks, names):
        if method == "n2v" and stack.shape[0] > 1:
            _log.info("%s: %d frames; n2v trains on their mean", name, stack.shape[0])
    if method == "n2v":
        stacks = [s.mean(0, keepdims=True) if s.shape[0] > 1 else s for s in stacks]
    ref, start_model = _model_ref(model)
    key = _fingerprint(stacks, method, ref)
    out = Path(output_dir) if output_dir is not None else cache_root() / "adapt" / key
    if str(output_dir) == "":
        raise ConfigError("output_dir '': expected a folder for the adapted model")
    pixels = [pixel_size or r[2] for r in read]
    normalization = (start_model.emzoo_cfg or {}).get("normalization", "standardize")

    def normalize(stack: np.ndarray) -> np.ndarray:  # as predict normalises the image it is given
        params = norm_params(stack.mean(0), normalization)
        return np.stack([apply_params(frame, params) for frame in stack]).astype(np.float32)

    data = out / "data"
    info = {"fingerprint": key, "model": ref, "pixel_size_nm": pixels, "frames": [int(s.shape[0]) for s in stacks]}
    existing = json.loads((data / ADAPT_FILE).read_text()) if (data / ADAPT_FILE).is_file() else None
    if existing is None:
        if out.exists() and any(p.name != "data" for p in out.iterdir()):
            raise ConfigError(f"output_dir {out}: exists and holds other files; choose a new folder")
        record = write_adapt_data(data, stacks, names, method, normalize, info)
    elif existing.get("fingerprint") != key:
        raise ConfigError(f"output_dir {out}: holds the adaptation of other images or model; choose a new folder")
    else:
        record = existing
    if record["struct_axis"] is not None:
        _log.info("noise correlated along %s: structured blind spots", ("columns", "rows")[record["struct_axis"]])
    cfg = TrainConfig(
        mode="finetune",
        data=str(data),
        output_dir=str(out / "run"),
        task="denoise",
        objective=method,
        model=ref,
        max_steps=int(steps) if steps else 10**7,
        max_minutes=None if steps and minutes is None else (minutes or DEFAULT_MINUTES),
        epochs=10**6,
        batch_size=batch_size,
        image_size=patch,
        lr=lr,
        betas=(0.9, 0.999),
        seed=seed,
        checkpointing_steps=None,  # every epoch (~16 steps): a killed run loses little
        checkpoints_total_limit=1,
        resume_from_checkpoint="latest" if latest_checkpoint(out / "run") else None,
        compile="off",
        mixed_precision=mixed_precision,
        keep_checkpoints=False,
        progress=progress,
        cpu=cpu,
        extra={"adapt": True},
    )
    if (out / MODEL_DIR / "config.json").is_file():  # finished before: the same inputs give the same model
        _log.info("%s: already adapted", out / MODEL_DIR)
        return load(out / MODEL_DIR)
    result_file = out / "run" / RESULT_FILE
    result = json.loads(result_file.read_text()) if result_file.is_file() else Trainer(cfg).train()
    adapted = load(out / "run" / MODEL_DIR, verify=False)
    objective = objective_for(method, model_task(adapted))
    held_out = DataLoader(SelfSupervisedDataset(data, "val", patch, seed), batch_size=batch_size)
    before, after = score(start_model, held_out, objective), score(adapted, held_out, objective)
    return _write_model(adapted, out / MODEL_DIR, ref, method, stacks, pixels, result, before, after, record)


def _write_model(model, folder, ref, method, stacks, pixels, result, before, after, record) -> nn.Module:
    """The adapted folder: the Trainer's best weights with a card that says what was done."""
    known = [p for p in pixels if p]
    n_pixels = int(sum(s.shape[1] * s.shape[2] for s in stacks))
    adaptation = {
        "adapted_from": ref,
        "method": method,
        "struct_axis": record.get("struct_axis"),
        "images": len(stacks),
        "frames": [int(s.shape[0]) for s in stacks],
        "pixels": n_pixels,
        "steps": result["steps"],
        "train_seconds": result["train_seconds"],
        "held_out_before": before,
        "held_out_after": after,
    }
    metric = next(iter(after))
    what = {"n2v": "Noise2Void (N2V2 blind spots", "n2n": "Noise2Noise (frame pairs"}[method]
    summary = (
        f"`emzoo adapt` from `{ref}`: {what}) on {len(stacks)} of the user's micrograph(s), "
        f"{n_pixels / 1e6:.2f} Mpx, {result['steps']} steps in {result['train_seconds'] / 60:.1f} min; "
        f"held-out {metric} {before[metric]:.4g} -> {after[metric]:.4g} (a strip of each image not trained on)."
    )
    cfg = dict(model.emzoo_cfg or {})
    cfg.pop("source", None)
    model.emzoo_cfg = cfg
    save_pretrained(
        model,
        folder,
        task="denoise",
        base_model=ref,
        adaptation=adaptation,
        pixel_size_nm=[round(min(known) / 1.25, 6), round(max(known) * 1.25, 6)] if known else None,
        metrics=[
            {"name": f"held-out {k}", "value": v, "dataset": "the user's images (held-out strip)", "split": "val"}
            for k, v in after.items()
        ],
        metrics_source="emzoo adapt (self-supervised, held-out strip of the adapted images)",
        train_summary=summary,
    )
    _log.info("%s", summary)
    return load(folder)
