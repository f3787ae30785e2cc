"""Every dataset layout loads from a fixture built in that layout; augmentation is paired;
bad data gives one clear error naming the file (or is skipped and reported); nothing on disk
is modified."""

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from emzoo import EmzooError
from emzoo.data import Corruption, detect_layout, load_dataset

RNG = np.random.default_rng(0)


def _img(h=48, w=48, dtype=np.uint16) -> np.ndarray:
    base = RNG.normal(size=(h, w)).cumsum(0).cumsum(1)
    base = (base - base.min()) / np.ptp(base)
    return (base * (255 if dtype == np.uint8 else 60000)).astype(dtype)


def _png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def cem_like(tmp_path) -> Path:
    """CEM500K: nested folders of single-channel TIFF patches (16-bit here)."""
    root = tmp_path / "cem500k"
    for i in range(12):
        path = root / f"dataset_{i % 3}" / f"sub{i % 2}" / f"patch_{i:03d}.tiff"
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, _img(56, 56))
    return root


@pytest.fixture
def temimagenet(tmp_path) -> Path:
    root = tmp_path / "TEMImageNet"
    for split, n in (("train", 4), ("test", 2)):
        for i in range(n):
            clean = _img(32, 32, np.uint8)
            _png(
                root / split / "image" / f"{i:05d}.png",
                np.clip(clean + RNG.integers(0, 40, clean.shape), 0, 255).astype(np.uint8),
            )
            _png(root / split / "noNoise" / f"{i:05d}.png", clean)
            _png(root / split / "noBackgroundnoNoise" / f"{i:05d}.png", clean)
            _png(
                root / split / "noNoiseNoBackgroundSuperresolution" / f"{i:05d}.png",
                np.kron(clean, np.ones((2, 2), np.uint8)),
            )
    return root


def _au_h5(root: Path, name: str, n: int = 5, size: int = 40, both: bool = False) -> None:
    images = np.stack([_img(size, size).astype(np.float32)[None] for _ in range(n)])
    labels = (images > np.median(images)).astype(np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    if both:
        with h5py.File(root / f"{name}.h5", "w") as f:
            f["images"], f["labels"] = images, labels
        return
    with h5py.File(root / f"{name}_Images.h5", "w") as f:
        f["images"] = images
    with h5py.File(root / f"{name}_Labels.h5", "w") as f:
        f["labels"] = labels


def test_unlabeled_nested_folders_pretext(cem_like):
    assert detect_layout(cem_like) == "unlabeled"
    train = load_dataset(cem_like, "pretext", "train", image_size=32, seed=0)
    val = load_dataset(cem_like, "pretext", "val", image_size=32, seed=0)
    test = load_dataset(cem_like, "pretext", "test", image_size=32, seed=0)
    assert len(train) + len(val) + len(test) == 12
    names = lambda ds: {ds.source.name(i) for i in range(len(ds))}  # noqa: E731
    assert not names(train) & names(val) and not names(train) & names(test)
    again = load_dataset(cem_like, "pretext", "train", image_size=32, seed=0)
    assert names(again) == names(train)  # deterministic split
    sample = train[0]
    assert sample["image"].shape == (1, 32, 32) and sample["target"].shape == (1, 32, 32)
    assert not torch.equal(sample["image"], sample["target"]), "the input must be corrupted"
    assert abs(float(sample["target"].mean())) < 2  # standardised
    # the same (seed, epoch, index) gives the same sample; another epoch another one
    assert torch.equal(train[0]["image"], sample["image"])
    train.set_epoch(1)
    assert not torch.equal(train[0]["target"], sample["target"])


def test_corruption_strengths_are_configurable(cem_like):
    clean = Corruption(noise_std=(0.0, 0.0), blur_sigma=(0.0, 0.0))
    ds = load_dataset(cem_like, "pretext", image_size=32, corruption=clean)
    s = ds[0]
    torch.testing.assert_close(s["image"], s["target"])


@pytest.mark.parametrize("task", ["denoise", "bg-removal", "super-res"])
def test_temimagenet(temimagenet, task):
    assert detect_layout(temimagenet) == "temimagenet"
    train = load_dataset(temimagenet, task, "train", image_size=16)
    assert len(train) == 4 and len(load_dataset(temimagenet, task, "test", image_size=16)) == 2
    s = train[1]
    assert s["image"].shape == (1, 16, 16) and s["target"].shape == (1, 16, 16)
    if task != "super-res":
        # noise-free target in the input's normalised units, same crop and orientation
        assert torch.corrcoef(torch.stack([s["image"].ravel(), s["target"].ravel()]))[0, 1] > 0.8


def test_paired_augmentation_keeps_pairs_aligned(tmp_path):
    root = tmp_path / "pairs"
    for i in range(3):
        img = _img(40, 40, np.uint8)
        _png(root / "images" / f"{i}.png", img)
        _png(root / "masks" / f"{i}.png", ((img > 128) * 255).astype(np.uint8))
    ds = load_dataset(root, "segment", "train", image_size=24, val_fraction=0, test_fraction=0, remove_outliers=False)
    for epoch in range(4):
        ds.set_epoch(epoch)
        s = ds[0]
        assert set(torch.unique(s["target"]).tolist()) <= {0.0, 1.0}
    # image and mask stay pixel-aligned through flips and rotations
    from emzoo.data import transforms as T

    img = _img(40, 40, np.uint8).astype(np.float32)
    mask = (img > 128).astype(np.float32)
    a, b = T.flip_rotate([img, mask], np.random.default_rng(3))
    assert np.array_equal(a > 128, b.astype(bool))


@pytest.mark.parametrize("both", [False, True])
def test_au_hdf5(tmp_path, both):
    root = tmp_path / "au"
    _au_h5(root / "train", "Au_Training_5nm", both=both)
    _au_h5(root / "test", "Au_Test_5nm", n=3, both=both)
    assert detect_layout(root) == "au-hdf5"
    ds = load_dataset(root, "segment", "train", image_size=32)
    assert len(ds) == 5
    s = ds[2]
    assert s["image"].shape == (1, 32, 32) and s["target"].shape == (1, 32, 32)
    assert len(load_dataset(root, "segment", "test", image_size=None)) == 3
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    batch = next(iter(loader))
    assert batch["image"].shape == (2, 1, 32, 32)


def test_hf_imagefolder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    root = tmp_path / "hf"
    rows = []
    for i in range(4):
        _png(root / "train" / "images" / f"{i}.png", _img(32, 32, np.uint8))
        tifffile.imwrite(
            _png(root / "train" / "masks" / f"{i}.png", np.zeros((1, 1), np.uint8)).with_suffix(".tif"),
            (_img(32, 32, np.uint8) > 128).astype(np.uint8),
        )
        rows.append({"file_name": f"images/{i}.png", "mask_file_name": f"masks/{i}.tif"})
    (root / "train" / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert detect_layout(root) == "imagefolder"
    ds = load_dataset(root, "segment", "train", image_size=16)
    assert len(ds) == 4
    s = ds[0]
    assert s["image"].shape == (1, 16, 16) and set(torch.unique(s["target"]).tolist()) <= {0.0, 1.0}
    stream = load_dataset(root, "segment", "train", image_size=16, streaming=True)
    first = next(iter(stream))
    assert first["image"].shape == (1, 16, 16)
    with pytest.raises(EmzooError, match="task 'denoise' needs a 'target_file_name' column"):
        load_dataset(root, "denoise", "train")


def test_bad_data_errors_name_the_file(tmp_path, cem_like):
    before = _tree_hash(cem_like)
    bad = cem_like / "dataset_0" / "sub0" / "patch_000.tiff"
    bad.write_bytes(b"garbage")
    with pytest.raises(EmzooError, match="patch_000.tiff: cannot read as TIFF"):
        ds = load_dataset(cem_like, "pretext", "train", image_size=32, val_fraction=0, test_fraction=0)
        [ds[i] for i in range(len(ds))]
    ds = load_dataset(cem_like, "pretext", "train", image_size=32, val_fraction=0, test_fraction=0, skip_bad=True)
    samples = [ds[i] for i in range(len(ds))]
    assert len(samples) == 12 and len(ds.skipped) == 1 and "patch_000.tiff" in ds.skipped[0]
    assert _tree_hash(cem_like) != before  # only our own corruption above changed it
    after = _tree_hash(cem_like)
    load_dataset(cem_like, "pretext", "train", image_size=32, skip_bad=True)[0]
    assert _tree_hash(cem_like) == after  # loading never writes


def test_layout_and_value_errors(tmp_path, temimagenet):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmzooError, match="empty: no images found"):
        detect_layout(tmp_path / "empty")
    with pytest.raises(EmzooError, match="cannot train 'segment'"):
        load_dataset(temimagenet, "segment")
    with pytest.raises(EmzooError, match="smaller than the crop size 64"):
        load_dataset(temimagenet, "denoise", image_size=64)[0]
    (temimagenet / "train" / "noNoise" / "00003.png").unlink()
    with pytest.raises(EmzooError, match="00003.png: no matching target"):
        load_dataset(temimagenet, "denoise")
    assert len(load_dataset(temimagenet, "denoise", skip_bad=True, image_size=16)) == 3
    # mask values and size mismatches
    root = tmp_path / "pairs"
    _png(root / "images" / "a.png", _img(32, 32, np.uint8))
    _png(root / "masks" / "a.png", np.full((32, 32), 7, np.uint8))
    with pytest.raises(EmzooError, match=r"a.png: mask values \{7\}; expected class ids 0..1"):
        load_dataset(root, "segment", val_fraction=0, test_fraction=0, image_size=16)[0]
    _png(root / "masks" / "a.png", np.zeros((30, 32), np.uint8))
    with pytest.raises(EmzooError, match=r"a.png: image \(32, 32\) and target \(30, 32\) differ"):
        load_dataset(root, "segment", val_fraction=0, test_fraction=0, image_size=16)[0]
    # NaN and constant images
    nan_root = tmp_path / "nan"
    nan_root.mkdir()
    arr = _img(32, 32).astype(np.float32)
    arr[0, 0] = np.nan
    np.save(nan_root / "n.npy", arr)
    with pytest.raises(EmzooError, match="n.npy: 1 NaN/Inf pixels"):
        load_dataset(nan_root, "pretext", val_fraction=0, test_fraction=0, image_size=16)[0]
    np.save(nan_root / "n.npy", np.ones((32, 32), np.float32))
    with pytest.raises(EmzooError, match="n.npy: constant image"):
        load_dataset(nan_root, "pretext", val_fraction=0, test_fraction=0, image_size=16)[0]


def test_simulation_is_the_same_in_every_process():
    """The same seed gives the same bytes in separate processes (abTEM's default FFTW_MEASURE
    planning did not: its rounding changed, and with it every Poisson draw after it)."""
    import subprocess
    import sys

    code = (
        "import hashlib, numpy as np; from emzoo.data.simulate import simulate_hrtem_au;"
        "rng = np.random.default_rng(3); a = [simulate_hrtem_au(rng, 64)[0] for _ in range(2)];"
        "print(hashlib.sha256(np.stack(a).tobytes()).hexdigest())"
    )
    digests = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout for _ in "ab"
    }
    assert len(digests) == 1 and len(digests.pop().strip()) == 64
