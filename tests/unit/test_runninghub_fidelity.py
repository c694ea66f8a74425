"""The RunningHub fake answers every documented example request with the documented shapes:
field sets, JSON types and envelopes are compared with ``shared/providers/samples/runninghub``."""
from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiohttp
import pytest
from aiohttp import web

from comfyui_remote.tests.fakes import runninghub_workflows as wf
from comfyui_remote.tests.fakes.runninghub import DEFAULT_KEY, FakeRunningHub, drain_ws
from comfyui_remote.tests.fakes.toolkit import png_bytes

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "providers" / "samples" / "runninghub"
pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"samples not found at {SAMPLES} (shared/ absent)")


def sample(name: str) -> Any:
    return json.loads((SAMPLES / f"{name}.json").read_text())


def assert_shape(actual: Any, expected: Any, path: str = "$", *, nullable: frozenset = frozenset(),
                 extra: frozenset = frozenset()) -> None:
    """Same keys (plus ``extra``), same JSON types; ``nullable`` paths may be null or typed."""
    if expected is None:
        assert actual is None or path in nullable, f"{path}: expected null, got {actual!r}"
        return
    if actual is None and path in nullable:
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {type(actual).__name__}"
        assert set(actual) - extra == set(expected), f"{path}: keys {sorted(actual)} != {sorted(expected)}"
        for k, v in expected.items():
            assert_shape(actual[k], v, f"{path}.{k}", nullable=nullable, extra=extra)
        return
    if isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected a list"
        if expected and actual:
            for item in actual:
                assert_shape(item, expected[0], f"{path}[]", nullable=nullable, extra=extra)
        return
    if isinstance(expected, bool):
        assert isinstance(actual, bool), f"{path}: expected bool"
    elif isinstance(expected, (int, float)):
        assert isinstance(actual, (int, float)) and not isinstance(actual, bool), f"{path}: expected number"
    else:
        assert isinstance(actual, type(expected)), f"{path}: expected {type(expected).__name__}, got {actual!r}"


@pytest.fixture
async def fake():
    f = FakeRunningHub()
    f.queue_s, f.run_s, f.output_lag_s, f.ws_close_after_s = 0.0, 0.3, 0.0, 0.05
    await f.start()
    async with aiohttp.ClientSession() as s:
        f.session = s  # type: ignore[attr-defined]
        yield f
    await f.stop()


async def post(f: FakeRunningHub, path: str, body: Any = None, headers: Any = None, **kw: Any) -> Any:
    async with f.session.post(f.url + path, json=body, headers=headers, **kw) as r:  # type: ignore[attr-defined]
        assert r.status == 200, await r.text()
        return await r.json()


async def create(f: FakeRunningHub, workflow_id: str = wf.WF_SOLID, **extra: Any) -> dict:
    return await post(f, "/task/openapi/create", {"apiKey": DEFAULT_KEY, "workflowId": workflow_id, **extra})


async def finished(f: FakeRunningHub, tid: str) -> dict:
    for _ in range(400):
        out = await post(f, "/task/openapi/outputs", {"apiKey": DEFAULT_KEY, "taskId": tid})
        if out["code"] in (0, 805) and out["msg"] not in ("APIKEY_TASK_IS_RUNNING",):
            return out
        await asyncio.sleep(0.02)
    raise AssertionError("task never finished")


# ---------------------------------------------------------------- account, workflow, apps

async def test_account_status_shape_and_lowercase_apikey(fake):
    out = await post(fake, "/uc/openapi/accountStatus", {"apikey": DEFAULT_KEY})
    assert_shape(out, sample("account_status"), nullable=frozenset({"$.data.remainMoney", "$.data.currency"}))
    assert out["data"]["currentTaskCounts"] == "0"  # a string in real bodies
    bad = await post(fake, "/uc/openapi/accountStatus", {"apikey": "nope-nope-nope"})
    assert bad == sample("account_status_bad_key")
    camel = await post(fake, "/uc/openapi/accountStatus", {"apiKey": DEFAULT_KEY})  # the 1601 pitfall
    assert camel["code"] == 1601 and camel["msg"] == "param apiKey is required"
    bearer_only = await post(fake, "/uc/openapi/accountStatus", {}, headers={"Authorization": f"Bearer {DEFAULT_KEY}"})
    assert bearer_only["code"] == 1601


async def test_get_json_api_format_is_a_json_string_of_the_sample_graph(fake):
    out = await post(fake, "/api/openapi/getJsonApiFormat", {"apiKey": DEFAULT_KEY, "workflowId": wf.WF_SOLID})
    ref = sample("get_json_api_format")
    assert_shape(out, ref)
    assert out["msg"] in ("SUCCESS", "success")
    got, want = json.loads(out["data"]["prompt"]), json.loads(ref["data"]["prompt"])
    assert {k: v["class_type"] for k, v in got.items()} == {k: v["class_type"] for k, v in want.items()}
    for k in want:
        assert set(got[k]["inputs"]) == set(want[k]["inputs"]) and got[k]["_meta"].keys() == want[k]["_meta"].keys()
    missing = await post(fake, "/api/openapi/getJsonApiFormat", {"apiKey": DEFAULT_KEY, "workflowId": "1"})
    assert missing["code"] == 380 and missing["msg"] == "WORKFLOW_NOT_EXISTS"
    unauth = await post(fake, "/api/openapi/getJsonApiFormat", {"apiKey": "wrong-key-123", "workflowId": wf.WF_SOLID})
    assert (unauth["code"], unauth["msg"], unauth["data"]) == (802, "APIKEY_UNAUTHORIZED", None)


async def test_ai_app_api_call_demo(fake):
    async with fake.session.get(fake.url + "/api/webapp/apiCallDemo",
                                params={"apiKey": DEFAULT_KEY, "webappId": wf.APP_KONTEXT}) as r:
        out = await r.json()
    ref = sample("ai_app_api_call_demo")
    assert_shape(out, ref, extra=frozenset({"accessEncrypted"}))  # accessEncrypted: [SDKGO]
    assert out["data"]["nodeInfoList"] == ref["data"]["nodeInfoList"]
    async with fake.session.get(fake.url + "/api/webapp/apiCallDemo",
                                params={"apiKey": DEFAULT_KEY, "webappId": "42"}) as r:
        assert (await r.json())["code"] == 901


# ---------------------------------------------------------------- create and the task lifecycle

async def test_create_queued_then_outputs_queued_running_success(fake):
    fake.queue_s, fake.run_s = 0.3, 0.3
    out = await create(fake)
    assert_shape(out, sample("create_queued"))
    assert out["data"]["taskStatus"] == "QUEUED" and out["data"]["netWssUrl"] is None
    tid = out["data"]["taskId"]
    assert isinstance(tid, str) and len(tid) == 19 and tid.isdigit()
    assert json.loads(out["data"]["promptTips"])["node_errors"] == {}
    q = await post(fake, "/task/openapi/outputs", {"apiKey": DEFAULT_KEY, "taskId": tid})
    assert q == sample("outputs_queued")
    st = await post(fake, "/task/openapi/status", {"apiKey": DEFAULT_KEY, "taskId": tid})
    assert_shape(st, sample("status_response")) and st["data"] == "QUEUED"
    while True:
        r = await post(fake, "/task/openapi/outputs", {"apiKey": DEFAULT_KEY, "taskId": tid})
        if r["code"] != 813:
            break
        await asyncio.sleep(0.02)
    assert_shape(r, sample("outputs_running"))
    assert (r["code"], r["msg"]) == (804, "APIKEY_TASK_IS_RUNNING")
    done = await finished(fake, tid)
    assert_shape(done, sample("outputs_success"),
                 nullable=frozenset({"$.data[].thirdPartyConsumeMoney", "$.data[].consumeMoney",
                                     "$.data[].consumeCoins"}))
    item = done["data"][0]
    assert item["fileType"] == "png" and item["nodeId"] == "9" and isinstance(item["taskCostTime"], str)
    async with fake.session.get(item["fileUrl"]) as r:  # unauthenticated GET with the right type
        assert r.status == 200 and r.content_type == "image/png"
        assert (await r.read()).startswith(b"\x89PNG")


async def test_create_running_net_wss_url_points_at_the_fake(fake):
    out = await create(fake)
    ref = sample("create_running")
    assert_shape(out, ref)
    url = out["data"]["netWssUrl"]
    parts, ref_parts = urlsplit(url), urlsplit(ref["data"]["netWssUrl"])
    assert parts.scheme == "ws" and parts.netloc == f"127.0.0.1:{fake.port}" and parts.path == ref_parts.path
    q, ref_q = parse_qs(parts.query), parse_qs(ref_parts.query)
    assert set(q) == set(ref_q)
    token = json.loads(base64.b64decode(unquote(q["Rh-Comfy-Auth"][0])))
    assert set(token) == set(json.loads(base64.b64decode(ref_q["Rh-Comfy-Auth"][0])))
    assert q["clientId"][0] == out["data"]["clientId"] and len(out["data"]["clientId"]) == 32


async def test_any_host_header_and_a_bearer_on_v1_are_accepted(fake):
    out = await create(fake)
    assert out["code"] == 0
    hdrs = {"Host": "www.runninghub.ai", "Authorization": "Bearer whatever"}
    out = await post(fake, "/task/openapi/create", {"apiKey": DEFAULT_KEY, "workflowId": wf.WF_SOLID}, headers=hdrs)
    assert out["code"] == 0


async def test_node_info_list_coercion_and_803(fake):
    ok = await create(fake, nodeInfoList=[{"nodeId": 3, "fieldName": "seed", "fieldValue": "1231231"},
                                          {"nodeId": "6", "fieldName": "text", "fieldValue": "1 girl",
                                           "description": "text"}])
    assert ok["code"] == 0
    assert fake.tasks[ok["data"]["taskId"]].graph["3"]["inputs"]["seed"] == 1231231
    for bad in ({"nodeId": "99", "fieldName": "text", "fieldValue": "x"},
                {"nodeId": "6", "fieldName": "nope", "fieldValue": "x"},
                {"nodeId": "3", "fieldName": "positive", "fieldValue": "x"},  # linked (INFERRED)
                {"nodeId": "3", "fieldName": "seed", "fieldValue": "not a number"}):
        out = await create(fake, nodeInfoList=[bad])
        assert (out["code"], out["msg"], out["data"]) == (803, "APIKEY_INVALID_NODE_INFO", None)


async def test_validation_failure_433(fake):
    graph = dict(wf.WORKFLOWS[wf.WF_SOLID]["graph"])
    graph["4"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "missing.safetensors"}}
    out = await create(fake, workflow=json.dumps(graph), nodeInfoList=[])
    ref = sample("create_error_validate_failed")
    assert_shape(out, ref)
    tips, ref_tips = json.loads(out["data"]["promptTips"]), json.loads(ref["data"]["promptTips"])
    assert_shape(tips, ref_tips)
    assert tips["node_errors"]["4"]["class_type"] == "CheckpointLoaderSimple"


async def test_codes_at_create(fake):
    assert (await create(fake, workflow_id=wf.WF_NOT_RUN))["code"] == 810
    assert (await create(fake, workflow_id="123"))["msg"] == "WORKFLOW_NOT_EXISTS"
    out = await post(fake, "/task/openapi/create", {"apiKey": "bad-key-0000", "workflowId": wf.WF_SOLID})
    assert (out["code"], out["data"]) == (802, None)
    app = await post(fake, "/task/openapi/ai-app/run", {"apiKey": DEFAULT_KEY, "webappId": 1, "nodeInfoList": []})
    assert app["code"] == 901
    fake.keys[DEFAULT_KEY]["balance"] = False
    assert (await create(fake))["code"] == 416
    fake.keys[DEFAULT_KEY]["balance"] = True
    fake.keys[DEFAULT_KEY]["free"] = True
    assert (await create(fake))["code"] == 801


async def test_concurrency_421_415_and_personal_queue(fake):
    fake.run_s = 30.0
    for _ in range(fake.concurrency_limit):
        assert (await create(fake))["code"] == 0
    assert await create(fake) == sample("create_error_queue_maxed")
    fake.keys[DEFAULT_KEY]["type"] = "EXCLUSIVE"
    assert (await create(fake)) == {"code": 415, "msg": "TASK_INSTANCE_MAXED", "data": None}
    queued = await create(fake, usePersonalQueue="true")  # the string form is accepted
    assert queued["code"] == 0 and queued["data"]["taskStatus"] == "QUEUED"
    fake.personal_queue_max = 1
    assert (await create(fake, usePersonalQueue=True))["code"] == 814
    acct = await post(fake, "/uc/openapi/accountStatus", {"apikey": DEFAULT_KEY})
    assert acct["data"]["currentTaskCounts"] == str(fake.concurrency_limit + 1)


async def test_ai_app_run_accepts_number_or_string_webapp_id(fake):
    for wid in (int(wf.APP_KONTEXT), wf.APP_KONTEXT):
        out = await post(fake, "/task/openapi/ai-app/run", {
            "apiKey": DEFAULT_KEY, "webappId": wid, "instanceType": "plus",
            "nodeInfoList": [{"nodeId": "52", "fieldName": "prompt", "fieldValue": "short hair"}]})
        assert_shape(out, sample("create_running"))


async def test_failed_outputs_805_and_cancel(fake):
    fake.fail_next(exception_type="TypeError", message="missing 2 required positional arguments")
    tid = (await create(fake))["data"]["taskId"]
    out = await finished(fake, tid)
    assert_shape(out, sample("outputs_failed"))
    reason = out["data"]["failedReason"]
    assert reason["node_id"] == "3" and reason["node_name"] == "KSampler"
    assert all(isinstance(x, str) for x in json.loads(reason["traceback"]))
    q = await post(fake, "/openapi/v2/query", {"taskId": tid}, headers={"Authorization": f"Bearer {DEFAULT_KEY}"})
    assert_shape(q, sample("v2_query_failed"), extra=frozenset({"failedReason"}))
    assert q["errorCode"] == "1000"

    fake.run_s = 30.0
    tid = (await create(fake))["data"]["taskId"]
    assert await post(fake, "/task/openapi/cancel", {"apiKey": DEFAULT_KEY, "taskId": tid}) == sample("cancel_ok")
    after = await post(fake, "/task/openapi/outputs", {"apiKey": DEFAULT_KEY, "taskId": tid})
    assert after["code"] == 805  # INFERRED: a cancelled task reads as failed
    assert (await post(fake, "/task/openapi/status", {"apiKey": DEFAULT_KEY, "taskId": tid}))["data"] == "FAILED"
    unknown = {"apiKey": DEFAULT_KEY, "taskId": "1234567890123456789"}
    assert await post(fake, "/task/openapi/cancel", unknown) == sample("outputs_not_found")
    assert await post(fake, "/task/openapi/outputs", unknown) == sample("outputs_not_found")


async def test_running_code0_variant_and_success_without_files(fake):
    fake.run_s = 30.0
    fake.running_code0 = True
    tid = (await create(fake))["data"]["taskId"]
    out = await post(fake, "/task/openapi/outputs", {"apiKey": DEFAULT_KEY, "taskId": tid})
    assert out == {"code": 0, "msg": "APIKEY_TASK_IS_RUNNING", "data": None}
    fake.run_s = 0.1
    tid = (await create(fake, workflow_id=wf.WF_PREVIEW))["data"]["taskId"]
    assert await finished(fake, tid) == {"code": 0, "msg": "success", "data": []}


# ---------------------------------------------------------------- v2

async def test_v2_query_running_and_success(fake):
    fake.run_s = 0.3
    tid = (await create(fake))["data"]["taskId"]
    auth = {"Authorization": f"Bearer {DEFAULT_KEY}"}
    q = await post(fake, "/openapi/v2/query", {"taskId": tid}, headers=auth)
    assert_shape(q, sample("v2_query_running")) and q["status"] == "RUNNING"
    await finished(fake, tid)
    q = await post(fake, "/openapi/v2/query", {"taskId": tid}, headers=auth)
    assert_shape(q, sample("v2_query_success"),
                 nullable=frozenset({"$.usage.consumeCoins", "$.usage.consumeMoney", "$.results[].text",
                                     "$.usage.thirdPartyConsumeMoney"}))
    assert q["errorCode"] == "" and q["results"][0]["nodeId"] == "9"
    nope = await post(fake, "/openapi/v2/query", {"taskId": "1"}, headers=auth)
    assert nope["errorCode"] == "1004" and nope["taskId"] == ""
    v1_key_only = await post(fake, "/openapi/v2/query", {"taskId": tid, "apiKey": DEFAULT_KEY})
    assert v1_key_only["errorCode"] == "1002"  # v2 is Bearer only


async def test_v2_queue_status_and_run_workflow(fake):
    async with fake.session.get(fake.url + "/openapi/v2/queue/status",
                                headers={"Authorization": f"Bearer {DEFAULT_KEY}"}) as r:
        assert_shape(await r.json(), sample("v2_queue_status"))
    out = await post(fake, f"/openapi/v2/run/workflow/{wf.WF_SOLID}", {"nodeInfoList": []},
                     headers={"Authorization": f"Bearer {DEFAULT_KEY}"})
    assert_shape(out, sample("v2_run_workflow_response"))
    bad = await post(fake, f"/openapi/v2/run/workflow/{wf.WF_SOLID}", {
        "nodeInfoList": [{"nodeId": "99", "fieldName": "x", "fieldValue": "y"}]},
        headers={"Authorization": f"Bearer {DEFAULT_KEY}"})
    assert bad["errorCode"] == "1101" and bad["taskId"] == ""


# ---------------------------------------------------------------- uploads

def _form(fields: dict, data: bytes, name: str = "in.png") -> aiohttp.FormData:
    form = aiohttp.FormData()
    for k, v in fields.items():
        form.add_field(k, v)
    form.add_field("file", data, filename=name, content_type="image/png")
    return form


async def test_legacy_upload_shape_and_size_limit(fake):
    data = png_bytes((1, 2, 3), (5, 5))
    out = await post(fake, "/task/openapi/upload", data=_form({"apiKey": DEFAULT_KEY, "fileType": "input"}, data))
    assert_shape(out, sample("upload_legacy"))
    assert out["data"]["fileName"].startswith("api/") and out["data"]["fileName"].endswith(".png")
    assert fake.uploads[out["data"]["fileName"]] == data
    big = b"\0" * (30 * 1024 * 1024 + 1)
    assert await post(fake, "/task/openapi/upload", data=_form({"apiKey": DEFAULT_KEY}, big)) == \
        sample("upload_legacy_too_large")
    bad = await post(fake, "/task/openapi/upload", data=_form({"apiKey": "wrong-key-1"}, data))
    assert bad["code"] == 802


async def test_v2_upload_shape_and_bad_key(fake):
    data = png_bytes((4, 5, 6), (5, 5))
    out = await post(fake, "/openapi/v2/media/upload/binary", data=_form({}, data),
                     headers={"Authorization": f"Bearer {DEFAULT_KEY}"})
    assert_shape(out, sample("upload_v2"))
    assert out["data"]["fileName"].startswith("openapi/") and out["data"]["size"] == str(len(data))
    async with fake.session.get(out["data"]["download_url"]) as r:
        assert await r.read() == data
    bad = await post(fake, "/openapi/v2/media/upload/binary", data=_form({}, data),
                     headers={"Authorization": "Bearer nope-nope"})
    assert bad == sample("upload_v2_bad_key")


async def test_lora_upload_url_and_put(fake):
    out = await post(fake, "/api/openapi/getLoraUploadUrl",
                     {"apiKey": DEFAULT_KEY, "loraName": "my", "md5Hex": "f8d958506e6c8044f79ccd7c814c6179"})
    assert_shape(out, sample("lora_upload_url"))
    async with fake.session.put(out["data"]["url"], data=b"weights",
                                headers={"Content-Type": "application/octet-stream"}) as r:
        assert r.status == 200
    assert fake.loras[out["data"]["fileName"]] == b"weights"


# ---------------------------------------------------------------- webhooks

async def test_webhook_callback_and_detail(fake):
    got: asyncio.Queue = asyncio.Queue()

    async def receive(request: web.Request) -> web.Response:
        await got.put(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        tid = (await create(fake, webhookUrl=f"http://127.0.0.1:{port}/hook"))["data"]["taskId"]
        cb = await asyncio.wait_for(got.get(), 10)
        assert_shape(cb, sample("webhook_callback"))
        event, ref_event = json.loads(cb["eventData"]), json.loads(sample("webhook_callback")["eventData"])
        assert event["code"] == 0 and set(ref_event["data"][0]) <= set(event["data"][0])
        for _ in range(100):
            detail = await post(fake, "/task/openapi/getWebhookDetail", {"apiKey": DEFAULT_KEY, "taskId": tid})
            if detail["data"]["callbackStatus"] == "SUCCESS":
                break
            await asyncio.sleep(0.02)
        assert_shape(detail, sample("webhook_detail"))
        assert detail["data"]["taskId"] == tid
        retry = await post(fake, "/task/openapi/retryWebhook", {"apiKey": DEFAULT_KEY, "webhookId": detail["data"]["id"]})
        assert retry == {"code": 0, "msg": "", "data": None}
        await asyncio.wait_for(got.get(), 10)
    finally:
        await runner.cleanup()
    plain = (await create(fake))["data"]["taskId"]
    none = await post(fake, "/task/openapi/getWebhookDetail", {"apiKey": DEFAULT_KEY, "taskId": plain})
    assert none == {"code": 1, "msg": "webhook event not exists", "data": None}


# ---------------------------------------------------------------- WebSocket

def _frame_shapes(frames: list) -> dict:
    return {f["type"]: set(f["data"]) for f in frames if isinstance(f, dict)}


async def test_ws_sequence_success_matches_the_documented_frames(fake):
    out = await create(fake)
    async with fake.session.ws_connect(out["data"]["netWssUrl"]) as ws:
        frames = await drain_ws(ws)
    text = [f for f in frames if isinstance(f, dict)]
    assert any(isinstance(f, bytes) for f in frames)  # a binary preview clients must ignore
    ref = sample("ws_sequence_success")
    assert [f["type"] for f in text][:3] == ["status", "execution_start", "execution_cached"]
    assert text[-2]["type"] == "execution_success" and text[-1] == {"type": "executing", "data": {
        "node": None, "prompt_id": text[-1]["data"]["prompt_id"]}}
    assert _frame_shapes(text) == _frame_shapes(ref)
    assert text[2]["data"]["nodes"] == ["4", "5"]
    steps = [f["data"]["value"] for f in text if f["type"] == "progress"]
    assert steps == [1, 2, 3, 4]


async def test_ws_sequence_error_and_refusals(fake):
    fake.fail_next(node_id="6", exception_type="TypeError", message="boom")
    out = await create(fake)
    async with fake.session.ws_connect(out["data"]["netWssUrl"]) as ws:
        frames = [f for f in await drain_ws(ws) if isinstance(f, dict)]
    ref = sample("ws_sequence_error")
    shapes = _frame_shapes(frames)
    for kind, keys in _frame_shapes(ref).items():
        assert shapes[kind] == keys, kind
    err = next(f for f in frames if f["type"] == "execution_error")["data"]
    assert (err["node_id"], err["node_type"], err["exception_type"]) == ("6", "CLIPTextEncode", "TypeError")
    bad = out["data"]["netWssUrl"].split("&Rh-Comfy-Auth=")[0] + "&Rh-Comfy-Auth=forged"
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await fake.session.ws_connect(bad)
    assert e.value.status == 403


async def test_ws_drop_and_reconnect_gets_current_node(fake):
    fake.run_s = 2.0
    fake.faults.add("ws", "ws_drop", after=3)
    url = (await create(fake))["data"]["netWssUrl"]
    async with fake.session.ws_connect(url) as ws:
        first = await drain_ws(ws)
    assert len(first) == 3
    async with fake.session.ws_connect(url) as ws:
        again = [f for f in await drain_ws(ws) if isinstance(f, dict)]
    assert again[0]["type"] == "status"
    assert again[-2]["type"] == "execution_success"


# ---------------------------------------------------------------- signed, expiring links

async def _get(f: FakeRunningHub, url: str) -> tuple[int, bytes]:
    async with f.session.get(url) as r:  # type: ignore[attr-defined]
        return r.status, await r.read()


async def test_result_links_are_signed_for_a_day_and_expire(fake):
    tid = (await create(fake))["data"]["taskId"]
    url = (await finished(fake, tid))["data"][0]["fileUrl"]
    q = parse_qs(urlsplit(url).query)
    assert q["q-sign-algorithm"] == ["sha1"] and q["q-signature"][0]
    start, end = map(int, q["q-sign-time"][0].split(";"))
    assert end - start == 86400  # integrators report 24 h [facts §7]
    status, body = await _get(fake, url)
    assert status == 200 and body.startswith(b"\x89PNG")
    status, body = await _get(fake, url.replace("q-signature=", "q-signature=0"))
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body
    fake.expire_urls()  # what was handed out expires; the next answer listing files is stale too
    status, body = await _get(fake, url)
    assert status == 403 and b"<Code>AccessDenied</Code>" in body and b"Request has expired" in body
    stale = (await post(fake, "/task/openapi/outputs", {"apiKey": DEFAULT_KEY, "taskId": tid}))["data"][0]["fileUrl"]
    assert (await _get(fake, stale))[0] == 403
    fresh = (await post(fake, "/task/openapi/outputs", {"apiKey": DEFAULT_KEY, "taskId": tid}))["data"][0]["fileUrl"]
    assert fresh != url and await _get(fake, fresh) == (200, body_of(fake, fresh))
    q2 = await post(fake, "/openapi/v2/query", {"taskId": tid}, headers={"Authorization": f"Bearer {DEFAULT_KEY}"})
    assert (await _get(fake, q2["results"][0]["url"]))[0] == 200  # v2 query links are signed afresh too


def body_of(f: FakeRunningHub, url: str) -> bytes:
    return f.files[urlsplit(url).path[len("/files/"):]][0]


async def test_v2_upload_link_is_signed_for_one_day(fake):
    data = png_bytes((7, 8, 9), (4, 4))
    out = await post(fake, "/openapi/v2/media/upload/binary", data=_form({}, data),
                     headers={"Authorization": f"Bearer {DEFAULT_KEY}"})
    link = out["data"]["download_url"]
    start, end = map(int, parse_qs(urlsplit(link).query)["q-sign-time"][0].split(";"))
    assert end - start == 86400 and await _get(fake, link) == (200, data)
    fake.expire_urls(stale_next=0)
    assert (await _get(fake, link))[0] == 403


async def test_per_key_concurrency_limit(fake):
    fake.run_s = 30.0
    fake.keys[DEFAULT_KEY]["limit"] = 5
    for _ in range(5):
        assert (await create(fake))["code"] == 0
    assert (await create(fake))["code"] == 421
    async with fake.session.get(fake.url + "/openapi/v2/queue/status",
                                headers={"Authorization": f"Bearer {DEFAULT_KEY}"}) as r:
        data = (await r.json())["data"]
    assert data["concurrentLimit"] == 5 and data["totalCurrentTasks"] == "5"


async def test_cancel_of_a_finished_task_answers_0_and_changes_nothing(fake):
    tid = (await create(fake))["data"]["taskId"]
    done = await finished(fake, tid)
    assert await post(fake, "/task/openapi/cancel", {"apiKey": DEFAULT_KEY, "taskId": tid}) == sample("cancel_ok")
    again = await post(fake, "/task/openapi/outputs", {"apiKey": DEFAULT_KEY, "taskId": tid})
    assert again["code"] == 0 and [i["nodeId"] for i in again["data"]] == [i["nodeId"] for i in done["data"]]
    assert fake.task_ended(tid) and not fake.tasks[tid].cancelled
