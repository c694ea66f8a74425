"""End to end in a real local ComfyUI with this pack, against a real second ComfyUI as the remote
(``comfyui`` profile) and the bundled sandbox. One local and one remote instance for the module."""
from __future__ import annotations

import asyncio
import io
import json
import re
import struct
import time

import numpy as np
import pytest
from PIL import Image

from ..conftest import CANARY
from . import harness

pytestmark = [pytest.mark.e2e]
why = harness.available()
if why:
    pytest.skip(f"real ComfyUI not available: {why}", allow_module_level=True)

ALL_MESSAGES = harness.ALL_MESSAGES


@pytest.fixture(scope="module")
def instances(local_comfy, remote_comfy, remote_home):
    return local_comfy, remote_comfy, remote_home


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def remote_chain(profile: str, workflow: str, first: int, prefix: str, inputs=None, timeout_s: int = 300) -> dict:
    """Submit → Wait → Fetch → SaveImage with node ids first..first+3."""
    s, w, f, v = (str(first + i) for i in range(4))
    submit_inputs = {"profile": profile, "workflow": workflow, "reuse_result": False}
    if inputs is not None:
        submit_inputs["inputs"] = inputs
    return {
        s: {"class_type": "RemoteSubmit", "inputs": submit_inputs},
        w: {"class_type": "RemoteWait", "inputs": {"task": [s, 0], "timeout_s": timeout_s,
                                                   "cancel_on_interrupt": True}},
        f: {"class_type": "RemoteFetchImage", "inputs": {"result": [w, 0], "select": ""}},
        v: {"class_type": "SaveImage", "inputs": {"images": [f, 0], "filename_prefix": prefix}},
    }


def slow_inputs(node: int, steps: int, step_seconds: float) -> dict:
    return {
        str(node): {"class_type": "RemoteInputInt", "inputs": {"target": "2.steps", "value": steps}},
        str(node + 1): {"class_type": "RemoteInputFloat", "inputs": {"target": "2.step_seconds",
                                                                    "value": step_seconds,
                                                                    "inputs": [str(node), 0]}},
    }


async def run_prompt(local, prompt: dict, timeout: float = 180) -> tuple[dict, float]:
    async with harness.Client(local.url) as c:
        t0 = time.monotonic()
        pid = await c.queue(prompt)
        hist = await c.wait_done(pid, timeout)
        return hist, time.monotonic() - t0


def saved(local, hist: dict, node: str) -> np.ndarray:
    img = hist["outputs"][node]["images"][0]
    return pixels((local.base / "output" / img.get("subfolder", "") / img["filename"]).read_bytes())


async def test_pack_registers_nodes_and_panel(instances):
    local, _, _ = instances
    async with harness.Client(local.url) as c:
        info = await c.get("/object_info")
        for node in ("RemoteInputText", "RemoteInputInt", "RemoteInputFloat", "RemoteInputImage", "RemoteSubmit",
                     "RemoteWait", "RemoteFetchImage", "RemoteRun", "RemoteRecover"):
            assert node in info, node
        profiles = info["RemoteSubmit"]["input"]["required"]["profile"][0]
        assert profiles[:6] == ["sandbox", "runninghub", "tensorart", "speedpix", "nextgpu", "comfyui"]
        exts = await c.get("/extensions")
        assert any(e.startswith("/extensions/comfyui_remote/") and e.endswith("remote_panel.js") for e in exts)
    assert "IMPORT FAILED" not in local.log.read_text()


async def test_local_remote_local_graph_saves_the_remote_pixels(instances):
    local, remote, _ = instances
    rng = np.random.default_rng(3)
    src = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    async with harness.Client(local.url) as c:
        name = await c.upload("e2e_src.png", png(src))
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": name}},
              "2": {"class_type": "RemoteInputImage", "inputs": {"target": "10.image", "image": ["1", 0]}}}
    prompt.update(remote_chain("comfyui", "invert.json", 3, "e2e_invert", inputs=["2", 0]))
    # a local node between fetch and save: a crop keeps values exact
    prompt["6"]["inputs"]["images"] = ["7", 0]
    prompt["7"] = {"class_type": "ImageCrop", "inputs": {"image": ["5", 0], "width": 48, "height": 32, "x": 4, "y": 4}}
    hist, _ = await run_prompt(local, prompt)
    assert hist["status"]["status_str"] == "success", hist["status"]
    # what the remote produced, read from the remote itself
    async with harness.Client(remote.url) as rc:
        rh = await rc.get("/history")
        latest = max(rh.values(), key=lambda h: h["prompt"][0])
        out = next(iter(latest["outputs"].values()))["images"][0]
        remote_px = pixels(await rc.view(out))
    # ComfyUI's ImageInvert + SaveImage on the remote: truncation of 255 * (1 - v/255) in float32
    x = src.astype(np.float32) / np.float32(255)
    assert np.array_equal(remote_px, np.clip(np.float32(255) * (np.float32(1) - x), 0, 255).astype(np.uint8))
    assert np.array_equal(saved(local, hist, "6"), remote_px[4:36, 4:52])


async def test_two_remotes_run_concurrently(instances):
    """Two remote chains in one prompt run at the same time: their remote tasks' running spans
    overlap (read from the journal, not from wall-clock time, so load cannot make it flaky)."""
    local, _, _ = instances
    a = {**slow_inputs(20, 8, 0.25), **remote_chain("comfyui", "slow.json", 1, "e2e_a", inputs=["21", 0])}
    b = {**slow_inputs(30, 8, 0.25), **remote_chain("sandbox", "slow.json", 11, "e2e_b", inputs=["31", 0])}
    hist, _ = await run_prompt(local, {**a, **b})
    assert hist["status"]["status_str"] == "success", hist["status"]
    async with harness.Client(local.url) as c:
        tasks = (await c.get("/comfyui_remote/tasks?limit=2"))["tasks"]
    assert sorted(t["profile"] for t in tasks) == ["comfyui", "sandbox"], tasks
    assert all(t["state"] == "succeeded" and t["started_at"] and t["finished_at"] for t in tasks), tasks
    # each ran for ~2 s; one after the other, the second would start after the first finished
    assert max(t["started_at"] for t in tasks) < min(t["finished_at"] for t in tasks), tasks


def progress_texts(messages: list, node: str) -> list[str]:
    """The node's progress text (ComfyUI binary event 3: node-id length, node id, UTF-8 text)."""
    out = []
    for m in messages:
        if m.get("type") == "binary" and struct.unpack(">I", m["data"][:4])[0] == 3:
            n = struct.unpack(">I", m["data"][4:8])[0]
            if m["data"][8:8 + n].decode() == node:
                out.append(m["data"][8 + n:].decode())
    return out


async def test_waiting_node_shows_progress_bar_and_text(instances):
    local, _, _ = instances
    # steps differ from the other tests so ComfyUI does not serve the wait from its cache
    prompt = {**slow_inputs(20, 9, 0.2), **remote_chain("comfyui", "slow.json", 1, "e2e_text", inputs=["21", 0])}
    async with harness.Client(local.url) as c:
        pid = await c.queue(prompt)
        hist = await c.wait_done(pid)
        messages = list(c.messages)
    assert hist["status"]["status_str"] == "success"
    texts = progress_texts(messages, "2")  # the RemoteWait node
    assert any("SandboxSlowPass #2" in t and "/9" in t for t in texts), texts
    assert all(re.search(r"\d+:\d\d", t) for t in texts), texts
    # the RemoteSubmit shows the task too, up to its end (not "queued" for ever)
    submit_texts = progress_texts(messages, "1")
    assert submit_texts and submit_texts[-1].startswith("succeeded"), submit_texts
    bars = [m["data"] for m in messages if m.get("type") == "progress" and m["data"].get("node") == "2"]
    values = [b["value"] for b in bars]
    assert bars and bars[-1]["max"] == 1000 and values[-1] == 1000 and any(0 < v < 1000 for v in values)


async def test_blocking_local_node_does_not_stall_the_remote_watch(instances):
    local, _, _ = instances
    prompt = {**slow_inputs(20, 16, 0.25)}
    prompt["1"] = {"class_type": "RemoteSubmit", "inputs": {"profile": "sandbox", "workflow": "slow.json",
                                                            "inputs": ["21", 0], "reuse_result": False}}
    prompt["2"] = {"class_type": "TestBlockingSleep", "inputs": {"value": ["1", 0], "seconds": 3.0}}
    prompt["3"] = {"class_type": "RemoteWait", "inputs": {"task": ["2", 0]}}
    prompt["4"] = {"class_type": "RemoteFetchImage", "inputs": {"result": ["3", 0]}}
    prompt["5"] = {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "e2e_block"}}
    async with harness.Client(local.url) as c:
        pid = await c.queue(prompt)
        while True:
            m = await c.next_message(timeout=60)
            if m.get("type") == "executing" and m["data"].get("node") == "2":
                break
        seen = []
        t_end = time.monotonic() + 2.5
        while time.monotonic() < t_end:  # the prompt loop is blocked in time.sleep now
            tasks = (await c.get("/comfyui_remote/tasks?state=active"))["tasks"]
            seen.extend(t["progress"] for t in tasks if t["progress"] is not None)
            await asyncio.sleep(0.2)
        hist = await c.wait_done(pid)
    assert hist["status"]["status_str"] == "success"
    assert len(set(seen)) >= 3, f"remote progress did not move while the local node blocked: {seen}"


async def task_event(c: harness.Client, pred, timeout: float = 20.0) -> dict:
    """The first task (from the route, else from the next ``comfyui_remote.task`` events) matching ``pred``."""
    for t in (await c.get("/comfyui_remote/tasks?limit=5"))["tasks"]:
        if pred(t):
            return t
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        m = await c.next_message(timeout=end - loop.time())
        if isinstance(m, dict) and m.get("type") == "comfyui_remote.task" and pred(m["data"]):
            return m["data"]
    raise AssertionError("no task event matched in time")


async def test_interrupt_cancels_the_remote_prompt_and_requeue_submits_again(instances):
    local, remote, _ = instances
    prompt = {**slow_inputs(20, 40, 0.25), **remote_chain("comfyui", "slow.json", 1, "e2e_int", inputs=["21", 0])}
    async with harness.Client(local.url) as c, harness.Client(remote.url) as rc:
        pid = await c.queue(prompt)
        running = None
        for _ in range(200):
            q = await rc.get("/queue")
            if q["queue_running"]:
                running = q["queue_running"][0][1]
                break
            await asyncio.sleep(0.1)
        assert running, "the remote prompt never started"
        await asyncio.sleep(0.5)
        t0 = time.monotonic()
        status, _ = await c.post("/interrupt", {})
        assert status == 200
        stopped = None
        while time.monotonic() - t0 < 30:
            q = await rc.get("/queue")
            if not any(item[1] == running for item in q["queue_running"] + q["queue_pending"]):
                stopped = time.monotonic() - t0
                break
            await asyncio.sleep(0.05)
        assert stopped is not None, "the remote prompt was never stopped"
        # interrupted there, not run to its end (40 steps of 0.25 s): read from the remote's own record
        remote_hist = (await rc.get(f"/history/{running}"))[running]
        assert any(m[0] == "execution_interrupted" for m in remote_hist["status"]["messages"]), remote_hist["status"]
        hist = await c.wait_done(pid)
        assert hist["status"]["status_str"] == "error"
        # a cancel is a request: the task says "cancelled" once the remote reported it (a task
        # event on the same socket), which may come just after the local prompt ended
        task = await task_event(c, lambda t: t["remote_id"] == running and t["state"] not in ("queued", "running"))
        assert task["state"] == "cancelled", task
        # the same graph again: a new remote prompt, never the dead handle from the cache
        prompt2 = {**prompt, **slow_inputs(20, 4, 0.1)}
        pid2 = await c.queue(prompt2)
        hist2 = await c.wait_done(pid2)
    assert hist2["status"]["status_str"] == "success", hist2["status"]


async def test_canary_token_appears_nowhere(instances):
    local, remote, home = instances
    needle = CANARY.encode()
    for path in (local.base / "output").rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes(), path
    assert needle not in local.log.read_bytes()
    for path in home.glob("journal.sqlite3*"):
        assert needle not in path.read_bytes(), path
    async with harness.Client(local.url) as c:
        assert CANARY not in json.dumps(await c.get("/history"))
        assert CANARY not in json.dumps(await c.get("/comfyui_remote/tasks?limit=200"))
        assert CANARY not in json.dumps(await c.get("/comfyui_remote/profiles"))
    assert CANARY not in json.dumps([m for m in ALL_MESSAGES if m.get("type") != "binary"], default=str)
    assert all(needle not in m["data"] for m in ALL_MESSAGES if m.get("type") == "binary")
    assert len(ALL_MESSAGES) > 20
