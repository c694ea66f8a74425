"""Never lose a paid result: SIGKILL the local ComfyUI (PID from the harness) at each journal step,
start it again, and check the task ends recovered or in a clear tracked state — never a second
paid task, never an untracked one. This module needs its own local instance (it kills it); the
remote is a FakeComfyUI on the fleet loop, so the test can hold it at each step."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from PIL import Image

from ..fakes.comfyui import FakeComfyUI
from . import harness

pytestmark = [pytest.mark.e2e]
REPO = harness.REPO
COLOR = (0x33, 0x66, 0x99)


@pytest.fixture(scope="module")
def durable(fleet, tmp_path_factory):
    why = harness.available()
    if why:
        pytest.skip(f"real ComfyUI not available: {why}")
    fake = FakeComfyUI()
    fleet.run(fake.start())
    home = tmp_path_factory.mktemp("durable_home")
    (home / "profiles.toml").write_text(f'[profiles.remote]\nprovider = "comfyui"\nurl = "{fake.url}"\n'
                                        f'poll_interval_s = 0.2\n')
    (home / "workflows").mkdir()
    for wf in (REPO / "providers" / "sandbox_workflows").glob("*.json"):
        (home / "workflows" / wf.name).write_bytes(wf.read_bytes())
    env = {"COMFYUI_REMOTE_HOME": str(home)}
    nodes = (REPO, "comfyui_remote")
    state = {"inst": harness.start(nodes, env_extra=env)}

    def restart() -> harness.Instance:
        port = str(state["inst"].port)
        state["inst"] = harness.start(nodes, env_extra=env, port=port, fresh=False)
        return state["inst"]

    yield state, fake, restart, home
    state["inst"].stop()
    fleet.run(fake.stop())


def graph(steps: int, reuse: bool = False, color: str = "#336699", upload: str | None = None) -> dict:
    g = {
        "20": {"class_type": "RemoteInputText", "inputs": {"target": "1.text", "text": color}},
        "21": {"class_type": "RemoteInputInt", "inputs": {"target": "2.steps", "value": steps, "inputs": ["20", 0]}},
        "22": {"class_type": "RemoteInputFloat", "inputs": {"target": "2.step_seconds", "value": 0.1,
                                                            "inputs": ["21", 0]}},
        "1": {"class_type": "RemoteSubmit", "inputs": {"profile": "remote", "workflow": "slow.json",
                                                       "inputs": ["22", 0], "reuse_result": reuse}},
        "2": {"class_type": "RemoteWait", "inputs": {"task": ["1", 0], "timeout_s": 300}},
        "3": {"class_type": "RemoteFetchImage", "inputs": {"result": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "durable"}},
    }
    return g


async def on_fleet(fleet, coro):
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, fleet.loop))


async def tasks(url: str) -> list[dict]:
    async with harness.Client(url) as c:
        return (await c.get("/comfyui_remote/tasks?limit=50"))["tasks"]


async def known(url: str) -> set:
    """The ids of the tasks already in the journal (earlier tests share it)."""
    return {t["id"] for t in await tasks(url)}


async def wait_for_task(url: str, pred, timeout: float = 60, *, besides: set = frozenset()) -> dict:
    """The first task, not among ``besides``, for which ``pred`` holds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for t in await tasks(url):
            if t["id"] in besides:
                continue
            last = t
            if pred(t):
                return t
        await asyncio.sleep(0.2)
    raise AssertionError(f"no task reached the expected state; newest: {last}")


async def queue(url: str, prompt: dict) -> str:
    async with harness.Client(url) as c:
        return await c.queue(prompt)


async def run(url: str, prompt: dict) -> dict:
    async with harness.Client(url) as c:
        pid = await c.queue(prompt)
        return await c.wait_done(pid, 120)


def saved_pixels(inst, hist: dict, node: str) -> np.ndarray:
    img = hist["outputs"][node]["images"][0]
    return np.asarray(Image.open(inst.base / "output" / img["subfolder"] / img["filename"]).convert("RGB"))


async def test_kill_while_running_then_background_download_and_recover(durable, fleet):
    state, fake, restart, _ = durable
    created = len(fake.created)
    before = await known(state["inst"].url)
    await queue(state["inst"].url, graph(steps=30))
    task = await wait_for_task(state["inst"].url, lambda t: t["state"] == "running" and t["progress"], besides=before)
    state["inst"].kill9()
    inst = restart()
    # re-attached in the background: finishes and downloads with no new remote prompt
    done = await wait_for_task(inst.url, lambda t: t["id"] == task["id"] and t["state"] == "succeeded"
                               and t["outputs"], 60)
    assert len(fake.created) == created + 1
    assert done["remote_id"] == task["remote_id"]
    # RemoteRecover returns it with exact pixels
    hist = await run(inst.url, {
        "1": {"class_type": "RemoteRecover", "inputs": {"task_id": task["id"], "timeout_s": 60}},
        "2": {"class_type": "RemoteFetchImage", "inputs": {"result": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "recovered"}}})
    assert hist["status"]["status_str"] == "success", hist["status"]
    px = saved_pixels(inst, hist, "3")
    assert px.shape == (64, 64, 3) and (px == np.array(COLOR, np.uint8)).all()
    # also by remote id, and still no second remote prompt
    hist = await run(inst.url, {
        "1": {"class_type": "RemoteRecover", "inputs": {"task_id": task["remote_id"], "profile": "remote"}},
        "2": {"class_type": "RemoteFetchImage", "inputs": {"result": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "recovered_rid"}}})
    assert hist["status"]["status_str"] == "success", hist["status"]
    assert len(fake.created) == created + 1
    # pay once: the same graph with reuse_result on → no remote call, marked reused
    hist = await run(inst.url, graph(steps=30, reuse=True))
    assert hist["status"]["status_str"] == "success"
    assert len(fake.created) == created + 1
    newest = (await tasks(inst.url))[0]
    assert newest["reused"] and newest["state"] == "succeeded"
    # changed input content → a new task
    hist = await run(inst.url, graph(steps=3, reuse=True, color="#102030"))
    assert hist["status"]["status_str"] == "success"
    assert len(fake.created) == created + 2


async def test_kill_before_submit_pays_nothing(durable, fleet, tmp_path):
    """Killed while uploading an input (journal phase 'prepared'): nothing was sent, nothing paid."""
    state, fake, restart, _ = durable
    created = len(fake.created)
    before = await known(state["inst"].url)
    src = np.zeros((8, 8, 3), np.uint8)
    async with harness.Client(state["inst"].url) as c:
        import io
        buf = io.BytesIO()
        Image.fromarray(src).save(buf, format="PNG")
        name = await c.upload("durable_in.png", buf.getvalue())
    fake.faults.add("upload", "slow", delay=30)
    await queue(state["inst"].url, {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "RemoteInputImage", "inputs": {"target": "10.image", "image": ["1", 0]}},
        "3": {"class_type": "RemoteRun", "inputs": {"profile": "remote", "workflow": "invert.json",
                                                    "inputs": ["2", 0], "reuse_result": False}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "durable_up"}}})
    await on_fleet(fleet, fake.seen("upload", count=fake.count("upload") + 1, timeout=30))
    state["inst"].kill9()
    fake.faults.clear()
    inst = restart()
    t = await wait_for_task(inst.url, lambda t: t["state"] != "submitting", 30, besides=before)
    assert t["state"] == "cancelled" and "nothing was paid" in t["message"], t
    assert len(fake.created) == created


async def test_kill_with_the_submit_in_flight_finds_the_late_task(durable, fleet):
    """The create request reached the service but was processed only after ComfyUI died: the
    restart looks for the client-chosen id through a grace period and follows the task it finds."""
    state, fake, restart, _ = durable
    created = len(fake.created)
    before = await known(state["inst"].url)
    fake.faults.add("prompt", "slow", delay=8)  # request received; handled 8 s later
    await queue(state["inst"].url, graph(steps=3))
    await on_fleet(fleet, fake.seen("prompt", count=fake.count("prompt") + 1, timeout=30))
    state["inst"].kill9()
    inst = restart()
    t = await wait_for_task(inst.url, lambda t: t["state"] == "succeeded" and t["outputs"], 60, besides=before)
    fake.faults.clear()
    assert len(fake.created) == created + 1 and t["remote_id"] == fake.created[-1]


async def test_kill_after_submit_before_acknowledgement_reattaches(durable, fleet):
    state, fake, restart, _ = durable
    created = len(fake.created)
    before = await known(state["inst"].url)
    fake.faults.add("prompt", "slow_after", delay=30)  # the fake creates the prompt, the answer waits
    await queue(state["inst"].url, graph(steps=10))
    await on_fleet(fleet, fake.seen("prompt", count=fake.count("prompt") + 1, timeout=30))
    for _ in range(100):
        if len(fake.created) == created + 1:
            break
        await asyncio.sleep(0.05)
    state["inst"].kill9()
    fake.faults.clear()
    inst = restart()
    t = await wait_for_task(inst.url, lambda t: t["state"] == "succeeded" and t["outputs"], 60, besides=before)
    assert len(fake.created) == created + 1, "a lost acknowledgement must never cause a second prompt"
    assert t["remote_id"] == fake.created[-1]


async def test_kill_after_success_before_download_fetches_on_restart(durable, fleet):
    state, fake, restart, _ = durable
    created = len(fake.created)
    before = await known(state["inst"].url)
    fake.faults.add("view", "slow", delay=30, times=-1)
    await queue(state["inst"].url, graph(steps=3))
    await on_fleet(fleet, fake.seen("view", count=fake.count("view") + 1, timeout=60))
    state["inst"].kill9()
    fake.faults.clear()
    inst = restart()
    t = await wait_for_task(inst.url, lambda t: t["state"] == "succeeded" and t["outputs"], 60, besides=before)
    assert len(fake.created) == created + 1
    assert t["outputs"][0]["width"] == 64


async def test_timeout_keeps_the_task_and_names_recover_and_the_panel(durable, fleet):
    state, fake, _, _ = durable
    g = graph(steps=40)
    g["2"]["inputs"]["timeout_s"] = 1
    hist = await run(state["inst"].url, g)
    assert hist["status"]["status_str"] == "error"
    err = next(m[1] for m in hist["status"]["messages"] if m[0] == "execution_error")
    text = err["exception_message"]
    assert "RemoteRecover" in text and "panel" in text and "still tracked" in text
    t = (await tasks(state["inst"].url))[0]
    assert t["state"] in ("queued", "running", "succeeded")  # not cancelled
