"""`emzoo reproduce --preset smoke`: every stage of the paper's experiment runs, the report is
computed from the run, and an interrupted reproduce resumes without redoing finished stages."""

import csv

import pytest

import emzoo
from emzoo.reproduce import PRESETS, reproduce


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    import os

    root = tmp_path_factory.mktemp("reproduce")
    os.environ["EMZOO_CACHE"] = str(root / "cache")
    try:
        report = reproduce("smoke", root / "out")
    finally:
        os.environ.pop("EMZOO_CACHE")
    return root / "out", report


def test_smoke_report(smoke):
    out, report = smoke
    preset = PRESETS["smoke"]
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 4 * len(preset.archs) * 2  # task x model x init
    assert {r["init"] for r in rows} == {"pretrained", "random"}
    assert all(r["5/60 mean"] and r["60/60 mean"] for r in rows)
    text = (out / "results.md").read_text()
    assert "## Verdict" in text and "Table 2" in text and "Table 3" in text
    v = report["verdict"]
    assert f"in {v['early_wins']} of {v['early_total']} model/task pairs" in text  # computed, not written
    for task in ("segment", "denoise", "bg-removal", "super-res"):
        assert (out / f"convergence_{task}.png").stat().st_size > 5000
    model = emzoo.load(out / "finetune" / "segment" / "emzoo_unet_2_44" / "pretrained" / "seed0" / "model")
    assert model.emzoo_cfg["task"] == "segment" and model.emzoo_cfg["metrics"]
    assert model.emzoo_cfg["base_model"].endswith("pretrain/emzoo_unet_2_44/model")


def test_interrupted_reproduce_resumes(smoke):
    out, _ = smoke
    last = out / "finetune" / "super-res" / "emzoo_unet_4_424" / "random" / "seed0"
    kept = out / "finetune" / "segment" / "emzoo_unet_2_44" / "random" / "seed0" / "result.json"
    stamp = kept.stat().st_mtime_ns
    (last / "result.json").unlink()  # as if killed during the last stage
    import os

    os.environ["EMZOO_CACHE"] = str(out.parent / "cache")
    try:
        reproduce("smoke", out)
    finally:
        os.environ.pop("EMZOO_CACHE")
    assert (last / "result.json").is_file()
    assert kept.stat().st_mtime_ns == stamp  # finished stages were not rerun


def test_paper_preset_writes_the_exact_commands(tmp_path):
    result = reproduce("paper", tmp_path / "paper", dry_run=True)
    lines = open(result["commands"]).read().splitlines()
    pretrain = [line for line in lines if "scripts/pretrain.py" in line]
    finetune = [line for line in lines if "scripts/finetune.py" in line]
    assert len(pretrain) == 10 and len(finetune) == 4 * 10 * 2
    assert all("--epochs 60" in line for line in pretrain + finetune)
    assert "--batch-size 128" in pretrain[0] and "--l1-lambda 100" in pretrain[0]
    assert any("--task segment" in line and "--batch-size 16" in line for line in finetune)
    assert all(line.startswith("accelerate launch") for line in pretrain + finetune)
