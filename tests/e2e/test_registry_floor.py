"""``requires-comfyui`` in pyproject.toml is the ComfyUI the end-to-end and browser tests run: the
running server says its own version (tests/unit/test_registry_ready.py checks the pack itself)."""
import re
import tomllib

import pytest

from . import harness
from ..packaging import check_floor

pytestmark = [pytest.mark.e2e]


async def test_requires_comfyui_is_the_running_comfyui(local_comfy):
    floor = tomllib.loads((harness.REPO / "pyproject.toml").read_text())["tool"]["comfy"]["requires-comfyui"]
    async with harness.Client(local_comfy.url) as c:
        stats = await c.get("/system_stats")
        nodes = await c.get("/object_info/RemoteRun")
    running = stats["system"]["comfyui_version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", running), running
    assert "RemoteRun" in nodes, "the pack loaded in that ComfyUI"
    check_floor(floor, running)
