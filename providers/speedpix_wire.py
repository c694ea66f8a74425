"""The SpeedPix wire format, as pure functions (facts: ``shared/providers/speedpix.md``):

- Alibaba API-Gateway digest auth (HmacSHA256) exactly as the official SDKs send it (§1.3; the
  documented test vector is a unit test): StringToSign = method, Accept, Content-MD5, Content-Type,
  Date (an empty value keeps its line), ``name:value`` per signed header sorted by lower-case name,
  then the path, joined by ``\\n``. :func:`sign_request` is called once per attempt (fresh nonce, time).
- the ``workflow`` widget (``wf_id[@alias|#version]``) and a ``comfy_get_result`` answer read as
  :class:`Output` s (``images[]`` and the custom ``result`` fields, §1.5c).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import time
from typing import Any, Mapping, Optional, Sequence
from urllib.parse import unquote, urlsplit

from .base import Output
from .kinds import MIMES, extension, kind_of, mime_of
from .errors import ProtocolError, RejectedInput

ACCEPT = "application/json; charset=utf-8"
CONTENT_TYPE = "application/json; charset=utf-8"
SIGNATURE_METHOD = "HmacSHA256"
# the order the SDKs put in the x-ca-signature-headers header; the signed block is sorted
SIGNED_HEADERS = ("x-ca-timestamp", "x-ca-key", "x-ca-nonce", "x-ca-signature-method")
USER_AGENT = "comfyui-remote-speedpix/0.1"

_WF_RE = re.compile(r"^[A-Za-z0-9][\w.\-:]*$")
_REF_RE = re.compile(r"^[\w.\-]+$")
_NODE_RE = (re.compile(r"executing\s+([A-Za-z_]\w*)\s*\(node\s+([\w:]+)\)", re.I),
            re.compile(r"node\s+#?([\w:]+)\s*\(([A-Za-z_]\w*)\)", re.I),
            re.compile(r"executing\s+([A-Za-z_]\w*)", re.I))
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def gateway_date(epoch_s: float) -> str:
    """The SDKs' ``date`` header: RFC-1123-like with ``GMT+00:00`` (signed verbatim). English names
    regardless of locale (``strftime('%a')`` would follow LC_TIME)."""
    t = time.gmtime(epoch_s)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT+00:00")


def content_md5(body: bytes) -> str:
    """Base64 of the MD5 of the exact bytes sent."""
    return base64.b64encode(hashlib.md5(body).digest()).decode("ascii")


def string_to_sign(method: str, path: str, *, accept: str, content_md5: str, content_type: str, date: str,
                   headers: Mapping[str, str], signed: Sequence[str]) -> str:
    """The gateway's StringToSign (this API sends no query, so the last line is the path)."""
    lower = {k.lower(): v for k, v in headers.items()}
    lines = [method.upper(), accept, content_md5, content_type, date]
    for name in sorted(n.strip().lower() for n in signed if n.strip()):
        lines.append(f"{name}:{lower.get(name, '')}")
    lines.append(path)
    return "\n".join(lines)


def signature(app_secret: str, text: str) -> str:
    mac = hmac.new(app_secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def sign_request(app_key: str, app_secret: str, path: str, body: Optional[bytes], *, now_ms: int,
                 nonce: str, method: str = "POST") -> dict[str, str]:
    """Every header of one signed call. ``body`` None or empty: no ``content-md5`` (the MD5 line of
    the StringToSign stays empty)."""
    headers = {
        "date": gateway_date(now_ms / 1000.0),
        "x-ca-key": app_key,
        "x-ca-timestamp": str(int(now_ms)),
        "x-ca-nonce": nonce,
        "x-ca-signature-method": SIGNATURE_METHOD,
        "x-ca-signature-headers": ",".join(SIGNED_HEADERS),
        "Content-Type": CONTENT_TYPE,
        "Accept": ACCEPT,
    }
    md5 = content_md5(body) if body else ""
    if md5:
        headers["content-md5"] = md5
    sts = string_to_sign(method, path, accept=ACCEPT, content_md5=md5, content_type=CONTENT_TYPE,
                         date=headers["date"], headers=headers, signed=SIGNED_HEADERS)
    headers["x-ca-signature"] = signature(app_secret, sts)
    return headers


# --------------------------------------------------------------------------- workflow, values, outputs

def parse_workflow(text: str) -> tuple[str, Optional[str], Optional[str]]:
    """``wf_id``, ``wf_id@alias`` or ``wf_id#version`` -> (workflow_id, alias_id, version_id);
    alias ``main`` when neither is given (as the SDKs do). Raises RejectedInput(field=workflow)."""
    raw = (text or "").strip()
    hint = "give the workflow id from the SpeedPix console, optionally @alias or #version (e.g. wf_1@main, wf_1#v2)"
    if not raw:
        raise RejectedInput("the workflow is empty", field="workflow", hint=hint)
    if raw[0] in "{[":
        raise RejectedInput("SpeedPix runs published workflows by id, not a pasted graph", field="workflow",
                            hint="publish the workflow as an API in the SpeedPix console and give its id")
    if "@" in raw and "#" in raw:
        raise RejectedInput(f"workflow {raw!r} names both an alias and a version", field="workflow", hint=hint)
    wf, alias, version = raw, None, None
    if "@" in raw:
        wf, _, alias = raw.partition("@")
    elif "#" in raw:
        wf, _, version = raw.partition("#")
    if not _WF_RE.match(wf) or any(v is not None and not _REF_RE.match(v) for v in (alias, version)):
        raise RejectedInput(f"workflow {raw!r} is not a workflow id", field="workflow", hint=hint)
    return wf, (alias if alias or version else "main"), version


def node_of(message: str) -> tuple[str, str]:
    """(remote node id, node class) named in a failure message, where it names one."""
    m = _NODE_RE[0].search(message)
    if m:
        return m.group(2), m.group(1)
    m = _NODE_RE[1].search(message)
    if m:
        return m.group(1), m.group(2)
    m = _NODE_RE[2].search(message)
    return ("", m.group(1)) if m else ("", "")


def clean(text: Any, limit: int = 300) -> str:
    """Untrusted service text for a message: one line, printable, truncated."""
    s = re.sub(r"[\x00-\x1f\x7f]+", " ", str(text or "")).strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"


def num(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def as_int(value: Any) -> Optional[int]:
    f = num(value)
    return int(f) if f is not None else None


def media(name: str, fmt: Any = None) -> tuple[str, Optional[str]]:
    """(kind, mime) of a result file from its ``format`` field, else its name (providers.kinds);
    (``file``, None) when neither tells."""
    probe = f"x.{str(fmt).lower().lstrip('.')}" if fmt else name
    kind = kind_of(probe)
    if kind == "file" and fmt:  # an unknown format word: the name may still tell
        probe, kind = name, kind_of(name)
    return kind, (mime_of(probe, kind) if kind != "file" or extension(probe) in MIMES else None)


def url_name(url: str) -> str:
    try:
        return unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "output"
    except ValueError:
        return "output"


def checked_url(url: str, what: str) -> str:
    """``url`` stripped, or ProtocolError when it is not a plain http(s) URL (no userinfo)."""
    try:
        parts = urlsplit(url.strip())
        bad = parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password
    except ValueError:  # e.g. an unbalanced "[" in the host
        bad = True
    if bad:
        raise ProtocolError(f"{what} is not a plain http(s) URL", hint="the service returned an unusable URL; not used")
    return url.strip()


def parse_outputs(data: Mapping[str, Any]) -> list[Output]:
    """A ``comfy_get_result`` answer's outputs: ``images[]`` (the default list) and every custom
    ``result`` field: file objects become image/video/audio/file outputs named by their field,
    scalars text outputs. A URL given in ``images`` and in a field is one output (with the field)."""
    result = data.get("result") if isinstance(data.get("result"), dict) else {}
    images = data.get("images") if isinstance(data.get("images"), list) else []
    by_url: dict[str, Output] = {}
    texts: list[Output] = []
    for name, value in result.items():
        for item in value if isinstance(value, list) else [value]:
            obj = item if isinstance(item, dict) else {}
            url = obj.get("url") if obj else item
            if isinstance(url, str) and (obj or re.match(r"^https?://[^/]+/", url)):
                fname = str(obj.get("filename") or "") or url_name(url)
                kind, mime = media(fname, obj.get("format"))
                if obj or kind != "file":  # a plain string is a file only with a media extension
                    url = checked_url(url, f"comfy_get_result: output {str(name)!r}")
                    by_url.setdefault(url, Output(kind=kind, url=url, filename=fname, field=str(name), mime=mime))
                    continue
            if item is not None:
                text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
                texts.append(Output(kind="text", field=str(name), text=text))
    out: dict[str, Output] = {}
    for u in images:
        if not isinstance(u, str):
            raise ProtocolError("comfy_get_result: images[] holds a non-URL")
        url = checked_url(u, "comfy_get_result: an images[] entry")
        kind, mime = media(url_name(url))  # the default *image* list: no media extension is an image
        media_kind = kind in ("image", "video", "audio")
        out.setdefault(url, by_url.get(url) or Output(kind=kind if media_kind else "image", url=url,
                                                      filename=url_name(url), mime=mime if media_kind else None))
    return list(out.values()) + [o for url, o in by_url.items() if url not in out] + texts
