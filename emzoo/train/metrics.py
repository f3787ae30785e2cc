"""Losses and metrics per task. Metrics are computed from per-sample statistics so that, after
``accelerator.gather_for_metrics``, they are exact over all processes (no averaging of
averages)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

RESTORATION = ("pretext", "denoise", "bg-removal", "super-res")
# the metric that picks the best checkpoint, and whether larger is better
SELECTION = {"segment": ("dice", True), **{t: ("l1", False) for t in RESTORATION}}


def task_loss(task: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fine-tuning losses of the paper: BCE (or CE) for segmentation, L1 + L2 for restoration."""
    output = output.float()
    if task == "segment":
        if output.shape[1] == 1:
            return F.binary_cross_entropy_with_logits(output, target.float())
        return F.cross_entropy(output, target.long())
    return F.l1_loss(output, target) + F.mse_loss(output, target)


def lsgan_loss(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al. 2017): push scores to 1 for real, 0 for fake."""
    return F.mse_loss(scores.float(), torch.full_like(scores.float(), 1.0 if real else 0.0))


def per_sample_stats(task: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """One row per sample: [tp, fp, fn] for segmentation (foreground summed over classes),
    [l1, psnr, ssim] for restoration."""
    output = output.float()
    if task == "segment":
        if output.shape[1] == 1:
            pred = output[:, 0] > 0
            truth = target[:, 0] > 0.5
        else:
            pred = F.one_hot(output.argmax(1), output.shape[1])[..., 1:].bool()
            truth = F.one_hot(target.long(), output.shape[1])[..., 1:].bool()
        dims = tuple(range(1, pred.ndim))
        tp = (pred & truth).sum(dims).float()
        fp = (pred & ~truth).sum(dims).float()
        fn = (~pred & truth).sum(dims).float()
        return torch.stack([tp, fp, fn], dim=1)
    target = target.float()
    l1 = (output - target).abs().flatten(1).mean(1)
    data_range = (target.flatten(1).amax(1) - target.flatten(1).amin(1)).clamp_min(1e-6)
    psnr = torch.stack(
        [peak_signal_noise_ratio(o, t, data_range=r) for o, t, r in zip(output, target, data_range.tolist())]
    )
    ssim = torch.stack(
        [
            structural_similarity_index_measure(o[None], t[None], data_range=r)
            for o, t, r in zip(output, target, data_range.tolist())
        ]
    )
    return torch.stack([l1, psnr, ssim], dim=1)


def summarize(task: str, stats: torch.Tensor) -> dict[str, float]:
    """Dataset-level metrics from the gathered per-sample statistics."""
    if stats.numel() == 0:
        return {}
    if task == "segment":
        tp, fp, fn = stats.sum(0).tolist()
        return {"dice": 2 * tp / max(2 * tp + fp + fn, 1e-9), "iou": tp / max(tp + fp + fn, 1e-9)}
    l1, psnr, ssim = stats.mean(0).tolist()
    return {"l1": l1, "psnr": psnr, "ssim": ssim}


def is_better(task: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    larger = SELECTION[task][1]
    return value > best if larger else value < best
