"""engine/sse.py: the one server-sent-events reader — parsing, keepalive, idle timeout, reconnect,
Retry-After and final refusals — against small aiohttp servers (no sleeps: the servers' own events)."""
from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from comfyui_remote.engine import sse
from comfyui_remote.engine.transfer import Http


def test_parser_follows_the_whatwg_rules():
    p = sse.Parser()
    got = p.feed(b": keepalive\n\nevent: status\r\ndata: {\"status\":\"queued\"}\r\n\r\nid: 7\nretry: 5\n")
    got += p.feed(b"data: line one\ndata: line two\n\ndata: {\"a\"")
    got += p.feed(b":1}\r")
    got += p.feed(b"\n\r")  # \r\n split across chunks, then a lone \r ends the blank line
    assert [(e.name, e.data) for e in got[:2]] == [("status", {"status": "queued"}), ("message", "line one\nline two")]
    assert len(got) == 2
    assert [(e.name, e.data) for e in p.feed(b"\n")] == [("message", {"a": 1})]


class Server:
    """Answers the next scripted behaviour per connection: ("events", frames, then close|hang)."""

    def __init__(self, script):
        self.script = list(script)
        self.connects = 0
        self.app = web.Application()
        self.app.router.add_get("/events", self.handler)

    async def handler(self, request):
        self.connects += 1
        kind, *args = self.script.pop(0) if self.script else ("status", 404, {})
        if kind == "status":
            return web.json_response({"error": "x"}, status=args[0], headers=args[1])
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for frame in args[0]:
            await resp.write(frame)
            await asyncio.sleep(args[2] if len(args) > 2 else 0)  # the pace of the server's frames
        if args[1] == "hang":
            await asyncio.sleep(30)
        return resp

    async def __aenter__(self):
        self.runner = web.AppRunner(self.app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/events"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


async def collect(url, policy, until):
    http = Http()
    got = []
    try:
        async for ev in sse.events(http, url, policy=policy):
            got.append(ev)
            if until(got):
                break
    finally:
        await http.close()
    return got


async def test_reconnects_after_the_stream_ends_and_marks_it():
    async with Server([("events", [b"event: a\ndata: 1\n\n"], "close"),
                       ("status", 503, {"Retry-After": "0"}),
                       ("events", [b"event: b\ndata: 2\n\n"], "close")]) as s:
        got = await collect(s.url, sse.StreamPolicy(backoff_s=0.01), lambda g: any(e.name == "b" for e in g))
    kinds = [(e.kind, e.name if e.kind == "event" else e.data) for e in got]
    assert kinds == [("connected", 1), ("event", "a"), ("disconnected", None), ("connected", 2), ("event", "b")]
    assert s.connects == 3


async def test_keepalive_keeps_a_quiet_stream_and_silence_reconnects():
    frames = [b": keepalive\n\n"] * 6  # 0.6 s of keepalives, every 0.1 s: longer than idle_s
    async with Server([("events", [b"event: a\ndata: 1\n\n"], "hang"),
                       ("events", frames + [b"data: 2\n\n"], "hang", 0.1)]) as s:
        t0 = time.monotonic()
        got = await collect(s.url, sse.StreamPolicy(idle_s=0.3, backoff_s=0.01),
                            lambda g: any(e.kind == "event" and e.data == 2 for e in g))
        took = time.monotonic() - t0
    assert [e.kind for e in got].count("disconnected") == 1  # only the silent first stream, after idle_s
    assert 0.9 <= took < 10 and s.connects == 2


async def test_a_final_refusal_raises_with_its_status_and_429_waits_retry_after():
    async with Server([("status", 429, {"Retry-After": "1"}), ("status", 501, {})]) as s:
        t0 = time.monotonic()
        with pytest.raises(sse.StreamRefused) as e:
            await collect(s.url, sse.StreamPolicy(backoff_s=0.01), lambda g: False)
        assert e.value.code == 501 and time.monotonic() - t0 >= 1.0 and s.connects == 2
