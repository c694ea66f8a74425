"""providers/nextgpu.py against tests/fakes/nextgpu.py, through the provider's public methods only."""
from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from comfyui_remote.engine.profiles import Profiles
from comfyui_remote.engine.transfer import Http, RetryPolicy
from comfyui_remote.providers.base import (AmbiguousSubmit, AuthError, ConfigError, NotFound, NotSupported, Override,
                                           ProtocolError, QuotaError, RejectedInput, RemoteError, RemoteFailure,
                                           RemoteRef, State, SubmitSpec, TransientError)
from comfyui_remote.providers.nextgpu import PROVIDER, NextGPU, _Tracker
from comfyui_remote.tests.fakes import nextgpu_apps as apps
from comfyui_remote.tests.fakes.nextgpu import FakeNextGPU
from comfyui_remote.tests.fakes.toolkit import png_bytes

CANARY_USER = "canary-user-5f3a9c"
CANARY_TOKEN = "canary-token-8d71e2b4"
T2I, ECHO, PAIR = apps.T2I_TITLE, apps.ECHO_TITLE, apps.PAIR_TITLE
WATCH_LIMIT_S = 20


@pytest.fixture
async def fake():
    f = FakeNextGPU(users=(CANARY_USER,), token=CANARY_TOKEN, run_s=0.12, dispatch_s=0.01, local_queue_s=0.01,
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
        for k, v in extra.items():
            lines.append(f"{k} = {json.dumps(v)}")
        (tmp_path / "profiles.toml").write_text("\n".join(lines) + "\n")
        profile = Profiles(tmp_path).get(name)
        http = Http(provider="nextgpu", profile=name, policy=RetryPolicy(attempts=4, base_s=0.01, cap_s=0.05))
        made.append(http)
        return PROVIDER(profile, http)

    yield _make
    for h in made:
        await h.close()


def spec(title: str = T2I, **params: Any) -> SubmitSpec:
    overrides = []
    for k, v in params.items():
        kind = "int" if isinstance(v, int) and not isinstance(v, bool) else ("float" if isinstance(v, float) else "text")
        overrides.append(Override(k, kind, v))
    return SubmitSpec(title, tuple(overrides), profile="ng")


async def collect(p: NextGPU, ref: RemoteRef) -> list:
    updates = []

    async def _run() -> None:
        async for u in p.watch(ref):
            updates.append(u)

    await asyncio.wait_for(_run(), WATCH_LIMIT_S)
    assert updates and updates[-1].state.terminal, "watch must end with a terminal update"
    assert all(not u.state.terminal for u in updates[:-1])
    return updates


async def run(p: NextGPU, s: SubmitSpec) -> tuple[RemoteRef, list]:
    await p.validate(s)
    ref = await p.submit(s, p.new_submission_key())
    return ref, await collect(p, ref)


async def fetch_png(p: NextGPU, url: str, tmp_path: Path) -> Image.Image:
    dl = await p.http.download(url, tmp_path / hashlib.sha256(url.encode()).hexdigest()[:12])
    return Image.open(io.BytesIO(dl.path.read_bytes()))


def no_canary(*texts: Any) -> None:
    for t in texts:
        s = t if isinstance(t, str) else json.dumps(t, default=str)
        assert CANARY_USER not in s and CANARY_TOKEN not in s, s


# --------------------------------------------------------------------------- success paths

async def test_success_with_queue_and_progress_updates(fake, make, tmp_path):
    p = make()
    fake.next_task(ahead=2)
    s = spec(promptText="a red fox", imageRatio="16:9")
    key = p.new_submission_key()
    ref = await p.submit(s, key)
    assert ref.remote_id == key and ref.data["connect"].startswith("ws://") and ref.data["count"] == 1
    updates = await collect(p, ref)
    queued = [u for u in updates if u.state is State.QUEUED]
    assert any(u.queue_position and u.queue_position > 0 for u in queued)
    assert any(u.queue_length for u in queued)
    running = [u for u in updates if u.state is State.RUNNING]
    assert running and "deadline" in running[0].message and "not an ETA" in running[0].message
    assert running[0].progress == 0.1 and all(0 <= u.progress < 1 for u in updates[:-1])
    assert all(u.eta_s is None for u in updates)
    final = updates[-1]
    assert final.state is State.SUCCEEDED and final.progress == 1.0 and len(final.outputs) == 1
    out = final.outputs[0]
    assert out.kind == "image" and out.mime == "image/png" and out.field == f"{key}_0001"
    img = await fetch_png(p, out.url, tmp_path)
    assert img.size == (30, 16) and img.getpixel((3, 3)) == apps.solid_colour("a red fox")
    # the publish body, exactly as documented
    body = (await fake.seen("publish"))[0].json()
    assert list(body) == ["userName", "title", "inputType", "inputImageScaledRatio", "imageCount", "imagePath",
                          "taskID", "data"]
    assert body["inputType"] == "text" and body["imageCount"] == 1 and body["inputImageScaledRatio"] == 8
    assert re.fullmatch(r"\d{4}/\d{2}", body["imagePath"]) and body["taskID"] == key
    assert body["data"] == {"parameters": {"promptText": "a red fox", "imageRatio": "16:9"}}
    # the token goes to the API only; never into a body, a URL or the file host
    for seen in fake.requests("publish") + fake.requests("getTask"):
        assert seen.headers.get("Authorization") == f"Bearer {CANARY_TOKEN}"
        assert CANARY_TOKEN not in seen.body.decode()
    assert fake.oss.log and all("Authorization" not in s.headers for s in fake.oss.log)
    assert all(CANARY_TOKEN not in s.path + json.dumps(s.query) for s in fake.log + fake.oss.log)
    assert fake.task_count() == 1
    no_canary(ref.data, [u.message for u in updates])


async def test_image_count_gives_one_output_per_subtask(fake, make):
    p = make(image_count=3, image_scaled_ratio=4, image_path="2025/08")
    ref, updates = await run(p, spec(promptText="three"))
    final = updates[-1]
    assert final.state is State.SUCCEEDED and len(final.outputs) == 3
    assert len({o.url for o in final.outputs}) == 3
    assert [o.field for o in final.outputs] == [f"{ref.remote_id}_{i:04d}" for i in (1, 2, 3)]
    assert all("/2025/08/" in o.url for o in final.outputs)
    assert any("of 3 images done" in (u.message or "") for u in updates)
    progresses = [u.progress for u in updates]
    assert progresses == sorted(progresses) and progresses[-1] == 1.0
    assert any(1 / 3 <= p < 2 / 3 for p in progresses) and any(2 / 3 <= p < 1 for p in progresses)
    body = (await fake.seen("publish"))[0].json()
    assert body["imageCount"] == 3 and body["inputImageScaledRatio"] == 4 and body["imagePath"] == "2025/08"


async def test_two_files_in_one_subtask(fake, make, tmp_path):
    p = make()
    _, updates = await run(p, spec(PAIR, promptText="pair"))
    outs = updates[-1].outputs
    assert len(outs) == 2
    colours = {(await fetch_png(p, o.url, tmp_path)).getpixel((0, 0)) for o in outs}
    rgb = apps.solid_colour("pair")
    assert colours == {rgb, apps.inverse(rgb)}


async def test_upload_round_trip(fake, make, tmp_path):
    p = make()
    data = png_bytes((10, 200, 30), (7, 5), alpha=128)
    url = await p.upload(data, "image/png", hashlib.sha256(data).hexdigest() + ".png")
    put = (await fake.seen("store_put"))[0]
    assert put.path == f"/_store/{hashlib.sha256(data).hexdigest()}.png" and put.body == data
    assert "Authorization" not in put.headers
    assert url == f"{fake.url}{put.path}"
    s = SubmitSpec(ECHO, (Override("imageName", "image", url, sha256=hashlib.sha256(data).hexdigest()),))
    ref = await p.submit(s, p.new_submission_key())
    final = (await collect(p, ref))[-1]
    assert final.state is State.SUCCEEDED and len(final.outputs) == 1  # the temp preview is not delivered
    dl = await p.http.download(final.outputs[0].url, tmp_path / "echo.png")
    assert dl.path.read_bytes() == data


async def test_upload_without_url_in_answer_uses_put_url(fake, make):
    fake.store_answers_url = False
    p = make()
    data = png_bytes((1, 2, 3))
    url = await p.upload(data, "image/png", "x.png")
    assert url == f"{fake.url}/_store/{hashlib.sha256(data).hexdigest()}.png"


async def test_image_input_without_store_says_what_to_set(fake, make):
    p = make(store=False)
    s = SubmitSpec(ECHO, (Override("imageName", "image", b"png-bytes"),))
    with pytest.raises(ConfigError) as e:
        await p.validate(s)
    assert "NEXTGPU_IMAGE_UPLOAD_URL" in str(e.value) and "RemoteInputText" in str(e.value)
    with pytest.raises(ConfigError):
        await p.upload(b"png", "image/png", "x.png")
    # a public URL through a text input needs no store
    await p.validate(spec(ECHO, imageName="https://example.com/a.png"))
    assert fake.task_count() == 0


async def test_no_cancel(fake, make):
    p = make()
    assert NextGPU.capabilities.cancel is False and NextGPU.capabilities.client_chosen_id is True
    assert NextGPU.capabilities.addressing == "field" and NextGPU.capabilities.findable is True
    with pytest.raises(NotSupported) as e:
        await p.cancel(RemoteRef("nextGPU1"))
    assert "may still run" in str(e.value)


def test_submission_key_format():
    keys = {NextGPU.new_submission_key(None) for _ in range(200)}  # type: ignore[arg-type]
    assert len(keys) == 200
    assert all(re.fullmatch(r"nextGPU\d{22}", k) for k in keys)


# --------------------------------------------------------------------------- refusals

async def test_wrong_token_is_an_auth_error(fake, make):
    p = make(token="wrong-token-value")
    with pytest.raises(AuthError) as e:
        await p.submit(spec(promptText="x"), p.new_submission_key())
    assert "NEXTGPU_TOKEN" in str(e.value) and "wrong-token-value" not in str(e.value)
    assert fake.task_count() == 0
    with pytest.raises(AuthError):
        await p.check()


async def test_unknown_user_is_refused_by_name_of_setting(fake, make):
    fake.token = None
    p = make(user="someone-else-77", token=None)
    with pytest.raises(RejectedInput) as e:
        await p.submit(spec(promptText="x"), p.new_submission_key())
    assert "NEXTGPU_USER" in str(e.value) and "someone-else-77" not in str(e.value)
    assert fake.task_count() == 0


async def test_missing_user_is_a_config_error(tmp_path):
    p = PROVIDER(Profiles(tmp_path, env={}).get("nextgpu"), Http())
    for call in (p.validate(spec(promptText="x")), p.check()):
        with pytest.raises(ConfigError) as e:
            await call
        assert "NEXTGPU_USER" in str(e.value)


@pytest.mark.parametrize("target,value,needle", [
    ("6.text", "x", "field name"),
    ("", "x", "empty"),
    ("imageRatio", 169, "as text"),
])
async def test_bad_target_rejected_before_paying(fake, make, target, value, needle):
    p = make()
    kind = "int" if isinstance(value, int) else "text"
    s = SubmitSpec(T2I, (Override(target, kind, value),))
    with pytest.raises(RejectedInput) as e:
        await p.validate(s)
    assert e.value.field == "target" and needle in str(e.value)
    assert fake.task_count() == 0 and fake.count("publish") == 0


async def test_graph_as_workflow_is_rejected(make):
    p = make()
    with pytest.raises(RejectedInput) as e:
        await p.validate(SubmitSpec('{"3": {"class_type": "KSampler", "inputs": {}}}'))
    assert e.value.field == "workflow" and "title" in str(e.value)
    with pytest.raises(RejectedInput):
        await p.validate(SubmitSpec("   "))


async def test_unknown_title_is_rejected_after_checking_getTask(fake, make):
    p = make()
    with pytest.raises(RejectedInput) as e:
        await p.submit(spec("No such app", promptText="x"), p.new_submission_key())
    assert "No such app" in str(e.value) and "taskPublish Failed" in str(e.value)
    assert fake.count("getTask") == 1 and fake.task_count() == 0


@pytest.mark.parametrize("status,body,cls", [
    (400, {"codeId": 301, "msg": "publish BindJSON Failed err=[json: cannot unmarshal]"}, RejectedInput),
    (200, {"codeId": 302, "msg": "parameter missing"}, RejectedInput),
    (200, {"codeId": 304, "msg": "db down"}, AmbiguousSubmit),
    (200, {"codeId": 305, "msg": "insufficient credits"}, QuotaError),
    (401, {"codeId": 401, "msg": "unauthorized"}, AuthError),
    (403, "forbidden", AuthError),
    (404, "404 page not found", ConfigError),
    (500, "", AmbiguousSubmit),
    (502, "<html>bad gateway</html>", AmbiguousSubmit),
    (200, {"codeId": 999, "msg": "??"}, ProtocolError),
])
async def test_publish_error_mapping(fake, make, status, body, cls):
    p = make()
    fake.faults.add("publish", "status", status=status, body=body)
    with pytest.raises(cls) as e:
        await p.submit(spec(promptText="x"), p.new_submission_key())
    assert e.value.provider == "nextgpu" and e.value.profile == "ng"
    no_canary(str(e.value))
    assert fake.task_count() == 0


async def test_balance_error_is_quota(fake, make):
    fake.balance_error = True
    p = make()
    with pytest.raises(QuotaError) as e:
        await p.submit(spec(promptText="x"), p.new_submission_key())
    assert "balance" in str(e.value)


async def test_malformed_publish_answer_is_protocol_error(fake, make):
    p = make()
    fake.faults.add("publish", "malformed")
    with pytest.raises(ProtocolError):
        await p.submit(spec(promptText="x"), p.new_submission_key())


@pytest.mark.parametrize("status,body,cls", [
    (200, {"codeId": 304, "msg": "db"}, TransientError),
    (401, {"codeId": 401, "msg": "unauthorized"}, AuthError),
    (404, "404 page not found", ConfigError),
])
async def test_get_task_error_mapping(fake, make, status, body, cls):
    p = make()
    fake.faults.add("getTask", "status", status=status, body=body)
    with pytest.raises(cls):
        await p.check()


# --------------------------------------------------------------------------- lost answers, no double pay

async def test_lost_publish_answer_is_found_not_resent(fake, make):
    p = make()
    fake.faults.add("publish", "drop_after")
    s = spec(promptText="lost")
    key = p.new_submission_key()
    with pytest.raises(AmbiguousSubmit):
        await p.submit(s, key)
    assert fake.task_count() == 1
    ref = await p.find(key, s)
    assert ref is not None and ref.remote_id == key
    final = (await collect(p, ref))[-1]
    assert final.state is State.SUCCEEDED and len(final.outputs) == 1
    assert fake.task_count() == 1 and fake.count("publish") == 1


async def test_resubmit_same_key_after_it_landed_returns_that_task(fake, make):
    p = make()
    fake.faults.add("publish", "drop_after")
    s = spec(promptText="twice")
    key = p.new_submission_key()
    with pytest.raises(AmbiguousSubmit):
        await p.submit(s, key)
    ref = await p.submit(s, key)  # the duplicate taskID is refused; getTask shows the first one
    assert ref.remote_id == key and fake.task_count() == 1
    assert (await collect(p, ref))[-1].state is State.SUCCEEDED


async def test_5xx_before_anything_then_find_none_then_resubmit(fake, make):
    p = make()
    fake.faults.add("publish", "status", status=503, body="<html>503</html>")
    s = spec(promptText="retry")
    key = p.new_submission_key()
    with pytest.raises(AmbiguousSubmit):
        await p.submit(s, key)
    assert await p.find(key, s) is None
    ref = await p.submit(s, key)
    assert ref.remote_id == key and fake.task_count() == 1


async def test_429_is_retried_without_a_second_task(fake, make):
    p = make()
    fake.faults.add("publish", "status", status=429, retry_after=0, body="busy")
    ref = await p.submit(spec(promptText="x"), p.new_submission_key())
    assert fake.count("publish") == 2 and fake.task_count() == 1
    assert (await collect(p, ref))[-1].state is State.SUCCEEDED


async def test_unknown_task_is_not_found(fake, make):
    p = make()
    assert await p.find("nextGPU0000", spec()) is None
    with pytest.raises(NotFound) as e:
        await collect(p, RemoteRef("nextGPU0000"))
    assert "safe to submit again" in str(e.value)


# --------------------------------------------------------------------------- push channel faults

async def test_ws_drop_mid_run_falls_back_to_polling(fake, make):
    p = make()
    fake.next_task(ahead=1)
    fake.faults.add("ws", "ws_drop", after=2)
    ref, updates = await run(p, spec(promptText="drop"))
    assert updates[-1].state is State.SUCCEEDED and len(updates[-1].outputs) == 1
    assert fake.count("ws") == 1  # never re-joined: the session is gone
    assert fake.count("getTask") >= 1 and fake.task_count() == 1


async def test_task_finished_before_connect(fake, make):
    p = make()
    s = spec(promptText="early")
    ref = await p.submit(s, p.new_submission_key())
    while fake.tasks[ref.remote_id].state != 3:
        await asyncio.sleep(0.02)
    final = (await collect(p, ref))[-1]
    assert final.state is State.SUCCEEDED and len(final.outputs) == 1
    assert fake.count("ws") == 1 and fake.count("getTask") >= 1


async def test_poll_faults_after_drop_are_survived(fake, make):
    p = make()
    fake.faults.add("ws", "ws_drop", after=1)
    fake.faults.add("getTask", "status", status=502, times=2, body="<html>502</html>")
    fake.faults.add("getTask", "malformed")
    fake.db_error = 1
    ref, updates = await run(p, spec(promptText="faults"))
    assert updates[-1].state is State.SUCCEEDED and fake.task_count() == 1


async def test_watch_started_again_after_a_restart(fake, make):
    p = make()
    fake.next_task(ahead=2)
    ref = await p.submit(spec(promptText="restart"), p.new_submission_key())
    gen = p.watch(ref)
    first = await asyncio.wait_for(gen.__anext__(), WATCH_LIMIT_S)
    assert first.state is State.QUEUED
    await gen.aclose()  # the engine went away: the socket closed, nextGPU forgot the session
    p2 = make()
    final = (await collect(p2, RemoteRef(ref.remote_id, dict(ref.data))))[-1]
    assert final.state is State.SUCCEEDED and fake.task_count() == 1


async def test_hidden_subtasks_are_not_yet_failed(fake, make):
    p = make(image_count=2)
    fake.next_task(hide_subtasks=True, ahead=1)
    fake.faults.add("ws", "ws_drop", after=1)
    ref, updates = await run(p, spec(promptText="hidden"))
    assert updates[-1].state is State.SUCCEEDED and len(updates[-1].outputs) == 2


async def test_foreign_broadcasts_do_not_repeat_updates(fake, make):
    p = make()
    fake.next_task(ahead=4)
    _, updates = await run(p, spec(promptText="busy"))
    keys = [(u.state, u.queue_position, u.queue_length, u.progress, u.message) for u in updates]
    assert all(a != b for a, b in zip(keys, keys[1:]))
    positions = [u.queue_position for u in updates if u.queue_position is not None]
    assert positions[0] >= 4 and positions == sorted(positions, reverse=True)


# --------------------------------------------------------------------------- remote failures

async def test_node_error_is_retried_and_shown(fake, make):
    p = make()
    fake.next_task(fail_attempts=1, failure_reason="CUDA out of memory")
    _, updates = await run(p, spec(promptText="retry"))
    assert updates[-1].state is State.SUCCEEDED
    msgs = " | ".join(u.message or "" for u in updates)
    assert "retrying on another GPU node (attempt 2 of 3" in msgs
    assert "attempt 2 of 3" in msgs


@pytest.mark.parametrize("silent", [False, True])
async def test_final_failure_names_the_reason(fake, make, silent):
    p = make()
    fake.next_task(fail_attempts=3, failure_reason="KSampler: CUDA out of memory", silent_final_failure=silent)
    _, updates = await run(p, spec(promptText="doomed"))
    final = updates[-1]
    assert final.state is State.FAILED and isinstance(final.error, RemoteFailure)
    assert "CUDA out of memory" in str(final.error) and "3 attempt" in str(final.error)
    no_canary(str(final.error))
    assert fake.task_count() == 1


async def test_comfy_error_without_reason(fake, make):
    p = make()
    fake.next_task(fail_attempts=3, failure_reason="")
    final = (await run(p, spec(promptText="quiet")))[1][-1]
    assert final.state is State.FAILED and "gave no reason" in str(final.error)


async def test_deadline_overrun(fake, make):
    p = make()
    fake.next_task(estimate_ms=20)
    final = (await run(p, spec(promptText="slow")))[1][-1]
    assert final.state is State.FAILED and "deadline" in str(final.error)
    assert final.error.code == "estimateTimeout"


async def test_rejected_result_labelled_success_is_not_a_success(fake, make):
    p = make()
    fake.next_task(reject_results=1)
    ref, updates = await run(p, spec(promptText="measured"))
    final = updates[-1]
    assert final.state is State.SUCCEEDED and len(final.outputs) == 1
    good = fake.tasks[ref.remote_id].subs[0].oss_urls
    assert [o.url for o in final.outputs] == good
    assert any("attempt 2 of 3" in (u.message or "") for u in updates)


async def test_partial_failure_keeps_the_paid_images(fake, make):
    p = make(image_count=2)
    fake.next_task(fail_subs=(2,), failure_reason="bad seed")
    ref, updates = await run(p, spec(promptText="half"))
    final = updates[-1]
    assert final.state is State.SUCCEEDED and len(final.outputs) == 1
    assert final.outputs[0].field == f"{ref.remote_id}_0001"
    assert "1 of 2 sub-tasks failed: bad seed" in final.message


async def test_unreachable_input_url_fails_naming_it(fake, make):
    p = make()
    final = (await run(p, spec(ECHO, imageName=f"{fake.url}/_store/missing.png")))[1][-1]
    assert final.state is State.FAILED and "input image download failed" in str(final.error)


# --------------------------------------------------------------------------- results and outputs()

async def test_download_truncated_then_expired(fake, make, tmp_path):
    p = make()
    ref, updates = await run(p, spec(promptText="files"))
    url = updates[-1].outputs[0].url
    fake.oss.faults.add("file", "truncate")
    img = await fetch_png(p, url, tmp_path)
    assert img.getpixel((0, 0)) == apps.solid_colour("files")
    fake.expire_files = True
    with pytest.raises(NotFound):
        await p.http.download(url, tmp_path / "gone.png")


async def test_outputs_after_restart_come_from_getTask(fake, make):
    p = make(image_count=2)
    ref, updates = await run(p, spec(PAIR, promptText="later"))
    p2 = make(image_count=2)
    outs = await p2.outputs(ref)
    assert sorted(o.url for o in outs) == sorted(o.url for o in updates[-1].outputs) and len(outs) == 4


async def test_check_passes_on_not_found(fake, make):
    p = make()
    msg = await p.check()
    assert "nextGPU answered" in msg
    body = (await fake.seen("getTask"))[0].json()
    assert set(body) == {"taskID"} and fake.task_count() == 0


# --------------------------------------------------------------------------- secrets

async def test_canary_never_leaks(fake, make):
    p = make()
    texts: list[Any] = []
    for fault in [("publish", "status", dict(status=401, body={"codeId": 401, "msg": "unauthorized"})),
                  ("publish", "status", dict(status=400, body={"codeId": 301, "msg": f"bad {CANARY_USER}"})),
                  ("publish", "drop_after", {})]:
        fake.faults.add(fault[0], fault[1], **fault[2])
        with pytest.raises(RemoteError) as e:
            await p.submit(spec(promptText="c"), p.new_submission_key())
        texts.append(str(e.value))
    # the service echoed the user name in its msg: the redaction point masks it
    assert CANARY_USER not in texts[1]
    fake.next_task(fail_attempts=3, failure_reason=f"node said {CANARY_TOKEN}")
    ref, updates = await run(p, spec(promptText="c"))
    texts += [json.dumps(ref.data), str(updates[-1].error)] + [u.message or "" for u in updates]
    no_canary(*texts)


# --------------------------------------------------------------------------- parsers under hostile input

_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.text(max_size=8))
_json = st.recursive(_json_leaf, lambda c: st.one_of(st.lists(c, max_size=3),
                                                     st.dictionaries(st.text(max_size=6), c, max_size=4)),
                     max_leaves=12)
_sub = st.fixed_dictionaries({"subID": st.sampled_from(["T_0001", "T_0002", "X_0001", 5]),
                              "status": st.one_of(st.integers(-1, 7), _json),
                              "spareWaitCount": _json, "initWaitCount": _json, "estimateMs": _json,
                              "ossUrls": st.one_of(st.none(), st.lists(st.one_of(st.text(max_size=5), _json),
                                                                       max_size=2), _json)})
_snapshot = st.fixed_dictionaries({"messageID": st.sampled_from([1, 2, "1"]), "taskID": st.sampled_from(["T", "U"]),
                                   "event": _json, "tasks": st.one_of(st.lists(_sub, max_size=3), _json)})
_db_sub = st.fixed_dictionaries({"subID": st.sampled_from(["T_0001", "T_0002", None]),
                                 "state": st.one_of(st.integers(-1, 6), _json), "urls": _json,
                                 "retryCount": _json, "failureReason": _json, "estimateTime": _json})
_task = st.fixed_dictionaries({"taskID": st.just("T"), "state": st.one_of(st.integers(-1, 6), _json),
                               "subNum": _json, "subTasks": st.one_of(st.lists(_db_sub, max_size=3), _json)})


@settings(max_examples=120, deadline=None, database=None)
@given(st.lists(st.one_of(_snapshot.map(lambda m: ("ws", m)), _task.map(lambda t: ("db", t)),
                          _json.map(lambda j: ("ws", j))), max_size=8))
def test_tracker_reads_any_frames_without_crashing(frames):
    tr = _Tracker("T", ["T_0001", "T_0002"], 2)
    p = NextGPU.__new__(NextGPU)
    p.profile, p._results = type("P", (), {"name": "ng"})(), {}
    for kind, frame in frames:
        if kind == "ws":
            tr.apply_ws(frame)
        else:
            tr.apply_task(frame)
        u = p._final(tr) if tr.terminal() else p._progress(tr)
        assert u.progress is None or 0.0 <= u.progress <= 1.0
        assert u.state in (State.QUEUED, State.RUNNING, State.SUCCEEDED, State.FAILED)
        if u.state is State.FAILED:
            assert isinstance(u.error, RemoteFailure)
        for o in u.outputs or []:
            assert isinstance(o.url, str) and o.url
