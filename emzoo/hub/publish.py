"""Release a checkpoint folder with its card to the Hugging Face Hub.
``--dry-run`` writes exactly the folder that would be uploaded; otherwise one ``create_repo``,
one ``upload_folder`` commit and an optional ``create_tag``, all through ``HfApi`` (token from
``HF_TOKEN`` or ``huggingface-cli login``)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from torch import nn

from emzoo.errors import ConfigError
from emzoo.fsutil import atomic_write_text, new_folder
from emzoo.hub.cards import render_card
from emzoo.hub.folder import CARD_NAME, CONFIG_NAME, TEST_PAIR_NAME, WEIGHTS_NAME, load_folder, save_pretrained
from emzoo.zoo import ZOO


def check_repo_id(repo_id: str, what: str = "repo_id") -> None:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"{what} {repo_id!r}: expected ORG/NAME")


def stage_model(folder: str | Path, out: str | Path) -> Path:
    """Copy a save_pretrained folder to ``out`` after checking it loads strictly and reproduces
    its test pair (what is uploaded is what ``emzoo.load`` accepts)."""
    folder = Path(folder)
    load_folder(folder)
    with new_folder(out) as tmp:
        for name in (CONFIG_NAME, WEIGHTS_NAME, TEST_PAIR_NAME, CARD_NAME):
            if (folder / name).is_file():
                shutil.copy2(folder / name, tmp / name)
        for png in folder.glob("*.png"):
            shutil.copy2(png, tmp / png.name)
    return Path(out)


def publish_model(
    folder: str | Path,
    repo_id: str,
    *,
    tag: str | None = None,
    private: bool = False,
    dry_run: bool = False,
    out: str | Path | None = None,
    token: str | None = None,
) -> dict:
    check_repo_id(repo_id)
    if dry_run:
        if out is None:
            raise ConfigError("dry_run needs out= (the folder that would be uploaded)")
        staged = stage_model(folder, out)
        return {"dry_run": True, "folder": str(staged), "files": sorted(p.name for p in staged.iterdir())}
    from huggingface_hub import HfApi

    api = HfApi(token=token, library_name="emzoo")
    with tempfile.TemporaryDirectory() as tmp:
        staged = stage_model(folder, Path(tmp) / "upload")
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id, repo_type="model", folder_path=str(staged), commit_message="Upload emzoo model"
        )
        files = sorted(p.name for p in staged.iterdir())
    if tag:
        api.create_tag(repo_id, tag=tag, repo_type="model")
    return {"repo_id": repo_id, "commit": str(getattr(commit, "oid", commit)), "tag": tag, "files": files}


def push_to_hub(model: nn.Module, repo_id: str, **kwargs) -> dict:
    """save_pretrained, then :func:`publish_model` (whose report it returns, dry run or not)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_pretrained(model, Path(tmp) / "model")
        return publish_model(folder, repo_id, **kwargs)


SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the repository, when emzoo runs from a checkout


def default_cards_dir() -> Path:
    """The repository's cards/ folder; an installed emzoo (no checkout) has none: pass a folder."""
    if (SOURCE_ROOT / "pyproject.toml").is_file() and (SOURCE_ROOT / "cards").is_dir():
        return SOURCE_ROOT / "cards"
    raise ConfigError("cards: emzoo is not running from a source checkout; pass a folder to write the cards to")


def entry_card(name: str) -> str:
    """The card of a zoo entry, from the registry alone (no weights needed)."""
    entry = ZOO[name]
    if entry.shipped_folder is not None:  # the card of the weights that ship: measured metrics, cost, scale
        model = load_folder(entry.shipped_folder, verify=False)
        config = json.loads((entry.shipped_folder / CONFIG_NAME).read_text())
        return render_card(config, model=model, entry=entry)
    config = {
        "architecture": entry.arch,
        "model_args": {"in_chans": entry.in_chans},
        "num_classes": entry.out_chans,
        "emzoo": {
            "task": entry.task,
            "zoo_name": entry.name,
            "recipe": entry.recipe,
            "base_model": entry.base_model,
            "normalization": entry.normalization,
        },
    }
    return render_card(config, entry=entry)


def write_cards(folder: str | Path | None = None) -> list[Path]:
    folder = Path(folder) if folder is not None else default_cards_dir()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in sorted(ZOO):
        path = folder / f"{name}.md"
        text = entry_card(name)
        path.write_text(text)
        written.append(path)
        shipped = ZOO[name].shipped_folder
        if shipped is not None and (shipped / "README.md").read_text() != text:
            atomic_write_text(shipped / "README.md", text)  # the shipped folder carries the same card
    return written
