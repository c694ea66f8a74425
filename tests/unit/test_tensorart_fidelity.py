"""The TAMS fake answers the documented requests with the documented shapes (facts file
``shared/providers/tensorart.md`` and seed ``shared/seeds/tensorart-tams-get-job.txt``), using a
plain aiohttp client — no provider code involved."""
from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from functools import lru_cache
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from comfyui_remote.tests.fakes.tensorart import DEFAULT_API_KEY, FakeTensorArt
from comfyui_remote.tests.fakes.toolkit import png_bytes

SHARED = Path(__file__).resolve().parents[3] / "shared"
SEED = SHARED / "seeds" / "tensorart-tams-get-job.txt"
BEARER = {"Authorization": f"Bearer {DEFAULT_API_KEY}", "Accept": "application/json"}
# Documented example bodies (facts §2.5, §2.8; tams-signature-demo python/demo.py).
DEMO_TEMPLATE_JOB = {"request_id": "9f2bf085998e76acd5c8bc306a4f034f", "templateId": "676018193025756628",
                     "fields": {"fieldAttrs": [
                         {"nodeId": "25", "fieldName": "image", "fieldValue": "f29036b4-ff7b-4394-8c26-aabc1bdae008"},
                         {"nodeId": "27", "fieldName": "text", "fieldValue": "1 girl, amber_eyes"}]}}
MISSING_FIELD = {"template_id": "676018193025756628", "fields": {"field_attrs": [
    {"node_id": "27", "field_name": "text", "field_value": "1 girl, amber_eyes"}]}}
GET_TEMPLATE = {"templateId": "676018193025756628", "name": "二次元转真实", "fields": {"fieldAttrs": [
    {"nodeId": "25", "fieldName": "image", "fieldValue": ""}, {"nodeId": "27", "fieldName": "text", "fieldValue": "1 girl"}]}}
STAGES = [{"type": "INPUT_INITIALIZE", "inputInitialize": {"seed": -1, "count": 1}},
          {"type": "DIFFUSION", "diffusion": {"width": 512, "height": 512, "prompts": [{"text": "1girl"}],
                                              "sampler": "DPM++ 2M Karras", "sdVae": "Automatic", "steps": 15,
                                              "sd_model": "600423083519508503", "clip_skip": 2, "cfg_scale": 7}}]


def seed_examples() -> tuple[dict, dict]:
    if not SEED.exists():
        pytest.skip(f"shared seeds not found at {SEED} (run inside the project workspace)")
    text = SEED.read_text()
    dec = json.JSONDecoder()
    job, _ = dec.raw_decode(text, text.index('{\n  "job"'))
    status, _ = dec.raw_decode(text, text.index('{\n  "code"'))
    return job, status


@lru_cache(maxsize=None)
def keypair():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, pub


def signed(key, method: str, path: str, body: bytes, *, app="app-1", nonce=None, ts=None) -> dict:
    ts = str(int(time.time()) if ts is None else ts)
    nonce = nonce or hashlib.md5(ts.encode()).hexdigest()  # the official demos' nonce recipe
    sig = base64.b64encode(key.sign(f"{method}\n{path}\n{ts}\n{nonce}\n".encode() + body, padding.PKCS1v15(),
                                    hashes.SHA256())).decode()
    return {"Authorization": f"TAMS-SHA256-RSA app_id={app},nonce_str={nonce},timestamp={ts},signature={sig}",
            "Content-Type": "application/json"}


@pytest.fixture
async def env():
    fake = FakeTensorArt()
    fake.created_s, fake.queue_s, fake.run_s, fake.step_s = 0.0, 0.2, 0.2, 0.0
    await fake.start()
    async with aiohttp.ClientSession() as s:
        yield fake, s
    await fake.stop()


async def call(s, fake, method, path, body=None, headers=None):
    async with s.request(method, fake.url + path, json=body, headers=BEARER if headers is None else headers) as r:
        return r.status, await r.json(content_type=None), dict(r.headers)


def same_shape(got, doc, where="job"):
    """Every field the fake sends is documented with the same JSON type (int64 → string)."""
    if isinstance(doc, dict):
        assert isinstance(got, dict), where
        if not doc:  # map fields documented as {} (nodes, finishedNodes)
            return
        extra = set(got) - set(doc)
        assert not extra, f"{where}: undocumented fields {extra}"
        for k, v in got.items():
            if v is not None:
                same_shape(v, doc[k], f"{where}.{k}")
    elif isinstance(doc, list):
        assert isinstance(got, list), where
        for i, v in enumerate(got):
            same_shape(v, doc[0], f"{where}[{i}]")
    elif isinstance(doc, bool):
        assert isinstance(got, bool), where
    elif isinstance(doc, (int, float)):
        assert isinstance(got, (int, float)) and not isinstance(got, bool), where
    else:
        assert isinstance(got, str), f"{where}: {got!r} is not a string"


async def test_get_job_in_every_state_has_the_seed_shape(env):
    fake, s = env
    doc, _ = seed_examples()
    statuses = {"DEFAULT", "CREATED", "PENDING", "RUNNING", "CANCELED", "SUCCESS", "FAILED", "WAITING"}
    st, created, _ = await call(s, fake, "POST", "/v1/jobs/workflow/template",
                                {"requestId": "r1", "templateId": "700000000000000001", "fields": {"fieldAttrs": [
                                    {"nodeId": "6", "fieldName": "text", "fieldValue": "x"},
                                    {"nodeId": "7", "fieldName": "width", "fieldValue": 16},
                                    {"nodeId": "7", "fieldName": "height", "fieldValue": "16"}]}})
    assert st == 200 and set(created) == {"job"}
    job_id = created["job"]["id"]
    assert isinstance(job_id, str) and job_id.isdigit()
    seen = {}
    for _ in range(400):
        st, d, _ = await call(s, fake, "GET", f"/v1/jobs/{job_id}")
        assert st == 200 and set(d) == {"job"}
        same_shape(d, doc)
        job = d["job"]
        assert job["status"] in statuses
        seen.setdefault(job["status"], job)
        if job["status"] == "SUCCESS":
            break
        fake.clock.advance(0.01)
    assert {"WAITING", "RUNNING", "SUCCESS"} <= set(seen)
    assert seen["WAITING"]["waitingInfo"]["queueRank"].isdigit() and seen["WAITING"]["waitingInfo"]["queueLen"].isdigit()
    wfi = seen["SUCCESS"]["successInfo"]["workflowFinishItem"]
    node = next(n for n in wfi["nodes"].values() if n.get("outputUi"))
    assert set(node["outputUi"]["images"][0]) == {"filename", "type", "height", "width", "format", "imageResourceId"}
    img = seen["SUCCESS"]["successInfo"]["images"][0]
    assert img["expiredIn"].isdigit() and img["meta"]["image"]["format"] == "png"


async def test_failed_and_canceled_jobs_have_the_seed_shape(env):
    fake, s = env
    doc, _ = seed_examples()
    fake.fail_next("transitory")
    _, d, _ = await call(s, fake, "POST", "/v1/jobs/workflow/template", DEMO_TEMPLATE_JOB | {"request_id": "f"})
    assert d["code"] == 3 and "resource not found" in d["details"][0]["message"]  # the demo's id is not uploaded here
    rid = await upload(s, fake)
    body = json.loads(json.dumps(DEMO_TEMPLATE_JOB).replace("f29036b4-ff7b-4394-8c26-aabc1bdae008", rid))
    st, d, _ = await call(s, fake, "POST", "/v1/jobs/workflow/template", body)
    assert st == 200
    fake.clock.advance(5)
    _, got, _ = await call(s, fake, "GET", f"/v1/jobs/{d['job']['id']}")
    same_shape(got, doc)
    assert got["job"]["failedInfo"]["code"] == "TRANSITORY_ERROR" and got["job"]["credits"] == 0
    _, d, _ = await call(s, fake, "POST", "/v1/jobs/workflow/template", body | {"request_id": "other"})
    st, c, _ = await call(s, fake, "DELETE", f"/v1/jobs/{d['job']['id']}")
    assert st == 200 and c == {"jobId": d["job"]["id"]}
    _, got, _ = await call(s, fake, "GET", f"/v1/jobs/{d['job']['id']}")
    same_shape(got, doc)
    assert got["job"]["status"] == "CANCELED"
    st, e, _ = await call(s, fake, "DELETE", f"/v1/jobs/{d['job']['id']}")
    assert st == 400 and e["code"] == 9


async def test_unknown_job_is_404_google_rpc_status(env):
    fake, s = env
    _, doc = seed_examples()
    st, d, h = await call(s, fake, "GET", "/v1/jobs/1")
    assert st == 404 and h["Content-Type"].startswith("application/json")
    same_shape(d, doc, "status")
    assert d["code"] == 5 and "job not found" in d["message"]


async def upload(s, fake, body=None) -> str:
    st, d, _ = await call(s, fake, "POST", "/v1/resource/image", {"expireSec": 3600} if body is None else body)
    assert st == 200 and set(d) == {"resourceId", "putUrl", "headers"} and isinstance(d["headers"], dict)
    async with s.put(d["putUrl"], data=png_bytes((9, 8, 7)), headers=d["headers"]) as r:
        assert r.status == 200 and (await r.json(content_type=None)) == {"Status": "OK"}
    return d["resourceId"]


@pytest.mark.parametrize("body", [{"expireSec": 3600}, {}, {"expireSec": "3600", "term": 1}, {"expire_sec": "60"}])
async def test_upload_accepts_the_documented_bodies(env, body):
    fake, s = env
    rid = await upload(s, fake, body)
    assert str(uuid.UUID(rid)) == rid


async def test_put_without_the_returned_headers_is_refused(env):
    fake, s = env
    _, d, _ = await call(s, fake, "POST", "/v1/resource/image", {})
    async with s.put(d["putUrl"], data=b"x", headers={"Content-Type": "image/png"}) as r:
        assert r.status == 403 and "SignatureDoesNotMatch" in await r.text()
    async with s.put(d["putUrl"], data=b"x", headers={**d["headers"], **BEARER}) as r:
        assert r.status == 400


async def test_demo_template_job_mixed_case_and_idempotent_request_id(env):
    fake, s = env
    rid = await upload(s, fake)
    body = json.loads(json.dumps(DEMO_TEMPLATE_JOB).replace("f29036b4-ff7b-4394-8c26-aabc1bdae008", rid))
    st1, a, _ = await call(s, fake, "POST", "/v1/jobs/workflow/template", body)
    st2, b, _ = await call(s, fake, "POST", "/v1/jobs/workflow/template", body)
    assert st1 == st2 == 200 and a["job"]["id"] == b["job"]["id"] and fake.created == 1


async def test_template_check_documented_errors(env):
    fake, s = env
    st, d, _ = await call(s, fake, "POST", "/v1/jobs/workflow/template/check", MISSING_FIELD)
    assert st == 500 and d == {"code": 2, "message": "can't find [nodeId:fieldName] 25:image in fields parameter",
                               "details": []}
    body = {"templateId": "676018193025756628", "fields": {"fieldAttrs": [
        {"nodeId": "25", "fieldName": "image", "fieldValue": None},
        {"nodeId": "27", "fieldName": "text", "fieldValue": "1 girl"}]}}
    st, d, _ = await call(s, fake, "POST", "/v1/jobs/workflow/template/check", body)
    assert st == 400 and d == {"code": 3, "message": "Params Valid", "details": [
        {"@type": "type.googleapis.com/tams_api.ArgumentError", "field": "workflow",
         "message": "node id: 25\nclass type: LoadImage\nimage: 字段必填\n"}]}
    rid = await upload(s, fake)
    body["fields"]["fieldAttrs"][0]["fieldValue"] = rid
    st, d, _ = await call(s, fake, "POST", "/v1/jobs/workflow/template/check", body)
    assert st == 200 and d["valid"] is True and isinstance(d["credits"], (int, float))


async def test_get_template_matches_the_documented_example(env):
    fake, s = env
    st, d, _ = await call(s, fake, "GET", "/v1/workflows/676018193025756628")
    assert st == 200 and d == GET_TEMPLATE
    st, d, _ = await call(s, fake, "GET", "/v1/workflows/1")
    assert st == 404 and d["code"] == 5


async def test_workflow_graph_with_classType_and_params_check(env):
    fake, s = env
    rid = await upload(s, fake)
    params = {"13": {"classType": "TensorArt_LoadImage", "inputs": {"image": rid}},
              "7": {"classType": "PreviewImage", "inputs": {"images": ["13", 0]},
                    "properties": {"Node name for S&R": "PreviewImage"}}}
    st, d, _ = await call(s, fake, "POST", "/v1/jobs/workflow/params/check", {"params": params})
    assert st == 200 and d["valid"] is True and d["credits"] > 0
    st, d, _ = await call(s, fake, "POST", "/v1/jobs/workflow", {"request_id": "g1", "params": params})
    assert st == 200 and d["job"]["status"] in ("CREATED", "WAITING")
    bad = {"1": {"classType": "MysteryNode", "inputs": {}}, **params}
    st, d, _ = await call(s, fake, "POST", "/v1/jobs/workflow", {"requestId": "g2", "params": bad})
    assert st == 400 and d["code"] == 3 and "class type: MysteryNode" in d["details"][0]["message"]
    st, d, _ = await call(s, fake, "POST", "/v1/jobs/workflow", {"params": params})
    assert st == 400 and d["code"] == 3  # requestId is required


async def test_stage_job_and_credits_endpoints(env):
    fake, s = env
    st, d, _ = await call(s, fake, "POST", "/v1/jobs/credits", {"stages": STAGES})
    assert st == 200 and isinstance(d["credits"], (int, float))
    st, d, _ = await call(s, fake, "POST", "/v1/jobs", {"request_id": "1562068719690532983734", "stages": STAGES})
    assert st == 200 and d["job"]["id"].isdigit()
    st, d, _ = await call(s, fake, "GET", "/v1/models/600423083519508503")
    assert st == 200 and d["model"]["modelType"] == "CHECKPOINT"


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc", f"bearer {DEFAULT_API_KEY}"])
async def test_bad_bearer_is_401_and_nothing_runs(env, header):
    fake, s = env
    h = {} if header is None else {"Authorization": header}
    st, d, _ = await call(s, fake, "POST", "/v1/jobs/workflow/template", DEMO_TEMPLATE_JOB, headers=h)
    assert st == 401 and d["code"] == 16 and fake.created == 0


@pytest.mark.parametrize("nonce", [None, uuid.uuid4().hex, "a1b2", hashlib.sha256(b"1").hexdigest()])
async def test_rsa_signature_accepted_with_any_nonce_style(env, nonce):
    fake, s = env
    key, pub = keypair()
    fake.add_app("app-1", pub)
    body = json.dumps({"templateId": "676018193025756628", "fields": {"fieldAttrs": []}}).encode()
    path = "/v1/jobs/workflow/template/check"
    async with s.post(fake.url + path, data=body, headers=signed(key, "POST", path, body, nonce=nonce)) as r:
        assert r.status == 500  # authenticated; the documented "can't find" error follows
    async with s.get(fake.url + "/v1/jobs/5?x=1", headers=signed(key, "GET", "/v1/jobs/5?x=1", b"", nonce=nonce)) as r:
        assert r.status == 404  # query string is part of the signed URL


@pytest.mark.parametrize("tamper", ["body", "path", "stale", "app", "replay", "garbage"])
async def test_bad_rsa_signatures_are_401(env, tamper):
    fake, s = env
    key, pub = keypair()
    fake.add_app("app-1", pub)
    path, body = "/v1/jobs/credits", json.dumps({"stages": STAGES}).encode()
    h = signed(key, "POST", path, body, ts=int(time.time()) - 3600 if tamper == "stale" else None,
               app="app-2" if tamper == "app" else "app-1", nonce=uuid.uuid4().hex)
    send = body + b" " if tamper == "body" else body
    if tamper == "path":
        h = signed(key, "POST", "/v1/jobs", body)
    if tamper == "garbage":
        h["Authorization"] = h["Authorization"].replace("signature=", "signature=AAAA")
    if tamper == "replay":
        async with s.post(fake.url + path, data=send, headers=h) as r:
            assert r.status == 200
    async with s.post(fake.url + path, data=send, headers=h) as r:
        assert r.status == 401 and (await r.json())["code"] == 16


async def test_qps_limit_is_429_resource_exhausted(env):
    fake, s = env
    fake.qps_limit = 5
    codes = [(await call(s, fake, "GET", "/v1/jobs/1"))[0] for _ in range(7)]
    assert codes[:5] == [404] * 5 and codes[5:] == [429, 429]
    _, d, _ = await call(s, fake, "GET", "/v1/jobs/1")
    assert d["code"] == 8


async def finished_two_image_job(s, fake, request_id: str) -> str:
    """A job of the two-output template, run to SUCCESS on the fake's clock; its id."""
    _, d, _ = await call(s, fake, "POST", "/v1/jobs/workflow/template", {
        "requestId": request_id, "templateId": "700000000000000002", "fields": {"fieldAttrs": [
            {"nodeId": "6", "fieldName": "text", "fieldValue": "t"}]}})
    fake.clock.advance(5)
    return d["job"]["id"]


async def test_result_urls_expire(env):
    fake, s = env
    job_id = await finished_two_image_job(s, fake, "e")
    _, job, _ = await call(s, fake, "GET", f"/v1/jobs/{job_id}")
    images = job["job"]["successInfo"]["images"]
    assert len(images) == 2
    async with s.get(images[0]["url"]) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "image/png"
    fake.clock.advance(fake.url_ttl_s + 1)
    assert int(images[0]["expiredIn"]) < fake.unix_now()
    async with s.get(images[0]["url"]) as r:
        assert r.status == 403 and "AccessDenied" in await r.text()


async def test_expire_urls_refuses_every_link_so_far_and_the_next_answer_signs_fresh_ones(env):
    fake, s = env
    job_id = await finished_two_image_job(s, fake, "x")

    async def first_url() -> str:
        _, job, _ = await call(s, fake, "GET", f"/v1/jobs/{job_id}")
        return job["job"]["successInfo"]["images"][0]["url"]

    old = await first_url()
    fake.expire_urls()
    stale, fresh = await first_url(), await first_url()
    assert fresh not in (old, stale)
    for url, code in ((old, 403), (stale, 403), (fresh, 200)):
        async with s.get(url) as r:
            assert r.status == code
            if code == 403:
                text = await r.text()
                assert "<Code>AccessDenied</Code>" in text and "Request has expired" in text


async def test_unpopulated_fields_and_legacy_shape(env):
    fake, s = env
    fake.emit_unpopulated, fake.legacy_shape = False, True
    _, d, _ = await call(s, fake, "POST", "/v1/jobs/workflow/template", {
        "requestId": "l", "templateId": "700000000000000002", "fields": {"fieldAttrs": [
            {"nodeId": "6", "fieldName": "text", "fieldValue": "t"}]}})
    assert d["job"]["status"] == "WAITING" and "successInfo" not in d["job"] and "runningInfo" not in d["job"]
    assert set(d["job"]["waitingInfo"]) == {"queueRank"}
    fake.clock.advance(0.3)
    _, d, _ = await call(s, fake, "GET", f"/v1/jobs/{d['job']['id']}")
    assert d["job"]["status"] == "RUNNING" and "stages" in d["job"]["runningInfo"]
