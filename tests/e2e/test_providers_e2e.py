"""Every cloud provider end to end in the real local ComfyUI: the built-in profile configured only by
its documented environment variables (pointing at the provider's fake), a graph mixing local and
remote nodes, saved pixels equal to what the fake produced, interrupt as documented for the service."""
from __future__ import annotations

import asyncio
import io
import time

import numpy as np
import pytest
from PIL import Image

from ..conftest import FLEET_PROVIDERS
from . import harness

pytestmark = [pytest.mark.e2e]
INPUT_NODE = {"text": "RemoteInputText", "int": "RemoteInputInt", "float": "RemoteInputFloat"}


def input_chain(overrides, first: int) -> tuple[dict, list | None]:
    """RemoteInput* nodes for [(kind, target, value)], chained; returns (nodes, link to the last)."""
    nodes, link = {}, None
    for i, (kind, target, value) in enumerate(overrides):
        nid = str(first + i)
        inputs = {"target": target, ("text" if kind == "text" else "value"): value}
        if link is not None:
            inputs["inputs"] = link
        nodes[nid] = {"class_type": INPUT_NODE[kind], "inputs": inputs}
        link = [nid, 0]
    return nodes, link


def run_node(provider: str, workflow: str, link, reuse: bool = False) -> dict:
    inputs = {"profile": provider, "workflow": workflow, "timeout_s": 300, "select": "", "reuse_result": reuse,
              "cancel_on_interrupt": True}
    if link is not None:
        inputs["inputs"] = link
    return {"class_type": "RemoteRun", "inputs": inputs}


async def wait_task(c: harness.Client, pred, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = (await c.get("/comfyui_remote/tasks?limit=20"))["tasks"]
        for t in tasks:
            if pred(t):
                return t
        await asyncio.sleep(0.1)
    raise AssertionError("no task matched in time")


@pytest.mark.parametrize("provider", FLEET_PROVIDERS)
async def test_local_remote_local_graph_gives_the_fakes_pixels(provider, local_comfy, fleet):
    case = fleet.cases[provider]
    workflow, overrides, expect = case.workflow_single()
    (w, h, rgb) = expect.images[0]
    nodes, link = input_chain(overrides, 100)
    nodes["1"] = run_node(provider, workflow, link)
    # a local node after the remote one: a crop keeps the values exact
    nodes["2"] = {"class_type": "ImageCrop", "inputs": {"image": ["1", 0], "width": max(1, w // 2),
                                                        "height": max(1, h // 2), "x": 1, "y": 1}}
    nodes["3"] = {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": f"e2e_{provider}"}}
    before = case.remote_tasks()
    async with harness.Client(local_comfy.url) as c:
        pid = await c.queue(nodes)
        hist = await c.wait_done(pid, 180)
    assert hist["status"]["status_str"] == "success", hist["status"]
    img = hist["outputs"]["3"]["images"][0]
    saved = np.asarray(Image.open(local_comfy.base / "output" / img["subfolder"] / img["filename"]).convert("RGB"))
    assert saved.shape == (max(1, h // 2), max(1, w // 2), 3)
    assert (saved == np.array(rgb, np.uint8)).all()
    assert case.remote_tasks() == before + 1


@pytest.mark.parametrize("provider", FLEET_PROVIDERS)
async def test_upload_round_trip_from_a_local_image(provider, local_comfy, fleet):
    case = fleet.cases[provider]
    spec = case.workflow_upload()
    if spec is None:
        pytest.skip(f"{provider} has no uploads")
    workflow, target = spec
    src = np.random.default_rng(11).integers(0, 256, (20, 28, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(src).save(buf, format="PNG")
    async with harness.Client(local_comfy.url) as c:
        name = await c.upload(f"e2e_up_{provider}.png", buf.getvalue())
        nodes = {"1": {"class_type": "LoadImage", "inputs": {"image": name}},
                 "2": {"class_type": "RemoteInputImage", "inputs": {"target": target, "image": ["1", 0]}},
                 "3": run_node(provider, workflow, ["2", 0]),
                 "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": f"e2e_up_{provider}"}}}
        pid = await c.queue(nodes)
        hist = await c.wait_done(pid, 180)
    assert hist["status"]["status_str"] == "success", hist["status"]
    img = hist["outputs"]["4"]["images"][0]
    saved = np.asarray(Image.open(local_comfy.base / "output" / img["subfolder"] / img["filename"]).convert("RGB"))
    assert np.array_equal(saved, src)


@pytest.mark.parametrize("provider", FLEET_PROVIDERS)
async def test_interrupt_behaves_as_documented(provider, local_comfy, fleet):
    from comfyui_remote.providers import provider_class

    case = fleet.cases[provider]
    can_cancel = provider_class(provider).capabilities.cancel
    workflow, overrides = case.workflow_slow()
    nodes, link = input_chain(overrides, 100)
    nodes["1"] = run_node(provider, workflow, link)
    nodes["2"] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"e2e_int_{provider}"}}
    async with harness.Client(local_comfy.url) as c:
        t_start = time.time()
        pid = await c.queue(nodes)
        task = await wait_task(c, lambda t: t["provider"] == provider and t["state"] in ("queued", "running")
                               and t["remote_id"] and t["created_at"] >= time.strftime(
                                   "%Y-%m-%dT%H:%M:%S", time.gmtime(t_start - 1)))
        status, _ = await c.post("/interrupt", {})
        assert status == 200
        hist = await c.wait_done(pid, 60)
        assert hist["status"]["status_str"] == "error"
        final = await wait_task(c, lambda t: t["id"] == task["id"] and t["state"] in ("cancelled", "abandoned"), 10)
    if can_cancel:
        assert final["state"] == "cancelled", final
        for _ in range(60):
            if case.was_cancelled(final["remote_id"]):
                break
            await asyncio.sleep(0.05)
        assert case.was_cancelled(final["remote_id"]), "the service never received the cancel"
    else:
        assert final["state"] == "abandoned" and not final["can_cancel"], final
        assert "may still run" in final["message"]
