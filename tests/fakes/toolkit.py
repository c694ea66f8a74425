"""Shared pieces of every fake provider server.

- :class:`FakeServer`: an ``aiohttp.web`` app bound to 127.0.0.1 on an ephemeral port (or a
  given one), with a request log (:meth:`FakeServer.seen` waits on events, never on sleep) and
  switchable faults applied by a middleware before the route handler runs.
- :class:`Clock`: a controllable clock for state machines ("queued for 2 s, then 10 steps of
  0.1 s"): real time times ``speed``, plus whatever a test adds with :meth:`Clock.advance`.
- :class:`Faults`: scripted one-shot or repeated faults per route name:
  ``fake.faults.add("submit", "status", status=503, times=2)``,
  ``fake.faults.add("submit", "status", status=429, retry_after=1)``, ``"drop"`` (close the
  connection without an answer), ``"drop_after"`` (run the handler — the work happens — then drop
  the answer), ``"slow"`` (``delay`` seconds first), ``"malformed"`` (a body that is not JSON),
  ``"truncate"`` (send half of the body, then close), ``"ws_drop"`` (read by WebSocket handlers:
  close mid-run after ``after`` messages), ``"status_after"`` (the handler runs — a task is created —
  then the answer is replaced by ``status``/``body``: a CDN 52x page, a 502), ``"late"`` (the handler
  runs only after ``delay`` seconds, even if the client gave up waiting; the answer follows),
  ``"gzip"`` (the real answer, gzip-compressed with Content-Encoding and Content-Length),
  ``"trickle"`` (the real answer sent in small pieces spread over ``delay`` seconds), ``"hold"``
  (requests wait until the test calls ``fault.release()``).

Fakes never import the extension: they are what a remote service is, built from the protocol
facts only, so that they can also run on their own (``python -m tests.fakes NAME --port N``).
"""
from __future__ import annotations

import asyncio
import gzip
import io
import json
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional

from aiohttp import web

HOST = "127.0.0.1"


class Clock:
    """``now()`` = monotonic real time × speed + manual offset. ``speed=0`` freezes time so a test
    moves it only with ``advance``; ``speed=10`` runs ten times faster than the wall."""

    def __init__(self, speed: float = 1.0):
        self.speed = speed
        self._t0 = time.monotonic()
        self._offset = 0.0

    def now(self) -> float:
        return (time.monotonic() - self._t0) * self.speed + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of fake time (real time when speed is 1)."""
        if self.speed <= 0:
            target = self.now() + seconds
            while self.now() < target:
                await asyncio.sleep(0.005)
            return
        await asyncio.sleep(seconds / self.speed)


@dataclass
class Fault:
    kind: str
    times: int = 1  # how many requests it hits; -1 = every one
    status: int = 500
    body: Any = None
    retry_after: Optional[float] = None
    delay: float = 0.0
    after: int = 0  # ws_drop: messages sent before the drop
    headers: dict = field(default_factory=dict)
    gate: asyncio.Event = field(default_factory=asyncio.Event)  # hold: requests wait until gate.set()

    def release(self) -> None:
        self.gate.set()


class Faults:
    def __init__(self) -> None:
        self._by_route: dict[str, list[Fault]] = {}
        self.fired: list[tuple[str, str]] = []

    def add(self, route: str, kind: str, **kw: Any) -> Fault:
        f = Fault(kind=kind, **kw)
        self._by_route.setdefault(route, []).append(f)
        return f

    def clear(self) -> None:
        self._by_route.clear()

    def take(self, route: str, kinds: Optional[set[str]] = None) -> Optional[Fault]:
        """The next fault scheduled for ``route`` (of one of ``kinds``), consuming one use."""
        for f in self._by_route.get(route, []):
            if f.times == 0 or (kinds is not None and f.kind not in kinds):
                continue
            if f.times > 0:
                f.times -= 1
            self.fired.append((route, f.kind))
            return f
        return None

    def pending(self, route: str) -> int:
        return sum(1 for f in self._by_route.get(route, []) if f.times != 0)


@dataclass
class Seen:
    route: str
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes
    t: float

    def json(self) -> Any:
        return json.loads(self.body or b"null")


HTTP_FAULTS = {"status", "drop", "drop_after", "slow", "slow_after", "malformed", "truncate", "status_after", "late",
               "gzip", "trickle", "hold"}
CDN_PAGE = ("<html><head><title>524: A timeout occurred</title></head><body>The origin web server timed out "
            "responding to this request.</body></html>")


def json_response(data: Any, status: int = 200, headers: Optional[dict] = None) -> web.Response:
    return web.Response(body=json.dumps(data, ensure_ascii=False).encode(), status=status,
                        content_type="application/json", headers=headers)


def png_bytes(rgb: tuple[int, int, int] = (255, 0, 0), size: tuple[int, int] = (8, 8),
              alpha: Optional[int] = None) -> bytes:
    """A small real PNG for result files."""
    from PIL import Image

    mode = "RGBA" if alpha is not None else "RGB"
    color = (*rgb, alpha) if alpha is not None else rgb
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


class FaultKnobs:
    """The request log and switchable faults, for any aiohttp server (mixed into :class:`FakeServer`
    and into the bundled sandbox server by its test subclass). Call :meth:`_init_knobs` in
    ``__init__``, put ``self._middleware`` first in the app's middlewares, call
    :meth:`_knobs_started` once the server runs."""

    def _init_knobs(self) -> None:
        self.faults = Faults()
        self.log: list[Seen] = []
        self._cond: Optional[asyncio.Condition] = None

    def _knobs_started(self) -> None:
        self._cond = asyncio.Condition()

    # ---- request log
    def requests(self, route: Optional[str] = None) -> list[Seen]:
        return [s for s in self.log if route is None or s.route == route]

    def count(self, route: str) -> int:
        return len(self.requests(route))

    async def seen(self, route: str, count: int = 1, timeout: float = 10.0) -> list[Seen]:
        """Wait until ``route`` was requested ``count`` times in all; return those requests."""
        assert self._cond is not None, "server not started"

        async def _wait() -> None:
            async with self._cond:
                await self._cond.wait_for(lambda: self.count(route) >= count)

        await asyncio.wait_for(_wait(), timeout)
        return self.requests(route)

    async def _record(self, seen: Seen) -> None:
        self.log.append(seen)
        if self._cond is not None:
            async with self._cond:
                self._cond.notify_all()

    def route_name(self, request: web.Request) -> str:
        info = request.match_info.route
        name = getattr(info, "name", None)
        return name or request.path

    # ---- faults
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        route = self.route_name(request)
        body = await request.read() if request.can_read_body else b""
        await self._record(Seen(route, request.method, request.path, dict(request.query),
                                dict(request.headers), body, self.clock.now()))
        fault = self.faults.take(route, HTTP_FAULTS)
        if fault is None:
            return await handler(request)
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            return await handler(request)
        if fault.kind == "slow_after":
            resp = await handler(request)
            await asyncio.sleep(fault.delay)
            return resp
        if fault.kind == "hold":
            await fault.gate.wait()
            return await handler(request)
        if fault.kind == "late":
            work = asyncio.ensure_future(_late(fault.delay, handler, request))  # survives the client leaving
            return await asyncio.shield(work)
        if fault.kind in ("gzip", "trickle"):
            resp = await handler(request)
            data = getattr(resp, "body", None)
            if not isinstance(data, (bytes, bytearray)):
                return resp
            if fault.kind == "gzip":
                packed = gzip.compress(bytes(data))
                out = web.Response(body=packed, status=resp.status, headers={
                    **{k: v for k, v in resp.headers.items() if k.lower() not in ("content-length", "content-encoding")},
                    "Content-Encoding": "gzip"})
                return out
            return await _trickle(request, resp, bytes(data), fault.delay)
        if fault.kind == "status_after":
            await handler(request)  # the work happens; a gateway then answers with an error
        if fault.kind in ("status", "status_after"):
            headers = dict(fault.headers)
            if fault.retry_after is not None:
                headers["Retry-After"] = str(int(fault.retry_after) if float(fault.retry_after).is_integer()
                                             else fault.retry_after)
            body_out = fault.body if fault.body is not None else (
                CDN_PAGE if fault.kind == "status_after" else {"error": f"injected HTTP {fault.status}"})
            if isinstance(body_out, (dict, list)):
                return json_response(body_out, status=fault.status, headers=headers)
            return web.Response(text=str(body_out), status=fault.status, headers=headers)
        if fault.kind == "malformed":
            return web.Response(text="<html>502 Bad Gateway</html>{\"trunc", status=fault.status
                                if fault.status != 500 else 200, content_type="application/json")
        if fault.kind in ("drop", "drop_after"):
            if fault.kind == "drop_after":
                await handler(request)  # the work happens; only the answer is lost
            _drop(request)
            return web.Response()
        if fault.kind == "truncate":
            resp = await handler(request)
            data = getattr(resp, "body", None)
            if not isinstance(data, (bytes, bytearray)):
                return resp
            out = web.StreamResponse(status=resp.status, headers={"Content-Type": resp.content_type or
                                                                  "application/octet-stream"})
            out.content_length = len(data)
            await out.prepare(request)
            await out.write(bytes(data[: max(1, len(data) // 2)]))
            _drop(request)
            return out
        return await handler(request)  # pragma: no cover - unknown kinds are ignored


class FakeServer(FaultKnobs):
    """Base of every fake. Subclasses add routes in ``setup_routes`` with names (the names are
    what faults and ``seen`` refer to), and may override ``route_name`` for path-based routing."""

    name = "fake"

    def __init__(self, *, clock: Optional[Clock] = None, port: int = 0):
        self.clock = clock or Clock()
        self._init_knobs()
        self.port = port
        self.url = ""
        self._runner: Optional[web.AppRunner] = None
        self.app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        self.setup_routes(self.app.router)

    # ---- to override
    def setup_routes(self, router: web.UrlDispatcher) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def credentials(self) -> dict:
        """What a profile needs to use this fake (printed when it runs on its own)."""
        return {}

    # ---- lifecycle
    async def start(self) -> str:
        self._knobs_started()
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, self.port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.port = sock.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakeServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


async def _late(delay: float, handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(delay)
    return await handler(request)


async def _trickle(request: web.Request, resp: web.Response, data: bytes, seconds: float) -> web.StreamResponse:
    out = web.StreamResponse(status=resp.status, headers={"Content-Type": resp.content_type or "application/octet-stream"})
    out.content_length = len(data)
    await out.prepare(request)
    pieces = max(4, int(seconds / 0.1))
    step = max(1, -(-len(data) // pieces))
    for i in range(0, len(data), step):
        await out.write(data[i:i + step])
        await asyncio.sleep(seconds / pieces)
    await out.write_eof()
    return out


def _drop(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.close()


def run_standalone(make: Callable[..., FakeServer], port: int, **kw: Any) -> None:
    """Run one fake until Ctrl-C, printing its URL (used by ``python -m tests.fakes``)."""

    async def main() -> None:
        fake = make(port=port, **kw)
        url = await fake.start()
        print(f"{fake.name} fake listening on {url}", flush=True)
        for key, value in fake.credentials().items():
            print(f"  {key}={value}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await fake.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
