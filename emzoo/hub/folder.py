"""The checkpoint folder: timm's config.json (plus an ``emzoo`` block), model.safetensors, a
test input/output pair that must reproduce on load, and a model card. Written atomically, read
strictly: a folder that disagrees with itself is refused with one line, never half-loaded."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

import timm
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from timm.models._hub import save_config_for_hf
from torch import nn

import emzoo.models  # noqa: F401  (registers the architectures)
from emzoo.devices import check_device
from emzoo.errors import CheckpointError, ConfigError
from emzoo.fsutil import new_folder, sha256_file
from emzoo.hub.cards import render_card
from emzoo.normalize import METHODS
from emzoo.tasks import get_task
from emzoo.version import __version__
from emzoo.zoo import ZOO

_log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TEST_PAIR_NAME = "test_pair.safetensors"
CARD_NAME = "README.md"
HUB_FILES = [CONFIG_NAME, WEIGHTS_NAME, TEST_PAIR_NAME, CARD_NAME, "*.png"]
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
TEST_INPUT_SIZE = 64


def state_hash(model: nn.Module) -> str:
    """SHA-256 of a model's weights and buffers, to compare processes or runs."""
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def emzoo_cfg(model: nn.Module) -> dict:
    """The emzoo block of a model's config: task, normalisation, provenance."""
    return dict(getattr(model, "emzoo_cfg", None) or {})


def _test_input(in_chans: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(1, in_chans, TEST_INPUT_SIZE, TEST_INPUT_SIZE, generator=generator)


def save_pretrained(
    model: nn.Module,
    save_directory: str | Path,
    *,
    task: str | None = None,
    normalization: str | None = None,
    card: bool = True,
    weights_dtype: str = "float32",
    **emzoo_fields: Any,
) -> Path:
    """Write a Hub-ready folder atomically: config.json (timm's format plus an ``emzoo`` block),
    model.safetensors, a test input/output pair that must reproduce on load, and a model card.

    ``weights_dtype="float16"`` stores half the bytes; the model's own weights are rounded to it
    first, so the test pair is what the stored weights (read back as float32) give."""
    if weights_dtype not in ("float32", "float16"):
        raise ConfigError(f"weights_dtype {weights_dtype!r}: expected 'float32' or 'float16'")
    save_directory = Path(save_directory)
    _check_replaceable(save_directory)
    meta = emzoo_cfg(model)
    meta.update({k: v for k, v in emzoo_fields.items() if v is not None})
    meta["task"] = get_task(task or meta.get("task")).name
    meta["normalization"] = normalization or meta.get("normalization") or "standardize"
    meta["emzoo_version"] = __version__
    meta["weights_dtype"] = weights_dtype
    model.pretrained_cfg = provenance_cfg(getattr(model, "pretrained_cfg", None), meta.get("zoo_name"))
    with new_folder(save_directory, replace=True) as tmp:
        was_training = model.training
        model.eval()
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        if weights_dtype == "float16":
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
            with torch.no_grad():
                for key, value in model.state_dict().items():
                    if value.is_floating_point():
                        value.copy_(state[key].float())
        # the task travels inside the weights file too: a config edited to claim another task is caught
        save_file(state, tmp / WEIGHTS_NAME, metadata={"format": "pt", "emzoo_task": meta["task"]})
        meta["weights_sha256"] = sha256_file(tmp / WEIGHTS_NAME)
        save_config_for_hf(model, tmp / CONFIG_NAME, model_config={"emzoo": meta})
        x = _test_input(model.in_chans)
        device = next(model.parameters()).device
        with torch.inference_mode():
            y = model(x.to(device)).float().cpu().contiguous()
        save_file({"input": x, "output": y}, tmp / TEST_PAIR_NAME)
        model.train(was_training)
        if card:
            config = json.loads((tmp / CONFIG_NAME).read_text())
            (tmp / CARD_NAME).write_text(render_card(config, model=model))
    model.emzoo_cfg = meta
    return save_directory


def _check_replaceable(folder: Path) -> None:
    """A model folder is replaced whole, as the Hub's save_pretrained overwrites one; a folder that
    holds anything else (a user's files, a run) is refused, so nothing of theirs is deleted."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ConfigError(f"save_directory {folder}: is a file; expected a folder (nothing was changed)")
    model_files = {CONFIG_NAME, WEIGHTS_NAME, TEST_PAIR_NAME, CARD_NAME}
    others = [p.name for p in folder.iterdir() if p.name not in model_files and p.suffix != ".png"]
    if others:
        shown = ", ".join(sorted(others)[:3]) + (", ..." if len(others) > 3 else "")
        raise ConfigError(
            f"save_directory {folder}: holds files that are not a model's ({shown}); choose a new or empty "
            "folder (nothing was changed)"
        )
    if any(folder.iterdir()):
        _log.info("replacing the model folder %s", folder)


def provenance_cfg(pretrained_cfg: dict | None, zoo_name: str | None) -> dict:
    """timm's pretrained_cfg for saved weights: the tag, Hub id and description of the zoo entry
    they are (never those of the architecture's default tag, which names other weights)."""
    cfg = {k: v for k, v in dict(pretrained_cfg or {}).items() if k not in ("tag", "hf_hub_id", "description", "file")}
    entry = ZOO.get(zoo_name or "")
    if entry is not None:
        cfg.update(
            tag=entry.tag, hf_hub_id=f"{entry.hub_id}@{entry.revision}", description=f"{entry.task} ({entry.recipe})"
        )
    return cfg


def _read_config(folder: Path) -> dict:
    """config.json, checked for what loading relies on: a JSON object naming an emzoo
    architecture, with a known task and normalisation."""
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointError(f"{folder}: no {CONFIG_NAME}; expected a folder written by emzoo.save_pretrained")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{config_path}: not valid JSON ({e})") from None
    if not isinstance(config, dict) or "architecture" not in config:
        raise CheckpointError(f"{config_path}: expected timm's config format (a JSON object with 'architecture')")
    if config["architecture"] not in timm.list_models("emzoo_*"):
        raise CheckpointError(f"{config_path}: architecture {config['architecture']!r} is not an emzoo architecture")
    meta, model_args = config.get("emzoo") or {}, config.get("model_args") or {}
    if not isinstance(meta, dict) or not isinstance(model_args, dict):
        raise CheckpointError(f"{config_path}: 'emzoo' and 'model_args' must be JSON objects")
    try:
        get_task(meta.get("task"))
    except ConfigError as e:
        raise CheckpointError(f"{config_path}: {e}") from None
    if meta.get("normalization", "standardize") not in METHODS:
        raise CheckpointError(
            f"{config_path}: normalization {meta['normalization']!r}; expected one of {', '.join(METHODS)}"
        )
    return config


def _read_weights(folder: Path, config: dict) -> dict[str, torch.Tensor]:
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise CheckpointError(
                f"{folder}: only pickle weights ({', '.join(pickles)}); emzoo loads safetensors only and "
                "never unpickles downloaded files. Convert them where you trust them: "
                "safetensors.torch.save_file(torch.load(f, weights_only=True), 'model.safetensors')"
            )
        raise CheckpointError(f"{folder}: no {WEIGHTS_NAME}")
    meta = config.get("emzoo") or {}
    try:
        with safe_open(weights, "pt") as f:  # one read: the task it was saved for, and the tensors
            claimed = (f.metadata() or {}).get("emzoo_task")
            state = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({e}); download it again") from None
    if claimed and claimed != get_task(meta.get("task")).name:
        raise CheckpointError(
            f"{folder}: {CONFIG_NAME} says task '{meta.get('task', 'pretext')}' but the weights were saved "
            f"for '{claimed}'"
        )
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}  # float16 files: float32


def adapt_first_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """First-conv weights for another number of input channels that give the same output when
    every channel carries the same grayscale image (repeat and scale, or sum)."""
    if weight.shape[1] == in_chans:
        return weight
    gray = weight.sum(dim=1, keepdim=True)
    return gray if in_chans == 1 else gray.repeat(1, in_chans, 1, 1) / in_chans


def _adapt(model: nn.Module, state: dict[str, torch.Tensor], config: dict, num_classes, in_chans) -> list[str]:
    """Adapt a checkpoint's state to a model built with other in/out channels; returns the keys
    that are newly initialised (the swapped head)."""
    pretrained_cfg = config.get("pretrained_cfg", {})
    if in_chans is not None and in_chans != config.get("model_args", {}).get("in_chans", 1):
        first = pretrained_cfg.get("first_conv") or ()
        for conv in [first] if isinstance(first, str) else first:
            key = f"{conv}.weight"
            state[key] = adapt_first_conv(state[key], in_chans)
    new_keys: list[str] = []
    if num_classes is not None and num_classes != config.get("num_classes"):
        head = pretrained_cfg.get("classifier") or "head"
        for suffix in ("weight", "bias"):
            key = f"{head}.{suffix}"
            if key in state:
                del state[key]
                new_keys.append(key)
        sd = model.state_dict()
        for key in new_keys:
            state[key] = sd[key]
    return new_keys


def load_folder(
    folder: str | Path,
    *,
    num_classes: int | None = None,
    in_chans: int | None = None,
    verify: bool = True,
    device: str | torch.device | None = None,
) -> nn.Module:
    """Build the model a folder describes and load its weights strictly."""
    folder = Path(folder)
    config = _read_config(folder)
    model_args = dict(config.get("model_args", {}))
    model_args.pop("num_classes", None)
    model_args.pop("in_chans", None)
    arch = config["architecture"]
    build = dict(
        num_classes=num_classes if num_classes is not None else config.get("num_classes", 1),
        in_chans=in_chans if in_chans is not None else config.get("model_args", {}).get("in_chans", 1),
        **model_args,
    )
    _check_size(folder, arch, build)
    try:
        model = timm.create_model(arch, **build)
    except ConfigError:  # num_classes / in_chans asked of load()
        raise
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{folder / CONFIG_NAME}: model_args do not fit {arch} ({e})") from None
    state = _read_weights(folder, config)
    new_keys = _adapt(model, state, config, num_classes, in_chans)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        first = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line), str(e)[:200])
        raise CheckpointError(f"{folder}: {CONFIG_NAME} disagrees with {WEIGHTS_NAME}: {first}") from None
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{folder / WEIGHTS_NAME} does not match {arch}: missing keys {result.missing_keys[:8]}, "
            f"unexpected keys {result.unexpected_keys[:8]}"
        )
    if new_keys:
        _log.info("new head for %d outputs, newly initialised: %s", num_classes, ", ".join(new_keys))
    model.emzoo_cfg = dict(config.get("emzoo", {}), source=str(folder))
    model.emzoo_new_keys = new_keys
    model.eval()
    if verify and not new_keys and in_chans is None:
        verify_test_pair(model, folder)
    if verify:
        check_weights(folder, config)
    if device is not None:
        model.to(check_device(str(device)))
    return model


def _check_size(folder: Path, arch: str, build: dict) -> None:
    """Build the model on the meta device first (no memory): a config asking for far more
    parameters than its weights file holds (``width: 20000``) is refused before any allocation."""
    try:
        with torch.device("meta"):
            wanted = sum(p.numel() for p in timm.create_model(arch, **build).parameters())
        with safe_open(folder / WEIGHTS_NAME, "pt") as f:
            stored = sum(math.prod(f.get_slice(key).get_shape()) for key in f.keys())
    except (TypeError, ValueError, KeyError, SafetensorError, OSError, RuntimeError):
        return  # the full build and read below name the problem
    if wanted > 2 * stored + 1_000_000:
        raise CheckpointError(
            f"{folder / CONFIG_NAME}: model_args describe {wanted:,} parameters but {WEIGHTS_NAME} holds "
            f"{stored:,}; the config does not belong to these weights"
        )


def check_weights(folder: Path, config: dict) -> None:
    """The weights file must be the one whose sha256 save_pretrained pinned in config.json, which
    catches replaced weights even where the test pair is gone. A folder without that pin (written
    by an older emzoo) is trusted only if its test pair reproduces, or if its weights are a shipped
    checkpoint's, and then its config must claim that checkpoint's task. Checked last, so that a
    file with other keys or shapes gets the more specific message first."""
    weights = folder / WEIGHTS_NAME
    digest = sha256_file(weights)
    pinned = (config.get("emzoo") or {}).get("weights_sha256")
    if pinned and digest != pinned:
        raise CheckpointError(
            f"{weights}: sha256 differs from the one pinned in {CONFIG_NAME}; the weights are corrupt or were replaced"
        )
    shipped = next((e for e in ZOO.values() if e.sha256 == digest), None)
    claimed = get_task((config.get("emzoo") or {}).get("task")).name
    if shipped is not None and (shipped.task != claimed or shipped.arch != config["architecture"]):
        raise CheckpointError(
            f"{folder / CONFIG_NAME}: says {config['architecture']} for '{claimed}', but {WEIGHTS_NAME} is the "
            f"shipped {shipped.name} ({shipped.arch}, '{shipped.task}'); the config was edited"
        )
    if not pinned and shipped is None and not (folder / TEST_PAIR_NAME).is_file():
        raise CheckpointError(
            f"{folder}: cannot be verified (no weights_sha256 in {CONFIG_NAME} and no {TEST_PAIR_NAME}); "
            "save it again with emzoo.save_pretrained, or load it with verify=False if you trust it"
        )


def verify_test_pair(model: nn.Module, folder: Path, atol: float = 1e-4, rtol: float = 1e-3) -> None:
    """Check the loaded model reproduces the input/output pair saved with it."""
    pair_path = folder / TEST_PAIR_NAME
    if not pair_path.is_file():
        _log.warning("%s has no %s; output not verified", folder, TEST_PAIR_NAME)
        return
    try:
        pair = load_file(pair_path)
        x, expected = pair["input"], pair["output"]
    except (SafetensorError, OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{pair_path}: unreadable ({e}); download the checkpoint again") from None
    with torch.inference_mode():
        out = model(x).float()
    if out.shape != expected.shape or not torch.allclose(out, expected, atol=atol, rtol=rtol):
        diff = (out - expected).abs().max().item() if out.shape == expected.shape else "shape"
        raise CheckpointError(
            f"{folder}: the loaded model does not reproduce {TEST_PAIR_NAME} (max abs diff {diff}); "
            "the weights or config are corrupt or were changed"
        )
