"""TorchScript: a scripted pad/crop wrapper around the traced network, so any input size works
(what Fiji/deepImageJ and BioImage.IO tools read)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from emzoo.inference.engines import relative_difference, test_batches


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


def export_torchscript(model: nn.Module, path: Path) -> float:
    divisor = getattr(model, "size_divisor", 1)
    sample = torch.randn(1, model.in_chans, 4 * divisor, 4 * divisor)
    with warnings.catch_warnings():  # TorchScript's deprecation notices: the format is what Fiji/deepImageJ read
        warnings.simplefilter("ignore")
        core = torch.jit.trace(_Core(model), sample, check_trace=False)
        scripted = torch.jit.script(_Padded(core, divisor, getattr(model, "output_scale", 1)))
        scripted.save(str(path))
        loaded = torch.jit.load(str(path))
    return max(relative_difference(loaded(x), model(x)) for x in test_batches(model.in_chans, divisor))
