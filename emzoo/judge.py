"""Judging a finished build run against the shipped weights on the held-out split: its test
metrics (for segmentation also the particle-free area a microscopist sees at once), its decision
threshold calibrated on validation, and whether it is better by more than the split's noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from emzoo import io
from emzoo.data import load_dataset
from emzoo.hub import load, save_pretrained
from emzoo.inference.predictor import Predictor
from emzoo.tasks import get_task
from emzoo.train.evaluation import calibrate_threshold, evaluate_model
from emzoo.zoo.catalog import RECIPES, ZooEntry

MIN_GAIN = {"dice": 0.005, "l1": 0.01}  # to replace shipped weights: Dice + 0.005, or L1 1% lower
AREA_TOLERANCE = 0.0005  # of the particle-free images' area: a challenger may not call more particle


def held_out(folder: Path, entry: ZooEntry, corpus: Path) -> dict[str, float]:
    """A folder's test metrics on the recipe's corpus, scored as the Trainer scores its best model."""
    recipe = RECIPES[entry.recipe]
    metrics = evaluate_model(
        str(folder),
        str(corpus / recipe.subset),
        split="test",
        image_size=recipe.image_size,
        batch_size=recipe.batch_size,
    )
    metrics = {k: v for k, v in metrics.items() if isinstance(v, float)}
    if get_task(entry.task).segmentation:
        metrics["particle_free_area"] = particle_free_area(folder, corpus / recipe.subset)
    return metrics


def _particle_free_logits(model, subset: Path, split: str) -> list[np.ndarray]:
    """The model's logits on the particle-free whole images of a split (bare lattices and supports),
    at the file's own scale: what the crop Dice hardly sees, and a microscopist does."""
    predictor = Predictor(model, output="logits")
    logits = []
    for mask_path in sorted((subset / split / "masks").glob("*.png")):
        if not io.read(mask_path)[0].any():
            logits.append(predictor(io.read(subset / split / "images" / f"{mask_path.stem}.tif")[0], None, scale=1.0))
    return logits


def particle_free_area(folder: Path, subset: Path, split: str = "test") -> float:
    """Fraction of a split's particle-free whole images the model in ``folder`` calls particle."""
    logits = _particle_free_logits(load(folder, verify=False), subset, split)
    return round(float(np.mean([(x > 0).mean() for x in logits])), 5) if logits else 0.0


def calibrate(folder: Path, entry: ZooEntry, corpus: Path, max_false_area: float | None = None) -> float:
    """Fold the validation split's best Dice threshold into the head of the model in ``folder``;
    with ``max_false_area``, the best among those that call no more of the particle-free
    validation images particle than that."""
    recipe = RECIPES[entry.recipe]
    subset = corpus / recipe.subset
    model = load(folder, verify=False)
    val = load_dataset(str(subset), entry.task, "val", image_size=recipe.image_size, seed=0)
    empty = _particle_free_logits(model, subset, "val") if max_false_area is not None else None
    threshold = calibrate_threshold(
        model, DataLoader(val, batch_size=recipe.batch_size), empty_logits=empty, max_false_area=max_false_area
    )
    if threshold != 0.5:
        model.emzoo_cfg.pop("source", None)
        save_pretrained(model, folder, calibrated_threshold=threshold)
    return threshold


def clearly_better(task, value: float, shipped: float | None) -> bool:
    """Better than the shipped weights by more than the split's noise (``MIN_GAIN``): a tie is not
    worth a new 9 MB weights file in every clone's history."""
    if shipped is None:
        return True
    metric, larger = task.selection
    gain = value - shipped if larger else shipped - value
    return gain > MIN_GAIN[metric] * (abs(shipped) if metric == "l1" else 1.0)
