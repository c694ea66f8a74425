"""Alibaba Cloud Intelligent Production Workshop (智作工坊, "SpeedPix"): published ComfyUI workflows.

Wire protocol (facts: ``shared/providers/speedpix.md``): four POST-only JSON calls under one host,
each signed with Alibaba API-Gateway digest auth (HmacSHA256 over method, Accept, Content-MD5,
Content-Type, Date, the ``x-ca-*`` headers and the path):

- ``/scc/comfy_prompt`` {workflow_id, alias_id|version_id, inputs, ...} -> {taskId, status}
- ``/scc/comfy_get_progress`` {taskId} -> {status, progress, lastQueueRemaining, etaRelative, state}
- ``/scc/comfy_get_result`` {taskId} -> {status, images[], result{field: value|file object}}
- ``/scc/sp_create_temp_file_upload_sign`` {contentType, originalFilename, size} -> {uploadUrl, accessUrl}
  then an unsigned ``PUT uploadUrl``; ``accessUrl`` is the value passed to the workflow field.

Every answer is HTTP 200 with the envelope ``{status: 10|20, errCode, errMessage, subErrCode,
subErrMessage, data}``; gateway-level refusals (auth, throttling) are HTTP 4xx with an
``X-Ca-Error-Message`` header. The service has **no push channel, no cancel, no idempotency key**:
``watch`` polls, ``cancel`` is the base NotSupported, ``find`` is the base NotSupported.

Task states (``data.status``)

================================  ===========  ==================================================
service value                     State        notes
================================  ===========  ==================================================
``waiting``                       QUEUED       queue_position = ``lastQueueRemaining`` (INFERRED:
                                               tasks still queued up to and including this one)
``running``                       RUNNING      progress, ``state.nodeLabel/step/maxSteps``, ETA
``succeeded`` (``successed``)     SUCCEEDED    outputs from ``comfy_get_result``; the progress doc
                                               spells it ``successed``, accepted too
``failed``                        FAILED       error from ``comfy_get_result``'s status-20 answer
``canceled`` / ``cancelled``      CANCELLED    known to the SDK models only, never documented as sent
anything else                     ProtocolError (an unknown state is never guessed)
================================  ===========  ==================================================

Service codes (envelope ``status: 20``; ``subErrCode`` first, else ``errCode``; case-insensitive)

=================================================  ================  ==========================
code                                               error class       notes
=================================================  ================  ==========================
``B_COMPUTING_CanNotFindTask``                     NotFound          unknown/expired task id
``P_Request_ContentSafe``                          ContentRejected   input or output refused
``s_common_lockfail``                              TransientError    "internal error, retry":
                                                                     re-sent (freshly signed) up to
                                                                     3 times, then raised
``s_function_getasyncinvocationerror``             TransientError    status read failed; retried
``s_function_listopenfunctionerror``               TransientError
``s_function_create/update/delete*error``,         RemoteFailure     service-side system errors
``s_function_(un)mountdomainerror``,
``s_function_create/deleteprovisionconfigerror``,
``s_function_create/scale/update/deleteopenfunctionerror``
``b_session_tokennotvalid``, ``..tokenforbidden``  AuthError
``p_common_apitokenrequired``,                     AuthError         the app key is not usable
``p_common_tenantidrequired``,
``b_tenant_invalidtenantidnul``
``b_model_modelidnotfound``,                       NotFound          field ``workflow``
``b_model_modelversionidnotfound``,
``p_function_invalidtemplateid``
``p_session_expiredattooearly``,                   RejectedInput     session APIs; not expected
``p_session_refreshfailedsessionnotfound``,                          for ComfyUI jobs
``p_updatefunction_instanceparametersnotallowednull``,
``p_agent_*shouldnotblank``
``b_fc_functionprivatekeynotfound``, ``..public..`` RemoteFailure    service misconfiguration
other ``*notfound*``                               NotFound          (INFERRED) e.g. workflow/alias
other ``P_*`` / ``p_*``                            RejectedInput     parameter errors (INFERRED)
other ``S_*`` / ``s_*``                            TransientError    system errors (INFERRED)
other ``B_*`` / ``b_*`` and unknown                RemoteFailure     the message names the node
                                                                     when it says one (INFERRED)
=================================================  ================  ==========================

Gateway refusals (HTTP 4xx, ``X-Ca-Error-Message``; prefix match)

=====================================================  ================  =======================
message                                                error class       what to do
=====================================================  ================  =======================
``Invalid AppKey``, ``Invalid AppSecret``              AuthError         check app_key/app_secret
``Empty Signature``, ``Invalid Signature, ...``        AuthError         check app_secret
``Timestamp Expired``, ``Invalid Timestamp``           AuthError         sync the clock (±15 min)
``Nonce Used``                                         TransientError    re-signed and re-sent
``Throttled by ... Flow Control``                      TransientError    re-sent after a backoff
``Quota Exhausted``, ``User Arrears``                  QuotaError        top up / raise the quota
``Invalid Url``                                        ConfigError       check the endpoint url
``Invalid HttpMethod``, ``... Request Body``,          ProtocolError     client bug; report it
``Invalid Content-MD5``
other 401/403 → AuthError; 404 → ConfigError; 5xx → TransientError; other → ProtocolError
=====================================================  ================  =======================
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import re
import time
import uuid
from typing import Any, AsyncIterator, Mapping, Optional, Sequence
from urllib.parse import urlsplit, unquote

from .base import (AuthError, Capabilities, ConfigError, ContentRejected, NotFound, Output, Preflight,
                   ProtocolError, Provider, QuotaError, RejectedInput, RemoteError, RemoteFailure, RemoteRef,
                   State, SubmitSpec, TaskUpdate, TransientError)

# --------------------------------------------------------------------------- signing (pure)

ACCEPT = "application/json; charset=utf-8"
CONTENT_TYPE = "application/json; charset=utf-8"
SIGNATURE_METHOD = "HmacSHA256"
# the order the SDKs put in the x-ca-signature-headers header; the signed block is sorted
SIGNED_HEADERS = ("x-ca-timestamp", "x-ca-key", "x-ca-nonce", "x-ca-signature-method")
USER_AGENT = "comfyui-remote-speedpix/0.1"

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
    """Alibaba API-Gateway StringToSign: method, Accept, Content-MD5, Content-Type, Date (empty
    values keep their line), then ``name:value`` for each signed header sorted by lower-case name,
    then the path (this API sends no query). Joined by ``\\n``, no trailing newline."""
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
    """Every header of one signed call, exactly as the official SDKs send them. ``body`` None or
    empty: no ``content-md5`` (the MD5 line of the StringToSign stays empty)."""
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


# --------------------------------------------------------------------------- code tables

_NF_WORKFLOW = "check the workflow id (and @alias / #version) in the SpeedPix console's workflow management"
_AUTH_HINT = ("check app_key / app_secret (SPEEDPIX_APP_KEY / SPEEDPIX_APP_SECRET): use the keys of a "
              "ComfyUI-type application from the SpeedPix console (应用管理)")
_SYS_HINT = "a SpeedPix system error; try again later and contact Alibaba support if it persists"

# code (lower-case) -> (error class, field, hint)
SERVICE_CODES: dict[str, tuple[type[RemoteError], str, str]] = {
    "b_computing_cannotfindtask": (NotFound, "", "the task id is unknown to SpeedPix (wrong id, another "
                                                 "application's task, or expired)"),
    "p_request_contentsafe": (ContentRejected, "inputs", "SpeedPix's content-safety check refused the input "
                                                         "or the output; change the prompt or image"),
    "s_common_lockfail": (TransientError, "", "an internal SpeedPix error that asks to retry"),
    "s_function_getasyncinvocationerror": (TransientError, "", "SpeedPix could not read the task; retrying"),
    "s_function_listopenfunctionerror": (TransientError, "", "SpeedPix could not list functions; retrying"),
    "s_function_createfunctionerror": (RemoteFailure, "", _SYS_HINT),
    "s_function_updatefunctionerror": (RemoteFailure, "", _SYS_HINT),
    "s_function_deletefunctionerror": (RemoteFailure, "", _SYS_HINT),
    "s_function_mountdomainerror": (RemoteFailure, "", _SYS_HINT),
    "s_function_unmountdomainerror": (RemoteFailure, "", _SYS_HINT),
    "s_function_createprovisionconfigerror": (RemoteFailure, "", _SYS_HINT),
    "s_function_deleteprovisionconfigerror": (RemoteFailure, "", _SYS_HINT),
    "s_function_createopenfunctionerror": (RemoteFailure, "", _SYS_HINT),
    "s_function_scaleopenfunctionerror": (RemoteFailure, "", _SYS_HINT),
    "s_function_updateopenfunctionerror": (RemoteFailure, "", _SYS_HINT),
    "s_function_deleteopenfunctionerror": (RemoteFailure, "", _SYS_HINT),
    "b_session_tokennotvalid": (AuthError, "app_key", _AUTH_HINT),
    "b_session_tokenforbidden": (AuthError, "app_key", _AUTH_HINT),
    "p_common_apitokenrequired": (AuthError, "app_key", _AUTH_HINT),
    "p_common_tenantidrequired": (AuthError, "app_key", _AUTH_HINT),
    "b_tenant_invalidtenantidnul": (AuthError, "app_key", _AUTH_HINT),
    "b_model_modelidnotfound": (NotFound, "workflow", _NF_WORKFLOW),
    "b_model_modelversionidnotfound": (NotFound, "workflow", _NF_WORKFLOW),
    "p_function_invalidtemplateid": (NotFound, "workflow", _NF_WORKFLOW),
    "p_session_expiredattooearly": (RejectedInput, "", "a session parameter was refused"),
    "p_session_refreshfailedsessionnotfound": (NotFound, "", "the SpeedPix session does not exist"),
    "p_updatefunction_instanceparametersnotallowednull": (RejectedInput, "", "a required parameter was empty"),
    "p_agent_imageshouldnotblank": (RejectedInput, "", "a required parameter was empty"),
    "p_agent_versionnameshouldnotblank": (RejectedInput, "", "a required parameter was empty"),
    "p_agent_autoscaletemplateidshouldnotblank": (RejectedInput, "", "a required parameter was empty"),
    "b_fc_functionprivatekeynotfound": (RemoteFailure, "", _SYS_HINT),
    "b_fc_functionpublickeynotfound": (RemoteFailure, "", _SYS_HINT),
}

# X-Ca-Error-Message prefix (lower-case) -> (error class, field, hint)
GATEWAY_MESSAGES: tuple[tuple[str, type[RemoteError], str, str], ...] = (
    ("invalid appkey", AuthError, "app_key", _AUTH_HINT),
    ("invalid appsecret", AuthError, "app_secret", _AUTH_HINT),
    ("empty signature", AuthError, "app_secret", _AUTH_HINT),
    ("invalid signature", AuthError, "app_secret",
     _AUTH_HINT + "; a proxy that rewrites headers or the body also breaks the signature"),
    ("timestamp expired", AuthError, "", "this computer's clock is more than 15 minutes off; sync it (NTP)"),
    ("invalid timestamp", AuthError, "", "this computer's clock is wrong; sync it (NTP)"),
    ("nonce used", TransientError, "", "the gateway saw this request before; re-sent with a fresh signature"),
    ("throttled by", TransientError, "", "SpeedPix rate-limits this application; retrying more slowly"),
    ("quota exhausted", QuotaError, "", "the application's API quota is used up; raise it in the console"),
    ("user arrears", QuotaError, "", "the Alibaba Cloud account is in arrears; top it up"),
    ("invalid url", ConfigError, "url", "check the endpoint (SPEEDPIX_ENDPOINT or 'url' in profiles.toml)"),
    ("invalid httpmethod", ProtocolError, "", "a client bug; please report it"),
    ("empty request body", ProtocolError, "", "a client bug; please report it"),
    ("invalid request body", ProtocolError, "", "a client bug; please report it"),
    ("invalid content-md5", ProtocolError, "", "a proxy altered the request body, or a client bug"),
)

STATES = {
    "waiting": State.QUEUED,
    "running": State.RUNNING,
    "succeeded": State.SUCCEEDED,
    "successed": State.SUCCEEDED,  # the progress doc's spelling
    "failed": State.FAILED,
    "canceled": State.CANCELLED,
    "cancelled": State.CANCELLED,
}

IMAGE_EXT = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
             "gif": "image/gif", "bmp": "image/bmp", "tif": "image/tiff", "tiff": "image/tiff"}
VIDEO_EXT = {"mp4": "video/mp4", "webm": "video/webm", "mov": "video/quicktime", "mkv": "video/x-matroska",
             "avi": "video/x-msvideo"}
AUDIO_EXT = {"mp3": "audio/mpeg", "wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg",
             "m4a": "audio/mp4", "opus": "audio/opus"}

_WF_RE = re.compile(r"^[A-Za-z0-9][\w.\-:]*$")
_REF_RE = re.compile(r"^[\w.\-]+$")
_NODE_RE = (re.compile(r"executing\s+([A-Za-z_]\w*)\s*\(node\s+([\w:]+)\)", re.I),
            re.compile(r"node\s+#?([\w:]+)\s*\(([A-Za-z_]\w*)\)", re.I),
            re.compile(r"executing\s+([A-Za-z_]\w*)", re.I))
_PROBE_TASK = "00000000000000000000000000"  # a ULID-shaped id no task has (check())
_CALL_ATTEMPTS = 3  # sends of one call on a refusal that asks to retry (nonce, throttle, lockfail)


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
    wf, alias, version = raw, None, None
    if "@" in raw and "#" in raw:
        raise RejectedInput(f"workflow {raw!r} names both an alias and a version", field="workflow", hint=hint)
    if "@" in raw:
        wf, _, alias = raw.partition("@")
    elif "#" in raw:
        wf, _, version = raw.partition("#")
    if not _WF_RE.match(wf) or (alias is not None and not _REF_RE.match(alias)) or (
            version is not None and not _REF_RE.match(version)):
        raise RejectedInput(f"workflow {raw!r} is not a workflow id", field="workflow", hint=hint)
    if alias is None and version is None:
        alias = "main"
    return wf, alias, version


def node_of(message: str) -> tuple[str, str]:
    """(remote node id, node class) named in a failure message, where it names one."""
    m = _NODE_RE[0].search(message)
    if m:
        return m.group(2), m.group(1)
    m = _NODE_RE[1].search(message)
    if m:
        return m.group(1), m.group(2)
    m = _NODE_RE[2].search(message)
    if m:
        return "", m.group(1)
    return "", ""


def _clean(text: Any, limit: int = 300) -> str:
    """Untrusted service text for a message: one line, printable, truncated."""
    s = re.sub(r"[\x00-\x1f\x7f]+", " ", str(text or "")).strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _num(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> Optional[int]:
    f = _num(value)
    return int(f) if f is not None else None


def _media(name: str, fmt: Any = None) -> tuple[str, Optional[str]]:
    ext = (str(fmt) if fmt else name.rsplit(".", 1)[-1] if "." in name else "").lower().lstrip(".")
    for kind, table in (("image", IMAGE_EXT), ("video", VIDEO_EXT), ("audio", AUDIO_EXT)):
        if ext in table:
            return kind, table[ext]
    return "file", None


def _url_name(url: str) -> str:
    path = urlsplit(url).path
    return unquote(path.rsplit("/", 1)[-1]) or "output"


# --------------------------------------------------------------------------- provider

class SpeedPixProvider(Provider):
    id = "speedpix"
    label = "Alibaba SpeedPix"
    capabilities = Capabilities(cancel=False, queue_position=True, progress="poll", uploads=True, cost=False,
                                idempotent_submit=False, client_chosen_id=False, findable=False,
                                addressing="field")

    # ---- plumbing
    @property
    def base_url(self) -> str:
        url = getattr(self.profile, "url", None)
        if not url:
            raise self.error(ConfigError, f"profile '{self.name}' has no endpoint url", field="url",
                             hint="set SPEEDPIX_ENDPOINT or 'url' in profiles.toml (default https://openai.edu-aliyun.com)")
        return str(url).rstrip("/")

    @property
    def resource_config_id(self) -> str:
        return str(self.profile.get("resource_config_id", "default") or "default")

    def _credentials(self) -> tuple[str, str]:
        return (self.profile.require("app_key", "SpeedPix app key"),
                self.profile.require("app_secret", "SpeedPix app secret"))

    async def _call(self, api: str, payload: dict, *, idempotent: bool) -> Any:
        """One signed call; returns ``data`` of a status-10 envelope or raises the mapped error.
        Refusals that say nothing was done and ask to retry (nonce used, throttled, lockfail) are
        re-sent with a fresh signature a bounded number of times."""
        path = f"/scc/{api}"
        try:
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
        except ValueError:
            raise self.error(RejectedInput, "an input value is not a finite number", field="inputs",
                             hint="NaN and infinity cannot be sent to SpeedPix") from None
        app_key, app_secret = self._credentials()
        extra = {"X-SP-RESOURCE-CONFIG-ID": self.resource_config_id} if api == "comfy_prompt" else {}

        def headers(sent: bytes) -> dict[str, str]:  # fresh nonce and timestamp per attempt
            h = sign_request(app_key, app_secret, path, sent, now_ms=int(time.time() * 1000),
                             nonce=str(uuid.uuid4()))
            h["User-Agent"] = USER_AGENT
            h.update(extra)
            return h

        last: Optional[RemoteError] = None
        for attempt in range(_CALL_ATTEMPTS):
            if attempt:
                await asyncio.sleep(self.http.policy.delay(attempt - 1, last.retry_after if last else None))
            resp = await self.http.request("POST", self.base_url + path, data=body, headers=headers,
                                           idempotent=idempotent)
            try:
                return self._answer(api, resp)
            except TransientError as e:
                last = e
        assert last is not None
        last.detail = f"{last.detail} (after {_CALL_ATTEMPTS} attempts)"
        raise last

    def _answer(self, api: str, resp: Any) -> Any:
        if resp.status >= 300:
            raise self._gateway_error(api, resp)
        env = resp.json()
        if not isinstance(env, dict) or "status" not in env:
            raise self.error(ProtocolError, f"{api}: the answer is not a SpeedPix envelope",
                             hint="the endpoint url may point at something else than SpeedPix")
        status = env.get("status")
        if status == 10 and not env.get("errCode") and not env.get("subErrCode"):
            return env.get("data")
        if status not in (10, 20):
            raise self.error(ProtocolError, f"{api}: unknown envelope status {_clean(status, 40)!r}")
        raise self._service_error(api, env)

    def _service_error(self, api: str, env: Mapping[str, Any]) -> RemoteError:
        code = str(env.get("subErrCode") or env.get("errCode") or "")
        msg = _clean(env.get("subErrMessage") or env.get("errMessage") or "")
        cls, fld, hint = self._classify(code, msg)
        detail = f"{api}: {msg or 'failed'}" + (f" ({code})" if code else "")
        remote_node, node_class = node_of(msg) if cls is RemoteFailure else ("", "")
        return self.error(cls, detail, field=fld, hint=hint, code=code or None,
                          remote_node=remote_node, node_class=node_class)

    @staticmethod
    def _classify(code: str, msg: str) -> tuple[type[RemoteError], str, str]:
        low = code.lower()
        if low in SERVICE_CODES:
            return SERVICE_CODES[low]
        if "contentsafe" in low:
            return SERVICE_CODES["p_request_contentsafe"]
        if "notfound" in low or "cannotfind" in low:
            fld = "workflow" if re.search(r"workflow|alias|version|model|template", low + " " + msg.lower()) else ""
            return NotFound, fld, (_NF_WORKFLOW if fld else "the id is unknown to SpeedPix")
        if low.startswith("p_"):
            fld = "target" if re.search(r"\binputs?\b|\bfield\b", msg.lower()) else "inputs"
            return RejectedInput, fld, ("the workflow's published input fields and their types are set when the "
                                        "API is published; check the target names and values")
        if low.startswith("s_"):
            return TransientError, "", _SYS_HINT
        return RemoteFailure, "", "see the message; check the workflow in the SpeedPix console"

    def _gateway_error(self, api: str, resp: Any) -> RemoteError:
        hdrs = {k.lower(): v for k, v in resp.headers.items()}
        gw = hdrs.get("x-ca-error-message", "")
        if gw:
            # "Invalid Signature, Server StringToSign:..." -> keep the message, drop the echoed string
            short = _clean(gw.split(", Server StringToSign")[0], 160)
            low = short.lower()
            for prefix, cls, fld, hint in GATEWAY_MESSAGES:
                if low.startswith(prefix):
                    return self.error(cls, f"{api}: the API gateway refused the call: {short} (HTTP {resp.status})",
                                      field=fld, hint=hint, code=resp.status)
            return self._by_status(api, resp.status, short)
        try:
            env = json.loads(resp.body)
        except (ValueError, UnicodeDecodeError):
            env = None
        if isinstance(env, dict) and ("subErrCode" in env or "errCode" in env) and (
                env.get("subErrCode") or env.get("errCode")):
            return self._service_error(api, env)
        return self._by_status(api, resp.status, "")

    def _by_status(self, api: str, status: int, msg: str) -> RemoteError:
        what = f"{api}: HTTP {status}" + (f" ({msg})" if msg else "")
        if status in (401, 403):
            return self.error(AuthError, what, field="app_key", hint=_AUTH_HINT, code=status)
        if status == 404:
            return self.error(ConfigError, what, field="url",
                              hint="check the endpoint (SPEEDPIX_ENDPOINT or 'url' in profiles.toml)", code=status)
        if status >= 500 or status == 429:
            return self.error(TransientError, what, hint="SpeedPix is unavailable; try again later", code=status)
        return self.error(ProtocolError, what, hint="unexpected answer from SpeedPix", code=status)

    # ---- inputs
    def _inputs(self, spec: SubmitSpec, uploaded: bool = True) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        for tgt, o in spec.targets(self.capabilities.addressing):
            name = tgt.field
            try:
                if o.kind == "text":
                    value: Any = "" if o.value is None else str(o.value)
                elif o.kind == "int":
                    if isinstance(o.value, bool) or not isinstance(o.value, (int, float, str)):
                        raise ValueError
                    value = int(o.value)
                    if isinstance(o.value, float) and not o.value.is_integer():
                        raise ValueError
                elif o.kind == "float":
                    if isinstance(o.value, bool):
                        raise ValueError
                    value = float(o.value)
                    if not math.isfinite(value):
                        raise self.error(RejectedInput, f"input {name!r} is {value}, not a finite number",
                                         field="target", hint="give a finite number")
                elif o.kind == "image" and not uploaded and isinstance(o.value, (bytes, bytearray)):
                    value = ""  # pre-flight runs before the engine uploads images
                elif o.kind == "image":
                    if not isinstance(o.value, str) or not o.value:
                        raise self.error(RejectedInput, f"image for {name!r} was not uploaded", field="target",
                                         hint="the engine uploads images before submit; this is a bug")
                    value = o.value
                else:
                    raise self.error(RejectedInput, f"input {name!r} has kind {o.kind!r}", field="target",
                                     hint="SpeedPix takes text, int, float and image inputs")
            except (TypeError, ValueError, OverflowError):
                raise self.error(RejectedInput, f"input {name!r}: {o.kind} value {_clean(o.value, 40)!r} is invalid",
                                 field="target", hint=f"give a valid {o.kind}") from None
            inputs[name] = value
        return inputs

    # ---- protocol
    def _prepare(self, spec: SubmitSpec, uploaded: bool = True) -> tuple[str, Optional[str], Optional[str], dict[str, Any]]:
        """Workflow reference and typed inputs, with errors naming this provider and profile."""
        try:
            wf, alias, version = parse_workflow(spec.workflow)
            return wf, alias, version, self._inputs(spec, uploaded)
        except RemoteError as e:
            raise e.with_context(provider=self.id, profile=self.name)

    async def validate(self, spec: SubmitSpec) -> Preflight:
        """Syntax only: the service has no call to list a workflow's published fields, so unknown
        field names and wrong types are refused by ``comfy_prompt`` (before a task exists)."""
        wf, alias, version, _inputs = self._prepare(spec, uploaded=False)
        label = wf + (f"@{alias}" if alias and alias != "main" else "") + (f"#{version}" if version else "")
        return Preflight(workflow_label=label)

    async def upload(self, data: bytes, mime: str, name: str) -> str:
        """Temp-file upload: sign, PUT the bytes to the presigned URL, return ``accessUrl``."""
        for attempt in range(2):
            sign = await self._call("sp_create_temp_file_upload_sign",
                                    {"contentType": mime, "originalFilename": name, "size": len(data)},
                                    idempotent=True)
            if not isinstance(sign, dict):
                raise self.error(ProtocolError, "sp_create_temp_file_upload_sign: no data in the answer")
            put_url, access = sign.get("uploadUrl"), sign.get("accessUrl")
            for label, u in (("uploadUrl", put_url), ("accessUrl", access)):
                if not isinstance(u, str) or urlsplit(u).scheme not in ("http", "https") or urlsplit(u).username:
                    raise self.error(ProtocolError, f"sp_create_temp_file_upload_sign: {label} is not an http(s) URL")
            resp = await self.http.request("PUT", put_url, data=data, headers={"Content-Type": mime},
                                           max_body=1024 * 1024)
            if resp.ok:
                return access
            if resp.status == 403 and attempt == 0:
                continue  # presigned URL expired or refused: ask for a fresh one once
            raise self.error(TransientError if resp.status >= 500 else ProtocolError,
                             f"upload of {name} refused (HTTP {resp.status})", field="image",
                             hint="the temporary upload URL was refused; try again", code=resp.status)
        raise self.error(TransientError, f"upload of {name} refused twice (HTTP 403)", field="image",
                         hint="the temporary upload URL was refused; try again")  # pragma: no cover

    async def submit(self, spec: SubmitSpec, key: str) -> RemoteRef:
        """``comfy_prompt``. Not idempotent (the service has no idempotency key): a lost answer
        surfaces as AmbiguousSubmit from Http and is never re-sent here."""
        wf, alias, version, inputs = self._prepare(spec)
        body = {
            "workflow_id": wf,
            "alias_id": alias,
            "version_id": version,
            "inputs": inputs,
            "randomise_seeds": bool(spec.options.get("randomise_seeds", False)),
            "return_temp_files": bool(spec.options.get("return_temp_files", False)),
        }
        data = await self._call("comfy_prompt", body, idempotent=False)
        task_id = data.get("taskId") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not task_id.strip():
            raise self.error(ProtocolError, "comfy_prompt: the answer has no taskId",
                             hint="the task may have been created; check the SpeedPix console before retrying")
        ref_data: dict[str, Any] = {"workflow_id": wf, "alias_id": alias, "version_id": version,
                                    "submitted_at": time.time()}
        est = _num(data.get("estimatedDurationInSeconds"))
        if est is not None:
            ref_data["estimated_s"] = est
        return RemoteRef(remote_id=task_id.strip(), data=ref_data, console_url=None)

    async def _progress(self, task_id: str) -> dict:
        data = await self._call("comfy_get_progress", {"taskId": task_id}, idempotent=True)
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            raise self.error(ProtocolError, "comfy_get_progress: the answer has no task status")
        return data

    def _update(self, data: Mapping[str, Any]) -> TaskUpdate:
        raw = str(data.get("status"))
        state = STATES.get(raw.lower())
        if state is None:
            raise self.error(ProtocolError, f"comfy_get_progress: unknown task status {_clean(raw, 40)!r}",
                             hint="the service changed its states; please report this")
        st = data.get("state") if isinstance(data.get("state"), dict) else {}
        msg = _clean(data.get("message"), 200) or None
        upd = TaskUpdate(state=state, raw_state=raw, message=msg, eta_s=_num(data.get("etaRelative")))
        if state is State.QUEUED:
            upd.queue_position = _int(data.get("lastQueueRemaining"))
            upd.progress = 0.0
        elif state is State.RUNNING:
            p = _num(data.get("progress"))
            upd.progress = None if p is None else min(1.0, max(0.0, p))
            upd.node = _clean(st.get("nodeLabel"), 80) or None
            upd.step = _int(st.get("step"))
            upd.max_steps = _int(st.get("maxSteps"))
        elif state is State.SUCCEEDED:
            upd.progress = 1.0
        return upd

    async def watch(self, ref: RemoteRef) -> AsyncIterator[TaskUpdate]:
        """Poll ``comfy_get_progress`` (the service has no push) every poll interval; yield on each
        change; on a terminal status read ``comfy_get_result`` for outputs or the error. A few
        consecutive unreadable polls are tolerated before raising (the engine then restarts watch)."""
        task_id = ref.remote_id
        last_key: Optional[tuple] = None
        failures = 0
        while True:
            try:
                upd = self._update(await self._progress(task_id))
                if upd.state is State.SUCCEEDED:
                    upd.outputs = await self.outputs(ref)
                elif upd.state is State.FAILED:
                    upd.error = await self._failure(task_id, upd.message)
                    upd.message = upd.error.detail
            except (NotFound, ContentRejected, RemoteFailure) as e:  # the task itself failed or is unknown
                yield TaskUpdate(state=State.FAILED, raw_state=str(e.code or e.kind), error=e, message=e.detail)
                return
            except (TransientError, ProtocolError):
                failures += 1
                if failures >= 3:
                    raise
                await asyncio.sleep(self.poll_interval())
                continue
            failures = 0
            if upd.state.terminal:
                yield upd
                return
            key = (upd.state, upd.queue_position, None if upd.progress is None else round(upd.progress, 3),
                   upd.node, upd.step, upd.max_steps, upd.message)
            if key != last_key:
                last_key = key
                yield upd
            await asyncio.sleep(self.poll_interval())

    async def _failure(self, task_id: str, message: Optional[str]) -> RemoteError:
        """The error of a failed task: ``comfy_get_result`` answers status 20 with the code."""
        try:
            data = await self._call("comfy_get_result", {"taskId": task_id}, idempotent=True)
        except (TransientError, ProtocolError):
            raise  # unreadable now: the engine restarts watch, which asks again
        except RemoteError as e:
            return e
        text = _clean((data or {}).get("message") if isinstance(data, dict) else None) or message or "the task failed"
        remote_node, node_class = node_of(text)
        return self.error(RemoteFailure, f"the remote run failed: {text}", remote_node=remote_node,
                          node_class=node_class, hint="see the message; check the workflow in the SpeedPix console")

    async def _result(self, task_id: str) -> dict:
        for attempt in range(3):
            data = await self._call("comfy_get_result", {"taskId": task_id}, idempotent=True)
            if not isinstance(data, dict):
                raise self.error(ProtocolError, "comfy_get_result: the answer has no data")
            raw = str(data.get("status", "")).lower()
            if STATES.get(raw) is State.SUCCEEDED:
                return data
            if STATES.get(raw) is State.FAILED:
                raise await self._failure(task_id, None)
            await asyncio.sleep(self.poll_interval())  # progress said done; result not there yet
        raise self.error(TransientError, "comfy_get_result: the result is not ready yet",
                         hint="the task finished but its result is not readable yet; retrying")

    async def outputs(self, ref: RemoteRef) -> list[Output]:
        """``images[]`` (default outputs) and every custom ``result`` field: file objects become
        file/image/video/audio outputs named by their field, scalars become text outputs. A URL
        given both in ``images`` and a field is one output (carrying the field name)."""
        data = await self._result(ref.remote_id)
        return self.parse_outputs(data)

    def parse_outputs(self, data: Mapping[str, Any]) -> list[Output]:
        result = data.get("result") if isinstance(data.get("result"), dict) else {}
        images = data.get("images") if isinstance(data.get("images"), list) else []
        by_url: dict[str, Output] = {}
        texts: list[Output] = []
        for name, value in result.items():
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("url"), str):
                    url = self._checked_url(item["url"], str(name))
                    fname = str(item.get("filename") or _url_name(url))
                    kind, mime = _media(fname, item.get("format"))
                    by_url.setdefault(url, Output(kind=kind, url=url, filename=fname, field=str(name), mime=mime))
                elif isinstance(item, str) and re.match(r"^https?://", item) and "/" in item[8:]:
                    url = self._checked_url(item, str(name))
                    kind, mime = _media(_url_name(url))
                    if kind == "file":
                        texts.append(Output(kind="text", field=str(name), text=item))
                    else:
                        by_url.setdefault(url, Output(kind=kind, url=url, filename=_url_name(url), field=str(name),
                                                      mime=mime))
                elif item is not None:
                    text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
                    texts.append(Output(kind="text", field=str(name), text=text))
        out: list[Output] = []
        seen: set[str] = set()
        for u in images:
            if not isinstance(u, str):
                raise self.error(ProtocolError, "comfy_get_result: images[] holds a non-URL")
            url = self._checked_url(u, "images")
            if url in seen:
                continue
            seen.add(url)
            if url in by_url:
                out.append(by_url[url])
            else:
                # images[] is the default *image* list: a URL without a known extension is an image
                kind, mime = _media(_url_name(url))
                if kind == "file":
                    kind, mime = "image", None
                out.append(Output(kind=kind, url=url, filename=_url_name(url), mime=mime))
        for url, o in by_url.items():
            if url not in seen:
                seen.add(url)
                out.append(o)
        return out + texts

    def _checked_url(self, url: str, where: str) -> str:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
            raise self.error(ProtocolError, f"comfy_get_result: output {where!r} has an unusable URL",
                             hint="the service returned a URL that is not plain http(s); not downloaded")
        return url.strip()

    async def check(self) -> str:
        """A signed ``comfy_get_progress`` for a task id nobody has: "task not found" proves the
        gateway accepted the signature."""
        try:
            await self._call("comfy_get_progress", {"taskId": _PROBE_TASK}, idempotent=True)
        except NotFound:
            pass
        host = urlsplit(self.base_url).netloc
        return f"SpeedPix at {host}: signature accepted (resource pool {self.resource_config_id})"


PROVIDER = SpeedPixProvider
