"""The speedpix provider against its fake (tests/fakes/speedpix.py), through public methods only.

A provider call is ONE request (the transport retries only what creates nothing); what follows a
failed create is the engine's decision, so a create is asserted to be sent exactly once and to
raise the error class its answer means (``engine.rules.create_outcome``)."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re

import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from comfyui_remote.engine.profiles import Profiles
from comfyui_remote.engine.rules import Create, create_outcome
from comfyui_remote.engine.tasks import TaskManager
from comfyui_remote.engine.transfer import Expired, Http, RetryPolicy
from comfyui_remote.providers import speedpix as sp
from comfyui_remote.providers import speedpix_wire as wire
from comfyui_remote.providers.local_file import LocalFile
from comfyui_remote.providers.base import (AmbiguousSubmit, AnswerLost, AuthError, CancelResult, ConfigError,
                                           ContentRejected, NotFound, NotSupported, Override, ProtocolError,
                                           QuotaError, RateLimited, RejectedInput, RemoteError, RemoteFailure,
                                           RemoteRef, ServerError, State, SubmitSpec, TaskGone, TransientError)
from comfyui_remote.tests.fakes.speedpix import FakeSpeedPix, colour_for
from comfyui_remote.tests.fakes.toolkit import png_bytes
from comfyui_remote.tests import media_samples as ms
from comfyui_remote.tests.unit import drive

CANARY_KEY = "canary-appkey-7Q2xW9"
CANARY_SECRET = "canary-SECRET-f3b9e1d2c4a5"
VECTOR_STS = ("POST\napplication/json; charset=utf-8\n43gxXZJ21wjyucPP3kewSg==\napplication/json; charset=utf-8\n"
              "Thu, 02 Jan 2025 03:30:48 GMT+00:00\nx-ca-key:test-app-key\n"
              "x-ca-nonce:5f0c1b2a-3d4e-4f60-8a7b-9c0d1e2f3a4b\nx-ca-signature-method:HmacSHA256\n"
              "x-ca-timestamp:1735788648813\n/scc/comfy_get_result")
POLICY = RetryPolicy(attempts=4, base_s=0.01, cap_s=0.05)


# --------------------------------------------------------------------------- fixtures

@pytest.fixture
async def fake():
    f = FakeSpeedPix(app_key=CANARY_KEY, app_secret=CANARY_SECRET, queue_s=0.15, run_s=0.3, steps=3)
    await f.start()
    yield f
    await f.stop()


class Env:
    def __init__(self, tmp_path, fake):
        self.tmp_path, self.fake, self.https = tmp_path, fake, []
        self.errors: list[RemoteError] = []

    def profile_text(self, *, app_key=CANARY_KEY, app_secret=CANARY_SECRET, extra="", name="sp") -> str:
        lines = [f"[profiles.{name}]", 'provider = "speedpix"', f'url = "{self.fake.url}"', "poll_interval_s = 0.02"]
        lines += [f'{k} = "{v}"' for k, v in (("app_key", app_key), ("app_secret", app_secret)) if v is not None]
        return "\n".join(lines) + "\n" + extra

    def provider(self, name="sp", **kw):
        (self.tmp_path / "profiles.toml").write_text(self.profile_text(name=name, **kw))
        http = Http(provider="speedpix", profile=name, policy=POLICY, timeout_s=5)
        self.https.append(http)
        return sp.SpeedPixProvider(Profiles(self.tmp_path).get(name), http)

    async def raises(self, cls, coro):
        with pytest.raises(cls) as info:
            await coro
        self.errors.append(info.value)
        return info.value


@pytest.fixture
async def env(tmp_path, fake):
    e = Env(tmp_path, fake)
    yield e
    for h in e.https:
        await h.close()
    for err in e.errors:  # the canary never shows in any error raised in any test
        blob = " ".join([str(err), err.detail, err.hint, json.dumps(err.to_json(), ensure_ascii=False)])
        assert CANARY_SECRET not in blob and CANARY_KEY not in blob, blob


def hdr(seen, name):
    """A received header, case-insensitively (the server normalises well-known names)."""
    return {k.lower(): v for k, v in seen.headers.items()}.get(name.lower())


def spec(workflow="wf_solid", *ovs):
    return SubmitSpec(workflow, tuple(Override(t, k, v) for k, t, v in ovs), profile="sp")


async def pixels(http, tmp_path, out, name="o.png"):
    got = await http.fetch_to(out.url, tmp_path / name)
    with Image.open(got.path) as im:
        return im.size, im.convert("RGBA").getpixel((0, 0)), got.path.read_bytes()


async def run(p, s):
    ref = await drive.submit(p, s)
    return ref, await drive.until_end(p, ref, timeout=20)


# --------------------------------------------------------------------------- signing

def test_signature_reproduces_documented_vectors():
    body = b'{"taskId":"01jgjgyaqh85f7rs23v0kbmtdb"}'
    assert wire.content_md5(body) == "43gxXZJ21wjyucPP3kewSg=="
    assert wire.gateway_date(1735788648.813) == "Thu, 02 Jan 2025 03:30:48 GMT+00:00"
    h = wire.sign_request("test-app-key", "test-app-secret", "/scc/comfy_get_result", body, now_ms=1735788648813,
                          nonce="5f0c1b2a-3d4e-4f60-8a7b-9c0d1e2f3a4b")
    assert h["x-ca-signature"] == "FYquSvMJdGVf+fIDR2nby4wd7d7/CAOCgmFRcs0KlCk="
    assert h["content-md5"] == "43gxXZJ21wjyucPP3kewSg==" and h["x-ca-timestamp"] == "1735788648813"
    assert h["date"] == "Thu, 02 Jan 2025 03:30:48 GMT+00:00" and h["x-ca-signature-method"] == "HmacSHA256"
    assert h["x-ca-signature-headers"] == "x-ca-timestamp,x-ca-key,x-ca-nonce,x-ca-signature-method"
    assert h["Accept"] == h["Content-Type"] == "application/json; charset=utf-8"
    sts = wire.string_to_sign("POST", "/scc/comfy_get_result", accept=wire.ACCEPT, content_md5=h["content-md5"],
                              content_type=wire.CONTENT_TYPE, date=h["date"], headers=h, signed=wire.SIGNED_HEADERS)
    assert sts == VECTOR_STS
    nobody = wire.sign_request("test-app-key", "test-app-secret", "/scc/comfy_prompt", None, now_ms=1735788648813,
                               nonce="5f0c1b2a-3d4e-4f60-8a7b-9c0d1e2f3a4b")
    assert nobody["x-ca-signature"] == "uToEJKAu1FVeCQYrCJl2jxvcE4wPtg66O4xd/zXZnIA=" and "content-md5" not in nobody


def test_gateway_date_ignores_locale_and_pads():
    assert wire.gateway_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT+00:00"
    assert wire.gateway_date(1709251199.999) == "Thu, 29 Feb 2024 23:59:59 GMT+00:00"


async def test_every_attempt_is_signed_afresh_over_the_exact_bytes(env):
    p = env.provider()
    ref = await p.submit(spec("wf_solid", ("text", "prompt", "一只猫 \u00e9\u2028 \"q\"")), "k")
    created = env.fake.requests("comfy_prompt")[0]
    assert hdr(created, "content-md5") == base64.b64encode(hashlib.md5(created.body).digest()).decode()
    assert "一只猫".encode() in created.body  # ensure_ascii=False, like the SDK
    env.fake.faults.add("comfy_get_progress", "status", status=502, times=2)  # the transport retries a look
    await p.poll(ref)
    looks = env.fake.requests("comfy_get_progress")
    assert len(looks) == 3 and env.fake.auth_failures == []
    assert len({hdr(s, "x-ca-nonce") for s in looks}) == 3  # a replayed nonce would be refused
    assert all(hdr(s, "content-md5") == base64.b64encode(hashlib.md5(s.body).digest()).decode() for s in looks)


# --------------------------------------------------------------------------- a create is sent exactly once

@pytest.mark.parametrize("fault,kw,cls,created", [
    ("status", {"status": 503}, ServerError, 0),  # a 5xx: the service may or may not have acted
    ("status_after", {"status": 524}, ServerError, 1),  # a CDN page after the task was created
    ("drop_after", {}, AnswerLost, 1),  # created, the answer lost
    ("drop", {}, AnswerLost, 0),  # sent, then the connection closed without an answer
])
async def test_an_unclear_create_answer_is_ambiguous_and_never_resent(env, fault, kw, cls, created):
    p = env.provider()
    env.fake.faults.add("comfy_prompt", fault, **kw)
    err = await env.raises(cls, p.submit(spec("wf_solid"), "k"))
    assert create_outcome(err) is Create.AMBIGUOUS
    assert env.fake.count("comfy_prompt") == 1 and env.fake.task_count() == created
    with pytest.raises(NotSupported):
        await p.find("k", spec("wf_solid"))  # nothing to look it up by: the engine says so honestly


@pytest.mark.parametrize("code", ["s_common_lockfail", "S_COMPUTING_Busy", "SomethingUndocumented"])
async def test_a_system_or_unknown_code_on_create_is_ambiguous_and_sent_once(env, code):
    p = env.provider()
    env.fake.service_error("comfy_prompt", code, "内部错误, 请重试", times=5)
    err = await env.raises(ServerError, p.submit(spec("wf_solid"), "k"))
    assert create_outcome(err) is Create.AMBIGUOUS and err.code == code and code in str(err)
    assert env.fake.count("comfy_prompt") == 1


@pytest.mark.parametrize("status,headers,retry_after", [
    (429, {}, 2.0),
    (403, {"X-Ca-Error-Message": "Throttled by APP Flow Control"}, None),
    (403, {"X-Ca-Error-Message": "Throttled by USER Flow Control"}, None),
    (400, {"X-Ca-Error-Message": "Nonce Used"}, None),
])
async def test_refusals_before_the_backend_are_rate_limited_and_sent_once(env, status, headers, retry_after):
    p = env.provider()
    env.fake.faults.add("comfy_prompt", "status", status=status, body="", headers=headers, retry_after=retry_after)
    err = await env.raises(RateLimited, p.submit(spec("wf_solid"), "k"))
    assert create_outcome(err) is Create.WAIT and err.retry_after == retry_after
    assert env.fake.count("comfy_prompt") == 1 and env.fake.task_count() == 0
    ref = await p.submit(spec("wf_solid"), "k")  # the engine sends it again, signed afresh
    assert list(env.fake.tasks) == [ref.remote_id]


@pytest.fixture
async def manager(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    (home / "profiles.toml").write_text(Env(tmp_path, fake).profile_text())
    m = TaskManager(home, tmp_path / "out", policy=RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05))
    m.start(reattach=False)
    yield m
    await asyncio.to_thread(m.stop)


@pytest.mark.parametrize("how", ["lockfail", "cdn_524"])
async def test_through_the_engine_an_ambiguous_create_is_an_honest_ambiguous_submit(manager, fake, how):
    if how == "lockfail":
        fake.service_error("comfy_prompt", "s_common_lockfail", "内部错误, 请重试", times=5)
    else:
        fake.faults.add("comfy_prompt", "status_after", status=524)
    with pytest.raises(AmbiguousSubmit) as info:
        await asyncio.wait_for(asyncio.wrap_future(manager.call(
            manager.submit("sp", "wf_solid", [Override("prompt", "text", how)], reuse=False))), 30)
    text = str(info.value)
    assert "speedpix" in text and "before queueing again" in text and CANARY_SECRET not in text
    assert fake.count("comfy_prompt") == 1  # never paid twice
    assert fake.task_count() == (1 if how == "cdn_524" else 0)


# --------------------------------------------------------------------------- polling

async def test_queue_progress_typed_inputs_and_outputs(env, tmp_path):
    p = env.provider()
    env.fake.hold, env.fake.run_s = True, 1.0  # queued until released; a long KSampler
    s = spec("wf_solid", ("text", "prompt", "hello"), ("int", "steps", 7), ("float", "cfg", 2.0),
             ("int", "width", 12), ("int", "height", 9), ("int", "seed", 2 ** 64 - 1),
             ("boolean", "tiled", True))
    assert (await p.validate(s)).workflow_label == "wf_solid"
    ref = await p.submit(s, p.new_submission_key())
    assert re.fullmatch(r"[0-9a-z]{26}", ref.remote_id) and json.loads(json.dumps(ref.data)) == ref.data
    first = await p.poll(ref)
    assert first.state is State.QUEUED and first.queue_position == 1 and first.raw_state == "waiting"
    env.fake.release()
    updates = await drive.until_end(p, ref)
    running = [u for u in updates if u.state is State.RUNNING]
    progress = [u.progress for u in running]
    assert progress and progress == sorted(progress) and all(0 <= x < 1 for x in progress)
    ks = [u for u in running if u.node == "KSampler"]
    assert ks and all(u.max_steps == 3 and 1 <= u.step <= 3 for u in ks) and running[0].eta_s is not None
    assert [u.state for u in updates if u.state.terminal] == [State.SUCCEEDED]
    sent = json.loads(env.fake.requests("comfy_prompt")[0].body)
    assert sent["workflow_id"] == "wf_solid" and sent["alias_id"] == "main" and sent["version_id"] is None
    inputs = sent["inputs"]
    assert type(inputs["steps"]) is int and type(inputs["cfg"]) is float and inputs["seed"] == 2 ** 64 - 1
    assert inputs["tiled"] is True  # a JSON boolean: the service refuses "true" for a bool field
    assert b'"cfg":2.0' in env.fake.requests("comfy_prompt")[0].body
    assert hdr(env.fake.requests("comfy_prompt")[0], "X-SP-RESOURCE-CONFIG-ID") == "default"
    assert env.fake.tasks[ref.remote_id].version == "v2"
    outs = updates[-1].outputs
    images = [o for o in outs if o.kind == "image"]
    assert len(images) == 1 and images[0].field == "poster"  # images[] and result.poster: one output
    size, px, _ = await pixels(p.http, tmp_path, images[0])
    assert size == (12, 9) and px[:3] == colour_for("hello")
    assert {o.field: o.text for o in outs if o.kind == "text"} == {"caption": "hello", "seed": str(2 ** 64 - 1),
                                                                    "score": "1.0"}


async def test_a_poll_is_one_progress_call_and_the_result_only_at_the_end(env):
    p = env.provider()
    ref = await p.submit(spec("wf_solid"), "k")
    updates = await drive.until_end(p, ref)
    assert env.fake.count("comfy_get_progress") == len(updates)
    assert env.fake.count("comfy_get_result") == 1 and updates[-1].outputs
    assert p.push(ref) is None  # no push channel: poll only


async def test_a_poll_works_on_a_ref_restored_from_the_journal(env):
    p = env.provider()
    ref = await p.submit(spec("wf_solid"), "k")
    restored = RemoteRef(ref.remote_id, json.loads(json.dumps(ref.data)))
    first = (await drive.until_end(p, restored))[-1]
    again = await p.poll(ref)
    assert first.state is again.state is State.SUCCEEDED and first.outputs[0].filename == again.outputs[0].filename
    assert env.fake.task_count() == 1


async def test_an_unknown_task_is_task_gone_only_from_the_service(env):
    p = env.provider()
    ghost = RemoteRef("01zzzzzzzzzzzzzzzzzzzzzzzz")
    err = await env.raises(TaskGone, p.poll(ghost))
    assert err.code == "B_COMPUTING_CanNotFindTask" and "Cannot find task" in str(err)
    await env.raises(TaskGone, p.outputs(ghost))
    ref = await p.submit(spec("wf_solid"), "k")
    for status in (401, 403, 404):  # a proxy's answer says nothing about the task
        env.fake.faults.add("comfy_get_progress", "status", status=status, body={"error": "proxy says no"})
        err = await env.raises(RemoteError, p.poll(ref))
        assert not isinstance(err, TaskGone) and str(status) in str(err)


@pytest.mark.parametrize("route,kind,kw,cls", [
    ("comfy_get_progress", "status", {"status": 502, "times": 4}, ServerError),
    ("comfy_get_progress", "malformed", {}, ProtocolError),
    ("comfy_get_result", "status", {"status": 503, "times": 4}, ServerError),
    ("comfy_get_result", "malformed", {}, ProtocolError),
])
async def test_a_failed_look_raises_and_the_next_one_carries_on(env, tmp_path, route, kind, kw, cls):
    p = env.provider()
    ref, _ = await run(p, spec("wf_solid", ("text", "prompt", "f")))
    env.fake.faults.add(route, kind, **kw)
    await env.raises(cls, p.poll(ref))
    last = await p.poll(ref)
    assert last.state is State.SUCCEEDED and env.fake.task_count() == 1
    assert (await pixels(p.http, tmp_path, last.outputs[0]))[1][:3] == colour_for("f")


async def test_node_error_names_the_remote_node(env):
    p = env.provider()
    env.fake.node_error_next = ("3", "KSampler", "Error occurred when executing KSampler (node 3): CUDA out of memory")
    _, updates = await run(p, spec("wf_solid"))
    last = updates[-1]
    assert last.state is State.FAILED and isinstance(last.error, RemoteFailure)
    assert last.error.remote_node == "3" and last.error.node_class == "KSampler"
    assert "CUDA out of memory" in str(last.error) and "[remote node 3 (KSampler)]" in str(last.error)


async def test_content_safety_on_input_and_output(env):
    p = env.provider()
    err = await env.raises(ContentRejected, p.submit(spec("wf_solid", ("text", "prompt", "UNSAFE cat")), "k"))
    assert "non-compliant" in str(err) and env.fake.task_count() == 0 and create_outcome(err) is Create.REFUSED
    env.fake.content_safety_next = "output"
    _, updates = await run(p, spec("wf_solid"))
    assert updates[-1].state is State.FAILED and isinstance(updates[-1].error, ContentRejected)
    assert updates[-1].error.code == "P_Request_ContentSafe"


async def test_a_system_error_reading_the_reason_is_asked_again(env):
    p = env.provider()
    env.fake.node_error_next = ("3", "KSampler", "executing KSampler (node 3): boom")
    ref, updates = await run(p, spec("wf_solid"))
    assert updates[-1].state is State.FAILED
    env.fake.service_error("comfy_get_result", "s_common_lockfail", "内部错误, 请重试")
    await env.raises(ServerError, p.poll(ref))  # the call failed, not the task: no end reported
    last = await p.poll(ref)
    assert last.state is State.FAILED and last.error.remote_node == "3"


async def test_outputs_give_fresh_urls_after_they_expired(env, tmp_path):
    p = env.provider()
    ref, updates = await run(p, spec("wf_multi", ("text", "prompt", "two")))
    outs = updates[-1].outputs
    assert [o.kind for o in outs] == ["image", "image"] and len({o.url for o in outs}) == 2
    env.fake.expire_urls()
    err = await env.raises(Expired, p.http.fetch_to(outs[0].url, tmp_path / "old.png"))
    assert "403" in str(err)
    fresh = await p.outputs(ref)
    assert [o.filename for o in fresh] == [o.filename for o in outs] and fresh[0].url != outs[0].url
    rgb = colour_for("two")
    got = [(await pixels(p.http, tmp_path, o, f"{i}.png"))[1][:3] for i, o in enumerate(fresh)]
    assert got == [rgb, tuple(255 - c for c in rgb)]


# --------------------------------------------------------------------------- uploads

async def test_upload_round_trip(env, tmp_path):
    p = env.provider()
    assert 3600 < p.upload_ttl_s <= 24 * 3600
    src = png_bytes((10, 200, 30), (7, 5), alpha=128)
    name = hashlib.sha256(src).hexdigest() + ".png"
    value = await p.upload(src, "image/png", name)
    assert json.loads(env.fake.requests("sp_create_temp_file_upload_sign")[0].body) == {
        "contentType": "image/png", "originalFilename": name, "size": len(src)}
    put = env.fake.requests("oss_put")[0]
    assert put.body == src and hdr(put, "Content-Type") == "image/png" and hdr(put, "x-ca-signature") is None
    ref, updates = await run(p, SubmitSpec("wf_echo", (Override("image", "image", value),)))
    assert json.loads(env.fake.requests("comfy_prompt")[0].body)["inputs"] == {"image": value}
    outs = updates[-1].outputs
    assert len(outs) == 1 and outs[0].field == "image" and outs[0].kind == "image"
    assert (await pixels(p.http, tmp_path, outs[0]))[2] == src


async def test_a_file_on_disk_is_streamed_to_the_presigned_url_with_its_length(env, tmp_path, monkeypatch):
    """A video of ComfyUI's folders (a LocalFile) is sent from disk, never read whole, with the
    Content-Length OSS requires (it refuses a chunked upload with 411)."""
    monkeypatch.setattr(LocalFile, "read", lambda self: pytest.fail(f"{self.name} was read into memory"))
    clip = ms.webm()
    (tmp_path / clip.name).write_bytes(clip.data)
    p = env.provider()
    assert p.streams_uploads
    value = await p.upload(LocalFile.at(tmp_path / clip.name), clip.mime, "v-" + clip.name)
    assert json.loads(env.fake.requests("sp_create_temp_file_upload_sign")[0].body)["size"] == len(clip.data)
    put = env.fake.requests("oss_put")[0]
    assert put.body == clip.data and hdr(put, "Content-Length") == str(len(clip.data))
    assert value.startswith(env.fake.url)


async def test_a_refused_upload_url_is_one_attempt_and_the_next_signs_afresh(env):
    p = env.provider()
    env.fake.faults.add("oss_put", "status", status=403, body="<Error><Code>AccessDenied</Code></Error>")
    err = await env.raises(TransientError, p.upload(png_bytes(), "image/png", "a.png"))
    assert err.field == "image" and "403" in str(err)
    assert env.fake.count("sp_create_temp_file_upload_sign") == 1 and env.fake.count("oss_put") == 1
    assert (await p.upload(png_bytes(), "image/png", "a.png")).startswith(env.fake.url)
    assert env.fake.count("sp_create_temp_file_upload_sign") == 2


# --------------------------------------------------------------------------- no cancel, no find, no push

async def test_honest_no_cancel_no_find(env):
    p = env.provider()
    caps = p.capabilities
    assert not (caps.cancel or caps.idempotent_submit or caps.findable or caps.client_chosen_id or caps.can_find)
    assert caps.progress == "poll" and caps.addressing == "field"
    ref = await p.submit(spec("wf_solid"), "k")
    assert await p.cancel(ref) is CancelResult.UNSUPPORTED
    await env.raises(NotSupported, p.find("k", spec("wf_solid")))
    assert (await drive.until_end(p, ref))[-1].state is State.SUCCEEDED  # it kept running


# --------------------------------------------------------------------------- auth and config

async def test_check_proves_auth_without_creating_anything(env):
    p = env.provider()
    msg = await p.check()
    assert "signature accepted" in msg and CANARY_KEY not in msg
    assert set(json.loads(env.fake.requests("comfy_get_progress")[0].body)) == {"taskId"}
    assert env.fake.task_count() == 0


@pytest.mark.parametrize("who,expect,field", [("secret", "Invalid Signature", "app_secret"),
                                              ("key", "Invalid AppKey", "app_key")])
async def test_auth_failure_names_where_the_key_comes_from(env, who, expect, field):
    p = env.provider(**({"app_secret": "wrong-secret-xyz"} if who == "secret" else {"app_key": "wrong-key-xyz"}))
    err = await env.raises(AuthError, p.submit(spec("wf_solid"), "k"))
    assert expect in str(err) and err.field == field and create_outcome(err) is Create.REFUSED
    assert p.profile.where(field) in err.hint and "[profiles.sp] of profiles.toml" in err.hint
    assert "ComfyUI-type application" in err.hint
    assert "StringToSign" not in str(err)  # the gateway echoes it (with the key); we never show it
    assert env.fake.task_count() == 0 and env.fake.count("comfy_prompt") == 1


async def test_clock_skew_is_explained(env):
    p = env.provider()
    env.fake.wall_offset_s = 16 * 60
    err = await env.raises(AuthError, p.check())
    assert "Timestamp Expired" in str(err) and "clock" in err.hint
    env.fake.wall_offset_s = 14 * 60  # inside the 15-minute window
    assert "accepted" in await p.check()


async def test_missing_credentials_name_what_to_set(env):
    p = env.provider(app_secret=None)
    err = await env.raises(ConfigError, p.check())
    assert err.field == "app_secret" and "app_secret" in err.hint
    assert env.fake.count("comfy_get_progress") == 0


@pytest.mark.parametrize("prefix,cls", [(m, c) for m, c, _f, _h in sp.GATEWAY])
async def test_every_gateway_refusal_is_mapped_and_sent_once(env, prefix, cls):
    p = env.provider()
    status = 403 if prefix in ("throttled by", "quota exhausted", "user arrears") else 400
    text = {"throttled by": "Throttled by API Flow Control"}.get(prefix, prefix.title())
    env.fake.faults.add("comfy_prompt", "status", status=status, body="", times=-1,
                        headers={"X-Ca-Error-Message": text, "X-Ca-Request-Id": "R1"})
    err = await env.raises(cls, p.submit(spec("wf_solid"), "k"))
    assert type(err) is cls and str(status) in str(err) and env.fake.count("comfy_prompt") == 1
    # the gateway refused it before the backend saw it: never "ambiguous"
    assert create_outcome(err) in (Create.REFUSED, Create.WAIT)


@pytest.mark.parametrize("status,cls", [(401, AuthError), (403, AuthError), (404, NotFound), (400, RejectedInput)])
async def test_plain_http_errors_without_gateway_header(env, status, cls):
    p = env.provider()
    env.fake.faults.add("comfy_get_progress", "status", status=status, body="nope")
    err = await env.raises(cls, p.check())
    if cls is AuthError:
        assert p.profile.where("app_key") in err.hint and p.profile.where("app_secret") in err.hint


async def test_an_envelope_on_a_non_2xx_answer_is_read(env):
    p = env.provider()
    env.fake.faults.add("comfy_get_progress", "status", status=400,
                        body={"status": 20, "errCode": "P_Request_ContentSafe", "subErrCode": "P_Request_ContentSafe",
                              "subErrMessage": "The content is non-compliant.", "apiInvokeId": "i_x"})
    await env.raises(ContentRejected, p.check())


async def test_resource_config_and_version_from_profile_and_workflow(env):
    p = env.provider(extra='resource_config_id = "pool-a,default"\n')
    ref = await p.submit(spec("wf_solid#v1", ("text", "prompt", "x")), "k")
    seen = env.fake.requests("comfy_prompt")[0]
    assert hdr(seen, "X-SP-RESOURCE-CONFIG-ID") == "pool-a,default"
    body = json.loads(seen.body)
    assert body["version_id"] == "v1" and body["alias_id"] is None and env.fake.tasks[ref.remote_id].version == "v1"
    await p.submit(spec("wf_solid@stable"), "k2")
    assert json.loads(env.fake.requests("comfy_prompt")[1].body)["alias_id"] == "stable"
    await p.check()  # only comfy_prompt carries the resource header (as the SDKs do)
    assert hdr(env.fake.requests("comfy_get_progress")[0], "X-SP-RESOURCE-CONFIG-ID") is None


# --------------------------------------------------------------------------- targets, inputs, workflows

async def test_bad_target_rejected_before_paying(env):
    p = env.provider()
    err = await env.raises(RejectedInput, p.validate(spec("wf_solid", ("text", "6.text", "x"))))
    assert err.field == "target" and "6.text" in str(err) and err.provider == "speedpix"
    assert env.fake.log == []
    # a well-formed name the workflow does not publish: refused by the service, nothing created
    err = await env.raises(RejectedInput, p.submit(spec("wf_solid", ("text", "promt", "x")), "k"))
    assert "promt" in str(err) and "prompt" in str(err) and err.field == "target"
    assert env.fake.task_count() == 0 and create_outcome(err) is Create.REFUSED


async def test_types_are_not_coerced(env):
    p = env.provider()
    err = await env.raises(RejectedInput, p.submit(spec("wf_solid", ("float", "steps", 20.0)), "k"))
    assert "steps" in str(err) and "int" in str(err)
    for bad in (("float", "cfg", float("nan")), ("float", "cfg", float("inf")), ("int", "steps", 2.5)):
        err = await env.raises(RejectedInput, p.validate(spec("wf_solid", bad)))
        assert err.field == "target" and bad[1] in str(err)
    await p.validate(spec("wf_solid", ("image", "image", b"\x89PNG")))  # pre-flight runs before uploads
    err = await env.raises(RejectedInput, p.submit(spec("wf_solid", ("image", "image", b"\x89PNG")), "k1"))
    assert "uploaded" in str(err) and env.fake.task_count() == 0


@pytest.mark.parametrize("text", ["", "  ", '{"3": {"class_type": "KSampler"}}', "wf@a#b", "wf 1", "wf@", "#v1"])
async def test_bad_workflow_text(env, text):
    err = await env.raises(RejectedInput, env.provider().validate(spec(text)))
    assert err.field == "workflow" and err.hint and err.provider == "speedpix"


@pytest.mark.parametrize("text", ["wf_nope", "wf_solid@nope", "wf_solid#v9"])
async def test_unknown_workflow_alias_version(env, text):
    err = await env.raises(NotFound, env.provider().submit(spec(text), "k"))
    assert err.field == "workflow" and "console" in err.hint and env.fake.task_count() == 0


@given(st.text(max_size=40))
@settings(max_examples=200, deadline=None)
def test_parse_workflow_gives_a_value_or_rejected_input(text):
    try:
        wf, alias, version = wire.parse_workflow(text)
    except RejectedInput as e:
        assert e.field == "workflow"
        return
    assert wf and (alias is None) != (version is None)
    assert wire.parse_workflow(wf + (f"@{alias}" if version is None else f"#{version}")) == (wf, alias, version)


def offline() -> sp.SpeedPixProvider:
    return sp.SpeedPixProvider(type("P", (), {"name": "sp", "get": lambda self, k, d=None: d})(), None)


@given(st.dictionaries(st.sampled_from(["status", "progress", "lastQueueRemaining", "etaRelative", "state",
                                        "message"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
                                 st.sampled_from(["waiting", "running", "succeeded", "failed", "successed"]),
                                 st.dictionaries(st.sampled_from(["nodeLabel", "step", "maxSteps"]),
                                                 st.one_of(st.none(), st.integers(), st.floats(), st.text())))))
@settings(max_examples=300, deadline=None)
def test_progress_parser_gives_an_update_or_protocol_error(data):
    try:
        u = offline().parse_progress(data)
    except ProtocolError:
        assert str(data.get("status", "")).lower() not in sp.STATES
        return
    assert u.state is sp.STATES[str(data["status"]).lower()]
    assert u.progress is None or 0 <= u.progress <= 1


# --------------------------------------------------------------------------- service codes

@pytest.mark.parametrize("code", sorted(sp.CODES))
async def test_every_listed_service_code_on_submit(env, code):
    p = env.provider()
    env.fake.service_error("comfy_prompt", code, f"message for {code}")
    err = await env.raises(RemoteError, p.submit(spec("wf_solid"), "k"))
    assert type(err) is sp.CODES[code][0] and err.code == code and code in str(err)
    assert env.fake.task_count() == 0 and env.fake.count("comfy_prompt") == 1


@pytest.mark.parametrize("code,cls,field", [
    ("B_WORKFLOW_NotFound", NotFound, "workflow"),  # the fake's codes (INFERRED)
    ("B_WORKFLOW_VersionNotFound", NotFound, "workflow"),
    ("P_Request_ParamInvalid", RejectedInput, "target"),
    ("B_COMPUTING_ExecutionError", RemoteFailure, ""),
    ("s_function_getasyncinvocationerror", ServerError, ""),  # the facts' error table (§1.6)
    ("s_function_createfunctionerror", ServerError, ""),
    ("p_session_expiredattooearly", RejectedInput, "target"),
    ("p_session_refreshfailedsessionnotfound", NotFound, ""),
    ("b_fc_functionprivatekeynotfound", NotFound, ""),
    ("Q_Undocumented", ServerError, ""),
])
def test_code_families(code, cls, field):
    got, fld, hint = sp.classify(code)
    assert (got, fld) == (cls, field) and hint


async def test_quota_refusal_is_definite(env):
    p = env.provider()
    env.fake.faults.add("comfy_prompt", "status", status=403, body="", headers={"X-Ca-Error-Message": "Quota Exhausted"})
    err = await env.raises(QuotaError, p.submit(spec("wf_solid"), "k"))
    assert create_outcome(err) is Create.REFUSED and "quota" in err.hint


# --------------------------------------------------------------------------- outputs parsing

def test_parse_outputs_of_the_documented_example_and_custom_fields():
    url = "https://speed-pix-beijing-prod.oss-cn-beijing.aliyuncs.com/example.png"
    data = {"result": {"poster": {"filename": "a153_00000_.webp", "object_key": "comfy/output/a153_00000_.webp",
                                  "format": "webp", "width": 472, "subfolder": "", "type": "output", "url": url,
                                  "height": 1024},
                       "clip": {"url": "https://h.example/v/out.mp4?sig=1", "type": "output", "filename": "out.mp4"},
                       "voice": [{"url": "https://h.example/a/x.wav", "type": "output"}],
                       "doc": {"url": "https://h.example/d/report.bin", "type": "output"},
                       "label": "a cat", "count": 3, "ratio": 0.5, "flag": True, "meta": {"k": "v"}, "none": None},
            "images": [url, url, "https://h.example/img/noext"], "status": "succeeded", "taskId": "t"}
    outs = offline().parse_outputs(data)
    assert [(o.kind, o.field, o.filename, o.mime) for o in outs if o.kind != "text"] == [
        ("image", "poster", "a153_00000_.webp", "image/webp"), ("image", None, "noext", None),
        ("video", "clip", "out.mp4", "video/mp4"), ("audio", "voice", "x.wav", "audio/wav"),
        ("file", "doc", "report.bin", None)]
    texts = {o.field: o.text for o in outs if o.kind == "text"}
    assert texts == {"label": "a cat", "count": "3", "ratio": "0.5", "flag": "true", "meta": '{"k": "v"}'}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    | st.sampled_from(["https://h.example/a.png", "http://[bad/x.png", "https://h.example/v.mp4?x=1", "ftp://h/x"]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(["url", "filename", "format", "k"]), c,
                                                        max_size=4), max_leaves=12)


@given(st.dictionaries(st.sampled_from(["images", "result", "status"]), JSON))
@settings(max_examples=300, deadline=None)
def test_parse_outputs_gives_outputs_or_protocol_error(data):
    try:
        outs = offline().parse_outputs(data)
    except ProtocolError:
        return
    for o in outs:
        assert (o.kind == "text" and isinstance(o.text, str)) or o.url.startswith(("http://", "https://"))


@pytest.mark.parametrize("bad", ["javascript:alert(1)", "file:///etc/passwd", "https://user:pw@h.example/x.png",
                                 "ftp://h.example/x.png"])
def test_hostile_output_urls_are_refused(bad):
    with pytest.raises(ProtocolError) as info:
        offline().parse_outputs({"images": [bad], "result": {}})
    assert "pw" not in str(info.value) and info.value.provider == "speedpix"


# --------------------------------------------------------------------------- canary

async def test_canary_never_in_ref_data_updates_or_errors(env):
    p = env.provider()
    ref, updates = await run(p, spec("wf_solid", ("text", "prompt", "c")))
    blob = json.dumps(ref.data) + "".join(repr(u) for u in updates)
    assert CANARY_KEY not in blob and CANARY_SECRET not in blob
    wrong = env.provider(app_secret="not-the-" + CANARY_SECRET[7:])  # key is still the canary key
    err = await env.raises(AuthError, wrong.check())
    assert CANARY_KEY in env.fake.auth_failures[-1]  # the gateway echoes the StringToSign with the app key
    assert CANARY_KEY not in str(err)


# --------------------------------------------------------------------------- the contract case plays its part

async def test_contract_case_drives_its_fake(tmp_path):
    from comfyui_remote.tests.contract.case_speedpix import SpeedPixCase

    case = SpeedPixCase()
    await case.start()
    https = []
    try:
        def provider(key, name):
            body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in case.profile(key).items())
            (tmp_path / "profiles.toml").write_text(f"[profiles.{name}]\n{body}\n")
            https.append(Http(provider="speedpix", profile=name, policy=POLICY))
            return sp.SpeedPixProvider(Profiles(tmp_path).get(name), https[-1])

        good, bad = provider(CANARY_SECRET, "good"), provider("WRONG-" + CANARY_SECRET, "bad")
        assert "accepted" in await good.check()
        with pytest.raises(AuthError):
            await bad.check()
        wf, ovs, expect = case.workflow_single()
        ref, updates = await run(good, spec(wf, *ovs))
        assert case.finished_remotely(ref.remote_id) and not case.was_cancelled(ref.remote_id)
        outs = [o for o in updates[-1].outputs if o.kind == "image"]
        size, px, _ = await pixels(good.http, tmp_path, outs[0])
        assert [(size[0], size[1], px[:3])] == expect.images and case.remote_tasks() == 1
        case.expire_urls()  # old URLs and those of the next answer are expired; then fresh ones
        with pytest.raises(Expired):
            await good.http.fetch_to(outs[0].url, tmp_path / "a.png")
        stale = await good.outputs(ref)
        with pytest.raises(Expired):
            await good.http.fetch_to(stale[0].url, tmp_path / "b.png")
        assert (await pixels(good.http, tmp_path, (await good.outputs(ref))[0], "c.png"))[0] == size
        with pytest.raises(RejectedInput):
            await good.validate(spec(case.bad_target()[0], *case.bad_target()[1]))
        case.fail_node()
        assert isinstance((await run(good, spec(wf)))[1][-1].error, RemoteFailure)
    finally:
        for h in https:
            await h.close()
        await case.stop()
