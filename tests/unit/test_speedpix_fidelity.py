"""The SpeedPix fake answers the documented examples (shared/providers/speedpix.md, shared/seeds/
speedpix-comfy_get_result.txt) with the documented shapes, and its gateway checks signatures the
way the facts describe (the documented test vector is accepted byte for byte)."""
from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from comfyui_remote.providers import speedpix_wire as sp
from comfyui_remote.tests.fakes.speedpix import FakeSpeedPix, Published
from comfyui_remote.tests.fakes.toolkit import Clock, png_bytes

SHARED = Path(__file__).resolve().parents[3] / "shared"
FACTS = SHARED / "providers" / "speedpix.md"
SEED = SHARED / "seeds" / "speedpix-comfy_get_result.txt"
REPO = Path(__file__).resolve().parents[2]
ENVELOPE = {"status", "apiInvokeId", "data", "errCode", "errMessage", "subErrCode", "subErrMessage"}
ULID = re.compile(r"^[0-9a-hjkmnp-tv-z]{26}$")
INVOKE = re.compile(r"^i_[0-9a-f]{24}$")

needs_shared = pytest.mark.skipif(not FACTS.exists() or not SEED.exists(),
                                  reason="shared/ reference material (providers/speedpix.md, seeds/) is not checked out")


# --------------------------------------------------------------------------- documented material

def facts() -> str:
    return FACTS.read_text(encoding="utf-8")


def facts_vector() -> dict:
    """The signing test vector of the facts file, parsed from it."""
    text = facts()
    block = text[text.index("Test vector"):]
    v = {k: re.search(rf"^{k}: (.+)$", block, re.M).group(1).strip()
         for k in ("date", "x-ca-timestamp", "x-ca-nonce", "content-md5", "x-ca-signature")}
    v["sts"] = json.loads('"' + re.search(r"^StringToSign: '(.+)'$", block, re.M).group(1) + '"')
    v["body"] = re.search(r"body `(\{[^`]+\})`", block).group(1)
    v["nobody_sig"] = re.search(r"MD5 line empty\): `x-ca-signature: ([^`]+)`", block).group(1)
    return v


def seed_example() -> dict:
    text = SEED.read_text(encoding="utf-8")
    start = text.index("{", text.index("Example"))
    end = text.index("Gateway error codes", start)
    raw = re.sub(r"(?<!:)//[^\n]*", "", text[start:end])  # "// comment", not the "//" of URLs
    return json.loads(raw[: raw.rindex("}") + 1])


def progress_example() -> dict:
    return json.loads(re.search(r"Doc example \(waiting\): `(\{.+?\})`", facts()).group(1))


def sdk_prompt_bytes() -> bytes:
    return re.search(r"Actual bytes sent by Python SDK: `(\{.+?\})`", facts()).group(1).encode("utf-8")


def shape(value):
    """Types of a JSON value, recursively (dict -> {key: shape}); None matches anything."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return None if value is None else type(value).__name__


# --------------------------------------------------------------------------- helpers

@pytest.fixture
async def fake():
    f = FakeSpeedPix(clock=Clock(speed=0), queue_s=2.0, run_s=10.0, steps=5)
    await f.start()
    yield f
    await f.stop()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


def signed(path: str, body: bytes | None, *, key="test-app-key", secret="test-app-secret", now_ms=None,
           md5_of: bytes | None = None) -> dict:
    h = sp.sign_request(key, secret, path, body if md5_of is None else md5_of,
                        now_ms=now_ms if now_ms is not None else int(time.time() * 1000), nonce=str(uuid.uuid4()))
    return h


async def call(session, fake, api: str, payload, **kw):
    body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
    headers = signed(f"/scc/{api}", body, **kw)
    async with session.post(f"{fake.url}/scc/{api}", data=body, headers=headers) as r:
        return r.status, dict(r.headers), await r.read()


async def ok(session, fake, api, payload) -> dict:
    status, headers, body = await call(session, fake, api, payload)
    assert status == 200 and headers["Content-Type"].startswith("application/json"), (status, headers, body)
    env = json.loads(body)
    assert ENVELOPE <= set(env) and INVOKE.match(env["apiInvokeId"])
    return env


def assert_refused(status, headers, body, want_status, message_prefix):
    assert status == want_status, (status, headers)
    assert headers["X-Ca-Error-Message"].startswith(message_prefix), headers
    assert headers.get("X-Ca-Request-Id") and body == b""


# --------------------------------------------------------------------------- gateway auth

@needs_shared
async def test_documented_vector_is_accepted_then_replay_refused(fake, session):
    v = facts_vector()
    fake.wall_offset_s = int(v["x-ca-timestamp"]) / 1000 - time.time()  # the gateway's clock at the vector's time
    headers = {"date": v["date"], "x-ca-key": "test-app-key", "x-ca-timestamp": v["x-ca-timestamp"],
               "x-ca-nonce": v["x-ca-nonce"], "x-ca-signature-method": "HmacSHA256",
               "x-ca-signature-headers": "x-ca-timestamp,x-ca-key,x-ca-nonce,x-ca-signature-method",
               "Content-Type": "application/json; charset=utf-8", "Accept": "application/json; charset=utf-8",
               "content-md5": v["content-md5"], "x-ca-signature": v["x-ca-signature"]}
    url = f"{fake.url}/scc/comfy_get_result"
    async with session.post(url, data=v["body"].encode(), headers=headers) as r:
        assert r.status == 200
        env = await r.json(content_type=None)
    assert env["subErrCode"] == "B_COMPUTING_CanNotFindTask"  # auth passed; the task is not in this fake
    async with session.post(url, data=v["body"].encode(), headers=headers) as r:
        assert_refused(r.status, dict(r.headers), await r.read(), 400, "Nonce Used")
    # the client's own signer reproduces the same header values (two implementations agree)
    mine = sp.sign_request("test-app-key", "test-app-secret", "/scc/comfy_get_result", v["body"].encode(),
                           now_ms=int(v["x-ca-timestamp"]), nonce=v["x-ca-nonce"])
    assert {k: mine[k] for k in headers} == headers
    nobody = sp.sign_request("test-app-key", "test-app-secret", "/scc/comfy_prompt", None,
                             now_ms=int(v["x-ca-timestamp"]), nonce=v["x-ca-nonce"])
    assert nobody["x-ca-signature"] == v["nobody_sig"]


@needs_shared
async def test_invalid_signature_echoes_the_server_string_to_sign(session):
    v = facts_vector()
    f = FakeSpeedPix(app_secret="another-secret")
    async with f:
        f.wall_offset_s = int(v["x-ca-timestamp"]) / 1000 - time.time()
        headers = sp.sign_request("test-app-key", "test-app-secret", "/scc/comfy_get_result", v["body"].encode(),
                                  now_ms=int(v["x-ca-timestamp"]), nonce=v["x-ca-nonce"])
        async with session.post(f"{f.url}/scc/comfy_get_result", data=v["body"].encode(), headers=headers) as r:
            assert_refused(r.status, dict(r.headers), await r.read(), 400, "Invalid Signature")
            assert r.headers["X-Ca-Error-Message"] == "Invalid Signature, Server StringToSign:" + v["sts"].replace(
                "\n", "#")
        assert f.task_count() == 0


async def test_gateway_refusals(fake, session):
    body = b'{"taskId":"x"}'
    assert_refused(*(await call(session, fake, "comfy_get_progress", body, key="nobody")), 400, "Invalid AppKey")
    now = int(time.time() * 1000)
    assert_refused(*(await call(session, fake, "comfy_get_progress", body, now_ms=now - 16 * 60 * 1000)), 400,
                   "Timestamp Expired")
    assert_refused(*(await call(session, fake, "comfy_get_progress", body, now_ms=now + 16 * 60 * 1000)), 400,
                   "Timestamp Expired")
    assert_refused(*(await call(session, fake, "comfy_get_progress", body, md5_of=b'{"taskId":"y"}')), 400,
                   "Invalid Content-MD5")
    headers = signed("/scc/comfy_get_progress", body)
    del headers["x-ca-signature"]
    async with session.post(f"{fake.url}/scc/comfy_get_progress", data=body, headers=headers) as r:
        assert_refused(r.status, dict(r.headers), await r.read(), 401, "Empty Signature")
    get_headers = sp.sign_request("test-app-key", "test-app-secret", "/scc/comfy_get_progress", None,
                                  now_ms=now, nonce=str(uuid.uuid4()), method="GET")
    async with session.get(f"{fake.url}/scc/comfy_get_progress", headers=get_headers) as r:
        assert_refused(r.status, dict(r.headers), await r.read(), 400, "Invalid HttpMethod")
    assert_refused(*(await call(session, fake, "comfy_nope", body)), 400, "Invalid Url")
    assert_refused(*(await call(session, fake, "comfy_get_progress", b"")), 400, "Empty Request Body")
    assert_refused(*(await call(session, fake, "comfy_get_progress", b"{not json")), 400, "Invalid Request Body")
    # Java SDK style: a body sent without content-md5 is accepted
    h = signed("/scc/comfy_get_progress", None)
    async with session.post(f"{fake.url}/scc/comfy_get_progress", data=body, headers=h) as r:
        assert r.status == 200 and (await r.json(content_type=None))["subErrCode"] == "B_COMPUTING_CanNotFindTask"


# --------------------------------------------------------------------------- comfy_prompt

@needs_shared
async def test_comfy_prompt_accepts_the_sdk_bytes(fake, session):
    fake.workflows["wf_1"] = Published("wf_1", "solid", {"prompt": ("string", ""), "steps": ("int", 20)})
    raw = sdk_prompt_bytes()
    headers = signed("/scc/comfy_prompt", raw)
    headers["X-SP-RESOURCE-CONFIG-ID"] = "default"
    async with session.post(f"{fake.url}/scc/comfy_prompt", data=raw, headers=headers) as r:
        assert r.status == 200
        env = await r.json(content_type=None)
    assert set(env) == ENVELOPE and env["status"] == 10
    assert env["errCode"] is env["subErrCode"] is env["errMessage"] is env["subErrMessage"] is None
    data = env["data"]
    assert shape(data) == {"taskId": "str", "status": "str", "estimatedDurationInSeconds": "float"}
    assert ULID.match(data["taskId"]) and data["status"] == "waiting"
    t_ms = 0
    for ch in data["taskId"][:10]:
        t_ms = t_ms * 32 + "0123456789abcdefghjkmnpqrstvwxyz".index(ch)
    assert abs(t_ms / 1000 - time.time()) < 60  # the ULID's time part is the submit time
    assert abs(int(env["apiInvokeId"][2:10], 16) - time.time()) < 60
    task = fake.tasks[data["taskId"]]
    assert task.inputs["prompt"] == "一只猫" and task.version == "v2" and task.resource_config == "default"


async def test_comfy_prompt_validation_errors(fake, session):
    cases = [({"inputs": {}}, "P_Request_ParamInvalid"),
             ({"workflow_id": "nope", "alias_id": "main", "inputs": {}}, "B_WORKFLOW_NotFound"),
             ({"workflow_id": "wf_solid", "version_id": "v9", "inputs": {}}, "B_WORKFLOW_VersionNotFound"),
             ({"workflow_id": "wf_solid", "alias_id": "main"}, "P_Request_ParamInvalid"),
             ({"workflow_id": "wf_solid", "alias_id": "main", "inputs": {"steps": "20"}}, "P_Request_ParamInvalid"),
             ({"workflow_id": "wf_solid", "alias_id": "main", "inputs": {"prompt": "UNSAFE"}}, "P_Request_ContentSafe")]
    for payload, code in cases:
        env = await ok(session, fake, "comfy_prompt", payload)
        assert env["status"] == 20 and env["subErrCode"] == code and env["errCode"] and env["data"] is None, env
    assert fake.task_count() == 0


# --------------------------------------------------------------------------- progress and result

@needs_shared
async def test_progress_walks_the_documented_states_with_documented_shapes(fake, session):
    doc = progress_example()
    sub = await ok(session, fake, "comfy_prompt", {"workflow_id": "wf_solid", "alias_id": "main",
                                                   "inputs": {"prompt": "p"}})
    tid = sub["data"]["taskId"]
    second = (await ok(session, fake, "comfy_prompt", {"workflow_id": "wf_solid", "alias_id": "main",
                                                       "inputs": {}}))["data"]["taskId"]
    waiting = await ok(session, fake, "comfy_get_progress", {"taskId": tid})
    assert set(waiting) == set(doc) and set(waiting["data"]) == set(doc["data"])
    assert shape(waiting["data"]) == {**shape(doc["data"]), "etaRelative": "float"}  # doc's 0 is a double
    assert waiting["data"]["lastQueueRemaining"] == 1
    later = await ok(session, fake, "comfy_get_progress", {"taskId": second})
    assert later["data"]["lastQueueRemaining"] == 2
    seen_states, nodes = [], []
    for _ in range(14):
        env = await ok(session, fake, "comfy_get_progress", {"taskId": tid})
        d = env["data"]
        assert {"taskId", "progress", "etaRelative", "status"} <= set(d)  # required by the Python SDK schema
        assert d["status"] in ("waiting", "running", "succeeded", "failed")
        seen_states.append(d["status"])
        if d["status"] == "running":
            assert set(d["state"]) == {"nodeLabel", "step", "maxSteps"} and 0 <= d["progress"] < 1
            assert isinstance(d["message"], str) and isinstance(d["state"]["step"], int)
            nodes.append((d["state"]["nodeLabel"], d["state"]["step"], d["state"]["maxSteps"]))
        fake.clock.advance(1.0)
    assert seen_states[0] == "waiting" and seen_states[-1] == "succeeded" and "running" in seen_states
    ks = [n for n in nodes if n[0] == "KSampler"]
    assert ks and all(n[2] == 5 and 1 <= n[1] <= 5 for n in ks) and [n[1] for n in ks] == sorted(n[1] for n in ks)
    assert [s for s in dict.fromkeys(seen_states)] == ["waiting", "running", "succeeded"]


@needs_shared
async def test_result_has_the_seed_shapes(fake, session):
    seed = seed_example()
    sub = await ok(session, fake, "comfy_prompt", {"workflow_id": "wf_solid", "alias_id": "main",
                                                   "inputs": {"prompt": "seed"}})
    tid = sub["data"]["taskId"]
    early = await ok(session, fake, "comfy_get_result", {"taskId": tid})
    assert early["status"] == 10 and early["data"]["status"] == "waiting" and early["data"]["images"] == []
    fake.clock.advance(20)
    env = await ok(session, fake, "comfy_get_result", {"taskId": tid})
    assert set(env) == set(seed) and env["status"] == 10
    data, want = env["data"], seed["data"]
    assert set(data) == set(want)
    for k in ("images", "taskDuration", "taskBeginTime", "taskId", "status", "taskEndTime"):
        assert shape(data[k]) == shape(want[k]), k
    assert set(data["result"]["poster"]) == set(want["result"]["poster"])
    assert shape(data["result"]["poster"]) == shape(want["result"]["poster"])
    assert data["taskDuration"] == data["taskEndTime"] - data["taskBeginTime"] == 10_000
    assert len(str(data["taskBeginTime"])) == 13 and data["status"] == "succeeded"
    assert data["result"]["poster"]["url"] == data["images"][0]  # as in the seed: same file twice
    assert data["result"]["poster"]["object_key"].startswith("comfy/output/")
    async with session.get(data["images"][0]) as r:
        assert r.status == 200 and (await r.read())[:8] == b"\x89PNG\r\n\x1a\n"


@needs_shared
async def test_service_error_codes_of_the_seed(fake, session):
    seed = SEED.read_text(encoding="utf-8")
    assert "B_COMPUTING_CanNotFindTask" in seed and "P_Request_ContentSafe" in seed
    for api in ("comfy_get_result", "comfy_get_progress"):
        env = await ok(session, fake, api, {"taskId": "01jgjgyaqh85f7rs23v0kbmtdb"})
        assert env["status"] == 20 and env["subErrCode"] == "B_COMPUTING_CanNotFindTask"
        assert env["subErrMessage"] == "Cannot find task:01jgjgyaqh85f7rs23v0kbmtdb" and env["errCode"]
    fake.content_safety_next = "output"
    tid = (await ok(session, fake, "comfy_prompt", {"workflow_id": "wf_solid", "alias_id": "main",
                                                    "inputs": {}}))["data"]["taskId"]
    fake.clock.advance(20)
    prog = await ok(session, fake, "comfy_get_progress", {"taskId": tid})
    assert prog["data"]["status"] == "failed"
    env = await ok(session, fake, "comfy_get_result", {"taskId": tid})
    assert (env["status"], env["subErrCode"], env["subErrMessage"]) == (
        20, "P_Request_ContentSafe", "The content is non-compliant.")


# --------------------------------------------------------------------------- uploads and the bucket

async def test_upload_sign_put_and_access_url(fake, session):
    env = await ok(session, fake, "sp_create_temp_file_upload_sign",
                   {"contentType": "image/png", "originalFilename": "a.png", "size": 10})
    d = env["data"]
    assert set(d) == {"uploadUrl", "objectKey", "path", "expireTime", "accessUrl"}
    src = png_bytes((1, 2, 3), (3, 3))
    async with session.put(d["uploadUrl"], data=src, headers={"Content-Type": "text/plain"}) as r:
        assert r.status == 403 and "SignatureDoesNotMatch" in await r.text()  # the content type is signed
    async with session.put(d["uploadUrl"], data=src, headers={"Content-Type": "image/png"}) as r:
        assert r.status == 200 and r.headers["ETag"]
    async with session.get(d["accessUrl"]) as r:
        assert r.status == 200 and await r.read() == src
    async with session.get(d["accessUrl"].replace("Signature=", "Signature=x")) as r:
        assert r.status == 403
    fake.wall_offset_s = 7200  # the upload URL lasts an hour, the temporary file a day (INFERRED)
    async with session.put(d["uploadUrl"], data=src, headers={"Content-Type": "image/png"}) as r:
        assert r.status == 403 and "<Code>AccessDenied</Code>" in await r.text()
    async with session.get(d["accessUrl"]) as r:
        assert r.status == 200
    fake.wall_offset_s = fake.temp_ttl_s + 60
    async with session.get(d["accessUrl"]) as r:
        assert r.status == 403 and "<Code>AccessDenied</Code>" in await r.text()


async def test_an_expired_temporary_file_is_refused_by_comfy_prompt(fake, session):
    d = (await ok(session, fake, "sp_create_temp_file_upload_sign",
                  {"contentType": "image/png", "originalFilename": "a.png"}))["data"]
    async with session.put(d["uploadUrl"], data=png_bytes(), headers={"Content-Type": "image/png"}) as r:
        assert r.status == 200
    fake.bucket_skew_s = fake.temp_ttl_s + 60
    env = await ok(session, fake, "comfy_prompt", {"workflow_id": "wf_echo", "alias_id": "main",
                                                   "inputs": {"image": d["accessUrl"]}})
    assert env["status"] == 20 and env["subErrCode"] == "P_Request_ParamInvalid" and fake.task_count() == 0


async def test_result_urls_expire_and_every_answer_signs_fresh_ones(fake, session):
    tid = (await ok(session, fake, "comfy_prompt", {"workflow_id": "wf_solid", "alias_id": "main",
                                                    "inputs": {}}))["data"]["taskId"]
    fake.clock.advance(20)
    first = (await ok(session, fake, "comfy_get_result", {"taskId": tid}))["data"]["images"][0]
    fake.expire_urls(next_answers=1)
    stale = (await ok(session, fake, "comfy_get_result", {"taskId": tid}))["data"]["images"][0]
    fresh = (await ok(session, fake, "comfy_get_result", {"taskId": tid}))["data"]["images"][0]
    assert fresh not in (first, stale)
    for url, status in ((first, 403), (stale, 403), (fresh, 200)):
        async with session.get(url) as r:
            assert r.status == status, url
            if status == 403:
                assert "Request has expired" in await r.text()


# --------------------------------------------------------------------------- standalone

async def test_runs_standalone():
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.fakes", "speedpix", "--port", "0",
                                                cwd=str(REPO), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert re.match(rb"speedpix fake listening on http://127\.0\.0\.1:\d+", line), line
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
