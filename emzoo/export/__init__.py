"""Export a model for tools outside PyTorch: ONNX (opset 18, dynamic batch, height and width,
checked with onnxruntime), TorchScript (any input size) and BioImage Model Zoo packages (both,
plus ``bioimageio.yaml``). Every export is verified against PyTorch on test images."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from emzoo.errors import CheckpointError, ConfigError
from emzoo.export.bioimageio import export_bioimageio
from emzoo.export.torchscript import export_torchscript
from emzoo.fsutil import check_new_folder, new_folder
from emzoo.hub import load
from emzoo.inference.engines import RTOL, export_onnx

FORMATS = ("onnx", "torchscript", "bioimageio")


@torch.inference_mode(False)
def export(model_name: str, fmt: str, out: str | Path) -> dict:
    """Export ``model_name`` (zoo name, hf-hub id or folder) to ``out``; returns a report with
    the largest difference to PyTorch, which must stay within ``RTOL``."""
    if fmt not in FORMATS:
        raise ConfigError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    check_new_folder(out)
    model = load(model_name).float().eval()
    if fmt == "bioimageio":
        task = model.emzoo_cfg.get("task", "pretext")
        name = model.emzoo_cfg.get("zoo_name") or f"{model.pretrained_cfg.get('architecture', 'model')}-{task}"
        return export_bioimageio(model, Path(out), name)
    with new_folder(out) as tmp:
        filename = "model.onnx" if fmt == "onnx" else "model.torchscript.pt"
        with torch.no_grad():
            diff = (export_onnx if fmt == "onnx" else export_torchscript)(model, tmp / filename)
        if not diff <= RTOL:
            raise CheckpointError(f"{fmt} export differs from PyTorch by {diff:.2e} relative (> {RTOL}); not written")
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
