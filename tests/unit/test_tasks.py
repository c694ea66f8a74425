"""The TaskManager through its public methods, on the sandbox provider (a real fake ComfyUI
server on loopback): concurrency slots, pay-once reuse across restarts, cancel before submit,
re-attach, timeouts of nodes are left to the e2e suite."""
from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from comfyui_remote.engine import media
from comfyui_remote.engine.tasks import TaskManager
from comfyui_remote.engine.transfer import RetryPolicy
from comfyui_remote.providers.base import ConfigError, Override, RejectedInput
from comfyui_remote.tests.fakes.comfyui import FakeComfyUI

SLOW = [Override("2.steps", "int", 4), Override("2.step_seconds", "float", 0.05)]


def manager(home: Path, out: Path) -> TaskManager:
    return TaskManager(home, out, policy=RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05))


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    (h / "profiles.toml").write_text('[profiles.one]\nprovider = "sandbox"\nmax_concurrent = 1\n'
                                     'poll_interval_s = 0.05\n[profiles.sandbox]\nprovider = "sandbox"\n'
                                     'poll_interval_s = 0.05\n')
    return h


@pytest.fixture
def started(home, tmp_path):
    managers = []

    def make():
        m = manager(home, tmp_path / "out").start(reattach=False)
        managers.append(m)
        return m

    yield make
    for m in managers:
        m.stop()


async def run(m: TaskManager, coro, timeout: float = 60):
    return await asyncio.wait_for(asyncio.wrap_future(m.call(coro)), timeout)


def created() -> int:
    return sum(len(f.created) for f in list(FakeComfyUI.LIVE))


async def test_slots_are_released_so_a_max_concurrent_1_profile_runs_many_tasks(started):
    m = started()
    for i in range(3):
        tid = await run(m, m.submit("one", "slow.json", SLOW, reuse=False))
        snap = await run(m, m.wait(tid))
        assert snap["state"] == "succeeded", snap


async def test_max_concurrent_queues_locally_and_says_so(started):
    m = started()
    a = await run(m, m.submit("one", "slow.json", [Override("2.steps", "int", 20), SLOW[1]], reuse=False))
    fut = asyncio.ensure_future(run(m, m.submit("one", "slow.json", SLOW, reuse=False)))
    for _ in range(100):
        rows, _ = m.list_tasks("active", 10, None)
        waiting = [r for r in rows if r["id"] != a and r["state"] == "submitting"]
        if waiting and "free slot" in (waiting[0]["message"] or ""):
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("second task did not report waiting for a slot")
    b = await fut
    assert (await run(m, m.wait(b)))["state"] == "succeeded"
    assert (await run(m, m.wait(a)))["state"] == "succeeded"


async def test_reuse_returns_the_earlier_result_across_a_restart_without_a_remote_call(home, tmp_path):
    rng = np.random.default_rng(5)
    img = media.encode_image(media.from_uint8(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))[None])
    inputs = [Override("10.image", "image", img.data, sha256=img.sha256)]
    m = manager(home, tmp_path / "out").start(reattach=False)
    try:
        first = await run(m, m.submit("sandbox", "invert.json", inputs))
        assert (await run(m, m.wait(first)))["state"] == "succeeded"
    finally:
        await asyncio.to_thread(m.stop)
    before = created()
    m2 = manager(home, tmp_path / "out").start(reattach=False)
    try:
        again = await run(m2, m2.submit("sandbox", "invert.json", inputs))
        snap = await run(m2, m2.wait(again))
        assert snap["state"] == "succeeded" and snap["reused"] and snap["cost"] == 0
        assert "reused" in snap["message"] and created() == before
        # same pixels re-encoded differently are still the same input
        other = media.encode_image(media.decode_image(img.data).rgb[None])
        assert other.sha256 == img.sha256
        # changed content → a new task
        changed = media.encode_image(media.from_uint8(np.zeros((8, 8, 3), np.uint8))[None])
        new = await run(m2, m2.submit("sandbox", "invert.json",
                                      [Override("10.image", "image", changed.data, sha256=changed.sha256)]))
        snap = await run(m2, m2.wait(new))
        assert not snap["reused"] and created() == before + 1
    finally:
        await asyncio.to_thread(m2.stop)


async def test_cancel_requested_before_submit_stops_before_paying(started):
    m = started()
    blocker = await run(m, m.submit("one", "slow.json", [Override("2.steps", "int", 40), SLOW[1]], reuse=False))
    before = created()
    fut = asyncio.ensure_future(run(m, m.submit("one", "slow.json", SLOW, reuse=False, task_id="waiting000000001")))
    for _ in range(200):
        if m.snapshot("waiting000000001"):
            break
        await asyncio.sleep(0.01)
    await run(m, m.cancel("waiting000000001"))
    tid = await fut  # ends while the blocker still holds the only slot
    snap = await run(m, m.wait(tid))
    assert snap["state"] == "cancelled" and created() == before
    assert "nothing was paid" in snap["message"]
    assert (m.snapshot(blocker) or {})["state"] in ("queued", "running")
    await run(m, m.cancel(blocker))


async def test_unknown_profile_and_missing_credentials_name_what_to_set(started, monkeypatch):
    m = started()
    with pytest.raises(ConfigError, match="unknown profile 'nope'"):
        await run(m, m.submit("nope", "x", []))
    monkeypatch.delenv("RUNNINGHUB_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="RUNNINGHUB_API_KEY"):
        await run(m, m.submit("runninghub", "1234", []))


async def test_missing_workflow_file_lists_the_sandbox_files(started):
    m = started()
    with pytest.raises(RejectedInput, match="invert.json"):
        await run(m, m.submit("sandbox", "nope.json", []))


async def test_reattach_after_restart_downloads_a_result_that_finished_meanwhile(home, tmp_path):
    """ComfyUI stops while a task runs; the next start follows it to the end (no second task)."""
    fake = FakeComfyUI()
    await fake.start()
    with open(home / "profiles.toml", "a") as fh:
        fh.write(f'[profiles.remote]\nprovider = "comfyui"\nurl = "{fake.url}"\npoll_interval_s = 0.05\n')
    wf = (Path(__file__).resolve().parents[2] / "providers" / "sandbox_workflows" / "slow.json").read_text()
    m = manager(home, tmp_path / "out").start(reattach=False)
    try:
        tid = await run(m, m.submit("remote", wf, [Override("2.steps", "int", 30), SLOW[1]], reuse=False))
    finally:
        await asyncio.to_thread(m.stop)  # "ComfyUI stopped" while the remote task runs
    assert len(fake.created) == 1
    m2 = manager(home, tmp_path / "out").start(reattach=True)
    try:
        for _ in range(400):
            if (m2.snapshot(tid) or {}).get("state") == "succeeded":
                break
            await asyncio.sleep(0.05)
        snap = m2.snapshot(tid)
        assert snap["state"] == "succeeded", snap
        assert len(fake.created) == 1, "re-attaching must never submit again"
        outs = m2.outputs_of(tid)
        assert outs and Path(outs[0]["path"]).is_file()
    finally:
        await asyncio.to_thread(m2.stop)
        await fake.stop()


async def test_abandoned_task_is_still_followed_and_its_result_saved(home, tmp_path):
    """Interrupted where the service cannot cancel: tracked as abandoned, and when the remote task
    finishes anyway its (paid) result is downloaded."""
    from comfyui_remote.tests.fakes.speedpix import FakeSpeedPix

    fake = FakeSpeedPix(queue_s=0.3, run_s=1.0)
    await fake.start()
    with open(home / "profiles.toml", "a") as fh:
        fh.write(f'[profiles.sp]\nprovider = "speedpix"\nurl = "{fake.url}"\napp_key = "test-app-key"\n'
                 f'app_secret = "test-app-secret"\npoll_interval_s = 0.05\n')
    m = manager(home, tmp_path / "out").start(reattach=False)
    try:
        tid = await run(m, m.submit("sp", "wf_solid", [Override("prompt", "text", "abandon me")], reuse=False))
        snap = await run(m, m.cancel(tid, "interrupted in ComfyUI"))
        assert snap["state"] == "abandoned" and "may still run and bill" in snap["message"]
        for _ in range(200):
            snap = m.snapshot(tid)
            if snap["state"] == "succeeded":
                break
            await asyncio.sleep(0.05)
        assert snap["state"] == "succeeded" and snap["outputs"], snap
        assert Path(m.outputs_of(tid)[0]["path"]).is_file()
    finally:
        await asyncio.to_thread(m.stop)
        await fake.stop()
