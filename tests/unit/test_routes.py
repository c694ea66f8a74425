"""The panel's REST routes (design §4) over real HTTP: aiohttp's TestServer/TestClient around an
app filled by ``routes.setup_routes`` with a real TaskManager (sandbox, a ``comfyui`` profile on a
FakeComfyUI, and a RunningHub profile whose literal key is a canary on a FakeRunningHub that
refuses it). Every route, every bad input, path traversal and the "no route ever shows a key"
rule (design §3/§6)."""
from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from comfyui_remote.engine.journal import STATE_FILTERS
from comfyui_remote.engine.profiles import Profiles
from comfyui_remote.engine.tasks import TaskManager
from comfyui_remote.engine.transfer import RetryPolicy
from comfyui_remote.providers.base import Override
from comfyui_remote.routes import PREFIX, setup_routes
from comfyui_remote.tests.fakes.comfyui import FakeComfyUI
from comfyui_remote.tests.fakes.runninghub import DEFAULT_KEY, FakeRunningHub

CANARY = "CANARY-routes-literal-key-7f3e9b2c41d0"
NEW_CANARY = "CANARY-routes-panel-key-0c5a8e61f2b9"
REPO = Path(__file__).resolve().parents[2]
TASK_FIELDS = {"id", "remote_id", "profile", "provider", "workflow", "state", "reused", "queue_position",
               "queue_length", "progress", "node", "step", "max_steps", "eta_s", "message", "cost", "error",
               "can_cancel", "console_url", "created_at", "updated_at", "outputs"}
ALL_STATES = ("submitting", "queued", "running", "succeeded", "failed", "cancelled", "abandoned")


def fast(steps: int, step_s: float = 0.01) -> list[Override]:
    return [Override("2.steps", "int", steps), Override("2.step_seconds", "float", step_s)]


@dataclass
class Env:
    client: TestClient
    m: TaskManager
    fake: FakeComfyUI
    rh: FakeRunningHub
    home: Path
    results: Path
    tmp: Path

    async def run(self, coro: Any, timeout: float = 60) -> Any:
        return await asyncio.wait_for(asyncio.wrap_future(self.m.call(coro)), timeout)

    async def submit(self, profile: str, workflow: str, overrides: list[Override]) -> str:
        return await self.run(self.m.submit(profile, workflow, overrides, reuse=False))

    async def get(self, path: str) -> tuple[int, Any, str]:
        async with self.client.get(PREFIX + path) as r:
            text = (await r.read()).decode("utf-8", "replace")
            return r.status, _maybe_json(text), text

    async def post(self, path: str, **kw: Any) -> tuple[int, Any, str]:
        async with self.client.post(PREFIX + path, **kw) as r:
            text = (await r.read()).decode("utf-8", "replace")
            return r.status, _maybe_json(text), text

    async def until(self, pred, what: str, timeout: float = 30) -> Any:
        """Re-check ``pred()`` on every task event (and each second) until it is true."""
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        unsubscribe = self.m.events.subscribe(lambda _t: loop.call_soon_threadsafe(changed.set))
        try:
            end = loop.time() + timeout
            while True:
                changed.clear()
                value = pred()
                if value:
                    return value
                if loop.time() > end:
                    raise AssertionError(f"timed out waiting for {what}")
                try:
                    await asyncio.wait_for(changed.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
        finally:
            unsubscribe()

    async def wait_state(self, task_id: str, states: tuple[str, ...], timeout: float = 30) -> dict:
        await self.until(lambda: (self.m.snapshot(task_id) or {}).get("state") in states,
                         f"task {task_id} to be {states}", timeout)
        status, task, _ = await self.get(f"/tasks/{task_id}")
        assert status == 200 and task["state"] in states, task
        return task

    def insert(self, task_id: str, state: str, **fields: Any) -> None:
        self.m.journal.create(task_id, profile="remote", provider="comfyui", workflow="slow.json", state=state,
                              **fields)


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


@pytest.fixture
async def env(tmp_path):
    fake = FakeComfyUI()
    await fake.start()
    rh = FakeRunningHub()  # knows only DEFAULT_KEY: the canary literal is a wrong key
    await rh.start()
    home = tmp_path / "home"
    (home / "workflows").mkdir(parents=True)
    for name in ("slow.json", "solid.json"):
        shutil.copy(REPO / "providers" / "sandbox_workflows" / name, home / "workflows" / name)
    (home / "profiles.toml").write_text(
        '[profiles.sandbox]\nprovider = "sandbox"\npoll_interval_s = 0.05\n'
        f'[profiles.remote]\nprovider = "comfyui"\nurl = "{fake.url}"\npoll_interval_s = 0.05\n'
        f'[profiles.rh_canary]\nprovider = "runninghub"\nurl = "{rh.url}"\napi_key = "{CANARY}"\n'
        'poll_interval_s = 0.05\n'
        f'[profiles.rh_new]\nprovider = "runninghub"\nurl = "{rh.url}"\npoll_interval_s = 0.05\n')
    results = tmp_path / "results"
    m = TaskManager(home, results, profiles=Profiles(home, env={}),
                    policy=RetryPolicy(attempts=2, base_s=0.01, cap_s=0.05)).start(reattach=False)
    app = web.Application()
    routes = web.RouteTableDef()
    setup_routes(routes, lambda: m)
    app.add_routes(routes)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Env(client, m, fake, rh, home, results, tmp_path)
    finally:
        await client.close()
        await asyncio.to_thread(m.stop)
        await fake.stop()
        await rh.stop()


async def raw_get(env: Env, target: str) -> tuple[int, bytes]:
    """A GET whose request target goes to the server byte for byte (no client-side normalising)."""
    reader, writer = await asyncio.open_connection(env.client.host, env.client.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {env.client.host}:{env.client.port}\r\n"
                 f"Connection: close\r\n\r\n".encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def succeeded_task(env: Env, width: int = 64, height: int = 64) -> dict:
    tid = await env.submit("remote", "solid.json", [Override("1.width", "int", width),
                                                      Override("1.height", "int", height)])
    task = await env.wait_state(tid, ("succeeded", "failed", "cancelled"))
    assert task["state"] == "succeeded", task
    return task


# ======================================================================== GET /tasks
async def test_list_every_filter_groups_states_like_the_journal(env):
    for state in ALL_STATES:
        env.insert(f"row-{state}", state)
    status, body, _ = await env.get("/tasks")
    assert status == 200 and body["next"] is None
    assert {t["id"] for t in body["tasks"]} == {f"row-{s}" for s in ALL_STATES}
    assert [t["id"] for t in body["tasks"]] == [f"row-{s}" for s in reversed(ALL_STATES)]  # newest first
    for t in body["tasks"]:
        assert TASK_FIELDS <= set(t), TASK_FIELDS - set(t)
    for name, states in STATE_FILTERS.items():
        status, body, _ = await env.get(f"/tasks?state={name}")
        assert status == 200
        assert {t["state"] for t in body["tasks"]} == set(states), name
        assert {t["id"] for t in body["tasks"]} == {f"row-{s}" for s in states}
    status, body, _ = await env.get("/tasks?state=")  # empty = every task
    assert status == 200 and len(body["tasks"]) == len(ALL_STATES)


async def test_list_pages_with_limit_and_before_cursor(env):
    ids = [f"page-{i}" for i in range(7)]
    for i, tid in enumerate(ids):
        env.insert(tid, "succeeded" if i % 2 else "failed")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        q = "/tasks?limit=3" + (f"&before={cursor}" if cursor is not None else "")
        status, body, _ = await env.get(q)
        assert status == 200, body
        assert len(body["tasks"]) <= 3
        seen += [t["id"] for t in body["tasks"]]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break
        assert isinstance(cursor, int)
    assert pages == 3 and seen == list(reversed(ids))
    # a filter pages too
    status, body, _ = await env.get("/tasks?state=finished&limit=2")
    assert [t["id"] for t in body["tasks"]] == ["page-5", "page-3"] and body["next"] is not None
    status, body2, _ = await env.get(f"/tasks?state=finished&limit=2&before={body['next']}")
    assert [t["id"] for t in body2["tasks"]] == ["page-1"] and body2["next"] is None
    # exactly `limit` rows left: no next page
    status, body, _ = await env.get("/tasks?limit=7")
    assert len(body["tasks"]) == 7 and body["next"] is None


@pytest.mark.parametrize("query,needle", [
    ("state=bogus", "state must be one of"), ("state=ACTIVE", "state must be one of"),
    ("state=succeeded", "state must be one of"),
    ("limit=0", "limit must be between"), ("limit=201", "limit must be between"), ("limit=-3", "limit must be between"),
    ("limit=abc", "whole numbers"), ("limit=1.5", "whole numbers"), ("before=xyz", "whole numbers"),
])
async def test_list_rejects_bad_state_and_limit(env, query, needle):
    status, body, _ = await env.get(f"/tasks?{query}")
    assert status == 400 and needle in body["error"], body


# ======================================================================== GET /tasks/{id}
async def test_get_task_and_unknown_ids_are_404_on_every_task_route(env):
    task = await succeeded_task(env)
    status, body, _ = await env.get(f"/tasks/{task['id']}")
    assert status == 200 and body["id"] == task["id"] and body["state"] == "succeeded"
    assert TASK_FIELDS <= set(body) and body["profile"] == "remote" and body["provider"] == "comfyui"
    assert body["remote_id"] and body["outputs"][0]["n"] == 0 and body["outputs"][0]["width"] == 64
    assert all("path" not in o for o in body["outputs"])  # engine-side paths never leave
    calls = [("get", "/tasks/nope123"), ("post", "/tasks/nope123/cancel"), ("post", "/tasks/nope123/recover"),
             ("get", "/tasks/nope123/outputs/0"), ("get", "/tasks/nope123/outputs/0?thumb=256"),
             ("get", "/tasks/nope123/outputs/x")]
    for method, path in calls:
        status, body, text = await getattr(env, method)(path)
        assert status == 404, (path, status, text)
        assert body and "no task" in body["error"] and "nope123" in body["error"], (path, text)


# ======================================================================== cancel / recover
async def test_cancel_running_and_queued_tasks_reaches_the_remote(env):
    running = await env.submit("remote", "slow.json", fast(400, 0.05))
    queued = await env.submit("remote", "slow.json", fast(400, 0.05))  # the fake runs one prompt at a time
    await env.wait_state(running, ("running",))
    t_q = await env.wait_state(queued, ("queued",))
    status, body, _ = await env.post(f"/tasks/{queued}/cancel")  # a request: the answer comes at once
    assert status == 200 and body["id"] == queued and not body["can_cancel"], body
    assert (await env.wait_state(queued, ("cancelled",)))["state"] == "cancelled"
    assert t_q["remote_id"] in env.fake.deleted  # POST /queue {"delete": [id]}
    status, body, _ = await env.post(f"/tasks/{running}/cancel")
    assert status == 200 and body["id"] == running, body
    assert (await env.wait_state(running, ("cancelled",)))["state"] == "cancelled"
    r_id = body["remote_id"]
    assert r_id in env.fake.interrupt_requests and r_id in env.fake.interrupted  # POST /interrupt {"prompt_id": id}
    # cancelling a finished task again is harmless and changes nothing
    status, body, _ = await env.post(f"/tasks/{running}/cancel")
    assert status == 200 and body["state"] == "cancelled"


async def test_recover_fetches_missing_results_again(env):
    task = await succeeded_task(env)
    tid = task["id"]
    status, body, _ = await env.post(f"/tasks/{tid}/recover")  # nothing missing: same task, unchanged
    assert status == 200 and body["id"] == tid and body["state"] == "succeeded"
    path = Path(env.m.outputs_of(tid)[0]["path"])
    data = path.read_bytes()
    path.unlink()
    status, body, _ = await env.get(f"/tasks/{tid}/outputs/0")
    assert status == 404 and "Recover" in body["error"]
    # the journal still says "saved": Recover must notice the file is gone and fetch it again
    status, body, _ = await env.post(f"/tasks/{tid}/recover")
    assert status == 200 and body["id"] == tid, body
    await env.until(lambda: path.is_file() and env.m.snapshot(tid)["outputs_state"] == "saved", "the file again")
    status, _, _ = await env.get(f"/tasks/{tid}/outputs/0")
    assert status == 200 and path.read_bytes() == data
    # a failed download (outputs_state "missing" with the file gone) is fetched again as well
    path.unlink()
    env.m.journal.update(tid, outputs_state="missing")
    status, body, _ = await env.post(f"/tasks/{tid}/recover")
    assert status == 200 and body["id"] == tid, body
    await env.until(lambda: path.is_file() and env.m.snapshot(tid)["outputs_state"] == "saved", "the file again")
    assert path.read_bytes() == data


async def test_recover_of_a_task_whose_profile_is_gone_is_a_clear_409(env):
    env.m.journal.create("orphan00000001", profile="deleted_profile", provider="comfyui", workflow="x",
                         state="running", remote_id="abc", phase="acknowledged")
    status, body, _ = await env.post("/tasks/orphan00000001/recover")
    assert status == 409 and "deleted_profile" in body["error"], body


# ======================================================================== outputs
async def test_output_full_file_and_thumbnail(env):
    task = await succeeded_task(env, 600, 300)
    tid = task["id"]
    status_ok = await env.client.get(f"{PREFIX}/tasks/{tid}/outputs/0")
    data = await status_ok.read()
    assert status_ok.status == 200 and status_ok.headers["Content-Type"] == "image/png"
    assert status_ok.headers.get("X-Content-Type-Options") == "nosniff"
    assert data == Path(env.m.outputs_of(tid)[0]["path"]).read_bytes()
    assert Image.open(io.BytesIO(data)).size == (600, 300)
    r = await env.client.get(f"{PREFIX}/tasks/{tid}/outputs/0?thumb=256")
    thumb = await r.read()
    assert r.status == 200 and r.headers["Content-Type"] == "image/png"
    img = Image.open(io.BytesIO(thumb))
    assert img.format == "PNG" and max(img.size) <= 256 and img.size == (256, 128)
    for bad in ("abc", "-5x"):
        status, body, _ = await env.get(f"/tasks/{tid}/outputs/0?thumb={bad}")
        assert status == 400 and "thumb" in body["error"]


@pytest.mark.parametrize("n", ["abc", "1.0", "0x0", "-1", "+0", "%200", "0_0", "%D9%A0", "..",
                               "..%2F..%2Fetc%2Fpasswd", "%2e%2e"])
async def test_output_index_that_is_not_a_number(env, n):
    task = await succeeded_task(env)
    status, body = await raw_get(env, f"{PREFIX}/tasks/{task['id']}/outputs/{n}")
    assert status in (400, 404), (n, status, body)
    assert b"root:" not in body and b"\x89PNG" not in body
    if status == 400:
        assert b"whole number" in body


async def test_output_missing_n_is_404(env):
    task = await succeeded_task(env)
    for n in ("1", "7", "99999999999999999999999"):
        status, body, _ = await env.get(f"/tasks/{task['id']}/outputs/{n}")
        assert status == 404 and f"no output {n}" in body["error"], (n, body)
    status, _, _ = await env.get(f"/tasks/{task['id']}/outputs/")
    assert status == 404


@pytest.mark.parametrize("target", [
    "/tasks/..%2F..%2F..%2Fetc%2Fpasswd", "/tasks/../../etc/passwd", "/tasks/..%2f..%2fetc%2fpasswd",
    "/tasks/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/tasks/..%252F..%252Fetc%252Fpasswd",
    "/tasks/..%5C..%5Cetc%5Cpasswd", "/tasks/%2Fetc%2Fpasswd/outputs/0",
    "/tasks/..%2F..%2Fetc%2Fpasswd/outputs/0", "/tasks/../../../etc/passwd/outputs/0",
    "/tasks/%2e%2e/outputs/0?thumb=256", "/tasks/ID/outputs/..%2F..%2F..%2Fetc%2Fpasswd",
    "/tasks/ID/outputs/../../../../etc/passwd", "/tasks/ID/outputs/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/tasks/ID/../../../etc/passwd",
])
async def test_path_traversal_in_ids_and_indexes_is_refused(env, target):
    task = await succeeded_task(env)
    status, body = await raw_get(env, PREFIX + target.replace("ID", task["id"]))
    assert status in (400, 404), (target, status, body[:200])
    assert b"root:" not in body and b"\x89PNG" not in body


async def test_journal_output_paths_outside_the_results_folder_are_refused(env):
    task = await succeeded_task(env)
    tid = task["id"]
    good = env.m.outputs_of(tid)[0]
    secret = env.tmp / "secret.txt"
    secret.write_text("TOP-SECRET outside the results folder")
    sibling = env.tmp / (env.results.name + "_evil")  # shares the results folder's name as a prefix
    sibling.mkdir()
    (sibling / "x.png").write_bytes(Path(good["path"]).read_bytes())
    link = Path(good["path"]).parent / "link.png"
    os.symlink(secret, link)
    inside_dir = Path(good["path"]).parent
    bad_paths = [str(secret), "/etc/passwd", str(Path(good["path"]).parent / ".." / ".." / ".." / ".." / "secret.txt"),
                 os.path.relpath(secret), "../../../../../../etc/passwd", str(sibling / "x.png"), str(link),
                 str(inside_dir), ""]
    for i, p in enumerate(bad_paths):
        env.m.journal.set_outputs(tid, [{"n": 0, "kind": "image", "filename": "x.png", "path": p,
                                         "mime": "image/png"}])
        for q in ("", "?thumb=256"):
            status, body, text = await env.get(f"/tasks/{tid}/outputs/0{q}")
            assert status == 404, (p, q, status, text[:200])
            assert "TOP-SECRET" not in text and "root:" not in text and "not on disk" in body["error"], p
    # the genuine record still works
    env.m.journal.set_outputs(tid, [good])
    status, _, _ = await env.get(f"/tasks/{tid}/outputs/0")
    assert status == 200


async def test_outputs_are_never_served_as_active_content(env):
    """A remote may label a result text/html or SVG: serving it inline from ComfyUI's origin would
    run its script there. Such files go out as downloads."""
    task = await succeeded_task(env)
    tid = task["id"]
    folder = Path(env.m.outputs_of(tid)[0]["path"]).parent
    page = folder / "evil.html"
    page.write_text("<script>alert(document.cookie)</script>")
    svg = folder / "evil.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    env.m.journal.set_outputs(tid, [
        {"n": 0, "kind": "image", "filename": "evil.html", "path": str(page), "mime": "text/html"},
        {"n": 1, "kind": "image", "filename": "evil.svg", "path": str(svg), "mime": None},
        {"n": 2, "kind": "video", "filename": "x.bin", "path": str(page), "mime": "application/xhtml+xml"},
    ])
    for n in (0, 1, 2):
        r = await env.client.get(f"{PREFIX}/tasks/{tid}/outputs/{n}")
        await r.read()
        ctype = r.headers["Content-Type"]
        assert r.status == 200
        assert "html" not in ctype and "svg" not in ctype and "xml" not in ctype, (n, ctype)
        assert r.headers["Content-Disposition"].startswith("attachment"), n


async def test_output_names_with_quotes_and_unicode_make_a_valid_header(env):
    task = await succeeded_task(env)
    tid = task["id"]
    good = Path(env.m.outputs_of(tid)[0]["path"])
    odd = good.with_name('猫 "x";\\.png')
    odd.write_bytes(good.read_bytes())
    env.m.journal.set_outputs(tid, [{"n": 0, "kind": "image", "filename": odd.name, "path": str(odd),
                                     "mime": "image/png"}])
    r = await env.client.get(f"{PREFIX}/tasks/{tid}/outputs/0")
    assert r.status == 200 and await r.read() == good.read_bytes()
    disp = r.headers["Content-Disposition"]
    assert disp.startswith('inline; filename="') and disp.count('"') == 2 and "%E7%8C%AB" in disp


async def test_text_outputs_are_served_and_redacted(env):
    task = await succeeded_task(env)
    tid = task["id"]
    env.m.journal.set_outputs(tid, [{"n": 0, "kind": "text", "filename": "caption.txt", "path": None,
                                     "text": f"a caption; token={CANARY}"}])
    status, _, text = await env.get(f"/tasks/{tid}/outputs/0")
    assert status == 200 and text.startswith("a caption") and CANARY not in text


# ======================================================================== profiles
async def test_profiles_list_shows_configured_and_never_the_key(env):
    status, body, text = await env.get("/profiles")
    assert status == 200 and isinstance(body, list)
    by = {p["name"]: p for p in body}
    assert list(by)[:6] == ["sandbox", "runninghub", "tensorart", "speedpix", "nextgpu", "comfyui"]
    assert by["sandbox"]["configured"] is True and by["remote"]["configured"] is True
    assert by["rh_canary"]["configured"] is True and by["rh_canary"]["url"] == env.rh.url
    assert by["runninghub"]["configured"] is False and by["rh_new"]["configured"] is False
    assert "api_key" in by["rh_new"]["missing"]
    for p in body:
        assert {"name", "provider", "url", "configured", "capabilities"} <= set(p), p
        assert not ({"api_key", "token", "app_secret", "private_key"} & set(p))
    assert by["remote"]["capabilities"]["cancel"] is True
    assert CANARY not in text


async def test_profile_test_ok_wrong_key_and_unknown(env):
    status, body, _ = await env.post("/profiles/sandbox/test")
    assert status == 200 and body["ok"] is True and "sandbox" in body["message"]
    status, body, _ = await env.post("/profiles/remote/test")
    assert status == 200 and body["ok"] is True and env.fake.url in body["message"]
    status, body, text = await env.post("/profiles/rh_canary/test")  # the fake refuses the canary key
    assert status == 200 and body["ok"] is False, body
    assert "rh_canary" in body["message"] and body["message"].strip() and CANARY not in text
    assert "key" in body["message"].lower() or "token" in body["message"].lower(), body
    status, body, _ = await env.post("/profiles/rh_new/test")  # no key at all
    assert status == 200 and body["ok"] is False and "api_key" in body["message"]
    status, body, _ = await env.post("/profiles/nobody/test")
    assert status == 404 and "nobody" in body["error"]


@pytest.mark.parametrize("data,headers,needle", [
    ("{not json", {"Content-Type": "application/json"}, "not valid JSON"),
    (b"\xff\xfe\x00", {"Content-Type": "application/json"}, "not valid JSON"),
    ("[1, 2]", {"Content-Type": "application/json"}, "JSON object"),
    ('"a string"', {"Content-Type": "application/json"}, "JSON object"),
    ("null", {"Content-Type": "application/json"}, "JSON object"),
    ("", {}, "non-empty string"),
    ('{"field": "url", "value": "x-key-1234"}', {}, "field must be one of"),
    ('{"field": "base_workflow_id", "value": "x-key-1234"}', {}, "field must be one of"),
    ('{"field": ["api_key"], "value": "x-key-1234"}', {}, "field must be one of"),
    ('{"field": {"a": 1}, "value": "x-key-1234"}', {}, "field must be one of"),
    ('{"field": 7, "value": "x-key-1234"}', {}, "field must be one of"),
    ('{"value": ""}', {}, "non-empty string"),
    ('{"value": "   "}', {}, "non-empty string"),
    ('{"value": null}', {}, "non-empty string"),
    ('{"value": 12345678}', {}, "non-empty string"),
    ('{"value": ["k"]}', {}, "non-empty string"),
    ('{"field": "api_key"}', {}, "non-empty string"),
    (json.dumps({"value": "k" * 20000}), {}, "non-empty string"),
])
async def test_set_key_rejects_bad_bodies(env, data, headers, needle):
    headers = {"Content-Type": "application/json", **headers}
    status, body, text = await env.post("/profiles/rh_new/key", data=data, headers=headers)
    assert status == 400, (status, text)
    assert needle in body["error"], body
    assert not (env.home / "credentials.json").exists()


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                   None])
async def test_set_key_takes_json_only_so_a_cross_site_form_cannot_set_a_key(env, ctype):
    headers = {"Content-Type": ctype} if ctype else {}
    status, body, _ = await env.post("/profiles/rh_new/key", data=json.dumps({"value": NEW_CANARY}), headers=headers)
    assert status == 415 and "application/json" in body["error"]
    assert not (env.home / "credentials.json").exists()


async def test_set_key_unknown_profile_is_404(env):
    status, body, _ = await env.post("/profiles/nobody/key", json={"value": NEW_CANARY})
    assert status == 404 and "nobody" in body["error"]
    assert not (env.home / "credentials.json").exists()


async def test_set_key_stores_0600_and_the_key_shows_in_no_route_answer(env):
    env.rh.keys[NEW_CANARY] = dict(env.rh.keys[DEFAULT_KEY])  # a valid account on the fake
    status, body, text = await env.post("/profiles/rh_new/key", json={"field": "api_key", "value": f"  {NEW_CANARY}\n"})
    assert status == 200, text
    assert body == {"ok": True, "profile": "rh_new", "field": "api_key", "configured": True}
    cred = env.home / "credentials.json"
    assert stat.S_IMODE(cred.stat().st_mode) == 0o600
    assert json.loads(cred.read_text())["profiles"]["rh_new"]["api_key"] == NEW_CANARY  # stripped
    # a real task, a cancelled one and a text output so that every route has something to say
    task = await succeeded_task(env)
    tid = task["id"]
    long = await env.submit("remote", "slow.json", fast(400, 0.05))
    await env.wait_state(long, ("running",))
    answers: list[tuple[str, int, str]] = []

    async def grab(method: str, path: str, **kw: Any) -> None:
        async with getattr(env.client, method)(PREFIX + path, **kw) as r:
            answers.append((path, r.status, (await r.read()).decode("latin-1")))

    await grab("get", "/profiles")
    for name in ("rh_new", "rh_canary", "sandbox", "runninghub", "nobody"):
        await grab("post", f"/profiles/{name}/test")
    await grab("post", "/profiles/rh_new/key", json={"value": ""})
    await grab("post", "/profiles/rh_new/key", data="{bad")
    await grab("post", "/profiles/rh_new/key", json={"field": "token", "value": NEW_CANARY})
    await grab("post", "/profiles/nobody/key", json={"value": NEW_CANARY})
    for q in ("", "?state=active", "?state=finished", "?state=failed", "?state=bad", "?limit=1", "?limit=0"):
        await grab("get", "/tasks" + q)
    for t in (tid, long, "nope"):
        await grab("get", f"/tasks/{t}")
        await grab("get", f"/tasks/{t}/outputs/0")
        await grab("get", f"/tasks/{t}/outputs/0?thumb=256")
        await grab("get", f"/tasks/{t}/outputs/9")
    await grab("post", f"/tasks/{long}/cancel")
    await grab("post", f"/tasks/{tid}/recover")
    await grab("post", "/tasks/nope/cancel")
    env.m.journal.set_outputs(tid, [{"n": 0, "kind": "text", "path": None, "text": f"k={NEW_CANARY}"}])
    await grab("get", f"/tasks/{tid}/outputs/0")
    assert ("/profiles/rh_new/test", 200) in [(p, s) for p, s, _ in answers]
    assert json.loads(next(b for p, _, b in answers if p == "/profiles/rh_new/test"))["ok"] is True
    assert len(answers) > 30
    for path, _, body in answers:
        assert NEW_CANARY not in body and CANARY not in body, path
