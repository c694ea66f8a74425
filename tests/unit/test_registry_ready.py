"""Comfy Registry readiness, checked with comfy-cli (the Registry's own tool) on the archive that
``comfy node pack`` makes from the working tree — what ``comfy node publish`` would upload:

- ``pyproject.toml`` reads the way comfy-cli reads it (node id, semver, publisher, icon, licence,
  repository, ``requires-comfyui``) with no warning, and ``comfy node validate`` passes;
- the Registry's security standards hold for every shipped Python file: no ``eval``/``exec`` (ruff
  S102/S307 and E702, the rules ``comfy node validate`` runs, here as errors) and no package
  installation at run time (no subprocess/os call that runs pip, no import of pip);
- ``.comfyignore`` keeps tests, fakes, ``web/tests/``, benchmarks and CI out, and everything the
  shipped code imports is in the archive;
- ``requires-comfyui`` is the ComfyUI the end-to-end tests run (tests/e2e/test_registry_floor.py
  checks the same against the running server).
"""
from __future__ import annotations

import ast
import json
import os
import posixpath
import re
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest

from .. import packaging
from ..e2e import harness

REPO = packaging.REPO
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
DEV_ONLY = ("tests/", "web/tests/", "benchmarks/", ".ci/", "scripts/")
DEV_FILES = ("conftest.py", "test.sh", "demo.sh", "requirements-dev.txt")

needs_cli = pytest.mark.skipif(packaging.cli_python() is None,
                               reason=f"comfy-cli is not installed in {packaging.CLI_VENV} (./test.sh installs it)")


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return packaging.pack(tmp_path_factory.mktemp("pack"))


@pytest.fixture(scope="module")
def shipped(archive, tmp_path_factory) -> Path:
    return packaging.unpack(archive, tmp_path_factory.mktemp("shipped"))


def names(archive: Path) -> set[str]:
    with zipfile.ZipFile(archive) as z:
        return {n for n in z.namelist() if not n.endswith("/")}


# ------------------------------------------------------------------ pyproject.toml

READ_CONFIG = """
import dataclasses, json, sys
from comfy_cli.registry.config_parser import extract_node_configuration

def plain(o):  # tomlkit values are str/list/dict subclasses that dataclasses.asdict cannot copy
    if dataclasses.is_dataclass(o):
        return {f.name: plain(getattr(o, f.name)) for f in dataclasses.fields(o)}
    if isinstance(o, dict):
        return {str(k): plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [plain(v) for v in o]
    return str(o) if isinstance(o, str) else o

print("CONFIG " + json.dumps(plain(extract_node_configuration(sys.argv[1]))))
"""


@needs_cli
def test_pyproject_reads_as_the_registry_reads_it(tmp_path):
    proc = subprocess.run([str(packaging.cli_python()), "-c", READ_CONFIG, str(REPO / "pyproject.toml")],
                          capture_output=True, text=True, timeout=120, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    warnings = [line for line in out if not line.startswith("CONFIG ")]
    assert warnings == [], warnings  # comfy-cli prints a warning and drops a field it cannot read
    config = json.loads(out[-1][len("CONFIG "):])
    project, comfy = config["project"], config["tool_comfy"]
    # the Registry's node-id rule: < 100 chars, alphanumerics and - _ ., no leading digit/special
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*", project["name"]) and len(project["name"]) < 100
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"]), project["version"]
    assert project["description"] and project["license"]["text"] == "MIT"
    assert project["urls"]["repository"].startswith("https://github.com/")
    assert project["urls"]["issues"].startswith("https://github.com/")
    assert project["supported_comfyui_version"] == ">=0.3.64", "comfy-cli drops a malformed requires-comfyui"
    assert project["supported_os"] == ["OS Independent"]
    assert comfy["publisher_id"] and comfy["display_name"] == "ComfyUI Remote"
    assert comfy["icon"].startswith("https://") and (REPO / "web" / "icon.svg").is_file()
    assert comfy["web"] == "", "__init__.py sets WEB_DIRECTORY: a `web` key as well shows the tab twice"
    # the runtime dependencies the Registry lists are the ones ComfyUI-Manager installs
    reqs = [line.split("#")[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    assert sorted(project["dependencies"]) == sorted(r for r in reqs if r)


@needs_cli
def test_comfy_node_validate_passes_on_the_archive(shipped, tmp_path):
    proc = packaging.comfy(["node", "validate"], cwd=shipped, home=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    said = proc.stdout + proc.stderr
    assert "All validation checks passed" in said and "Security warnings" not in said, said
    # comfy node validate only warns ("will soon be an error"): here the same rules are errors
    ruff = subprocess.run([str(packaging.cli_python()), "-m", "ruff", "check", ".", "--no-cache", "-q",
                           "--select", "S102,S307,E702"], cwd=str(shipped), capture_output=True, text=True, timeout=120)
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr


# ------------------------------------------------------------------ what ships

@needs_cli
def test_archive_leaves_out_development_files(archive):
    files = names(archive)
    leaked = sorted(n for n in files if n.startswith(DEV_ONLY) or n in DEV_FILES)
    assert leaked == [], leaked[:20]
    for must in ("__init__.py", "routes.py", "pyproject.toml", "requirements.txt", "LICENSE", "README.md",
                 "web/remote_panel.js", "web/remote_panel.css", "web/icon.svg", "sandbox/server.py"):
        assert must in files, must
    assert any(n.startswith("example_workflows/") and n.endswith(".json") for n in files)


def module_file(files: set[str], parts: list[str]) -> str | None:
    """The archive path of the module ``parts`` (package or plain module), or None."""
    base = "/".join(parts)
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        if candidate in files or (not base and candidate == "/__init__.py"):
            return candidate
    return None


def imports_of(path: str, source: str) -> list[tuple[list[str], list[str]]]:
    """(module parts resolved from the pack root, imported names) of every import of the pack itself."""
    here = path.split("/")[:-1]
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                mod = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "comfyui_remote":
                mod = node.module.split(".")[1:]
            else:
                continue
            out.append((mod, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "comfyui_remote":
                    out.append((a.name.split(".")[1:], []))
    return out


@needs_cli
def test_everything_the_shipped_code_imports_ships(archive, shipped):
    files = names(archive)
    missing = []
    for path in sorted(f for f in files if f.endswith(".py")):
        for mod, imported in imports_of(path, (shipped / path).read_text()):
            target = "/".join(mod)
            if module_file(files, mod) or (not mod and "__init__.py" in files):
                # `from . import x` / `from .pkg import sub`: a submodule must ship too where one exists
                for name in imported:
                    sub = mod + [name]
                    if (REPO / ("/".join(sub) + ".py")).exists() and not module_file(files, sub):
                        missing.append(f"{path}: {'.'.join(sub)}")
            elif (REPO / f"{target}.py").exists() or (REPO / target / "__init__.py").exists():
                missing.append(f"{path}: {target}")
    assert missing == [], missing
    for path in sorted(f for f in files if f.startswith("web/") and f.endswith(".js")):
        for spec in re.findall(r"""from\s+["'](\.{1,2}/[^"']+)["']""", (shipped / path).read_text()):
            target = posixpath.normpath(posixpath.join(posixpath.dirname(path), spec))
            if target.startswith("../"):
                continue  # ComfyUI's own modules ("../../scripts/app.js"), outside the pack
            assert target in files, f"{path} imports {spec}, which does not ship"


# ------------------------------------------------------------------ security standards

PROCESS_CALLS = {"run", "call", "check_call", "check_output", "Popen", "getoutput", "getstatusoutput", "system",
                 "popen", "create_subprocess_exec", "create_subprocess_shell", "spawnl", "spawnv", "execv",
                 "execl", "execvp", "execlp"}
EVAL_EXEC = {"eval", "exec", "builtins.eval", "builtins.exec"}
INSTALLER = re.compile(r"(?<![\w.-])(pip3?|ensurepip)(?![\w.-])")


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def violations(source: str, name: str = "<source>") -> list[str]:
    """eval/exec calls and run-time package installation in ``source`` (the Registry's standards)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            fn = dotted(node.func)
            words = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
            if fn in EVAL_EXEC:
                out.append(f"{name}:{node.lineno}: {fn}()")
            elif fn.split(".")[-1] in PROCESS_CALLS and any(INSTALLER.search(w) for w in words):
                out.append(f"{name}:{node.lineno}: {fn}() runs a package installer")
            elif fn == "runpy.run_module" and any(INSTALLER.fullmatch(w) for w in words):
                out.append(f"{name}:{node.lineno}: {fn}() runs a package installer")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(m.split(".")[0] in ("pip", "ensurepip") for m in mods):
                out.append(f"{name}:{node.lineno}: imports {mods[0]}")
    return out


def test_the_standards_scanner_finds_what_it_looks_for():
    bad = {
        "eval(user_text)": "eval()",
        "exec(code, {})": "exec()",
        "import builtins\nbuiltins.exec('x=1')": "builtins.exec()",
        "import subprocess, sys\nsubprocess.check_call([sys.executable, '-m', 'pip', 'install', 'torch'])": "package installer",
        "import os\nos.system('pip install requests')": "package installer",
        "import subprocess\nsubprocess.run('uv pip install x', shell=True)": "package installer",
        "import pip\npip.main(['install', 'x'])": "imports pip",
        "from pip._internal import main": "imports pip",
        "import runpy\nrunpy.run_module('pip', run_name='__main__')": "package installer",
    }
    for source, what in bad.items():
        found = violations(source)
        assert found and what in found[0], (source, found)
    ok = "import ast, subprocess\nast.literal_eval('1')\nsubprocess.run(['git', 'status'])\nx = {'pip': 1}\nre.compile('x')"
    assert violations(ok) == []


@needs_cli
def test_no_eval_exec_or_runtime_pip_in_what_ships(archive, shipped):
    found = []
    for path in sorted(f for f in names(archive) if f.endswith(".py")):
        found += violations((shipped / path).read_text(), path)
    assert found == [], found


# ------------------------------------------------------------------ requires-comfyui

def test_requires_comfyui_is_the_comfyui_the_tests_run():
    floor = PYPROJECT["tool"]["comfy"]["requires-comfyui"]
    assert re.fullmatch(r">=\d+\.\d+\.\d+", floor), floor
    comfy_dir = Path(os.environ.get("COMFYUI_DIR", harness.SHARED / "comfyui"))
    version_file = comfy_dir / "comfyui_version.py"
    if not version_file.exists():
        pytest.skip(f"no ComfyUI at {comfy_dir} to compare with")
    tested = re.search(r'__version__\s*=\s*"([^"]+)"', version_file.read_text()).group(1)
    packaging.check_floor(floor, tested)

