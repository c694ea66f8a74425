"""The two ComfyUI frontends the browser tests run against: the one ComfyUI 0.3.64 pins
(comfyui-frontend-package 1.27.10, the session's ``local_comfy``, which loads this checkout) and the
newest one the package index serves, installed by ./test.sh into ``.frontend-venv`` and given to a
second local ComfyUI with ``--front-end-root`` (started once per session, only when a test asks
for it). That second ComfyUI loads the pack as the Comfy Registry would ship it: the archive of
``comfy node pack`` (tests/packaging.py), so a file that .comfyignore wrongly leaves out breaks it."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .. import packaging
from ..conftest import REPO, make_home, start_local

FRONTENDS = ("1.27", "newest")


def newest_frontend_root() -> Path | None:
    """The ``static`` folder of the newest comfyui-frontend-package: $COMFYUI_REMOTE_NEWEST_FRONTEND,
    else the one in ``.frontend-venv`` (./test.sh installs it there)."""
    given = os.environ.get("COMFYUI_REMOTE_NEWEST_FRONTEND")
    if given:
        return Path(given)
    found = sorted((REPO / ".frontend-venv").glob("lib/python*/site-packages/comfyui_frontend_package/static"))
    return found[-1] if found else None


@dataclass
class Frontend:
    """One local ComfyUI with this pack, served with one frontend."""
    name: str  # "1.27" | "newest"
    inst: Any  # harness.Instance

    @property
    def url(self) -> str:
        return self.inst.url

    @property
    def tab_button(self) -> str:
        """The sidebar button of our tab, by the hook design §4 gives for this frontend."""
        if self.name == "1.27":
            return ".comfyui-remote-tab-button"
        return '[data-testid="comfyui-remote-tab-button"]'


@pytest.fixture(scope="session")
def local_comfy_newest(remote_comfy, fleet, tmp_path_factory):
    root = newest_frontend_root()
    if root is None or not (root / "index.html").is_file():
        pytest.skip("the newest comfyui-frontend-package is not installed (./test.sh puts it in .frontend-venv)")
    if packaging.cli_python() is None:
        pytest.skip(f"comfy-cli is not installed in {packaging.CLI_VENV} (./test.sh installs it)")
    shipped = packaging.unpack(packaging.pack(tmp_path_factory.mktemp("pack")), tmp_path_factory.mktemp("shipped"))
    home = make_home(tmp_path_factory.mktemp("remote_home_newest"))
    inst = start_local(remote_comfy, fleet, home, pack=shipped, main_args=("--front-end-root", root))
    yield inst
    inst.stop()


@pytest.fixture(params=FRONTENDS)
def frontend(request) -> Frontend:
    fixture = "local_comfy" if request.param == "1.27" else "local_comfy_newest"
    return Frontend(request.param, request.getfixturevalue(fixture))
