"""The one reconnecting WebSocket of the pack. A provider declares its policy (how often to
reconnect, which refusals are final); this module does the connecting, backoff and cleanup.

``frames()`` yields :class:`Frame` objects: parsed JSON text frames, raw binary frames, and the
markers ``connected`` (with a generation number) and ``disconnected`` — messages sent while a
socket was down are never replayed, so a consumer polls after a reconnect. The stream ends when the
policy gives up; closing the generator (or cancelling its consumer) closes the socket.
Sockets use the Http client's stream session, so they never take connections from API calls.
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

log = redaction.get_logger("comfyui_remote.websocket")

UrlArg = Union[str, Callable[[], Awaitable[str]]]


@dataclass(frozen=True)
class SocketPolicy:
    reconnects: Optional[int] = None  # failures in a row before giving up; None = while someone listens
    backoff_s: float = 0.05
    backoff_cap_s: float = 5.0
    final_codes: frozenset = field(default_factory=lambda: frozenset({401, 403}))  # refused handshakes
    heartbeat_s: float = 20.0
    healthy_after_s: float = 5.0  # a connection that lived this long resets the failure count

    def delay(self, failures: int) -> float:
        exp = min(self.backoff_cap_s, self.backoff_s * 2 ** min(failures, 20))
        return random.uniform(exp / 2, exp)


@dataclass
class Frame:
    kind: str  # "json" | "binary" | "connected" | "disconnected"
    data: Any = None


async def frames(http: Any, url: UrlArg, *, headers: Optional[Mapping[str, str]] = None,
                 policy: SocketPolicy = SocketPolicy(), first: Optional[Any] = None) -> AsyncIterator[Frame]:
    """Follow one WebSocket under ``policy``. ``first`` is a JSON message sent after each connect."""
    failures = 0
    generation = 0
    while True:
        try:
            target = url if isinstance(url, str) else await url()
            ws = await http.ws_connect(target, headers=headers, heartbeat=policy.heartbeat_s)
        except TransientError as e:
            if e.code in policy.final_codes:
                log.info("%s: WebSocket refused (HTTP %s); not retried", http.provider, e.code)
                return
            failures += 1
            if policy.reconnects is not None and failures > policy.reconnects:
                return
            await asyncio.sleep(policy.delay(failures))
            continue
        generation += 1
        opened = time.monotonic()
        try:
            if first is not None:
                await ws.send_str(json.dumps(first))
            yield Frame("connected", generation)
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        yield Frame("json", json.loads(msg.data))
                    except ValueError:
                        continue
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    yield Frame("binary", msg.data)
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                                  aiohttp.WSMsgType.ERROR):
                    break
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as e:
            log.debug("%s: WebSocket dropped (%s)", http.provider, e.__class__.__name__)
        finally:
            await _close(ws)
        yield Frame("disconnected")
        failures = 0 if time.monotonic() - opened >= policy.healthy_after_s else failures + 1
        if policy.reconnects is not None and failures > policy.reconnects:
            return
        await asyncio.sleep(policy.delay(failures))


async def _close(ws: Any) -> None:
    try:
        await asyncio.shield(ws.close())
    except (asyncio.CancelledError, Exception):
        pass
