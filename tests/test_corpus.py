"""The simulated corpus: deterministic per sample, resumable, in layouts the loaders read, with
labels that agree with the images; and particle analysis measured against its known particles."""

import json

import numpy as np
import pytest
import tifffile

from emzoo.data import load_dataset
from emzoo.data.corpus import MODALITIES, build_corpus, records, simulate_sample
from emzoo.errors import EmzooError
from emzoo.inference.particles import analyze_particles, write_histogram


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(
        tmp_path_factory.mktemp("c") / "corpus", n_train=8, n_val=2, n_test=2, size=64, workers=1, progress=False
    )


def test_every_modality_and_label(corpus):
    rows = records(corpus)
    assert {r["modality"] for r in rows} == set(MODALITIES)
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    manifest = json.loads((corpus / "corpus.json").read_text())
    assert manifest["samples"] == 12 and set(manifest["per_modality"]) == set(MODALITIES)
    for row in rows:
        assert 0.005 <= row["pixel_size_nm"] <= 0.2
        image = corpus / "pretext" / row["split"] / row["modality"] / f"{row['name']}.tif"
        with tifffile.TiffFile(image) as tif:  # the pixel size is in the file, as ImageJ resolution
            assert tif.imagej_metadata["unit"] == "nm"
            x_res = tif.pages[0].tags["XResolution"].value
            assert x_res[1] / x_res[0] == pytest.approx(row["pixel_size_nm"], rel=1e-3)
        sr = tifffile.imread(corpus / "restore" / row["split"] / "noNoiseNoBackgroundSuperresolution" / image.name)
        assert sr.shape == (128, 128)


def test_layouts_load(corpus):
    for sub, task in [
        ("restore", "denoise"),
        ("restore", "bg-removal"),
        ("restore", "super-res"),
        ("pretext", "pretext"),
        ("segment/tem", "segment"),
        ("segment/stem", "segment"),
    ]:
        ds = load_dataset(corpus / sub, task, "train", image_size=32)
        sample = ds[0]
        assert sample["image"].shape[-2:] == (32, 32) and sample["target"].shape[-2:] == (32, 32)


def test_same_seed_same_bytes_and_resume(corpus, tmp_path):
    a = simulate_sample(0, "train", 1, 64)
    b = simulate_sample(0, "train", 1, 64)
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["instances"], b["instances"])
    assert not np.array_equal(simulate_sample(0, "test", 1, 64)["image"], a["image"])  # other stream
    # a lost sample is rebuilt, the rest kept: the same bytes as before
    victim = next((corpus / "index" / "train").glob("*.json"))
    name = json.loads(victim.read_text())["name"]
    restored = corpus / "restore" / "train" / "noNoise" / f"{name}.tif"
    before = restored.read_bytes()
    victim.unlink()
    restored.unlink()
    (corpus / "corpus.json").unlink()
    build_corpus(corpus, n_train=8, n_val=2, n_test=2, size=64, workers=1, progress=False)
    assert restored.read_bytes() == before
    with pytest.raises(EmzooError, match="other parameters"):
        build_corpus(corpus, n_train=8, n_val=2, n_test=2, size=128, workers=1, progress=False)


def _particle_samples(n):
    found, index = [], 0
    while len(found) < n:
        s = simulate_sample(3, "test", index, 256)
        index += 1
        p = s["params"]
        if s["particles"] and s["modality"] in ("haadf", "adf") and len(s["particles"]) >= 3:
            found.append(s)
        del p
    return found


def test_particle_analysis_matches_the_known_particles(tmp_path):
    """On simulated scenes with known particles (their true instance masks), the analysis counts
    within 10% and measures the mean diameter within 5%, in nm."""
    for s in _particle_samples(3):
        truth = s["instances"]
        n_true = len(np.unique(truth[truth > 0]))
        seen = [p["seen_diameter_nm"] for p in s["particles"]]
        report = analyze_particles((truth > 0).astype(np.uint8), s["pixel_size_nm"], exclude_border=False)
        assert abs(report.summary["count"] - n_true) <= max(1, 0.1 * n_true), (report.summary, n_true)
        assert report.summary["mean_diameter_nm"] == pytest.approx(np.mean(seen), rel=0.05)
        for row in report.rows:
            assert row["feret_min_nm"] <= row["feret_max_nm"] + 1e-6 and 0 < row["circularity"] <= 1
    write_histogram(tmp_path / "sizes.png", report.rows, s["pixel_size_nm"])
    assert (tmp_path / "sizes.png").read_bytes()[:4] == b"\x89PNG"


def test_touching_particles_are_split_and_specks_dropped():
    yy, xx = np.mgrid[0:120, 0:120]
    mask = ((yy - 60) ** 2 + (xx - 40) ** 2 < 20**2) | ((yy - 60) ** 2 + (xx - 78) ** 2 < 20**2)  # two, touching
    mask[5, 5] = mask[100, 110] = True  # single-pixel specks
    report = analyze_particles(mask.astype(np.uint8), pixel_size_nm=0.1)
    assert report.summary["count"] == 2
    assert report.summary["mean_diameter_nm"] == pytest.approx(4.0, rel=0.08)
    assert analyze_particles(np.zeros((64, 64)), 0.1).summary["count"] == 0


def test_corpus_version_1_stays_the_same_bytes():
    """The shipped checkpoints trained on corpus 1 stay reproducible: its samples never change."""
    import hashlib

    digests = [
        hashlib.sha256(simulate_sample(0, "train", i, 64, version=1)["image"].tobytes()).hexdigest()[:16]
        for i in (0, 1)
    ]
    assert digests == ["bf4611ba0255937b", "9dee83b32e3a670a"]


def test_seen_diameters_decide_what_is_particle_free():
    from emzoo.data.corpus import seen_diameters_nm

    assert seen_diameters_nm({"particles": []}) == []
    assert seen_diameters_nm({"particles": [{"diameter_nm": 2.0, "seen_diameter_nm": 0.0}]}) == []  # out of frame
    assert seen_diameters_nm({"particles": [{"diameter_nm": 2.0}, {"diameter_nm": 9, "seen_diameter_nm": 4}]}) == [
        2.0,
        4,
    ]
