"""The same scenarios for every provider, through the engine's TaskManager against each provider's
fake (``case_<provider>.py``): the rules of every paid step (design §4) × every fault class
(design §6). Each scenario proves the exact result arrives — or a clear error says the task is
kept and how to fetch it — with nothing lost and never a second paid task."""
from __future__ import annotations

import asyncio
import importlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfyui_remote.engine import media
from comfyui_remote.engine.rules import RetryPolicy
from comfyui_remote.engine.tasks import TaskManager
from comfyui_remote.providers import provider_class
from comfyui_remote.providers.base import Override, RejectedInput, RemoteError

from .case import FAULT_CLASSES, IDLE_TIMEOUT_S, LANDING_S, REQUEST_TIMEOUT_S

HERE = Path(__file__).resolve().parent
CASE_NAMES = sorted(p.stem[len("case_"):] for p in HERE.glob("case_*.py"))
CANARY = "CANARY-contract-key-7f3a9c1e5b"
STEP_TIMEOUT = 90
POLICY = RetryPolicy(attempts=4, base_s=0.02, cap_s=0.2, request_timeout_s=REQUEST_TIMEOUT_S,
                     connect_timeout_s=REQUEST_TIMEOUT_S, idle_timeout_s=IDLE_TIMEOUT_S, landing_s=LANDING_S,
                     status_backoff_cap_s=0.5, gone_confirm_s=1.0, cancel_deadline_s=30.0)
MANY = 34  # tasks at once: more sockets than any pool's per-host limit


def load_case(name: str):
    mod = importlib.import_module(f"comfyui_remote.tests.contract.case_{name}")
    return type(mod.CASE)()  # a fresh instance per test


class Env:
    def __init__(self, case, manager: TaskManager, events: list):
        self.case, self.m, self.events = case, manager, events
        self._changed = asyncio.Event()
        manager.events.subscribe(lambda _task: self._loop.call_soon_threadsafe(self._changed.set))
        self._loop = asyncio.get_running_loop()

    async def run(self, coro):
        return await asyncio.wait_for(asyncio.wrap_future(self.m.call(coro)), STEP_TIMEOUT)

    async def submit(self, workflow: str, overrides, profile: str = "contract", reuse: bool = False) -> str:
        return await self.run(self.m.submit(profile, workflow, _overrides(overrides), reuse=reuse))

    async def finish(self, task_id: str) -> dict:
        return await self.run(self.m.wait(task_id))

    async def until(self, pred, what: str, timeout: float = STEP_TIMEOUT):
        """Wait for a condition re-checked on every task event (no sleep-polling)."""
        async def loop():
            while True:
                self._changed.clear()
                value = pred()
                if value:
                    return value
                try:
                    await asyncio.wait_for(self._changed.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass  # also re-check conditions on the fake (no event for those)
        try:
            return await asyncio.wait_for(loop(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None

    def snap(self, task_id: str) -> dict:
        return self.m.snapshot(task_id) or {}

    def images(self, task_id: str) -> list[np.ndarray]:
        out = []
        for o in self.m.outputs_of(task_id):
            if o["kind"] == "image" and o.get("path"):
                out.append(np.asarray(Image.open(o["path"]).convert("RGB")))
        return out

    def states(self, task_id: str) -> list[str]:
        return [e["state"] for e in self.events if e["id"] == task_id]


def _overrides(items) -> list[Override]:
    out = []
    for kind, target, value in items or ():
        if kind == "image":
            enc = media.encode_image(value)
            out.append(Override(target, "image", enc.data, sha256=enc.sha256, width=enc.width, height=enc.height))
        else:
            out.append(Override(target, kind, value))
    return out


@pytest.fixture(params=CASE_NAMES)
async def env(request, tmp_path):
    case = load_case(request.param)
    if getattr(case, "requires", None):  # a real server from a session fixture (e.g. a real ComfyUI)
        case.url = request.getfixturevalue(case.requires).url
    await case.start()
    home = tmp_path / "home"
    home.mkdir()
    _write_profiles(home, {"contract": case.profile(CANARY), "wrongkey": case.profile("WRONG-" + CANARY[::-1])})
    events: list = []
    m = TaskManager(home, tmp_path / "out", policy=POLICY)
    m.events.subscribe(events.append)
    m.start(reattach=False)
    yield Env(case, m, events)
    await asyncio.to_thread(m.stop)
    await case.stop()
    # the canary key never leaves the profile: journal, events, saved files
    blob = (home / "journal.sqlite3").read_bytes() if (home / "journal.sqlite3").exists() else b""
    for extra in home.glob("journal.sqlite3-*"):
        blob += extra.read_bytes()
    assert CANARY.encode() not in blob
    assert CANARY not in json.dumps(events)


def _write_profiles(home: Path, tables: dict) -> None:
    lines = []
    for name, table in tables.items():
        lines.append(f"[profiles.{name}]")
        for k, v in table.items():
            lines.append(f"{k} = {json.dumps(v)}")
    (home / "profiles.toml").write_text("\n".join(lines) + "\n")


def fault(env: Env, kind: str, name: str, **kw):
    """Schedule a toolkit fault on the fake's route for ``kind``, or skip where none can be injected."""
    try:
        return env.case.add(kind, name, **kw)
    except NotImplementedError as e:
        pytest.skip(str(e))


def caps(env: Env):
    return provider_class(env.case.provider).capabilities


def assert_pixels(env: Env, task_id: str, expect) -> None:
    got = env.images(task_id)
    assert len(got) == len(expect.images), (len(got), expect.images)
    for arr, (w, h, rgb) in zip(got, expect.images):
        assert arr.shape == (h, w, 3)
        assert (arr == np.array(rgb, np.uint8)).all(), f"pixels differ from {rgb}"


def assert_honest_ambiguity(env: Env, err: RemoteError, before: int) -> None:
    """The only acceptable failure of a create: a provider with no way to look a task up says so,
    names itself and tells the user to check before queueing again — and nothing was paid twice."""
    assert err.kind == "ambiguous_submit", err
    assert not caps(env).can_find, f"{env.case.provider} could have looked the task up: {err}"
    assert env.case.remote_tasks() <= before + 1
    text = str(err)
    assert env.case.provider in text and "before queueing again" in text


async def run_to_end(env: Env, workflow: str, overrides) -> tuple[str, dict]:
    tid = await env.submit(workflow, overrides)
    return tid, await env.finish(tid)


# ------------------------------------------------------------------------------- plain runs

async def test_success_with_progress_and_queue_updates(env: Env):
    workflow, overrides, expect = env.case.workflow_single()
    before = env.case.remote_tasks()
    tid, snap = await run_to_end(env, workflow, overrides)
    assert snap["state"] == "succeeded", snap
    assert snap["remote_id"] and isinstance(snap["remote_id"], str)
    assert env.case.remote_tasks() == before + 1
    assert_pixels(env, tid, expect)
    states = env.states(tid)
    assert states[0] == "submitting" and states[-1] == "succeeded"
    assert "queued" in states or "running" in states
    progress = [e["progress"] for e in env.events if e["id"] == tid and e["progress"] is not None]
    assert progress and progress[-1] == 1.0
    if caps(env).progress != "none":
        assert any(0 < p < 1 for p in progress), progress


async def test_multi_output_results(env: Env):
    workflow, overrides, expect = env.case.workflow_multi()
    tid, snap = await run_to_end(env, workflow, overrides)
    assert snap["state"] == "succeeded", snap
    assert len(snap["outputs"]) >= 2
    assert_pixels(env, tid, expect)


async def test_upload_round_trip(env: Env):
    spec = env.case.workflow_upload()
    if spec is None or not caps(env).uploads:
        pytest.skip("provider has no uploads")
    workflow, target = spec
    rng = np.random.default_rng(7)
    u8 = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    tid, snap = await run_to_end(env, workflow, [("image", target, media.from_uint8(u8)[None])])
    assert snap["state"] == "succeeded", snap
    got = env.images(tid)
    assert got and np.array_equal(got[0], u8)


async def test_many_tasks_at_once(env: Env):
    """More tasks than any connection pool allows per host, each with its own live channel
    where the service has one: every result arrives, each task is paid once."""
    workflow, overrides, expect = env.case.workflow_single()
    before = env.case.remote_tasks()
    ids = await asyncio.gather(*(env.submit(workflow, overrides) for _ in range(MANY)))
    snaps = await asyncio.gather(*(env.finish(t) for t in ids))
    assert [s["state"] for s in snaps] == ["succeeded"] * MANY, [s["message"] for s in snaps if s["state"] != "succeeded"]
    assert env.case.remote_tasks() == before + MANY
    for tid in ids:
        assert_pixels(env, tid, expect)


# ------------------------------------------------------------------------------- cancel (rule 3)

async def _running(env: Env, tid: str) -> None:
    await env.until(lambda: env.snap(tid).get("state") == "running", f"task {tid} running")


async def test_cancel_stops_the_remote_task_or_says_honestly_it_cannot(env: Env):
    workflow, overrides = env.case.workflow_slow()
    tid = await env.submit(workflow, overrides)
    await _running(env, tid)
    await env.run(env.m.cancel(tid, "cancelled by test"))
    snap = await env.finish(tid)
    if caps(env).cancel:
        assert snap["state"] == "cancelled", (snap["state"], snap["message"])
        assert env.case.was_cancelled(snap["remote_id"])
    else:
        assert snap["state"] == "abandoned", snap
        assert not snap["can_cancel"]
        assert "may still run" in snap["message"]


async def test_cancel_refused_with_429_is_delivered_later(env: Env):
    if not caps(env).cancel:
        pytest.skip(f"{env.case.provider} has no cancel")
    workflow, overrides = env.case.workflow_slow()
    tid = await env.submit(workflow, overrides)
    await _running(env, tid)
    fault(env, "cancel", "status", status=429, retry_after=1, times=2)
    await env.run(env.m.cancel(tid, "cancelled by test"))
    snap = await env.finish(tid)
    assert snap["state"] == "cancelled", (snap["state"], snap["message"])
    assert env.case.was_cancelled(snap["remote_id"])


async def test_cancel_after_the_task_finished_keeps_the_result(env: Env):
    """The service finished while the engine could not see it yet; then a cancel arrives."""
    workflow, overrides, expect = env.case.workflow_single()
    gate = fault(env, "poll", "hold", times=-1)
    tid = await env.submit(workflow, overrides)
    remote_id = env.snap(tid)["remote_id"]
    await env.until(lambda: env.case.finished_remotely(remote_id), "the remote task to finish")
    await env.run(env.m.cancel(tid, "cancelled too late"))
    gate.release()
    snap = await env.finish(tid)
    assert snap["state"] == "succeeded", (snap["state"], snap["message"])
    assert_pixels(env, tid, expect)


async def test_cancel_while_results_download_keeps_them(env: Env):
    workflow, overrides, expect = env.case.workflow_single()
    gate = fault(env, "file", "hold", times=-1)
    tid = await env.submit(workflow, overrides)
    await env.until(lambda: env.case.server_for(env.case.ROUTES["file"]).count(env.case.ROUTES["file"]) > 0,
                    "the download to start")
    snap = await env.run(env.m.cancel(tid, "cancelled while downloading"))
    assert not snap["can_cancel"] and "not cancelled" in snap["message"]
    gate.release()
    snap = await env.finish(tid)
    assert snap["state"] == "succeeded", (snap["state"], snap["message"])
    assert_pixels(env, tid, expect)
    if caps(env).cancel:
        assert not env.case.was_cancelled(snap["remote_id"])


async def test_a_slow_download_says_which_file_and_how_much_has_come(env: Env):
    """While a result streams in, the task (and so the waiting node) says which file of how many and
    how much of it has arrived, in a unit that reads right for the size (a 2 KB result is not
    "0.0 of 0.0 MB")."""
    workflow, overrides, expect = env.case.workflow_single()
    fault(env, "file", "trickle", delay=1.5, times=-1)
    tid, snap = await run_to_end(env, workflow, overrides)
    assert snap["state"] == "succeeded", (snap["state"], snap["message"])
    assert_pixels(env, tid, expect)
    notes = [e["message"] for e in env.events if e["id"] == tid and "downloading result " in (e["message"] or "")]
    assert notes, "no download progress was shown"
    count = len(expect.images)
    amount = r"(\d+ bytes|\d+\.\d KB|\d+\.\d MB|\d+\.\d\d GB)"
    for note in notes:
        m = re.fullmatch(rf"downloading result (\d+) of {count}: {amount} of {amount}", note)
        assert m, note
        assert 1 <= int(m.group(1)) <= count
        assert not m.group(2).startswith("0.0 ") and not m.group(3).startswith("0.0 "), note
    # the last word is the result, not a download note that came in late
    assert "downloading" not in (snap["message"] or "")


# ------------------------------------------------------------------------------- every fault class

@pytest.mark.parametrize("fault", FAULT_CLASSES)
async def test_fault_loses_nothing_and_never_pays_twice(env: Env, fault: str):
    why = env.case.cannot_play(fault)
    if why:
        pytest.skip(why)
    workflow, overrides, expect = env.case.workflow_single()
    before = env.case.remote_tasks()
    seen = {"delivered": 0, "ambiguous": 0}
    try:
        env.case.inject(fault)
        try:
            tid = await env.submit(workflow, overrides)
        except RemoteError as e:
            assert fault.startswith("submit_") and fault != "submit_429", e
            assert_honest_ambiguity(env, e, before)
            seen["ambiguous"] = 1
            return
        snap = await env.finish(tid)
        assert snap["state"] == "succeeded", snap
        assert snap["outputs_state"] == "saved", snap
        assert env.case.remote_tasks() == before + 1, "a fault must never create a second paid task"
        assert_pixels(env, tid, expect)
        seen["delivered"] = 1
    finally:
        _measured(env, fault, paid=env.case.remote_tasks() - before, **seen)


def _measured(env: Env, fault: str, **counts) -> None:
    """One line per fault run for scripts/reliability_table.py (when it names the file)."""
    path = os.environ.get("COMFYUI_REMOTE_RELIABILITY")
    if path:
        case = type(env.case).__module__.rsplit("case_", 1)[-1]
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"case": case, "provider": env.case.provider, "fault": fault, **counts}) + "\n")


async def test_a_result_that_cannot_be_downloaded_stays_recoverable(env: Env):
    workflow, overrides, expect = env.case.workflow_single()
    gone = fault(env, "file", "status", status=404, times=-1)
    tid, snap = await run_to_end(env, workflow, overrides)
    assert snap["state"] == "succeeded" and snap["outputs_state"] in ("missing", "partial"), snap
    assert "Recover" in snap["message"], snap["message"]
    gone.times = 0  # the files are reachable again
    await env.run(env.m.recover(tid))
    snap = await env.finish(tid)
    assert snap["outputs_state"] == "saved", snap
    assert_pixels(env, tid, expect)


@pytest.mark.parametrize("fault,kind", [("node_error", "remote_failure"), ("content_safety", "content_safety")])
async def test_remote_failures_are_named(env: Env, fault: str, kind: str):
    try:
        env.case.inject(fault)  # before asking for the workflow: a real server can only fail by graph
    except NotImplementedError:
        pytest.skip(f"{env.case.provider} has no {fault.replace('_', ' ')}")
    workflow, overrides, _ = env.case.workflow_single()
    try:
        tid = await env.submit(workflow, overrides)
    except RemoteError as e:  # rejected at submit (content safety may be immediate)
        assert e.kind == kind, e
        return
    snap = await env.finish(tid)
    assert snap["state"] == "failed", snap
    assert env.case.provider in snap["error"] and "contract" in snap["error"]


async def test_auth_failure_is_an_auth_error_naming_where_the_key_comes_from(env: Env):
    if not env.case.has_auth:
        pytest.skip(f"{env.case.provider} has no credentials")
    workflow, overrides, _ = env.case.workflow_single()
    before = env.case.remote_tasks()
    with pytest.raises(RemoteError) as e:
        await env.submit(workflow, overrides, profile="wrongkey")
    assert e.value.kind == "auth", e.value
    text = str(e.value)
    assert env.case.provider in text and "wrongkey" in text and "profiles.toml" in text
    assert "WRONG-" not in text
    assert env.case.remote_tasks() == before


async def test_bad_target_is_rejected_before_paying(env: Env):
    workflow, overrides = env.case.bad_target()
    before = env.case.remote_tasks()
    with pytest.raises(RejectedInput) as e:
        await env.submit(workflow, overrides)
    assert e.value.field in ("target", "inputs", "workflow") or "target" in str(e.value)
    assert env.case.remote_tasks() == before
