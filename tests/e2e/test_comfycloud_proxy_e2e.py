"""The ``comfycloud`` provider end to end: the real local ComfyUI with this pack, a profile pointing at
the REAL ``comfy-api-proxy`` (PyPI) in front of the real remote ComfyUI with the sandbox node pack.
Submit with overrides, live progress in the task list, saved pixels equal to what the remote made,
an uploaded local image round trip, and interrupt → the remote job is cancelled."""
from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from . import harness
from .test_providers_e2e import input_chain, run_node, wait_task

pytestmark = [pytest.mark.e2e]
PROFILE = "v2proxy"
WORKFLOWS = Path(__file__).resolve().parents[2] / "providers" / "sandbox_workflows"
ECHO = json.dumps({"10": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
                   "12": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "v2echo"}}})


@pytest.fixture(scope="module")
def proxied(local_comfy, comfy_proxy, remote_home):
    """A file profile for the proxy (the local ComfyUI re-reads profiles.toml when it changes)."""
    toml = remote_home / "profiles.toml"
    text = toml.read_text()
    if f"[profiles.{PROFILE}]" not in text:
        toml.write_text(text + f'\n[profiles.{PROFILE}]\nprovider = "comfycloud"\nurl = "{comfy_proxy.url}"\n'
                               f'poll_interval_s = 0.2\n')
    return local_comfy, comfy_proxy


def _get(url: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


async def queue_until(c: harness.Client, nodes: dict, pred) -> tuple[str, dict]:
    """Queue a graph; return its prompt id and its task once running and ``pred(task)``."""
    t_start = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1))
    pid = await c.queue(nodes)
    task = await wait_task(c, lambda t: t["profile"] == PROFILE and t["created_at"] >= t_start
                           and t["state"] == "running" and pred(t), 120)
    return pid, task


def saved(local, hist: dict, node: str) -> np.ndarray:
    img = hist["outputs"][node]["images"][0]
    return np.asarray(Image.open(local.base / "output" / img["subfolder"] / img["filename"]).convert("RGB"))


async def test_profile_is_listed_and_configured_without_a_key(proxied):
    local, proxy = proxied
    async with harness.Client(local.url) as c:
        profiles = {p["name"]: p for p in await c.get("/comfyui_remote/profiles")}
        info = await c.get("/object_info/RemoteRun")
    assert profiles[PROFILE]["provider"] == "comfycloud" and profiles[PROFILE]["configured"]
    assert profiles["comfycloud"]["url"] == "https://cloud.comfy.org"  # the built-in, Comfy Cloud by default
    combo = info["RemoteRun"]["input"]["required"]["profile"][0]
    assert "comfycloud" in combo and PROFILE in combo


async def test_run_through_the_proxy_gives_the_remote_pixels_with_live_progress(proxied):
    local, proxy = proxied
    graph = (WORKFLOWS / "slow.json").read_text()
    nodes, link = input_chain([("text", "1.text", "#2a6f3c"), ("int", "2.steps", 12),
                               ("float", "2.step_seconds", 0.1)], 100)
    nodes["1"] = run_node(PROFILE, graph, link)
    nodes["2"] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "e2e_v2proxy"}}
    async with harness.Client(local.url) as c:
        pid, live = await queue_until(c, nodes, lambda t: (t["progress"] or 0) > 0 and t["node"])
        hist = await c.wait_done(pid, 180)
        final = await wait_task(c, lambda t: t["id"] == live["id"] and t["state"] == "succeeded", 30)
    assert hist["status"]["status_str"] == "success", hist["status"]
    assert "SandboxSlowPass" in live["node"]
    assert (saved(local, hist, "2") == np.array((0x2A, 0x6F, 0x3C), np.uint8)).all()
    job = _get(f"{proxy.url}/api/v2/jobs/{final['remote_id']}")
    assert job["status"] == "succeeded"


async def test_local_image_is_uploaded_as_an_asset_and_comes_back_exact(proxied):
    local, proxy = proxied
    src = np.random.default_rng(5).integers(0, 256, (18, 26, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(src).save(buf, format="PNG")
    async with harness.Client(local.url) as c:
        name = await c.upload("e2e_v2_up.png", buf.getvalue())
        nodes = {"1": {"class_type": "LoadImage", "inputs": {"image": name}},
                 "2": {"class_type": "RemoteInputImage", "inputs": {"target": "10.image", "image": ["1", 0]}},
                 "3": run_node(PROFILE, ECHO, ["2", 0]),
                 "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "e2e_v2_up"}}}
        pid = await c.queue(nodes)
        hist = await c.wait_done(pid, 180)
    assert hist["status"]["status_str"] == "success", hist["status"]
    assert np.array_equal(saved(local, hist, "4"), src)


async def test_interrupt_cancels_the_job_on_the_proxy(proxied):
    local, proxy = proxied
    graph = (WORKFLOWS / "slow.json").read_text()
    nodes, link = input_chain([("int", "2.steps", 400), ("float", "2.step_seconds", 0.05)], 100)
    nodes["1"] = run_node(PROFILE, graph, link)
    nodes["2"] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "e2e_v2_int"}}
    async with harness.Client(local.url) as c:
        pid, task = await queue_until(c, nodes, lambda t: t["remote_id"])
        status, _ = await c.post("/interrupt", {})
        assert status == 200
        hist = await c.wait_done(pid, 60)
        assert hist["status"]["status_str"] == "error"
        final = await wait_task(c, lambda t: t["id"] == task["id"] and t["state"] in ("cancelled", "succeeded"), 60)
    assert final["state"] == "cancelled", final  # needs ComfyUI's jobs cancel route (the test node pack's)
    for _ in range(100):  # the proxy reads ComfyUI's history, written when the interrupt landed
        if _get(f"{proxy.url}/api/v2/jobs/{final['remote_id']}")["status"] in ("canceled", "expired"):
            break
        await asyncio.sleep(0.05)
    assert _get(f"{proxy.url}/api/v2/jobs/{final['remote_id']}")["status"] in ("canceled", "expired")
