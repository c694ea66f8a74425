"""The nextGPU fake answers the documented requests with the documented shapes.

Every JSON example of the SEED (``shared/seeds/nextgpu-api.md``: four publish request/response
pairs, the two WebSocket messages, the getTask request/response) is replayed against the fake and
compared field by field — key order, JSON types, envelopes — with ids, times and URLs aside; the
error shapes and quirks of ``shared/providers/nextgpu.md`` (§2.2, §4, §5.4, §9) are checked too.
"""
from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from comfyui_remote.tests.fakes import nextgpu_apps as apps
from comfyui_remote.tests.fakes.nextgpu import FakeNextGPU
from comfyui_remote.tests.fakes.toolkit import png_bytes

SHARED = Path(__file__).resolve().parents[3] / "shared"
SEED = SHARED / "seeds" / "nextgpu-api.md"
pytestmark = pytest.mark.skipif(not SEED.exists(), reason=f"{SEED} is absent (shared reference material)")

WS_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")
DB_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
LIMIT_S = 15


def seed_blocks() -> list:
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", SEED.read_text(encoding="utf-8"), re.S)]


def same_shape(got: Any, want: Any, where: str = "$") -> None:
    """Same keys in the same order and the same JSON types, recursively (first list item)."""
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{where}: {type(got).__name__} instead of object"
        assert list(got) == list(want), f"{where}: keys {list(got)} != {list(want)}"
        for k in want:
            same_shape(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list), f"{where}: {type(got).__name__} instead of array"
        if want and got:
            same_shape(got[0], want[0], f"{where}[0]")
    elif want is None:
        assert got is None, f"{where}: {got!r} instead of null"
    else:
        t = bool if isinstance(want, bool) else (int if isinstance(want, int) else type(want))
        assert type(got) is t, f"{where}: {type(got).__name__} instead of {t.__name__}"


@pytest.fixture
async def fake():
    f = FakeNextGPU(run_s=0.1, dispatch_s=0.01, local_queue_s=0.01, foreign_run_s=0.02)
    blocks = seed_blocks()
    for req in [blocks[i] for i in (0, 2, 4, 6)] + [json.loads(blocks[11]["task"]["request"])]:
        app = apps.echo_app(req["title"])
        app.mapping["promptText"] = "39->inputs->torchscript_jit"  # example 2 also sends a prompt
        f.add_app(app)
        url = req["data"]["parameters"]["imageName"]
        f.web[url] = png_bytes((40, 80, 120), (6, 4))  # the nodes' view of the seed's input URLs
    await f.start()
    yield f
    await f.stop()


@pytest.fixture
async def client():
    async with aiohttp.ClientSession() as s:
        yield s


async def post(client: aiohttp.ClientSession, url: str, body: Any, **kw: Any) -> tuple[int, str, Any]:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body, ensure_ascii=False)
    async with client.post(url, data=data, **kw) as r:
        text = await r.text()
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        return r.status, r.headers.get("Content-Type", ""), parsed if parsed is not None else text


async def until_done(fake: FakeNextGPU, task_id: str) -> None:
    async def _wait() -> None:
        while fake.tasks[task_id].state not in (3, 4):
            await asyncio.sleep(0.01)
    await asyncio.wait_for(_wait(), LIMIT_S)


# --------------------------------------------------------------------------- publish

@pytest.mark.parametrize("n", [0, 1, 2, 3])
async def test_publish_examples(fake, client, n):
    blocks = seed_blocks()
    req, want = blocks[2 * n], blocks[2 * n + 1]
    status, ctype, got = await post(client, fake.url + "/session/publish", req)
    assert status == 200 and ctype.startswith("application/json")
    same_shape(got, want)
    assert got["codeID"] == 200 and got["msg"] == "success" and got["taskID"] == req["taskID"]
    assert got["imageNum"] == want["imageNum"] == 1
    assert re.fullmatch(r"\d{20}", got["session"])
    assert got["connect"] == f"{fake.url.replace('http://', 'ws://')}/ws/user/{got['session']}"
    assert want["connect"].endswith("/ws/user/" + want["session"])  # the same rule in the seed
    assert [s["subID"] for s in got["subs"]] == [s["subID"] for s in want["subs"]]
    assert got["subs"][0]["initWaitCount"] == got["subs"][0]["spareWaitCount"] == 0


async def test_web_page_text_to_image_request(fake, client):
    req = {"userName": "fxh7622", "title": "Image generation", "inputType": "text", "inputImageScaledRatio": 8,
           "imageCount": 3, "imagePath": "2025/05", "taskID": "nextGPU20250531145458",
           "data": {"parameters": {"imageRatio": "16:9", "promptText": "A little boy running"}}}
    status, _, got = await post(client, fake.url + "/session/publish", req)
    assert status == 200 and got["imageNum"] == 3
    assert [s["subID"] for s in got["subs"]] == [f"nextGPU20250531145458_{i:04d}" for i in (1, 2, 3)]
    inits = [s["initWaitCount"] for s in got["subs"]]
    assert inits == sorted(inits)


async def test_publish_defaults_and_case_insensitive_keys(fake, client):
    req = {"USERNAME": "fxh7622", "Title": "Image generation", "taskid": "nextGPUcase1",
           "data": {"Parameters": {"PROMPTTEXT": "hi"}}, "unknownKey": 1}
    status, _, got = await post(client, fake.url + "/session/publish", req)
    assert status == 200 and got["msg"] == "success" and got["imageNum"] == 1
    await until_done(fake, "nextGPUcase1")
    _, _, answer = await post(client, fake.url + "/backend/getTask", {"taskID": "nextGPUcase1"})
    request = json.loads(answer["task"]["request"])
    assert list(request) == ["userName", "title", "inputImageScaledRatio", "imageCount", "imagePath", "taskID", "data"]
    assert request["inputImageScaledRatio"] == 1 and request["imageCount"] == 1
    assert json.loads(answer["task"]["generatedData"])["6"]["inputs"]["text"] == "hi"


@pytest.mark.parametrize("body,handler", [
    (b"{not json", "publish"),
    (json.dumps({"userName": "fxh7622", "title": "Image generation", "taskID": "x", "imageCount": "1"}), "publish"),
    (json.dumps({"userName": "fxh7622", "title": "Image generation", "taskID": "x", "imageCount": 1.5}), "publish"),
    (json.dumps({"userName": 7, "title": "Image generation", "taskID": "x"}), "publish"),
])
async def test_bind_json_failures(fake, client, body, handler):
    status, ctype, got = await post(client, fake.url + "/session/publish", body)
    assert status == 400 and not ctype.startswith("application/json")
    assert list(got) == ["codeId", "msg"] and got["codeId"] == 301
    assert got["msg"].startswith(f"{handler} BindJSON Failed err=[") and got["msg"].endswith("]")
    assert fake.task_count() == 0


async def test_get_task_bind_failure(fake, client):
    status, _, got = await post(client, fake.url + "/backend/getTask", {"taskID": 5})
    assert status == 400 and got["codeId"] == 301 and got["msg"].startswith("getTask BindJSON Failed err=[")


@pytest.mark.parametrize("change", [
    {"title": "no such app"}, {"userName": "stranger"}, {"taskID": ""}, {"imageCount": 21},
])
async def test_publish_refusals_keep_code_200(fake, client, change):
    req = {"userName": "fxh7622", "title": "Image generation", "inputType": "text", "imageCount": 1,
           "imagePath": "2025/08", "taskID": "nextGPUrefused", "data": {"parameters": {}}}
    req.update(change)
    status, _, got = await post(client, fake.url + "/session/publish", req)
    assert status == 200 and got == {"codeID": 200, "msg": "taskPublish Failed"}
    assert fake.task_count() == 0


async def test_duplicate_task_id_is_refused(fake, client):
    req = {"userName": "fxh7622", "title": "Image generation", "taskID": "nextGPUdup", "data": {"parameters": {}}}
    assert (await post(client, fake.url + "/session/publish", req))[2]["msg"] == "success"
    assert (await post(client, fake.url + "/session/publish", req))[2] == {"codeID": 200, "msg": "taskPublish Failed"}
    assert fake.task_count() == 1


async def test_non_string_enum_value_panics(fake, client):
    req = {"userName": "fxh7622", "title": "Image generation", "taskID": "nextGPUenum",
           "data": {"parameters": {"imageRatio": 169}}}
    status, _, got = await post(client, fake.url + "/session/publish", req)
    assert status == 500 and got == "" and fake.task_count() == 0


async def test_strict_token_mode_and_wrong_paths(fake, client):
    fake.token = "tkn"
    req = {"userName": "fxh7622", "title": "Image generation", "taskID": "nextGPUtok", "data": {"parameters": {}}}
    for path, body in (("/session/publish", req), ("/backend/getTask", {"taskID": "x"})):
        status, _, got = await post(client, fake.url + path, body)
        assert status == 401 and got == {"codeId": 401, "msg": "unauthorized"}
        status, _, got = await post(client, fake.url + path, body, headers={"Authorization": "Bearer tkn"})
        assert status == 200
    status, _, got = await post(client, fake.url + "/session/nothing", {})
    assert status == 404
    fake.balance_error = True
    status, _, got = await post(client, fake.url + "/session/publish", dict(req, taskID="nextGPUtok2"),
                                headers={"Authorization": "Bearer tkn"})
    assert status == 200 and got == {"codeId": 305, "msg": "insufficient credits"}


# --------------------------------------------------------------------------- WebSocket

async def test_websocket_messages_match_seed(fake, client):
    blocks = seed_blocks()
    sync_want, final_want = blocks[8], blocks[9]
    req = dict(blocks[2], taskID="nextGPUws1")
    _, _, pub = await post(client, fake.url + "/session/publish", req)
    msgs = []
    async with client.ws_connect(pub["connect"]) as ws:
        async for m in ws:
            assert m.type == aiohttp.WSMsgType.TEXT
            msgs.append(json.loads(m.data))
        assert ws.close_code == 1006  # TCP dropped without a close frame
    first, last = msgs[0], msgs[-1]
    assert first["event"] == "SessionSync" and "status" not in first
    sync_like = json.loads(json.dumps(sync_want))
    same_shape(first, sync_like)
    assert first["tasks"][0]["endTime"] == apps.WS_UNSET and first["tasks"][0]["ossUrls"] is None
    same_shape(last, final_want)
    assert last["event"] == "ImageGenerateSuccess" and last["status"] == 4 and last["tasks"][0]["status"] == 4
    sub = last["tasks"][0]
    for k in ("publishTime", "startTime", "endTime"):
        assert WS_TIME.match(sub[k]) and sub[k] != apps.WS_UNSET
    assert sub["estimateMs"] == 21_120_000 and sub["subID"] == "nextGPUws1_0001"
    assert all(m["messageID"] == 1 and m["taskID"] == "nextGPUws1" for m in msgs)
    statuses = [m["tasks"][0]["status"] for m in msgs]
    assert statuses == sorted(statuses) and 3 in statuses
    started = next(m for m in msgs if m["tasks"][0]["status"] == 3)
    assert started["event"] == "GenerateStart" and started["tasks"][0]["ossUrls"] is None
    # the session is gone after the end: a reconnect is refused
    async with client.get(pub["connect"].replace("ws://", "http://")) as r:
        assert r.status == 400 and await r.text() == "Invalid path"


async def test_foreign_broadcasts_reach_every_session(client):
    fake = FakeNextGPU(slots=2, run_s=0.05, dispatch_s=0.01, local_queue_s=0.01)
    async with fake:
        stuck = {"userName": "fxh7622", "title": "Image generation", "taskID": "nextGPUa", "data": {"parameters": {}}}
        fake.next_task(stuck=True)  # A never starts: it holds one node at status 2
        _, _, pub_a = await post(client, fake.url + "/session/publish", stuck)
        async with client.ws_connect(pub_a["connect"]) as ws_a:
            sync = json.loads((await ws_a.receive()).data)
            assert sync["event"] == "SessionSync"
            while fake.tasks["nextGPUa"].subs[0].status != 2:
                await asyncio.sleep(0.01)
            await post(client, fake.url + "/session/publish", dict(stuck, taskID="nextGPUb"))
            await until_done(fake, "nextGPUb")
            events = []
            while True:
                try:
                    m = await asyncio.wait_for(ws_a.receive(), 0.5)
                except asyncio.TimeoutError:
                    break
                msg = json.loads(m.data)
                assert msg["taskID"] == "nextGPUa" and [t["status"] for t in msg["tasks"]] == [2]
                events.append(msg["event"])
            # B's scheduling events, replayed to A as snapshots of A
            assert {"InLocalQueue", "GenerateStart", "ImageGenerateSuccess"} <= set(events)


async def test_unknown_session_and_client_drop(fake, client):
    async with client.get(fake.url + "/ws/user/12345678901234567890") as r:
        assert r.status == 400 and await r.text() == "Invalid path"
    fake.next_task(ahead=3)
    req = {"userName": "fxh7622", "title": "Image generation", "taskID": "nextGPUdrop", "data": {"parameters": {}}}
    _, _, pub = await post(client, fake.url + "/session/publish", req)
    async with client.ws_connect(pub["connect"]) as ws:
        await ws.receive()
    await asyncio.sleep(0)  # the server notices the close on its next read

    async def _gone() -> None:
        while pub["session"] in fake.sessions:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(_gone(), LIMIT_S)
    async with client.get(pub["connect"].replace("ws://", "http://")) as r:
        assert r.status == 400
    await until_done(fake, "nextGPUdrop")  # the task runs on without anyone watching


# --------------------------------------------------------------------------- getTask

async def test_get_task_matches_seed(fake, client):
    blocks = seed_blocks()
    get_req, want = blocks[10], blocks[11]
    publish = json.loads(want["task"]["request"])
    publish = {**publish, "inputType": "text"}
    _, _, pub = await post(client, fake.url + "/session/publish", publish)
    assert pub["msg"] == "success"
    await until_done(fake, get_req["taskID"])
    status, ctype, got = await post(client, fake.url + "/backend/getTask", get_req)
    assert status == 200 and ctype.startswith("application/json")
    same_shape(got, want)
    task, wtask = got["task"], want["task"]
    # the server-built documents are byte-identical to the seed's for the same request
    for k in ("input", "generatedData", "request", "title", "workspaceID", "state", "subNum", "billMode", "delete"):
        assert task[k] == wtask[k], k
    sub, wsub = task["subTasks"][0], wtask["subTasks"][0]
    assert sub["input"] == wsub["input"] and sub["state"] == 3 and sub["retryCount"] == 0
    assert sub["errorNodes"] == "" and sub["failureReason"] == "" and "\n" not in sub["urls"]
    assert sub["urls"].startswith(fake.oss.url + "/2025/08/") and re.search(r"/\d{20}\.png$", sub["urls"])
    assert sub["ossSize"] == len(fake.oss.files[sub["urls"].split(fake.oss.url + "/", 1)[1]])
    assert sub["ossDuration"].isdigit() and task["duration"] == sub["inferenceDuration"] > 0
    assert re.fullmatch(r"[0-9a-f-]{36}", sub["systemUUID"])
    # output: the node's /history entry in Python json.dumps style, temp preview listed, not delivered
    assert '", "' in sub["output"] and "\\u52a0\\u8f7d" in sub["output"]
    hist = json.loads(sub["output"])
    woutput = json.loads(wsub["output"])
    (pid, entry), (_, wentry) = next(iter(hist.items())), next(iter(woutput.items()))
    same_shape(entry, wentry)
    assert entry["outputs"]["42"]["images"][0]["type"] == "temp" and entry["prompt"][1] == pid
    assert re.fullmatch(r"\d{20}\.png", entry["prompt"][2]["3"]["inputs"]["image"])
    # times: publishTime/createTime in UTC, the rest in UTC+8 — eight hours apart for a fast task
    for k in ("publishTime", "completionTime", "startTime"):
        assert DB_TIME.match(task[k])
    gap = datetime.fromisoformat(task["startTime"]) - datetime.fromisoformat(task["publishTime"])
    assert 8 * 3600 - 5 <= gap.total_seconds() <= 8 * 3600 + 5
    gap = datetime.fromisoformat(sub["startTime"]) - datetime.fromisoformat(sub["createTime"])
    assert 8 * 3600 - 5 <= gap.total_seconds() <= 8 * 3600 + 5
    # the seed's own example shows the same eight-hour split
    seed_gap = datetime.fromisoformat(wtask["startTime"]) - datetime.fromisoformat(wtask["publishTime"])
    assert round(seed_gap.total_seconds() / 3600) == 8


async def test_get_task_unknown_is_the_zero_task(fake, client):
    status, _, got = await post(client, fake.url + "/backend/getTask", {"taskID": "nextGPUnobody"})
    assert status == 200
    assert json.dumps(got, ensure_ascii=False, separators=(",", ":")) == (
        '{"codeId":200,"msg":"success","task":{"taskID":"","session":"","publishTime":"","completionTime":"",'
        '"title":"","input":"","state":0,"billMode":false,"duration":0,"subNum":0,"workspaceID":"",'
        '"generatedData":"","startTime":"","delete":false,"request":"","subTasks":null}}')


async def test_get_task_while_running_and_after_failures(fake, client):
    fake.next_task(fail_attempts=3, failure_reason="boom")
    req = {"userName": "fxh7622", "title": "Image generation", "taskID": "nextGPUfail", "data": {"parameters": {}}}
    await post(client, fake.url + "/session/publish", req)
    _, _, early = await post(client, fake.url + "/backend/getTask", {"taskID": "nextGPUfail"})
    assert early["task"]["state"] == 0 and early["task"]["completionTime"] == "" and early["task"]["startTime"] == ""
    assert early["task"]["subTasks"][0]["urls"] == "" and early["task"]["subTasks"][0]["output"] == ""
    await until_done(fake, "nextGPUfail")
    _, _, done = await post(client, fake.url + "/backend/getTask", {"taskID": "nextGPUfail"})
    task, sub = done["task"], done["task"]["subTasks"][0]
    assert task["state"] == 4 and sub["state"] == 4 and sub["retryCount"] == 3 and sub["failureReason"] == "boom"
    assert len(sub["errorNodes"].split(",")) == 3 and sub["urls"] == "" and sub["output"] == ""
    # a failed task's completionTime is written in UTC: about eight hours behind its startTime (UTC+8)
    gap = datetime.fromisoformat(task["startTime"]) - datetime.fromisoformat(task["completionTime"])
    assert 8 * 3600 - 5 <= gap.total_seconds() <= 8 * 3600 + 5


async def test_hidden_subtasks_quirk(fake, client):
    fake.next_task(hide_subtasks=True, stuck=True)
    req = {"userName": "fxh7622", "title": "Image generation", "taskID": "nextGPUhide", "data": {"parameters": {}}}
    await post(client, fake.url + "/session/publish", req)
    _, _, got = await post(client, fake.url + "/backend/getTask", {"taskID": "nextGPUhide"})
    assert got["task"]["subTasks"] is None and got["task"]["subNum"] == 1


async def test_result_files_on_their_own_host(fake, client):
    req = {"userName": "fxh7622", "title": "Image generation", "taskID": "nextGPUfile", "imagePath": "2025/08",
           "data": {"parameters": {"promptText": "file", "imageRatio": "4:3"}}}
    await post(client, fake.url + "/session/publish", req)
    await until_done(fake, "nextGPUfile")
    _, _, got = await post(client, fake.url + "/backend/getTask", {"taskID": "nextGPUfile"})
    url = got["task"]["subTasks"][0]["urls"]
    assert url.startswith(fake.oss.url) and fake.oss.port != fake.port
    async with client.get(url) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "image/png"
        from io import BytesIO

        from PIL import Image
        img = Image.open(BytesIO(await r.read()))
        assert img.size == (16, 12) and img.getpixel((1, 1)) == apps.solid_colour("file")
    fake.expire_files = True
    async with client.get(url) as r:
        assert r.status == 404 and "NoSuchKey" in await r.text()


async def test_signed_result_urls_expire_and_a_fresh_answer_gives_working_ones(fake, client):
    """INFERRED private-bucket mode: every answer hands out a fresh OSS V1 presigned URL."""
    fake.oss.signed = True
    req = {"userName": "fxh7622", "title": "Image generation", "taskID": "nextGPUsigned", "imagePath": "2025/08",
           "data": {"parameters": {"promptText": "signed"}}}
    _, _, pub = await post(client, fake.url + "/session/publish", req)
    async with client.ws_connect(pub["connect"]) as ws:
        msgs = [json.loads(m.data) async for m in ws]
    (ws_url,) = msgs[-1]["tasks"][0]["ossUrls"]
    _, _, got = await post(client, fake.url + "/backend/getTask", {"taskID": "nextGPUsigned"})
    url = got["task"]["subTasks"][0]["urls"]
    path, _, query = url.partition("?")
    assert re.fullmatch(re.escape(fake.oss.url) + r"/2025/08/\d{20}\.png", path) and ws_url.startswith(path + "?")
    assert [k.split("=")[0] for k in query.split("&")] == ["Expires", "OSSAccessKeyId", "Signature"]
    async with client.get(url) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "image/png"
    async with client.get(url.replace("Signature=", "Signature=x")) as r:
        assert r.status == 403 and "<Code>SignatureDoesNotMatch</Code>" in await r.text()
    fake.oss.url_ttl_s = 0  # a URL past its Expires time
    _, _, now = await post(client, fake.url + "/backend/getTask", {"taskID": "nextGPUsigned"})
    async with client.get(now["task"]["subTasks"][0]["urls"]) as r:
        assert r.status == 403 and "Request has expired." in await r.text()
    fake.oss.url_ttl_s = 3600
    fake.oss.expire_all()
    for stale in (url, ws_url):
        async with client.get(stale) as r:
            body = await r.text()
            assert r.status == 403 and "<Code>AccessDenied</Code>" in body and "Request has expired." in body
    _, _, again = await post(client, fake.url + "/backend/getTask", {"taskID": "nextGPUsigned"})
    fresh = again["task"]["subTasks"][0]["urls"]
    assert fresh != url and fresh.startswith(path + "?")
    async with client.get(fresh) as r:
        assert r.status == 200
