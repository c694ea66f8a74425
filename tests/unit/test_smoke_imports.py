"""Every production module imports without ComfyUI, and none of them imports the test tree."""
import ast
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("engine", "providers", "sandbox", "nodes")


def _modules(include_nodes: bool) -> list[str]:
    names = ["routes"]
    for pkg in PRODUCTION:
        if pkg == "nodes" and not include_nodes:
            continue
        names += [f"{pkg}.{p.stem}" for p in sorted((ROOT / pkg).glob("*.py")) if p.stem != "__init__"]
    return names


def test_engine_providers_sandbox_and_routes_import_without_comfyui():
    for name in _modules(include_nodes=False):
        importlib.import_module(f"comfyui_remote.{name}")
    importlib.import_module("comfyui_remote.tests.fakes.toolkit")
    assert "comfy" not in sys.modules and "server" not in sys.modules and "folder_paths" not in sys.modules


def test_production_code_never_imports_the_test_tree():
    offenders = []
    for path in [ROOT / "__init__.py", ROOT / "routes.py", *(p for pkg in PRODUCTION for p in (ROOT / pkg).rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                mod = ("." * node.level) + (node.module or "")
                if "tests" in mod.split(".") or mod.lstrip(".").startswith("tests"):
                    offenders.append(f"{path.relative_to(ROOT)}: from {mod} import …")
            elif isinstance(node, ast.Import):
                offenders += [f"{path.relative_to(ROOT)}: import {a.name}" for a in node.names
                              if a.name.split(".")[0] == "tests" or ".tests" in a.name]
    assert not offenders, offenders
