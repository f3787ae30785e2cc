"""Engines: a function from a float32 NCHW batch to the network's float32 output, prepared once
per model (a BN-folded eval copy for PyTorch, an exported and verified graph for ONNX Runtime) and
reused for every tile and every image."""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emzoo.errors import CheckpointError, ConfigError
from emzoo.fsutil import cache_root
from emzoo.hub.folder import state_hash
from emzoo.inference.precision import PRECISIONS, inference_precision

ENGINES = ("torch", "onnxruntime")
RTOL = 1e-4  # largest difference to PyTorch, relative to the output's largest magnitude (at least 1)
Engine = Callable[[np.ndarray], np.ndarray]


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An inference copy of ``model`` with every batch norm that directly follows a convolution
    folded into it (``convN``/``bnN`` pairs and Conv-BN runs in Sequentials): one pass fewer over
    memory per layer, same outputs to float rounding."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model = copy.deepcopy(model).float().eval()  # a .half() model runs in float32 (precision= chooses bf16)

    def fold(parent: nn.Module, conv_name: str, bn_name: str) -> None:
        conv, bn = parent._modules[conv_name], parent._modules.get(bn_name)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
            parent._modules[conv_name] = fuse_conv_bn_eval(conv, bn)
            parent._modules[bn_name] = nn.Identity()

    for module in list(model.modules()):
        names = list(module._modules)
        if isinstance(module, nn.Sequential):
            for first, second in zip(names, names[1:]):
                fold(module, first, second)
        else:
            for name in names:
                if name.startswith("conv") and "bn" + name[4:] in module._modules:
                    fold(module, name, "bn" + name[4:])
    return model


def test_batches(in_chans: int, divisor: int) -> list[torch.Tensor]:
    """Inputs an export is checked on: two batch sizes, one size off the pooling grid."""
    g = torch.Generator().manual_seed(0)
    sizes = [(1, 4 * divisor, 5 * divisor), (2, 4 * divisor + 7, 3 * divisor + 3)]
    return [torch.randn(b, in_chans, h, w, generator=g) for b, h, w in sizes]


def relative_difference(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out - ref).abs().max()) / max(1.0, float(ref.abs().max()))


def export_onnx(model: nn.Module, path: Path) -> float:
    """ONNX (opset 18, dynamic batch, height and width); returns the largest relative difference
    to PyTorch on :func:`test_batches`, run through ONNX Runtime."""
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
        for x in test_batches(model.in_chans, divisor)
    ]
    return max(relative_difference(out, ref) for out, ref in outs)


@torch.inference_mode(False)
def onnx_session(model: nn.Module):
    """An ONNX Runtime session for ``model``, exported once per set of weights and cached in
    ``$EMZOO_CACHE/onnx`` (the export is checked against PyTorch before it is kept)."""
    import onnxruntime as ort

    arch = getattr(model, "pretrained_cfg", {}).get("architecture", type(model).__name__)
    path = cache_root() / "onnx" / f"{arch}-{state_hash(model)[:16]}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with torch.no_grad():  # a CPU float32 eval copy: the caller's model stays as it is
                diff = export_onnx(copy.deepcopy(model).cpu().float().eval(), tmp)
            if not diff <= RTOL:
                raise CheckpointError(f"ONNX export of {arch} differs from PyTorch by {diff:.2e} relative (> {RTOL})")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def make_engine(
    model: nn.Module, engine: str = "torch", channels_last: bool = True, precision: str = "float32"
) -> Engine:
    """Prepare ``model`` once for ``engine``; the caller's model stays as it is. ``precision``
    (PyTorch engine): ``float32``, ``bfloat16`` (autocast) or ``auto`` (bf16 where measured faster
    here and within tolerance of float32 for this model, see :mod:`emzoo.inference.precision`)."""
    if engine not in ENGINES:
        raise ConfigError(f"engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if engine == "onnxruntime":
        session = onnx_session(model)
        return lambda batch: session.run(None, {"image": np.ascontiguousarray(batch)})[0]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = fold_batchnorm(model).to(memory_format=fmt)
    device = next(model.parameters()).device
    if precision == "auto":
        precision = inference_precision(net, device)
    bf16 = precision == "bfloat16"

    pinned = device.type == "cuda"  # page-locked host memory: the copy to the GPU runs asynchronously

    @torch.inference_mode()
    def run(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch)
        x = (x.pin_memory() if pinned else x).to(device, non_blocking=pinned).contiguous(memory_format=fmt)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return net(x).float().cpu().numpy()

    run.precision = precision
    return run
