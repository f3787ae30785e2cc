"""From raw (image, target) pairs to training tensors: the per-task sample recipe (crop,
augmentation, corruption, normalisation), the torch datasets over any source, and
:func:`load_dataset`, which detects the layout and returns one split."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from emzoo import io
from emzoo.data import transforms as T
from emzoo.data.selfsupervised import SelfSupervisedDataset, is_adapt_folder
from emzoo.data.sources import Source, _HFStream, open_source
from emzoo.errors import DataError, EmzooError
from emzoo.normalize import apply_params, normalize, remove_outliers
from emzoo.tasks import get_task, upsample

_log = logging.getLogger(__name__)


def _check_mask(mask: np.ndarray, name: str, num_classes: int) -> np.ndarray:
    values = np.unique(mask)
    if num_classes <= 2 and set(values.tolist()) <= {0.0, 255.0}:
        return (mask > 0).astype(np.float32)
    if not np.all(np.isin(values, np.arange(max(num_classes, 2)))):
        shown = ", ".join(f"{v:g}" for v in values[:6])
        raise DataError(
            f"{name}: mask values {{{shown}{', ...' if len(values) > 6 else ''}}}; expected class ids "
            f"0..{max(num_classes, 2) - 1} (or 0/255 for a binary mask)"
        )
    return mask.astype(np.float32)


@dataclass
class SampleRecipe:
    """How one raw (image, target) pair becomes training tensors."""

    task: str
    image_size: int | None = 256
    augment: bool = True
    normalization: str = "standardize"
    corruption: T.Corruption | None = None
    num_classes: int = 1
    remove_outliers: bool = False
    despike_prob: float = 0.0  # augmentation: spikes replaced in this share of the frames
    detector_noise_prob: float = 0.0  # augmentation (denoising): frames recorded again, see detector_recording
    background_prob: float = 0.0  # augmentation (segmentation): a smooth background added, see smooth_background
    zoom_window_prob: float = 0.0  # augmentation (segmentation): a window enlarged to the crop, see zoomed_window
    seed: int = 0

    def __call__(self, image, target, name, rng) -> dict[str, torch.Tensor]:
        io.check_image(image, name)
        task = get_task(self.task)
        scale = task.output_scale
        if target is not None and target.shape != (scale * image.shape[0], scale * image.shape[1]):
            if scale == 1:
                raise DataError(f"{name}: image {image.shape} and target {target.shape} differ in size")
            raise DataError(f"{name}: {task.name} target {target.shape} is not {scale}x the image {image.shape}")
        size = self.image_size
        in_size = size // scale if size is not None else 0
        if self.remove_outliers or (self.augment and self.despike_prob and rng.random() < self.despike_prob):
            image = remove_outliers(image)
        if task.rerecordable and self.augment and self.detector_noise_prob and rng.random() < self.detector_noise_prob:
            image, target = T.detector_recording(target, rng)
        if task.segmentation:
            target = _check_mask(target, name, self.num_classes)
            if self.augment and self.background_prob and rng.random() < self.background_prob:
                image = T.smooth_background(image, rng)
            if self.augment and self.zoom_window_prob and rng.random() < self.zoom_window_prob:
                image, target = T.zoomed_window(image, target, rng, size=in_size or min(image.shape))
            elif self.augment:
                image, target = T.random_rescale(image, target, rng, min_size=in_size)
        image, params = normalize(image, self.normalization)
        if target is not None and not task.segmentation:  # restoration targets: the input's normalisation
            target = apply_params(target, params)
        if size is not None:
            if min(image.shape) < in_size:
                raise DataError(
                    f"{name}: image {image.shape[0]}x{image.shape[1]} is smaller than the crop size {in_size}; "
                    "lower `image_size`"
                )
            top, left = T.random_crop_box(image.shape, in_size, rng if self.augment else None)
            image = image[top : top + in_size, left : left + in_size]
            if target is not None:
                f = scale
                target = target[f * top : f * (top + in_size), f * left : f * (left + in_size)]
        if task.pretext:
            target = image
        arrays = [image] if target is None else [image, target]
        if self.augment:
            arrays = T.flip_rotate(arrays, rng)
        image = arrays[0]
        target = arrays[1] if len(arrays) > 1 else None
        if task.pretext:
            image = (self.corruption or T.Corruption())(target, rng)
        elif task.segmentation and self.augment:
            image = T.add_noise(image, rng)
        sample = {
            "image": upsample(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None], task)[0]
        }
        if target is not None:
            t = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32))
            sample["target"] = t.long() if task.segmentation and self.num_classes > 2 else t[None]
        return sample


class EMDataset(Dataset):
    """A map-style dataset of ``{"image": (1,H,W), "target": ...}`` over any :class:`Source`.

    Bad samples raise a one-line error naming the file, or with ``skip_bad`` are replaced by the
    next good one and listed in ``self.skipped``.
    """

    def __init__(self, source: Source, recipe: SampleRecipe, skip_bad: bool = False, layout: str = ""):
        self.source, self.recipe, self.skip_bad = source, recipe, skip_bad
        self.layout = layout or source.layout
        self.epoch = 0
        self.skipped: list[str] = []

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        for attempt in range(len(self.source)):
            i = (index + attempt) % len(self.source)
            try:
                image, target, name = self.source.load(i)
                rng = T.sample_rng(self.recipe.seed, self.epoch, i)
                return self.recipe(image, target, name, rng)
            except EmzooError as e:
                if not self.skip_bad:
                    raise
                if str(e) not in self.skipped:
                    self.skipped.append(str(e))
                    _log.warning("skipped: %s", e)
        raise DataError(f"every sample of this dataset is bad; first problem: {self.skipped[0]}")


class StreamingEMDataset(IterableDataset):
    """The streaming twin of :class:`EMDataset` for ``datasets`` streams, sharded per worker."""

    def __init__(self, stream: _HFStream, recipe: SampleRecipe):
        self.stream, self.recipe, self.epoch = stream, recipe, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        for i, (image, target, name) in enumerate(self.stream):
            if info is not None and i % info.num_workers != info.id:
                continue
            yield self.recipe(image, target, name, T.sample_rng(self.recipe.seed, self.epoch, i))


def load_dataset(
    path: str | Path,
    task: str = "pretext",
    split: str = "train",
    *,
    image_size: int | None = 256,
    augment: bool | None = None,
    normalization: str = "standardize",
    corruption: T.Corruption | None = None,
    num_classes: int = 1,
    remove_outliers: bool | None = None,
    despike_prob: float = 0.0,
    detector_noise_prob: float = 0.0,
    background_prob: float = 0.0,
    zoom_window_prob: float = 0.0,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    skip_bad: bool = False,
    streaming: bool = False,
    objective: str = "supervised",
) -> Dataset:
    """Detect the layout at ``path`` and return one split as a torch dataset for ``task``.

    Augmentation (random crop, flips, 90-degree rotations; resize and noise for segmentation)
    is on for the train split by default; val/test are centre-cropped (or whole when
    ``image_size`` is None). A self-supervised ``objective`` (``n2v``, ``n2n``) reads an
    adaptation folder (:mod:`emzoo.data.selfsupervised`).
    """
    if objective != "supervised":
        if not is_adapt_folder(path):
            raise DataError(f"{path}: not an adaptation data folder (no adapt.json); `emzoo adapt` writes one")
        return SelfSupervisedDataset(path, split, image_size or 64, seed)
    spec = open_source(
        path,
        task,
        split,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        skip_bad=skip_bad,
        streaming=streaming,
    )
    recipe = SampleRecipe(
        task=task,
        image_size=image_size,
        augment=(split == "train") if augment is None else augment,
        normalization=normalization,
        corruption=corruption,
        num_classes=num_classes,
        remove_outliers=(spec.layout == "au-hdf5") if remove_outliers is None else remove_outliers,
        despike_prob=despike_prob,
        detector_noise_prob=detector_noise_prob,
        background_prob=background_prob,
        zoom_window_prob=zoom_window_prob,
        seed=seed,
    )
    if isinstance(spec.source, _HFStream):
        return StreamingEMDataset(spec.source, recipe)
    dataset = EMDataset(spec.source, recipe, skip_bad=skip_bad, layout=spec.layout)
    dataset.skipped.extend(spec.skipped)
    return dataset


def fingerprint(dataset: Dataset) -> str:
    """A short hash of what a dataset holds (names and sizes), for run records."""
    source = getattr(dataset, "source", None)
    h = hashlib.sha256()
    if isinstance(source, Source):
        for i in range(len(source)):
            h.update(source.name(i).encode())
    h.update(json.dumps({"n": len(dataset) if hasattr(dataset, "__len__") else -1}).encode())
    return h.hexdigest()[:16]
