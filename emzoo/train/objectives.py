"""What a training step compares when there is no clean target (``emzoo adapt``).

An objective has the interface of a :class:`~emzoo.tasks.Task` for training: ``loss``,
``per_sample_stats``, ``summarize``, ``selection`` and ``is_better``. ``supervised`` is the task
itself; the two self-supervised ones read the targets that :mod:`emzoo.data.selfsupervised` makes:

- ``n2v`` (Noise2Void, N2V2 replacement): the target holds the raw patch and the blind-spot mask;
  the loss is the squared error on the masked pixels only, whose inputs the network never saw.
- ``n2n`` (Noise2Noise): input and target are the means of two disjoint sets of frames of one
  field; the loss is the squared error, and the held-out score adds the PSNR against the other
  frames (it ranks denoisers as PSNR against the clean image would, compressed by the target's noise).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from emzoo.errors import ConfigError
from emzoo.tasks import Task

OBJECTIVES = ("supervised", "n2v", "n2n")


class _SelfSupervised:
    name = ""
    selection = ("masked_mse", False)

    def is_better(self, value: float, best: float | None) -> bool:
        return best is None or value < best


class BlindSpot(_SelfSupervised):
    name = "n2v"
    selection = ("masked_mse", False)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        values, mask = target[:, :1], target[:, 1:2]
        return ((output.float() - values) ** 2 * mask).sum() / mask.sum().clamp_min(1.0)

    def per_sample_stats(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        values, mask = target[:, :1], target[:, 1:2]
        squared = ((output.float() - values) ** 2 * mask).flatten(1).sum(1)
        return torch.stack([squared, mask.flatten(1).sum(1)], 1)

    def summarize(self, rows: torch.Tensor) -> dict[str, float]:
        return {"masked_mse": float(rows[:, 0].sum() / rows[:, 1].sum().clamp_min(1.0))}


class FramePairs(_SelfSupervised):
    name = "n2n"
    selection = ("mse", False)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.mse_loss(output.float(), target)

    def per_sample_stats(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mse = ((output.float() - target) ** 2).flatten(1).mean(1)
        peak = target.flatten(1).amax(1) - target.flatten(1).amin(1)
        return torch.stack([mse, peak], 1)

    def summarize(self, rows: torch.Tensor) -> dict[str, float]:
        mse = rows[:, 0]
        psnr = 10 * torch.log10(rows[:, 1] ** 2 / mse.clamp_min(1e-12))
        return {"mse": float(mse.mean()), "psnr_vs_other_frames": float(psnr.mean())}


def objective_for(name: str, task: Task):
    """The objective called ``name`` for a run of ``task``."""
    if name == "supervised":
        return task
    if name not in OBJECTIVES:
        raise ConfigError(f"objective {name!r}: expected one of {', '.join(OBJECTIVES)}")
    if task.segmentation or task.output_scale != 1:
        raise ConfigError(f"objective {name!r} trains denoisers; task {task.name!r} needs targets")
    return BlindSpot() if name == "n2v" else FramePairs()


def lsgan_loss(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al. 2017): push scores to 1 for real, 0 for fake (Pix2Pix)."""
    return F.mse_loss(scores.float(), torch.full_like(scores.float(), 1.0 if real else 0.0))
