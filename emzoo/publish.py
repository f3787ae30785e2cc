"""Release to the Hugging Face Hub: a checkpoint folder with its card, or the Gradio Space.
``--dry-run`` writes exactly the folder that would be uploaded; otherwise one ``create_repo``,
one ``upload_folder`` commit and an optional ``create_tag``, all through ``HfApi`` (token from
``HF_TOKEN`` or ``huggingface-cli login``)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from torch import nn

from emzoo.errors import EmzooError
from emzoo.fsutil import atomic_write_text, new_folder

SPACE_FILES = ("app.py", "requirements.txt")
SPACE_REQUIREMENTS = [
    "torch",
    "torchvision",
    "timm",
    "huggingface_hub",
    "safetensors",
    "accelerate",
    "datasets",
    "numpy",
    "scipy",
    "pillow",
    "tifffile",
    "imagecodecs",
    "mrcfile",
    "rosettasciio",
    "h5py",
    "torchmetrics",
    "matplotlib",
    "tqdm",
    "jinja2",
]


def _check_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts):
        raise EmzooError(f"--repo-id {repo_id}: expected ORG/NAME")


def stage_model(folder: str | Path, out: str | Path) -> Path:
    """Copy a save_pretrained folder to ``out`` after checking it loads strictly and reproduces
    its test pair (what is uploaded is what ``emzoo.load`` accepts)."""
    from emzoo.hub import CARD_NAME, CONFIG_NAME, TEST_PAIR_NAME, WEIGHTS_NAME, load_folder

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
    _check_repo_id(repo_id)
    if dry_run:
        if out is None:
            raise EmzooError("--dry-run needs --out DIR (the folder that would be uploaded)")
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


def push_to_hub(model: nn.Module, repo_id: str, **kwargs) -> str:
    """``model.push_to_hub(repo_id)``: save_pretrained, then :func:`publish_model`."""
    from emzoo.hub import save_pretrained

    with tempfile.TemporaryDirectory() as tmp:
        folder = save_pretrained(model, Path(tmp) / "model")
        return publish_model(folder, repo_id, **kwargs)["repo_id"]


def space_readme(space_id: str, models: list[str]) -> str:
    import gradio

    front = {
        "title": "emzoo demo",
        "emoji": "🔬",
        "sdk": "gradio",
        "sdk_version": gradio.__version__,
        "python_version": "3.11",
        "app_file": "app.py",
        "models": models,
        "tags": ["electron-microscopy", "emzoo"],
        "pinned": False,
    }
    import yaml

    body = (
        f"# {space_id}\n\nTry emzoo's electron-microscopy models in the browser: pick a model, upload a micrograph "
        "(PNG/TIFF/MRC/DM3/DM4/EMD/SER), and download the full-resolution result.\n"
    )
    return f"---\n{yaml.safe_dump(front, sort_keys=False, allow_unicode=True)}---\n\n{body}"


def stage_space(space_id: str, models: list[str], out: str | Path) -> Path:
    """The Space folder: the app, its requirements, README front matter, and the emzoo package
    itself (vendored, so the Space runs this exact version)."""
    import emzoo

    package = Path(emzoo.__file__).parent
    with new_folder(out) as tmp:
        _write_space(tmp, package, space_id, models)
    return Path(out)


def _write_space(out: Path, package: Path, space_id: str, models: list[str]) -> None:
    shutil.copytree(package, out / "emzoo", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (out / "app.py").write_text(
        '"""The emzoo Space: every model of this Space\'s card, in the browser."""\n\n'
        "from emzoo.space import build_demo\n\n"
        f"demo = build_demo({models!r})\n\n"
        'if __name__ == "__main__":\n    demo.launch()\n'
    )
    (out / "requirements.txt").write_text("\n".join(SPACE_REQUIREMENTS) + "\n")
    (out / "README.md").write_text(space_readme(space_id, models))


def publish_space(
    space_id: str, models: list[str], *, dry_run: bool = False, out: str | Path | None = None, token: str | None = None
) -> dict:
    _check_repo_id(space_id)
    for m in models:
        _check_repo_id(m.removeprefix("hf-hub:"))
    hub_models = [m.removeprefix("hf-hub:") for m in models]
    app_models = [f"hf-hub:{m}" for m in hub_models]
    if dry_run:
        if out is None:
            raise EmzooError("--dry-run needs --out DIR (the folder that would be uploaded)")
        staged = stage_space(space_id, hub_models, out)
        _point_app_at(staged, app_models)
        return {"dry_run": True, "folder": str(staged)}
    from huggingface_hub import HfApi

    api = HfApi(token=token, library_name="emzoo")
    with tempfile.TemporaryDirectory() as tmp:
        staged = stage_space(space_id, hub_models, Path(tmp) / "space")
        _point_app_at(staged, app_models)
        api.create_repo(space_id, repo_type="space", space_sdk="gradio", exist_ok=True)
        commit = api.upload_folder(
            repo_id=space_id, repo_type="space", folder_path=str(staged), commit_message="Update emzoo demo"
        )
    return {"space_id": space_id, "commit": str(getattr(commit, "oid", commit))}


def _point_app_at(staged: Path, app_models: list[str]) -> None:
    app = staged / "app.py"
    app.write_text(app.read_text().replace(repr([m.removeprefix("hf-hub:") for m in app_models]), repr(app_models)))


# --------------------------------------------------------------------------------- cards
CARDS_DIR = Path(__file__).resolve().parents[1] / "cards"


def entry_card(name: str) -> str:
    """The card of a zoo entry, from the registry alone (no weights needed)."""
    from emzoo.cards import render_card
    from emzoo.zoo import ZOO

    entry = ZOO[name]
    if entry.shipped_folder is not None:  # the card of the weights that ship: measured metrics, cost, scale
        from emzoo.hub import CONFIG_NAME, load_folder

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


def write_cards(folder: str | Path = CARDS_DIR) -> list[Path]:
    from emzoo.zoo import ZOO

    folder = Path(folder)
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


# ----------------------------------------------------------------------------------- CLI
def _cmd_publish(args) -> None:
    result = publish_model(
        args.folder, args.repo_id, tag=args.tag, private=args.private, dry_run=args.dry_run, out=args.out
    )
    print(json.dumps(result, indent=2))


def _cmd_publish_space(args) -> None:
    models = [m for m in args.models.split(",") if m]
    print(json.dumps(publish_space(args.space_id, models, dry_run=args.dry_run, out=args.out), indent=2))


def _cmd_cards(args) -> None:
    for path in write_cards(args.out):
        print(path)


def add_commands(sub) -> None:
    p = sub.add_parser("publish", help="upload a model folder (with its card) to the Hugging Face Hub")
    p.add_argument("folder", help="a folder written by emzoo (save_pretrained, pretrain, finetune)")
    p.add_argument("--repo-id", required=True, help="ORG/NAME")
    p.add_argument("--tag", help="create this tag on the upload commit (e.g. v1.0)")
    p.add_argument("--private", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="write the exact upload folder to --out instead")
    p.add_argument("--out", help="where --dry-run writes")
    p.set_defaults(func=_cmd_publish)
    p = sub.add_parser("publish-space", help="upload the Gradio demo as a Hugging Face Space")
    p.add_argument("--space-id", required=True, help="ORG/NAME")
    p.add_argument("--models", required=True, help="comma-separated Hub model ids to offer")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--out")
    p.set_defaults(func=_cmd_publish_space)
    p = sub.add_parser("cards", help="regenerate the model cards of every zoo entry")
    p.add_argument("--out", default=str(CARDS_DIR), help="folder (default: the repository's cards/)")
    p.set_defaults(func=_cmd_cards)
