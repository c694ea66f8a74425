"""HTTP for every provider: timeouts on everything, the transport's one retry loop, size caps,
streaming downloads with resume, and errors that never carry an aiohttp traceback or a secret.

Whether a request was *sent* is tracked exactly (aiohttp's ``on_request_headers_sent``): an error
before that point is :class:`NotSent` (nothing can have happened remotely), after it
:class:`AnswerLost`. Then:

- a request that creates work (``creates=True``) is tried ONCE; its Response is returned whatever
  the status, and a lost answer raises AnswerLost. ``engine/rules.py`` decides what happens next.
- any other request is retried here on NotSent, AnswerLost, 408, 429 and 5xx with backoff,
  honouring Retry-After, ``policy.attempts`` times in all.

Three sessions, so that one kind of traffic never starves another: API calls (bounded pool),
streams (WebSockets, server-sent events: no pool limit) and downloads (idle timeout instead of a
total one, a resolver that refuses private addresses unless the profile's own host is one).
"""
from __future__ import annotations

import asyncio
import email.utils
import json as jsonlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union
from urllib.parse import urljoin, urlsplit

import aiohttp

from ..providers.errors import (AnswerLost, ConfigError, NotFound, NotSent, ProtocolError, RejectedInput,
                                RemoteError, TransientError)
from .files import size_or_zero, unlink_quietly
from .pacing import Budget
from .redaction import scrub, strip_query
from .rules import RetryPolicy, status_error
from .urls import GuardedResolver, check_url

MiB = 1024 * 1024
DEFAULT_MAX_BODY = 64 * MiB  # JSON/API answers
DEFAULT_MAX_DOWNLOAD = 4096 * MiB  # one result file
CHUNK = 1 * MiB
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
EXPIRED_STATUSES = frozenset({401, 403, 404, 410})
MAX_REDIRECTS = 5

HeadersArg = Union[None, Mapping[str, str], Callable[[bytes], Mapping[str, str]]]
DataArg = Union[None, bytes, str, Callable[[], Any]]

__all__ = ["Http", "Response", "RetryPolicy", "Fetched", "Expired", "parse_retry_after"]


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Retry-After in seconds from either form (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    method: str
    provider: str = ""
    profile: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def retry_after(self) -> Optional[float]:
        return parse_retry_after(self.headers.get("Retry-After"))

    def json(self) -> Any:
        try:
            return jsonlib.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            snippet = scrub(self.text[:120]).replace("\n", " ")
            raise ProtocolError(f"{self.method} {strip_query(self.url)} answered HTTP {self.status} with "
                                f"malformed JSON: {snippet!r}", provider=self.provider, profile=self.profile,
                                hint="the service may be down or a proxy answered; try again later") from None


class Expired(NotFound):
    """A result URL answered 401/403/404/410: ask the provider for a fresh one."""

    kind = "expired"


@dataclass
class Fetched:
    path: Path
    size: int
    mime: Optional[str]
    complete: bool  # False: the body stopped early (what arrived stays in the .part file)


def _sent_tracker() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()

    async def sent(_session: Any, ctx: Any, _params: Any) -> None:
        if isinstance(ctx.trace_request_ctx, dict):
            ctx.trace_request_ctx["sent"] = True

    trace.on_request_headers_sent.append(sent)
    return trace


class Http:
    """One client per provider instance; sessions are created lazily on the loop that uses them."""

    def __init__(self, *, provider: str = "", profile: str = "", policy: RetryPolicy = RetryPolicy(),
                 max_body: int = DEFAULT_MAX_BODY, allow_private: Optional[bool] = True,
                 sleep: Callable[[float], Any] = asyncio.sleep, timeout_s: Optional[float] = None,
                 budget: Optional[Budget] = None):
        self.provider = provider
        self.profile = profile
        self.policy = policy
        self.budget = budget or Budget(None)  # the profile's request rate, shared by all its tasks
        self.timeout_s = timeout_s if timeout_s is not None else policy.request_timeout_s
        self.max_body = max_body
        self.allow_private = allow_private  # downloads: None = decide from the profile's host first
        self._sleep = sleep
        self._api: Optional[aiohttp.ClientSession] = None
        self._streams: Optional[aiohttp.ClientSession] = None
        self._downloads: Optional[aiohttp.ClientSession] = None
        self.stats = {"requests": 0, "retries": 0}

    # ------------------------------------------------------------------ sessions
    async def session(self) -> aiohttp.ClientSession:
        if self._api is None or self._api.closed:
            self._api = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=self.policy.connect_timeout_s,
                                              sock_read=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=64, limit_per_host=16),
                trace_configs=[_sent_tracker()], auto_decompress=True)
        return self._api

    async def stream_to_open(self) -> aiohttp.ClientSession:
        """The stream session, to open one WebSocket or event stream: its handshake is a request to
        the service, so it takes one from the profile's budget like any API call (100 tasks opening
        their streams at once stay inside the service's rate)."""
        await self.budget.take()
        return await self.stream_session()

    async def stream_session(self) -> aiohttp.ClientSession:
        if self._streams is None or self._streams.closed:
            self._streams = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
                                                  timeout=aiohttp.ClientTimeout(total=None))
        return self._streams

    async def download_session(self) -> aiohttp.ClientSession:
        if self._downloads is None or self._downloads.closed:
            self._downloads = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=self.policy.connect_timeout_s,
                                              sock_read=self.policy.idle_timeout_s),
                connector=aiohttp.TCPConnector(limit=32, limit_per_host=8,
                                               resolver=GuardedResolver(bool(self.allow_private))),
                auto_decompress=True)
        return self._downloads

    async def close(self) -> None:
        for s in (self._api, self._streams, self._downloads):
            if s is not None and not s.closed:
                await s.close()
        self._api = self._streams = self._downloads = None

    def _err(self, cls: type[RemoteError], detail: str, **kw: Any) -> RemoteError:
        return cls(scrub(detail), provider=self.provider, profile=self.profile, **kw)

    # ------------------------------------------------------------------ requests
    async def request(self, method: str, url: str, *, params: Optional[Mapping[str, Any]] = None,
                      json: Any = None, data: DataArg = None, headers: HeadersArg = None,
                      timeout_s: Optional[float] = None, creates: bool = False,
                      max_body: Optional[int] = None, allow_redirects: bool = True, retry: bool = True,
                      retry_if: Optional[Callable[[Response], bool]] = None) -> Response:
        """Send a request under the rules above and return the Response for any final status
        (callers interpret it). ``headers`` may be a callable taking the body bytes and returning
        fresh headers per attempt (signatures with nonces); ``data`` may be a callable returning
        fresh data per attempt (multipart forms cannot be re-sent). ``retry_if`` may veto a retry
        of a 5xx/429 whose body is a definite application error (it is then returned as is)."""
        method = method.upper()
        body_bytes: Optional[bytes] = None
        if json is not None:
            try:
                body_bytes = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
            except ValueError:
                raise self._err(RejectedInput, f"{method} {strip_query(url)}: a number in the request is not finite "
                                "(NaN or infinity)", hint="check the RemoteInputFloat values") from None
        elif isinstance(data, str):
            body_bytes = data.encode()
        elif isinstance(data, (bytes, bytearray)):
            body_bytes = bytes(data)
        cap = self.max_body if max_body is None else max_body
        attempts = 1 if (creates or not retry) else max(1, self.policy.attempts)
        last: Optional[RemoteError] = None
        where = f"{method} {strip_query(url)}"
        t = self.timeout_s if timeout_s is None else timeout_s
        timeout = aiohttp.ClientTimeout(total=None, connect=min(self.policy.connect_timeout_s, t), sock_read=t)
        for attempt in range(attempts):
            if attempt:
                self.stats["retries"] += 1
                await self._sleep(self.policy.delay(attempt - 1, last.retry_after if last else None))
            hdrs: dict[str, str] = {}
            if callable(headers):
                hdrs.update(headers(body_bytes or b""))
            elif headers:
                hdrs.update(headers)
            if json is not None:
                hdrs.setdefault("Content-Type", "application/json")
            payload: Any = body_bytes if body_bytes is not None else (data() if callable(data) else data)
            track = {"sent": False}
            await self.budget.take()
            self.stats["requests"] += 1
            try:
                session = await self.session()
                async with session.request(method, url, params=params, data=payload, headers=hdrs,
                                           timeout=timeout, allow_redirects=allow_redirects,
                                           trace_request_ctx=track) as resp:
                    body = await self._read_capped(resp, cap, where)
                    status = resp.status
                    rheaders = {k: v for k, v in resp.headers.items()}
            except (aiohttp.InvalidURL, ValueError) as e:
                raise self._err(ConfigError, f"{where}: the request could not be built ({e.__class__.__name__}: "
                                f"{str(e)[:80]})", hint="check the profile's url") from None
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                kind = "timed out" if isinstance(e, asyncio.TimeoutError) else f"connection failed ({e.__class__.__name__})"
                if not track["sent"]:
                    last = self._err(NotSent, f"{where}: {kind} before the request was sent",
                                     hint="check the profile's url and your network")
                    continue
                last = self._err(AnswerLost, f"{where}: {kind} after the request was sent",
                                 hint="the service may have acted on it")
                if attempts == 1:
                    raise last from None
                continue
            resp_obj = Response(status, rheaders, body, str(url), method, self.provider, self.profile)
            if status == 429:
                self.budget.slow_down(resp_obj.retry_after)
            if attempts > 1 and status in RETRY_STATUSES and (retry_if is None or retry_if(resp_obj)):
                last = status_error(resp_obj, where, provider=self.provider, profile=self.profile)
                continue
            return resp_obj
        assert last is not None
        last.detail = f"{last.detail} (after {attempts} attempt{'s' if attempts > 1 else ''})"
        raise last

    async def _read_capped(self, resp: aiohttp.ClientResponse, cap: int, where: str) -> bytes:
        # Content-Length counts the bytes on the wire (compressed when Content-Encoding is set);
        # aiohttp itself raises ClientPayloadError when fewer arrive, so only the cap is ours.
        length = resp.content_length
        if length is not None and length > cap and not resp.headers.get("Content-Encoding"):
            raise self._err(ProtocolError, f"{where}: answer of {length} bytes exceeds the {cap // MiB} MiB cap")
        buf = bytearray()
        async for chunk in resp.content.iter_chunked(256 * 1024):
            buf += chunk
            if len(buf) > cap:
                raise self._err(ProtocolError, f"{where}: answer exceeds the {cap // MiB} MiB cap")
        return bytes(buf)

    async def get_json(self, url: str, **kw: Any) -> Any:
        return (await self.request("GET", url, **kw)).json()

    # ------------------------------------------------------------------ websockets
    async def ws_connect(self, url: str, *, headers: Optional[Mapping[str, str]] = None,
                         heartbeat: float = 20.0, timeout_s: float = 15.0) -> aiohttp.ClientWebSocketResponse:
        """Open a WebSocket on the stream session; the handshake is bounded by ``timeout_s``, a
        silent peer by ``heartbeat``. A refused handshake raises TransientError with ``code``."""
        session = await self.stream_to_open()
        try:
            return await asyncio.wait_for(
                session.ws_connect(url, headers=headers, heartbeat=heartbeat,
                                   timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                                   max_msg_size=64 * MiB, autoping=True), timeout_s)
        except aiohttp.WSServerHandshakeError as e:
            raise self._err(TransientError, f"WebSocket {strip_query(url)}: handshake refused (HTTP {e.status})",
                            code=e.status) from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise self._err(TransientError, f"WebSocket {strip_query(url)}: cannot connect ({e.__class__.__name__})") from None

    # ------------------------------------------------------------------ downloads
    async def fetch_to(self, url: str, part: Path, *, headers: Optional[Mapping[str, str]] = None,
                       max_bytes: int = DEFAULT_MAX_DOWNLOAD,
                       on_progress: Optional[Callable[[int, Optional[int]], None]] = None) -> Fetched:
        """ONE attempt to bring ``url`` into ``part``, resuming with ``Range`` from what ``part``
        already holds. Redirects are followed here, each hop checked; ``headers`` go only to the
        first URL's origin. Raises Expired (401/403/404/410), TransientError (429/5xx, a drop —
        what arrived is kept), ProtocolError/RejectedInput (refused URL, over the cap)."""
        part = Path(part)
        await asyncio.to_thread(part.parent.mkdir, parents=True, exist_ok=True)
        have = await asyncio.to_thread(size_or_zero, part)
        origin = _origin(url)
        current = url
        session = await self.download_session()
        for _ in range(MAX_REDIRECTS + 1):
            current = check_url(current, allow_private=bool(self.allow_private))
            where = f"GET {strip_query(current)}"
            hdrs = dict(headers or {}) if _origin(current) == origin else {}
            hdrs["Accept-Encoding"] = "identity"
            if have:
                hdrs["Range"] = f"bytes={have}-"
            self.stats["requests"] += 1
            try:
                async with session.get(current, headers=hdrs, allow_redirects=False) as resp:
                    if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                        current = urljoin(current, resp.headers["Location"])
                        continue
                    return await self._take(resp, part, have, max_bytes, on_progress, where)
            except RemoteError:
                raise
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as e:
                kind = "stalled (no data within the idle timeout)" if isinstance(e, asyncio.TimeoutError) \
                    else f"connection lost ({e.__class__.__name__})"
                raise self._err(TransientError, f"{where}: {kind}") from None
        raise self._err(ProtocolError, f"GET {strip_query(url)}: more than {MAX_REDIRECTS} redirects")

    async def _take(self, resp: aiohttp.ClientResponse, part: Path, have: int, max_bytes: int,
                    on_progress: Any, where: str) -> Fetched:
        status = resp.status
        if status in EXPIRED_STATUSES:
            raise self._err(Expired, f"{where}: the result URL has expired or is gone (HTTP {status})", code=status,
                            hint="fresh links are asked for; the task stays tracked")
        if status == 416 and have:  # our partial file is wrong for this resource: start over
            await asyncio.to_thread(unlink_quietly, part)
            raise self._err(TransientError, f"{where}: range not satisfiable; starting over")
        if status in RETRY_STATUSES:
            raise self._err(TransientError, f"{where}: HTTP {status}",
                            retry_after=parse_retry_after(resp.headers.get("Retry-After")))
        if status not in (200, 206):
            raise self._err(ProtocolError, f"{where}: HTTP {status}", code=status)
        encoded = resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        if status == 200 or encoded:
            have = 0  # the server ignored our Range (or compressed the body anyway): take it all again
        length = None if encoded else resp.content_length  # the wire length of a compressed body
        total = (have + length) if length is not None else None
        if total is not None and total > max_bytes:
            await asyncio.to_thread(unlink_quietly, part)  # a file refused for good leaves nothing behind
            raise self._err(RejectedInput, f"{where}: file of {total} bytes exceeds the {max_bytes // MiB} MiB cap")
        fh = await asyncio.to_thread(open, part, "ab" if have else "wb")
        size = have
        try:
            async for chunk in resp.content.iter_chunked(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise self._err(RejectedInput, f"{where}: file exceeds the {max_bytes // MiB} MiB cap")
                await asyncio.to_thread(fh.write, chunk)
                if on_progress is not None:
                    on_progress(size, total)
        except (aiohttp.ClientPayloadError, aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
            size = -1
        except RejectedInput:
            await asyncio.to_thread(fh.close)
            await asyncio.to_thread(unlink_quietly, part)
            raise
        finally:
            if not fh.closed:
                await asyncio.to_thread(fh.close)
        if size < 0 or (total is not None and size != total):
            got = await asyncio.to_thread(size_or_zero, part)
            raise self._err(TransientError, f"{where}: the download stopped at {got}"
                            + (f" of {total} bytes" if total else " bytes") + "; resuming")
        mime = resp.headers.get("Content-Type", "").split(";")[0].strip() or None
        return Fetched(part, size, mime, True)


def _origin(url: str) -> tuple:
    p = urlsplit(url)
    return (p.scheme, p.hostname, p.port)
