"""Http against a local aiohttp server that misbehaves in each toolkit fault."""
import hashlib
import time

import pytest
from aiohttp import web

from comfyui_remote.engine.transfer import Http, RetryPolicy, parse_retry_after
from comfyui_remote.providers.base import AmbiguousSubmit, NotFound, ProtocolError, TransientError
from comfyui_remote.tests.fakes.toolkit import FakeServer, json_response

BLOB = bytes(range(256)) * 4096  # 1 MiB


class Misbehaving(FakeServer):
    name = "misbehaving"

    def setup_routes(self, router):
        self.created = 0

        async def item(request):
            return json_response({"ok": True})

        async def create(request):
            self.created += 1
            return json_response({"id": self.created})

        async def blob(request):
            return web.Response(body=BLOB, content_type="application/octet-stream")

        router.add_get("/item", item, name="item")
        router.add_post("/create", create, name="create")
        router.add_get("/blob", blob, name="blob")


@pytest.fixture
async def server():
    s = Misbehaving()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def http():
    h = Http(provider="t", profile="p", policy=RetryPolicy(attempts=4, base_s=0.01, cap_s=0.05), timeout_s=2)
    yield h
    await h.close()


async def test_5xx_burst_is_retried_for_idempotent_requests(server, http):
    server.faults.add("item", "status", status=503, times=2)
    r = await http.request("GET", server.url + "/item")
    assert r.ok and r.json() == {"ok": True} and server.count("item") == 3


async def test_429_retry_after_is_honoured(server, http):
    server.faults.add("create", "status", status=429, retry_after=0.3)
    t0 = time.monotonic()
    r = await http.request("POST", server.url + "/create", json={})
    assert r.json() == {"id": 1} and time.monotonic() - t0 >= 0.3 and server.created == 1


async def test_5xx_on_a_create_is_ambiguous_never_resent(server, http):
    server.faults.add("create", "status", status=502)
    with pytest.raises(AmbiguousSubmit):
        await http.request("POST", server.url + "/create", json={})
    assert server.count("create") == 1


async def test_dropped_answer_after_create_is_ambiguous(server, http):
    server.faults.add("create", "drop_after")
    with pytest.raises(AmbiguousSubmit) as e:
        await http.request("POST", server.url + "/create", json={})
    assert server.created == 1 and "not re-sent" in str(e.value)


async def test_dropped_connection_retried_when_idempotent(server, http):
    server.faults.add("item", "drop", times=2)
    assert (await http.request("GET", server.url + "/item")).ok
    assert server.count("item") == 3


async def test_slow_answer_times_out_then_retries(server):
    h = Http(provider="t", profile="p", policy=RetryPolicy(attempts=3, base_s=0.01, cap_s=0.02), timeout_s=0.3)
    server.faults.add("item", "slow", delay=1.0)
    try:
        assert (await h.request("GET", server.url + "/item")).ok
    finally:
        await h.close()
    assert server.count("item") == 2


async def test_malformed_json_is_a_protocol_error_without_traceback(server, http):
    server.faults.add("item", "malformed")
    r = await http.request("GET", server.url + "/item")
    with pytest.raises(ProtocolError) as e:
        r.json()
    assert "malformed JSON" in str(e.value) and "Traceback" not in str(e.value)


async def test_unreachable_host_gives_clear_transient_error(http):
    with pytest.raises(TransientError) as e:
        await http.request("GET", "http://127.0.0.1:1/x")
    assert "cannot connect" in str(e.value) and "aiohttp" not in str(e.value)


async def test_download_streams_and_checks_hash(server, http, tmp_path):
    d = await http.download(server.url + "/blob", tmp_path / "b.bin")
    assert d.size == len(BLOB) and d.sha256 == hashlib.sha256(BLOB).hexdigest()
    assert (tmp_path / "b.bin").read_bytes() == BLOB and not (tmp_path / "b.bin.part").exists()


async def test_truncated_download_is_retried(server, http, tmp_path):
    server.faults.add("blob", "truncate")
    d = await http.download(server.url + "/blob", tmp_path / "b.bin")
    assert d.size == len(BLOB) and server.count("blob") == 2


async def test_expired_download_is_not_found(server, http, tmp_path):
    server.faults.add("blob", "status", status=403, times=-1)
    with pytest.raises(NotFound, match="expired"):
        await http.download(server.url + "/blob", tmp_path / "b.bin")
    assert not (tmp_path / "b.bin.part").exists()


async def test_download_size_cap(server, http, tmp_path):
    with pytest.raises(ProtocolError, match="cap"):
        await http.download(server.url + "/blob", tmp_path / "b.bin", max_bytes=1000)


def test_retry_after_both_forms():
    assert parse_retry_after("3") == 3.0
    assert 9 <= parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) <= 11
    assert parse_retry_after("garbage") is None and parse_retry_after(None) is None


def test_signed_headers_are_rebuilt_per_attempt():
    calls = []

    def sign(body):
        calls.append(body)
        return {"X-Nonce": str(len(calls))}

    async def go():
        s = Misbehaving()
        await s.start()
        s.faults.add("item", "status", status=503)
        h = Http(policy=RetryPolicy(attempts=3, base_s=0.01, cap_s=0.02))
        try:
            await h.request("GET", s.url + "/item", headers=sign)
        finally:
            await h.close()
            await s.stop()
        return [r.headers.get("X-Nonce") for r in s.requests("item")]

    import asyncio
    assert asyncio.run(go()) == ["1", "2"]


async def test_retry_if_can_veto_retrying_a_definite_error(server, http):
    server.faults.add("item", "status", status=500, body={"code": 2, "message": "can't find field"}, times=-1)
    r = await http.request("GET", server.url + "/item", retry_if=lambda resp: resp.json().get("code") != 2)
    assert r.status == 500 and server.count("item") == 1
