"""BioImage Model Zoo packages pass the official bioimageio.core checks, reproduce emzoo's own
prediction, and the checks really compare outputs (a package with its preprocessing removed fails)."""

import zipfile

import numpy as np
import pytest
import yaml
from bioimageio.core import test_model as bioimageio_checks
from bioimageio.spec import load_model_description
from PIL import Image

import emzoo
from emzoo.export import export
from tests.conftest import trained_model


@pytest.fixture(scope="module")
def seg_package(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bio")
    folder = emzoo.save_pretrained(trained_model("emzoo_unet_2_44"), tmp / "unet-seg", task="segment")
    report = export(str(folder), "bioimageio", tmp / "package")
    return folder, tmp / "package", report


def test_segmentation_package_passes_bioimageio_core(seg_package):
    folder, package, report = seg_package
    assert report["bioimageio_core_checks"] == "passed"
    summary = bioimageio_checks(package / "bioimageio.yaml")  # re-run from disk, as bioimage.io's CI would
    assert summary.status == "passed", summary.display()
    names = " ".join(d.name for d in summary.details)
    assert "Reproduce test outputs from test inputs (torchscript)" in names
    assert "Reproduce test outputs from test inputs (onnx)" in names
    descr = load_model_description(package / "bioimageio.yaml")
    assert [p.id for p in descr.inputs[0].preprocessing if p.id != "ensure_dtype"] == ["zero_mean_unit_variance"]
    assert [p.id for p in descr.outputs[0].postprocessing if p.id != "ensure_dtype"] == ["sigmoid"]
    assert {"torchscript", "onnx"} <= set(descr.weights.available_formats)
    # the test pair is emzoo's own prediction on the embedded simulated HRTEM example, with the network
    # run as a package consumer runs it: native scale, its own zero padding (no scale ladder, no mirror)
    image = np.load(package / "test_input.npy")[0, 0]
    net = emzoo.Predictor(emzoo.load(str(folder)), tile=0, output="probability", scale=1.0, mirror_border=False)
    expected = net(image)
    np.testing.assert_allclose(np.load(package / "test_output.npy")[0, 0], expected, atol=1e-6)
    assert image.std() > 0 and 0 < expected.mean() < 1
    cover = Image.open(package / "cover.png")
    assert cover.size == (2 * image.shape[1], image.shape[0])
    with zipfile.ZipFile(package / report["zip"]) as z:
        assert {"rdf.yaml", "weights.onnx", "weights.torchscript.pt", "test_input.npy"} <= set(z.namelist())


def test_bioimageio_checks_catch_a_wrong_package(seg_package, tmp_path):
    _, package, _ = seg_package
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in package.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    rdf = yaml.safe_load((package / "bioimageio.yaml").read_text())
    rdf["inputs"][0]["preprocessing"] = []  # raw counts straight into the network
    (broken / "bioimageio.yaml").write_text(yaml.safe_dump(rdf))
    summary = bioimageio_checks(broken / "bioimageio.yaml")
    assert summary.status != "passed"
    failed = [d.name for d in summary.details if d.status == "failed"]
    assert "Reproduce test outputs from test inputs (torchscript)" in failed


def test_super_resolution_package_doubles_the_size(tmp_path):
    model = trained_model("emzoo_unet_2_44")
    folder = emzoo.save_pretrained(model, tmp_path / "sr", task="super-res")
    report = export(str(folder), "bioimageio", tmp_path / "package")
    assert report["bioimageio_core_checks"] == "passed"
    h = report["test_tensor_shape"]["input"][-1]
    assert report["test_tensor_shape"]["output"][-2:] == [2 * h, 2 * h]
    descr = load_model_description(tmp_path / "package" / "bioimageio.yaml")
    assert descr.outputs[0].axes[-1].scale == 0.5


def test_cli_export_bioimageio_refuses_an_existing_folder(seg_package, capsys):
    from emzoo.cli import main

    folder, package, _ = seg_package
    code = main(["export", "--model", str(folder), "--format", "bioimageio", "--out", str(package)])
    err = capsys.readouterr().err
    assert code == 2 and "exists and is not empty" in err and "Traceback" not in err
