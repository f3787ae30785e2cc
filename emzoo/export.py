"""Export a model for tools outside PyTorch: ONNX (opset 18, dynamic batch, height and width,
checked with onnxruntime), TorchScript (a scripted pad/crop wrapper around the traced network,
so any input size works) and BioImage Model Zoo packages (both, plus ``bioimageio.yaml``; see
:mod:`emzoo.bioimage`). Every export is verified against PyTorch on test images."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from emzoo.errors import EmzooError
from emzoo.fsutil import new_folder

FORMATS = ("onnx", "torchscript", "bioimageio")
RTOL = 1e-4  # largest difference to PyTorch, relative to the output's largest magnitude (at least 1)


class _Padded(nn.Module):
    """Pads to the pooling grid, runs the traced network, crops back (TorchScript-able)."""

    def __init__(self, core: torch.jit.ScriptModule, divisor: int, scale: int = 1):
        super().__init__()
        self.core = core
        self.divisor = divisor
        self.scale = scale  # output pixels per input pixel (2 for super-resolution)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        ph = (self.divisor - h % self.divisor) % self.divisor
        pw = (self.divisor - w % self.divisor) % self.divisor
        if ph > 0 or pw > 0:
            x = F.pad(x, [0, pw, 0, ph], mode="replicate")
        return self.core(x)[:, :, : h * self.scale, : w * self.scale]


class _Core(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_padded(x)


def _test_images(in_chans: int, divisor: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    sizes = [(1, 4 * divisor, 5 * divisor), (2, 4 * divisor + 7, 3 * divisor + 3)]
    return [torch.randn(b, in_chans, h, w, generator=g) for b, h, w in sizes]


def export_torchscript(model: nn.Module, path: Path) -> float:
    divisor = getattr(model, "size_divisor", 1)
    sample = torch.randn(1, model.in_chans, 4 * divisor, 4 * divisor)
    with warnings.catch_warnings():  # TorchScript's deprecation notices: the format is what Fiji/deepImageJ read
        warnings.simplefilter("ignore")
        core = torch.jit.trace(_Core(model), sample, check_trace=False)
        scripted = torch.jit.script(_Padded(core, divisor, getattr(model, "output_scale", 1)))
        scripted.save(str(path))
        loaded = torch.jit.load(str(path))
    return max(_relative(loaded(x), model(x)) for x in _test_images(model.in_chans, divisor))


def _relative(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out - ref).abs().max()) / max(1.0, float(ref.abs().max()))


def export_onnx(model: nn.Module, path: Path) -> float:
    _require_onnxruntime()
    import onnxruntime as ort

    divisor = getattr(model, "size_divisor", 1)
    sample = torch.randn(1, model.in_chans, 4 * divisor, 4 * divisor)
    batch = torch.export.Dim("batch", min=1, max=1024)
    height = torch.export.Dim("height", min=8, max=65536)
    width = torch.export.Dim("width", min=8, max=65536)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (sample,),
            str(path),
            dynamo=True,
            opset_version=18,
            input_names=["image"],
            output_names=["output"],
            dynamic_shapes={"x": {0: batch, 2: height, 3: width}},
            external_data=False,
            verbose=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = [
        (torch.from_numpy(session.run(None, {"image": x.numpy()})[0]), model(x))
        for x in _test_images(model.in_chans, divisor)
    ]
    return max(_relative(out, ref) for out, ref in outs)


def _require_onnxruntime():
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise EmzooError("the onnxruntime engine needs onnxruntime; pip install 'emzoo[export]'") from None


@torch.inference_mode(False)
def onnx_session(model: nn.Module):
    """An ONNX Runtime session for ``model``, exported once per set of weights and cached in
    ``$EMZOO_CACHE/onnx`` (the export is checked against PyTorch before it is kept)."""
    _require_onnxruntime()
    import onnxruntime as ort

    from emzoo.fsutil import cache_root
    from emzoo.hub import state_hash

    arch = getattr(model, "pretrained_cfg", {}).get("architecture", type(model).__name__)
    path = cache_root() / "onnx" / f"{arch}-{state_hash(model)[:16]}.onnx"
    if not path.is_file():
        import copy

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with torch.no_grad():  # a CPU float32 eval copy: the caller's model stays as it is
                diff = export_onnx(copy.deepcopy(model).cpu().float().eval(), tmp)
            if not diff <= RTOL:
                raise EmzooError(f"ONNX export of {arch} differs from PyTorch by {diff:.2e} relative (> {RTOL})")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@torch.inference_mode(False)
def export(model_name: str, fmt: str, out: str | Path) -> dict:
    """Export ``model_name`` (zoo name, hf-hub id or folder) to ``out``; returns a report with
    the largest difference to PyTorch, which must stay within ``RTOL``."""
    import emzoo

    if fmt not in FORMATS:
        raise EmzooError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    model = emzoo.load(model_name).float().eval()
    if fmt == "bioimageio":
        from emzoo.bioimage import export_bioimageio

        task = model.emzoo_cfg.get("task", "pretext")
        name = model.emzoo_cfg.get("zoo_name") or f"{model.pretrained_cfg.get('architecture', 'model')}-{task}"
        return export_bioimageio(model, Path(out), name)
    with new_folder(out) as tmp:
        filename = "model.onnx" if fmt == "onnx" else "model.torchscript.pt"
        with torch.no_grad():
            diff = (export_onnx if fmt == "onnx" else export_torchscript)(model, tmp / filename)
        if not diff <= RTOL:
            raise EmzooError(f"{fmt} export differs from PyTorch by {diff:.2e} relative (> {RTOL}); not written")
        report = {
            "format": fmt,
            "file": filename,
            "max_rel_diff_vs_pytorch": diff,
            "architecture": type(model).__name__,
            "emzoo": model.emzoo_cfg,
            "input": {"axes": "bcyx", "channels": model.in_chans, "any_size": True},
        }
        (tmp / "export.json").write_text(json.dumps(report, indent=2, default=str))
    return report


def _cmd_export(args) -> None:
    print(json.dumps(export(args.model, args.format, args.out), indent=2, default=str))


def add_commands(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX, TorchScript or a BioImage.IO package (verified)")
    p.add_argument("--model", required=True, help="zoo name, hf-hub:ORG/NAME, or a folder")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, help="a new folder")
    p.set_defaults(func=_cmd_export)
