"""Http against a local aiohttp server that misbehaves in each toolkit fault."""
import asyncio
import time

import pytest
from aiohttp import web

from comfyui_remote.engine.transfer import Expired, Http, RetryPolicy, parse_retry_after
from comfyui_remote.providers.errors import AnswerLost, NotSent, ProtocolError, RejectedInput, TransientError
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

        self.ranges = True
        self.redirect_to = ""

        async def blob(request):
            rng = request.headers.get("Range", "")
            if self.ranges and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
                return web.Response(body=BLOB[start:], status=206, content_type="application/octet-stream",
                                    headers={"Content-Range": f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}",
                                             "Accept-Ranges": "bytes"})
            return web.Response(body=BLOB, content_type="application/octet-stream")

        async def redirect(request):
            raise web.HTTPFound(self.redirect_to)

        async def ws(request):
            sock = web.WebSocketResponse()
            await sock.prepare(request)
            async for _ in sock:
                pass
            return sock

        router.add_get("/item", item, name="item")
        router.add_post("/create", create, name="create")
        router.add_get("/blob", blob, name="blob")
        router.add_get("/redirect", redirect, name="redirect")
        router.add_get("/ws", ws, name="ws")


@pytest.fixture
async def server():
    s = Misbehaving()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def http():
    h = Http(provider="t", profile="p", policy=RetryPolicy(attempts=4, base_s=0.01, cap_s=0.05, request_timeout_s=2))
    yield h
    await h.close()


async def test_5xx_burst_is_retried_for_idempotent_requests(server, http):
    server.faults.add("item", "status", status=503, times=2)
    r = await http.request("GET", server.url + "/item")
    assert r.ok and r.json() == {"ok": True} and server.count("item") == 3


async def test_429_retry_after_is_honoured_on_reads(server, http):
    server.faults.add("item", "status", status=429, retry_after=0.3)
    t0 = time.monotonic()
    r = await http.request("GET", server.url + "/item")
    assert r.json() == {"ok": True} and time.monotonic() - t0 >= 0.3 and server.count("item") == 2


@pytest.mark.parametrize("status", [429, 500, 501, 502, 505, 520, 524])
async def test_a_create_is_sent_once_whatever_the_answer(server, http, status):
    server.faults.add("create", "status", status=status)
    r = await http.request("POST", server.url + "/create", json={}, creates=True)
    assert r.status == status and server.count("create") == 1


async def test_a_dropped_answer_after_a_create_is_answer_lost_never_resent(server, http):
    server.faults.add("create", "drop_after")
    with pytest.raises(AnswerLost) as e:
        await http.request("POST", server.url + "/create", json={}, creates=True)
    assert server.created == 1 and server.count("create") == 1 and "after the request was sent" in str(e.value)


async def test_a_create_that_never_left_the_machine_is_not_sent(http):
    with pytest.raises(NotSent) as e:
        await http.request("POST", "http://127.0.0.1:1/create", json={}, creates=True)
    assert "before the request was sent" in str(e.value) and "aiohttp" not in str(e.value)


async def test_waiting_for_a_pooled_connection_is_not_sending(server):
    """A create queued behind a full pool (16 per host) that times out never left: NotSent."""
    h = Http(provider="t", profile="p", policy=RetryPolicy(attempts=1, connect_timeout_s=0.3, request_timeout_s=5))
    server.faults.add("item", "slow", delay=1.5, times=16)
    try:
        busy = [asyncio.ensure_future(h.request("GET", server.url + "/item")) for _ in range(16)]
        await server.seen("item", 16)
        with pytest.raises(NotSent):
            await h.request("POST", server.url + "/create", json={}, creates=True)
        assert server.created == 0
        assert all(r.ok for r in await asyncio.gather(*busy))
    finally:
        await h.close()


async def test_many_open_websockets_do_not_starve_api_calls(server, http):
    sockets = [await http.ws_connect(server.url.replace("http", "ws") + "/ws") for _ in range(40)]
    try:
        t0 = time.monotonic()
        r = await http.request("POST", server.url + "/create", json={}, creates=True)
        assert r.ok and time.monotonic() - t0 < 1.0
    finally:
        for ws in sockets:
            await ws.close()


@pytest.mark.parametrize("route,method", [("item", "GET"), ("create", "POST")])
async def test_compressed_answers_with_content_length_are_read(server, http, route, method):
    server.faults.add(route, "gzip", times=-1)
    r = await http.request(method, f"{server.url}/{route}", json={} if method == "POST" else None,
                           creates=method == "POST")
    assert r.ok and isinstance(r.json(), dict)
    assert server.requests(route)[-1].headers.get("Accept-Encoding")  # the client said it takes gzip


async def test_dropped_connection_retried_when_idempotent(server, http):
    server.faults.add("item", "drop", times=2)
    assert (await http.request("GET", server.url + "/item")).ok
    assert server.count("item") == 3


async def test_slow_answer_times_out_then_retries(server):
    h = Http(provider="t", profile="p", policy=RetryPolicy(attempts=3, base_s=0.01, cap_s=0.02, request_timeout_s=0.3))
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
    assert "before the request was sent" in str(e.value) and "aiohttp" not in str(e.value)


async def fetch(http: Http, url: str, dest, **kw):
    got = await http.fetch_to(url, dest.with_name(dest.name + ".part"), **kw)
    return got, dest.with_name(dest.name + ".part").read_bytes()


async def test_download_streams_to_the_part_file(server, http, tmp_path):
    got, data = await fetch(http, server.url + "/blob", tmp_path / "b.bin")
    assert got.size == len(BLOB) and data == BLOB


async def test_a_truncated_download_fails_softly_and_the_next_attempt_completes_it(server, http, tmp_path):
    server.faults.add("blob", "truncate")
    with pytest.raises(TransientError, match="stopped at"):
        await fetch(http, server.url + "/blob", tmp_path / "b.bin")
    have = (tmp_path / "b.bin.part").stat().st_size  # what arrived before the drop (may be nothing)
    got, data = await fetch(http, server.url + "/blob", tmp_path / "b.bin")
    assert data == BLOB and got.size == len(BLOB)
    assert server.requests("blob")[-1].headers.get("Range") == (f"bytes={have}-" if have else None)


async def test_a_partial_file_resumes_with_range(server, http, tmp_path):
    (tmp_path / "b.bin.part").write_bytes(BLOB[:300_000])
    got, data = await fetch(http, server.url + "/blob", tmp_path / "b.bin")
    assert data == BLOB and got.size == len(BLOB)
    assert server.requests("blob")[-1].headers.get("Range") == "bytes=300000-"


async def test_a_server_without_ranges_gives_the_whole_file_again(server, http, tmp_path):
    (tmp_path / "b.bin.part").write_bytes(b"garbage that is not the start")
    server.ranges = False
    got, data = await fetch(http, server.url + "/blob", tmp_path / "b.bin")
    assert data == BLOB


async def test_a_slow_steady_download_has_no_total_limit(server, tmp_path):
    """The idle timeout is 1 s; the file takes about 3 s to arrive, a piece every 0.1 s."""
    h = Http(provider="t", profile="p", policy=RetryPolicy(attempts=1, idle_timeout_s=1.0, request_timeout_s=1.0))
    server.faults.add("blob", "trickle", delay=3.0)
    try:
        t0 = time.monotonic()
        got, data = await fetch(h, server.url + "/blob", tmp_path / "b.bin")
        assert data == BLOB and time.monotonic() - t0 > 2.5
    finally:
        await h.close()


async def test_a_stalled_download_times_out_and_keeps_what_arrived(server, tmp_path):
    h = Http(provider="t", profile="p", policy=RetryPolicy(attempts=1, idle_timeout_s=0.5))
    server.faults.add("blob", "slow_after", delay=2.0)  # headers, then nothing
    try:
        with pytest.raises(TransientError):
            await fetch(h, server.url + "/blob", tmp_path / "b.bin")
    finally:
        await h.close()


async def test_an_expired_url_says_so(server, http, tmp_path):
    server.faults.add("blob", "status", status=403, body="<Error><Code>AccessDenied</Code>Request has expired</Error>")
    with pytest.raises(Expired, match="expired"):
        await fetch(http, server.url + "/blob", tmp_path / "b.bin")


async def test_download_size_cap(server, http, tmp_path):
    with pytest.raises(RejectedInput, match="cap"):
        await fetch(http, server.url + "/blob", tmp_path / "b.bin", max_bytes=1000)


async def test_compressed_download_is_saved_decompressed(server, http, tmp_path):
    server.faults.add("blob", "gzip")
    got, data = await fetch(http, server.url + "/blob", tmp_path / "b.bin")
    assert data == BLOB


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "http://user:pw@example.com/x",
                                 "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/x", "http://localhost/x",
                                 "http://[::1]/x", "http://[::ffff:127.0.0.1]/x"])
async def test_result_urls_are_checked(url, tmp_path):
    h = Http(provider="t", profile="p", allow_private=False)
    try:
        with pytest.raises(ProtocolError) as e:
            await fetch(h, url, tmp_path / "b.bin")
        assert "pw" not in str(e.value)
    finally:
        await h.close()


@pytest.mark.parametrize("target", ["ftp://example.com/x", "http://user:pw@127.0.0.1/x"])
async def test_every_redirect_hop_is_checked(server, http, tmp_path, target):
    server.redirect_to = target
    with pytest.raises(ProtocolError):
        await fetch(http, server.url + "/redirect", tmp_path / "b.bin")


async def test_auth_headers_go_only_to_the_first_origin(server, tmp_path):
    other = Misbehaving()
    await other.start()
    server.redirect_to = other.url + "/blob"
    h = Http(provider="t", profile="p", allow_private=True)
    try:
        got, data = await fetch(h, server.url + "/redirect", tmp_path / "b.bin", headers={"Authorization": "Bearer k"})
        assert data == BLOB
        assert server.requests("redirect")[-1].headers.get("Authorization") == "Bearer k"
        assert "Authorization" not in other.requests("blob")[-1].headers
    finally:
        await h.close()
        await other.stop()


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
