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
    "torchmetrics",
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


def _emzoo_imports(path: Path) -> list[tuple[str, bool]]:
    """(imported emzoo module, imported inside a function?) for every import in ``path``,
    relative imports resolved, ``from pkg import submodule`` counted as the submodule."""
    name = _module(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    modules = {_module(p) for p in ROOT.rglob("*.py")}
    found = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((a.name, inner) for a in child.names if a.name.startswith("emzoo"))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(parts + ([child.module] if child.module else []))
                if base.startswith("emzoo"):
                    for a in child.names:
                        full = f"{base}.{a.name}"
                        found.append((full if full in modules else base, inner))
            visit(child, inner)

    visit(ast.parse(path.read_text()), False)
    return found


def _import_graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for target, _ in _emzoo_imports(path):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def test_no_import_cycle_between_emzoo_modules():
    """Every import (function-local ones included) points one way: a depth-first walk of the
    module graph never meets a module that is still on its stack."""
    graph = _import_graph()
    state: dict[str, int] = {}

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join([*stack[stack.index(nxt) :], node, nxt])
            if nxt not in state:
                walk(nxt, [*stack, node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [])


def test_function_local_imports_only_in_the_cli():
    """Inside the library every emzoo import is at module level (the CLI alone imports lazily,
    so that `emzoo --help` loads no command module)."""
    for path in ROOT.rglob("*.py"):
        if _module(path).startswith(("emzoo.cli", "emzoo.__init__")) or _module(path) == "emzoo":
            continue
        local = sorted({t for t, inner in _emzoo_imports(path) if inner})
        assert not local, f"{_module(path)} imports {local} inside functions"


def test_lower_rooms_never_import_upper_ones():
    lower = {
        "emzoo.errors",
        "emzoo.fsutil",
        "emzoo.devices",
        "emzoo.io",
        "emzoo.normalize",
        "emzoo.tasks",
        "emzoo.zoo.catalog",
    }
    upper = (
        "emzoo.train",
        "emzoo.reproduce",
        "emzoo.space",
        "emzoo.export",
        "emzoo.cli",
        "emzoo.inference",
        "emzoo.napari_plugin",
    )
    graph = _import_graph()
    for name in lower & set(graph):
        assert not [t for t in graph[name] if t.startswith(upper)], f"{name} imports {graph[name]}"


def test_argparse_lives_in_the_cli_only():
    for path in ROOT.rglob("*.py"):
        if not _module(path).startswith("emzoo.cli"):
            assert "argparse" not in path.read_text() and "add_argument(" not in path.read_text(), path


def test_per_task_behaviour_lives_in_the_task_registry():
    """Outside emzoo.tasks, code asks the registry (task.segmentation, task.output_scale, ...)
    instead of comparing task names."""
    import re

    hits = [
        f"{path.relative_to(ROOT)}:{i + 1}"
        for path in ROOT.rglob("*.py")
        if _module(path) != "emzoo.tasks"
        for i, line in enumerate(path.read_text().splitlines())
        if re.search(r"task\s*(==|!=)\s*[\"']", line)
    ]
    assert len(hits) <= 3, hits


def test_no_module_is_oversized():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in ROOT.rglob("*.py")}
    assert not {k: v for k, v in sizes.items() if v > 420}, sizes


def test_a_missing_extra_names_the_extra(monkeypatch, capsys, tmp_path):
    from emzoo.cli import main

    monkeypatch.setitem(sys.modules, "abtem", None)  # as if emzoo[sim] were not installed
    code = main(["data", "simulate", "--task", "segment", "--n", "3", "--size", "64", "--out", str(tmp_path / "s")])
    assert code == 2
    assert "pip install 'emzoo[sim]'" in capsys.readouterr().err
