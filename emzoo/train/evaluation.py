"""Scoring a generator on a dataset split: one loop for the trainer (gathered exactly across
processes) and for ``emzoo evaluate``."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from emzoo.data import load_dataset
from emzoo.errors import ConfigError
from emzoo.hub import load
from emzoo.tasks import Task, get_task
from emzoo.train.config import resolve_data

CALIBRATION_THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))  # probabilities 0.05 .. 0.95
_OFFSETS = torch.logit(torch.tensor(CALIBRATION_THRESHOLDS, dtype=torch.float64))


def _counts_per_threshold(logits, truth) -> torch.Tensor:
    """(samples, thresholds, 3): true positives, false positives and false negatives of each sample
    at every calibration threshold."""
    logits = torch.as_tensor(np.asarray(logits, dtype=np.float64)).reshape(len(logits), -1)
    truth = torch.as_tensor(np.asarray(truth) > 0.5).reshape(len(logits), -1)
    called = logits[:, None, :] > _OFFSETS[None, :, None]
    hit = truth[:, None, :]
    return torch.stack([(called & hit).sum(2), (called & ~hit).sum(2), (~called & hit).sum(2)], 2).double()


def best_threshold(counts: torch.Tensor, empty_logits: list | None = None, max_false_area: float | None = None) -> int:
    """The index of the calibration threshold with the best pooled Dice of ``counts`` (thresholds, 3);
    ties go to the one closest to 0.5. With ``empty_logits`` (logits on particle-free images) and
    ``max_false_area``, only thresholds that call at most that fraction of them particle compete
    (the strictest one, if none does)."""
    dice = 2 * counts[:, 0] / (2 * counts[:, 0] + counts[:, 1] + counts[:, 2]).clamp_min(1e-9)
    candidates = list(range(len(_OFFSETS)))
    if empty_logits and max_false_area is not None:
        area = [float(np.mean([(np.asarray(x) > float(o)).mean() for x in empty_logits])) for o in _OFFSETS]
        candidates = [k for k in candidates if area[k] <= max_false_area] or [min(candidates, key=lambda k: area[k])]
    return sorted(candidates, key=lambda k: (-round(float(dice[k]), 4), abs(CALIBRATION_THRESHOLDS[k] - 0.5)))[0]


@torch.no_grad()
def score(
    model: nn.Module,
    batches: Iterable[dict],
    task: Task,
    to_device: Callable[[dict], tuple[torch.Tensor, torch.Tensor]] = lambda b: (b["image"], b["target"]),
    gather: Callable[[torch.Tensor], torch.Tensor] = lambda t: t,
    autocast=None,
    calibrate_on: Iterable[dict] | None = None,
) -> dict[str, float]:
    """The task's dataset-level metrics of ``model`` over ``batches`` (eval mode, restored after).
    With ``calibrate_on`` (a validation split), a one-logit segmentation model is scored at the
    probability threshold with the best Dice there (reported as ``threshold``), not at 0.5."""

    def outputs(loader):
        for batch in loader:
            x, y = to_device(batch)
            with autocast() if autocast is not None else torch.autocast("cpu", enabled=False):
                yield model(x).float(), y

    was_training = model.training
    model.eval()
    offset, extra, rows = 0.0, {}, None
    if calibrate_on is not None and getattr(task, "segmentation", False) and getattr(model, "num_classes", 1) == 1:
        # Scoring the calibration split itself (validation) takes one pass: its per-sample counts at
        # every candidate threshold are the rows (tp, fp, fn) the task would compute at the best one.
        counts = [
            gather(_counts_per_threshold(out[:, 0].cpu(), y[:, 0].cpu()).flatten(1)) for out, y in outputs(calibrate_on)
        ]
        if counts:
            per_sample = torch.cat(counts).reshape(-1, len(_OFFSETS), 3)
            best = best_threshold(per_sample.sum(0))
            offset, extra = float(_OFFSETS[best]), {"threshold": CALIBRATION_THRESHOLDS[best]}
            rows = [per_sample[:, best].float()] if calibrate_on is batches else None
    if rows is None:
        rows = [gather(task.per_sample_stats(out - offset, y)) for out, y in outputs(batches)]
    model.train(was_training)
    return {**task.summarize(torch.cat(rows)), **extra} if rows else {}


def fold_threshold(model: nn.Module, threshold: float) -> None:
    """Shift a one-logit segmentation head's bias so that probability 0.5 means ``threshold``."""
    with torch.no_grad():
        model.get_classifier().bias -= float(torch.logit(torch.tensor(threshold, dtype=torch.float64)))


def calibrate_threshold(
    model: nn.Module,
    pairs: Iterable[tuple],
    empty_logits: list | None = None,
    max_false_area: float | None = None,
) -> float:
    """Fold the probability threshold with the best pooled Dice over ``pairs`` (the model's logits
    and the true masks of a validation split) into a one-logit segmentation head's bias, so that
    0.5 is that threshold everywhere the model is used (masks, particle tables, the auto scale,
    exports). Returns the threshold (0.5 when none is better, or when the head has several classes).
    See :func:`best_threshold` for ties and ``empty_logits``."""
    head = model.get_classifier()
    if getattr(model, "num_classes", 1) != 1 or head.bias is None:
        return 0.5
    counts = torch.zeros(len(_OFFSETS), 3, dtype=torch.float64)
    for logits, truth in pairs:
        counts += _counts_per_threshold(np.asarray(logits)[None], np.asarray(truth)[None])[0]
    best = best_threshold(counts, empty_logits, max_false_area)
    fold_threshold(model, CALIBRATION_THRESHOLDS[best])
    return CALIBRATION_THRESHOLDS[best]


def evaluate_model(
    model_name: str,
    data: str,
    task: str | None = None,
    split: str = "test",
    image_size: int | None = None,
    batch_size: int = 4,
    seed: int = 0,
    sim_n: int = 48,
    sim_size: int = 256,
) -> dict[str, float]:
    """Metrics of a trained model on one split of a dataset (``emzoo evaluate``); ``sim_n`` and
    ``sim_size`` pick the ``data="simulated"`` set (the defaults are the training defaults)."""
    model = load(model_name)
    own = get_task(model.emzoo_cfg.get("task"))
    chosen = get_task(task) if task else own
    if chosen.segmentation != own.segmentation:
        raise ConfigError(
            f"task {chosen.name!r}: {model_name} is a '{own.name}' model; its outputs cannot be scored as {chosen.name}"
        )
    path = resolve_data(data, chosen.name, sim_n=sim_n, sim_size=sim_size)
    ds = load_dataset(
        path,
        chosen.name,
        split,
        image_size=image_size,
        seed=seed,
        num_classes=max(model.num_classes, 2),
        remove_outliers=model.emzoo_cfg.get("remove_outliers"),  # as the model was trained
    )
    metrics = score(model, DataLoader(ds, batch_size=batch_size if image_size else 1), chosen)
    return {"task": chosen.name, "split": split, "n": len(ds), **metrics}
