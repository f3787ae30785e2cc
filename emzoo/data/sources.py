"""The paper's datasets in their owners' on-disk layouts, read lazily as (image, target, name).

Layouts (detected by :func:`detect_layout`):
- ``unlabeled``: nested folders of images in any format ``emzoo.io`` reads (CEM500K);
- ``temimagenet``: ``image/`` + ``noNoise/`` | ``noBackgroundnoNoise/`` |
  ``noNoiseNoBackgroundSuperresolution/`` with matching file names (TEMImageNet);
- ``au-hdf5``: HDF5 files whose names contain ``images`` / ``labels`` with datasets ``images`` /
  ``labels`` shaped (N, 1, H, W), or one file holding both (Sytwu et al.'s Au nanoparticles);
- ``image-mask``: ``images/`` + ``masks/`` folders with matching stems;
- ``imagefolder``: a Hugging Face ``datasets`` imagefolder with ``metadata.jsonl``.
Splits: ``train/``, ``val/`` (or ``validation/``) and ``test/`` sub-folders are honoured; without
them a deterministic split by hashing each sample's name with the seed.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emzoo import io
from emzoo.errors import ConfigError, DataError, EmzooError
from emzoo.tasks import RESTORATION_TASKS, get_task

_log = logging.getLogger(__name__)

TEM_TARGETS = {name: get_task(name).target_folder for name in RESTORATION_TASKS}
SPLIT_DIRS = {"train": ("train",), "val": ("val", "validation", "valid"), "test": ("test",)}
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
LAYOUT_TASKS = {
    "unlabeled": ("pretext",),
    "temimagenet": ("pretext", *RESTORATION_TASKS),
    "au-hdf5": ("pretext", "segment"),
    "image-mask": ("pretext", "segment"),
    "imagefolder": ("pretext", "segment", *RESTORATION_TASKS),
}


# --------------------------------------------------------------------------------- sources
class Source:
    """Random access to (image, target-or-None, name) in a layout's own format."""

    layout = ""

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None, str]:
        raise NotImplementedError

    def name(self, index: int) -> str:
        raise NotImplementedError


def _list_images(folder: Path) -> list[Path]:
    """Every image file below ``folder``, in a stable order, without reading any of them."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(
            Path(dirpath) / f for f in sorted(filenames) if f.lower().endswith(io.IMAGE_SUFFIXES) and f[0] != "."
        )
    return found


class FileSource(Source):
    """Image files, optionally each paired with a target file."""

    def __init__(self, files: list[Path], targets: list[Path] | None = None, layout: str = "unlabeled", root=None):
        self.files, self.targets, self.layout = files, targets, layout
        self.root = Path(root) if root else None

    def __len__(self) -> int:
        return len(self.files)

    def name(self, index: int) -> str:
        path = self.files[index]
        return str(path.relative_to(self.root)) if self.root else str(path)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None, str]:
        image, _ = io.read(self.files[index])
        target = io.read(self.targets[index])[0] if self.targets is not None else None
        return image, target, str(self.files[index])


class HDF5Source(Source):
    """Sytwu et al.'s HDF5 patches: ``images`` and ``labels`` (N, 1, H, W), opened lazily in
    each worker process."""

    layout = "au-hdf5"

    def __init__(self, pairs: list[tuple[Path, str, Path | None, str | None]]):
        import h5py

        self.pairs = pairs
        self.index: list[tuple[int, int]] = []
        for k, (image_file, image_key, label_file, label_key) in enumerate(pairs):
            try:
                with h5py.File(image_file, "r") as f:
                    n = f[image_key].shape[0]
                    image_hw = f[image_key].shape[-2:]
                if label_file is not None:
                    with h5py.File(label_file, "r") as f:
                        n_labels = f[label_key].shape[0]
                        label_hw = f[label_key].shape[-2:]
                    if n_labels != n or label_hw != image_hw:
                        raise DataError(
                            f"{label_file}: labels {n_labels}x{tuple(label_hw)} do not match images "
                            f"{n}x{tuple(image_hw)} in {image_file}"
                        )
            except EmzooError:
                raise
            except Exception as e:
                raise DataError(f"{image_file}: cannot read as HDF5 ({e})") from None
            self.index += [(k, i) for i in range(n)]
        self._handles: dict[Path, Any] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.index)

    def _dataset(self, path: Path, key: str):
        import h5py

        if os.getpid() != self._pid:  # a forked worker must not share the parent's handles
            self._handles, self._pid = {}, os.getpid()
        if path not in self._handles:
            self._handles[path] = h5py.File(path, "r")
        return self._handles[path][key]

    def name(self, index: int) -> str:
        k, i = self.index[index]
        return f"{self.pairs[k][0].name}[{i}]"

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None, str]:
        k, i = self.index[index]
        image_file, image_key, label_file, label_key = self.pairs[k]
        image = np.squeeze(np.asarray(self._dataset(image_file, image_key)[i], dtype=np.float32))
        target = None
        if label_file is not None:
            target = np.squeeze(np.asarray(self._dataset(label_file, label_key)[i], dtype=np.float32))
        return image, target, f"{image_file}[{i}]"

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state


class HFSource(Source):
    """A Hugging Face ``datasets`` split with an image column and optionally a target column."""

    layout = "imagefolder"

    def __init__(self, dataset, target_column: str | None):
        self.dataset, self.target_column = dataset, target_column

    def __len__(self) -> int:
        return len(self.dataset)

    def name(self, index: int) -> str:
        return f"row {index}"

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None, str]:
        return _hf_row(self.dataset[index], self.target_column) + (f"row {index}",)


def _hf_row(row: dict, target_column: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    image = np.asarray(row["image"], dtype=np.float32)
    if image.ndim == 3:
        image = image[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    target = np.asarray(row[target_column], dtype=np.float32) if target_column else None
    if target is not None and target.ndim == 3:
        target = target[..., 0]
    return image, target


# -------------------------------------------------------------------------------- layouts
def _split_root(root: Path, split: str) -> Path | None:
    for name in SPLIT_DIRS[split]:
        if (root / name).is_dir():
            return root / name
    return None


def has_split_dirs(root: Path) -> bool:
    return any(_split_root(root, s) is not None for s in SPLIT_DIRS)


def _hdf5_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in HDF5_SUFFIXES and p.is_file())


def detect_layout(path: str | Path) -> str:
    """Name the layout of a dataset folder (or HDF5 file)."""
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root}: no such file or folder")
    if root.is_file():
        if root.suffix.lower() in HDF5_SUFFIXES:
            return "au-hdf5"
        raise DataError(f"{root}: a dataset is a folder (or an HDF5 file); got a {root.suffix} file")
    probe = root
    if has_split_dirs(root):
        probe = next(_split_root(root, s) for s in SPLIT_DIRS if _split_root(root, s) is not None)
    if (root / "metadata.jsonl").is_file() or (probe / "metadata.jsonl").is_file():
        return "imagefolder"
    if (probe / "image").is_dir() and any((probe / d).is_dir() for d in TEM_TARGETS.values()):
        return "temimagenet"
    if (probe / "images").is_dir() and (probe / "masks").is_dir():
        return "image-mask"
    if _hdf5_files(probe):
        return "au-hdf5"
    if any(True for _ in _list_images(probe)[:1]):
        return "unlabeled"
    raise DataError(
        f"{root}: no images found; expected image files (PNG/TIFF/MRC/DM3/DM4/EMD/SER/NPY), "
        "TEMImageNet folders, images/ + masks/, HDF5 patches or a metadata.jsonl"
    )


def _hash_split(name: str, seed: int, val_fraction: float, test_fraction: float) -> str:
    u = int.from_bytes(hashlib.sha1(f"{seed}:{name}".encode()).digest()[:8], "little") / 2**64
    if u < test_fraction:
        return "test"
    return "val" if u < test_fraction + val_fraction else "train"


def _paired(root: Path, image_dir: str, target_dir: str, skip_bad: bool, report: list[str]):
    images = {p.relative_to(root / image_dir).with_suffix(""): p for p in _list_images(root / image_dir)}
    targets = {p.relative_to(root / target_dir).with_suffix(""): p for p in _list_images(root / target_dir)}
    files, target_files = [], []
    for key in sorted(images):
        if key not in targets:
            msg = f"{images[key]}: no matching target in {root / target_dir}"
            if not skip_bad:
                raise DataError(msg)
            report.append(msg)
            continue
        files.append(images[key])
        target_files.append(targets[key])
    return files, target_files


def _hdf5_pairs(files: list[Path], task: str) -> list[tuple[Path, str, Path | None, str | None]]:
    import h5py

    def keys(path: Path) -> set[str]:
        try:
            with h5py.File(path, "r") as f:
                return set(f.keys())
        except Exception as e:
            raise DataError(f"{path}: cannot read as HDF5 ({e})") from None

    pairs = []
    by_name = {p.name.lower(): p for p in files}
    for path in files:
        lower = path.name.lower()
        k = keys(path)
        if "images" in k and "labels" in k:
            pairs.append((path, "images", path, "labels"))
        elif "images" in lower and "images" in k:
            label_path = by_name.get(lower.replace("images", "labels"))
            if label_path is None and get_task(task).segmentation:
                raise DataError(f"{path}: no matching labels file ({path.name} with 'labels' for 'images')")
            pairs.append((path, "images", label_path, "labels" if label_path else None))
        elif "labels" in lower:
            continue
        elif "images" not in k:
            raise DataError(f"{path}: no 'images' dataset (found {sorted(k)})")
    if not pairs:
        raise DataError(f"{files[0].parent}: HDF5 files but none with an 'images' dataset")
    return pairs


@dataclass
class SourceSpec:
    source: Source
    layout: str
    skipped: list[str] = field(default_factory=list)


def open_source(
    path: str | Path,
    task: str,
    split: str = "train",
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    skip_bad: bool = False,
    streaming: bool = False,
) -> SourceSpec:
    """The samples of one split of a dataset, in the layout found at ``path``."""
    if split not in SPLIT_DIRS:
        raise ConfigError(f"split {split}: expected one of {', '.join(SPLIT_DIRS)}")
    root = Path(path)
    layout = detect_layout(root)
    if task not in LAYOUT_TASKS[layout]:
        raise ConfigError(
            f"{root}: a {layout} dataset cannot train '{task}'; it supports {', '.join(LAYOUT_TASKS[layout])}"
        )
    if layout == "imagefolder":
        return SourceSpec(_hf_source(root, task, split, streaming), layout)
    skipped: list[str] = []
    base = _split_root(root, split) if root.is_dir() and has_split_dirs(root) else None
    hashed = base is None
    base = base or root
    if layout == "temimagenet":
        target_dir = TEM_TARGETS.get(task)
        if target_dir is None:  # pretext: the clean noNoise images are the unlabeled pool
            target_dir = "noNoise"
        if not (base / target_dir).is_dir():
            raise DataError(f"{base}: no {target_dir}/ folder for task '{task}'")
        inputs, targets = _paired(base, "image", target_dir, skip_bad, skipped)
        if get_task(task).pretext:
            source: Source = FileSource(targets, None, "temimagenet", root)
        else:
            source = FileSource(inputs, targets, "temimagenet", root)
    elif layout == "image-mask":
        inputs, targets = _paired(base, "images", "masks", skip_bad, skipped)
        source = FileSource(inputs, targets if get_task(task).segmentation else None, layout, root)
    elif layout == "au-hdf5":
        files = [base] if base.is_file() else _hdf5_files(base)
        pairs = _hdf5_pairs(files, task)
        if not get_task(task).segmentation:
            pairs = [(f, k, None, None) for f, k, _, _ in pairs]
        source = HDF5Source(pairs)
    else:
        source = FileSource(_list_images(base), None, layout, root)
    if hashed:
        fractions = (seed, val_fraction, test_fraction)
        keep = [i for i in range(len(source)) if _hash_split(source.name(i), *fractions) == split]
        source = Subset(source, keep)
    if len(source) == 0:
        raise DataError(f"{root}: the '{split}' split is empty ({layout} layout); add data or change the split")
    return SourceSpec(source, layout, skipped)


class Subset(Source):
    def __init__(self, source: Source, indices: list[int]):
        self.source, self.indices, self.layout = source, indices, source.layout

    def __len__(self) -> int:
        return len(self.indices)

    def name(self, index: int) -> str:
        return self.source.name(self.indices[index])

    def load(self, index: int):
        return self.source.load(self.indices[index])


def _hf_source(root: Path, task: str, split: str, streaming: bool):
    import datasets

    hf_split = {"val": "validation"}.get(split, split)
    try:
        ds = datasets.load_dataset("imagefolder", data_dir=str(root), split=hf_split, streaming=streaming)
    except ValueError as e:
        raise DataError(f"{root}: imagefolder has no '{hf_split}' split ({str(e).splitlines()[0]})") from None
    except Exception as e:
        raise DataError(f"{root}: cannot load as a Hugging Face imagefolder ({str(e).splitlines()[0]})") from None
    columns = set(ds.column_names or ds.features or [])
    target_column = None
    if get_task(task).segmentation:
        target_column = "mask" if "mask" in columns else None
        if target_column is None:
            raise DataError(f"{root}/metadata.jsonl: segmentation needs a 'mask_file_name' column")
    elif not get_task(task).pretext:
        target_column = "target" if "target" in columns else None
        if target_column is None:
            raise DataError(f"{root}/metadata.jsonl: task '{task}' needs a 'target_file_name' column")
    if streaming:
        return _HFStream(ds, target_column)
    return HFSource(ds, target_column)


@dataclass
class _HFStream:
    dataset: Any
    target_column: str | None
    layout: str = "imagefolder"

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray | None, str]]:
        for i, row in enumerate(self.dataset):
            yield _hf_row(row, self.target_column) + (f"row {i}",)


# ------------------------------------------------------------------------------- datasets
