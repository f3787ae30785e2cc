"""Save and load emzoo checkpoints: one folder format (timm's config.json + safetensors), found
by zoo name, ``hf-hub:org/name[@rev]`` or a local folder, loaded strictly and verified."""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import timm
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from timm.models._hub import save_config_for_hf
from torch import nn

import emzoo.models  # noqa: F401  (registers the architectures)
from emzoo.errors import EmzooError
from emzoo.fsutil import new_folder, sha256_file
from emzoo.zoo import ZOO, ZooEntry, list_models

_log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TEST_PAIR_NAME = "test_pair.safetensors"
CARD_NAME = "README.md"
HUB_FILES = [CONFIG_NAME, WEIGHTS_NAME, TEST_PAIR_NAME, CARD_NAME, "*.png"]
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
TEST_INPUT_SIZE = 64
HF_PREFIX = "hf-hub:"


# ----------------------------------------------------------------------------------- creation
def create_model(arch: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build any registered architecture (random init), or with ``pretrained=True`` load the
    named zoo checkpoint / ``arch.tag`` through :func:`load`."""
    if pretrained:
        return load(arch, **kwargs)
    if arch not in timm.list_models("emzoo_*"):
        raise EmzooError(f"unknown architecture '{arch}'{_suggest(arch, timm.list_models('emzoo_*'))}")
    model = timm.create_model(arch, **kwargs)
    model.emzoo_cfg = {}
    return model


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


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


# ------------------------------------------------------------------------------------- saving
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
        raise EmzooError(f"weights_dtype {weights_dtype!r}: expected 'float32' or 'float16'")
    save_directory = Path(save_directory)
    meta = emzoo_cfg(model)
    meta.update({k: v for k, v in emzoo_fields.items() if v is not None})
    meta["task"] = task or meta.get("task") or "pretext"
    meta["normalization"] = normalization or meta.get("normalization") or "standardize"
    meta["emzoo_version"] = _version()
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
        save_file(state, tmp / WEIGHTS_NAME, metadata={"format": "pt"})
        save_config_for_hf(model, tmp / CONFIG_NAME, model_config={"emzoo": meta})
        x = _test_input(model.in_chans)
        device = next(model.parameters()).device
        with torch.inference_mode():
            y = model(x.to(device)).float().cpu().contiguous()
        save_file({"input": x, "output": y}, tmp / TEST_PAIR_NAME)
        model.train(was_training)
        if card:
            from emzoo.cards import render_card

            config = json.loads((tmp / CONFIG_NAME).read_text())
            (tmp / CARD_NAME).write_text(render_card(config, model=model))
    model.emzoo_cfg = meta
    return save_directory


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


def _version() -> str:
    from emzoo import __version__

    return __version__


# ------------------------------------------------------------------------------------ loading
def parse_hub_id(name: str) -> tuple[str, str | None]:
    """``hf-hub:org/name@rev`` -> (``org/name``, ``rev``)."""
    repo = name[len(HF_PREFIX) :] if name.startswith(HF_PREFIX) else name
    repo, _, rev = repo.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise EmzooError(f"'{name}' is not a Hub id: expected hf-hub:ORG/NAME[@REVISION]")
    return repo, rev or None


def resolve_entry(name: str) -> ZooEntry | None:
    """A zoo entry by its name or its timm name (``emzoo_hrnet_w18.cem500k``)."""
    if name in ZOO:
        return ZOO[name]
    return next((e for e in ZOO.values() if e.timm_name == name), None)


def download(
    name: str, revision: str | None = None, cache_dir: str | Path | None = None, local_files_only: bool = False
) -> Path:
    """Fetch a checkpoint into the Hugging Face cache (or find it there offline); returns the
    snapshot folder."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    entry = resolve_entry(name)
    if entry is not None:
        repo_id, rev = entry.hub_id, entry.revision
    elif name.startswith(HF_PREFIX):
        repo_id, rev = parse_hub_id(name)
    else:
        raise EmzooError(f"unknown model '{name}'{_suggest(name, list_models())} (see `emzoo list`)")
    rev = revision or rev or "main"
    try:
        folder = snapshot_download(
            repo_id,
            revision=rev,
            cache_dir=cache_dir,
            allow_patterns=HUB_FILES + [f"*{s}" for s in PICKLE_SUFFIXES],
            local_files_only=local_files_only,
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError, OSError, ValueError) as e:
        raise EmzooError(_not_found_message(name, repo_id, rev, entry, e)) from None
    return Path(folder)


def _not_found_message(name: str, repo_id: str, rev: str, entry: ZooEntry | None, err: Exception) -> str:
    from huggingface_hub import constants

    cache = os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE
    where = "offline (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE else "on the Hub"
    msg = f"no weights for '{name}': looked for {repo_id}@{rev} in the Hugging Face cache ({cache}) and {where}"
    msg += f" [{type(err).__name__}]. "
    if entry is not None and not entry.published:
        msg += (
            "This entry's weights are not published yet; train them with "
            f"`emzoo {'pretrain' if entry.task == 'pretext' else 'finetune'} --recipe {entry.name}`, or "
        )
    return msg + "download while online with `emzoo download NAME`, or point HF_HUB_CACHE at a cache that holds them."


def _read_config(folder: Path) -> dict:
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise EmzooError(f"{folder}: no {CONFIG_NAME}; expected a folder written by emzoo.save_pretrained")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EmzooError(f"{config_path}: not valid JSON ({e})") from None
    if "architecture" not in config:
        raise EmzooError(f"{config_path}: no 'architecture' key; expected timm's config format")
    return config


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise EmzooError(
                f"{folder}: only pickle weights ({', '.join(pickles)}); emzoo loads safetensors only and "
                "never unpickles downloaded files. Convert them where you trust them: "
                "safetensors.torch.save_file(torch.load(f, weights_only=True), 'model.safetensors')"
            )
        raise EmzooError(f"{folder}: no {WEIGHTS_NAME}")
    try:
        state = load_file(weights)
    except (SafetensorError, OSError, ValueError) as e:
        raise EmzooError(f"{weights}: not a readable safetensors file ({e}); download it again") from None
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
    if arch not in timm.list_models("emzoo_*"):
        raise EmzooError(f"{folder / CONFIG_NAME}: architecture '{arch}' is not an emzoo architecture")
    model = timm.create_model(
        arch,
        num_classes=num_classes if num_classes is not None else config.get("num_classes", 1),
        in_chans=in_chans if in_chans is not None else config.get("model_args", {}).get("in_chans", 1),
        **model_args,
    )
    state = _read_weights(folder)
    new_keys = _adapt(model, state, config, num_classes, in_chans)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise EmzooError(
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
    if device is not None:
        model.to(device)
    return model


def verify_test_pair(model: nn.Module, folder: Path, atol: float = 1e-4, rtol: float = 1e-3) -> None:
    """Check the loaded model reproduces the input/output pair saved with it."""
    pair_path = folder / TEST_PAIR_NAME
    if not pair_path.is_file():
        _log.warning("%s has no %s; output not verified", folder, TEST_PAIR_NAME)
        return
    pair = load_file(pair_path)
    with torch.inference_mode():
        out = model(pair["input"]).float()
    if out.shape != pair["output"].shape or not torch.allclose(out, pair["output"], atol=atol, rtol=rtol):
        diff = (out - pair["output"]).abs().max().item() if out.shape == pair["output"].shape else "shape"
        raise EmzooError(
            f"{folder}: the loaded model does not reproduce {TEST_PAIR_NAME} (max abs diff {diff}); "
            "the weights or config are corrupt or were changed"
        )


def load(
    name_or_path: str | Path,
    *,
    revision: str | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
    verify: bool = True,
    device: str | torch.device | None = None,
    cache_dir: str | Path | None = None,
) -> nn.Module:
    """Load a checkpoint by zoo name, ``hf-hub:org/name[@rev]`` or folder, in eval mode.

    ``num_classes`` swaps the head (e.g. 2-class segmentation from a 1-channel generator);
    ``in_chans`` adapts the first convolutions (e.g. RGB input).
    """
    name = str(name_or_path)
    path = Path(name).expanduser()
    entry = resolve_entry(name)
    if path.is_dir():
        folder = path
    elif entry is not None:
        folder = locate(entry, revision=revision, cache_dir=cache_dir)
    elif name.startswith(HF_PREFIX):
        folder = download(name, revision=revision, cache_dir=cache_dir)
    elif path.suffix in PICKLE_SUFFIXES and path.exists():
        raise EmzooError(f"{path}: pickle files are never loaded; emzoo reads safetensors folders only")
    elif os.sep in name or name.startswith("."):
        raise EmzooError(f"{name}: no such folder; expected a folder written by emzoo.save_pretrained")
    else:
        hint = _suggest(name, list_models() + timm.list_models("emzoo_*"))
        raise EmzooError(f"unknown model '{name}'{hint} (see `emzoo list`; folders and hf-hub:ORG/NAME work too)")
    if entry is not None and entry.sha256 and not path.is_dir():
        check_pinned(entry, folder)
    model = load_folder(folder, num_classes=num_classes, in_chans=in_chans, verify=verify, device=device)
    if entry is not None:
        model.emzoo_cfg.setdefault("zoo_name", entry.name)
    return model


def _from_hf_cache(entry: ZooEntry, revision: str | None, cache_dir) -> Path | None:
    """The entry's snapshot in the user's Hugging Face cache, if it holds one (no network)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            entry.hub_id,
            revision=revision or entry.revision,
            cache_dir=cache_dir,
            allow_patterns=HUB_FILES,
            local_files_only=True,
        )
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return Path(folder) if (Path(folder) / WEIGHTS_NAME).is_file() else None


def locate(entry: ZooEntry, revision: str | None = None, cache_dir=None) -> Path:
    """Where a zoo entry's weights are read from: the user's Hugging Face cache when it holds
    the repo, else the folder that ships with emzoo, else a download from the Hub."""
    cached = _from_hf_cache(entry, revision, cache_dir)
    if cached is not None:
        return cached
    if entry.shipped_folder is not None and revision in (None, entry.revision):
        return entry.shipped_folder
    return download(entry.name, revision=revision, cache_dir=cache_dir)


def check_pinned(entry: ZooEntry, folder: Path) -> None:
    """The weights file must be the one the registry pins (a changed or corrupt file is refused)."""
    weights = folder / WEIGHTS_NAME
    if weights.is_file() and sha256_file(weights) != entry.sha256:
        raise EmzooError(
            f"{weights}: sha256 differs from the one pinned for '{entry.name}' in the registry; the file is "
            "corrupt or was changed (delete it and download again, or reinstall emzoo)"
        )


def info(name: str) -> dict:
    """Everything the zoo knows about a checkpoint, and where (if anywhere) its weights are."""
    entry = resolve_entry(name)
    if entry is None:
        raise EmzooError(f"unknown model '{name}'{_suggest(name, list_models())} (see `emzoo list`)")
    data = entry.to_dict()
    data["weights"] = _cached_location(entry)
    return data


def _cached_location(entry: ZooEntry) -> str:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(entry.hub_id, WEIGHTS_NAME, revision=entry.revision)
    if isinstance(found, str):
        return f"in the local Hugging Face cache: {Path(found).parent}"
    if entry.shipped_folder is not None:
        return f"shipped with emzoo: {entry.shipped_folder} (sha256 {entry.sha256[:12]}...)"
    status = "published" if entry.published else "not published yet"
    return f"not in the local cache; {status} on the Hub as {entry.hub_id}@{entry.revision}"
