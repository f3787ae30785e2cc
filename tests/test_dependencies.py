"""pyproject.toml says what is true: every third-party package emzoo's code imports is declared
(in the core or an extra), and the lower bounds cover the APIs the code calls."""

from __future__ import annotations

import ast
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _declared() -> dict[str, Requirement]:
    lines = PYPROJECT["dependencies"] + [r for extra in PYPROJECT["optional-dependencies"].values() for r in extra]
    reqs = [Requirement(line) for line in lines]
    return {r.name.lower().replace("_", "-"): r for r in reqs if r.name != "emzoo"}


def _imported_modules() -> set[str]:
    found = set()
    for path in (ROOT / "emzoo").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"emzoo", "__future__"}


def test_every_imported_package_is_declared():
    declared = _declared()
    distributions = packages_distributions()
    # imported through a declared package that provides them (timm brings torchvision's helpers,
    # gradio brings its client, bioimageio.core the spec, napari qtpy/superqt/pint, the Hub packaging)
    provided = {"packaging", "qtpy", "superqt", "pint", "pydantic", "bioimageio", "rsciio"}
    missing = []
    for module in sorted(_imported_modules() - provided):
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not names & set(declared):
            missing.append(f"{module} ({', '.join(sorted(names))})")
    assert not missing, f"imported but not in pyproject.toml: {missing}"


def test_torch_lower_bound_covers_what_the_code_calls():
    """Every forward calls torch.compiler.is_exporting, new in torch 2.6."""
    torch_req = _declared()["torch"]
    assert torch_req.specifier.contains("2.6.0") and not torch_req.specifier.contains("2.5.1")
    assert "is_exporting" in (ROOT / "emzoo" / "models" / "_base.py").read_text() or any(
        "is_exporting" in p.read_text() for p in (ROOT / "emzoo").rglob("*.py")
    )
