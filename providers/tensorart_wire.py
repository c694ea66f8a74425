"""The Tensor.Art TAMS wire format, beside ``providers/tensorart.py``:

- credentials: ``Authorization: Bearer <api_key>``, or ``TAMS-SHA256-RSA`` signed with the app's
  private key over ``METHOD\\nPATH?QUERY\\nTS\\nNONCE\\nBODY`` (the exact bytes sent, unix-seconds
  timestamp, a fresh nonce per attempt); the API key wins when both are set. No secret ever enters
  a message;
- request pacing to the app's QPS limit (5 per app);
- protojson reading: lowerCamelCase or snake_case names, int64 as number or string, and a
  finished job's result files (current ``images``/``videos`` and the older ``stages`` shape).
"""
from __future__ import annotations

import base64
import hashlib
import math
import re
import time
import uuid
from typing import Any, Callable, Optional

from .base import Output
from .kinds import EXTENSIONS, extension, kind_of, mime_of
from .errors import ConfigError

STILLS = frozenset({"png", "jpg", "jpeg", "bmp"})  # a file in videos[] that can only be a still image

_KEYS: dict[str, Any] = {}  # sha256 of a PEM -> its loaded RSA key (parsing is slow)


class Credentials:
    """What one request is signed with; built from the profile each time (keys may change)."""

    def __init__(self, profile: Any, provider: str = "tensorart"):
        self.profile, self.provider = profile, provider
        self.api_key = profile.secret("api_key")
        self.app_id = "" if self.api_key else str(profile.get("app_id") or "")
        pem = "" if self.api_key else (profile.secret("private_key") or "")
        if not self.api_key and not (self.app_id and pem):
            missing = "private_key_file" if self.app_id else ("app_id" if pem else "api_key")
            raise ConfigError(f"profile '{self.name}' has no TAMS credentials ({missing} missing)",
                              provider=provider, profile=self.name, field=missing,
                              hint=f"set {self.where('api_key')}; or {self.where('app_id')} and "
                                   f"{self.where('private_key_file')}")
        self.key = None if self.api_key else self._load(pem)

    @property
    def name(self) -> str:
        return str(getattr(self.profile, "name", "") or "")

    @property
    def mode(self) -> str:
        return "API key" if self.api_key else "RSA signature"

    def where(self, field: str) -> str:
        where = getattr(self.profile, "where", None)
        return where(field) if callable(where) else f"'{field}' in the profile"

    def auth_hint(self) -> str:
        """The AuthError hint: where the refused credentials come from."""
        if self.api_key:
            return f"TAMS refused the API key: check {self.where('api_key')}"
        return (f"TAMS refused the signature: check {self.where('app_id')} and {self.where('private_key_file')}, "
                "that the app's public key is uploaded at https://tams.tensor.art, and the system clock")

    def _load(self, pem: str) -> Any:
        digest = hashlib.sha256(pem.encode()).hexdigest()
        if digest not in _KEYS:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa
            try:
                key = serialization.load_pem_private_key(pem.encode(), password=None)
            except Exception:  # noqa: BLE001 - any parse failure; never echo the key material
                key = None
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ConfigError("the TAMS private key is not an unencrypted RSA PEM key", provider=self.provider,
                                  profile=self.name, field="private_key",
                                  hint=f"point {self.where('private_key_file')} at the PEM made with `openssl genrsa "
                                       f"-out private_key.pem 2048` (PKCS#1 or PKCS#8, no passphrase)")
            _KEYS[digest] = key
        return _KEYS[digest]

    def headers(self, method: str, path: str) -> Callable[[bytes], dict]:
        """Per-attempt headers for ``Http.request(headers=...)``: a fresh signature each time."""

        def make(body: bytes) -> dict:
            h = {"Accept": "application/json"}
            if body:
                h["Content-Type"] = "application/json"
            if self.api_key:
                h["Authorization"] = f"Bearer {self.api_key}"
                return h
            h["Authorization"] = sign(self.key, self.app_id, method, path, body)
            return h
        return make


def sign(key: Any, app_id: str, method: str, path: str, body: bytes, *, ts: int = 0, nonce: str = "") -> str:
    """The ``TAMS-SHA256-RSA`` header value (RSASSA-PKCS1-v1_5, SHA-256, standard Base64)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    stamp, nonce = str(ts or int(time.time())), nonce or uuid.uuid4().hex
    msg = f"{method}\n{path}\n{stamp}\n{nonce}\n".encode() + (body or b"")
    sig = base64.b64encode(key.sign(msg, padding.PKCS1v15(), hashes.SHA256())).decode()
    return f"TAMS-SHA256-RSA app_id={app_id},nonce_str={nonce},timestamp={stamp},signature={sig}"


# --------------------------------------------------------------------------- protojson reading

def pj(d: Any, camel: str, default: Any = None) -> Any:
    """Field ``camel`` of a protojson object by its JSON name or its proto (snake_case) name."""
    if not isinstance(d, dict):
        return default
    v = d.get(camel)
    if v is None:
        v = d.get(re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel))
    return default if v is None else v


def as_float(v: Any) -> Optional[float]:
    """A number, or an int64 given as a decimal string; None when absent or unreadable."""
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v.strip() if isinstance(v, str) else v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def as_int(v: Any) -> Optional[int]:
    f = as_float(v)
    return None if f is None else int(f)


def progress_fraction(v: Any) -> Optional[float]:
    """TAMS progress is 0-100 (INFERRED); a non-integer in (0, 1) is read as a fraction already."""
    f = as_float(v)
    if f is None:
        return None
    return f if 0.0 < f < 1.0 and not f.is_integer() else max(0.0, min(1.0, f / 100.0))


def lines(text: Any) -> dict:
    """``node id: 25\\nclass type: LoadImage\\nimage: …`` → {"node id": "25", ...} (first wins)."""
    out: dict = {}
    for line in str(text).splitlines():
        k, sep, v = line.partition(":")
        if sep and k.strip():
            out.setdefault(k.strip().lower(), v.strip())
    return out


def node_with_status(wfi: Any, status: str) -> Optional[str]:
    """The id of the first ``workflowFinishItem`` node in ``status`` (RUNNING, FAILED), if any."""
    nodes = pj(wfi, "nodes", {})
    for nid, n in (nodes.items() if isinstance(nodes, dict) else ()):
        if str(pj(n, "status", "")).upper() == status:
            return str(pj(n, "id", nid) or nid)
    return None


def running_info(info: Any) -> tuple[Optional[float], Optional[str], Optional[int]]:
    """(progress 0..1, id of the running node, step) of ``runningInfo``: the mean of
    ``processingImages[].progress`` (also inside the older ``stages[]``), else the
    ``workflowFinishItem`` progress, else its share of finished nodes."""
    images = list(pj(info, "processingImages", []) or [])
    for stage in pj(info, "stages", []) or []:
        images += list(pj(stage, "processingImages", []) or [])
    fracs = [p for p in (progress_fraction(pj(im, "progress")) for im in images if isinstance(im, dict))
             if p is not None]
    wfi = pj(info, "workflowFinishItem", {})
    nodes = pj(wfi, "nodes", {})
    if not fracs and progress_fraction(pj(wfi, "progress")) is not None:
        fracs = [progress_fraction(pj(wfi, "progress"))]
    if not fracs and isinstance(nodes, dict) and nodes:
        fracs = [sum(1 for n in nodes.values() if str(pj(n, "status", "")).upper() == "SUCCESS") / len(nodes)]
    progress = sum(fracs) / len(fracs) if fracs else None
    return progress, node_with_status(wfi, "RUNNING"), as_int(pj(wfi, "step")) or None


def outputs_of(job: dict) -> list[Output]:
    """A SUCCESS job's result files: ``successInfo.images[]``/``videos[]`` (node ids and file names from
    ``workflowFinishItem.nodes[*].outputUi``), or the older ``stages[].processingImages[]``; a URL
    listed twice is one output. TAMS documents no audio, text or other file results."""
    info = pj(job, "successInfo", {}) or {}
    by_rid: dict[str, tuple[str, str]] = {}
    for nid, n in (pj(pj(info, "workflowFinishItem", {}), "nodes", {}) or {}).items():
        for im in pj(pj(n, "outputUi", {}), "images", []) or []:
            if pj(im, "imageResourceId"):
                by_rid[str(pj(im, "imageResourceId"))] = (str(pj(n, "id", nid) or nid), str(pj(im, "filename", "") or ""))
    items = [("image", r) for r in pj(info, "images", []) or []] + [("video", r) for r in pj(info, "videos", []) or []]
    if not items:
        for stage in pj(info, "stages", []) or []:
            items += [("image", pj(p, "resourceImage")) for p in pj(stage, "processingImages", []) or []]
    outs: list[Output] = []
    seen: set[str] = set()
    for kind, res in items:
        url = pj(res, "url")
        if not isinstance(url, str) or not url or url in seen:
            continue
        seen.add(url)
        rid = str(pj(res, "id", "") or "")
        node, fname = by_rid.get(rid, (None, ""))
        ext = str(pj(pj(pj(res, "meta", {}), "image", {}), "format", "") or "").lower() or extension(url)
        known = ext in EXTENSIONS["image"] | EXTENSIONS["video"]
        fname = fname or f"{rid or len(outs)}.{ext if known else ('png' if kind == 'image' else 'mp4')}"
        # images[] holding a gif or an mp4 is a video (providers.kinds); videos[] is a video (an animated
        # WebP too) unless the file can only be a still
        named = kind_of(fname)
        kind = ("video" if named == "video" else "image") if kind == "image" else (
            "image" if extension(fname) in STILLS else "video")
        outs.append(Output(kind=kind, url=url, filename=fname, node=node, mime=mime_of(fname, kind)))
    return outs
