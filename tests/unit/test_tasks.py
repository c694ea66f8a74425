"""The TaskManager through its public methods, on the sandbox provider and the ComfyUI fake
(real servers on loopback): concurrency slots, pay-once reuse (across restarts, and joining a task
still on its way), the submit deadline, cancel before submit, re-attach, and the watch rules —
a failing look never ends a task, "gone" only after a confirmation window, the landing window of
an ambiguous create. Waits are on the engine's own events, never on sleep."""
from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import pytest

from comfyui_remote.engine import media
from comfyui_remote.engine.rules import RetryPolicy
from comfyui_remote.engine.tasks import TaskManager
from comfyui_remote.providers.base import ConfigError, NotSupported, Override, RejectedInput, RemoteError
from comfyui_remote.tests.fakes.comfyui import FakeComfyUI

SLOW = [Override("2.steps", "int", 4), Override("2.step_seconds", "float", 0.05)]


POLICY = RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05, request_timeout_s=1.0, landing_s=4.0, gone_confirm_s=0.5,
                     status_backoff_cap_s=0.2)
WF = Path(__file__).resolve().parents[2] / "providers" / "sandbox_workflows"


def manager(home: Path, out: Path, policy: RetryPolicy = POLICY) -> TaskManager:
    return TaskManager(home, out, policy=policy)


async def until(m: TaskManager, pred, what: str, timeout: float = 30.0):
    """Re-check ``pred()`` on every task event of ``m`` (and each second) until it is true."""
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()
    unsubscribe = m.events.subscribe(lambda _t: loop.call_soon_threadsafe(changed.set))
    try:
        async def check():
            while True:
                changed.clear()
                value = pred()
                if value:
                    return value
                try:
                    await asyncio.wait_for(changed.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
        return await asyncio.wait_for(check(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
    finally:
        unsubscribe()


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


_SEEN: list = []  # strong references: a server collected between two counts must not lower them


def created() -> int:
    """Prompts created on every sandbox/fake server seen so far (each one would be paid)."""
    _SEEN.extend(f for f in list(FakeComfyUI.LIVE) if f not in _SEEN)
    return sum(len(f.created) for f in _SEEN)


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

    def waiting():
        rows, _ = m.list_tasks("active", 10, None)
        return [r for r in rows if r["id"] != a and r["state"] == "submitting" and "free slot" in (r["message"] or "")]

    await until(m, waiting, "the second task to say it waits for a free slot")
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
    await until(m, lambda: m.snapshot("waiting000000001"), "the waiting task to exist")
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
        snap = await run(m2, m2.wait(tid))
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
        await run(m, m.cancel(tid, "interrupted in ComfyUI"))
        snap = await run(m, m.wait(tid))  # a wait ends when the task is abandoned …
        assert snap["state"] == "abandoned" and "may still run and bill" in snap["message"]
        snap = await until(m, lambda: (m.snapshot(tid) or {}).get("state") == "succeeded" and m.snapshot(tid),
                           "the abandoned task's result")  # … and the engine still fetches the result
        assert snap["outputs"], snap
        assert Path(m.outputs_of(tid)[0]["path"]).is_file()
    finally:
        await asyncio.to_thread(m.stop)
        await fake.stop()


# --------------------------------------------------------------------------- the rules of a paid step

@pytest.fixture
async def remote(home):
    fake = FakeComfyUI()
    await fake.start()
    with open(home / "profiles.toml", "a") as fh:
        fh.write(f'[profiles.remote]\nprovider = "comfyui"\nurl = "{fake.url}"\npoll_interval_s = 0.05\n')
    yield fake
    await fake.stop()


def slow_graph() -> str:
    return (WF / "slow.json").read_text()


async def test_a_create_answered_after_the_client_gave_up_is_found_not_sent_again(started, remote):
    """The first look finds nothing (the server has not acted yet): that is not trusted until the
    landing window has passed, so the late task is found and followed — one remote prompt."""
    m = started()
    remote.faults.add("prompt", "late", delay=2.0)  # the client gives up after 1 s
    tid = await run(m, m.submit("remote", slow_graph(), SLOW, reuse=False))
    snap = await run(m, m.wait(tid))
    assert snap["state"] == "succeeded", snap
    assert len(remote.created) == 1 and remote.count("prompt") == 1


async def test_a_status_that_stays_unavailable_keeps_the_task_tracked(started, remote):
    m = started()
    remote.faults.add("ws", "status", status=503, times=-1)  # no live channel: polls only
    blocked = remote.faults.add("history", "status", status=403, body={"error": "proxy says no"}, times=-1)
    remote.faults.add("queue", "status", status=401, times=-1)
    tid = await run(m, m.submit("remote", slow_graph(), SLOW, reuse=False))
    snap = await until(m, lambda: "status unavailable since" in ((m.snapshot(tid) or {}).get("message") or "")
                       and m.snapshot(tid), "the task to say its status is unavailable")
    assert snap["state"] in ("queued", "running") and snap["error"] is None
    await until(m, lambda: remote.history, "the remote prompt to finish")
    blocked.times = 0
    remote.faults.clear()
    snap = await run(m, m.wait(tid))
    assert snap["state"] == "succeeded" and snap["outputs"] and "unavailable" not in (snap["message"] or "")
    assert len(remote.created) == 1


async def test_a_task_the_service_no_longer_knows_fails_only_after_confirmation(started, remote):
    m = started()
    tid = await run(m, m.submit("remote", slow_graph(), [Override("2.steps", "int", 400), SLOW[1]], reuse=False))
    await until(m, lambda: remote.running_ids(), "the remote prompt to run")
    remote._running.clear()  # the server lost it (a restart that forgot its queue and history)
    remote._interrupt = True
    snap = await run(m, m.wait(tid))
    assert snap["state"] == "failed" and "no longer knows prompt" in snap["error"]


async def test_an_identical_task_still_on_its_way_is_joined_not_paid_again(started, remote):
    m = started()
    a = await run(m, m.submit("remote", slow_graph(), SLOW))
    b = await run(m, m.submit("remote", slow_graph(), SLOW))
    assert a == b and len(remote.created) == 1
    assert (await run(m, m.wait(b)))["state"] == "succeeded"


async def test_the_submit_phase_has_a_deadline_and_nothing_is_paid(started):
    m = started()
    blocker = await run(m, m.submit("one", "slow.json", [Override("2.steps", "int", 100), SLOW[1]], reuse=False))
    before = created()
    with pytest.raises(RemoteError) as e:
        await run(m, m.submit("one", "slow.json", SLOW, reuse=False, deadline_s=0.5))
    assert e.value.kind == "timeout" and "nothing was paid" in str(e.value) and created() == before
    await run(m, m.cancel(blocker))


async def test_uploads_are_cached_only_while_the_service_keeps_them(started, remote):
    m = started()
    img = media.encode_image(media.from_uint8(np.full((4, 4, 3), 7, np.uint8))[None])
    inputs = [Override("10.image", "image", img.data, sha256=img.sha256)]
    invert = (WF / "invert.json").read_text()
    await run(m, m.wait(await run(m, m.submit("remote", invert, inputs, reuse=False))))
    provider = m._providers["remote"]
    await run(m, m.wait(await run(m, m.submit("remote", invert, inputs, reuse=False))))
    assert remote.count("view") - 2 == 1  # one existence check: the second task reused the upload
    provider.upload_ttl_s = 0.0  # the service forgets uploads at once
    await run(m, m.wait(await run(m, m.submit("remote", invert, inputs, reuse=False))))
    assert remote.count("view") - 3 == 2  # asked again before the third task


# --------------------------------------------------------------------------- robustness

async def test_a_reloaded_profiles_toml_keeps_an_unchanged_provider_and_replaces_a_changed_one(home, started):
    m = started()
    first = await run(m, _provider(m, "one"))
    toml = home / "profiles.toml"
    text = toml.read_text()
    toml.write_text(text + "\n# touched\n")  # a new file version, nothing changed for 'one'
    os.utime(toml, (time.time() + 5, time.time() + 5))
    assert await run(m, _provider(m, "one")) is first
    toml.write_text(text.replace("max_concurrent = 1", "max_concurrent = 2"))
    os.utime(toml, (time.time() + 10, time.time() + 10))
    second = await run(m, _provider(m, "one"))
    assert second is not first
    await until(m, lambda: first.http._api is None, "the replaced provider's sessions to be closed", 10)


async def _provider(m: TaskManager, name: str):
    return m.provider(m.profiles.get(name))


async def test_a_crash_mid_submit_is_resolved_by_a_look_up_that_resends_the_same_create(home, tmp_path):
    """ComfyUI died after sending a TAMS create (journal: phase 'sending'); on restart the engine
    looks the job up by re-sending the very create journalled then (same requestId): the service
    answers the job it already made — one job, its result saved."""
    from comfyui_remote.engine.journal import Journal
    from comfyui_remote.engine.submission import spec_json
    from comfyui_remote.providers.base import SubmitSpec
    from comfyui_remote.tests.fakes.tensorart import FakeTensorArt

    fake = FakeTensorArt()
    fake.queue_s, fake.run_s = 0.1, 0.3
    await fake.start()
    key_line = f'api_key = "{fake.credentials()["TENSORART_API_KEY"]}"'
    with open(home / "profiles.toml", "a") as fh:
        fh.write(f'[profiles.ta]\nprovider = "tensorart"\nurl = "{fake.url}"\n{key_line}\npoll_interval_s = 0.05\n')
    m = manager(home, tmp_path / "out").start(reattach=False)
    try:  # the create that reached the service before the crash
        spec = SubmitSpec("700000000000000001", (Override("6.text", "text", "crash"),), profile="ta")
        p = await run(m, _provider(m, "ta"))
        key = p.new_submission_key()
        await run(m, p.submit(spec, key))
    finally:
        await asyncio.to_thread(m.stop)
    assert fake.created == 1
    j = Journal(home / "journal.sqlite3")
    j.create("crashed00000001", profile="ta", provider="tensorart", workflow="700000000000000001",
             state="submitting", phase="sending", submission_key=key, submit_spec=spec_json(spec))
    j.close()
    m2 = manager(home, tmp_path / "out").start(reattach=True)
    try:
        snap = await run(m2, m2.wait("crashed00000001"))
        assert snap["state"] == "succeeded" and snap["outputs"], snap
        assert fake.created == 1
    finally:
        await asyncio.to_thread(m2.stop)
        await fake.stop()


def test_an_exit_without_stop_still_closes_the_journal(tmp_path):
    """ComfyUI exits without stopping the engine: the exit hook closes the journal cleanly (its
    write-ahead log is merged and removed)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    code = (f"import sys; sys.path.insert(0, {str(root)!r}); import conftest\n"
            "from pathlib import Path\n"
            "from comfyui_remote.engine.tasks import TaskManager\n"
            f"m = TaskManager(Path({str(tmp_path / 'h')!r}), Path({str(tmp_path / 'o')!r})).start(reattach=False)\n"
            "m.journal.create('t1', profile='sandbox', provider='sandbox', state='queued')\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=root)
    assert (tmp_path / "h" / "journal.sqlite3").is_file()
    assert not (tmp_path / "h" / "journal.sqlite3-wal").exists()


async def test_a_file_kind_the_service_cannot_take_is_refused_before_anything_is_paid(started, monkeypatch):
    from comfyui_remote.providers import sandbox
    monkeypatch.setattr(sandbox.SandboxProvider, "capabilities",
                        dataclasses.replace(sandbox.SandboxProvider.capabilities, input_kinds=("image",)))
    m = started()
    before = created()
    clip = Override("1.video", "video", b"\x00\x00\x00\x18ftypmp42", sha256="ab" * 32, name="clip.mp4")
    with pytest.raises(NotSupported) as e:
        await run(m, m.submit("sandbox", "slow.json", [*SLOW, clip], reuse=False))
    assert "cannot take a video input (target 1.video)" in str(e.value) and "it takes image" in str(e.value)
    assert created() == before
