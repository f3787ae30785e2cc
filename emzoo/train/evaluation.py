"""Scoring a generator on a dataset split: one loop for the trainer (gathered exactly across
processes) and for ``emzoo evaluate``."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader

from emzoo.data import load_dataset
from emzoo.errors import ConfigError
from emzoo.hub import load
from emzoo.tasks import Task, get_task
from emzoo.train.config import resolve_data


@torch.no_grad()
def score(
    model: nn.Module,
    batches: Iterable[dict],
    task: Task,
    to_device: Callable[[dict], tuple[torch.Tensor, torch.Tensor]] = lambda b: (b["image"], b["target"]),
    gather: Callable[[torch.Tensor], torch.Tensor] = lambda t: t,
    autocast=None,
) -> dict[str, float]:
    """The task's dataset-level metrics of ``model`` over ``batches`` (eval mode, restored after)."""
    was_training = model.training
    model.eval()
    rows = []
    for batch in batches:
        x, y = to_device(batch)
        with autocast() if autocast is not None else torch.autocast("cpu", enabled=False):
            out = model(x)
        rows.append(gather(task.per_sample_stats(out, y)))
    model.train(was_training)
    return task.summarize(torch.cat(rows)) if rows else {}


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
    ds = load_dataset(path, chosen.name, split, image_size=image_size, seed=seed, num_classes=max(model.num_classes, 2))
    metrics = score(model, DataLoader(ds, batch_size=batch_size if image_size else 1), chosen)
    return {"task": chosen.name, "split": split, "n": len(ds), **metrics}
