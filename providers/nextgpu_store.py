"""The user's own image store for nextGPU inputs (nextGPU has no upload API; facts §7.3).

An IMAGE bound for nextGPU is PUT as ``<image_upload_url>/<sha256>.png`` (a query on the setting,
e.g. a presigned signature, is kept for the PUT); the value sent to nextGPU is the ``url`` of the
store's JSON answer, or the PUT URL without its query. Neither the nextGPU user name nor its token
is ever sent here.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .base import ConfigError, RemoteError

SETTING = "image_upload_url"


def no_store(provider: Any) -> RemoteError:
    return provider.error(ConfigError, "nextGPU has no upload API: an IMAGE input needs your own public image store",
                          field=SETTING,
                          hint="set NEXTGPU_IMAGE_UPLOAD_URL (or image_upload_url in profiles.toml) to an HTTP PUT "
                               "location that serves the files publicly, or pass a public image URL with "
                               "RemoteInputText")


async def put_image(provider: Any, data: bytes, mime: str) -> str:
    base = str(provider.profile.get(SETTING) or "").strip()
    if not base:
        raise no_store(provider)
    ext = {"image/jpeg": "jpg", "image/webp": "webp"}.get(mime, "png")
    p = urlsplit(base)
    path = p.path.rstrip("/") + f"/{hashlib.sha256(data).hexdigest()}.{ext}"
    put_url = urlunsplit((p.scheme, p.netloc, path, p.query, ""))
    # the same bytes under the same name: the transport may send it again safely
    resp = await provider.http.request("PUT", put_url, data=data, headers={"Content-Type": mime or "image/png"})
    if resp.status in (401, 403):
        raise provider.error(ConfigError, f"the image store refused the upload (HTTP {resp.status})", field=SETTING,
                             hint="image_upload_url must accept an HTTP PUT of <url>/<sha256>.png")
    if not resp.ok:
        raise provider.http_error(resp, "PUT to image_upload_url")
    try:
        url = json.loads(resp.body).get("url")
    except (ValueError, UnicodeDecodeError, AttributeError):
        url = None
    if isinstance(url, str) and url.strip().startswith(("http://", "https://")):
        return url.strip()
    return urlunsplit((p.scheme, p.netloc, path, "", ""))
