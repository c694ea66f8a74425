"""The one server-sent-events reader of the pack (the counterpart of ``engine/websocket.py``). A
provider declares its policy (idle timeout, backoff, which refusals are final); this module does the
connecting, parsing, reconnecting and cleanup.

``events()`` yields :class:`Event` objects: ``event`` (name + data, JSON-decoded when it is JSON),
and the markers ``connected`` (with a generation number) and ``disconnected``. Comment lines (``:
keepalive``) only keep the connection alive: the idle timeout counts from the last byte, so a
server that sends its heartbeat is never dropped, and a silent one is reconnected after
``idle_s``. Events missed while disconnected are not replayed (``id:``/``retry:`` are ignored), so
a consumer polls after a reconnect. A final refusal (``final_codes``, e.g. 501 "no streams here")
raises :class:`StreamRefused`; a 429/503 waits out Retry-After and connects again. Closing the
generator (or cancelling its consumer) closes the response. Streams use the Http client's stream
session, so they never take connections from API calls, and never follow redirects (a key sent
with the request must not travel to another origin).
"""
from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping, Optional, Union

import aiohttp

from ..providers.errors import TransientError
from . import redaction
from .redaction import strip_query
from .transfer import parse_retry_after

log = redaction.get_logger("comfyui_remote.sse")

UrlArg = Union[str, Callable[[], Awaitable[str]]]
MAX_EVENT_BYTES = 32 * 1024 * 1024  # one event (a base64 preview is the largest expected)


@dataclass(frozen=True)
class StreamPolicy:
    reconnects: Optional[int] = None  # failures in a row before giving up; None = while someone listens
    backoff_s: float = 0.1
    backoff_cap_s: float = 5.0
    retry_after_cap_s: float = 60.0
    final_codes: frozenset = field(default_factory=lambda: frozenset({400, 401, 403, 404, 410, 501}))
    connect_s: float = 10.0
    idle_s: float = 45.0  # no byte (not even a keepalive comment) for this long: reconnect
    healthy_after_s: float = 5.0  # a stream that lived this long resets the failure count

    def delay(self, failures: int, retry_after: Optional[float] = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap_s)
        exp = min(self.backoff_cap_s, self.backoff_s * 2 ** min(failures, 20))
        return random.uniform(exp / 2, exp)


@dataclass
class Event:
    kind: str  # "event" | "connected" | "disconnected"
    name: str = "message"
    data: Any = None


class StreamRefused(TransientError):
    """The server refused the stream with a status the policy calls final (``code``)."""

    kind = "stream_refused"


class Parser:
    """Incremental ``text/event-stream`` parser (WHATWG rules: ``\\n``, ``\\r\\n`` or ``\\r`` end a
    line; ``data:`` lines join with ``\\n``; a blank line dispatches; ``:`` starts a comment)."""

    def __init__(self) -> None:
        self._buf = b""
        self._name = ""
        self._data: list[str] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[Event]:
        self._buf += chunk
        out: list[Event] = []
        while True:
            cut = _line_end(self._buf)
            if cut is None:
                if len(self._buf) > MAX_EVENT_BYTES:
                    raise ValueError("an event exceeds the size cap")
                return out
            end, nxt = cut
            line, self._buf = self._buf[:end].decode("utf-8", "replace"), self._buf[nxt:]
            event = self._line(line)
            if event is not None:
                out.append(event)

    def _line(self, line: str) -> Optional[Event]:
        if not line:
            name, data = self._name or "message", self._data
            self._name, self._data, self._size = "", [], 0
            if not data:
                return None
            text = "\n".join(data)
            try:
                return Event("event", name, json.loads(text))
            except ValueError:
                return Event("event", name, text)
        if line.startswith(":"):
            return None  # a comment: the keepalive
        fld, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if fld == "event":
            self._name = value
        elif fld == "data":
            self._size += len(value)
            if self._size > MAX_EVENT_BYTES:
                raise ValueError("an event exceeds the size cap")
            self._data.append(value)
        return None  # id, retry and unknown fields are ignored


def _line_end(buf: bytes) -> Optional[tuple[int, int]]:
    n, r = buf.find(b"\n"), buf.find(b"\r")
    if r < 0 and n < 0:
        return None
    if r < 0 or (0 <= n < r):
        return n, n + 1
    if r == len(buf) - 1:
        return None  # a lone \r at the end may be the first half of \r\n
    return (r, r + 2) if buf[r + 1:r + 2] == b"\n" else (r, r + 1)


async def events(http: Any, url: UrlArg, *, headers: Optional[Mapping[str, str]] = None,
                 policy: StreamPolicy = StreamPolicy()) -> AsyncIterator[Event]:
    """Follow one event stream under ``policy`` (see the module docstring)."""
    failures = 0
    generation = 0
    hdrs = {"Accept": "text/event-stream", "Cache-Control": "no-cache", **(headers or {})}
    timeout = aiohttp.ClientTimeout(total=None, connect=policy.connect_s, sock_read=policy.idle_s)
    while True:
        target = url if isinstance(url, str) else await url()
        where = strip_query(target)
        retry_after: Optional[float] = None
        opened: Optional[float] = None
        try:
            session = await http.stream_to_open()
            async with session.get(target, headers=hdrs, timeout=timeout, allow_redirects=False) as resp:
                ctype = resp.headers.get("Content-Type", "")
                if resp.status != 200 or not ctype.startswith("text/event-stream"):
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    if resp.status in policy.final_codes:
                        raise StreamRefused(f"event stream {where}: refused (HTTP {resp.status})", code=resp.status,
                                            provider=http.provider, profile=http.profile, retry_after=retry_after)
                    raise _Retry(f"HTTP {resp.status} {ctype[:40]}")
                generation += 1
                opened = time.monotonic()
                yield Event("connected", data=generation)
                parser = Parser()
                async for chunk in resp.content.iter_any():
                    for event in parser.feed(chunk):
                        yield event
        except StreamRefused:
            raise
        except (_Retry, aiohttp.ClientError, asyncio.TimeoutError, ConnectionError, ValueError) as e:
            log.debug("%s: event stream %s ended (%s: %s)", http.provider, where, e.__class__.__name__, e)
        if opened is not None:
            yield Event("disconnected")
        lived = time.monotonic() - opened if opened is not None else 0.0
        failures = 0 if lived >= policy.healthy_after_s else failures + 1
        if policy.reconnects is not None and failures > policy.reconnects:
            return
        await asyncio.sleep(policy.delay(failures, retry_after))


class _Retry(Exception):
    """An answer that is not a stream but may become one: connect again after a backoff."""

