"""providers/nextgpu.py against tests/fakes/nextgpu.py, through the provider's public methods only:
one request per call (submit, find, poll, outputs, upload), the session WebSocket as ``push``."""
from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import json
import re
import tempfile
import types
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from comfyui_remote.engine.profiles import Profiles
from comfyui_remote.engine.rules import Create, create_outcome
from comfyui_remote.engine.transfer import Expired, Http, Response, RetryPolicy
from comfyui_remote.providers.base import (AmbiguousSubmit, AnswerLost, AuthError, CancelResult, ConfigError,
                                           NotFound, Override, ProtocolError, QuotaError, RateLimited, RejectedInput,
                                           RemoteError, RemoteFailure, RemoteRef, ServerError, State, SubmitSpec,
                                           TaskGone)
from comfyui_remote.providers.nextgpu import PROVIDER, NextGPU
from comfyui_remote.tests.fakes import nextgpu_apps as apps
from comfyui_remote.tests.fakes.nextgpu import FakeNextGPU
from comfyui_remote.tests.fakes.toolkit import png_bytes

from . import drive

CANARY_USER = "canary-user-5f3a9c"
CANARY_TOKEN = "canary-token-8d71e2b4"
T2I, ECHO, PAIR = apps.T2I_TITLE, apps.ECHO_TITLE, apps.PAIR_TITLE
LIMIT_S = 20


@pytest.fixture
async def fake():
    f = FakeNextGPU(users=(CANARY_USER,), token=CANARY_TOKEN, run_s=0.15, dispatch_s=0.01, local_queue_s=0.01,
                    foreign_run_s=0.03)
    await f.start()
    yield f
    await f.stop()


@pytest.fixture
async def make(tmp_path, fake):
    made: list[Http] = []

    def _make(*, user: str = CANARY_USER, token: Optional[str] = CANARY_TOKEN, store: bool = True,
              name: str = "ng", **extra: Any) -> NextGPU:
        lines = [f"[profiles.{name}]", 'provider = "nextgpu"', f'url = "{fake.url}"', "poll_interval_s = 0.05"]
        if user:
            lines.append(f'user = "{user}"')
        if token:
            lines.append(f'token = "{token}"')
        if store:
            lines.append(f'image_upload_url = "{fake.url}/_store"')
        lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
        home = tmp_path / f"home{len(made)}"
        home.mkdir()
        (home / "profiles.toml").write_text("\n".join(lines) + "\n")
        http = Http(provider="nextgpu", profile=name, policy=RetryPolicy(attempts=4, base_s=0.01, cap_s=0.05))
        made.append(http)
        return PROVIDER(Profiles(home).get(name), http)

    yield _make
    for h in made:
        await h.close()


def spec(title: str = T2I, **params: Any) -> SubmitSpec:
    kinds = {int: "int", float: "float"}
    return SubmitSpec(title, tuple(Override(k, kinds.get(type(v), "text"), v) for k, v in params.items()), profile="ng")


async def run(p: NextGPU, s: SubmitSpec, live: Optional[list] = None) -> tuple[RemoteRef, list]:
    ref = await drive.submit(p, s)
    updates = await drive.until_end(p, ref, timeout=LIMIT_S, live=live)
    assert all(not u.state.terminal for u in updates[:-1])
    return ref, updates


async def fetch(p: NextGPU, url: str, tmp_path: Path) -> bytes:
    got = await p.http.fetch_to(url, tmp_path / (hashlib.sha256(url.encode()).hexdigest()[:12] + ".part"))
    return got.path.read_bytes()


def pixels(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def no_canary(*texts: Any) -> None:
    for t in texts:
        s = t if isinstance(t, str) else json.dumps(t, default=str)
        assert CANARY_USER not in s and CANARY_TOKEN not in s, s


# --------------------------------------------------------------------------- success

async def test_success_with_queue_progress_and_result(fake, make, tmp_path):
    p = make()
    fake.next_task(ahead=3)
    key = p.new_submission_key()
    ref = await p.submit(spec(promptText="a red fox", imageRatio="16:9"), key)
    assert ref.remote_id == key and ref.data["connect"].startswith("ws://") and ref.data["count"] == 1
    live: list = []
    updates = await drive.until_end(p, ref, timeout=LIMIT_S, live=live)
    final = updates[-1]
    assert final.state is State.SUCCEEDED and final.progress == 1.0 and len(final.outputs) == 1
    out = final.outputs[0]
    assert (out.kind, out.mime, out.field, out.node) == ("image", "image/png", f"{key}_0001", "9")
    assert re.fullmatch(r"\d{20}\.png", out.filename)
    img = pixels(await fetch(p, out.url, tmp_path))
    assert img.size == (30, 16) and img.getpixel((3, 3)) == apps.solid_colour("a red fox")
    # polled: stage progress below 1 until the end, the deadline named as what it is
    assert all(0 <= u.progress < 1 for u in updates[:-1])
    running = [u for u in updates if u.state is State.RUNNING]
    assert running and "deadline" in running[0].message and "not an ETA" in running[0].message
    assert all(u.eta_s is None for u in updates + live)
    # pushed: the queue position (1 = next) moves between polls
    positions = [u.queue_position for u in live if u.queue_position is not None]
    assert positions and positions[0] >= 2 and positions == sorted(positions, reverse=True)
    assert any(u.state is State.RUNNING and u.queue_position is None for u in live)
    # the publish body, exactly as documented; the token to the API only
    body = (await fake.seen("publish"))[0].json()
    assert list(body) == ["userName", "title", "inputType", "inputImageScaledRatio", "imageCount", "imagePath",
                          "taskID", "data"]
    assert (body["inputType"], body["imageCount"], body["inputImageScaledRatio"], body["taskID"]) == ("text", 1, 8, key)
    assert re.fullmatch(r"\d{4}/\d{2}", body["imagePath"])
    assert body["data"] == {"parameters": {"promptText": "a red fox", "imageRatio": "16:9"}}
    for seen in fake.requests("publish") + fake.requests("getTask") + fake.requests("ws"):
        assert seen.headers.get("Authorization") == f"Bearer {CANARY_TOKEN}"
        assert CANARY_TOKEN not in seen.body.decode()
    assert fake.oss.log and all("Authorization" not in s.headers for s in fake.oss.log)
    assert all(CANARY_TOKEN not in s.path + json.dumps(s.query) for s in fake.log + fake.oss.log)
    assert fake.task_count() == 1 and fake.count("publish") == 1
    no_canary(ref.data, [u.message for u in updates + live])


async def test_image_count_gives_one_output_per_subtask(fake, make):
    p = make(image_count=3, image_scaled_ratio=4, image_path="2025/08")
    ref, updates = await run(p, spec(promptText="three"))
    final = updates[-1]
    assert final.state is State.SUCCEEDED and len({o.url for o in final.outputs}) == 3
    assert [o.field for o in final.outputs] == [f"{ref.remote_id}_{i:04d}" for i in (1, 2, 3)]
    assert all("/2025/08/" in o.url for o in final.outputs)
    assert any("of 3 images done" in (u.message or "") for u in updates[:-1])
    progress = [u.progress for u in updates]
    assert progress == sorted(progress) and progress[-1] == 1.0
    body = (await fake.seen("publish"))[0].json()
    assert (body["imageCount"], body["inputImageScaledRatio"], body["imagePath"]) == (3, 4, "2025/08")


async def test_two_files_in_one_subtask(fake, make, tmp_path):
    p = make()
    _, updates = await run(p, spec(PAIR, promptText="pair"))
    outs = updates[-1].outputs
    assert len(outs) == 2 and all(o.node is None for o in outs)  # two output nodes: files cannot be told apart
    rgb = apps.solid_colour("pair")
    assert {pixels(await fetch(p, o.url, tmp_path)).getpixel((0, 0)) for o in outs} == {rgb, apps.inverse(rgb)}


async def test_upload_round_trip(fake, make, tmp_path):
    p = make()
    data = png_bytes((10, 200, 30), (7, 5), alpha=128)
    url = await p.upload(data, "image/png", "ignored.png")
    put = (await fake.seen("store_put"))[0]
    assert put.path == f"/_store/{hashlib.sha256(data).hexdigest()}.png" and put.body == data
    assert "Authorization" not in put.headers and url == f"{fake.url}{put.path}"
    s = SubmitSpec(ECHO, (Override("imageName", "image", url, sha256=hashlib.sha256(data).hexdigest()),))
    _, updates = await run(p, s)
    final = updates[-1]
    assert final.state is State.SUCCEEDED and len(final.outputs) == 1  # the temp preview is not delivered
    assert final.outputs[0].node == "30" and await fetch(p, final.outputs[0].url, tmp_path) == data


async def test_upload_without_url_in_answer_uses_the_put_url(fake, make):
    fake.store_answers_url = False
    data = png_bytes((1, 2, 3))
    url = await make().upload(data, "image/png", "x.png")
    assert url == f"{fake.url}/_store/{hashlib.sha256(data).hexdigest()}.png"


async def test_image_input_without_store_says_what_to_set(fake, make):
    p = make(store=False)
    with pytest.raises(ConfigError) as e:
        await p.validate(SubmitSpec(ECHO, (Override("imageName", "image", b"png-bytes"),)))
    assert "NEXTGPU_IMAGE_UPLOAD_URL" in str(e.value) and "RemoteInputText" in str(e.value)
    with pytest.raises(ConfigError):
        await p.upload(b"png", "image/png", "x.png")
    await p.validate(spec(ECHO, imageName="https://example.com/a.png"))  # a public URL needs no store
    assert fake.task_count() == 0


async def test_no_cancel_and_client_chosen_ids(make):
    p = make()
    caps = NextGPU.capabilities
    assert (caps.cancel, caps.client_chosen_id, caps.findable, caps.addressing) == (False, True, True, "field")
    assert await p.cancel(RemoteRef("nextGPU1")) is CancelResult.UNSUPPORTED
    keys = {p.new_submission_key() for _ in range(200)}
    assert len(keys) == 200 and all(re.fullmatch(r"nextGPU\d{22}", k) for k in keys)


# --------------------------------------------------------------------------- refusals

async def test_wrong_token_is_an_auth_error_naming_where_it_comes_from(fake, make):
    p = make(token="wrong-token-value")
    with pytest.raises(AuthError) as e:
        await p.submit(spec(promptText="x"), p.new_submission_key())
    text = str(e.value)
    assert "'token' (or 'token_env') in [profiles.ng] of profiles.toml" in text and "'user'" in text
    assert "wrong-token-value" not in text and CANARY_USER not in text
    assert fake.task_count() == 0 and create_outcome(e.value) is Create.REFUSED
    with pytest.raises(AuthError):
        await p.check()


async def test_unknown_user_is_refused_naming_the_setting_not_the_name(fake, make):
    fake.token = None
    p = make(user="someone-else-77", token=None)
    with pytest.raises(RejectedInput) as e:
        await p.submit(spec(promptText="x"), p.new_submission_key())
    assert "'user'" in str(e.value) and "someone-else-77" not in str(e.value) and "taskPublish Failed" in str(e.value)
    assert fake.task_count() == 0 and fake.count("getTask") == 1  # a duplicate id would have been found


async def test_missing_user_is_a_config_error(tmp_path):
    p = PROVIDER(Profiles(tmp_path, env={}).get("nextgpu"), Http())
    for call in (p.validate(spec(promptText="x")), p.check()):
        with pytest.raises(ConfigError) as e:
            await call
        assert "NEXTGPU_USER" in str(e.value)


@pytest.mark.parametrize("target,value,needle", [("6.text", "x", "field name"), ("", "x", "empty"),
                                                 ("imageRatio", 169, "as text")])
async def test_bad_target_rejected_before_paying(fake, make, target, value, needle):
    with pytest.raises(RejectedInput) as e:
        await make().validate(SubmitSpec(T2I, (Override(target, "int" if isinstance(value, int) else "text", value),)))
    assert e.value.field == "target" and needle in str(e.value)
    assert fake.count("publish") == 0


async def test_graph_or_empty_workflow_is_rejected(make):
    p = make()
    with pytest.raises(RejectedInput) as e:
        await p.validate(SubmitSpec('{"3": {"class_type": "KSampler", "inputs": {}}}'))
    assert e.value.field == "workflow" and "title" in str(e.value) and "graph" in str(e.value)
    with pytest.raises(RejectedInput):
        await p.validate(SubmitSpec("   "))


async def test_unknown_ratio_is_noted_before_paying(make):
    pre = await make(image_count=2).validate(spec(promptText="x", imageRatio="2:1"))
    assert "'2:1' is not one of" in pre.message and "2 images" in pre.message and pre.workflow_label == T2I


async def test_unknown_title_is_rejected_after_one_look(fake, make):
    p = make()
    with pytest.raises(RejectedInput) as e:
        await p.submit(spec("No such app", promptText="x"), p.new_submission_key())
    assert "No such app" in str(e.value) and "taskPublish Failed" in str(e.value)
    assert fake.count("getTask") == 1 and fake.count("publish") == 1 and fake.task_count() == 0


@pytest.mark.parametrize("status,body,cls,outcome", [
    (400, {"codeId": 301, "msg": "publish BindJSON Failed err=[json: cannot unmarshal]"}, RejectedInput,
     Create.REFUSED),
    (200, {"codeId": 302, "msg": "parameter missing"}, RejectedInput, Create.REFUSED),
    (200, {"codeId": 304, "msg": "db down"}, ServerError, Create.AMBIGUOUS),
    (200, {"codeId": 305, "msg": "insufficient credits"}, QuotaError, Create.REFUSED),
    (401, {"codeId": 401, "msg": "unauthorized"}, AuthError, Create.REFUSED),
    (403, "forbidden", AuthError, Create.REFUSED),
    (404, "404 page not found", NotFound, Create.REFUSED),
    (429, "<html>429</html>", RateLimited, Create.WAIT),
    (500, "", ServerError, Create.AMBIGUOUS),
    (502, "<html>bad gateway</html>", ServerError, Create.AMBIGUOUS),
    (200, {"codeId": 999, "msg": "??"}, ProtocolError, Create.AMBIGUOUS),
])
async def test_publish_answers_mean_what_they_say_and_are_sent_once(fake, make, status, body, cls, outcome):
    p = make()
    fake.faults.add("publish", "status", status=status, body=body, retry_after=2 if status == 429 else None)
    with pytest.raises(cls) as e:
        await p.submit(spec(promptText="x"), p.new_submission_key())
    assert create_outcome(e.value) is outcome and (e.value.provider, e.value.profile) == ("nextgpu", "ng")
    if status == 429:
        assert e.value.retry_after == 2
    assert fake.count("publish") == 1 and fake.task_count() == 0
    no_canary(str(e.value))


async def test_malformed_publish_answer_is_ambiguous(fake, make):
    p = make()
    fake.faults.add("publish", "malformed")
    with pytest.raises(ProtocolError) as e:
        await p.submit(spec(promptText="x"), p.new_submission_key())
    assert create_outcome(e.value) is Create.AMBIGUOUS


async def test_balance_error_is_quota(fake, make):
    fake.balance_error = True
    p = make()
    with pytest.raises(QuotaError) as e:
        await p.submit(spec(promptText="x"), p.new_submission_key())
    assert "balance" in str(e.value)


@pytest.mark.parametrize("status,body,cls", [(200, {"codeId": 304, "msg": "db"}, ServerError),
                                             (401, {"codeId": 401, "msg": "unauthorized"}, AuthError),
                                             (404, "404 page not found", NotFound)])
async def test_get_task_errors_are_not_task_gone(fake, make, status, body, cls):
    p = make()
    ref = await p.submit(spec(promptText="x"), p.new_submission_key())
    fake.faults.add("getTask", "status", status=status, body=body)
    with pytest.raises(cls) as e:
        await p.poll(ref)
    assert not isinstance(e.value, TaskGone)  # a proxy's 404 or a database hiccup never ends a task
    assert (await drive.until_end(p, ref, timeout=LIMIT_S))[-1].state is State.SUCCEEDED


# --------------------------------------------------------------------------- lost answers: never a second task

async def test_lost_publish_answer_is_found_not_resent(fake, make):
    p = make()
    fake.faults.add("publish", "drop_after")
    s, key = spec(promptText="lost"), p.new_submission_key()
    with pytest.raises(AnswerLost) as e:
        await p.submit(s, key)
    assert create_outcome(e.value) is Create.AMBIGUOUS and fake.task_count() == 1
    ref = await p.find(key, s)
    assert ref is not None and ref.remote_id == key and ref.data["connect"].endswith(fake.tasks[key].session)
    live: list = []
    final = (await drive.until_end(p, ref, timeout=LIMIT_S, live=live))[-1]
    assert final.state is State.SUCCEEDED and len(final.outputs) == 1
    assert fake.task_count() == 1 and fake.count("publish") == 1


async def test_a_resend_after_it_landed_is_that_task(fake, make):
    p = make()
    fake.faults.add("publish", "drop_after")
    s, key = spec(promptText="twice"), p.new_submission_key()
    with pytest.raises(AnswerLost):
        await p.submit(s, key)
    ref = await p.submit(s, key)  # nextGPU refuses the duplicate taskID; getTask shows the first task
    assert ref.remote_id == key and fake.task_count() == 1
    assert (await drive.until_end(p, ref, timeout=LIMIT_S))[-1].state is State.SUCCEEDED


async def test_refusal_that_cannot_be_checked_is_ambiguous(fake, make):
    p = make()
    fake.faults.add("getTask", "status", status=502, times=4, body="<html>502</html>")
    with pytest.raises(AmbiguousSubmit) as e:
        await p.submit(spec("No such app"), p.new_submission_key())
    assert create_outcome(e.value) is Create.AMBIGUOUS


async def test_nothing_received_then_find_none_then_send(fake, make):
    p = make()
    fake.faults.add("publish", "status", status=503, body="<html>503</html>")
    s, key = spec(promptText="retry"), p.new_submission_key()
    with pytest.raises(ServerError):
        await p.submit(s, key)
    assert await p.find(key, s) is None
    assert (await p.submit(s, key)).remote_id == key and fake.task_count() == 1


async def test_unknown_task(fake, make):
    p = make()
    assert await p.find("nextGPU0000", spec()) is None
    with pytest.raises(TaskGone) as e:
        await p.poll(RemoteRef("nextGPU0000"))
    assert "nextGPU0000" in str(e.value)


# --------------------------------------------------------------------------- the push channel

async def test_ws_drop_mid_run_leaves_polling(fake, make):
    p = make()
    fake.next_task(ahead=2)
    fake.faults.add("ws", "ws_drop", after=2)
    live: list = []
    ref, updates = await run(p, spec(promptText="drop"), live=live)
    assert updates[-1].state is State.SUCCEEDED and len(live) <= 2
    assert p.push(ref) is None and fake.count("ws") == 1  # never re-joined: nextGPU deleted the session


async def test_task_finished_before_connect(fake, make):
    p = make()
    ref = await p.submit(spec(promptText="early"), p.new_submission_key())
    assert (await drive.until_end(p, ref, timeout=LIMIT_S))[-1].state is State.SUCCEEDED  # polled only
    stream = p.push(ref)
    assert [u async for u in stream] == []  # handshake 400 "Invalid path" is final
    assert p.push(ref) is None and (await p.poll(ref)).state is State.SUCCEEDED


async def test_push_reports_the_end_only_as_a_hint(fake, make):
    p = make()
    ref = await p.submit(spec(promptText="hint"), p.new_submission_key())
    seen = [u async for u in p.push(ref)]
    assert seen[-1].state is State.SUCCEEDED and seen[-1].outputs is None  # the poll brings the result
    assert all(u.state in (State.QUEUED, State.RUNNING) for u in seen[:-1])


async def test_token_goes_to_the_socket_only_on_the_api_host(tmp_path):
    f = FakeNextGPU(users=(CANARY_USER,), token=CANARY_TOKEN, run_s=0.05, dispatch_s=0.01, local_queue_s=0.01)
    async with f:
        f.ws_scheme_host = f"ws://localhost:{f.port}"  # the connect URL names another host than the API's
        home = tmp_path
        (home / "profiles.toml").write_text(f'[profiles.ng]\nprovider = "nextgpu"\nurl = "{f.url}"\n'
                                            f'user = "{CANARY_USER}"\ntoken = "{CANARY_TOKEN}"\n')
        http = Http(provider="nextgpu", profile="ng")
        p = PROVIDER(Profiles(home).get("ng"), http)
        try:
            ref = await p.submit(spec(promptText="other host"), p.new_submission_key())
            assert ref.data["connect"].startswith("ws://localhost:")
            assert [u async for u in p.push(ref)][-1].state is State.SUCCEEDED
        finally:
            await http.close()
        assert "Authorization" not in f.requests("ws")[0].headers


async def test_a_new_instance_follows_an_earlier_task(fake, make):
    p = make()
    fake.next_task(ahead=2)
    ref = await p.submit(spec(promptText="restart"), p.new_submission_key())
    final = (await drive.until_end(make(), RemoteRef(ref.remote_id, dict(ref.data)), timeout=LIMIT_S))[-1]
    assert final.state is State.SUCCEEDED and fake.task_count() == 1


async def test_hidden_subtasks_are_read_from_the_task_state(fake, make):
    p = make()
    fake.next_task(hide_subtasks=True, ahead=1)
    _, updates = await run(p, spec(promptText="hidden"))
    assert updates[-1].state is State.SUCCEEDED and len(updates[-1].outputs) == 1
    assert any("sub-tasks -" in (u.raw_state or "") for u in updates[:-1])  # getTask left it out meanwhile


# --------------------------------------------------------------------------- remote failures

async def test_node_error_is_retried_and_shown(fake, make):
    fake.next_task(fail_attempts=1, failure_reason="CUDA out of memory")
    _, updates = await run(make(), spec(promptText="retry"))
    assert updates[-1].state is State.SUCCEEDED
    assert any("attempt 2 of 3; last failure: CUDA out of memory" in (u.message or "") for u in updates)


@pytest.mark.parametrize("silent", [False, True])
async def test_final_failure_names_the_reason(fake, make, silent):
    fake.next_task(fail_attempts=3, failure_reason="KSampler: CUDA out of memory", silent_final_failure=silent)
    final = (await run(make(), spec(promptText="doomed")))[1][-1]
    assert final.state is State.FAILED and isinstance(final.error, RemoteFailure)
    assert "CUDA out of memory" in str(final.error) and "3 attempt" in str(final.error)
    no_canary(str(final.error))


async def test_comfy_error_without_reason(fake, make):
    fake.next_task(fail_attempts=3, failure_reason="")
    final = (await run(make(), spec(promptText="quiet")))[1][-1]
    assert final.state is State.FAILED and "gave no reason" in str(final.error)


async def test_deadline_overrun(fake, make):
    fake.next_task(estimate_ms=20)
    final = (await run(make(), spec(promptText="slow")))[1][-1]
    assert final.state is State.FAILED and "deadline" in str(final.error) and final.error.code == "estimateTimeout"


async def test_rejected_result_labelled_success_is_not_a_success(fake, make):
    fake.next_task(reject_results=1)
    ref, updates = await run(make(), spec(promptText="measured"))
    final = updates[-1]
    assert final.state is State.SUCCEEDED and len(final.outputs) == 1
    assert urlsplit(final.outputs[0].url).path == "/" + fake.tasks[ref.remote_id].subs[0].oss_keys[0]
    assert any("attempt 2 of 3" in (u.message or "") for u in updates)


async def test_partial_failure_keeps_the_paid_images(fake, make):
    fake.next_task(fail_subs=(2,), failure_reason="bad seed")
    ref, updates = await run(make(image_count=2), spec(promptText="half"))
    final = updates[-1]
    assert final.state is State.SUCCEEDED and [o.field for o in final.outputs] == [f"{ref.remote_id}_0001"]
    assert "1 of 2 images" in final.message and "image 2 failed" in final.message and "bad seed" in final.message


async def test_unreachable_input_url_fails_naming_it(fake, make):
    final = (await run(make(), spec(ECHO, imageName=f"{fake.url}/_store/missing.png")))[1][-1]
    assert final.state is State.FAILED and "input image download failed" in str(final.error)


# --------------------------------------------------------------------------- results

async def test_expired_links_are_replaced_by_a_fresh_getTask(fake, make, tmp_path):
    fake.oss.signed = True
    p = make()
    ref, updates = await run(p, spec(promptText="files"))
    old = updates[-1].outputs[0]
    assert set(parse_qs(urlsplit(old.url).query)) == {"Expires", "OSSAccessKeyId", "Signature"}
    fake.oss.expire_all()
    with pytest.raises(Expired):
        await p.http.fetch_to(old.url, tmp_path / "old.part")
    (fresh,) = await p.outputs(ref)
    assert fresh.url != old.url and (fresh.filename, fresh.field, fresh.node) == (old.filename, old.field, old.node)
    assert pixels(await fetch(p, fresh.url, tmp_path)).getpixel((0, 0)) == apps.solid_colour("files")


async def test_outputs_after_restart_come_from_getTask(fake, make):
    ref, updates = await run(make(image_count=2), spec(PAIR, promptText="later"))
    outs = await make(image_count=2).outputs(ref)
    assert sorted(o.url for o in outs) == sorted(o.url for o in updates[-1].outputs) and len(outs) == 4


async def test_check_asks_for_an_unknown_task(fake, make):
    assert "nextGPU answered" in await make().check()
    assert set((await fake.seen("getTask"))[0].json()) == {"taskID"} and fake.task_count() == 0


# --------------------------------------------------------------------------- secrets

async def test_user_name_and_token_never_in_messages(fake, make):
    p = make()
    texts: list[Any] = []
    for kind, kw in [("status", dict(status=401, body={"codeId": 401, "msg": "unauthorized"})),
                     ("status", dict(status=400, body={"codeId": 301, "msg": f"bad {CANARY_USER}"})),
                     ("drop_after", {})]:
        fake.faults.add("publish", kind, **kw)
        with pytest.raises(RemoteError) as e:
            await p.submit(spec(promptText="c"), p.new_submission_key())
        texts.append(str(e.value))
    fake.next_task(fail_attempts=3, failure_reason=f"node said {CANARY_TOKEN} for {CANARY_USER}")
    ref, updates = await run(p, spec(promptText="c"))
    texts += [json.dumps(ref.data), str(updates[-1].error)] + [u.message or "" for u in updates]
    no_canary(*texts)


async def test_a_short_user_name_is_masked_too(fake, make):
    fake.users.add("ab7")
    p = make(user="ab7")
    fake.faults.add("publish", "status", status=400, body={"codeId": 301, "msg": "user ab7 sent a bad field"})
    with pytest.raises(RejectedInput) as e:
        await p.submit(spec(promptText="c"), p.new_submission_key())
    assert "ab7" not in str(e.value) and "sent a bad field" in str(e.value)


# --------------------------------------------------------------------------- parsers under hostile answers

class _StubHttp:
    """One canned answer per request; a socket that plays canned text frames (public-interface fuzzing)."""

    provider, profile = "nextgpu", "ng"

    def __init__(self, body: bytes = b"", frames: tuple = ()):
        self.body, self.frames = body, frames

    async def request(self, method: str, url: str, **kw: Any) -> Response:
        return Response(200, {}, self.body, url, method)

    async def ws_connect(self, url: str, **kw: Any) -> Any:
        msgs = [types.SimpleNamespace(type=aiohttp.WSMsgType.TEXT, data=f) for f in self.frames]

        class _WS:
            def __aiter__(self):
                return self._gen()

            async def _gen(self):
                for m in msgs:
                    yield m

            async def close(self) -> None:
                pass
        return _WS()


@functools.lru_cache(maxsize=1)
def _stub_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="nextgpu-stub-"))
    (home / "profiles.toml").write_text('[profiles.ng]\nprovider = "nextgpu"\nurl = "http://127.0.0.1:9"\n'
                                        'user = "fuzz-user"\n')
    return home


def _stub(http: _StubHttp) -> NextGPU:
    return PROVIDER(Profiles(_stub_home()).get("ng"), http)  # type: ignore[arg-type]


_leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 25), st.text(max_size=8), st.floats(allow_nan=False))
_json = st.recursive(_leaf, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=6), c,
                                                                                          max_size=4)), max_leaves=10)
_url = st.sampled_from(["https://oss.example/a/1.png", "https://oss.example/b.webp\nhttps://oss.example/c.bin", "",
                        "ftp://x/y.png", "\n"])
_db_sub = st.fixed_dictionaries({"subID": st.sampled_from(["T_0001", "T_0002", "X_0001", 5]),
                                 "state": st.one_of(st.integers(-1, 6), _json), "urls": st.one_of(_url, _json),
                                 "retryCount": _json, "failureReason": _json, "estimateTime": _json,
                                 "output": st.one_of(_json, st.just('{"p": {"outputs": {"9": {"images": '
                                                                    '[{"type": "output"}]}}}}'))})
_task = st.fixed_dictionaries({"taskID": st.sampled_from(["T", "", "U"]), "state": st.one_of(st.integers(-1, 6), _json),
                               "subNum": _json, "subTasks": st.one_of(st.lists(_db_sub, max_size=3), _json)})
_answer = st.one_of(st.fixed_dictionaries({"codeId": st.sampled_from([200, 304, 999, "200"]), "msg": _json,
                                           "task": st.one_of(_task, _json)}), _json)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(_answer)
@example({"codeId": 200, "msg": "", "task": {"taskID": "T", "state": 2, "subNum": 2, "subTasks": [
    {"subID": "T_0001", "state": [3], "retryCount": {}, "failureReason": [1], "estimateTime": "x", "urls": 5,
     "output": "[]"}]}})
@example({"codeId": 200, "msg": "", "task": {"taskID": "T", "state": 3, "subNum": 1, "subTasks": [
    {"subID": "T_0001", "state": 3, "urls": "https://o.example/1.png\nftp://x", "output": '{"p": {"outputs": 5}}'}]}})
def test_poll_reads_any_answer_as_an_update_or_our_error(answer):
    p = _stub(_StubHttp(json.dumps(answer).encode()))
    try:
        u = asyncio.run(p.poll(RemoteRef("T", {"count": 2})))
    except (ProtocolError, TaskGone, ServerError):
        return
    assert u.state in (State.QUEUED, State.RUNNING, State.SUCCEEDED, State.FAILED)
    assert u.progress is None or 0.0 <= u.progress <= 1.0
    assert u.state is not State.FAILED or isinstance(u.error, RemoteFailure)
    assert all(o.url.startswith(("http://", "https://")) and o.field.startswith("T_") for o in u.outputs or [])


_ws_sub = st.fixed_dictionaries({"subID": st.sampled_from(["T_0001", "T_0002", "U_0001", 5, None]),
                                 "status": st.one_of(st.integers(-1, 7), _json), "spareWaitCount": _json,
                                 "initWaitCount": _json, "ossUrls": st.one_of(st.none(), st.lists(_json, max_size=2))})
_frame = st.one_of(st.fixed_dictionaries({"messageID": st.sampled_from([1, 2, "1"]),
                                          "taskID": st.sampled_from(["T", "U"]), "event": _json,
                                          "tasks": st.one_of(st.lists(_ws_sub, max_size=3), _json)}), _json)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_frame, max_size=6))
def test_push_reads_any_frames_without_crashing(frames):
    p = _stub(_StubHttp(frames=tuple(json.dumps(f) for f in frames) + ("{not json",)))
    ref = RemoteRef("T", {"connect": "ws://127.0.0.1:9/ws/user/1", "count": 2})

    async def read() -> list:
        return [u async for u in p.push(ref)]
    for u in asyncio.run(read()):
        assert u.state in (State.QUEUED, State.RUNNING, State.SUCCEEDED, State.FAILED) and u.outputs is None
        assert 0.0 <= u.progress <= 1.0 and (u.queue_position is None or u.queue_position >= 1)
    assert p.push(ref) is None  # the session ended with the socket


async def test_files_getTask_leaves_out_come_from_the_socket():
    snap = {"messageID": 1, "taskID": "T", "event": "ImageGenerateSuccess", "status": 4, "tasks": [
        {"subID": "T_0001", "status": 4, "ossUrls": ["https://oss.example/2025/08/1.png"]}]}
    http = _StubHttp(json.dumps({"codeId": 200, "msg": "success", "task": {
        "taskID": "T", "state": 3, "subNum": 1, "subTasks": None}}).encode(), frames=(json.dumps(snap),))
    p = _stub(http)
    ref = RemoteRef("T", {"connect": "ws://127.0.0.1:9/ws/user/1", "count": 1})
    assert (await p.poll(ref)).outputs is None  # completed, no file listed: the engine asks again
    assert [u.state async for u in p.push(ref)] == [State.SUCCEEDED]
    (out,) = (await p.poll(ref)).outputs
    assert (out.url, out.field) == ("https://oss.example/2025/08/1.png", "T_0001")
