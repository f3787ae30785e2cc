"""Find a checkpoint by zoo name, ``hf-hub:org/name[@rev]`` or folder: the user's Hugging Face
cache first, then the folders that ship with emzoo, then the Hub; build architectures by name."""

from __future__ import annotations

import difflib
import logging
import os
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from emzoo.errors import CheckpointError, ConfigError, ModelNotFoundError
from emzoo.fsutil import sha256_file
from emzoo.hub.folder import HUB_FILES, PICKLE_SUFFIXES, WEIGHTS_NAME, load_folder
from emzoo.tasks import TASKS
from emzoo.zoo import ZOO, ZooEntry, list_models

_log = logging.getLogger(__name__)
HF_PREFIX = "hf-hub:"


def create_model(arch: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build any registered architecture (random init), or with ``pretrained=True`` load the
    named zoo checkpoint / ``arch.tag`` through :func:`load`."""
    if pretrained:
        return load(arch, **kwargs)
    if arch not in timm.list_models("emzoo_*"):
        raise ModelNotFoundError(f"unknown architecture '{arch}'{_suggest(arch, timm.list_models('emzoo_*'))}")
    model = timm.create_model(arch, **kwargs)
    model.emzoo_cfg = {}
    return model


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def parse_hub_id(name: str) -> tuple[str, str | None]:
    """``hf-hub:org/name@rev`` -> (``org/name``, ``rev``)."""
    repo = name[len(HF_PREFIX) :] if name.startswith(HF_PREFIX) else name
    repo, _, rev = repo.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ConfigError(f"'{name}' is not a Hub id: expected hf-hub:ORG/NAME[@REVISION]")
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
        raise ModelNotFoundError(f"unknown model '{name}'{_suggest(name, list_models())} (see `emzoo list`)")
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
        raise ModelNotFoundError(_not_found_message(name, repo_id, rev, entry, e)) from None
    return Path(folder)


def _not_found_message(name: str, repo_id: str, rev: str, entry: ZooEntry | None, err: Exception) -> str:
    from huggingface_hub import constants

    cache = os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE
    where = "offline (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE else "on the Hub"
    msg = f"no weights for '{name}': looked for {repo_id}@{rev} in the Hugging Face cache ({cache}) and {where}"
    msg += f" [{type(err).__name__}]. "
    if entry is not None and entry.shipped_folder is not None:
        return msg + (
            f"'{entry.name}' ships with emzoo: emzoo.load('{entry.name}') reads it offline from "
            f"{entry.shipped_folder}; a download is only needed for the Hub's copy."
        )
    if entry is not None and not entry.published:
        closest = closest_shipped(entry)
        msg += (
            "This entry's weights are not published yet"
            + (f"; the closest shipped checkpoint is '{closest.name}' ({closest.arch})" if closest else "")
            + f"; train them with `emzoo {'pretrain' if entry.task == 'pretext' else 'finetune'} --recipe "
            f"{entry.name}`, or "
        )
    return msg + "download while online with `emzoo download NAME`, or point HF_HUB_CACHE at a cache that holds them."


def closest_shipped(entry: ZooEntry) -> ZooEntry | None:
    """The shipped checkpoint nearest to an unpublished entry: same task, then same architecture,
    then the same family (``hrnet-cem500k`` -> ``hrnet-w18-small-emsim``), then the largest."""
    family = entry.arch.split("_")[1]
    shipped = [e for e in ZOO.values() if e.shipped_folder is not None and e.task == entry.task]
    ranked = sorted(
        shipped,
        key=lambda e: (
            e.arch != entry.arch,
            e.arch.split("_")[1] != family,
            -(e.shipped_folder / WEIGHTS_NAME).stat().st_size,
        ),
    )
    return ranked[0] if ranked else None


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
        raise CheckpointError(f"{path}: pickle files are never loaded; emzoo reads safetensors folders only")
    elif os.sep in name or name.startswith("."):
        raise ModelNotFoundError(f"{name}: no such folder; expected a folder written by emzoo.save_pretrained")
    elif name in timm.list_models("emzoo_*"):
        trained = [e.name for e in ZOO.values() if e.arch == name and (e.shipped_folder is not None or e.published)]
        weights = f"trained weights: {', '.join(trained)}; " if trained else ""
        raise ModelNotFoundError(
            f"'{name}' is an architecture, not a checkpoint; {weights}emzoo.create_model('{name}') builds it "
            "with random weights (see `emzoo list`)"
        )
    else:
        hint = _suggest(name, list_models() + timm.list_models("emzoo_*"))
        raise ModelNotFoundError(
            f"unknown model '{name}'{hint} (see `emzoo list`; folders and hf-hub:ORG/NAME work too)"
        )
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
        raise CheckpointError(
            f"{weights}: sha256 differs from the one pinned for '{entry.name}' in the registry; the file is "
            "corrupt or was changed (delete it and download again, or reinstall emzoo)"
        )


def info(name: str) -> dict:
    """Everything the zoo knows about a checkpoint, and where (if anywhere) its weights are."""
    entry = resolve_entry(name)
    if entry is None:
        raise ModelNotFoundError(f"unknown model '{name}'{_suggest(name, list_models())} (see `emzoo list`)")
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


# pickers group models by task: fine-tuned tasks first (segmentation leads), pretext generators last
TASK_ORDER = {
    name: rank for rank, name in enumerate(sorted(TASKS, key=lambda n: (TASKS[n].pretext, not TASKS[n].segmentation)))
}


def available_models() -> list[str]:
    """The zoo's models whose weights are on this machine (shipped with emzoo or in the Hugging
    Face cache), by task: what the Space and the napari plugin offer."""
    from huggingface_hub import try_to_load_from_cache

    here = [
        e
        for e in ZOO.values()
        if e.shipped_folder is not None
        or isinstance(try_to_load_from_cache(e.hub_id, WEIGHTS_NAME, revision=e.revision), str)
    ]
    return [e.name for e in sorted(here, key=lambda e: (TASK_ORDER.get(e.task, len(TASK_ORDER)), e.name))]


def choice_label(name: str) -> str:
    """How a model picker shows a name: with its task."""
    entry = ZOO.get(name)
    return f"{entry.task} · {name}" if entry else name
