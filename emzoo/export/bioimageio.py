"""BioImage Model Zoo packages, so an emzoo model runs in ilastik, deepImageJ/Fiji, QuPath and
napari: ``bioimageio.yaml`` (spec 0.5) with typed axes, the model's own normalisation declared as
preprocessing, TorchScript and ONNX weights with sha256, a test input/output pair computed by
:func:`emzoo.predict`, a cover image and the model card as documentation.

The package is re-run with the official ``bioimageio.core`` checks before it is written; a
package that fails them is never left on disk.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emzoo import io
from emzoo.errors import CheckpointError, ConfigError
from emzoo.export.torchscript import export_torchscript
from emzoo.fsutil import new_folder
from emzoo.hub.cards import tags_for
from emzoo.inference.engines import RTOL, export_onnx
from emzoo.inference.predictor import Predictor, model_task
from emzoo.inference.tiling import default_margin
from emzoo.models._base import ImageToImage
from emzoo.tasks import Task, upsample

PAPER_URL = "https://arxiv.org/abs/2402.18286"
PAPER_TEXT = (
    "Kazimi, Ruzaeva, Sandfeld. Self-Supervised Learning with Generative Adversarial Networks for "
    "Electron Microscopy. CVPR Workshops 2024."
)
TILING_NOTE = {
    True: "the output halo is half the receptive field, so tiled results equal whole-image ones.",
    False: "HRNet's field spans any practical tile; the 64-pixel halo keeps tile seams small, not zero.",
}


class SuperResolution(ImageToImage):
    """The network as emzoo runs it for super-resolution: bicubic upsampling, then the generator.
    Exported as one graph so BioImage.IO tools need no custom preprocessing."""

    def __init__(self, model: nn.Module, task: Task):
        super().__init__()
        self.model, self.task = model, task
        self.in_chans, self.num_classes = model.in_chans, model.num_classes
        self.output_scale = task.output_scale
        self.size_divisor = max(1, model.size_divisor // task.output_scale)  # upsampled: on the generator's grid

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_padded(upsample(x, self.task))


def _require_bioimageio():
    try:
        import bioimageio.core  # noqa: F401
        import bioimageio.spec  # noqa: F401
    except ImportError as e:
        raise ConfigError(
            f"format='bioimageio' needs bioimageio.core ({e.name} is missing); pip install 'emzoo[export]'"
        ) from None


def test_image(task: Task, size: int) -> np.ndarray:
    """A real-looking test input: the embedded simulated example for the model's modality,
    reflected to ``size`` when the model needs more context than 256 pixels."""
    image, _ = io.read(Path(__file__).parents[1] / "examples" / task.example)
    image = image.astype(np.float32)
    reps = math.ceil(size / min(image.shape))
    if reps > 1:
        image = np.pad(image, [(0, (reps - 1) * image.shape[0]), (0, (reps - 1) * image.shape[1])], mode="symmetric")
    return np.ascontiguousarray(image[:size, :size])


def _preprocessing(method: str) -> list:
    from bioimageio.spec.model import v0_5 as bio

    yx = [bio.AxisId("y"), bio.AxisId("x")]
    if method == "standardize":
        return [bio.ZeroMeanUnitVarianceDescr(kwargs=bio.ZeroMeanUnitVarianceKwargs(axes=yx, eps=1e-6))]
    if method == "percentile":
        kwargs = bio.ScaleRangeKwargs(axes=yx, min_percentile=1.0, max_percentile=99.0, eps=1e-6)
        return [bio.ScaleRangeDescr(kwargs=kwargs)]
    return []


def _postprocessing(task: Task, num_classes: int) -> list:
    from bioimageio.spec.model import v0_5 as bio

    if not task.segmentation:
        return []
    if num_classes == 1:
        return [bio.SigmoidDescr()]
    return [bio.SoftmaxDescr(kwargs=bio.SoftmaxKwargs(axis=bio.AxisId("channel")))]


def _cover(image: np.ndarray, output: np.ndarray, path: Path) -> None:
    """Input | output side by side (2:1), 8-bit."""
    if output.shape != image.shape:  # super-resolution: show the input at the output's size
        factor = output.shape[0] // image.shape[0]
        image = np.kron(image, np.ones((factor, factor), np.float32))
    io.write(path, np.concatenate([io.to_uint8(image), io.to_uint8(output)], axis=1), dtype="uint8")


def _documentation(model: nn.Module, task: Task, method: str, path: Path) -> None:
    """The model card (its YAML front matter dropped) plus what a BioImage.IO user must know."""
    source = Path((getattr(model, "emzoo_cfg", None) or {}).get("source", ""), "README.md")
    card = source.read_text() if source.name and source.is_file() else f"# {type(model).__name__}\n"
    if card.startswith("---"):
        card = card.split("---", 2)[2].lstrip()
    note = (
        "\n\n## In BioImage.IO tools\n\n"
        f"- Input: one 2-D EM image (`b, c, y, x`, one channel), raw counts; the package declares emzoo's "
        f"`{method}` normalisation as preprocessing, computed per image.\n"
        f"- Output: {task.package_output}.\n"
        f"- Tiling: {TILING_NOTE[getattr(model, 'receptive_field', None) is not None]}\n"
        "\n## Validation\n\n"
        "Made by `emzoo export --format bioimageio`, which computed the test pair with `emzoo.predict` (the "
        "pipeline emzoo itself runs) and wrote the package only after `bioimageio.core`'s checks passed for both "
        "weight formats: both reproduce the test output, and run for several input sizes and batch sizes.\n"
    )
    path.write_text(card.rstrip() + note)


def _descr(model: nn.Module, name: str, task: Task, method: str, stage: Path, axes: dict[str, int], weights: dict):
    """The spec-0.5 model description of the files in ``stage``; ``axes`` holds the input's
    ``min_size`` and ``step``, the output's ``halo`` and ``scale`` (output pixels per input pixel)."""
    from bioimageio.spec.model import v0_5 as bio

    cfg = getattr(model, "emzoo_cfg", None) or {}
    min_size, step, halo, scale = axes["min_size"], axes["step"], axes["halo"], axes["scale"]
    in_id, out_id = bio.TensorId("raw"), bio.TensorId("output")
    channels = [bio.Identifier("em")]
    out_names = ["particle"] if task.segmentation and model.num_classes == 1 else ["restored"]
    if model.num_classes > 1:
        out_names = [f"class{i}" for i in range(model.num_classes)]
    space_in = [
        bio.SpaceInputAxis(id=bio.AxisId(a), size=bio.ParameterizedSize(min=min_size, step=step)) for a in ("y", "x")
    ]
    space_out = [
        bio.SpaceOutputAxisWithHalo(
            id=bio.AxisId(a),
            size=bio.SizeReference(tensor_id=in_id, axis_id=bio.AxisId(a)),
            halo=halo,
            scale=1.0 / scale,
        )
        for a in ("y", "x")
    ]
    inputs = bio.InputTensorDescr(
        id=in_id,
        description="EM image, raw counts (any bit depth)"
        + (  # no BioImage.IO preprocessing replaces spikes: the caller must, as emzoo.predict does
            ", with x-ray hits and hot pixels replaced by the 3x3 median (emzoo.normalize.remove_outliers)"
            if cfg.get("remove_outliers")
            else ""
        ),
        axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=channels), *space_in],
        test_tensor=bio.FileDescr(source=stage / "test_input.npy"),
        sample_tensor=bio.FileDescr(source=stage / "sample_input.tif"),
        preprocessing=_preprocessing(method),
    )
    outputs = bio.OutputTensorDescr(
        id=out_id,
        description=task.package_output,
        axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier(n) for n in out_names]), *space_out],
        test_tensor=bio.FileDescr(source=stage / "test_output.npy"),
        sample_tensor=bio.FileDescr(source=stage / "sample_output.tif"),
        postprocessing=_postprocessing(task, model.num_classes),
    )
    arch = getattr(model, "pretrained_cfg", {}).get("architecture", type(model).__name__)
    return bio.ModelDescr(
        name=f"emzoo {name}",
        description=task.summary,
        authors=[bio.Author(name="emzoo contributors")],
        cite=[bio.CiteEntry(text=PAPER_TEXT, url=bio.HttpUrl(PAPER_URL))],
        license=bio.LicenseId(getattr(model, "pretrained_cfg", {}).get("license", "mit").upper()),
        tags=[*tags_for(arch, task.name), "2d", "torchscript", "onnx"],
        documentation=bio.FileDescr(source=stage / "README.md"),
        covers=[bio.FileDescr(source=stage / "cover.png")],
        inputs=[inputs],
        outputs=[outputs],
        weights=bio.WeightsDescr(
            torchscript=bio.TorchscriptWeightsDescr(
                source=stage / weights["torchscript"], pytorch_version=bio.Version(torch.__version__.split("+")[0])
            ),
            onnx=bio.OnnxWeightsDescr(source=stage / weights["onnx"], opset_version=18, parent="torchscript"),
        ),
        config={"emzoo": {k: v for k, v in cfg.items() if k != "source" and isinstance(v, str | int | float)}},
    )


def _failures(summary) -> str:
    bad = [d for d in summary.details if d.status == "failed"]
    return "; ".join(f"{d.name}: {' '.join(str(e.msg) for e in d.errors)[:300]}" for d in bad) or summary.status


@torch.inference_mode(False)
def export_bioimageio(model: nn.Module, out: Path, name: str) -> dict:
    """Write a validated BioImage.IO package for ``model`` into the (new, empty) folder ``out``."""
    _require_bioimageio()
    from bioimageio.core import test_model
    from bioimageio.spec import save_bioimageio_package, save_bioimageio_package_as_folder

    task = model_task(model)
    method = (getattr(model, "emzoo_cfg", None) or {}).get("normalization", "standardize")
    if model.in_chans != 1:
        raise ConfigError(f"model {name}: {model.in_chans} input channels; BioImage.IO export takes 1-channel models")
    net = SuperResolution(model, task) if task.output_scale > 1 else model
    step, scale = getattr(net, "size_divisor", 1), getattr(net, "output_scale", 1)
    halo = default_margin(model)  # output pixels
    min_size = math.ceil((2 * halo / scale + step) / step) * step  # some output left once the halo is cut
    size = min_size + step * math.ceil(max(0, 256 - min_size) / step)
    with tempfile.TemporaryDirectory(prefix="emzoo-bioimageio-") as tmp:
        stage = Path(tmp)
        weights = {"torchscript": "weights.torchscript.pt", "onnx": "weights.onnx"}
        diffs = {}
        with torch.no_grad():
            diffs["torchscript"] = export_torchscript(net, stage / weights["torchscript"])
            diffs["onnx"] = export_onnx(net, stage / weights["onnx"])
        for fmt, diff in diffs.items():
            if not diff <= RTOL:
                raise CheckpointError(
                    f"{fmt} weights differ from PyTorch by {diff:.2e} relative (> {RTOL}); not written"
                )
        image = test_image(task, size)
        # the network as a package consumer runs it: native scale, its own zero padding at the border
        output = Predictor(
            model, tile=0, output="probability" if task.segmentation else "logits", scale=1.0, mirror_border=False
        )(image)
        output = output if output.ndim == 3 else output[None]
        np.save(stage / "test_input.npy", image[None, None])
        np.save(stage / "test_output.npy", output[None].astype(np.float32))
        io.write(stage / "sample_input.tif", image)
        io.write(stage / "sample_output.tif", output[0])
        _cover(image, output[0], stage / "cover.png")
        _documentation(model, task, method, stage / "README.md")
        axes = {"min_size": min_size, "step": step, "halo": halo, "scale": scale}
        try:
            descr = _descr(model, name, task, method, stage, axes, weights)
        except ValueError as e:  # pydantic's ValidationError: say which field, on one line
            raise CheckpointError(f"BioImage.IO description of {name} is invalid: {' '.join(str(e).split())}") from None
        with warnings.catch_warnings():  # bioimageio.core loads the TorchScript weights: deprecation notices
            warnings.simplefilter("ignore", FutureWarning)
            summary = test_model(descr)
        if summary.status != "passed":
            raise CheckpointError(f"BioImage.IO checks failed for {name}: {_failures(summary)}; nothing written")
        with new_folder(out) as folder:
            save_bioimageio_package_as_folder(descr, output_path=folder)
            (folder / "rdf.yaml").rename(folder / "bioimageio.yaml")
            zip_name = f"{name.replace('/', '_')}.bioimageio.zip"
            save_bioimageio_package(descr, output_path=stage / zip_name)
            shutil.move(stage / zip_name, folder / zip_name)
    return {
        "format": "bioimageio",
        "file": "bioimageio.yaml",
        "zip": zip_name,
        "max_rel_diff_vs_pytorch": max(diffs.values()),
        "bioimageio_core_checks": summary.status,
        "test_tensor_shape": {"input": [1, 1, size, size], "output": [1, *output.shape]},
        "halo": halo,
    }
