"""Per-task behaviour in one place: what a task's network outputs, how it is trained (loss,
metrics, which metric picks the best checkpoint), how its output is post-processed, and how it is
described (Hub pipeline tag, card and package text). Everything else asks this registry instead
of comparing task names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import expit, softmax

from emzoo.errors import ConfigError
from emzoo.normalize import undo_params


@dataclass(frozen=True)
class Task:
    name: str
    segmentation: bool  # per-pixel classes (else: an image restored in the input's units)
    summary: str  # one sentence for cards, packages and the Space
    output_text: str  # what the network outputs
    package_output: str = "restored image in standardised units (zero mean, unit variance of the input)"
    pretext: bool = False  # the self-supervised pretraining task (no labels)
    output_scale: int = 1  # output pixels per input pixel (the input is upsampled bicubic first)
    example: str = "hrtem_au_nanoparticles.tif"  # the bundled image that shows it best
    pipeline_tag: str = "image-to-image"  # the Hub's
    target_folder: str | None = None  # restoration: its target folder in TEMImageNet's layout
    rerecordable: bool = False  # the target is the input without its noise: a detector can record it again

    @property
    def selection(self) -> tuple[str, bool]:
        """The validation metric that picks the best checkpoint, and whether larger is better."""
        return ("dice", True) if self.segmentation else ("l1", False)

    def is_better(self, value: float, best: float | None) -> bool:
        return best is None or (value > best if self.selection[1] else value < best)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Fine-tuning losses of the paper: BCE (or CE) for segmentation, L1 + L2 for restoration."""
        output = output.float()
        if not self.segmentation:
            return F.l1_loss(output, target) + F.mse_loss(output, target)
        if output.shape[1] == 1:
            return F.binary_cross_entropy_with_logits(output, target.float())
        return F.cross_entropy(output, target.long())

    def per_sample_stats(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """One row per sample: [tp, fp, fn] for segmentation (foreground summed over classes),
        [l1, psnr, ssim] for restoration; exact after gathering across processes."""
        output = output.float()
        if self.segmentation:
            from torchmetrics.functional.classification import binary_stat_scores

            if output.shape[1] == 1:
                pred, truth = (output[:, 0] > 0).long(), (target[:, 0] > 0.5).long()
            else:
                pred = F.one_hot(output.argmax(1), output.shape[1])[..., 1:].any(-1).long()
                truth = F.one_hot(target.long(), output.shape[1])[..., 1:].any(-1).long()
            scores = torch.stack(  # per sample: torchmetrics' samplewise mode breaks on a batch of one
                [binary_stat_scores(p.flatten(), t.flatten(), multidim_average="global") for p, t in zip(pred, truth)]
            )
            return scores[:, [0, 1, 3]].float()  # tp, fp, fn
        from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

        target = target.float()
        l1 = (output - target).abs().flatten(1).mean(1)
        ranges = (target.flatten(1).amax(1) - target.flatten(1).amin(1)).clamp_min(1e-6).tolist()
        psnr = torch.stack([peak_signal_noise_ratio(o, t, data_range=r) for o, t, r in zip(output, target, ranges)])
        ssim = torch.stack(
            [
                structural_similarity_index_measure(o[None], t[None], data_range=r)
                for o, t, r in zip(output, target, ranges)
            ]
        )
        return torch.stack([l1, psnr, ssim], dim=1)

    def summarize(self, stats: torch.Tensor) -> dict[str, float]:
        """Dataset-level metrics from the gathered per-sample statistics."""
        if stats.numel() == 0:
            return {}
        if self.segmentation:
            tp, fp, fn = stats.sum(0).tolist()
            return {"dice": 2 * tp / max(2 * tp + fp + fn, 1e-9), "iou": tp / max(tp + fp + fn, 1e-9)}
        l1, psnr, ssim = stats.mean(0).tolist()
        return {"l1": l1, "psnr": psnr, "ssim": ssim}

    def prior_bias(self, fractions: torch.Tensor, num_classes: int) -> torch.Tensor:
        """The head bias whose output is the class prior: the log-odds of the foreground fraction
        for one logit (sigmoid), the log class frequencies for several (softmax)."""
        p = fractions.clamp(1e-4, 1 - 1e-4).float()
        return torch.logit(p[1:].sum()).reshape(1) if num_classes == 1 else torch.log(p[:num_classes])

    def check_output(self, output: str) -> None:
        """``mask`` and ``probability`` exist only for segmentation."""
        if output in ("mask", "probability") and not self.segmentation:
            raise ConfigError(f"output={output!r} needs a segmentation model; this one does '{self.name}'")

    def finish(self, result: np.ndarray, output: str, params: tuple[float, float]) -> np.ndarray:
        """The network's raw (C, H, W) result as the user asked for it: logits, probabilities
        (sigmoid or softmax), a mask, or the restored image back in the input's units."""
        if output == "logits":
            return result if result.shape[0] > 1 else result[0]
        if self.segmentation:
            if result.shape[0] == 1:
                prob = expit(result[0])
                return (prob > 0.5).astype(np.uint8) if output == "mask" else prob.astype(np.float32)
            return result.argmax(0).astype(np.uint8) if output == "mask" else softmax(result, axis=0).astype(np.float32)
        return undo_params(result[0], params)

    def analyses_particles(self, output: str) -> bool:
        """Whether a prediction's output is a particle probability/mask to measure (not logits)."""
        return self.segmentation and output != "logits"


_STEM = "adf_stem_noisy.tif"
TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            "pretext",
            False,
            "A generator pretrained without labels as a Pix2Pix conditional GAN (LSGAN + 100 x L1) that restores "
            "corrupted EM images (noise, blur, flips, rotations), following Kazimi et al. (CVPRW 2024). Use it as "
            "the starting point for fine-tuning on segmentation or restoration tasks.",
            "the restored (denoised, deblurred) image, same size",
            pretext=True,
        ),
        Task(
            "segment",
            True,
            "Semantic segmentation of nanoparticles (particle vs background).",
            "per-pixel logits of the particle class (sigmoid -> probability)",
            package_output="particle probability (sigmoid of the network's logits)",
            pipeline_tag="image-segmentation",
        ),
        Task(
            "denoise",
            False,
            "Denoising of EM images.",
            "the denoised image, same size",
            example=_STEM,
            target_folder="noNoise",
            rerecordable=True,
        ),
        Task(
            "bg-removal",
            False,
            "Removal of noise and low-frequency background from EM images.",
            "the image without noise and low-frequency background, same size",
            package_output="image without noise and background, in standardised units of the input",
            example=_STEM,
            target_folder="noBackgroundnoNoise",
        ),
        Task(
            "super-res",
            False,
            "2x super-resolution of EM images.",
            "the image at 2x the input size (input is upsampled 2x first)",
            package_output="2x super-resolved image in standardised units of the input",
            output_scale=2,
            example=_STEM,
            target_folder="noNoiseNoBackgroundSuperresolution",
        ),
    )
}
TASK_NAMES = tuple(TASKS)
FINETUNE_TASKS = tuple(name for name, t in TASKS.items() if not t.pretext)
RESTORATION_TASKS = tuple(name for name, t in TASKS.items() if t.target_folder)  # supervised by a clean image


def get_task(name: str | None) -> Task:
    """The task called ``name``; an unknown name is an error (never silently 'restoration')."""
    try:
        return TASKS[name or "pretext"]
    except KeyError:
        raise ConfigError(f"task {name!r}: expected one of {', '.join(TASKS)}") from None


def upsample(x: torch.Tensor, task: Task) -> torch.Tensor:
    """What a super-resolution network sees: its (N, C, H, W) input bicubic-upsampled ``output_scale`` x."""
    if task.output_scale == 1:
        return x
    return F.interpolate(x, scale_factor=float(task.output_scale), mode="bicubic", align_corners=False)
