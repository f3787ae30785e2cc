"""Training samples from the user's own micrographs, with no clean image (``emzoo adapt``).

The adaptation data folder holds each input normalised once (the model's normalisation, as
``predict`` applies it) as float32 ``.npy`` (frames, H, W): ``train/`` the image less a held-out
strip of its last rows, ``val/`` that strip. ``adapt.json`` says the method and the blind-spot
geometry. Samples are random patches (train) or a fixed set (val):

- ``n2v``: one pixel per ``MASK_SPACING`` x ``MASK_SPACING`` cell (4%) is masked and replaced by the
  median of its eight neighbours (N2V2, Hoeck et al. 2022: no identity leak, no checkerboard from
  random-neighbour copies); where the noise correlates along one axis (scan lines, camera charge
  sharing), the pixels beside it along that axis are replaced too (structN2V). Target: the raw
  patch and the mask.
- ``n2n``: the frames of a patch are split at random into two halves; input and target are the
  halves' means, whose noise is independent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from emzoo.data import transforms as T
from emzoo.data.noise import neighbour_correlation
from emzoo.errors import DataError
from emzoo.fsutil import atomic_write, atomic_write_text

ADAPT_FILE = "adapt.json"
MASK_SPACING = 5  # one blind spot per 5x5 cell: 4% of the pixels (measured better than 1.6% in 1 minute)
STRUCT_REACH = 2  # structN2V: pixels masked on each side along the correlated axis
CORRELATION_GAP = 0.1  # neighbour noise correlation larger along one axis than the other by this: structured
VAL_FRACTION = 0.1
MIN_SIDE = 32


def is_adapt_folder(path: str | Path) -> bool:
    return (Path(path) / ADAPT_FILE).is_file()


def noise_correlation(image: np.ndarray) -> tuple[float, float]:
    """Correlation of the noise between vertical and between horizontal neighbours, from the
    residual of a 3x3 median (signal mostly removed); white noise gives equal values on both axes."""
    residual = image - ndimage.median_filter(image, size=3, mode="reflect")
    return neighbour_correlation(residual[2:-2, 2:-2])


def correlated_axis(images: list[np.ndarray]) -> int | None:
    """The axis (0: columns, along y; 1: rows, along x) along which the noise correlates, or None."""
    vertical, horizontal = np.mean([noise_correlation(im[0]) for im in images], axis=0)
    if horizontal - vertical > CORRELATION_GAP:
        return 1
    if vertical - horizontal > CORRELATION_GAP:
        return 0
    return None


def write_adapt_data(
    folder: Path, stacks: list[np.ndarray], names: list[str], method: str, normalize, info: dict
) -> dict:
    """Write the normalised inputs, split into train and a held-out strip, and ``adapt.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    normalised = [normalize(stack) for stack in stacks]
    axis = correlated_axis(normalised) if method == "n2v" else None
    for stack, name in zip(normalised, names):
        rows = stack.shape[1]
        held = max(MIN_SIDE, int(round(rows * VAL_FRACTION))) if rows >= 4 * MIN_SIDE else 0
        parts = {"train": stack[:, : rows - held], "val": stack[:, rows - held :] if held else stack}
        for split, part in parts.items():
            (folder / split).mkdir(exist_ok=True)
            atomic_write(folder / split / f"{name}.npy", lambda tmp, a=part: np.save(tmp, np.ascontiguousarray(a)))
    record = dict(info, method=method, struct_axis=axis, files=names)
    atomic_write_text(folder / ADAPT_FILE, json.dumps(record, indent=1))
    return record


def _median_of_neighbours(patch: np.ndarray, ys: np.ndarray, xs: np.ndarray, axis: int | None) -> np.ndarray:
    """The median of the 3x3 neighbours; with correlated noise, of those off the correlated line
    (a neighbour along it shares the centre's noise: the blind spot would leak)."""
    padded = np.pad(patch, 1, mode="reflect")
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    if axis is not None:
        offsets = [(dy, dx) for dy, dx in offsets if (dy if axis == 1 else dx) != 0]
    neighbours = np.stack([padded[ys + 1 + dy, xs + 1 + dx] for dy, dx in offsets])
    return np.median(neighbours, axis=0)


def blind_spot(patch: np.ndarray, rng: np.random.Generator, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The N2V2 input (masked pixels replaced) and the mask of ``patch``."""
    h, w = patch.shape
    cells_y = np.arange(0, h, MASK_SPACING)
    cells_x = np.arange(0, w, MASK_SPACING)
    ys = (cells_y[:, None] + rng.integers(0, MASK_SPACING, (len(cells_y), len(cells_x)))).clip(0, h - 1).ravel()
    xs = (cells_x[None, :] + rng.integers(0, MASK_SPACING, (len(cells_y), len(cells_x)))).clip(0, w - 1).ravel()
    masked = patch.copy()
    masked[ys, xs] = _median_of_neighbours(patch, ys, xs, axis)
    if axis is not None:  # structN2V: hide the neighbours whose noise the centre's shares
        for step in range(1, STRUCT_REACH + 1):
            for sign in (-1, 1):
                yy = np.clip(ys + sign * step * (axis == 0), 0, h - 1)
                xx = np.clip(xs + sign * step * (axis == 1), 0, w - 1)
                masked[yy, xx] = rng.normal(0.0, 1.0, len(yy)).astype(np.float32)
    mask = np.zeros_like(patch)
    mask[ys, xs] = 1.0
    return masked, mask


class SelfSupervisedDataset(Dataset):
    """Random patches of an adaptation folder: ``length`` samples per epoch (train) or a fixed set
    covering the held-out strips (val)."""

    def __init__(self, folder: str | Path, split: str, patch: int, seed: int = 0, length: int = 256):
        self.folder = Path(folder)
        self.info = json.loads((self.folder / ADAPT_FILE).read_text())
        self.method, self.axis = self.info["method"], self.info.get("struct_axis")
        self.split = "val" if split in ("val", "test") else "train"
        if split == "test":
            raise DataError(f"{self.folder}: adaptation data has no test split (its held-out strip is 'val')")
        files = sorted((self.folder / self.split).glob("*.npy"))
        if not files:
            raise DataError(f"{self.folder / self.split}: no adaptation data")
        self.stacks = [np.load(f, allow_pickle=False) for f in files]
        smallest = min(min(s.shape[1:]) for s in self.stacks)
        self.patch = max(8, min(patch, smallest // 8 * 8))
        self.seed, self.epoch, self.layout = seed, 0, "adapt"
        self.length = length if self.split == "train" else max(8, min(64, length // 4))
        weights = np.array([s.shape[1] * s.shape[2] for s in self.stacks], float)
        self.weights = weights / weights.sum()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        train = self.split == "train"
        rng = T.sample_rng(self.seed + (0 if train else 7919), self.epoch if train else 0, index)
        stack = self.stacks[int(rng.choice(len(self.stacks), p=self.weights))]
        h, w = stack.shape[1:]
        p = self.patch
        top, left = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
        crop = stack[:, top : top + p, left : left + p]
        if train:  # flips keep the noise's correlated axis; 90-degree turns would swap it
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            if rng.random() < 0.5:
                crop = crop[:, :, ::-1]
        if self.method == "n2n":
            order = rng.permutation(crop.shape[0])
            half = crop.shape[0] // 2
            image, target = crop[order[:half]].mean(0), crop[order[half : 2 * half]].mean(0)
            target = target[None]
        else:
            image, mask = blind_spot(np.ascontiguousarray(crop[0]), rng, self.axis)
            target = np.stack([crop[0], mask])
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None],
            "target": torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32)),
        }
