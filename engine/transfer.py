"""HTTP for every provider: timeouts on everything, the one retry policy (backoff with jitter,
Retry-After), size caps, streaming downloads, and errors that never carry an aiohttp traceback
or a secret.

Retry rules (the only place they live):
- connection never established (DNS, refused, TLS)  → retried for every method;
- 429, 408, 5xx on an idempotent request            → retried, honouring Retry-After;
- 429 on a non-idempotent request                   → retried (the service refused it, nothing ran);
- 5xx, a drop or a read timeout *after sending* a non-idempotent request → :class:`AmbiguousSubmit`
  (the engine decides: ``find()`` or stop; never a blind resend that could bill twice).
Idempotent = GET/HEAD/PUT/DELETE/OPTIONS, or ``idempotent=True`` (read-only POSTs, or a POST that
carries an idempotency key the service honours).
"""
from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json as jsonlib
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Optional, Union

import aiohttp

from ..providers.base import (AmbiguousSubmit, NotFound, ProtocolError, RemoteError, TransientError)
from .redaction import scrub, strip_query

MiB = 1024 * 1024
DEFAULT_MAX_BODY = 64 * MiB  # JSON/API answers
DEFAULT_MAX_DOWNLOAD = 2048 * MiB  # one result file
CHUNK = 1 * MiB
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

HeadersArg = Union[None, Mapping[str, str], Callable[[bytes], Mapping[str, str]]]
DataArg = Union[None, bytes, str, Callable[[], Any]]


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # total tries of one request
    base_s: float = 0.5
    cap_s: float = 10.0
    retry_after_cap_s: float = 120.0

    def delay(self, attempt: int, retry_after: Optional[float] = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap_s)
        exp = min(self.cap_s, self.base_s * (2 ** attempt))
        return random.uniform(exp / 2, exp)  # "equal jitter"


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

    def json(self) -> Any:
        try:
            return jsonlib.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            snippet = scrub(self.text[:120]).replace("\n", " ")
            raise ProtocolError(f"{self.method} {strip_query(self.url)} answered HTTP {self.status} with "
                                f"malformed JSON: {snippet!r}", provider=self.provider, profile=self.profile,
                                hint="the service may be down or a proxy answered; try again later") from None


@dataclass
class Download:
    path: Path
    size: int
    sha256: str
    mime: Optional[str]


class Http:
    """One aiohttp session per provider instance, created lazily on the loop that uses it."""

    def __init__(self, *, provider: str = "", profile: str = "", timeout_s: float = 60.0,
                 connect_timeout_s: float = 15.0, policy: RetryPolicy = RetryPolicy(),
                 max_body: int = DEFAULT_MAX_BODY, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.provider = provider
        self.profile = profile
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.policy = policy
        self.max_body = max_body
        self._sleep = sleep
        self._session: Optional[aiohttp.ClientSession] = None
        self.stats = {"requests": 0, "retries": 0}

    # ------------------------------------------------------------------ session
    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=self.connect_timeout_s,
                                              sock_read=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=64, limit_per_host=16),
                auto_decompress=True,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _err(self, cls: type[RemoteError], detail: str, **kw: Any) -> RemoteError:
        return cls(scrub(detail), provider=self.provider, profile=self.profile, **kw)

    def _timeout(self, timeout_s: Optional[float]) -> aiohttp.ClientTimeout:
        t = self.timeout_s if timeout_s is None else timeout_s
        return aiohttp.ClientTimeout(total=t, connect=min(self.connect_timeout_s, t), sock_read=t)

    # ------------------------------------------------------------------ requests
    async def request(self, method: str, url: str, *, params: Optional[Mapping[str, Any]] = None,
                      json: Any = None, data: DataArg = None, headers: HeadersArg = None,
                      timeout_s: Optional[float] = None, idempotent: Optional[bool] = None,
                      max_body: Optional[int] = None, allow_redirects: bool = True,
                      retry: bool = True, retry_if: Optional[Callable[[Response], bool]] = None) -> Response:
        """Send one request with the retry rules above; return the Response for any final status
        (callers interpret 4xx bodies). ``headers`` may be a callable taking the body bytes and
        returning fresh headers per attempt (signatures with nonces); ``data`` may be a callable
        returning fresh data per attempt (multipart forms cannot be re-sent). ``retry_if`` may
        veto a retry of a 5xx/429 whose body is a definite application error (returned as is)."""
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        body_bytes: Optional[bytes] = None
        if json is not None:
            body_bytes = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":")).encode()
        elif isinstance(data, str):
            body_bytes = data.encode()
        elif isinstance(data, (bytes, bytearray)):
            body_bytes = bytes(data)
        cap = self.max_body if max_body is None else max_body
        attempts = self.policy.attempts if retry else 1
        last: Optional[RemoteError] = None
        where = f"{method} {strip_query(url)}"
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
            sent = False
            self.stats["requests"] += 1
            try:
                session = await self.session()
                async with session.request(method, url, params=params, data=payload, headers=hdrs,
                                           timeout=self._timeout(timeout_s),
                                           allow_redirects=allow_redirects) as resp:
                    sent = True
                    body = await self._read_capped(resp, cap, where)
                    status = resp.status
                    rheaders = {k: v for k, v in resp.headers.items()}
            except (aiohttp.ClientConnectorError, aiohttp.ClientSSLError) as e:
                last = self._err(TransientError, f"{where}: cannot connect ({e.__class__.__name__})",
                                 hint="check the profile's url and your network")
                continue
            except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                    asyncio.TimeoutError, aiohttp.ClientResponseError, ConnectionError) as e:
                kind = "timed out" if isinstance(e, asyncio.TimeoutError) else f"connection lost ({e.__class__.__name__})"
                if not idempotent:
                    raise self._err(AmbiguousSubmit, f"{where}: {kind} after the request was sent",
                                    hint="the service may have accepted it; not re-sent to avoid paying twice") from None
                last = self._err(TransientError, f"{where}: {kind}", hint="the service is slow or unreachable")
                continue
            except aiohttp.InvalidURL:
                raise self._err(ProtocolError, f"{where}: invalid URL", hint="check the profile's url") from None
            except aiohttp.ClientError as e:
                last = self._err(TransientError, f"{where}: {e.__class__.__name__}")
                if not idempotent and sent:
                    raise self._err(AmbiguousSubmit, f"{where}: {e.__class__.__name__} after sending") from None
                continue
            resp_obj = Response(status, rheaders, body, str(url), method, self.provider, self.profile)
            if status in RETRY_STATUSES and retry and (retry_if is None or retry_if(resp_obj)):
                ra = parse_retry_after(rheaders.get("Retry-After"))
                if status == 429 or idempotent:
                    last = self._err(TransientError, f"{where}: HTTP {status}", retry_after=ra,
                                     hint="the service is busy or rate-limited; retrying")
                    last.response = resp_obj  # type: ignore[attr-defined]
                    continue
                raise self._err(AmbiguousSubmit, f"{where}: HTTP {status} on a request that creates work",
                                hint="the service may have accepted it; not re-sent to avoid paying twice")
            return resp_obj
        assert last is not None
        last.detail = f"{last.detail} (after {attempts} attempts)"
        raise last

    async def _read_capped(self, resp: aiohttp.ClientResponse, cap: int, where: str) -> bytes:
        length = resp.content_length
        if length is not None and length > cap:
            raise self._err(ProtocolError, f"{where}: answer of {length} bytes exceeds the {cap // MiB} MiB cap")
        buf = bytearray()
        async for chunk in resp.content.iter_chunked(256 * 1024):
            buf += chunk
            if len(buf) > cap:
                raise self._err(ProtocolError, f"{where}: answer exceeds the {cap // MiB} MiB cap")
        if length is not None and len(buf) != length:
            raise aiohttp.ClientPayloadError(f"expected {length} bytes, got {len(buf)}")
        return bytes(buf)

    async def get_json(self, url: str, **kw: Any) -> Any:
        return (await self.request("GET", url, **kw)).json()

    # ------------------------------------------------------------------ websockets
    async def ws_connect(self, url: str, *, headers: Optional[Mapping[str, str]] = None,
                         heartbeat: float = 20.0, timeout_s: float = 15.0) -> aiohttp.ClientWebSocketResponse:
        """Open a WebSocket; the handshake is bounded by ``timeout_s``, a silent peer by ``heartbeat``."""
        session = await self.session()
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
    async def download(self, url: str, dest: Path, *, headers: Optional[Mapping[str, str]] = None,
                       max_bytes: int = DEFAULT_MAX_DOWNLOAD,
                       on_progress: Optional[Callable[[int, Optional[int]], None]] = None,
                       timeout_s: Optional[float] = None) -> Download:
        """Stream ``url`` into ``dest`` (via ``dest.part``) with bounded memory; retry transient
        failures and truncated bodies; 403/404/410 mean the result URL expired (NotFound)."""
        dest = Path(dest)
        part = dest.with_name(dest.name + ".part")
        where = f"GET {strip_query(url)}"
        last: Optional[RemoteError] = None
        for attempt in range(self.policy.attempts):
            if attempt:
                self.stats["retries"] += 1
                await self._sleep(self.policy.delay(attempt - 1, last.retry_after if last else None))
            self.stats["requests"] += 1
            try:
                session = await self.session()
                async with session.get(url, headers=dict(headers or {}), timeout=self._timeout(timeout_s)) as resp:
                    if resp.status in (401, 403, 404, 410):
                        raise self._err(NotFound, f"{where}: result file is gone (HTTP {resp.status})",
                                        code=resp.status,
                                        hint="the result URL expired or was removed; the task stays tracked")
                    if resp.status in RETRY_STATUSES:
                        last = self._err(TransientError, f"{where}: HTTP {resp.status}",
                                         retry_after=parse_retry_after(resp.headers.get("Retry-After")))
                        continue
                    if resp.status >= 400:
                        raise self._err(ProtocolError, f"{where}: HTTP {resp.status}", code=resp.status)
                    total = resp.content_length
                    if total is not None and total > max_bytes:
                        raise self._err(ProtocolError, f"{where}: file of {total} bytes exceeds the "
                                        f"{max_bytes // MiB} MiB cap")
                    size, digest = await self._stream_to(resp, part, max_bytes, total, on_progress, where)
                    if total is not None and size != total:
                        last = self._err(TransientError, f"{where}: truncated download ({size} of {total} bytes)")
                        continue
                    mime = resp.headers.get("Content-Type", "").split(";")[0].strip() or None
            except RemoteError:
                await asyncio.to_thread(_unlink, part)
                raise
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as e:
                last = self._err(TransientError, f"{where}: {e.__class__.__name__}")
                continue
            await asyncio.to_thread(os.replace, part, dest)
            return Download(dest, size, digest, mime)
        await asyncio.to_thread(_unlink, part)
        assert last is not None
        last.detail = f"{last.detail} (after {self.policy.attempts} attempts)"
        raise last

    async def _stream_to(self, resp: aiohttp.ClientResponse, part: Path, max_bytes: int,
                         total: Optional[int], on_progress: Any, where: str) -> tuple[int, str]:
        await asyncio.to_thread(part.parent.mkdir, parents=True, exist_ok=True)
        fh = await asyncio.to_thread(open, part, "wb")
        h = hashlib.sha256()
        size = 0
        try:
            async for chunk in resp.content.iter_chunked(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise self._err(ProtocolError, f"{where}: file exceeds the {max_bytes // MiB} MiB cap")
                h.update(chunk)
                await asyncio.to_thread(fh.write, chunk)
                if on_progress is not None:
                    on_progress(size, total)
        finally:
            await asyncio.to_thread(fh.close)
        return size, h.hexdigest()


def _unlink(p: Path) -> None:
    try:
        p.unlink()
    except FileNotFoundError:
        pass
