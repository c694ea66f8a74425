"""The speedpix provider against its fake (tests/fakes/speedpix.py), through public methods only."""
from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from comfyui_remote.engine.profiles import Profiles
from comfyui_remote.engine.transfer import Http, RetryPolicy
from comfyui_remote.providers import speedpix as sp
from comfyui_remote.providers.base import (AmbiguousSubmit, AuthError, ConfigError, ContentRejected, NotFound,
                                           NotSupported, Override, ProtocolError, RejectedInput,
                                           RemoteError, RemoteFailure, RemoteRef, State, SubmitSpec,
                                           TransientError)
from comfyui_remote.tests.fakes.speedpix import FakeSpeedPix, colour_for
from comfyui_remote.tests.fakes.toolkit import png_bytes

CANARY_KEY = "canary-appkey-7Q2xW9"
CANARY_SECRET = "canary-SECRET-f3b9e1d2c4a5"
VECTOR_STS = ("POST\napplication/json; charset=utf-8\n43gxXZJ21wjyucPP3kewSg==\napplication/json; charset=utf-8\n"
              "Thu, 02 Jan 2025 03:30:48 GMT+00:00\nx-ca-key:test-app-key\n"
              "x-ca-nonce:5f0c1b2a-3d4e-4f60-8a7b-9c0d1e2f3a4b\nx-ca-signature-method:HmacSHA256\n"
              "x-ca-timestamp:1735788648813\n/scc/comfy_get_result")


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

    def provider(self, *, app_key=CANARY_KEY, app_secret=CANARY_SECRET, extra="", name="sp"):
        lines = [f"[profiles.{name}]", 'provider = "speedpix"', f'url = "{self.fake.url}"',
                 "poll_interval_s = 0.02"]
        if app_key is not None:
            lines.append(f'app_key = "{app_key}"')
        if app_secret is not None:
            lines.append(f'app_secret = "{app_secret}"')
        (self.tmp_path / "profiles.toml").write_text("\n".join(lines) + "\n" + extra)
        profile = Profiles(self.tmp_path).get(name)
        http = Http(provider="speedpix", profile=name, policy=RetryPolicy(attempts=4, base_s=0.01, cap_s=0.05),
                    timeout_s=5)
        self.https.append(http)
        return sp.SpeedPixProvider(profile, http)

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


async def run(provider, ref, fake=None):
    """All updates of one watch; with ``fake`` given, release its held queue on the first update."""
    updates = []
    async for u in provider.watch(ref):
        updates.append(u)
        if fake is not None and fake.hold:
            fake.release()
    assert updates and updates[-1].state.terminal
    assert all(not u.state.terminal for u in updates[:-1])
    return updates


def hdr(seen, name):
    """A received header, case-insensitively (the server normalises well-known names)."""
    return {k.lower(): v for k, v in seen.headers.items()}.get(name.lower())


def spec(workflow="wf_solid", *ovs):
    return SubmitSpec(workflow, tuple(Override(t, k, v) for k, t, v in ovs), profile="sp")


async def pixels(http, tmp_path, out, name="o.png"):
    dl = await http.download(out.url, tmp_path / name)
    with Image.open(dl.path) as im:
        return im.size, im.convert("RGBA").getpixel((0, 0)), dl.path.read_bytes()


# --------------------------------------------------------------------------- signing

def test_signature_reproduces_documented_vectors():
    body = b'{"taskId":"01jgjgyaqh85f7rs23v0kbmtdb"}'
    assert sp.content_md5(body) == "43gxXZJ21wjyucPP3kewSg=="
    assert sp.gateway_date(1735788648.813) == "Thu, 02 Jan 2025 03:30:48 GMT+00:00"
    h = sp.sign_request("test-app-key", "test-app-secret", "/scc/comfy_get_result", body, now_ms=1735788648813,
                        nonce="5f0c1b2a-3d4e-4f60-8a7b-9c0d1e2f3a4b")
    assert h["x-ca-signature"] == "FYquSvMJdGVf+fIDR2nby4wd7d7/CAOCgmFRcs0KlCk="
    assert h["content-md5"] == "43gxXZJ21wjyucPP3kewSg=="
    assert h["date"] == "Thu, 02 Jan 2025 03:30:48 GMT+00:00"
    assert h["x-ca-timestamp"] == "1735788648813"
    assert h["x-ca-signature-method"] == "HmacSHA256"
    assert h["x-ca-signature-headers"] == "x-ca-timestamp,x-ca-key,x-ca-nonce,x-ca-signature-method"
    assert h["Accept"] == h["Content-Type"] == "application/json; charset=utf-8"
    sts = sp.string_to_sign("POST", "/scc/comfy_get_result", accept=sp.ACCEPT, content_md5=h["content-md5"],
                            content_type=sp.CONTENT_TYPE, date=h["date"], headers=h, signed=sp.SIGNED_HEADERS)
    assert sts == VECTOR_STS
    nobody = sp.sign_request("test-app-key", "test-app-secret", "/scc/comfy_prompt", None, now_ms=1735788648813,
                             nonce="5f0c1b2a-3d4e-4f60-8a7b-9c0d1e2f3a4b")
    assert nobody["x-ca-signature"] == "uToEJKAu1FVeCQYrCJl2jxvcE4wPtg66O4xd/zXZnIA="
    assert "content-md5" not in nobody


def test_gateway_date_ignores_locale_and_pads():
    assert sp.gateway_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT+00:00"
    assert sp.gateway_date(1709251199.999) == "Thu, 29 Feb 2024 23:59:59 GMT+00:00"


async def test_md5_is_over_the_exact_bytes_sent_and_every_attempt_is_resigned(env):
    p = env.provider()
    env.fake.faults.add("comfy_prompt", "status", status=429, retry_after=0.01, times=2)
    ref = await p.submit(spec("wf_solid", ("text", "prompt", "一只猫 \u00e9\u2028 \"q\"")), "k")
    seen = env.fake.requests("comfy_prompt")
    assert len(seen) == 3 and env.fake.auth_failures == []
    for s in seen:
        md5 = base64.b64encode(hashlib.md5(s.body).digest()).decode()
        assert hdr(s, "content-md5") == md5
    assert len({hdr(s, "x-ca-nonce") for s in seen}) == 3  # fresh nonce per attempt
    assert json.loads(seen[-1].body)["inputs"]["prompt"] == "一只猫 \u00e9\u2028 \"q\""
    assert "一只猫".encode() in seen[-1].body  # ensure_ascii=False, like the SDK
    assert ref.remote_id in env.fake.tasks and env.fake.task_count() == 1


# --------------------------------------------------------------------------- success paths

async def test_success_with_queue_progress_and_typed_inputs(env, tmp_path):
    p = env.provider()
    env.fake.hold, env.fake.run_s = True, 1.0  # queued until the first update is seen; a long KSampler
    s = spec("wf_solid", ("text", "prompt", "hello"), ("int", "steps", 7), ("float", "cfg", 2.0),
             ("int", "width", 12), ("int", "height", 9), ("int", "seed", 2 ** 64 - 1))
    pre = await p.validate(s)
    assert pre.workflow_label == "wf_solid"
    ref = await p.submit(s, p.new_submission_key())
    assert re.fullmatch(r"[0-9a-z]{26}", ref.remote_id)
    json.dumps(ref.data)
    updates = await run(p, ref, env.fake)
    states = [u.state for u in updates]
    assert states[0] is State.QUEUED and updates[0].queue_position == 1
    assert State.RUNNING in states and states[-1] is State.SUCCEEDED
    running = [u for u in updates if u.state is State.RUNNING]
    progress = [u.progress for u in running]
    assert progress == sorted(progress) and all(0 <= x < 1 for x in progress)
    ks = [u for u in running if u.node == "KSampler"]
    assert ks and all(u.max_steps == 3 and 1 <= u.step <= 3 for u in ks)
    assert any(u.eta_s is not None for u in running)
    body = env.fake.requests("comfy_prompt")[0]
    sent = json.loads(body.body)
    assert sent["workflow_id"] == "wf_solid" and sent["alias_id"] == "main" and sent["version_id"] is None
    inputs = sent["inputs"]
    assert type(inputs["steps"]) is int and type(inputs["cfg"]) is float and type(inputs["prompt"]) is str
    assert inputs["seed"] == 2 ** 64 - 1 and b'"cfg":2.0' in body.body
    assert hdr(body, "X-SP-RESOURCE-CONFIG-ID") == "default"
    task = env.fake.tasks[ref.remote_id]
    assert task.inputs["steps"] == 7 and task.version == "v2"
    outs = updates[-1].outputs
    images = [o for o in outs if o.kind == "image"]
    assert len(images) == 1 and images[0].field == "poster"  # images[] and result.poster: one output
    size, px, _ = await pixels(p.http, tmp_path, images[0])
    assert size == (12, 9) and px[:3] == colour_for("hello")
    texts = {o.field: o.text for o in outs if o.kind == "text"}
    assert texts == {"caption": "hello", "seed": str(2 ** 64 - 1), "score": "1.0"}


async def test_resource_config_and_version_from_profile_and_workflow(env):
    p = env.provider(extra='resource_config_id = "pool-a,default"\n')
    ref = await p.submit(spec("wf_solid#v1", ("text", "prompt", "x")), "k")
    seen = env.fake.requests("comfy_prompt")[0]
    assert hdr(seen, "X-SP-RESOURCE-CONFIG-ID") == "pool-a,default"
    body = json.loads(seen.body)
    assert body["version_id"] == "v1" and body["alias_id"] is None
    assert env.fake.tasks[ref.remote_id].version == "v1"
    await p.submit(spec("wf_solid@stable"), "k2")
    assert json.loads(env.fake.requests("comfy_prompt")[1].body)["alias_id"] == "stable"
    # only comfy_prompt carries the resource header (as the SDKs do)
    await p.check()
    assert hdr(env.fake.requests("comfy_get_progress")[0], "X-SP-RESOURCE-CONFIG-ID") is None


async def test_multiple_image_outputs(env, tmp_path):
    p = env.provider()
    ref = await p.submit(spec("wf_multi", ("text", "prompt", "two")), "k")
    updates = await run(p, ref)
    outs = updates[-1].outputs
    assert [o.kind for o in outs] == ["image", "image"] and len({o.url for o in outs}) == 2
    rgb = colour_for("two")
    got = [(await pixels(p.http, tmp_path, o, f"{i}.png"))[1][:3] for i, o in enumerate(outs)]
    assert got == [rgb, tuple(255 - c for c in rgb)]
    assert await p.outputs(ref) == outs  # outputs() after the fact gives the same


async def test_upload_round_trip(env, tmp_path):
    p = env.provider()
    src = png_bytes((10, 200, 30), (7, 5), alpha=128)
    value = await p.upload(src, "image/png", hashlib.sha256(src).hexdigest() + ".png")
    sign = json.loads(env.fake.requests("sp_create_temp_file_upload_sign")[0].body)
    assert sign == {"contentType": "image/png", "originalFilename": hashlib.sha256(src).hexdigest() + ".png",
                    "size": len(src)}
    put = env.fake.requests("oss_put")[0]
    assert put.body == src and hdr(put, "Content-Type") == "image/png" and hdr(put, "x-ca-signature") is None
    ref = await p.submit(SubmitSpec("wf_echo", (Override("image", "image", value),)), "k")
    assert json.loads(env.fake.requests("comfy_prompt")[0].body)["inputs"] == {"image": value}
    outs = (await run(p, ref))[-1].outputs
    assert len(outs) == 1 and outs[0].field == "image" and outs[0].kind == "image"
    _size, _px, data = await pixels(p.http, tmp_path, outs[0])
    assert data == src


async def test_upload_refused_put_gets_a_fresh_signature_once(env):
    p = env.provider()
    env.fake.faults.add("oss_put", "status", status=403, body="<Error><Code>AccessDenied</Code></Error>")
    value = await p.upload(png_bytes(), "image/png", "a.png")
    assert env.fake.count("sp_create_temp_file_upload_sign") == 2 and value.startswith(env.fake.url)
    env.fake.faults.add("oss_put", "status", status=403, times=2)
    err = await env.raises(ProtocolError, p.upload(png_bytes(), "image/png", "b.png"))
    assert err.field == "image" and "403" in str(err)


async def test_watch_restarted_on_a_running_and_a_finished_task(env):
    p = env.provider()
    env.fake.hold = True
    ref = await p.submit(spec("wf_solid"), "k")
    gen = p.watch(ref)
    first = await gen.__anext__()
    assert first.state is State.QUEUED
    await gen.aclose()  # e.g. the engine restarted
    env.fake.release()
    again = await run(p, RemoteRef(ref.remote_id, json.loads(json.dumps(ref.data))))
    assert again[-1].state is State.SUCCEEDED
    once_more = await run(p, ref)
    assert [u.state for u in once_more] == [State.SUCCEEDED] and once_more[0].outputs == again[-1].outputs
    assert env.fake.task_count() == 1


# --------------------------------------------------------------------------- no cancel, no find

async def test_honest_no_cancel_and_no_find(env):
    p = env.provider()
    caps = p.capabilities
    assert not caps.cancel and not caps.idempotent_submit and not caps.findable and caps.addressing == "field"
    assert "cancel" not in sp.SpeedPixProvider.__dict__ and "find" not in sp.SpeedPixProvider.__dict__
    ref = await p.submit(spec("wf_solid"), "k")
    err = await env.raises(NotSupported, p.cancel(ref))
    assert "no cancel" in str(err) and err.provider == "speedpix"
    await env.raises(NotSupported, p.find("k", spec("wf_solid")))
    assert (await run(p, ref))[-1].state is State.SUCCEEDED  # it kept running: nothing was cancelled


# --------------------------------------------------------------------------- auth and config

async def test_check_proves_auth(env):
    p = env.provider()
    msg = await p.check()
    assert "signature accepted" in msg and CANARY_KEY not in msg
    body = json.loads(env.fake.requests("comfy_get_progress")[0].body)
    assert set(body) == {"taskId"} and env.fake.task_count() == 0


@pytest.mark.parametrize("who,expect,field", [
    ("secret", "Invalid Signature", "app_secret"),
    ("key", "Invalid AppKey", "app_key"),
])
async def test_auth_failure_messages(env, who, expect, field):
    kw = {"app_secret": "wrong-secret-xyz"} if who == "secret" else {"app_key": "wrong-key-xyz"}
    p = env.provider(**kw)
    err = await env.raises(AuthError, p.check())
    assert expect in str(err) and err.field == field and "ComfyUI-type application" in err.hint
    assert "StringToSign" not in str(err)  # the gateway echoes it (with the key); we never show it
    err = await env.raises(AuthError, p.submit(spec("wf_solid"), "k"))
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


@pytest.mark.parametrize("message,cls", [(m, c) for m, c, _f, _h in sp.GATEWAY_MESSAGES])
async def test_every_gateway_refusal_is_mapped(env, message, cls):
    p = env.provider()
    status = 403 if message in ("throttled by", "quota exhausted", "user arrears") else 400
    text = {"throttled by": "Throttled by APP Flow Control"}.get(message, message.title())
    env.fake.faults.add("comfy_get_progress", "status", status=status, body="", times=-1,
                        headers={"X-Ca-Error-Message": text, "X-Ca-Request-Id": "R1"})
    err = await env.raises(cls, p.check())
    assert type(err) is cls and str(status) in str(err)
    sends = env.fake.count("comfy_get_progress")
    assert sends == (3 if cls is TransientError else 1)  # retried only where nothing was done


@pytest.mark.parametrize("status,cls", [(401, AuthError), (403, AuthError), (404, ConfigError), (400, ProtocolError)])
async def test_plain_http_errors_without_gateway_header(env, status, cls):
    p = env.provider()
    env.fake.faults.add("comfy_get_progress", "status", status=status, body="nope")
    await env.raises(cls, p.check())


async def test_envelope_on_a_non_2xx_answer_is_read(env):
    p = env.provider()
    env.fake.faults.add("comfy_get_progress", "status", status=400,
                        body={"status": 20, "errCode": "P_Request_ContentSafe", "subErrCode": "P_Request_ContentSafe",
                              "subErrMessage": "The content is non-compliant.", "apiInvokeId": "i_x"})
    await env.raises(ContentRejected, p.check())


# --------------------------------------------------------------------------- targets and workflows

async def test_bad_target_rejected_before_paying(env):
    p = env.provider()
    err = await env.raises(RejectedInput, p.validate(spec("wf_solid", ("text", "6.text", "x"))))
    assert err.field == "target" and "6.text" in str(err) and err.provider == "speedpix"
    assert env.fake.log == []
    # a syntactically fine name the workflow does not publish: refused by the service, nothing created
    err = await env.raises(RejectedInput, p.submit(spec("wf_solid", ("text", "promt", "x")), "k"))
    assert "promt" in str(err) and "prompt" in str(err) and err.field == "target"
    assert env.fake.task_count() == 0


async def test_types_are_not_coerced(env):
    p = env.provider()
    err = await env.raises(RejectedInput, p.submit(spec("wf_solid", ("float", "steps", 20.0)), "k"))
    assert "steps" in str(err) and "int" in str(err)
    err = await env.raises(RejectedInput, p.validate(spec("wf_solid", ("float", "cfg", float("nan")))))
    assert err.field == "target"
    err = await env.raises(RejectedInput, p.validate(spec("wf_solid", ("int", "steps", 2.5))))
    assert "steps" in str(err)
    await p.validate(spec("wf_solid", ("image", "image", b"\x89PNG")))  # pre-flight runs before uploads
    err = await env.raises(RejectedInput, p.submit(spec("wf_solid", ("image", "image", b"\x89PNG")), "k1"))
    assert "uploaded" in str(err)
    assert env.fake.task_count() == 0


@pytest.mark.parametrize("text", ["", "  ", '{"3": {"class_type": "KSampler"}}', "wf@a#b", "wf 1", "wf@", "#v1"])
async def test_bad_workflow_text(env, text):
    p = env.provider()
    err = await env.raises(RejectedInput, p.validate(spec(text)))
    assert err.field == "workflow" and err.hint


@pytest.mark.parametrize("text", ["wf_nope", "wf_solid@nope", "wf_solid#v9"])
async def test_unknown_workflow_alias_version(env, text):
    p = env.provider()
    err = await env.raises(NotFound, p.submit(spec(text), "k"))
    assert err.field == "workflow" and "console" in err.hint and env.fake.task_count() == 0


@given(st.text(max_size=40))
@settings(max_examples=200, deadline=None)
def test_parse_workflow_gives_a_value_or_rejected_input(text):
    try:
        wf, alias, version = sp.parse_workflow(text)
    except RejectedInput as e:
        assert e.field == "workflow"
        return
    assert wf and (alias is None) != (version is None)
    rebuilt = wf + (f"@{alias}" if version is None else f"#{version}")
    assert sp.parse_workflow(rebuilt) == (wf, alias, version)


@given(st.dictionaries(st.sampled_from(["status", "progress", "lastQueueRemaining", "etaRelative", "state",
                                        "message"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
                                 st.sampled_from(["waiting", "running", "succeeded", "failed", "successed"]),
                                 st.dictionaries(st.sampled_from(["nodeLabel", "step", "maxSteps"]),
                                                 st.one_of(st.none(), st.integers(), st.floats(), st.text())))))
@settings(max_examples=300, deadline=None)
def test_progress_parser_gives_an_update_or_protocol_error(data):
    p = sp.SpeedPixProvider(type("P", (), {"name": "sp", "get": lambda self, k, d=None: d})(), None)
    try:
        u = p._update(data)
    except ProtocolError:
        assert str(data.get("status", "")).lower() not in sp.STATES
        return
    assert u.state in (State.QUEUED, State.RUNNING, State.SUCCEEDED, State.FAILED, State.CANCELLED)
    assert u.progress is None or 0 <= u.progress <= 1


# --------------------------------------------------------------------------- service codes

def _expected(code):
    cls, _f, _h = sp.SERVICE_CODES[code]
    return cls


@pytest.mark.parametrize("code", sorted(sp.SERVICE_CODES))
async def test_every_documented_service_code_on_submit(env, code):
    p = env.provider()
    env.fake.service_error("comfy_prompt", code, f"message for {code}", times=5)
    cls = _expected(code)
    err = await env.raises(RemoteError, p.submit(spec("wf_solid"), "k"))
    assert type(err) is cls and err.code == code and code in str(err)
    assert env.fake.task_count() == 0
    assert env.fake.count("comfy_prompt") == (3 if cls is TransientError else 1)


@pytest.mark.parametrize("code,cls,field", [
    ("B_COMPUTING_CanNotFindTask", NotFound, ""),
    ("P_Request_ContentSafe", ContentRejected, "inputs"),
    ("B_WORKFLOW_NotFound", NotFound, "workflow"),
    ("P_Request_ParamInvalid", RejectedInput, "inputs"),
    ("S_SOMETHING_Broken", TransientError, ""),
    ("B_COMPUTING_ExecutionError", RemoteFailure, ""),
    ("B_UNKNOWN_Thing", RemoteFailure, ""),
])
async def test_seed_and_inferred_codes(env, code, cls, field):
    p = env.provider()
    env.fake.service_error("comfy_prompt", code, "it broke", times=5)
    err = await env.raises(cls, p.submit(spec("wf_solid"), "k"))
    assert type(err) is cls and err.field == field


async def test_lockfail_is_retried_without_a_duplicate_task(env):
    p = env.provider()
    env.fake.service_error("comfy_prompt", "s_common_lockfail", "内部错误, 请重试", times=1)
    env.fake.service_error("comfy_get_progress", "s_common_lockfail", "内部错误, 请重试", times=2)
    ref = await p.submit(spec("wf_solid"), "k")
    assert env.fake.task_count() == 1 and env.fake.count("comfy_prompt") == 2
    assert (await run(p, ref))[-1].state is State.SUCCEEDED


async def test_node_error_names_the_remote_node(env):
    p = env.provider()
    env.fake.node_error_next = ("3", "KSampler", "Error occurred when executing KSampler (node 3): CUDA out of memory")
    ref = await p.submit(spec("wf_solid"), "k")
    last = (await run(p, ref))[-1]
    assert last.state is State.FAILED and isinstance(last.error, RemoteFailure)
    assert last.error.remote_node == "3" and last.error.node_class == "KSampler"
    assert "CUDA out of memory" in str(last.error) and "[remote node 3 (KSampler)]" in str(last.error)
    env.errors.append(last.error)


async def test_content_safety_on_input_and_output(env):
    p = env.provider()
    err = await env.raises(ContentRejected, p.submit(spec("wf_solid", ("text", "prompt", "UNSAFE cat")), "k"))
    assert "non-compliant" in str(err) and env.fake.task_count() == 0
    env.fake.content_safety_next = "output"
    ref = await p.submit(spec("wf_solid"), "k")
    last = (await run(p, ref))[-1]
    assert last.state is State.FAILED and isinstance(last.error, ContentRejected)
    assert last.error.code == "P_Request_ContentSafe"
    env.errors.append(last.error)


async def test_unknown_task_fails_with_not_found(env):
    p = env.provider()
    updates = await run(p, RemoteRef("01zzzzzzzzzzzzzzzzzzzzzzzz"))
    assert updates[-1].state is State.FAILED and isinstance(updates[-1].error, NotFound)
    env.errors.append(updates[-1].error)
    await env.raises(NotFound, p.outputs(RemoteRef("01zzzzzzzzzzzzzzzzzzzzzzzz")))


# --------------------------------------------------------------------------- faults: nothing lost, nothing paid twice

async def test_submit_5xx_is_ambiguous_and_never_resent(env):
    p = env.provider()
    env.fake.faults.add("comfy_prompt", "status", status=503)
    err = await env.raises(AmbiguousSubmit, p.submit(spec("wf_solid"), "k"))
    assert "not re-sent" in str(err) or "paying twice" in str(err)
    assert env.fake.count("comfy_prompt") == 1 and env.fake.task_count() == 0


@pytest.mark.parametrize("kind,created", [("drop_after", 1), ("drop", 0)])
async def test_submit_answer_lost_is_ambiguous(env, kind, created):
    p = env.provider()
    env.fake.faults.add("comfy_prompt", kind)
    await env.raises(AmbiguousSubmit, p.submit(spec("wf_solid"), "k"))
    assert env.fake.count("comfy_prompt") == 1 and env.fake.task_count() == created


async def test_submit_429_is_retried_once_created(env):
    p = env.provider()
    env.fake.faults.add("comfy_prompt", "status", status=429, retry_after=0.02)
    ref = await p.submit(spec("wf_solid"), "k")
    assert env.fake.task_count() == 1 and list(env.fake.tasks) == [ref.remote_id]


@pytest.mark.parametrize("route,kind,kw", [
    ("comfy_get_progress", "status", {"status": 502, "times": 5}),
    ("comfy_get_progress", "malformed", {"times": 2}),
    ("comfy_get_progress", "drop", {"times": 2}),
    ("comfy_get_progress", "slow", {"delay": 0.2, "times": 2}),
    ("comfy_get_result", "status", {"status": 503, "times": 2}),
    ("comfy_get_result", "malformed", {}),
])
async def test_poll_faults_lose_nothing(env, tmp_path, route, kind, kw):
    p = env.provider()
    ref = await p.submit(spec("wf_solid", ("text", "prompt", "f")), "k")
    env.fake.faults.add(route, kind, **kw)
    last = (await run(p, ref))[-1]
    assert last.state is State.SUCCEEDED and env.fake.task_count() == 1
    assert (await pixels(p.http, tmp_path, last.outputs[0]))[1][:3] == colour_for("f")


async def test_persistent_poll_failure_raises_transient_for_the_engine_to_retry(env):
    p = env.provider()
    ref = await p.submit(spec("wf_solid"), "k")
    env.fake.faults.add("comfy_get_progress", "status", status=503, times=-1)
    with pytest.raises(TransientError) as info:
        await run(p, ref)
    env.errors.append(info.value)
    env.fake.faults.clear()
    assert (await run(p, ref))[-1].state is State.SUCCEEDED and env.fake.task_count() == 1


async def test_download_truncated_once_then_whole(env, tmp_path):
    p = env.provider()
    ref = await p.submit(spec("wf_solid", ("text", "prompt", "t")), "k")
    out = (await run(p, ref))[-1].outputs[0]
    env.fake.faults.add("oss_get", "truncate")
    _size, px, data = await pixels(p.http, tmp_path, out)
    assert px[:3] == colour_for("t") and env.fake.count("oss_get") == 2


async def test_expired_result_url_is_not_found(env, tmp_path):
    p = env.provider()
    ref = await p.submit(spec("wf_solid"), "k")
    out = (await run(p, ref))[-1].outputs[0]
    env.fake.expire_urls = True
    err = await env.raises(NotFound, p.http.download(out.url, tmp_path / "x.png"))
    assert "403" in str(err)
    env.fake.expire_urls = False  # a fresh comfy_get_result gives fresh URLs
    fresh = await p.outputs(ref)
    assert (await pixels(p.http, tmp_path, fresh[0]))[0] == (16, 16)


# --------------------------------------------------------------------------- outputs parsing

def test_parse_outputs_of_the_documented_example_and_custom_fields():
    p = sp.SpeedPixProvider(type("P", (), {"name": "sp", "get": lambda self, k, d=None: d})(), None)
    url = "https://speed-pix-beijing-prod.oss-cn-beijing.aliyuncs.com/example.png"
    data = {"result": {"poster": {"filename": "a153_00000_.webp", "object_key": "comfy/output/a153_00000_.webp",
                                  "format": "webp", "width": 472, "subfolder": "", "type": "output", "url": url,
                                  "height": 1024},
                       "clip": {"url": "https://h.example/v/out.mp4?sig=1", "type": "output", "filename": "out.mp4"},
                       "voice": [{"url": "https://h.example/a/x.wav", "type": "output"}],
                       "doc": {"url": "https://h.example/d/report.bin", "type": "output"},
                       "label": "a cat", "count": 3, "ratio": 0.5, "flag": True, "meta": {"k": "v"}, "none": None},
            "images": [url, url, "https://h.example/img/noext"], "status": "succeeded", "taskId": "t"}
    outs = p.parse_outputs(data)
    kinds = [(o.kind, o.field, o.filename, o.mime) for o in outs if o.kind != "text"]
    assert kinds == [("image", "poster", "a153_00000_.webp", "image/webp"),
                     ("image", None, "noext", None),
                     ("video", "clip", "out.mp4", "video/mp4"),
                     ("audio", "voice", "x.wav", "audio/wav"),
                     ("file", "doc", "report.bin", None)]
    texts = {o.field: o.text for o in outs if o.kind == "text"}
    assert texts == {"label": "a cat", "count": "3", "ratio": "0.5", "flag": "true", "meta": '{"k": "v"}'}


@pytest.mark.parametrize("bad", ["javascript:alert(1)", "file:///etc/passwd", "https://user:pw@h.example/x.png",
                                 "ftp://h.example/x.png"])
def test_hostile_output_urls_are_refused(bad):
    p = sp.SpeedPixProvider(type("P", (), {"name": "sp", "get": lambda self, k, d=None: d})(), None)
    with pytest.raises(ProtocolError) as info:
        p.parse_outputs({"images": [bad], "result": {}})
    assert "pw" not in str(info.value)


# --------------------------------------------------------------------------- canary

async def test_canary_never_in_ref_data_or_errors(env):
    p = env.provider()
    ref = await p.submit(spec("wf_solid", ("text", "prompt", "c")), "k")
    assert CANARY_KEY not in json.dumps(ref.data) and CANARY_SECRET not in json.dumps(ref.data)
    updates = await run(p, ref)
    for u in updates:
        assert CANARY_KEY not in repr(u) and CANARY_SECRET not in repr(u)
    wrong = env.provider(app_secret="not-the-" + CANARY_SECRET[7:])  # key is still the canary key
    err = await env.raises(AuthError, wrong.check())
    # the gateway's X-Ca-Error-Message echoes the StringToSign, which holds the (canary) app key
    assert CANARY_KEY in env.fake.auth_failures[-1]
    assert CANARY_KEY not in str(err)


# --------------------------------------------------------------------------- the contract case plays its part

async def test_contract_case_drives_its_fake(tmp_path):
    from comfyui_remote.tests.contract.case_speedpix import SpeedPixCase

    case = SpeedPixCase()
    await case.start()
    https = []
    try:
        def provider(key, name):
            table = case.profile(key)
            body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in table.items())
            (tmp_path / "profiles.toml").write_text(f"[profiles.{name}]\n{body}\n")
            https.append(Http(provider="speedpix", profile=name, policy=RetryPolicy(attempts=4, base_s=0.01,
                                                                                    cap_s=0.05)))
            return sp.SpeedPixProvider(Profiles(tmp_path).get(name), https[-1])

        good = provider(CANARY_SECRET, "good")
        bad = provider("wrong-" + CANARY_SECRET, "bad")
        assert "accepted" in await good.check()
        with pytest.raises(AuthError):
            await bad.check()
        wf, ovs, expect = case.workflow_single()
        ref = await good.submit(spec(wf, *ovs), "k")
        outs = [o for o in (await run(good, ref))[-1].outputs if o.kind == "image"]
        size, px, _ = await pixels(good.http, tmp_path, outs[0])
        assert [(size[0], size[1], px[:3])] == expect.images and case.remote_tasks() == 1
        with pytest.raises(RejectedInput):
            await good.validate(spec(case.bad_target()[0], *case.bad_target()[1]))
        case.inject("node_error")
        last = (await run(good, await good.submit(spec(wf), "k2")))[-1]
        assert isinstance(last.error, RemoteFailure) and not case.was_cancelled(ref.remote_id)
    finally:
        for h in https:
            await h.close()
        await case.stop()
