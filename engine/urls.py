"""Result URLs are untrusted: only http(s), no userinfo, and no private, loopback or link-local
target unless the profile's own host is one (a ComfyUI on the LAN, a fake on 127.0.0.1).

The check runs on the literal URL (:func:`check_url`) and again on every address a host name
resolves to, at connect time (:class:`GuardedResolver`), so a DNS answer cannot point a download at
the machine's own services.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any, Optional
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver

from ..providers.errors import ProtocolError
from .redaction import strip_query


def is_private(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
                or ip.is_unspecified)


def check_url(url: Any, *, allow_private: bool, what: str = "result URL") -> str:
    """The URL if it may be fetched, else ProtocolError naming why (never the query string)."""
    text = str(url or "").strip()
    parts = urlsplit(text)
    shown = strip_query(text)[:200]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProtocolError(f"{what} {shown!r} is not an http(s) URL", hint="the service sent an unusable link")
    if parts.username is not None or parts.password is not None:
        raise ProtocolError(f"{what} for host {parts.hostname} carries a user name or password",
                            hint="refused: credentials in a link are never followed")
    host = parts.hostname
    if not allow_private and (host == "localhost" or host.endswith(".localhost") or is_private(host)):
        raise ProtocolError(f"{what} points at a private or local address ({host})",
                            hint="refused: a result link may not reach this machine or its network")
    return text


async def host_is_private(host: Optional[str]) -> bool:
    """Whether a profile's own host is on this machine or its network (then results may be too)."""
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost") or is_private(host):
        return True
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return any(is_private(str(info[4][0])) for info in infos)


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses private addresses unless allowed."""

    def __init__(self, allow_private: bool):
        self.allow_private = allow_private
        self._inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list:  # type: ignore[override]
        results = await self._inner.resolve(host, port, family)
        if self.allow_private:
            return results
        good = [r for r in results if not is_private(str(r["host"]))]
        if not good:
            raise OSError(f"{host} resolves only to private or local addresses")
        return good

    async def close(self) -> None:
        await self._inner.close()
