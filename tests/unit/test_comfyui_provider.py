"""ComfyUIProvider (and SandboxProvider) against the fake ComfyUI, through public methods only.

The ``fake`` fixture plays both kinds of server: ``classic`` (0.3.64: ``/queue``, ``/history``,
``/interrupt``) and ``jobs`` (a newer server with ``/api/jobs`` and ``POST /api/jobs/{id}/cancel``)."""
from __future__ import annotations

import asyncio
import hashlib
import io
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfyui_remote.engine.profiles import Profiles
from comfyui_remote.engine.transfer import Http, RetryPolicy
from comfyui_remote.providers.base import (AnswerLost, AuthError, CancelResult, ConfigError, NotFound, Override,
                                           RateLimited, RejectedInput, RemoteFailure, RemoteRef, ServerError, State,
                                           SubmitSpec, TaskGone)
from comfyui_remote.providers.comfyui import ComfyUIProvider
from comfyui_remote.providers.sandbox import SandboxProvider
from comfyui_remote.tests.fakes.comfyui import FakeComfyUI
from comfyui_remote.tests.fakes.toolkit import Clock
from comfyui_remote.tests.unit import drive

WF = Path(__file__).resolve().parents[2] / "providers" / "sandbox_workflows"
CANARY = "canary-TOKEN-9f8e7d6c5b4a"


def wf(name: str, **changes) -> str:
    graph = json.loads((WF / name).read_text())
    for target, value in changes.items():
        node, field = target.split("__")
        graph[node]["inputs"][field] = value
    return json.dumps(graph)


def slow(steps=5, step_seconds=0.02) -> str:
    return wf("slow.json", **{"2__steps": steps, "2__step_seconds": step_seconds})


def png(rgb=(10, 200, 30), size=(16, 8), alpha=None) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA" if alpha is not None else "RGB", size, (*rgb, alpha) if alpha is not None else rgb).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(params=["classic", "jobs"])
async def fake(request):
    f = FakeComfyUI(clock=Clock(speed=1.0), jobs_api=request.param == "jobs")
    await f.start()
    yield f
    await f.stop()


def looks(fake) -> tuple[str, str]:
    """The fake's route names of (the shared queue snapshot, one prompt's record) on its kind of server."""
    return ("jobs", "job") if fake.jobs_api else ("queue", "history")


def probes(fake) -> list:
    """The jobs-API probes the fake saw (answered 404 by an old server's static route)."""
    return [s for s in fake.log if s.path == "/api/jobs" and s.query.get("limit") == "1"]


@pytest.fixture
async def make(tmp_path, fake):
    made: list = []

    async def _make(token=None, url=None, poll=0.05, target=None, extra: str = "") -> ComfyUIProvider:
        home = tmp_path / f"home{len(made)}"
        home.mkdir()
        lines = ["[profiles.remote]", 'provider = "comfyui"', f'url = "{url or (target or fake).url}"',
                 f"poll_interval_s = {poll}"]
        if token:
            lines.append(f'token = "{token}"')
        (home / "profiles.toml").write_text("\n".join(lines + [extra]) + "\n")
        profile = Profiles(home).get("remote")
        http = Http(provider="comfyui", profile="remote", policy=RetryPolicy(attempts=4, base_s=0.01, cap_s=0.05))
        p = ComfyUIProvider(profile, http)
        made.append((p, http))
        return p

    yield _make
    for p, http in made:
        await p.close()
        await http.close()


async def run(p, spec: SubmitSpec, *, validate=True):
    """Submit and poll until the service reports the end; the live (push) updates come first."""
    ref = await drive.submit(p, spec, validate=validate)
    live: list = []
    polled = await drive.until_end(p, ref, live=live)
    return ref, live + polled


async def until_state(p, ref, state: State, timeout: float = 10.0):
    async def loop():
        while True:
            upd = await p.poll(ref)
            if upd.state == state:
                return upd
            await asyncio.sleep(p.poll_interval())
    return await asyncio.wait_for(loop(), timeout)


async def fetch_pixels(p, http, out) -> np.ndarray:
    r = await http.request("GET", out.url, headers=p.download_headers(out))
    assert r.status == 200
    return np.asarray(Image.open(io.BytesIO(r.body)).convert("RGB"))


# --------------------------------------------------------------------------- happy paths

async def test_queue_progress_and_result(make, fake):
    p = await make()
    other = await fake.queue_foreign(steps=4, step_seconds=0.05)
    spec = SubmitSpec(slow(), (Override("1.text", "text", "#336699"), Override("2.steps", "int", 6)))
    ref = await drive.submit(p, spec)
    live: list = []
    updates = await drive.until_end(p, ref, live=live)
    assert ref.remote_id in fake.created and ref.console_url == fake.url
    queued = [u for u in updates if u.state == State.QUEUED]
    assert queued and queued[0].queue_position == 1 and queued[0].queue_length == 2, updates
    running = [u for u in live if u.state == State.RUNNING]  # the socket's updates, in order
    assert any(u.node == "SandboxSlowPass #2" and u.max_steps == 6 for u in running)
    assert [u.step for u in running if u.step] == sorted(u.step for u in running if u.step)
    progresses = [u.progress for u in running if u.progress is not None]
    assert progresses == sorted(progresses) and 0 < progresses[-1] < 1
    final = updates[-1]
    assert final.state == State.SUCCEEDED and final.progress == 1.0
    (out,) = final.outputs
    assert (out.kind, out.node, out.mime) == ("image", "9", "image/png") and out.filename.startswith("sandbox_slow_")
    px = await fetch_pixels(p, p.http, out)
    assert px.shape == (64, 64, 3) and tuple(px[0, 0]) == (0x33, 0x66, 0x99)
    assert await p.outputs(ref) == final.outputs
    assert fake.history[other]["status"]["status_str"] == "success"
    # the prompt was sent with our client id and our prompt id
    body = (await fake.seen("prompt"))[-1].json()
    assert body["prompt_id"] == ref.remote_id and body["client_id"] == ref.data["client_id"]


async def test_multi_outputs_and_temp_fallback(make, fake):
    p = await make()
    graph = {"1": {"class_type": "SandboxSolid", "inputs": {"text": "red", "width": 8, "height": 4}},
             "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
             "5": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "a"}},
             "6": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "sub/b"}},
             "7": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    _, updates = await run(p, SubmitSpec(json.dumps(graph)))
    outs = updates[-1].outputs
    # every file comes back; the temp preview is marked, and the engine's select takes it only when a
    # result has no other image (tests/unit/test_results_select.py)
    assert [(o.node, o.filename, o.preview) for o in outs[:2]] == [("5", "a_00001_.png", None),
                                                                   ("6", "b_00001_.png", None)]
    assert outs[2].node == "7" and outs[2].preview is True and "type=temp" in outs[2].url
    assert "subfolder=sub" in outs[1].url and "type=output" in outs[1].url
    assert tuple((await fetch_pixels(p, p.http, outs[1]))[0, 0]) == (0, 255, 255)
    preview_only = {"1": graph["1"], "2": graph["2"], "7": graph["7"]}
    _, updates = await run(p, SubmitSpec(json.dumps(preview_only)))
    (out,) = updates[-1].outputs
    assert "type=temp" in out.url and out.node == "7" and out.preview is True


async def test_upload_round_trip_and_dedupe(make, fake):
    p = await make()
    data = png((10, 200, 30), alpha=255)
    name = hashlib.sha256(data).hexdigest() + ".png"
    value = await p.upload(data, "image/png", name)
    assert value == name and fake.count("upload") == 1
    assert await p.upload(data, "image/png", name) == name
    assert fake.count("upload") == 1  # GET /view already had these bytes
    echo = json.dumps({"10": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},
                       "12": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "echo"}}})
    _, updates = await run(p, SubmitSpec(echo, (Override("10.image", "image", value, sha256=name[:-4]),)))
    px = await fetch_pixels(p, p.http, updates[-1].outputs[0])
    assert px.shape == (8, 16, 3) and (px == np.array([10, 200, 30], np.uint8)).all()
    _, updates = await run(p, SubmitSpec(wf("invert.json"), (Override("10.image", "image", value),)))
    px = await fetch_pixels(p, p.http, updates[-1].outputs[0])
    assert tuple(px[0, 0]) == (245, 54, 225)  # ComfyUI's 1 - v/255 truncated, as a real server gives


# --------------------------------------------------------------------------- cancel

async def test_cancel_running_interrupts_only_that_prompt(make, fake):
    p = await make()
    ref = await drive.submit(p, SubmitSpec(slow(steps=200, step_seconds=0.01)))
    await until_state(p, ref, State.RUNNING)
    assert await p.cancel(ref) == CancelResult.REQUESTED
    final = (await drive.until_end(p, ref))[-1]
    assert final.state == State.CANCELLED
    assert fake.interrupted == [ref.remote_id] and fake.history[ref.remote_id]["status"]["status_str"] == "error"
    if fake.jobs_api:  # one targeted request, no /queue edit, no /interrupt
        assert fake.cancel_requests == [ref.remote_id] and fake.count("queue_edit") == fake.count("interrupt") == 0
    else:
        assert fake.interrupt_requests == [ref.remote_id]


async def test_cancel_queued_deletes_without_interrupt_and_leaves_no_trace(make, fake):
    p = await make()
    other = await fake.queue_foreign(steps=100, step_seconds=0.02)
    ref = await drive.submit(p, SubmitSpec(slow()))
    await until_state(p, ref, State.QUEUED)
    assert await p.cancel(ref) == CancelResult.REQUESTED
    with pytest.raises(TaskGone):  # a deleted prompt has no history: the engine reads that as cancelled
        await drive.until_end(p, ref)
    assert fake.deleted == [ref.remote_id] and fake.interrupt_requests == [] and other in fake.running_ids()
    assert fake.interrupted == [] and fake.count("queue_edit") == (0 if fake.jobs_api else 1)


async def test_cancel_after_the_end_is_too_late(make, fake):
    p = await make()
    ref, updates = await run(p, SubmitSpec(slow()))
    assert updates[-1].state == State.SUCCEEDED
    assert await p.cancel(ref) == CancelResult.TOO_LATE
    assert fake.interrupt_requests == [] and fake.interrupted == []
    assert fake.cancel_requests == ([ref.remote_id] if fake.jobs_api else [])


# --------------------------------------------------------------------------- auth and secrets

async def test_token_is_sent_everywhere(tmp_path, make):
    fake = FakeComfyUI(token=CANARY)
    await fake.start()
    try:
        p = await make(token=CANARY, target=fake)
        assert "0.3.64" in await p.check()
        data = png()
        value = await p.upload(data, "image/png", hashlib.sha256(data).hexdigest() + ".png")
        ref, updates = await run(p, SubmitSpec(wf("invert.json"), (Override("10.image", "image", value),)))
        assert updates[-1].state == State.SUCCEEDED
        out = updates[-1].outputs[0]
        assert p.download_headers(out) == {"Authorization": f"Bearer {CANARY}"}
        await fetch_pixels(p, p.http, out)
        assert fake.count("ws") >= 1
        assert all(s.headers.get("Authorization") == f"Bearer {CANARY}" for s in fake.log)
        assert CANARY not in json.dumps(ref.data) and CANARY not in (ref.console_url or "")
        assert CANARY not in (await fake.seen("prompt"))[-1].body.decode()
    finally:
        await fake.stop()


@pytest.mark.parametrize("token", [None, "wrong-token-1234"])
async def test_auth_failure_says_what_to_set(make, token):
    fake = FakeComfyUI(token=CANARY)
    await fake.start()
    try:
        p = await make(token=token, target=fake)
        for call in (p.check(), p.validate(SubmitSpec(slow())), p.submit(SubmitSpec(slow()), p.new_submission_key())):
            with pytest.raises(AuthError) as e:
                await call
            text = str(e.value)
            assert "HTTP 401" in text and "token" in text and "[comfyui/remote]" in text
            assert CANARY not in text
        assert fake.created == []
    finally:
        await fake.stop()


async def test_missing_url_is_a_config_error(tmp_path):
    home = tmp_path / "h"
    home.mkdir()
    profile = Profiles(home, env={}).get("comfyui")
    http = Http(provider="comfyui", profile="comfyui")
    p = ComfyUIProvider(profile, http)
    with pytest.raises(ConfigError) as e:
        await p.check()
    assert "COMFYUI_REMOTE_URL" in str(e.value)
    await http.close()


# --------------------------------------------------------------------------- pre-flight and node_errors

@pytest.mark.parametrize("override, words", [
    (Override("2.stepz", "int", 3), ["target 2.stepz", "SandboxSlowPass #2 has no input 'stepz'",
                                     "its inputs are: image, steps, step_seconds"]),
    (Override("7.steps", "int", 3), ["target 7.steps", "no node '7'", "node ids in this workflow: 1, 2, 9"]),
    (Override("2.steps", "int", 0), ["target 2.steps", "smaller than the remote's min 1"]),
    (Override("2.steps", "text", "many"), ["SandboxSlowPass.steps takes a number"]),
    (Override("2.image", "int", 1), ["IMAGE socket"]),
    (Override("steps", "int", 1), ["is not NODE_ID.FIELD"]),
])
async def test_bad_targets_are_refused_before_submit(make, fake, override, words):
    p = await make()
    with pytest.raises(RejectedInput) as e:
        await p.validate(SubmitSpec(slow(), (override,)))
    text = str(e.value)
    assert all(w in text for w in words), text
    assert "[comfyui/remote]" in text and fake.created == []


async def test_unknown_node_types_and_ui_format(make, fake):
    p = await make()
    with pytest.raises(RejectedInput) as e:
        await p.validate(SubmitSpec(slow().replace("SandboxSlowPass", "KSamplerFancy")))
    assert "KSamplerFancy" in str(e.value) and "KSamplerFancy #2" in str(e.value) and "install" in str(e.value)
    with pytest.raises(RejectedInput) as e:
        await p.validate(SubmitSpec(json.dumps({"nodes": [], "links": []})))
    assert "UI format" in str(e.value) and "Export (API)" in str(e.value)


async def test_node_errors_become_rejected_input(make, fake):
    p = await make()
    with pytest.raises(RejectedInput) as e:
        await p.submit(SubmitSpec(slow(), (Override("2.steps", "int", 0),)), p.new_submission_key())
    err = e.value
    assert (err.remote_node, err.node_class, err.field) == ("2", "SandboxSlowPass", "2.steps")
    assert "Value 0 smaller than min of 1" in str(err)
    missing = json.dumps({"10": {"class_type": "LoadImage", "inputs": {"image": "nope.png"}},
                          "12": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "x"}}})
    with pytest.raises(RejectedInput) as e:
        await p.submit(SubmitSpec(missing), p.new_submission_key())
    assert "Invalid image file: nope.png" in str(e.value) and "RemoteInputImage" in str(e.value)
    many = {str(i): {"class_type": "EmptyImage", "inputs": {"width": 0, "height": 0, "batch_size": 1, "color": -1}}
            for i in range(1, 4)}
    many["9"] = {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}}
    many["10"] = {"class_type": "ImageBatch", "inputs": {"image1": ["9", 0], "image2": ["3", 0]}}
    many["11"] = {"class_type": "PreviewImage", "inputs": {"images": ["10", 0]}}
    with pytest.raises(RejectedInput) as e:
        await p.submit(SubmitSpec(json.dumps(many)), p.new_submission_key())
    assert "; and 4 more" in str(e.value) and str(e.value).count("EmptyImage #") == 5
    with pytest.raises(RejectedInput) as e:
        await p.submit(SubmitSpec(slow().replace("SandboxSlowPass", "Nope")), p.new_submission_key())
    assert "Nope does not exist" in str(e.value) and e.value.field == "workflow"
    no_out = json.dumps({"1": {"class_type": "SandboxSolid", "inputs": {"text": "red", "width": 8, "height": 8}}})
    with pytest.raises(RejectedInput) as e:
        await p.submit(SubmitSpec(no_out), p.new_submission_key())
    assert "no output node" in str(e.value) and "SaveImage" in str(e.value)
    assert fake.created == []


async def test_execution_error_names_the_remote_node(make, fake):
    p = await make()
    fail = json.dumps({"1": {"class_type": "SandboxSolid", "inputs": {"text": "red", "width": 8, "height": 8}},
                       "2": {"class_type": "SandboxFail", "inputs": {"image": ["1", 0], "message": "boom here"}},
                       "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}})
    ref, updates = await run(p, SubmitSpec(fail))
    final = updates[-1]
    assert final.state == State.FAILED and isinstance(final.error, RemoteFailure)
    assert (final.error.remote_node, final.error.node_class) == ("2", "SandboxFail")
    assert "RuntimeError: boom here" in str(final.error) and "[remote node 2 (SandboxFail)]" in str(final.error)
    # a fresh look (after a restart) reads the same failure from /history
    p2 = await make()
    again = await p2.poll(ref)
    assert again.state == State.FAILED and again.error.remote_node == "2"


# --------------------------------------------------------------------------- faults

async def test_a_5xx_on_submit_is_not_read_as_nothing_created(make, fake):
    p = await make()
    fake.faults.add("prompt", "status_after", status=524)  # created, then a gateway error page
    key = p.new_submission_key()
    with pytest.raises(ServerError):
        await p.submit(SubmitSpec(slow()), key)
    assert fake.count("prompt") == 1 and fake.created == [key]
    ref = await p.find(key, SubmitSpec(slow()))
    assert ref is not None and ref.remote_id == key


async def test_submit_answer_lost_is_found_not_resent(make, fake):
    p = await make()
    fake.faults.add("prompt", "drop_after")
    key = p.new_submission_key()
    with pytest.raises(AnswerLost):
        await p.submit(SubmitSpec(slow()), key)
    ref = await p.find(key, SubmitSpec(slow()))
    assert ref is not None and ref.remote_id == key and fake.created == [key]
    updates = await drive.until_end(p, ref)
    assert updates[-1].state == State.SUCCEEDED and fake.count("prompt") == 1


async def test_a_refused_submit_is_not_retried_by_the_provider(make, fake):
    p = await make()
    fake.faults.add("prompt", "status", status=429, retry_after=7)
    with pytest.raises(RateLimited) as e:
        await p.submit(SubmitSpec(slow()), p.new_submission_key())
    assert e.value.retry_after == 7 and fake.count("prompt") == 1 and fake.created == []


async def test_a_healthy_socket_spares_the_queue_and_many_tasks_share_one_look(make, fake):
    """Eight tasks at once, each polled every 0.05 s: the queue is read at most once per interval
    for all of them, and not at all while the socket reports their progress."""
    p = await make(poll=0.05)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    results = await asyncio.gather(*(run(p, SubmitSpec(slow(steps=6, step_seconds=0.02),
                                                       (Override("1.text", "text", f"#0000{i:02x}"),)))
                                     for i in range(8)))
    elapsed = loop.time() - t0
    assert all(u[-1].state == State.SUCCEEDED for _, u in results)
    intervals = elapsed / 0.05
    snapshot, record = looks(fake)
    assert fake.count(snapshot) - len(probes(fake)) <= intervals + 2, (fake.count(snapshot), intervals)
    assert fake.count(record) <= 8 * 3
    assert fake.count("ws") == 1 and len(probes(fake)) == 1


async def test_ws_drop_reconnects_and_history_is_the_safety_net(make, fake):
    p = await make(poll=0.05)
    fake.faults.add("ws", "ws_drop", after=8)
    ref, updates = await asyncio.wait_for(run(p, SubmitSpec(slow(steps=10, step_seconds=0.03))), 10)
    assert updates[-1].state == State.SUCCEEDED and fake.count("ws") >= 2
    assert fake.created == [ref.remote_id]


async def test_silent_ws_is_covered_by_polling(make, fake):
    p = await make(poll=0.05)
    fake.faults.add("ws", "ws_mute", after=1)
    ref, updates = await run(p, SubmitSpec(slow()))
    assert updates[-1].state == State.SUCCEEDED and updates[-1].outputs


async def test_refused_ws_still_completes(make, fake):
    p = await make(poll=0.05)
    fake.faults.add("ws", "status", status=502, times=-1)
    ref, updates = await run(p, SubmitSpec(slow()))
    assert updates[-1].state == State.SUCCEEDED


async def test_upload_5xx_is_retried(make, fake):
    p = await make()
    fake.faults.add("upload", "status", status=500)
    data = png()
    name = hashlib.sha256(data).hexdigest() + ".png"
    assert await p.upload(data, "image/png", name) == name and fake.count("upload") == 2


async def test_a_new_prompt_is_not_gone_from_an_older_snapshot(make, fake):
    """A queue snapshot taken before the submit was answered cannot say the prompt is gone."""
    fake.faults.add("ws", "ws_mute", after=1)  # no status frames: nothing else refreshes the snapshot
    p = await make(poll=30.0)  # a snapshot stays fresh for a whole interval
    first = await drive.submit(p, SubmitSpec(slow(steps=100, step_seconds=0.02)))
    assert (await p.poll(first)).state in (State.QUEUED, State.RUNNING)
    second = await drive.submit(p, SubmitSpec(slow(steps=2)))
    upd = await p.poll(second)
    assert upd.state == State.QUEUED and upd.queue_position == 1, upd


async def test_a_vanished_prompt_is_gone(make, fake):
    p = await make()
    ref = RemoteRef(remote_id=str(uuid.uuid4()), data={})
    with pytest.raises(TaskGone) as e:
        await p.poll(ref)
    assert "no longer knows prompt" in str(e.value)


async def test_watch_after_restart_and_reconnect_of_old_client_id(make, fake):
    p = await make()
    ref = await p.submit(SubmitSpec(slow(steps=30, step_seconds=0.02)), p.new_submission_key())
    await p.close()  # the process "restarts": its socket is gone
    p2 = await make()
    live: list = []
    updates = await drive.until_end(p2, ref, live=live)
    assert updates[-1].state == State.SUCCEEDED and updates[-1].outputs
    assert any(s.query.get("clientId") == ref.data["client_id"] for s in fake.requests("ws")[1:])
    # the node classes of a prompt queued by another process come from the server
    assert any(u.node == "SandboxSlowPass #2" for u in live + updates if u.state == State.RUNNING), live + updates


async def test_find_and_check(make, fake):
    p = await make()
    assert await p.find(str(uuid.uuid4()), SubmitSpec(slow())) is None
    ref, _ = await run(p, SubmitSpec(slow()))
    found = await p.find(ref.remote_id, SubmitSpec(slow()))
    assert found is not None and found.remote_id == ref.remote_id
    assert (await p.check()).startswith("ComfyUI 0.3.64 at http://127.0.0.1")


async def test_concurrent_tasks_share_one_socket(make, fake):
    p = await make()
    results = await asyncio.gather(*(run(p, SubmitSpec(slow(steps=3, step_seconds=0.01),
                                                       (Override("1.text", "text", c),)))
                                     for c in ("red", "green", "blue")))
    assert all(u[-1].state == State.SUCCEEDED for _, u in results)
    assert fake.count("ws") == 1 and len(fake.created) == 3


# --------------------------------------------------------------------------- old and new servers

async def test_each_kind_of_server_is_asked_its_own_way(make, fake):
    p = await make()
    await fake.queue_foreign(steps=3, step_seconds=0.05)
    ref, updates = await run(p, SubmitSpec(slow()))
    assert any(u.state == State.QUEUED and u.queue_position == 1 for u in updates), updates
    assert updates[-1].state == State.SUCCEEDED and await p.outputs(ref) == updates[-1].outputs
    assert (await p.find(ref.remote_id, SubmitSpec(slow()))).remote_id == ref.remote_id
    assert await p.cancel(ref) == CancelResult.TOO_LATE
    assert len(probes(fake)) == 1  # once per server, whatever it answered
    new, old = ("jobs", "job", "job_cancel"), ("queue", "history", "queue_edit")
    used, unused = (new, old) if fake.jobs_api else (old, new)
    assert all(fake.count(r) >= 1 for r in used) and all(fake.count(r) == 0 for r in unused), \
        [(s.method, s.path) for s in fake.log]


async def test_a_profile_can_keep_the_old_routes(make, fake):
    p = await make(extra='jobs_api = "off"')
    ref = await drive.submit(p, SubmitSpec(slow(steps=200, step_seconds=0.01)))
    await until_state(p, ref, State.RUNNING)
    assert await p.cancel(ref) == CancelResult.REQUESTED
    assert (await drive.until_end(p, ref))[-1].state == State.CANCELLED
    assert not [s for s in fake.log if s.path.startswith("/api/jobs")]
    assert fake.interrupt_requests == [ref.remote_id] and fake.cancel_requests == []


async def test_a_server_without_the_cancel_route_is_cancelled_the_old_way(make, fake):
    if not fake.jobs_api:
        pytest.skip("runs once, on its own fake")
    fake = FakeComfyUI(jobs_api="list")  # v0.6-v0.25: GET /api/jobs, no POST /api/jobs/{id}/cancel
    await fake.start()
    try:
        p = await make(target=fake)
        first = await drive.submit(p, SubmitSpec(slow(steps=200, step_seconds=0.01)))
        second = await drive.submit(p, SubmitSpec(slow(steps=3, step_seconds=0.01)))
        await until_state(p, first, State.RUNNING)
        assert await p.cancel(second) == CancelResult.REQUESTED
        assert await p.cancel(first) == CancelResult.REQUESTED
        assert (await drive.until_end(p, first))[-1].state == State.CANCELLED
        refused = [s for s in fake.requests("static") if s.method == "POST"]
        assert [s.path for s in refused] == [f"/api/jobs/{second.remote_id}/cancel"]  # 405 once, then remembered
        assert fake.deleted == [second.remote_id] and fake.interrupt_requests == [first.remote_id]
        assert fake.count("job") >= 1 and fake.count("job_cancel") == 0
    finally:
        await fake.stop()


async def test_a_failed_probe_is_asked_again(make, fake):
    route = "jobs" if fake.jobs_api else "static"
    fake.faults.add(route, "status", status=503, times=4)  # every attempt of the transport
    p = await make()
    ref = await drive.submit(p, SubmitSpec(slow()))
    with pytest.raises(ServerError):
        await p.poll(ref)
    assert (await drive.until_end(p, ref))[-1].state == State.SUCCEEDED
    assert len(probes(fake)) == 5


async def test_a_page_instead_of_a_job_list_means_an_old_server(make, fake):
    if not fake.jobs_api:
        pytest.skip("the classic server has no job list to replace")
    fake.faults.add("jobs", "status", status=200, body="<html><body>app</body></html>")  # a front end's fallback
    p = await make()
    ref, updates = await run(p, SubmitSpec(slow()))
    assert updates[-1].state == State.SUCCEEDED
    assert fake.count("history") >= 1 and fake.count("job") == 0 and len(probes(fake)) == 1


async def test_a_server_that_lost_the_jobs_api_is_probed_again(make, fake):
    if not fake.jobs_api:
        pytest.skip("the classic server has no jobs API to lose")
    p = await make()
    ref, _ = await run(p, SubmitSpec(slow()))
    fake.faults.add("job", "status", status=404, body="404: Not Found")  # a static route's page
    p2 = await make()
    with pytest.raises(NotFound):
        await p2.poll(ref)
    assert (await p2.poll(ref)).state == State.SUCCEEDED
    assert len(probes(fake)) == 3  # p, then p2 twice: once at first, once after the route went away


async def test_a_proxy_404_on_a_record_is_not_read_as_gone(make, fake):
    p = await make()
    ref, _ = await run(p, SubmitSpec(slow()))
    fake.faults.add(looks(fake)[1], "status", status=404, body={"error": "proxy says no"})
    p2 = await make()
    with pytest.raises(NotFound) as e:  # "status unavailable" for the engine, not the task's end
        await p2.poll(ref)
    assert not isinstance(e.value, TaskGone)
    assert (await p2.poll(ref)).state == State.SUCCEEDED


# --------------------------------------------------------------------------- sandbox

async def test_sandbox_starts_its_own_fake(tmp_path):
    profile = Profiles(tmp_path).get("sandbox")
    http = Http(provider="sandbox", profile="sandbox", policy=RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05))
    p = SandboxProvider(profile, http)
    try:
        assert p.label == "sandbox" and p.WORKFLOWS_DIR.joinpath("slow.json").is_file()
        assert "sandbox" in await p.check()
        solid = p.WORKFLOWS_DIR.joinpath("solid.json").read_text()  # the engine resolves file names
        spec = SubmitSpec(solid, (Override("1.text", "text", "#00ff00"), Override("1.width", "int", 32),
                                         Override("1.height", "int", 16)))
        ref, updates = await run(p, spec)
        assert ref.console_url is None and updates[-1].state == State.SUCCEEDED
        px = await fetch_pixels(p, http, updates[-1].outputs[0])
        assert px.shape == (16, 32, 3) and tuple(px[0, 0]) == (0, 255, 0)
        assert p.fake.url.startswith("http://127.0.0.1:")
    finally:
        await p.close()
        await http.close()
    assert p.fake is None


async def test_remote_previews_come_with_the_live_updates(make, fake):
    fake.preview_frames = True
    p = await make()
    ref = await drive.submit(p, SubmitSpec(slow(steps=6, step_seconds=0.03)))
    live: list = []
    await drive.until_end(p, ref, live=live)
    previews = [u.preview for u in live if u.preview is not None]
    assert previews and previews[0][0] == "image/png"
    img = Image.open(io.BytesIO(previews[-1][1]))
    assert img.size == (64, 64)
