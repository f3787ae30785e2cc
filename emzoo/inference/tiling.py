"""Tiling geometry: tiles start on the network's pooling grid and overlap by twice a margin
taken from the receptive field, so every output pixel that is kept saw all the input it depends
on (for the U-Nets the tiled result equals the whole-image forward). Where tiles overlap beyond the
margins they are blended with a raised-cosine window (seamless for HRNet, whose field is larger
than any practical tile)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

HRNET_MARGIN = 64  # pixels; HRNet's field spans the whole tile, this keeps seams invisible
RAMP = 32  # width of the blending ramp beyond the margins
MAX_TILE = 2400  # pixels; default tiles stay near this side (at most ~10% over, to avoid a sliver row)
TILE_BATCH_PIXELS = 2400 * 2400  # pixels per forward pass (U-Nets: ~0.2 GB of activations per megapixel)
HRNET_BATCH_PIXELS = 1024 * 1024  # HRNet keeps full-resolution branches: ~6x the memory per pixel


def round_up(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


def default_margin(model: nn.Module) -> int:
    """Context (pixels) a tile needs beyond what it keeps: half the receptive field."""
    divisor = getattr(model, "size_divisor", 1)
    rf = getattr(model, "receptive_field", None)
    margin = math.ceil(rf / 2) if rf else HRNET_MARGIN
    return round_up(margin, divisor)


def default_tile(model: nn.Module, margin: int, length: int | None = None) -> int:
    """The tile side: big enough that the discarded margins cost little (about 10 margins, at
    least 512, about ``MAX_TILE`` at most), then resized so tiles split ``length`` evenly: smaller,
    or up to ~10% larger where that saves a whole row of tiles."""
    divisor = getattr(model, "size_divisor", 1)
    context = 2 * margin + (0 if getattr(model, "receptive_field", None) else RAMP)
    largest = min(max(512, round_up(10 * margin, divisor)), MAX_TILE)
    if length is None or length <= largest:
        return largest
    count = max(1, math.ceil((length - context) / (largest - context) - 0.1))  # up to ~10% over: no sliver row
    return round_up(math.ceil((length - context) / count) + context, divisor)


def pixel_budget(model: nn.Module) -> int:
    """Pixels one forward pass may take, so memory stays bounded whatever the image size. On a
    GPU, half its free memory at the measured activation cost per pixel: whole images stay
    whole where they fit (no tiles, no recomputed margins)."""
    cpu_budget = TILE_BATCH_PIXELS if getattr(model, "receptive_field", None) else HRNET_BATCH_PIXELS
    param = next(model.parameters(), None)
    if param is None or param.device.type != "cuda":
        return cpu_budget
    free, _ = torch.cuda.mem_get_info(param.device)
    bytes_per_pixel = 200 if getattr(model, "receptive_field", None) else 1200  # ~0.2 GB/MP for the U-Nets
    return max(cpu_budget, int(0.5 * free / bytes_per_pixel))


def default_batch(model: nn.Module, tile: int) -> int:
    """Tiles per forward pass: up to 4, within the model's pixel budget."""
    return max(1, min(4, pixel_budget(model) // (tile * tile)))


def starts(length: int, tile: int, stride: int, divisor: int) -> list[int]:
    """Tile origins on the pooling grid covering [0, length), ``stride`` apart at most. The last
    one is flush with the end when that lands on the grid, otherwise it reaches past the end and
    the model pads it as it pads the whole image."""
    starts = [0]
    flush = (length - tile) // divisor * divisor
    while starts[-1] + tile < length:
        step = starts[-1] + stride
        starts.append(flush if starts[-1] < flush <= step and flush + tile >= length else step)
    return starts


def window(size: int, lead: bool, trail: bool, margin: int, ramp: int) -> np.ndarray:
    """1-D weights of a tile: zero on a margin next to an inner edge, then a raised-cosine ramp;
    flat 1 towards the image border."""
    w = np.ones(size, np.float32)
    profile = np.concatenate([np.zeros(margin), 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp + 2)[1:-1])])
    profile = profile[: size // 2].astype(np.float32)
    if lead:
        w[: len(profile)] = profile
    if trail:
        w[size - len(profile) :] = profile[::-1]
    return w


def positions(h: int, w: int, tile: int, stride: int, divisor: int) -> Iterator[tuple[int, int]]:
    for y in starts(h, tile, stride, divisor):
        for x in starts(w, tile, stride, divisor):
            yield y, x


def run_tiled(
    x: np.ndarray,
    run: Callable[[np.ndarray], np.ndarray],
    model: nn.Module,
    tile: int,
    margin: int,
    batch_size: int,
    progress: bool = False,
) -> np.ndarray:
    """``run`` over overlapping tiles of the 2-D ``x``, stitched into (C, H, W). Models with a
    known receptive field keep each tile's centre (margins dropped: exact); the others blend
    overlapping tiles with a raised-cosine window. Outputs are accumulated as they come, so memory
    grows with the image, not with the tile count."""
    from tqdm.auto import tqdm

    divisor = getattr(model, "size_divisor", 1)
    h, w = x.shape
    exact = getattr(model, "receptive_field", None) is not None
    stride = tile - 2 * margin - (0 if exact else RAMP)
    stride = max(divisor, stride // divisor * divisor)
    acc = np.zeros((model.num_classes, h, w), np.float32)
    weight = None if exact else np.zeros((h, w), np.float32)
    origins = list(positions(h, w, tile, stride, divisor))
    for k in tqdm(range(0, len(origins), batch_size), disable=not progress, desc="tiles", unit="batch"):
        group = origins[k : k + batch_size]
        crops = [x[y : y + tile, xx : xx + tile] for y, xx in group]
        outs = []
        for shape in {c.shape for c in crops}:  # tiles at the border may be smaller; one batch per size
            idx = [i for i, c in enumerate(crops) if c.shape == shape]
            outs += list(zip(idx, run(np.stack([crops[i] for i in idx])[:, None])))
        for i, pred in outs:
            y, xx = group[i]
            th, tw = pred.shape[-2:]
            if exact:
                top, left = (margin if y > 0 else 0), (margin if xx > 0 else 0)
                bottom = th - (margin if y + th < h else 0)
                right = tw - (margin if xx + tw < w else 0)
                acc[:, y + top : y + bottom, xx + left : xx + right] = pred[:, top:bottom, left:right]
                continue
            wt = window(th, y > 0, y + th < h, margin, RAMP)[:, None] * window(tw, xx > 0, xx + tw < w, margin, RAMP)
            acc[:, y : y + th, xx : xx + tw] += pred * wt
            weight[y : y + th, xx : xx + tw] += wt
    if weight is not None:
        acc /= np.maximum(weight, 1e-12)
    return acc
