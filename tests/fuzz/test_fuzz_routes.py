"""Every route of the panel (``routes.py``) through aiohttp's test client with arbitrary ids,
names, query values, bodies and content types: the answer is never a 5xx, an error answer is JSON
with a clear message, and no answer carries a traceback."""
from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import example, given, strategies as st

from comfyui_remote.engine.profiles import Profiles
from comfyui_remote.engine.rules import RetryPolicy
from comfyui_remote.engine.tasks import TaskManager
from comfyui_remote.routes import PREFIX, setup_routes
from comfyui_remote.tests.fuzz.strategies import FUZZ, wire_json

ROUTES = (("GET", "/tasks"), ("GET", "/tasks/{id}"), ("POST", "/tasks/{id}/cancel"), ("POST", "/tasks/{id}/recover"),
          ("GET", "/tasks/{id}/outputs/{n}"), ("GET", "/profiles"), ("POST", "/profiles/{name}/test"),
          ("POST", "/profiles/{name}/key"), ("POST", "/profiles/{name}/check_graph"))
TEXT = st.text(max_size=24) | st.integers(-2**70, 2**70).map(str) | st.sampled_from(("", " 1", "+1", "1_0", "١", "-1"))
QUERY_KEYS = st.sampled_from(("state", "limit", "before", "thumb")) | st.text(max_size=6)
TYPES = st.sampled_from(("application/json", "application/json; charset=latin-1", "text/plain",
                         "application/x-www-form-urlencoded", "multipart/form-data", "")) \
    | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=20)
BODIES = (wire_json().map(lambda v: json.dumps(v, allow_nan=True).encode())
          | st.fixed_dictionaries({"field": wire_json() | st.sampled_from(("api_key", "token", "user")),
                                   "value": wire_json() | st.text(max_size=20)}).map(lambda v: json.dumps(v).encode())
          | st.binary(max_size=40) | st.none())


@pytest.fixture
async def panel(tmp_path):
    """The routes on a TaskManager holding one finished sandbox task (with an image output)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "profiles.toml").write_text('[profiles.sb]\nprovider = "sandbox"\npoll_interval_s = 0.05\n'
                                        '[profiles.far]\nprovider = "comfyui"\nurl = "http://127.0.0.1:9"\n')
    m = TaskManager(home, tmp_path / "out", profiles=Profiles(home, env={}),
                    policy=RetryPolicy(attempts=1, base_s=0.01, cap_s=0.02, request_timeout_s=1.0,
                                       connect_timeout_s=1.0)).start(reattach=False)
    call = lambda coro: asyncio.wait_for(asyncio.wrap_future(m.call(coro)), 60)  # noqa: E731
    tid = await call(m.submit("sb", "solid.json", [], reuse=False))
    await call(m.wait(tid))
    app = web.Application()
    routes = web.RouteTableDef()
    setup_routes(routes, lambda: m)
    app.add_routes(routes)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, tid
    finally:
        await client.close()
        await asyncio.to_thread(m.stop)


@FUZZ
@given(route=st.sampled_from(ROUTES), ident=TEXT, n=TEXT, real=st.booleans(),
       query=st.dictionaries(QUERY_KEYS, TEXT, max_size=3), ctype=TYPES, body=BODIES)
@example(route=("GET", "/tasks"), ident="", n="", real=False, query={"before": str(2**70)}, ctype="", body=None)
@example(route=("GET", "/tasks/{id}/outputs/{n}"), ident="", n="0", real=True, query={"thumb": str(2**40)},
         ctype="", body=None)
async def test_every_route_answers_any_request_without_a_server_error(route, ident, n, real, query, ctype, body,
                                                                       panel):
    client, tid = panel
    method, template = route
    name = "sb" if real else ident
    path = PREFIX + template.format(id=quote(tid if real else ident, safe=""), n=quote(n if not real else "0", safe=""),
                                    name=quote(name, safe=""))
    headers = {"Content-Type": ctype} if ctype and body is not None else {}
    async with client.request(method, path, params=query, data=body, headers=headers) as r:
        data = await r.read()
        assert r.status < 500, (r.status, data[:300])
        unrouted = r.status in (404, 405) and data in (b"404: Not Found", b"405: Method Not Allowed")
        if r.status >= 400 and not unrouted:  # (aiohttp's own answer when no route matches, e.g. an empty id)
            assert r.content_type == "application/json", (r.status, r.content_type, data[:200])
            message = json.loads(data)["error"]
            assert isinstance(message, str) and message.strip()
        assert b"Traceback" not in data and b'File "' not in data
