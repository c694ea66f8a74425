"""The Comfy API v2 wire for ``providers/comfycloud.py``: error envelopes, Progress objects, origins,
and inputs as assets, content-addressed by blake3 (``blake3:<64 hex>`` of the raw bytes).

One upload, the SDK's dedup path: ``HEAD /assets/by-hash/{hash}``; on 200 ``POST /assets/from-hash``
(no bytes travel: a hit costs no upload); on 404 — or when the blob vanished in between — one
multipart ``POST /assets`` (parts ``content_type``, ``file_path``, ``expected_hash``, then ``file``).
Uploads carry no Idempotency-Key: the hash makes a repeat harmless (the service answers the same
blob), while a reused key might be refused. The value put in the target field is a ``core/ASSET``
reference, which the service resolves to the file name its loader expects.
"""
from __future__ import annotations

import asyncio
import re
from typing import Any, Optional
from urllib.parse import urlsplit

import aiohttp
import blake3

from ..engine.files import blocks
from .base import State, TaskUpdate
from .comfy_graph_check import summarise
from .errors import ProtocolError
from .kinds import kind_of
from .local_file import LocalFile, sendable

BIG = 1024 * 1024  # hash off the event loop above this size


def blake3_hash(data: Any) -> str:
    """The v2 asset hash of bytes, or of a file read in chunks (blocking for a file)."""
    if not isinstance(data, LocalFile):
        return "blake3:" + blake3.blake3(data).hexdigest()
    h = blake3.blake3()
    for block in blocks(data.path):
        h.update(block)
    return "blake3:" + h.hexdigest()


async def upload_asset(p: Any, data: bytes, mime: str, name: str) -> dict:
    """Upload one input through provider ``p`` (``api``, ``headers``, ``call``, ``error_of``)."""
    digest = await asyncio.to_thread(blake3_hash, data) if isinstance(data, LocalFile) or len(data) > BIG \
        else blake3_hash(data)
    head = p.api(f"/assets/by-hash/{digest}")
    resp = await p.http.request("HEAD", head, headers=p.headers(head))
    asset: Any = None
    if resp.status == 200:
        url = p.api("/assets/from-hash")
        resp = await p.http.request("POST", url, json={"hash": digest, "file_path": name}, headers=p.headers(url))
        if resp.status in (200, 201):
            asset = resp.json()
        elif resp.status != 404:  # 404 blob_not_found: gone since the HEAD; upload it
            raise p.error_of(resp, "POST /api/v2/assets/from-hash")
    elif resp.status != 404:
        raise p.error_of(resp, "HEAD /api/v2/assets/by-hash")
    if asset is None:
        def form() -> aiohttp.FormData:  # a fresh body per attempt (the transport may send it again)
            fd = aiohttp.FormData()
            fd.add_field("content_type", mime or "application/octet-stream")
            fd.add_field("file_path", name)
            fd.add_field("expected_hash", digest)
            fd.add_field("file", sendable(data), filename=name, content_type=mime or "application/octet-stream")
            return fd

        asset = await p.call("POST", p.api("/assets"), "POST /api/v2/assets", data=form)
    if not isinstance(asset, dict) or not isinstance(asset.get("id"), str) or not asset["id"]:
        raise p.error(ProtocolError, "the asset upload answered without an asset id")
    return {"__type": "core/ASSET", "info": {"id": asset["id"], "hash": digest,
                                             "file_path": str(asset.get("file_path") or name)}}


def origin(url: str) -> tuple:
    p = urlsplit(url)
    return (p.scheme, p.hostname, p.port or {"http": 80, "https": 443}.get(p.scheme))


def envelope(resp: Any) -> Optional[tuple[str, str, Any]]:
    try:
        data = resp.json()
    except ProtocolError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict) or not isinstance(err.get("code"), str):
        return None
    return err["code"], str(err.get("message") or "").strip(), err.get("details")


def node_errors(nodes: dict) -> tuple[str, Optional[str], Optional[str], Optional[str]]:
    """ComfyUI's native shape (what the proxy passes through), else the spec's example shape
    ``{"12": [{"field": "model", "reason": "missing_input"}]}``, read defensively."""
    if all(isinstance(v, dict) for v in nodes.values()):
        text, node, cls, target, _ = summarise(nodes)
        if text:
            return text, node, cls, target
    for nid, errs in nodes.items():
        first = errs[0] if isinstance(errs, list) and errs and isinstance(errs[0], dict) else {}
        fld = first.get("field") or first.get("input_name")
        return (f"#{nid}" + (f".{fld}" if fld else "") + f": {first.get('reason') or first.get('message') or errs}",
                str(nid), None, f"{nid}.{fld}" if fld else None)
    return "", None, None, None


def progress(p: Any, classes: Optional[dict] = None) -> TaskUpdate:
    """A Progress object as a running update; the proxy's placeholder zeros say nothing."""
    upd = TaskUpdate(State.RUNNING)
    if not isinstance(p, dict):
        return upd
    value, total = p.get("value"), p.get("nodes_total")
    if isinstance(value, (int, float)) and (value > 0 or (isinstance(total, int) and total > 0)):
        upd.progress = round(min(0.99, max(0.0, float(value))), 4)
    node = p.get("current_node")
    cls = p.get("current_node_class") or (classes or {}).get(str(node))
    if node is not None:
        upd.node = f"{cls} #{node}" if cls else f"#{node}"
    if isinstance(p.get("steps"), int) and p["steps"] > 0:
        upd.step, upd.max_steps = p.get("step") if isinstance(p.get("step"), int) else None, p["steps"]
    return upd


# an output's ``type`` → kind; the name or content type refines image/file (the proxy types an .mp4 from
# a core video saver "image"); a PreviewImage file (ComfyUI's ``_temp_xxxxx_`` naming) is a preview
KINDS = {"image": "image", "video": "video", "audio": "audio", "text": "text", "file": "file", "latent": "file"}
PREVIEW_NAME = re.compile(r"_temp_[a-z]{5}_\d{5}_\.\w+$")


def output_kind(o: dict, mime: Optional[str]) -> tuple[str, Optional[bool]]:
    name = o.get("name") if isinstance(o.get("name"), str) else None
    kind = KINDS.get(str(o.get("type")), "file")
    named = kind_of(name, mime)
    if kind in ("image", "file") and named != "file":
        kind = named
    return kind, (True if name and PREVIEW_NAME.search(name) else None)
