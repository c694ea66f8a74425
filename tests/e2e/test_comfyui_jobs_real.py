"""The ``comfyui`` provider's two ways of asking, on a REAL server: the remote ComfyUI 0.3.64 plays a
newer server through the test pack's jobs routes (``tests/remote_nodes``; the contract case
``case_comfyui_real`` runs the whole suite that way), and the profile setting ``jobs_api = "off"``
makes the provider ask it the old way (``/queue``, ``/history``, ``/interrupt``). The sandbox fake's
jobs mode is held to the real server's answers (same keys and value types, status by status)."""
from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from comfyui_remote.engine.profiles import Profiles
from comfyui_remote.engine.transfer import Http, RetryPolicy
from comfyui_remote.providers.base import CancelResult, State, SubmitSpec
from comfyui_remote.providers.comfyui import ComfyUIProvider

from ..fakes.comfyui import FakeComfyUI
from ..unit import drive
from . import harness

pytestmark = [pytest.mark.e2e]


def slow(steps: int, step_seconds: float, color: str = "#3366cc") -> dict:
    return {"1": {"class_type": "SandboxSolid", "inputs": {"text": color, "width": 8, "height": 8}},
            "2": {"class_type": "SandboxSlowPass", "inputs": {"image": ["1", 0], "steps": steps,
                                                               "step_seconds": step_seconds}},
            "9": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "jobs_real"}}}


def failing() -> dict:
    return {"1": {"class_type": "SandboxSolid", "inputs": {"text": "red", "width": 8, "height": 8}},
            "2": {"class_type": "SandboxFail", "inputs": {"image": ["1", 0], "message": "boom"}},
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}


async def provider(url: str, home, extra: str = "") -> ComfyUIProvider:
    home.mkdir()
    (home / "profiles.toml").write_text(f'[profiles.remote]\nprovider = "comfyui"\nurl = "{url}"\n'
                                        f"poll_interval_s = 0.1\n{extra}\n")
    http = Http(provider="comfyui", profile="remote", policy=RetryPolicy(attempts=3, base_s=0.05, cap_s=0.2))
    return ComfyUIProvider(Profiles(home).get("remote"), http)


async def until_running(p: ComfyUIProvider, ref) -> None:
    async def loop() -> None:  # looks at the provider's interval, as the engine would
        while (await p.poll(ref)).state != State.RUNNING:
            await asyncio.sleep(p.poll_interval())
    await asyncio.wait_for(loop(), 60)


async def test_old_and_new_routes_cancel_for_real(remote_comfy, tmp_path):
    spec = SubmitSpec(json.dumps(slow(400, 0.02)))
    for extra, says in (('jobs_api = "off"', "Interrupting prompt"), ("", "Cancelling running prompt")):
        p = await provider(remote_comfy.url, tmp_path / f"home{len(extra)}", extra)
        try:
            ref = await drive.submit(p, spec)
            await until_running(p, ref)
            assert await p.cancel(ref) == CancelResult.REQUESTED
            assert (await drive.until_end(p, ref))[-1].state == State.CANCELLED
            # the remote's own log says which route stopped it: /interrupt, or the jobs route of the pack
            log = remote_comfy.log.read_text()
            assert f"{says} {ref.remote_id}" in log
            other = "Cancelling running prompt" if extra else "Interrupting prompt"
            assert f"{other} {ref.remote_id}" not in log
            assert p.known.of(remote_comfy.url).jobs is (None if extra else True)  # "off" never probes
            ok = await drive.run(p, SubmitSpec(json.dumps(slow(3, 0.01, "#102030"))))
            assert ok[1][-1].state == State.SUCCEEDED and ok[1][-1].outputs
        finally:
            await p.close()
            await p.http.close()


def shape(x):
    """Keys and value types, recursively; list elements merged (in no order); create_time left out
    (0.3.64, under the pack, does not stamp it; newer servers and the fake's jobs mode do)."""
    if isinstance(x, dict):
        return {k: shape(v) for k, v in x.items() if k != "create_time"}
    if isinstance(x, list):
        merged: dict = {}
        for item in x:
            s = shape(item)
            merged[json.dumps(s, sort_keys=True)] = s
        return [merged[k] for k in sorted(merged)]
    if isinstance(x, bool):
        return "bool"
    return "number" if isinstance(x, (int, float)) else type(x).__name__


async def answers(url: str) -> dict:
    """The jobs routes' answers for one scenario: a running prompt, two behind it, one failing."""
    got: dict = {}
    async with harness.Client(url) as c:
        async def status_body(method: str, path: str) -> tuple[int, object]:
            async with c.session.request(method, url + path) as r:  # type: ignore[union-attr]
                return r.status, await r.json()

        a = await c.queue(slow(40, 0.05))
        b = await c.queue(slow(2, 0.01, "#00ff00"))
        d = await c.queue(slow(2, 0.01, "#0000ff"))
        f = await c.queue(failing())
        while True:  # a runs once its first progress arrives
            m = await c.next_message(timeout=60)
            if m.get("type") == "progress" and m["data"].get("prompt_id") == a:
                break
        got["live"] = await c.get("/api/jobs?status=in_progress,pending")
        got["in_progress"] = await c.get(f"/api/jobs/{a}")
        got["pending"] = await c.get(f"/api/jobs/{b}")
        got["bad_status"] = await status_body("GET", "/api/jobs?status=nope")
        got["unknown"] = await status_body("GET", f"/api/jobs/{uuid.uuid4()}")
        got["cancel_unknown"] = await status_body("POST", f"/api/jobs/{uuid.uuid4()}/cancel")
        got["cancel_pending"] = await status_body("POST", f"/api/jobs/{d}/cancel")
        got["dequeued"] = await status_body("GET", f"/api/jobs/{d}")
        got["cancel_running"] = await status_body("POST", f"/api/jobs/{a}/cancel")
        for pid in (a, b, f):
            await c.wait_done(pid)
        got["cancelled"] = await c.get(f"/api/jobs/{a}")
        got["completed"] = await c.get(f"/api/jobs/{b}")
        got["failed"] = await c.get(f"/api/jobs/{f}")
        got["cancel_finished"] = await status_body("POST", f"/api/jobs/{b}/cancel")
        got["page"] = await c.get("/api/jobs?limit=2&offset=1&sort_order=asc")
    return got


async def test_the_fake_answers_the_jobs_routes_like_the_real_server(remote_comfy):
    fake = FakeComfyUI(jobs_api=True)
    await fake.start()
    try:
        real, ours = await answers(remote_comfy.url), await answers(fake.url)
    finally:
        await fake.stop()
    assert real["cancel_pending"] == real["cancel_running"] == (200, {"cancelled": True})
    assert real["cancel_unknown"] == real["cancel_finished"] == (200, {"cancelled": False})
    assert real["unknown"] == real["dequeued"] == (404, {"error": "Job not found"})
    assert [real[k]["status"] for k in ("in_progress", "pending", "cancelled", "completed", "failed")] == \
        ["in_progress", "pending", "cancelled", "completed", "failed"]
    assert real["failed"]["execution_error"]["node_type"] == "SandboxFail"
    # which jobs make the page depends on create_time, which only the fake stamps
    assert len(real["page"]["jobs"]) == len(ours["page"]["jobs"]) == 2
    real["page"], ours["page"] = real["page"]["pagination"], ours["page"]["pagination"]
    for key in real:
        assert shape(ours[key]) == shape(real[key]), key
