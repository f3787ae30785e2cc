"""Inference defaults a segmentation checkpoint carries, chosen on its validation split when it is
built (``emzoo zoo build``) or afterwards (``emzoo zoo calibrate``): its decision threshold (folded
into the head's bias), the context framing its border (``border``) and how sure it must be of an
inverted image's particles before ``polarity="auto"`` inverts it (``polarity_confidence``) and
whether its images are levelled under their background first (``level``,
:mod:`emzoo.inference.levelling`) and how sure it must be somewhere in a region it calls particle
(``peak``, :mod:`emzoo.inference.confidence`).

Each is chosen where the benches showed one setting does not suit every checkpoint: zero padding
beat the mirrored border on every measure for HRNet HRTEM and lost Dice for U-Net 4/424; HRNet
HAADF inverted bare lattices at the confidence that suits U-Net 4/424.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit, logit

from emzoo import io
from emzoo.fsutil import atomic_write_text
from emzoo.hub import CARD_NAME, CONFIG_NAME, load, save_pretrained
from emzoo.hub.cards import render_card
from emzoo.inference.confidence import OFF, PEAKS, drop_unsure, unsure_regions
from emzoo.inference.polarity import CONFIDENCE, image_contrast, inverted_confidence, model_particle_contrast
from emzoo.inference.predictor import BORDERS, Predictor
from emzoo.inference.scale import dice
from emzoo.judge import AREA_GAIN, MIN_GAIN, held_out, whole_image_scores, whole_images
from emzoo.normalize import remove_outliers
from emzoo.train.evaluation import calibrate_threshold
from emzoo.zoo.catalog import RECIPES, ZooEntry

STRIP_PX = 32  # the border strip scored here and in scripts/bench_segment.py
CONFIDENCES = tuple(round(0.5 + 0.01 * k, 2) for k in range(50))  # 0.50 .. 0.99


@dataclass
class BorderScores:
    """A border context's whole-image scores on a split."""

    dice: float
    particle_free_area: float
    strip_excess: float  # false-positive rate in the outer strip minus the interior's

    def no_worse_than(self, other: BorderScores, area_noise: float = 0.0) -> bool:
        """At least as good on every count, up to the split's noise on Dice (and ``area_noise`` on the
        particle-free area and the strip's excess)."""
        return (
            self.dice >= other.dice - MIN_GAIN["whole_dice"]
            and self.particle_free_area <= other.particle_free_area + area_noise
            and self.strip_excess <= other.strip_excess + area_noise
        )


def border_strip(shape: tuple[int, int], width: int = STRIP_PX) -> np.ndarray:
    """The outer ``width`` pixels of an image: where border artefacts show."""
    strip = np.ones(shape, bool)
    strip[width:-width, width:-width] = False
    return strip


def border_scores(pairs: list[tuple[np.ndarray, np.ndarray]]) -> BorderScores:
    """Dice, particle-free area and the strip's excess false-positive rate of logits/truth pairs."""
    whole = whole_image_scores(pairs)
    tally = np.zeros(4)  # false positives in the strip, background there, false positives inside, background
    for logits, truth in pairs:
        strip = border_strip(truth.shape)
        false, background = (logits > 0) & ~truth, ~truth
        tally += [
            (false & strip).sum(),
            (background & strip).sum(),
            (false & ~strip).sum(),
            (background & ~strip).sum(),
        ]
    excess = tally[0] / max(tally[1], 1) - tally[2] / max(tally[3], 1)
    return BorderScores(whole["whole_dice"], whole["particle_free_area"], round(float(excess), 5))


def choose_border(model, subset: Path, split: str = "val") -> tuple[str, dict[str, BorderScores], dict[str, list]]:
    """``"zero"`` where the network's zero padding is no worse than mirrored context on the split's
    whole images on every count (Dice, particle-free area, border strip); else ``"mirror"``, which
    keeps particles cut by the border whole. Also each border's scores and logits/truth pairs."""
    pairs = {
        border: whole_images(model, subset, split, mirror_border=border == "mirror", level="off") for border in BORDERS
    }
    scores = {border: border_scores(p) for border, p in pairs.items()}
    return ("zero" if scores["zero"].no_worse_than(scores["mirror"]) else "mirror"), scores, pairs


def choose_level(
    model, subset: Path, unlevelled: list, split: str = "val"
) -> tuple[str, dict[str, BorderScores], dict[str, list]]:
    """``"plane"`` where levelling under the first pass's background is no worse than none on the
    split's whole images (at the model's border) on every count, up to the split's noise (Dice
    0.005, areas 0.5 percentage points): it removes ramps the corpus' frames rarely have
    (docs/bench_levelling.md), so it must cost nothing measurable on them; else ``"off"``.
    ``unlevelled``: the split's pairs without levelling, already scored. Also each choice's
    scores and pairs."""
    pairs = {"off": unlevelled, "plane": whole_images(model, subset, split, level="plane")}
    scores = {level: border_scores(p) for level, p in pairs.items()}
    chosen = "plane" if scores["plane"].no_worse_than(scores["off"], area_noise=AREA_GAIN) else "off"
    return chosen, scores, pairs


def choose_peak(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, dict[float, BorderScores]]:
    """The highest peak up to which every peak's hysteresis is no worse than none on the split's
    whole images (logits/truth ``pairs``, one logit) on every count, up to the split's noise: it
    drops regions the network hedges on, true particles among them where it is unsure of those
    too. Also the scores of the peaks tried."""

    def at(peak: float) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(drop_unsure(lg[None], unsure_regions(expit(lg), peak))[0], truth) for lg, truth in pairs]

    scores, chosen = {OFF: border_scores(pairs)}, OFF
    for peak in PEAKS[1:]:  # upwards, stopping at the first that costs: a lone good peak above is chance
        scores[peak] = border_scores(at(peak))
        if not scores[peak].no_worse_than(scores[OFF], area_noise=AREA_GAIN):
            break
        chosen = peak
    return chosen, scores


def _foreground(prob: np.ndarray) -> np.ndarray:
    return prob if prob.ndim == 2 else 1.0 - prob[0]


def polarity_cases(model, subset: Path, split: str = "val") -> list[tuple[float, bool]]:
    """Every image of the split whose contrast disagrees with the model's and where the inverted
    image gives more particle, with the model's confidence there and whether inverting is right
    (it finds the particles better; never on a particle-free image). Each image counts four times:
    as recorded and with its spikes replaced, with its pixel size known and withheld."""
    contrast = model_particle_contrast(model)
    if contrast is None:
        return []
    runs = {p: Predictor(model, output="probability", polarity=p) for p in ("as-is", "inverted")}
    cases = []
    for mask_path in sorted((subset / split / "masks").glob("*.png")):
        truth = io.read(mask_path)[0] > 0
        image, meta = io.read(subset / split / "images" / f"{mask_path.stem}.tif")
        for version in (image, remove_outliers(image)):
            if image_contrast(runs["as-is"].normalized(version)[0]) == contrast:
                continue
            for pixel_size in (meta["pixel_size_nm"], None):
                as_is, inverted = (_foreground(runs[p](version, pixel_size)) for p in ("as-is", "inverted"))
                confidence = inverted_confidence(as_is, inverted)
                if confidence is not None:
                    right = truth.any() and dice(inverted >= 0.5, truth) > dice(as_is >= 0.5, truth)
                    cases.append((confidence, bool(right)))
    return cases


def choose_polarity_confidence(cases: list[tuple[float, bool]]) -> float:
    """The middle of the confidences that make the fewest wrong decisions on ``cases``, never below
    ``CONFIDENCE``: calibration may raise the bar, not lower it. An inverted image left as it is
    is a miss the user sees (and fixes with ``--polarity inverted``); a bare support inverted into
    particles is a wrong answer they may not see."""
    if not cases:
        return CONFIDENCE

    def errors(c: float) -> int:
        return sum((conf > c) != right for conf, right in cases)

    fewest = min(errors(c) for c in CONFIDENCES)
    best = [c for c in CONFIDENCES if errors(c) == fewest]
    return max(CONFIDENCE, best[len(best) // 2])


def calibrate(
    folder: Path,
    entry: ZooEntry,
    corpus: Path,
    max_false_area: float | None = None,
    threshold: bool = True,
) -> dict:
    """Choose the border, the levelling, the decision threshold (unless ``threshold=False``: a
    shipped model's weights stay as they are), the peak and the polarity confidence of the segmentation model
    in ``folder`` on the validation split, in that order (each with the ones before), and save them
    with it.
    ``max_false_area``: the threshold may call no more of the particle-free images particle."""
    model = load(folder, verify=False)
    model.emzoo_cfg.pop("source", None)
    model.emzoo_cfg.pop("peak", None)  # the validation pairs below keep every region
    subset = corpus / RECIPES[entry.recipe].subset
    border, border_table, border_pairs = choose_border(model, subset)
    model.emzoo_cfg["border"] = border
    chosen: dict = {"border": border, "border_scores": {k: vars(v) for k, v in border_table.items()}}
    level, level_table, level_pairs = choose_level(model, subset, border_pairs[border])
    model.emzoo_cfg["level"] = chosen["level"] = level
    chosen["level_scores"] = {k: vars(v) for k, v in level_table.items()}
    pairs = level_pairs[level]  # the validation pairs as chosen so far: the weights are unchanged
    if threshold:
        empty = [logits for logits, truth in pairs if not truth.any()] if max_false_area is not None else None
        chosen["threshold"] = calibrate_threshold(
            model, [p for p in pairs if p[1].any()], empty_logits=empty, max_false_area=max_false_area
        )
        if chosen["threshold"] != 0.5:
            model.emzoo_cfg["calibrated_threshold"] = chosen["threshold"]
            pairs = [(lg - logit(chosen["threshold"]), truth) for lg, truth in pairs]  # as folded into the bias
    peak, peak_table = choose_peak(pairs)
    model.emzoo_cfg["peak"] = chosen["peak"] = peak
    chosen["peak_scores"] = {str(k): vars(v) for k, v in peak_table.items()}
    cases = polarity_cases(model, subset)
    chosen["polarity_confidence"] = choose_polarity_confidence(cases)
    chosen["polarity_cases"] = len(cases)
    model.emzoo_cfg["polarity_confidence"] = chosen["polarity_confidence"]
    if threshold:
        save_pretrained(model, folder, weights_dtype=model.emzoo_cfg.get("weights_dtype", "float32"))
    else:
        write_config_fields(folder, model, {k: chosen[k] for k in ("border", "level", "peak", "polarity_confidence")})
    return chosen


def write_config_fields(folder: Path, model, fields: dict) -> None:
    """``fields`` into the ``emzoo`` block of a model folder's config.json, and its card rendered
    again; the weights and test pair stay byte for byte (their sha256 is pinned)."""
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["emzoo"].update(fields)
    atomic_write_text(folder / CONFIG_NAME, json.dumps(config, indent=2))
    atomic_write_text(folder / CARD_NAME, render_card(config, model=model))


def recalibrate(folder: Path, entry: ZooEntry, corpus: Path) -> dict:
    """Choose a built checkpoint's border, levelling, peak and polarity confidence again (its weights and
    threshold stay as they are) and score its held-out test split with them, into its config's
    metrics."""
    chosen = calibrate(folder, entry, corpus, threshold=False)
    test = held_out(folder, entry, corpus)
    model = load(folder, verify=False)
    dataset = next((m["dataset"] for m in model.emzoo_cfg.get("metrics", [])), "held-out test split")
    metrics = [{"name": k, "value": v, "dataset": dataset, "split": "test"} for k, v in test.items()]
    write_config_fields(folder, model, {"metrics": metrics})
    return {**chosen, "test": test}
