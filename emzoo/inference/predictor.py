"""Prediction on micrographs of any size: a :class:`Predictor` is prepared once per model (engine,
task, tiling defaults; every argument checked before any work) and reused across a folder.
Normalisation is the model's own, computed once over the whole image; each image runs at a working
scale (see :mod:`emzoo.inference.scale`) and its result comes back on the input's grid."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emzoo.errors import ConfigError, DataError
from emzoo.hub import load
from emzoo.inference.confidence import OFF, check_peak, drop_unsure, model_peak, unsure_regions
from emzoo.inference.engines import make_engine
from emzoo.inference.levelling import SIGNIFICANT_SWING, check_level, level, model_level
from emzoo.inference.polarity import (
    check_polarity,
    finds_nothing,
    image_contrast,
    model_particle_contrast,
    model_polarity_confidence,
    prefers_inverted,
)
from emzoo.inference.scale import (
    ScaleChoice,
    check_pixel_size,
    check_scale,
    choose_by_particles,
    model_particle_range,
    pixel_zoom,
    resample,
    working_shape,
    zoom_limits,
)
from emzoo.inference.tiling import RAMP, default_batch, default_margin, default_tile, pixel_budget, round_up, run_tiled
from emzoo.io import check_image
from emzoo.normalize import apply_params, norm_params, remove_outliers
from emzoo.tasks import Task, get_task, upsample

OUTPUTS = ("auto", "logits", "probability", "mask")
BORDER_CONTEXT = 96  # px of mirrored image around the working grid: no zero padding reaches the border strip
BORDERS = ("mirror", "zero")
_log = logging.getLogger("emzoo.predict")


def model_task(model: nn.Module) -> Task:
    """The task a loaded model was trained for (random-init architectures: the pretext task)."""
    return get_task((getattr(model, "emzoo_cfg", None) or {}).get("task"))


def output_pixel_size(task: Task, pixel_size_nm: float | None) -> float | None:
    """The result's pixel size: super-resolution divides it, every other task keeps it."""
    return pixel_size_nm / task.output_scale if pixel_size_nm else pixel_size_nm


def _whole_number(name: str, value, low: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low):
        raise ConfigError(f"{name}={value!r}: expected a whole number >= {low}")


def model_border(model: nn.Module) -> str:
    """The border context a checkpoint was calibrated to (``border`` in its config, chosen on its
    validation split by :mod:`emzoo.calibration`); mirrored where none was chosen."""
    border = (getattr(model, "emzoo_cfg", None) or {}).get("border", "mirror")
    if border not in BORDERS:
        raise ConfigError(f"the model's config says border={border!r}; expected one of {', '.join(BORDERS)}")
    return border


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
    check_image(image, "image")  # NaN/Inf or constant: what the CLI refuses, the API refuses alike
    return image


class Predictor:
    """``model`` ready to run over images: ``Predictor(model)(image)`` gives what :func:`predict`
    gives, and the prepared engine (BN-folded copy or ONNX session) is reused for every call."""

    def __init__(
        self,
        model: nn.Module | str | Path,
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
        scale: float | str = "auto",
        mirror_border: bool | None = None,
        polarity: str = "auto",
        level: str = "auto",
        peak: float | str = "auto",
        on_batch: Callable[[], None] | None = None,
    ) -> None:
        if isinstance(model, str | Path):  # a zoo name, hf-hub:ORG/NAME or a folder, as emzoo.load takes
            model = load(model)
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model of type {type(model).__name__}: expected an emzoo model, a zoo name or a folder")
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
        # x-ray hits and hot pixels replaced as the model's training data were (its config says)
        self.remove_outliers = bool((getattr(model, "emzoo_cfg", None) or {}).get("remove_outliers"))
        self.scale = check_scale(scale)
        # False: the network's own zero padding (what exports compute); None: the checkpoint's choice
        self.mirror_border = model_border(model) == "mirror" if mirror_border is None else bool(mirror_border)
        self.polarity = check_polarity(polarity)
        if polarity == "inverted" and not self.task.segmentation:
            raise ConfigError("polarity='inverted': only segmentation models have a particle contrast to match")
        self.particle_contrast = model_particle_contrast(model) if self.task.segmentation else None
        self.polarity_confidence = model_polarity_confidence(model)
        # segmentation: a second pass on the image less the plane under the first pass's background
        self.level = model_level(model) if check_level(level) == "auto" else level
        if self.level == "plane" and not self.task.segmentation:
            raise ConfigError("level='plane': only segmentation models have a background to level under")
        # segmentation: regions kept only where the network's probability peaks at this or above
        self.peak = model_peak(model) if check_peak(peak) == "auto" else peak
        if self.peak > OFF and not self.task.segmentation:
            raise ConfigError(f"peak={peak}: only segmentation models have particle probabilities to peak")
        self.engine = make_engine(model, engine, channels_last, precision)
        self.precision = getattr(self.engine, "precision", "float32")
        # called after every forward pass: a GUI's progress, or its cancel (by raising)
        self.on_batch = on_batch
        self.last_scale: ScaleChoice | None = None  # what the latest call ran at

    @torch.inference_mode()
    def __call__(self, image: np.ndarray, pixel_size: float | None = None, scale: float | str | None = None):
        """``pixel_size`` (nm/px), when known, keeps the working grid near the model's trained pixel
        sizes; ``scale`` (default: the predictor's) is a zoom factor or ``"auto"``. The choice is
        kept in ``self.last_scale`` and logged. ``polarity`` and ``level`` (segmentation): see
        :mod:`emzoo.inference.polarity` and :mod:`emzoo.inference.levelling`."""
        image = check_image_array(image)
        pixel_size = check_pixel_size(pixel_size)
        scale = self.scale if scale is None else check_scale(scale)
        choice, result, params = self._once(image, pixel_size, scale)
        if self.level == "plane":
            levelled = level(image, 1, self._foreground(result, params) <= 0.5, SIGNIFICANT_SWING)
            if levelled is not None:  # scaled as the image was: the ramp goes, the texture's contrast stays
                choice, result, params = self._once(levelled, pixel_size, scale, params)
            choice.levelled = levelled is not None
        if self.peak > OFF:
            unsure = unsure_regions(self._foreground(result, params), self.peak)
            choice.unsure_dropped = int(unsure.sum())
            result = drop_unsure(result, unsure)
        self.last_scale = choice
        _log.info("%s", choice.describe())
        return self.task.finish(result, self.output, params)

    def _once(
        self, image: np.ndarray, pixel_size: float | None, scale, params: tuple[float, float] | None = None
    ) -> tuple[ScaleChoice, np.ndarray, tuple[float, float]]:
        """One pass: the working scale and polarity chosen, the network's raw output on the
        input's grid (twice its size for super-resolution) and the normalisation's parameters
        (``params``: these, not the image's own)."""
        x, params = self.normalized(image, params)
        inverted = self.polarity == "inverted"
        choice, result = self._at_scale(-x if inverted else x, pixel_size, scale, params)
        auto = self.polarity == "auto" and self.particle_contrast is not None
        as_is = self._foreground(result, params) if auto else None
        # the image's contrast says: the other way up; or the model finds nothing (a particle filling an
        # inverted frame skews it the right way)
        nothing = auto and finds_nothing(as_is, self.peak)
        if auto and (nothing or image_contrast(x) != self.particle_contrast):
            other = self._at_scale(-x, pixel_size, scale, params)
            if prefers_inverted(as_is, self._foreground(other[1], params), self.polarity_confidence, nothing):
                (choice, result), inverted = other, True  # and the model agrees: it finds particles there
        if self.task.segmentation:
            choice.polarity = "inverted" if inverted else "as-is"
        if pixel_size:
            choice.working_pixel_size_nm = pixel_size / choice.zoom
        scale_out = self.task.output_scale
        return choice, resample(result, (scale_out * x.shape[0], scale_out * x.shape[1])), params

    def normalized(
        self, image: np.ndarray, params: tuple[float, float] | None = None
    ) -> tuple[np.ndarray, tuple[float, float]]:
        """``image`` as the network sees it (spikes replaced where the model's training data had
        them replaced, then the model's normalisation, or ``params``) and the normalisation's parameters."""
        if self.remove_outliers:
            image = remove_outliers(image)
        params = norm_params(image, self.normalization) if params is None else params
        return apply_params(image, params), params

    def _at_scale(self, x: np.ndarray, pixel_size: float | None, scale, params) -> tuple[ScaleChoice, np.ndarray]:
        """The working scale for ``x`` and the network's raw output there."""
        computed: dict[float, np.ndarray] = {}
        if scale != "auto":
            choice = ScaleChoice(float(scale), "given")
        elif self.task.segmentation:
            choice, computed = self._choose_by_particles(x, pixel_size, params)
        else:
            zoom = pixel_zoom(self.model, pixel_size)
            choice = ScaleChoice(zoom, "pixel-size" if pixel_size else "native")
        result = computed.get(choice.zoom)
        return choice, self._forward(x, choice.zoom) if result is None else result

    def _foreground(self, raw: np.ndarray, params) -> np.ndarray:
        """A segmentation's foreground probability from the network's raw output."""
        prob = self.task.finish(raw, "probability", params)
        return prob if prob.ndim == 2 else 1.0 - prob[0]

    def _choose_by_particles(self, x: np.ndarray, pixel_size: float | None, params) -> tuple[ScaleChoice, dict]:
        raw: dict[float, np.ndarray] = {}

        def foreground(zoom: float) -> np.ndarray:
            raw[zoom] = self._forward(x, zoom)
            return self._foreground(raw[zoom], params)

        particle_px = model_particle_range(self.model)
        zoom, _, table = choose_by_particles(
            foreground, x.shape, zoom_limits(self.model, pixel_size, x.shape), particle_px
        )
        median = next(m for z, _, m in table if z == zoom)
        rungs = [[round(z, 5), round(f, 3), None if m is None else round(m, 1)] for z, f, m in table]
        return ScaleChoice(zoom, "particles", particle_diameter_px=median, candidates=rungs), raw

    def _run(self, batch: np.ndarray) -> np.ndarray:
        out = self.engine(batch)
        if self.on_batch is not None:
            self.on_batch()
        return out

    def _forward(self, x: np.ndarray, zoom: float) -> np.ndarray:
        """The network's raw (C, H, W) output on ``x`` resampled by ``zoom``, on that working grid.
        The working image is framed by mirrored context so the border strip sees an image, not the
        convolutions' zero padding."""
        if abs(zoom - 1.0) >= 1e-9:
            x = resample(x, working_shape(x.shape, zoom))
        h, w = x.shape
        pad = round_up(min(BORDER_CONTEXT, self.margin), self.divisor) if self.mirror_border else 0
        x = np.pad(x, pad, mode="symmetric")
        x = upsample(torch.from_numpy(np.ascontiguousarray(x))[None, None], self.task)[0, 0].numpy()
        ph, pw = x.shape
        tile = self.tile
        if tile is None:  # images within the pixel budget run whole: no margins to recompute
            tile = 0 if ph * pw <= pixel_budget(self.model) else default_tile(self.model, self.margin, max(ph, pw))
        if tile == 0 or (ph <= tile and pw <= tile):
            result = self._run(x[None, None])[0]
        else:
            batch = self.batch_size or default_batch(self.model, tile)
            result = run_tiled(x, self._run, self.model, tile, self.margin, batch, self.progress)
        s, p = self.task.output_scale, pad * self.task.output_scale
        return result[:, p : p + s * h, p : p + s * w]


def predict(
    model: nn.Module | str | Path,
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
    scale: float | str = "auto",
    polarity: str = "auto",
    level: str = "auto",
    peak: float | str = "auto",
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
    ``scale``: ``"auto"`` (segmentation: the zoom where the image's particles are the size the model
    was trained on, found by a coarse-to-fine ladder of cheap passes; restoration: the pixel size
    brought into the trained range) or a zoom factor (0.25: run at a quarter of the resolution).
    The result is always on the input's grid; the choice is logged (``emzoo.predict``).
    ``polarity`` (segmentation): ``"auto"`` inverts an image whose particles have the other contrast
    than the model's (an inverted export, a BF-STEM image for a HAADF model), ``"as-is"`` never,
    ``"inverted"`` always (see :mod:`emzoo.inference.polarity`).
    ``level`` (segmentation): ``"plane"`` runs a second pass on the image less the plane fitted under
    the first pass's background (uneven illumination, a support's thickness gradient), ``"off"``
    never, ``"auto"`` as the checkpoint was calibrated (see :mod:`emzoo.inference.levelling`).
    ``peak`` (segmentation): a region called particle is kept only where its probability reaches
    ``peak`` somewhere (0.5: every region); ``"auto"`` as the checkpoint was calibrated (see
    :mod:`emzoo.inference.confidence`).
    For many images, build a :class:`Predictor` once instead; its ``last_scale`` says what ran.
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
        scale=scale,
        polarity=polarity,
        level=level,
        peak=peak,
    )
    return predictor(image, pixel_size)
