"""The code's shape: imports between emzoo modules point one way (no cycles, function-local imports
included), and the light entry points load nothing heavy."""

import ast
import subprocess
import sys
from pathlib import Path

import emzoo

ROOT = Path(emzoo.__file__).parent
HEAVY = (
    "accelerate",
    "datasets",
    "abtem",
    "gradio",
    "onnx",
    "onnxruntime",
    "matplotlib",
    "h5py",
    "ase",
    "numba",
    "bioimageio",
)


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_light_entry_points_load_nothing_heavy():
    code = (
        "import sys, emzoo, timm\n"
        "from emzoo.cli import build_parser\n"
        "build_parser(['--version'])\n"
        "assert 'emzoo_unet_2_44' in timm.list_models('emzoo_*')\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_version_answers_without_command_modules():
    out = subprocess.run([sys.executable, "-m", "emzoo", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("emzoo ")


def test_imports_between_data_and_model_layers_point_down():
    """The lower rooms (errors, fsutil, io, zoo catalogue, models) never import the upper ones."""
    lower = {"emzoo.errors", "emzoo.fsutil", "emzoo.io", "emzoo.zoo.catalog", "emzoo.normalize"}
    upper = ("emzoo.train", "emzoo.reproduce", "emzoo.space", "emzoo.publish", "emzoo.cli", "emzoo.predict")
    for path in ROOT.rglob("*.py"):
        name = _module(path)
        if name not in lower:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.module
                else []
            )
            for target in targets:
                assert not target.startswith(upper), f"{name} imports {target}"


def test_a_missing_extra_names_the_extra(monkeypatch, capsys, tmp_path):
    from emzoo.cli import main

    monkeypatch.setitem(sys.modules, "abtem", None)  # as if emzoo[sim] were not installed
    code = main(["data", "simulate", "--task", "segment", "--n", "3", "--size", "64", "--out", str(tmp_path / "s")])
    assert code == 2
    assert "pip install 'emzoo[sim]'" in capsys.readouterr().err
