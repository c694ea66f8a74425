"""The Comfy Registry's view of this pack, through comfy-cli (the Registry's own tool, installed
by ./test.sh into ``.comfy-cli-venv``): ``comfy node pack`` run on a git copy of the working tree
(tracked files plus new ones not ignored), so what it leaves out is decided by ``.comfyignore``
exactly as at ``comfy node publish``."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Optional

import pytest

REPO = Path(__file__).resolve().parents[1]
CLI_VENV = Path(os.environ.get("COMFY_CLI_VENV", REPO / ".comfy-cli-venv"))


def cli_python() -> Optional[Path]:
    """The Python of the comfy-cli venv, or None when comfy-cli is not installed there."""
    python = CLI_VENV / "bin" / "python"
    if not python.exists():
        return None
    ok = subprocess.run([str(python), "-c", "import comfy_cli, ruff"], capture_output=True, timeout=60)
    return python if ok.returncode == 0 else None


def comfy(args: list, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    """``comfy --skip-prompt <args>`` in ``cwd``, with its config and telemetry kept in ``home``."""
    python = cli_python()
    assert python is not None, f"comfy-cli is not installed in {CLI_VENV} (./test.sh installs it)"
    env = {**os.environ, "HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([str(python), "-m", "comfy_cli", "--skip-prompt", "--no-enable-telemetry", *args],
                          cwd=str(cwd), env=env, capture_output=True, text=True, timeout=180)


def working_tree_copy(dest: Path) -> Path:
    """A git repository at ``dest`` with the files a commit of the working tree would hold."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = ["git", "-C", str(dest), "-c", "user.email=ci@localhost", "-c", "user.name=ci"]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "working tree"]):
        subprocess.run([*git, *step], check=True, capture_output=True, timeout=60)
    return dest


def pack(workdir: Path) -> Path:
    """``comfy node pack`` of the working tree; returns the archive the Registry would receive."""
    src = working_tree_copy(workdir / "src")
    proc = comfy(["node", "pack"], cwd=src, home=workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return src / "node.zip"


def unpack(archive: Path, dest: Path) -> Path:
    with zipfile.ZipFile(archive) as z:
        z.extractall(dest)
    return dest


def version(text: str) -> tuple:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def check_floor(floor: str, tested: str) -> None:
    """``requires-comfyui`` (``floor``, ">=X.Y.Z") against the ComfyUI a test ran (``tested``).
    The floor is the ComfyUI the tests run; a contributor's newer COMFYUI_DIR proves only itself."""
    assert version(tested) >= version(floor), f"ComfyUI {tested} is older than requires-comfyui {floor}"
    if version(tested) > version(floor) and os.environ.get("COMFYUI_DIR"):
        pytest.skip(f"this run tests ComfyUI {tested} (COMFYUI_DIR), not the floor {floor}")
    assert floor == f">={tested}", (
        f"requires-comfyui says {floor} but the end-to-end tests run ComfyUI {tested}: "
        "the floor is what the tests prove")
