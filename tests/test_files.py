"""Folder prediction as a library call (`emzoo.predict_files`, what `emzoo predict` runs): nothing is
lost, nothing of the user's is replaced, every kill is finished by a rerun, two runs share a folder."""

import json
import os
import stat
import threading

import numpy as np
import pytest

import emzoo
from emzoo import io
from emzoo.inference.files import MANIFEST, FileOptions, predict_files

SEG = "unet-2-44-emsim-hrtem-seg"


@pytest.fixture(scope="module")
def predictor():
    return emzoo.Predictor(emzoo.load(SEG))


def _images(folder, n=2, size=48):
    rng = np.random.default_rng(0)
    for k in range(n):
        io.write(folder / f"m{k}.tif", rng.random((size, size)).astype(np.float32), {"pixel_size_nm": 0.05})
    return sorted(folder.glob("*.tif"))


def test_outputs_never_land_on_inputs_nor_in_their_folders(tmp_path, predictor):
    sub = tmp_path / "in" / "sub"
    _images(sub)
    before = {p: p.read_bytes() for p in sub.iterdir()}
    for out in (tmp_path / "in", sub):  # the parent of the input folder, and the folder itself
        with pytest.raises(emzoo.ConfigError, match="holds the input"):
            predict_files(predictor, [tmp_path / "in"], out, overwrite=True)
    assert {p: p.read_bytes() for p in sub.iterdir()} == before
    with pytest.raises(emzoo.ConfigError, match="output_dir ''"):
        predict_files(predictor, [sub], "")


def test_user_files_are_never_replaced_or_deleted(tmp_path, predictor):
    _images(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".m0.notes").write_text("mine")  # looks like a temp file of m0's outputs, is not one
    (out / "particles_summary.json").write_text("my own summary")
    with pytest.raises(emzoo.EmzooError, match="not written by emzoo"):
        predict_files(predictor, [tmp_path / "in"], out)
    assert (out / "particles_summary.json").read_text() == "my own summary"
    (out / "particles_summary.json").unlink()
    predict_files(predictor, [tmp_path / "in"], out)
    assert (out / ".m0.notes").read_text() == "mine"


def test_a_kill_between_outputs_and_manifest_is_finished_by_a_rerun(tmp_path, predictor):
    _images(tmp_path / "in", n=3)
    out = tmp_path / "out"
    predict_files(predictor, [tmp_path / "in"], out)
    records = json.loads((out / MANIFEST).read_text())
    records["m1"]["state"] = "pending"  # killed after writing m1's outputs, before recording them done
    (out / MANIFEST).write_text(json.dumps(records))
    (out / "m1_particles.csv").unlink()  # and before its table was written
    report = predict_files(predictor, [tmp_path / "in"], out)
    assert report.written == ["m1"] and report.done_before == 2
    summary = json.loads((out / "particles_summary.json").read_text())
    assert sorted(summary) == ["m0", "m1", "m2"]  # the resumed run's summary covers every image
    assert "scale" in summary["m0"] and summary["m0"]["scale"]["method"] in ("particles", "given", "native")


def test_two_runs_into_one_folder_keep_every_record(tmp_path, predictor):
    _images(tmp_path / "a", n=3)
    _images(tmp_path / "b", n=3, size=40)
    (tmp_path / "b" / "m0.tif").rename(tmp_path / "b" / "n0.tif")
    (tmp_path / "b" / "m1.tif").rename(tmp_path / "b" / "n1.tif")
    (tmp_path / "b" / "m2.tif").rename(tmp_path / "b" / "n2.tif")
    out = tmp_path / "out"
    errors = []

    def run(folder):
        try:
            predict_files(emzoo.Predictor(emzoo.load(SEG)), [folder], out)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(tmp_path / name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    records = json.loads((out / MANIFEST).read_text())
    assert {k for k in records if not k.startswith("<")} == {"m0", "m1", "m2", "n0", "n1", "n2"}


def test_refused_runs_leave_no_folder_and_all_bad_inputs_fail(tmp_path, predictor):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.tif").write_bytes(b"not a tiff")
    with pytest.raises(emzoo.EmzooError, match="bad.tif"):
        predict_files(predictor, [tmp_path / "in"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(emzoo.DataError, match="every input was bad"):
        predict_files(predictor, [tmp_path / "in"], tmp_path / "out2", skip_bad=True)


def test_results_follow_the_umask(tmp_path, predictor):
    _images(tmp_path / "in", n=1)
    old = os.umask(0o022)
    try:
        predict_files(predictor, [tmp_path / "in"], tmp_path / "out", FileOptions(png=True))
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "out" / "m0.tif").stat().st_mode)
    assert mode == 0o644


def test_implausible_pixel_size_in_a_file_is_one_line(tmp_path, predictor):
    io.write(tmp_path / "in" / "x.tif", np.random.rand(48, 48).astype(np.float32), {"pixel_size_nm": 1e-9})
    with pytest.raises(emzoo.DataError, match="pixel size in the file"):
        predict_files(predictor, [tmp_path / "in"], tmp_path / "out")
