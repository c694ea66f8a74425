"""Tensor.Art TAMS (Tensor Art Model Service): run a workflow template or an API-format graph on
an app's own endpoint (``TENSORART_BASE_URL``, e.g. ``https://ap-east-1.tensorart.cloud``).

``workflow`` is either a template id (digits; ``POST /v1/jobs/workflow/template`` with
``fields.fieldAttrs`` built from the template's own fields, overridden by ``NODE_ID.FIELD`` targets)
or an API-format graph as JSON (``POST /v1/jobs/workflow`` with ``params``, ``class_type`` sent as
``classType``). Pre-flight runs the free ``…/template/check`` or ``…/params/check`` and reports its
credits. ``requestId`` is our submission key (uuid4), so a resent create returns the same job.

Auth: ``Authorization: Bearer <api_key>``, or ``TAMS-SHA256-RSA`` signed per attempt with the app's
private key over ``METHOD\\nPATH?QUERY\\nTS\\nNONCE\\nBODY`` (the exact bytes sent). No push channel:
``GET /v1/jobs/{id}`` is polled, every request paced to the app's 5 QPS (setting ``qps``).

Job status → State (``raw_state`` keeps the TAMS name)

=================================  ==========  ===============================================
TAMS ``job.status``                State       notes
=================================  ==========  ===============================================
``DEFAULT``, ``CREATED``,          QUEUED      accepted, not yet in the GPU queue
``PENDING``
``WAITING``                        QUEUED      ``waitingInfo.queueRank`` / ``queueLen``
``RUNNING``                        RUNNING     ``processingImages[].progress`` (0–100),
                                               ``workflowFinishItem`` nodes / progress / step
``SUCCESS``                        SUCCEEDED   ``successInfo.images[]`` / ``videos[]``
``FAILED``                         FAILED      see ``failedInfo`` below
``CANCELED``                       CANCELLED   after ``DELETE /v1/jobs/{id}``
anything else                      —           ProtocolError (an unknown state is never guessed)
=================================  ==========  ===============================================

``failedInfo`` → error on the FAILED update

=======================================  =====================================================
``failedInfo``                           error
=======================================  =====================================================
reason names a safety filter             ContentRejected (``sensitive``, ``nsfw``, ``违规`` …)
reason mentions credits / balance        QuotaError
``code: TRANSITORY_ERROR``               TransientError (retryable: re-queue; failed jobs cost
                                         nothing)
``code: FATAL_ERROR`` / ``DEFAULT``      RemoteFailure naming ``remote_node`` / ``node_class``
                                         (from ``node id:``/``class type:`` lines or the
                                         ``workflowFinishItem`` node marked FAILED)
=======================================  =====================================================

HTTP / ``google.rpc.Status`` answers → error

======  =====================  =======================================================================
HTTP    gRPC code              error
======  =====================  =======================================================================
400     3 INVALID_ARGUMENT     RejectedInput; ``tams_api.ArgumentError`` details give field, remote
                               node and class (``node id: 25\\nclass type: LoadImage\\nimage: …``)
400     9 FAILED_PRECONDITION  QuotaError when it mentions credits; on cancel of a finished job:
                               ignored; else RejectedInput
401     16 UNAUTHENTICATED     AuthError (wrong key, bad signature, clock skew, public key not uploaded)
403     7 PERMISSION_DENIED    AuthError
404     5 NOT_FOUND            NotFound (template, job, model)
409     6 / 10                 ALREADY_EXISTS on create → AmbiguousSubmit; else TransientError
429     8 RESOURCE_EXHAUSTED   retried by Http (5 QPS); QuotaError when it mentions credits
500     2 UNKNOWN              ``can't find [nodeId:fieldName] N:F in fields parameter`` →
                               RejectedInput (field ``N.F``); otherwise TransientError
500     13 INTERNAL            TransientError (retried first by Http)
501     12 UNIMPLEMENTED       NotSupported
503     14 UNAVAILABLE         TransientError (retried first by Http)
504     4 DEADLINE_EXCEEDED    TransientError
other   —                      ProtocolError
======  =====================  =======================================================================
"""
from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import time
import uuid
from typing import Any, AsyncIterator, Callable, Optional
from urllib.parse import urlsplit

from .base import (AmbiguousSubmit, AuthError, Capabilities, ConfigError, ContentRejected, NotFound,
                   NotSupported, Output, Override, Preflight, ProtocolError, Provider, QuotaError,
                   RejectedInput, RemoteError, RemoteFailure, RemoteRef, State, SubmitSpec, TaskUpdate,
                   TransientError, apply_overrides, parse_api_graph, parse_target)

STATES = {"DEFAULT": State.QUEUED, "CREATED": State.QUEUED, "PENDING": State.QUEUED,
          "WAITING": State.QUEUED, "RUNNING": State.RUNNING, "SUCCESS": State.SUCCEEDED,
          "FAILED": State.FAILED, "CANCELED": State.CANCELLED, "CANCELLED": State.CANCELLED}
SAFETY_WORDS = ("sensitive", "nsfw", "not compliant", "safety", "prohibited", "porn", "违规", "敏感", "不合规")
CREDIT_WORDS = ("credit", "balance", "insufficient", "余额", "积分", "算力")
MIME = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
        "gif": "image/gif", "mp4": "video/mp4", "webm": "video/webm", "mov": "video/quicktime"}
_CANT_FIND = re.compile(r"can't find \[nodeId:fieldName\]\s*(\S+):([^\s:]+)")
_TEMPLATE_ID = re.compile(r"^\d{1,20}$")


# --------------------------------------------------------------------------- protojson helpers

def pj(d: Any, camel: str, default: Any = None) -> Any:
    """Field ``camel`` of a protojson object by its JSON name or its proto (snake_case) name."""
    if not isinstance(d, dict):
        return default
    v = d.get(camel)
    if v is None:
        v = d.get(re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel))
    return default if v is None else v


def as_int(v: Any) -> Optional[int]:
    """int64/int32 given as a JSON number or a decimal string; None when absent or unreadable."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and math.isfinite(v):
        return int(v)
    if isinstance(v, str):
        try:
            return int(float(v.strip()))
        except ValueError:
            return None
    return None


def as_float(v: Any) -> Optional[float]:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def progress_fraction(v: Any) -> Optional[float]:
    """TAMS progress is 0–100 (int32 in the swagger; INFERRED for doubles). A non-integer value
    in (0, 1) is read as a fraction already."""
    f = as_float(v)
    if f is None:
        return None
    if 0.0 < f < 1.0 and not f.is_integer():
        return f
    return max(0.0, min(1.0, f / 100.0))


def _lines(text: str) -> dict:
    out: dict = {}
    for line in str(text).splitlines():
        k, sep, v = line.partition(":")
        if sep and k.strip():
            out.setdefault(k.strip().lower(), v.strip())
    return out


class _Pacer:
    """Keeps request starts at least 1/qps apart for one app (TAMS allows 5 QPS per app)."""

    def __init__(self, qps: float):
        self.gap = 1.05 / qps if qps > 0 else 0.0
        self._next = 0.0
        self._lock: Optional[asyncio.Lock] = None

    async def wait(self) -> None:
        if not self.gap:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            loop = asyncio.get_running_loop()
            delay = self._next - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next = max(loop.time(), self._next) + self.gap


# --------------------------------------------------------------------------- provider

class TensorArtProvider(Provider):
    id = "tensorart"
    label = "Tensor.Art TAMS"
    capabilities = Capabilities(cancel=True, queue_position=True, progress="poll", uploads=True, cost=True,
                                idempotent_submit=True, client_chosen_id=False, findable=True, addressing="node")

    def __init__(self, profile: Any, http: Any):
        super().__init__(profile, http)
        qps = as_float(profile.get("qps", 5.0)) if hasattr(profile, "get") else 5.0
        self._pacer = _Pacer(5.0 if qps is None else qps)
        self._private_key: Any = None
        self._templates: dict[str, dict] = {}

    # ------------------------------------------------------------------ config and auth
    def new_submission_key(self) -> str:
        return str(uuid.uuid4())

    def _base(self) -> str:
        url = getattr(self.profile, "url", None)
        if not url:
            where = ("environment variable TENSORART_BASE_URL" if getattr(self.profile, "source", "") == "builtin"
                     else f"'url' in [profiles.{self.name}] of profiles.toml")
            raise self.error(ConfigError, "no TAMS endpoint URL: each Tensor.Art app has its own host",
                             field="url", hint=f"set {where} to the app's interface endpoint shown at "
                                               "https://tams.tensor.art (e.g. https://ap-east-1.tensorart.cloud)")
        return str(url).rstrip("/")

    def _auth(self) -> tuple:
        key = self.profile.secret("api_key")
        if key:
            return ("bearer", key)
        app_id = self.profile.get("app_id")
        pem = self.profile.secret("private_key")
        if app_id and pem:
            return ("rsa", str(app_id), self._load_key(pem))
        missing = "private_key_file" if app_id else ("app_id" if pem else "api_key")
        hint = ("set TENSORART_API_KEY, or TENSORART_APP_ID and TENSORART_PRIVATE_KEY_FILE"
                if getattr(self.profile, "source", "") == "builtin" else
                f"set api_key (or api_key_env), or app_id and private_key_file, in [profiles.{self.name}]")
        raise self.error(ConfigError, f"profile '{self.name}' has no TAMS credentials ({missing} missing)",
                         field=missing, hint=hint)

    def _load_key(self, pem: str) -> Any:
        if self._private_key is None:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa
            try:
                key = serialization.load_pem_private_key(pem.encode(), password=None)
            except Exception:  # noqa: BLE001 - any parse failure; never echo the key material
                key = None
            if not isinstance(key, rsa.RSAPrivateKey):
                raise self.error(ConfigError, "the TAMS private key is not an unencrypted RSA PEM key",
                                 field="private_key", hint="point private_key_file at the PEM made with "
                                 "`openssl genrsa -out private_key.pem 2048` (PKCS#1 or PKCS#8, no passphrase)")
            self._private_key = key
        return self._private_key

    def _headers(self, method: str, path: str) -> Callable[[bytes], dict]:
        """Per-attempt headers: a fresh timestamp, nonce and signature over the exact body bytes."""
        auth = self._auth()

        def make(body: bytes) -> dict:
            h = {"Accept": "application/json"}
            if body:
                h["Content-Type"] = "application/json"
            if auth[0] == "bearer":
                h["Authorization"] = f"Bearer {auth[1]}"
                return h
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import padding
            ts, nonce = str(int(time.time())), uuid.uuid4().hex
            msg = f"{method}\n{path}\n{ts}\n{nonce}\n".encode() + (body or b"")
            sig = base64.b64encode(auth[2].sign(msg, padding.PKCS1v15(), hashes.SHA256())).decode()
            h["Authorization"] = f"TAMS-SHA256-RSA app_id={auth[1]},nonce_str={nonce},timestamp={ts},signature={sig}"
            return h
        return make

    # ------------------------------------------------------------------ one API call
    async def _call(self, method: str, path: str, body: Any = None, *, what: str,
                    idempotent: Optional[bool] = None, creates: bool = False) -> dict:
        """Send one TAMS request (paced, signed per attempt); return the JSON object of a 2xx answer
        or raise the mapped error."""
        url = self._base() + path
        data = None if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        headers = self._headers(method, path)
        await self._pacer.wait()
        try:
            resp = await self.http.request(method, url, data=data, headers=headers, idempotent=idempotent,
                                           retry_if=lambda r: isinstance(
                                               self._status_error(r, what=what, creates=creates), TransientError))
        except AmbiguousSubmit:
            raise
        except TransientError as e:
            last = getattr(e, "response", None)
            if last is not None:  # retries exhausted on a 429/5xx: a definite answer may hide in it
                mapped = self._status_error(last, what=what, creates=creates)
                if not isinstance(mapped, TransientError):
                    raise mapped from None
            raise
        if 200 <= resp.status < 300:
            data_out = resp.json()
            if not isinstance(data_out, dict):
                raise self.error(ProtocolError, f"{what}: expected a JSON object, got {type(data_out).__name__}")
            return data_out
        raise self._status_error(resp, what=what, creates=creates)

    def _status_error(self, resp: Any, *, what: str, creates: bool = False) -> RemoteError:
        try:
            body = json.loads(resp.body)
        except (ValueError, UnicodeDecodeError):
            body = None
        body = body if isinstance(body, dict) else {}
        code = as_int(body.get("code"))
        message = str(body.get("message") or "")[:300]
        details = [d for d in body.get("details") or [] if isinstance(d, dict)]
        texts = " ".join([message] + [str(d.get("message") or d.get("reason") or "") for d in details]).lower()
        status = resp.status
        detail = f"{what}: HTTP {status}" + (f" (code {code}) {message}" if message or code is not None else "")
        if any(w in texts for w in CREDIT_WORDS) and (status in (400, 402, 403, 429) or code in (8, 9)):
            return self.error(QuotaError, f"{what}: not enough credits ({message or 'HTTP ' + str(status)})",
                              code=code, hint="top up the app's credits at https://tams.tensor.art")
        if status == 401 or code == 16:
            return self.error(AuthError, f"{what}: TAMS refused the credentials (HTTP {status})", code=code,
                              hint="check the API key, or the app id, the private key and that its public key is "
                                   "uploaded to the app; signed requests also need a correct system clock")
        if status == 403 or code == 7:
            return self.error(AuthError, f"{what}: permission denied ({message or 'HTTP 403'})", code=code,
                              hint="the key or app may not be allowed to use this template or model")
        if status == 404 or code == 5:
            return self.error(NotFound, f"{what}: {message or 'not found'}", code=code,
                              hint="check the template id / job id and that it belongs to this app's endpoint")
        m = _CANT_FIND.search(message)
        if m:
            target = f"{m.group(1)}.{m.group(2)}"
            return self.error(RejectedInput, f"{what}: the template needs a value for {target}", field=target,
                              code=code, hint=f"give it with a RemoteInput node whose target is {target}")
        if code == 3 or (status == 400 and code in (None, 0)):
            return self._argument_error(what, message, details, code)
        if code == 9:
            return self.error(RejectedInput, f"{what}: refused ({message})", code=code)
        if code == 6 and creates:
            return self.error(AmbiguousSubmit, f"{what}: a job with this requestId already exists", code=code,
                              hint="the first attempt was accepted; the task is looked up, not paid twice")
        if code == 12 or status == 501:
            return self.error(NotSupported, f"{what}: not supported by this TAMS endpoint ({message})", code=code)
        if status in (408, 409, 429, 499) or status >= 500 or code in (1, 2, 4, 10, 13, 14):
            return self.error(TransientError, detail, code=code, hint="TAMS is busy or failing; try again later")
        return self.error(ProtocolError, detail, code=code, hint="unexpected answer from TAMS")

    def _argument_error(self, what: str, message: str, details: list, code: Any) -> RemoteError:
        for d in details:
            if str(d.get("@type", "")).endswith("ArgumentError"):
                info = _lines(d.get("message", ""))
                node, cls = info.pop("node id", ""), info.pop("class type", "")
                fld, why = next(iter(info.items()), (str(d.get("field") or "workflow"), str(d.get("message") or "")))
                field = f"{node}.{fld}" if node and node != "-" else fld
                return self.error(RejectedInput, f"{what}: {message or 'invalid parameters'}: {fld}: {why}"[:400],
                                  field=field, code=code, remote_node=node if node != "-" else "", node_class=cls if cls != "-" else "",
                                  hint="fix the value with a RemoteInput node for that target, or the workflow")
        return self.error(RejectedInput, f"{what}: {message or 'invalid request'}", field="workflow", code=code,
                          hint="check the workflow and the overrides")

    # ------------------------------------------------------------------ workflow -> request body
    def _kind(self, spec: SubmitSpec) -> str:
        text = (spec.workflow or "").strip()
        if text.lower().startswith("template:"):
            text = text.split(":", 1)[1].strip()
        if _TEMPLATE_ID.match(text):
            return "template"
        if text.startswith("{"):
            return "graph"
        raise self.error(RejectedInput, "workflow is neither a TAMS template id nor an API-format graph",
                         field="workflow", hint="give the template id (digits, from the TAMS console) or paste "
                                                "a graph exported with Workflow → Export (API)")

    def _template_id(self, spec: SubmitSpec) -> str:
        text = spec.workflow.strip()
        return text.split(":", 1)[1].strip() if text.lower().startswith("template:") else text

    async def _template(self, tid: str) -> dict:
        if tid not in self._templates:
            d = await self._call("GET", f"/v1/workflows/{tid}", what=f"template {tid}")
            d = d.get("workflowTemplate") or d.get("template") or d
            attrs = pj(pj(d, "fields"), "fieldAttrs", [])
            fields = [(str(pj(a, "nodeId", "")), str(pj(a, "fieldName", "")), pj(a, "fieldValue", ""))
                      for a in attrs if isinstance(a, dict)]
            self._templates[tid] = {"name": pj(d, "name", ""), "fields": fields}
        return self._templates[tid]

    @staticmethod
    def _field_value(o: Override) -> str:
        if o.kind == "int":
            return str(int(o.value))
        if o.kind == "float":
            return repr(float(o.value))
        return "" if o.value is None else str(o.value)

    async def _template_body(self, spec: SubmitSpec, *, pending_ok: bool) -> tuple[dict, bool, str]:
        """(body without requestId, complete?, template name). ``complete`` is False when an image
        still waiting for upload has no usable default (the check would refuse it)."""
        tid = self._template_id(spec)
        tpl = await self._template(tid)
        values = {(n, f): v for n, f, v in tpl["fields"]}
        complete = True
        for tgt, o in spec.targets("node"):
            if (tgt.node, tgt.field) not in values:
                have = ", ".join(f"{n}.{f}" for n, f, _ in tpl["fields"]) or "none"
                raise self.error(RejectedInput, f"target {tgt.raw}: template {tid} has no field {tgt.raw}",
                                 field="target", hint=f"its fields are: {have}")
            if isinstance(o.value, (bytes, bytearray)):
                if not pending_ok:
                    raise self.error(RejectedInput, f"target {tgt.raw}: image was not uploaded", field="target")
                complete = complete and bool(values[(tgt.node, tgt.field)])
                continue
            values[(tgt.node, tgt.field)] = self._field_value(o)
        attrs = [{"nodeId": n, "fieldName": f, "fieldValue": "" if v is None else str(v)} for (n, f), v in values.items()]
        return {"templateId": tid, "fields": {"fieldAttrs": attrs}}, complete, str(tpl.get("name") or "")

    def _graph_params(self, spec: SubmitSpec, *, pending_ok: bool) -> tuple[dict, dict, bool]:
        """(params with classType, {node id: class_type}, complete?). ``complete`` is False while
        an image override still waits for its upload (its exported value stays for the moment)."""
        graph = parse_api_graph(spec.workflow, provider=self.id, profile=self.name)
        overrides, complete = [], True
        for tgt, o in spec.targets("node"):
            if isinstance(o.value, (bytes, bytearray)):
                if not pending_ok:
                    raise self.error(RejectedInput, f"target {tgt.raw}: image was not uploaded", field="target")
                node = graph.get(tgt.node) or {}
                o = o.with_value((node.get("inputs") or {}).get(tgt.field))
                complete = False
            elif o.kind in ("int", "float"):
                o = o.with_value(int(o.value) if o.kind == "int" else float(o.value))
            overrides.append(o)
        applied = apply_overrides(graph, SubmitSpec(spec.workflow, tuple(overrides), spec.profile),
                                  provider=self.id, profile=self.name)
        params = {nid: {("classType" if k == "class_type" else k): v for k, v in node.items() if k != "_meta"}
                  for nid, node in applied.items()}
        classes = {nid: str(node.get("class_type", "")) for nid, node in applied.items()}
        return params, classes, complete

    # ------------------------------------------------------------------ protocol
    async def validate(self, spec: SubmitSpec) -> Preflight:
        self._base()
        self._auth()
        for o in spec.overrides:
            parse_target(o.target, "node")
        if self._kind(spec) == "template":
            body, complete, name = await self._template_body(spec, pending_ok=True)
            label = f"template {body['templateId']}" + (f" ({name})" if name else "")
            if not complete:
                return Preflight(message="credits are estimated at submit: an image field has no default "
                                         "until the upload", workflow_label=label)
            d = await self._call("POST", "/v1/jobs/workflow/template/check", body, what="template check",
                                 idempotent=True)
        else:
            params, _, complete = self._graph_params(spec, pending_ok=True)
            label = f"graph of {len(params)} nodes"
            if not complete:
                return Preflight(message="credits are estimated at submit: the graph's image inputs are "
                                         "uploaded first", workflow_label=label)
            d = await self._call("POST", "/v1/jobs/workflow/params/check", {"params": params},
                                 what="workflow check", idempotent=True)
        if pj(d, "valid") is False:
            raise self.error(RejectedInput, f"TAMS says the workflow is not valid ({str(pj(d, 'message', ''))[:200]})",
                             field="workflow")
        credits = as_float(pj(d, "credits"))
        return Preflight(cost_estimate=credits, cost_unit="credits" if credits is not None else None,
                         workflow_label=label)

    async def upload(self, data: bytes, mime: str, name: str) -> Any:
        d = await self._call("POST", "/v1/resource/image", {"expireSec": "86400"}, what="upload (create resource)",
                             idempotent=True)
        rid, put_url, headers = pj(d, "resourceId"), pj(d, "putUrl"), pj(d, "headers", {})
        if not isinstance(rid, str) or not rid or not isinstance(put_url, str) or not put_url:
            raise self.error(ProtocolError, "upload: TAMS answered without resourceId/putUrl")
        hdrs = {str(k): str(v) for k, v in (headers or {}).items()} if isinstance(headers, dict) else {}
        resp = await self.http.request("PUT", put_url, data=bytes(data), headers=hdrs)
        if not 200 <= resp.status < 300:
            raise self.error(TransientError if resp.status >= 500 else ProtocolError,
                             f"upload: the storage host refused the file (HTTP {resp.status})", field="image",
                             hint="the upload URL may have expired; the task can be re-queued")
        try:
            ok = json.loads(resp.body or b"{}")
        except ValueError:
            ok = {}
        if isinstance(ok, dict) and ok.get("Status") not in (None, "OK"):
            raise self.error(ProtocolError, f"upload: storage answered Status={str(ok.get('Status'))[:40]!r}",
                             field="image")
        return rid

    async def submit(self, spec: SubmitSpec, key: str) -> RemoteRef:
        if self._kind(spec) == "template":
            body, _, _ = await self._template_body(spec, pending_ok=False)
            path, data = "/v1/jobs/workflow/template", {"kind": "template", "template_id": body["templateId"]}
        else:
            params, classes, _ = self._graph_params(spec, pending_ok=False)
            body = {"params": params}
            path, data = "/v1/jobs/workflow", {"kind": "graph", "classes": classes}
        body = {"requestId": key, **body}
        d = await self._call("POST", path, body, what="submit", idempotent=True, creates=True)
        job = pj(d, "job")
        job_id = pj(job, "id")
        if job_id is None or str(job_id) in ("", "0"):
            raise self.error(ProtocolError, "submit: TAMS answered without a job id")
        data["request_id"] = key
        return RemoteRef(remote_id=str(job_id), data=data)

    async def find(self, key: str, spec: SubmitSpec) -> Optional[RemoteRef]:
        """Resend the create with the same requestId: TAMS returns the job made under it (a job is
        created now if the first attempt never arrived — the submission that was meant anyway)."""
        try:
            return await self.submit(spec, key)
        except AmbiguousSubmit:
            raise self.error(NotSupported, "TAMS says a job exists for this requestId but did not return it",
                             hint="look the job up in the TAMS console")

    async def _job(self, ref: RemoteRef) -> dict:
        d = await self._call("GET", f"/v1/jobs/{ref.remote_id}", what=f"job {ref.remote_id}")
        job = pj(d, "job")
        if not isinstance(job, dict):
            raise self.error(ProtocolError, f"job {ref.remote_id}: answer has no 'job' object")
        return job

    async def watch(self, ref: RemoteRef) -> AsyncIterator[TaskUpdate]:
        last: Any = None
        while True:
            try:
                job = await self._job(ref)
            except NotFound as e:
                yield TaskUpdate(State.FAILED, raw_state="NOT_FOUND", error=e.with_context(
                    hint="the job is unknown to this app (another app's endpoint, or expired)"))
                return
            update = self.update_from(job, ref)
            sig = (update.state, update.queue_position, update.queue_length,
                   None if update.progress is None else round(update.progress, 3), update.node, update.step,
                   update.message, update.cost, update.raw_state)
            if update.state.terminal:
                if update.state is State.SUCCEEDED:
                    update.outputs = self.outputs_from(job, ref)
                yield update
                return
            if sig != last:
                last = sig
                yield update
            await asyncio.sleep(max(0.0, self.poll_interval()))

    def update_from(self, job: dict, ref: Optional[RemoteRef] = None) -> TaskUpdate:
        """One TaskUpdate from a protojson job object (current or older ``stages`` shape)."""
        raw = str(pj(job, "status", "DEFAULT") or "DEFAULT").upper()
        state = STATES.get(raw)
        if state is None:
            raise self.error(ProtocolError, f"job has an unknown status {raw[:40]!r}",
                             hint="the TAMS API may have changed; the task stays tracked")
        credits = as_float(pj(job, "credits"))
        up = TaskUpdate(state, raw_state=raw, cost=credits if credits else None)
        if state is State.QUEUED:
            w = pj(job, "waitingInfo", {})
            up.queue_position, up.queue_length = as_int(pj(w, "queueRank")), as_int(pj(w, "queueLen"))
            up.message = "waiting in the TAMS queue" if raw == "WAITING" else "accepted by TAMS"
        elif state is State.RUNNING:
            self._running(pj(job, "runningInfo", {}), up, ref)
        elif state is State.FAILED:
            up.error = self._failure(job, ref)
            up.message = up.error.detail
        elif state is State.CANCELLED:
            up.message = "cancelled on TAMS"
        return up

    def _running(self, info: Any, up: TaskUpdate, ref: Optional[RemoteRef]) -> None:
        images = pj(info, "processingImages", [])
        for stage in pj(info, "stages", []) or []:
            images = list(images or []) + list(pj(stage, "processingImages", []) or [])
        fracs = [p for p in (progress_fraction(pj(im, "progress")) for im in images or [] if isinstance(im, dict))
                 if p is not None]
        wfi = pj(info, "workflowFinishItem", {})
        if not fracs and wfi:
            p = progress_fraction(pj(wfi, "progress"))
            if p is not None:
                fracs = [p]
        nodes = pj(wfi, "nodes", {}) or {}
        if not fracs and isinstance(nodes, dict) and nodes:
            done = sum(1 for n in nodes.values() if str(pj(n, "status", "")).upper() == "SUCCESS")
            fracs = [done / len(nodes)]
        up.progress = sum(fracs) / len(fracs) if fracs else None
        classes = (ref.data.get("classes") if ref else None) or {}
        if isinstance(nodes, dict):
            for nid, n in nodes.items():
                if str(pj(n, "status", "")).upper() == "RUNNING":
                    node_id = str(pj(n, "id", nid) or nid)
                    up.node = f"{classes[node_id]} #{node_id}" if classes.get(node_id) else f"#{node_id}"
                    break
        step = as_int(pj(wfi, "step"))
        up.step = step if step else None
        up.message = "running on TAMS"

    def _failure(self, job: dict, ref: Optional[RemoteRef]) -> RemoteError:
        info = pj(job, "failedInfo", {})
        reason = str(pj(info, "reason", "") or "the job failed")[:400]
        code = str(pj(info, "code", "DEFAULT") or "DEFAULT").upper()
        low = reason.lower()
        if any(w in low for w in SAFETY_WORDS):
            return self.error(ContentRejected, f"TAMS refused the content: {reason}", code=code, field="workflow",
                              hint="change the prompt or input image; failed jobs cost no credits")
        if any(w in low for w in CREDIT_WORDS):
            return self.error(QuotaError, f"TAMS: {reason}", code=code, hint="top up the app's credits")
        if code == "TRANSITORY_ERROR":
            return self.error(TransientError, f"TAMS job failed transiently: {reason}", code=code,
                              hint="re-queue to try again; failed jobs cost no credits")
        lines = _lines(reason)
        node, cls = lines.get("node id", ""), lines.get("class type", "")
        if not node:
            wfi = pj(pj(job, "runningInfo", {}), "workflowFinishItem") or pj(pj(job, "successInfo", {}),
                                                                           "workflowFinishItem") or {}
            for nid, n in (pj(wfi, "nodes", {}) or {}).items():
                if str(pj(n, "status", "")).upper() == "FAILED":
                    node = str(pj(n, "id", nid) or nid)
                    break
        if node and not cls and ref is not None:
            cls = str((ref.data.get("classes") or {}).get(node, ""))
        first = next((ln for ln in reason.splitlines() if ln.strip() and not ln.lower().startswith(("node id", "class type"))),
                     reason)
        return self.error(RemoteFailure, f"TAMS job failed: {first.strip()}", code=code, remote_node=node,
                          node_class=cls, hint="check that node's inputs in the workflow; failed jobs cost no credits")

    def outputs_from(self, job: dict, ref: Optional[RemoteRef] = None) -> list[Output]:
        info = pj(job, "successInfo", {}) or {}
        wfi = pj(info, "workflowFinishItem", {}) or {}
        by_rid: dict[str, tuple[str, str]] = {}
        for nid, n in (pj(wfi, "nodes", {}) or {}).items():
            for im in pj(pj(n, "outputUi", {}), "images", []) or []:
                rid = pj(im, "imageResourceId")
                if rid:
                    by_rid[str(rid)] = (str(pj(n, "id", nid) or nid), str(pj(im, "filename", "") or ""))
        outs: list[Output] = []
        seen: set[str] = set()
        items = [("image", r) for r in pj(info, "images", []) or []] + [("video", r) for r in pj(info, "videos", []) or []]
        if not items:  # older shape: the stages' final images
            for stage in pj(info, "stages", []) or []:
                items += [("image", pj(p, "resourceImage")) for p in pj(stage, "processingImages", []) or []]
        for kind, res in items:
            url = pj(res, "url")
            if not isinstance(url, str) or not url or url in seen:
                continue
            seen.add(url)
            rid = str(pj(res, "id", "") or "")
            node, fname = by_rid.get(rid, (None, ""))
            fmt = str(pj(pj(pj(res, "meta", {}), "image", {}), "format", "") or "").lower()
            ext = fmt or urlsplit(url).path.rsplit(".", 1)[-1].lower()
            if not fname:
                fname = f"{rid or len(outs)}.{ext if ext in MIME else ('png' if kind == 'image' else 'mp4')}"
            mime = MIME.get(ext) or MIME.get(fname.rsplit(".", 1)[-1].lower())
            if kind == "video" and mime and not mime.startswith("video/"):
                kind = "image"
            outs.append(Output(kind=kind, url=url, filename=fname, node=node, mime=mime))
        return outs

    async def outputs(self, ref: RemoteRef) -> list[Output]:
        job = await self._job(ref)  # fresh signed URLs every time (they expire)
        up = self.update_from(job, ref)
        if up.state is not State.SUCCEEDED:
            raise self.error(ProtocolError if up.state.active else RemoteFailure,
                             f"job {ref.remote_id} is {up.raw_state}, not SUCCESS: no outputs yet")
        return self.outputs_from(job, ref)

    async def cancel(self, ref: RemoteRef) -> None:
        try:
            await self._call("DELETE", f"/v1/jobs/{ref.remote_id}", what=f"cancel job {ref.remote_id}")
        except RejectedInput as e:
            if e.code == 9:  # already finished: nothing left to stop
                return
            raise

    async def check(self) -> str:
        base = self._base()
        mode = "API key" if self._auth()[0] == "bearer" else "RSA signature"
        try:
            await self._call("GET", "/v1/jobs/0", what="connection test")
        except NotFound:
            pass  # authenticated: the service looked for job 0 (auth is checked first)
        return f"TAMS at {urlsplit(base).netloc}: authenticated with {mode}"


PROVIDER = TensorArtProvider
