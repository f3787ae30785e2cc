"""Stage the Gradio demo as a Hugging Face Space: the app, its requirements, README front matter
and the emzoo package itself (vendored, so the Space runs this exact version)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from emzoo.errors import ConfigError
from emzoo.fsutil import new_folder
from emzoo.hub.publish import check_repo_id


def space_requirements() -> list[str]:
    """What the Space installs: emzoo's own core and ``[demo]`` requirements, read from the installed
    package's metadata (so the list cannot drift from pyproject.toml); gradio comes with the Space's
    ``sdk_version``, and emzoo itself is vendored."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    out = []
    for line in requires("emzoo") or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": "demo"}):
            continue
        if req.name.lower().replace("-", "_") in ("gradio", "gradio_client", "emzoo"):  # gradio: the sdk
            continue
        req.marker = None
        out.append(str(req))
    return out


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
    package = Path(__file__).resolve().parents[1]
    with new_folder(out) as tmp:
        _write_space(tmp, package, space_id, models)
    return Path(out)


def _write_space(out: Path, package: Path, space_id: str, models: list[str]) -> None:
    shutil.copytree(package, out / "emzoo", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (out / "app.py").write_text(
        '"""The emzoo Space: every model of this Space\'s card, in the browser."""\n\n'
        "from emzoo.space.app import build_demo, launch\n\n"
        f"demo = build_demo({models!r})\n\n"
        'if __name__ == "__main__":\n    launch(demo)\n'
    )
    (out / "requirements.txt").write_text("\n".join(space_requirements()) + "\n")
    (out / "README.md").write_text(space_readme(space_id, models))


def publish_space(
    space_id: str, models: list[str], *, dry_run: bool = False, out: str | Path | None = None, token: str | None = None
) -> dict:
    check_repo_id(space_id, "space_id")
    for m in models:
        check_repo_id(m.removeprefix("hf-hub:"), "model")
    hub_models = [m.removeprefix("hf-hub:") for m in models]
    app_models = [f"hf-hub:{m}" for m in hub_models]
    if dry_run:
        if out is None:
            raise ConfigError("dry_run needs out= (the folder that would be uploaded)")
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
