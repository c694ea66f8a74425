"""The rules of every paid step, seen from a real local ComfyUI: an interrupt's cancel reaches the
service even when the service first refuses it; another node's failure does not cancel a paid
task; a timed-out RemoteRun queued again waits for the same task; the submit phase shows on the
node. The remote is the fleet's ComfyUI fake (profile ``faulty``), whose faults a test can switch."""
from __future__ import annotations

import asyncio
import struct

import pytest

from . import harness
from .test_real_comfyui import progress_texts, slow_inputs

pytestmark = pytest.mark.e2e


@pytest.fixture
def local(local_comfy):
    return local_comfy


def run_node(node: str, steps: int, step_seconds: float, *, timeout_s: int = 300, reuse: bool = True) -> dict:
    first = int(node) * 10
    return {**slow_inputs(first, steps, step_seconds),
            node: {"class_type": "RemoteRun", "inputs": {"profile": "faulty", "workflow": "slow.json",
                                                         "inputs": [str(first + 1), 0], "timeout_s": timeout_s,
                                                         "reuse_result": reuse, "cancel_on_interrupt": True}},
            str(int(node) + 1): {"class_type": "SaveImage", "inputs": {"images": [node, 0],
                                                                       "filename_prefix": f"e2e_paid_{node}"}}}


async def until_text(c: harness.Client, node: str, needle: str, timeout: float = 60) -> str:
    """Read the local socket until the node's progress text contains ``needle``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        await c.next_message(timeout=end - loop.time())
        for text in progress_texts(c.messages[-1:], node):
            if needle in text:
                return text
    raise AssertionError(f"node {node} never showed {needle!r}: {progress_texts(c.messages, node)[-5:]}")


async def test_an_interrupt_cancels_the_remote_task_even_if_the_first_cancels_are_refused(local, fleet):
    fake = fleet.comfy
    async with harness.Client(local.url) as c:
        pid = await c.queue(run_node("1", 400, 0.05, reuse=False))
        await until_text(c, "1", "SandboxSlowPass #2")
        remote = fake.running_ids()[0]
        before = fake.count("interrupt")
        fake.faults.add("interrupt", "status", status=429, retry_after=2, times=2)
        status, _ = await c.post("/interrupt", {})
        assert status == 200
        hist = await c.wait_done(pid)
    assert hist["status"]["status_str"] == "error"
    # the waiting node is gone; the engine keeps delivering the cancel through both refusals
    await fleet.wait(fake.seen("interrupt", before + 3, timeout=30))
    await fleet.wait(asyncio.wait_for(fake.idle.wait(), 30))
    assert remote in fake.interrupted


async def test_another_nodes_failure_leaves_the_paid_task_running_and_the_requeue_reuses_it(local, fleet):
    fake = fleet.comfy
    created = len(fake.created)
    graph = {**slow_inputs(20, 12, 0.1),
             "1": {"class_type": "RemoteSubmit", "inputs": {"profile": "faulty", "workflow": "slow.json",
                                                            "inputs": ["21", 0], "reuse_result": True}},
             "2": {"class_type": "RemoteWait", "inputs": {"task": ["1", 0], "cancel_on_interrupt": True}},
             "3": {"class_type": "RemoteFetchImage", "inputs": {"result": ["2", 0]}},
             "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "e2e_sibling"}}}
    failing = {**graph, "5": {"class_type": "TestFailAfter", "inputs": {"seconds": 0.5, "after": ["1", 0]}},
               "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}}
    async with harness.Client(local.url) as c:
        hist = await c.wait_done(await c.queue(failing))
        assert hist["status"]["status_str"] == "error"
        errors = [m[1] for m in hist["status"]["messages"] if m[0] == "execution_error"]
        assert errors and errors[0]["node_type"] == "TestFailAfter"
        hist = await c.wait_done(await c.queue(graph))
    assert hist["status"]["status_str"] == "success", hist["status"]
    assert len(fake.created) == created + 1, "the re-queue paid for a second remote task"
    assert fake.created[-1] not in fake.interrupted and fake.created[-1] not in fake.deleted


async def test_a_timed_out_run_queued_again_waits_for_the_same_task(local, fleet):
    fake = fleet.comfy
    created = len(fake.created)
    async with harness.Client(local.url) as c:
        hist = await c.wait_done(await c.queue(run_node("1", 15, 0.2, timeout_s=1)))
        assert hist["status"]["status_str"] == "error"
        err = [m[1] for m in hist["status"]["messages"] if m[0] == "execution_error"][0]
        assert "still tracked" in err["exception_message"] and "RemoteRecover" in err["exception_message"]
        hist = await c.wait_done(await c.queue(run_node("1", 15, 0.2, timeout_s=120)))
    assert hist["status"]["status_str"] == "success", hist["status"]
    assert len(fake.created) == created + 1, "queueing again after a timeout paid for a second remote task"


async def test_the_submit_phase_shows_on_the_node(local, fleet):
    # max_concurrent = 1 on this profile: the second task waits for a free slot, visibly
    prompt = {**run_node("1", 10, 0.1, reuse=False), **run_node("3", 11, 0.1, reuse=False)}
    async with harness.Client(local.url) as c:
        hist = await c.wait_done(await c.queue(prompt))
        texts = progress_texts(c.messages, "1") + progress_texts(c.messages, "3")
    assert hist["status"]["status_str"] == "success", hist["status"]
    assert any("submitting" in t and "free slot" in t for t in texts), texts


async def test_the_waiting_node_shows_the_remote_preview(local, fleet):
    fleet.comfy.preview_frames = True  # the remote sends a preview with each step, as a sampler does
    try:
        async with harness.Client(local.url) as c:
            hist = await c.wait_done(await c.queue(run_node("1", 8, 0.1, reuse=False)))
            previews = [m for m in c.messages if m.get("type") == "binary"
                        and struct.unpack(">I", m["data"][:4])[0] in (1, 4)]
    finally:
        fleet.comfy.preview_frames = False
    assert hist["status"]["status_str"] == "success", hist["status"]
    assert previews, "the local ComfyUI showed no preview for the waiting node"
