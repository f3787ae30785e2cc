"""Cards parse back to the same Hub metadata and are up to date; releases call only HfApi's
network methods (patched here) with the right folders; dry-run folders load with emzoo.load."""

from pathlib import Path

import pytest
from huggingface_hub import HfApi, ModelCard

import emzoo
from emzoo import EmzooError
from emzoo.hub.publish import default_cards_dir, entry_card, publish_model, push_to_hub
from emzoo.space.stage import publish_space

CARDS_DIR = default_cards_dir()


def test_committed_cards_are_up_to_date():
    for name in emzoo.list_models():
        path = CARDS_DIR / f"{name}.md"
        assert path.is_file(), f"missing card {path}: run `emzoo cards`"
        assert path.read_text() == entry_card(name), f"{path} is out of date: run `emzoo cards`"
    assert {p.stem for p in CARDS_DIR.glob("*.md")} - {"README"} == set(emzoo.list_models())


@pytest.mark.parametrize("name", ["hrnet-cem500k", "unet-4-424-cem500k-au-seg", "hrnet-cem500k-temimagenet-super-res"])
def test_cards_parse_back_with_hub_metadata(name):
    card = ModelCard(entry_card(name))
    data = card.data.to_dict()
    entry = emzoo.ZOO[name]
    assert data["library_name"] == "emzoo" and data["license"] == "mit"
    assert data["pipeline_tag"] == ("image-segmentation" if entry.task == "segment" else "image-to-image")
    assert {"electron-microscopy", "self-supervised", "gan", entry.task} <= set(data["tags"])
    assert data.get("base_model") == entry.base_model
    assert "model-index" not in data  # nothing measured: no numbers claimed
    assert "not published yet" in card.text and "Kazimi" in card.text


def _trained_folder(tmp_path: Path, task: str = "segment") -> Path:
    model = emzoo.create_model("emzoo_unet_2_44")
    metrics = [{"name": "dice", "value": 0.81234, "dataset": "sim-au", "split": "test"}]
    return emzoo.save_pretrained(model, tmp_path / "model", task=task, base_model="unet-2-44-cem500k", metrics=metrics)


def test_card_of_a_trained_model_carries_measured_eval_results(tmp_path):
    card = ModelCard((_trained_folder(tmp_path) / "README.md").read_text())
    results = card.data.eval_results
    assert (
        len(results) == 1 and results[0].metric_value == pytest.approx(0.81234) and results[0].dataset_split == "test"
    )
    assert card.data.base_model == "unet-2-44-cem500k" and card.data.pipeline_tag == "image-segmentation"
    assert "| 0.8123 |" in card.text


@pytest.fixture
def hub_calls(monkeypatch):
    """Patch only HfApi's network methods; record what they were asked to do."""
    calls = []

    def create_repo(self, repo_id, **kw):
        calls.append(("create_repo", repo_id, kw))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, **kw):
        files = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file())
        calls.append(("upload_folder", repo_id, {**kw, "files": files}))
        return type("Commit", (), {"oid": "abc123"})()

    def create_tag(self, repo_id, *, tag, **kw):
        calls.append(("create_tag", repo_id, {"tag": tag, **kw}))

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setattr(HfApi, "create_tag", create_tag)
    return calls


def test_publish_model(tmp_path, hub_calls):
    folder = _trained_folder(tmp_path)
    result = publish_model(folder, "someorg/unet-au-seg", tag="v1.0", private=True)
    assert result["commit"] == "abc123"
    kinds = [c[0] for c in hub_calls]
    assert kinds == ["create_repo", "upload_folder", "create_tag"]
    assert hub_calls[0][2]["private"] is True and hub_calls[0][2]["exist_ok"] is True
    assert hub_calls[1][2]["files"] == ["README.md", "config.json", "model.safetensors", "test_pair.safetensors"]
    assert hub_calls[2][2]["tag"] == "v1.0"
    # push_to_hub (save_pretrained + publish_model) goes the same way
    assert push_to_hub(emzoo.load(folder), "someorg/again")["repo_id"] == "someorg/again"
    assert hub_calls[3][:2] == ("create_repo", "someorg/again")


def test_push_to_hub_dry_run_reports_the_folder(tmp_path, hub_calls):
    """push_to_hub(dry_run=True, out=...) used to raise KeyError('repo_id')."""
    report = push_to_hub(emzoo.load(_trained_folder(tmp_path)), "someorg/x", dry_run=True, out=tmp_path / "dry")
    assert report["dry_run"] is True and (tmp_path / "dry" / "model.safetensors").is_file()
    assert hub_calls == []


def test_cards_dir_is_the_checkouts_or_must_be_given(monkeypatch, tmp_path):
    """Installed from a wheel, emzoo has no repository: `emzoo cards` used to write into
    site-packages; now it asks for a folder."""
    from emzoo.hub import publish

    assert default_cards_dir() == Path(__file__).resolve().parents[1] / "cards"
    monkeypatch.setattr(publish, "SOURCE_ROOT", tmp_path / "site-packages")
    with pytest.raises(EmzooError, match="pass a folder"):
        publish.write_cards()


def test_a_recipe_run_writes_the_recipes_card(tmp_path):
    """--recipe records the RECIPES key (cards used to get the zoo entry's name and drop the
    datasets block and citation)."""
    from emzoo.cli import build_parser
    from emzoo.cli.train import _resolve

    args = build_parser(["finetune"]).parse_args(
        ["finetune", "--recipe", "unet-2-44-cem500k-au-seg", "--data", "simulated", "--output-dir", str(tmp_path)]
    )
    cfg = _resolve(args, "finetune")
    assert cfg.recipe == "au-seg"
    card = emzoo.hub.cards.render_card(
        {"architecture": "emzoo_unet_2_44", "emzoo": {"task": "segment", "recipe": "unet-2-44-cem500k-au-seg"}}
    )
    assert "Sytwu" in card and "Au-nanoparticles-HRTEM" in card


def test_dry_run_folders_are_complete_and_load(tmp_path, hub_calls):
    pre = emzoo.save_pretrained(emzoo.create_model("emzoo_unet_3_96"), tmp_path / "pre", task="pretext")
    fine = _trained_folder(tmp_path)
    for folder, name in ((pre, "pre-out"), (fine, "fine-out")):
        result = publish_model(folder, "someorg/x", dry_run=True, out=tmp_path / name)
        assert result["files"] == ["README.md", "config.json", "model.safetensors", "test_pair.safetensors"]
        emzoo.load(tmp_path / name)
    assert hub_calls == []  # nothing uploaded
    with pytest.raises(EmzooError, match="exists and is not empty"):
        publish_model(pre, "someorg/x", dry_run=True, out=tmp_path / "pre-out")
    with pytest.raises(EmzooError, match="expected ORG/NAME"):
        publish_model(pre, "no-slash")


def test_publish_space(tmp_path, hub_calls):
    import yaml

    result = publish_space("someorg/emzoo-demo", ["someorg/a", "someorg/b"], dry_run=True, out=tmp_path / "space")
    staged = Path(result["folder"])
    text = (staged / "README.md").read_text()
    front = yaml.safe_load(text.split("---")[1])
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py" and front["models"] == ["someorg/a", "someorg/b"]
    assert front["sdk_version"] and front["python_version"] == "3.11"
    assert "hf-hub:someorg/a" in (staged / "app.py").read_text()
    assert (staged / "emzoo" / "space" / "app.py").is_file() and "gradio" not in (
        staged / "requirements.txt"
    ).read_text()
    publish_space("someorg/emzoo-demo", ["someorg/a"])
    assert hub_calls[0] == (
        "create_repo",
        "someorg/emzoo-demo",
        {"repo_type": "space", "space_sdk": "gradio", "exist_ok": True},
    )
    assert "app.py" in hub_calls[1][2]["files"] and hub_calls[1][2]["repo_type"] == "space"


def test_space_requirements_match_what_publish_space_writes():
    from emzoo.space.stage import space_requirements

    wanted = space_requirements()
    assert any(r.startswith("scikit-image") for r in wanted) and not any(r.startswith("gradio") for r in wanted)
    listed = (Path(__file__).resolve().parents[1] / "spaces" / "demo" / "requirements.txt").read_text().splitlines()
    assert [line for line in listed if line and not line.startswith("#")] == wanted
