"""Judging a finished build run against the shipped weights on the held-out split: its test
metrics, scored also on whole frames as a microscopist runs the model (segmentation's Dice and the
particle-free area they see at once, restoration's PSNR), and whether it is better by more than the
split's noise. (Its inference defaults are chosen on validation first: :mod:`emzoo.calibration`.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage.metrics import peak_signal_noise_ratio

from emzoo import io
from emzoo.data.transforms import detector_recording, smooth_background
from emzoo.hub import load
from emzoo.inference.predictor import Predictor
from emzoo.normalize import remove_outliers
from emzoo.tasks import get_task
from emzoo.train.evaluation import evaluate_model
from emzoo.zoo.catalog import RECIPES, ZooEntry

MIN_GAIN = {"whole_dice": 0.005, "whole_psnr": 0.05}  # to replace shipped weights: Dice + 0.005, or + 0.05 dB
PRETEXT_GAIN = 0.01  # the pretext (no whole-frame target): L1 1% lower
AREA_TOLERANCE = 0.0005  # of the particle-free images' area: a challenger may not call more particle
AREA_GAIN = 0.005  # or it wins by calling 0.5 percentage points less of them particle, at a Dice as good


def held_out(folder: Path, entry: ZooEntry, corpus: Path) -> dict[str, float]:
    """A folder's test metrics on the recipe's corpus, scored as the Trainer scores its best model;
    for segmentation also on the test split's whole images (``whole_dice``, ``particle_free_area``)."""
    recipe = RECIPES[entry.recipe]
    metrics = evaluate_model(
        str(folder),
        str(corpus / recipe.subset),
        split="test",
        image_size=recipe.image_size,
        batch_size=recipe.batch_size,
    )
    metrics = {k: v for k, v in metrics.items() if isinstance(v, float)}
    task = get_task(entry.task)
    if task.segmentation:
        metrics.update(whole_image_scores(whole_images(load(folder, verify=False), corpus / recipe.subset, "test")))
    elif task.target_folder:
        metrics.update(whole_frame_psnr(load(folder, verify=False), corpus / recipe.subset / "test", task))
    return metrics


def fit_levels(result: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``result`` after a least-squares gain and offset fit to ``target`` (as in CARE's evaluation):
    levels an image carries no information about (detector offset, the background's mean) do not
    decide a score."""
    design = np.stack([result.ravel(), np.ones(result.size)], 1)
    (gain, offset), *_ = np.linalg.lstsq(design, target.ravel(), rcond=None)
    return gain * result + offset


def fitted_psnr(result: np.ndarray, target: np.ndarray) -> float:
    """PSNR over the target's range, after :func:`fit_levels`."""
    span = float(target.max() - target.min()) or 1.0
    return float(peak_signal_noise_ratio(target, fit_levels(result, target), data_range=span))


def whole_frame_psnr(model, folder: Path, task) -> dict[str, float]:
    """Mean PSNR of a restoration model over a split's whole frames at their own scale, as
    ``scripts/bench_quality.py`` scores it: the training crops' L1 can improve while whole frames
    get worse (super-resolution did, by 0.3 dB). A denoiser's frames count twice, as recorded and
    recorded again by a real detector (:func:`emzoo.data.transforms.detector_recording`, one seed
    per frame): it must hold on the corpus' noise and on the correlated noise cameras and scans make.
    ``whole_psnr`` decides; a denoiser's two halves are also given apart."""
    predictor = Predictor(model)
    scores: dict[str, list[float]] = {"whole_psnr_recorded": [], "whole_psnr_detector": []}
    for index, path in enumerate(sorted((folder / "image").glob("*.tif"))):
        target = io.read(folder / task.target_folder / path.name)[0].astype(np.float64)
        versions = {"whole_psnr_recorded": (io.read(path)[0], target)}
        if task.rerecordable:
            versions["whole_psnr_detector"] = detector_recording(target, np.random.default_rng([7, index]))
        for key, (image, truth) in versions.items():
            result = predictor(np.asarray(image, np.float64), None, scale=1.0).astype(np.float64)
            scores[key].append(fitted_psnr(result, np.asarray(truth, np.float64)))
    out = {"whole_psnr": round(float(np.mean(sum(scores.values(), []))), 4)}
    if task.rerecordable:
        out.update({key: round(float(np.mean(values)), 4) for key, values in scores.items()})
    return out


def whole_images(
    model,
    subset: Path,
    split: str,
    particle_free_only: bool = False,
    mirror_border: bool | None = None,
    level: str = "auto",
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The model's logits and the true mask of every whole image of a split (or only of its
    particle-free ones), at the file's own scale, as a microscopist runs it (the Predictor's border
    context, the one the model was calibrated to). Each image counts three times, as
    recorded, with its x-ray hits and hot pixels replaced (as the user's software may have done),
    and with a smooth background added (uneven illumination, a support's thickness; one seed per
    image): a model must hold on all three. ``mirror_border`` and ``level``: as :class:`Predictor`
    (default: the model's own)."""
    predictor = Predictor(model, output="logits", mirror_border=mirror_border, level=level)
    masks = [(m, io.read(m)[0] > 0) for m in sorted((subset / split / "masks").glob("*.png"))]
    images = (
        (index, io.read(subset / split / "images" / f"{m.stem}.tif")[0], truth)
        for index, (m, truth) in enumerate(masks)  # one background seed per image, whichever are scored
        if not (particle_free_only and truth.any())
    )
    return [
        (predictor(version, None, scale=1.0), truth)
        for index, image, truth in images
        for version in (image, remove_outliers(image), smooth_background(image, np.random.default_rng([11, index])))
    ]


def whole_image_scores(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Pooled Dice over the whole images that hold particles, and the fraction of the particle-free
    ones (bare lattices and supports) called particle."""
    tp = fp = fn = 0
    for logits, truth in (p for p in pairs if p[1].any()):
        called = logits > 0
        tp, fp, fn = (
            tp + int((called & truth).sum()),
            fp + int((called & ~truth).sum()),
            fn + int((~called & truth).sum()),
        )
    empty = [float((logits > 0).mean()) for logits, truth in pairs if not truth.any()]
    return {
        "whole_dice": round(2 * tp / max(2 * tp + fp + fn, 1), 5),
        "particle_free_area": round(float(np.mean(empty)), 5) if empty else 0.0,
    }


def particle_free_area(folder: Path, subset: Path, split: str = "test") -> float:
    """Fraction of a split's particle-free whole images the model in ``folder`` calls particle."""
    pairs = whole_images(load(folder, verify=False), subset, split, particle_free_only=True)
    return whole_image_scores(pairs)["particle_free_area"]


def deciding_metric(task) -> tuple[str, bool]:
    """The held-out metric that decides a build (and whether larger is better): the one the
    benches and a microscopist see, on whole frames: segmentation's Dice, restoration's PSNR; the
    Trainer's for the pretext."""
    if task.segmentation:
        return ("whole_dice", True)
    return ("whole_psnr", True) if task.target_folder else task.selection


def clearly_better(task, value: float, shipped: float | None) -> bool:
    """Better than the shipped weights by more than the split's noise (``MIN_GAIN``): a tie is not
    worth a new 9 MB weights file in every clone's history."""
    if shipped is None:
        return True
    metric, larger = deciding_metric(task)
    gain = value - shipped if larger else shipped - value
    return gain > (MIN_GAIN[metric] if metric in MIN_GAIN else PRETEXT_GAIN * abs(shipped))


def beats(task, test: dict[str, float], shipped: dict[str, float]) -> bool:
    """Whether a challenger's held-out metrics replace the shipped ones: clearly better on the
    deciding metric without calling more of the particle-free images particle, or (segmentation)
    clearly fewer false particles on them at a Dice no lower than the split's noise."""
    metric = deciding_metric(task)[0]
    if metric not in test:
        return False
    better = clearly_better(task, test[metric], shipped.get(metric))
    if "particle_free_area" not in shipped:
        return better
    area, shipped_area = test["particle_free_area"], shipped["particle_free_area"]
    if better:
        return area <= shipped_area + AREA_TOLERANCE
    return shipped_area - area > AREA_GAIN and test[metric] >= shipped[metric] - MIN_GAIN[metric]
