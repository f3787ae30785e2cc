"""Prediction on micrographs of any size: a :class:`Predictor` is prepared once per model (engine,
task, tiling defaults; every argument checked before any work) and reused across a folder.
Normalisation is the model's own, computed once over the whole image; images at a pixel size the
model was not trained at are resampled to its scale and back."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from emzoo.errors import ConfigError, DataError
from emzoo.inference.engines import make_engine
from emzoo.inference.scale import resample, working_scale
from emzoo.inference.tiling import RAMP, default_batch, default_margin, default_tile, pixel_budget, round_up, run_tiled
from emzoo.normalize import apply_params, norm_params
from emzoo.tasks import Task, get_task, upsample

OUTPUTS = ("auto", "logits", "probability", "mask")


def model_task(model: nn.Module) -> Task:
    """The task a loaded model was trained for (random-init architectures: the pretext task)."""
    return get_task((getattr(model, "emzoo_cfg", None) or {}).get("task"))


def output_pixel_size(task: Task, pixel_size_nm: float | None) -> float | None:
    """The result's pixel size: super-resolution divides it, every other task keeps it."""
    return pixel_size_nm / task.output_scale if pixel_size_nm else pixel_size_nm


def _whole_number(name: str, value, low: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low):
        raise ConfigError(f"{name}={value!r}: expected a whole number >= {low}")


def check_image_array(image: np.ndarray) -> np.ndarray:
    """A real, finite 2-D array of at least 2 x 2 pixels, or one line that says what it is instead."""
    image = np.asarray(image)
    if np.iscomplexobj(image):
        raise DataError("image is complex; pass a real image (e.g. np.abs(image) for the amplitude)")
    if image.dtype == bool or not np.issubdtype(image.dtype, np.number):
        raise DataError(f"image of dtype {image.dtype}; expected real numbers")
    if image.ndim != 2:
        hint = "; for a stack, predict each frame (or pass frames to the CLI)" if image.ndim == 3 else ""
        raise DataError(f"image of shape {image.shape}; expected a 2-D array (one micrograph){hint}")
    if min(image.shape) < 2:
        raise DataError(f"image of {image.shape[0]}x{image.shape[1]} pixels; expected at least 2x2")
    if not np.isfinite(image).all():
        raise DataError(f"image has {int((~np.isfinite(image)).sum())} NaN/Inf pixels; expected finite values")
    return image


class Predictor:
    """``model`` ready to run over images: ``Predictor(model)(image)`` gives what :func:`predict`
    gives, and the prepared engine (BN-folded copy or ONNX session) is reused for every call."""

    def __init__(
        self,
        model: nn.Module,
        tile: int | None = None,
        overlap: int | None = None,
        batch_size: int | None = None,
        *,
        output: str = "auto",
        normalization: str | None = None,
        progress: bool = False,
        channels_last: bool = True,
        engine: str = "torch",
        precision: str = "float32",
    ) -> None:
        if output not in OUTPUTS:
            raise ConfigError(f"output {output!r}: expected one of {', '.join(OUTPUTS)}")
        for name, value, low in (("tile", tile, 0), ("overlap", overlap, 0), ("batch_size", batch_size, 1)):
            _whole_number(name, value, low)
        self.task = model_task(model)
        self.task.check_output(output)
        self.divisor = getattr(model, "size_divisor", 1)
        self.margin = default_margin(model)
        if overlap is not None:
            self.margin = round_up(max(overlap // 2 - RAMP // 2, 0), self.divisor)
        if tile:
            if tile % self.divisor:
                raise ConfigError(f"tile={tile}: must be a multiple of {self.divisor} (the model's pooling grid)")
            if tile <= 2 * self.margin + RAMP:
                smallest = round_up(2 * self.margin + RAMP + self.divisor, self.divisor)
                raise ConfigError(
                    f"tile={tile}: too small for this model's {2 * self.margin}-pixel context; use >= {smallest}"
                )
        self.model, self.tile, self.batch_size, self.output, self.progress = model, tile, batch_size, output, progress
        self.normalization = normalization or (getattr(model, "emzoo_cfg", None) or {}).get(
            "normalization", "standardize"
        )
        norm_params(np.zeros((2, 2), np.float32), self.normalization)  # an unknown method fails here, not later
        self.run = make_engine(model, engine, channels_last, precision)
        self.precision = getattr(self.run, "precision", "float32")

    @torch.inference_mode()
    def __call__(self, image: np.ndarray, pixel_size: float | None = None) -> np.ndarray:
        """``pixel_size`` (nm/px): outside the model's trained range, the image is resampled to its
        scale and the output brought back to the input's grid; unknown, it is assumed to fit."""
        image = check_image_array(image)
        zoom = working_scale(self.model, pixel_size)
        params = norm_params(image, self.normalization)
        x = apply_params(image, params)
        native_shape = x.shape
        if zoom != 1.0:
            x = resample(x, (max(8, round(x.shape[0] / zoom)), max(8, round(x.shape[1] / zoom))))
        x = upsample(torch.from_numpy(x)[None, None], self.task)[0, 0].numpy()
        h, w = x.shape
        tile = self.tile
        if tile is None:  # images within the pixel budget run whole: no margins to recompute
            tile = 0 if h * w <= pixel_budget(self.model) else default_tile(self.model, self.margin, max(h, w))
        if tile == 0 or (h <= tile and w <= tile):
            result = self.run(x[None, None])[0]
        else:
            batch = self.batch_size or default_batch(self.model, tile)
            result = run_tiled(x, self.run, self.model, tile, self.margin, batch, self.progress)
        if zoom != 1.0:  # back to the input's grid (2x for super-resolution)
            scale = self.task.output_scale
            result = resample(result, (scale * native_shape[0], scale * native_shape[1]))
        return self.task.finish(result, self.output, params)


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
    precision: str = "float32",
) -> np.ndarray:
    """Run ``model`` over a 2-D image of any size; numpy in, numpy out.

    ``output``: ``auto`` gives the restored image in the input's units for restoration tasks,
    particle probabilities for segmentation; ``logits`` gives raw network outputs; ``mask``
    thresholded (binary) or arg-max (multi-class) labels. Super-resolution models return 2x.
    ``tile``/``overlap``/``batch_size`` default from the receptive field and the image size;
    ``tile=0`` runs the whole image at once. ``engine="onnxruntime"`` runs an ONNX export of the
    model (made once per set of weights, cached, checked against PyTorch to 1e-4 relative).
    ``precision="auto"`` runs in bf16 where that is measured faster on this machine and keeps the
    output within 2% of float32's range (``emzoo predict``'s default); ``float32`` is exact.
    For many images, build a :class:`Predictor` once instead.
    """
    predictor = Predictor(
        model,
        tile,
        overlap,
        batch_size,
        output=output,
        normalization=normalization,
        progress=progress,
        channels_last=channels_last,
        engine=engine,
        precision=precision,
    )
    return predictor(image, pixel_size)
