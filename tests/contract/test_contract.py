"""The same scenarios for every provider, through the engine's TaskManager against each
provider's fake (``case_<provider>.py``), skipping only what the provider's capabilities (or the
case's ``faults``) say it lacks."""
from __future__ import annotations

import asyncio
import importlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfyui_remote.engine import media
from comfyui_remote.engine.tasks import TaskManager
from comfyui_remote.engine.transfer import RetryPolicy
from comfyui_remote.providers import provider_class
from comfyui_remote.providers.base import AuthError, ConfigError, Override, RejectedInput, RemoteError

HERE = Path(__file__).resolve().parent
CASE_NAMES = sorted(p.stem[len("case_"):] for p in HERE.glob("case_*.py"))
CANARY = "CANARY-contract-key-7f3a9c1e5b"
FAULTS_SUCCEEDING = ("submit_5xx", "submit_429", "submit_drop_after", "poll_5xx", "poll_malformed", "ws_drop",
                     "download_truncated", "slow_answers")
STEP_TIMEOUT = 90


def load_case(name: str):
    mod = importlib.import_module(f"comfyui_remote.tests.contract.case_{name}")
    return type(mod.CASE)()  # a fresh instance per test


class Env:
    def __init__(self, case, manager: TaskManager, events: list):
        self.case, self.m, self.events = case, manager, events

    async def run(self, coro):
        return await asyncio.wait_for(asyncio.wrap_future(self.m.call(coro)), STEP_TIMEOUT)

    async def submit(self, workflow: str, overrides, profile: str = "contract", reuse: bool = False) -> str:
        return await self.run(self.m.submit(profile, workflow, _overrides(overrides), reuse=reuse))

    async def finish(self, task_id: str) -> dict:
        return await self.run(self.m.wait(task_id))

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
    m = TaskManager(home, tmp_path / "out", policy=RetryPolicy(attempts=4, base_s=0.02, cap_s=0.2))
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


def caps(env: Env):
    return provider_class(env.case.provider).capabilities


def assert_pixels(env: Env, task_id: str, expect) -> None:
    got = env.images(task_id)
    assert len(got) == len(expect.images), (len(got), expect.images)
    for arr, (w, h, rgb) in zip(got, expect.images):
        assert arr.shape == (h, w, 3)
        assert (arr == np.array(rgb, np.uint8)).all(), f"pixels differ from {rgb}"


# ------------------------------------------------------------------------------- scenarios

async def test_success_with_progress_and_queue_updates(env: Env):
    workflow, overrides, expect = env.case.workflow_single()
    before = env.case.remote_tasks()
    tid = await env.submit(workflow, overrides)
    snap = await env.finish(tid)
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
    tid = await env.submit(workflow, overrides)
    snap = await env.finish(tid)
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
    tid = await env.submit(workflow, [("image", target, media.from_uint8(u8)[None])])
    snap = await env.finish(tid)
    assert snap["state"] == "succeeded", snap
    got = env.images(tid)
    assert got and np.array_equal(got[0], u8)


async def test_cancel_or_honest_no_cancel(env: Env):
    workflow, overrides = env.case.workflow_slow()
    tid = await env.submit(workflow, overrides)
    for _ in range(400):
        if (env.m.snapshot(tid) or {}).get("state") == "running":
            break
        await asyncio.sleep(0.05)
    snap = await env.run(env.m.cancel(tid, "cancelled by test"))
    remote_id = snap["remote_id"]
    if caps(env).cancel:
        assert snap["state"] == "cancelled", (snap["state"], snap["message"])
        for _ in range(100):
            if env.case.was_cancelled(remote_id):
                break
            await asyncio.sleep(0.05)
        assert env.case.was_cancelled(remote_id)
    else:
        assert snap["state"] == "abandoned", snap
        assert not snap["can_cancel"]
        assert "may still run" in snap["message"]


@pytest.mark.parametrize("fault", FAULTS_SUCCEEDING)
async def test_fault_loses_nothing_and_never_pays_twice(env: Env, fault: str):
    if fault not in env.case.faults:
        pytest.skip(f"{env.case.provider} fake does not play {fault}")
    workflow, overrides, expect = env.case.workflow_single()
    before = env.case.remote_tasks()
    env.case.inject(fault)
    try:
        tid = await env.submit(workflow, overrides)
    except RemoteError as e:
        # only an honest "cannot tell" is acceptable, from a provider that has no way to find out,
        # and then nothing was created twice
        c = caps(env)
        assert fault in ("submit_drop_after", "submit_5xx") and e.kind == "ambiguous_submit", e
        assert not (c.findable or c.idempotent_submit or c.client_chosen_id), "this provider could have found out"
        assert env.case.remote_tasks() <= before + 1
        assert "before queueing again" in str(e) and env.case.provider in str(e)
        return
    snap = await env.finish(tid)
    assert snap["state"] == "succeeded", snap
    assert env.case.remote_tasks() == before + 1, "a fault must never create a second paid task"
    assert_pixels(env, tid, expect)


@pytest.mark.parametrize("fault,kind", [("node_error", "remote_failure"), ("content_safety", "content_safety")])
async def test_remote_failures_are_named(env: Env, fault: str, kind: str):
    if fault not in env.case.faults:
        pytest.skip(f"{env.case.provider} fake does not play {fault}")
    env.case.inject(fault)  # before asking for the workflow: a real server can only fail by graph
    workflow, overrides, _ = env.case.workflow_single()
    try:
        tid = await env.submit(workflow, overrides)
    except RemoteError as e:  # rejected at submit (content safety may be immediate)
        assert e.kind == kind, e
        return
    snap = await env.finish(tid)
    assert snap["state"] == "failed", snap
    assert env.case.provider in snap["error"] and "contract" in snap["error"]


async def test_download_expired_keeps_the_task_tracked(env: Env):
    if "download_expired" not in env.case.faults:
        pytest.skip("fake has no expiring URLs")
    workflow, overrides, _ = env.case.workflow_single()
    env.case.inject("download_expired")
    tid = await env.submit(workflow, overrides)
    snap = await env.finish(tid)
    assert snap["state"] == "succeeded" and snap["outputs_state"] in ("missing", "partial"), snap
    assert snap["error"] and "expired" in snap["error"]


async def test_auth_failure_message(env: Env):
    if not getattr(env.case, "has_auth", True):
        pytest.skip(f"{env.case.provider} has no credentials")
    workflow, overrides, _ = env.case.workflow_single()
    with pytest.raises((AuthError, ConfigError)) as e:
        tid = await env.submit(workflow, overrides, profile="wrongkey")
        snap = await env.finish(tid)  # a provider may only learn it later
        raise AuthError(snap.get("error") or "")
    text = str(e.value)
    assert env.case.provider in text and "wrongkey" in text
    assert "WRONG-" not in text


async def test_bad_target_is_rejected_before_paying(env: Env):
    workflow, overrides = env.case.bad_target()
    before = env.case.remote_tasks()
    with pytest.raises(RejectedInput) as e:
        await env.submit(workflow, overrides)
    assert e.value.field in ("target", "inputs", "workflow") or "target" in str(e.value)
    assert env.case.remote_tasks() == before
