"""Tensor.Art TAMS (Tensor Art Model Service) on an app's own endpoint (``url``, e.g.
``https://ap-east-1.tensorart.cloud``); guide: docs/providers/tensorart.md.

- ``workflow``: a template id (digits or ``template:<id>``) → ``POST /v1/jobs/workflow/template`` with
  every field of ``GET /v1/workflows/{id}``, overridden by ``NODE_ID.FIELD`` targets; or an API-format
  graph → ``POST /v1/jobs/workflow`` (``params``, ``class_type`` sent as ``classType``). Pre-flight:
  the free ``…/template/check`` / ``…/params/check`` (credits estimate).
- The submission key (uuid4) is the create's ``requestId`` ("ensures request idempotence"; that a
  repeat answers the same job is INFERRED), so ``find`` re-sends the very same create.
- ``poll`` = ``GET /v1/jobs/{id}`` (TAMS has no push channel); ``cancel`` = ``DELETE /v1/jobs/{id}``.
- Auth (``Bearer`` or ``TAMS-SHA256-RSA``) and protojson reading: ``tensorart_wire``. The app's 5 QPS
  is ``max_rps``: the engine paces every call of the profile under it; a 429 is RateLimited.
"""
from __future__ import annotations

import json
import re
import uuid
from typing import Any, Optional
from urllib.parse import urlsplit

from .base import (AmbiguousSubmit, AuthError, CancelResult, Capabilities, ConfigError, ContentRejected, NotFound,
                   NotSupported, Output, Preflight, ProtocolError, Provider, QuotaError, RateLimited,
                   RejectedInput, RemoteError, RemoteFailure, RemoteRef, ServerError, State, SubmitSpec, TaskGone,
                   TaskUpdate, TransientError, apply_overrides, field_text, parse_api_graph, parse_target)
from .local_file import not_uploaded
from .tensorart_wire import Credentials, as_float, as_int, lines, node_with_status, outputs_of, pj, running_info

# TAMS job.status → State (TaskUpdate.raw_state keeps the TAMS name); anything else: ProtocolError
STATES = {
    "DEFAULT": State.QUEUED, "CREATED": State.QUEUED, "PENDING": State.QUEUED,  # DEFAULT: the omitted zero enum
    "WAITING": State.QUEUED,  # waitingInfo.queueRank / queueLen
    "RUNNING": State.RUNNING,  # runningInfo.processingImages[].progress (0-100), workflowFinishItem nodes/step
    "SUCCESS": State.SUCCEEDED,  # successInfo.images[] / videos[] (signed URLs that expire)
    "FAILED": State.FAILED,  # failedInfo {reason, code}: FAILURES below; CANCELLED after our cancel
    "CANCELED": State.CANCELLED,  # after DELETE /v1/jobs/{id}
}
# google.rpc.Status.code of an error answer → (error, hint). HTTP status per grpc-gateway (5→404 and
# 16→401 documented, the rest INFERRED defaults). Answers without a code (a proxy, a CDN page) fall
# back to Provider.http_error. Special cases in _error: 5 on a job → TaskGone; 8/9 about credits →
# QuotaError; "can't find [nodeId:fieldName] N:F" (code 2) → RejectedInput N.F; 3 → _argument_error;
# 9 on DELETE of an ended job → CancelResult.TOO_LATE.
CODES: dict[int, tuple[type, str]] = {
    1: (ServerError, "the request was cancelled on the way; it is asked again"),  # CANCELLED (499)
    2: (ServerError, "TAMS is failing; try again later"),  # UNKNOWN (500)
    3: (RejectedInput, "check the workflow and the overrides"),  # INVALID_ARGUMENT (400) "Params Valid"
    4: (ServerError, "TAMS timed out; try again later"),  # DEADLINE_EXCEEDED (504)
    5: (NotFound, "check the template id and that it belongs to this app's endpoint"),  # NOT_FOUND (404)
    6: (AmbiguousSubmit, "a job exists for this requestId; look for it in the TAMS console"),  # ALREADY_EXISTS (409)
    7: (AuthError, "the app may not use this template or model"),  # PERMISSION_DENIED (403)
    8: (RateLimited, "TAMS allows 5 requests per second per app"),  # RESOURCE_EXHAUSTED (429)
    9: (RejectedInput, "TAMS refused it in the job's current state"),  # FAILED_PRECONDITION (400)
    10: (ServerError, "a conflict on TAMS; try again later"),  # ABORTED (409)
    12: (NotSupported, "this TAMS endpoint does not offer it"),  # UNIMPLEMENTED (501)
    13: (ServerError, "TAMS is failing; try again later"),  # INTERNAL (500)
    14: (ServerError, "TAMS is unavailable; try again later"),  # UNAVAILABLE (503)
    16: (AuthError, ""),  # UNAUTHENTICATED (401): wrong key, bad signature, clock skew (hint: where the key is)
}
# failedInfo.reason → error of a FAILED job (INFERRED: TAMS has no codes beyond TRANSITORY/FATAL_ERROR)
FAILURES = (
    (("sensitive", "nsfw", "not compliant", "safety", "prohibited", "porn", "违规", "敏感", "不合规"),
     ContentRejected, "change the prompt or input image; failed jobs cost no credits"),
    (("credit", "balance", "insufficient", "余额", "积分", "算力"), QuotaError, "top up the app's credits"),
)
CREDIT_WORDS = FAILURES[1][0]
UPLOAD_EXPIRE_S = 86400  # asked for each upload (resources live about a day)
_CANT_FIND = re.compile(r"can't find \[nodeId:fieldName\]\s*(\S+):([^\s:]+)")
_TEMPLATE_ID = re.compile(r"^\d{1,20}$")


class TensorArtProvider(Provider):
    id = "tensorart"
    label = "Tensor.Art TAMS"
    capabilities = Capabilities(cancel=True, queue_position=True, progress="poll", uploads=True, cost=True,
                                idempotent_submit=True, client_chosen_id=False, findable=True, addressing="node",
                                node_types="service", input_kinds=("image",))  # the one upload is /v1/resource/image (facts §2.7)
    upload_ttl_s = 20 * 3600.0  # resource ids are asked to live UPLOAD_EXPIRE_S (about a day)
    max_rps = 5.0  # "5 QPS per app" (TAMS FAQ); a profile's max_rps overrides it

    def __init__(self, profile: Any, http: Any):
        super().__init__(profile, http)
        self._templates: dict[str, dict] = {}

    def new_submission_key(self) -> str:
        return str(uuid.uuid4())

    def _base(self) -> str:
        url = getattr(self.profile, "url", None)
        if not url:
            where = ("environment variable TENSORART_BASE_URL" if getattr(self.profile, "source", "") == "builtin"
                     else f"'url' in [profiles.{self.name}] of profiles.toml")
            raise self.error(ConfigError, "no TAMS endpoint URL: each Tensor.Art app has its own host", field="url",
                             hint=f"set {where} to the app's endpoint shown at https://tams.tensor.art")
        return str(url).rstrip("/")

    # ------------------------------------------------------------------ one request
    async def _call(self, method: str, path: str, body: Any = None, *, what: str, creates: bool = False,
                    job: bool = False) -> dict:
        """ONE TAMS request (the transport retries it unless ``creates``); the JSON object of a 2xx
        answer, else the error the answer means. ``job``: a code 5 means the job is unknown."""
        creds = Credentials(self.profile, self.id)
        url = self._base() + path
        data = None if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        resp = await self.http.request(method, url, data=data, headers=creds.headers(method, path), creates=creates,
                                       retry_if=lambda r: isinstance(self._error(r, what, creds), TransientError))
        if not resp.ok:
            raise self._error(resp, what, creds, job=job)
        out = resp.json()
        if not isinstance(out, dict):
            raise self.error(ProtocolError, f"{what}: expected a JSON object, got {type(out).__name__}")
        return out

    def _error(self, resp: Any, what: str, creds: Credentials, *, job: bool = False) -> RemoteError:
        try:
            body = json.loads(resp.body)
        except (ValueError, UnicodeDecodeError):
            body = None
        code = as_int(body.get("code")) if isinstance(body, dict) else None
        if not code:  # not a google.rpc.Status: a proxy or gateway answered
            return self.http_error(resp, what, auth_hint=creds.auth_hint())
        message = str(body.get("message") or "")[:300]
        details = [d for d in body.get("details") or [] if isinstance(d, dict)]
        words = " ".join([message] + [str(d.get("message") or d.get("reason") or "") for d in details]).lower()
        detail = f"{what}: HTTP {resp.status}, code {code}: {message or 'no message'}"
        if job and code == 5:
            return self.error(TaskGone, detail, code=code, hint="the job is unknown to this app's endpoint")
        if code in (8, 9) and any(w in words for w in CREDIT_WORDS):
            return self.error(QuotaError, detail, code=code, hint="top up the app's credits at https://tams.tensor.art")
        m = _CANT_FIND.search(message)
        if m:
            target = f"{m.group(1)}.{m.group(2)}"
            return self.error(RejectedInput, f"{what}: the template needs a value for {target}", field=target,
                              code=code, hint=f"give it with a RemoteInput node whose target is {target}")
        if code == 3:
            return self._argument_error(what, message, details)
        cls, hint = CODES.get(code, (ProtocolError, "unexpected answer from TAMS"))
        return self.error(cls, detail, code=code, hint=hint or creds.auth_hint(), retry_after=resp.retry_after)

    def _argument_error(self, what: str, message: str, details: list) -> RemoteError:
        """code 3 "Params Valid" with ``tams_api.ArgumentError`` {field, message: node id/class type/field lines}."""
        for d in details:
            if str(d.get("@type", "")).endswith("ArgumentError"):
                info = lines(d.get("message", ""))
                node, cls = info.pop("node id", ""), info.pop("class type", "")
                node, cls = ("" if node == "-" else node), ("" if cls == "-" else cls)
                fld, why = next(iter(info.items()), (str(d.get("field") or "workflow"), str(d.get("message") or "")))
                return self.error(RejectedInput, f"{what}: {message or 'invalid parameters'}: {fld}: {why}"[:400],
                                  field=f"{node}.{fld}" if node else fld, code=3, remote_node=node, node_class=cls,
                                  hint="fix the value with a RemoteInput node for that target, or the workflow")
        return self.error(RejectedInput, f"{what}: {message or 'invalid request'}", field="workflow", code=3,
                          hint="check the workflow and the overrides")

    # ------------------------------------------------------------------ workflow → request body
    def _template_id(self, spec: SubmitSpec) -> Optional[str]:
        """The template id, or None for a graph; a workflow that is neither is refused."""
        text = (spec.workflow or "").strip()
        if text.lower().startswith("template:"):
            text = text.split(":", 1)[1].strip()
        if _TEMPLATE_ID.match(text):
            return text
        if text.startswith("{"):
            return None
        raise self.error(RejectedInput, "workflow is neither a TAMS template id nor an API-format graph",
                         field="workflow", hint="give the template id (digits, from the TAMS console) or paste "
                                                "a graph exported with Workflow → Export (API)")

    async def _template(self, tid: str) -> dict:
        if tid not in self._templates:
            d = await self._call("GET", f"/v1/workflows/{tid}", what=f"template {tid}")
            d = d.get("workflowTemplate") or d.get("template") or d
            attrs = pj(pj(d, "fields"), "fieldAttrs", [])
            fields = [(str(pj(a, "nodeId", "")), str(pj(a, "fieldName", "")), pj(a, "fieldValue", ""))
                      for a in attrs if isinstance(a, dict)]
            self._templates[tid] = {"name": str(pj(d, "name", "") or ""), "fields": fields}
        return self._templates[tid]

    async def _template_body(self, tid: str, spec: SubmitSpec, *, pending_ok: bool) -> tuple[dict, bool, str]:
        """(body without requestId, complete?, template name). Not complete while an image still
        waiting for its upload has no usable default (the check would refuse it)."""
        tpl = await self._template(tid)
        values = {(n, f): v for n, f, v in tpl["fields"]}
        complete = True
        for tgt, o in spec.targets("node"):
            if (tgt.node, tgt.field) not in values:
                have = ", ".join(f"{n}.{f}" for n, f, _ in tpl["fields"]) or "none"
                raise self.error(RejectedInput, f"target {tgt.raw}: template {tid} has no field {tgt.raw}",
                                 field="target", hint=f"its fields are: {have}")
            if not_uploaded(o.value):
                if not pending_ok:
                    raise self.error(RejectedInput, f"target {tgt.raw}: image was not uploaded", field="target")
                complete = complete and bool(values[(tgt.node, tgt.field)])
                continue
            values[(tgt.node, tgt.field)] = field_text(o)
        attrs = [{"nodeId": n, "fieldName": f, "fieldValue": "" if v is None else str(v)} for (n, f), v in values.items()]
        return {"templateId": tid, "fields": {"fieldAttrs": attrs}}, complete, tpl["name"]

    def _graph_params(self, spec: SubmitSpec, *, pending_ok: bool) -> tuple[dict, dict, bool]:
        """(params with classType, {node id: class_type}, complete?). Not complete while an image
        override still waits for its upload (its exported value stays for the moment)."""
        graph = parse_api_graph(spec.workflow, provider=self.id, profile=self.name)
        overrides, complete = [], True
        for tgt, o in spec.targets("node"):
            if not_uploaded(o.value):
                if not pending_ok:
                    raise self.error(RejectedInput, f"target {tgt.raw}: image was not uploaded", field="target")
                o = o.with_value(((graph.get(tgt.node) or {}).get("inputs") or {}).get(tgt.field))
                complete = False
            elif o.kind in ("int", "float", "boolean"):
                o = o.with_value({"int": int, "float": float, "boolean": bool}[o.kind](o.value))
            overrides.append(o)
        applied = apply_overrides(graph, SubmitSpec(spec.workflow, tuple(overrides), spec.profile),
                                  provider=self.id, profile=self.name)
        params = {nid: {("classType" if k == "class_type" else k): v for k, v in node.items() if k != "_meta"}
                  for nid, node in applied.items()}
        return params, {nid: str(node.get("class_type", "")) for nid, node in applied.items()}, complete

    # ------------------------------------------------------------------ protocol
    async def validate(self, spec: SubmitSpec) -> Preflight:
        self._base()
        Credentials(self.profile, self.id)
        for o in spec.overrides:
            parse_target(o.target, "node")
        tid = self._template_id(spec)
        if tid is not None:
            body, complete, name = await self._template_body(tid, spec, pending_ok=True)
            label = f"template {tid}" + (f" ({name})" if name else "")
            path = "/v1/jobs/workflow/template/check"
        else:
            params, _, complete = self._graph_params(spec, pending_ok=True)
            body, label, path = {"params": params}, f"graph of {len(params)} nodes", "/v1/jobs/workflow/params/check"
        if not complete:
            return Preflight(message="credits are estimated at submit: an image input is uploaded first",
                             workflow_label=label)
        d = await self._call("POST", path, body, what="workflow check")
        if pj(d, "valid") is False:
            raise self.error(RejectedInput, f"TAMS says the workflow is not valid ({str(pj(d, 'message', ''))[:200]})",
                             field="workflow")
        credits = as_float(pj(d, "credits"))
        return Preflight(cost_estimate=credits, cost_unit="credits" if credits is not None else None,
                         workflow_label=label)

    async def upload(self, data: bytes, mime: str, name: str) -> Any:
        d = await self._call("POST", "/v1/resource/image", {"expireSec": str(UPLOAD_EXPIRE_S)}, what="upload")
        rid, put_url, headers = pj(d, "resourceId"), pj(d, "putUrl"), pj(d, "headers", {})
        if not isinstance(rid, str) or not rid or not isinstance(put_url, str) or not put_url:
            raise self.error(ProtocolError, "upload: TAMS answered without resourceId/putUrl")
        hdrs = {str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {}
        resp = await self.http.request("PUT", put_url, data=bytes(data), headers=hdrs)  # exactly those headers, no key
        if not resp.ok:
            raise self.error(TransientError if resp.status >= 500 else ProtocolError,
                             f"upload: the storage host refused the file (HTTP {resp.status})", field="image")
        return rid

    async def _create(self, spec: SubmitSpec, key: str) -> tuple[str, dict, dict]:
        """(path, body, ref data) of the create: the same spec and key give the same body."""
        tid = self._template_id(spec)
        if tid is not None:
            body, _, _ = await self._template_body(tid, spec, pending_ok=False)
            return "/v1/jobs/workflow/template", {"requestId": key, **body}, {"kind": "template", "template_id": tid}
        params, classes, _ = self._graph_params(spec, pending_ok=False)
        return "/v1/jobs/workflow", {"requestId": key, "params": params}, {"kind": "graph", "classes": classes}

    async def submit(self, spec: SubmitSpec, key: str) -> RemoteRef:
        path, body, data = await self._create(spec, key)
        d = await self._call("POST", path, body, what="submit", creates=True)
        job_id = pj(pj(d, "job"), "id")
        if job_id is None or str(job_id) in ("", "0"):
            raise self.error(ProtocolError, "submit: TAMS answered without a job id")
        return RemoteRef(remote_id=str(job_id), data={**data, "request_id": key})

    async def find(self, key: str, spec: SubmitSpec) -> Optional[RemoteRef]:
        """Re-send the same create under the same requestId: TAMS answers the job made under it
        (INFERRED), or makes it now if the first never arrived — the one job that was meant."""
        if not (spec.workflow or "").strip():  # after a restart the create's body is not known
            raise self.error(NotSupported, "a TAMS job cannot be looked up by its requestId without re-sending "
                                           "the original request, which is not known after a restart")
        try:
            return await self.submit(spec, key)
        except AmbiguousSubmit:
            raise self.error(NotSupported, "TAMS says a job exists for this requestId but did not return it") from None

    async def _job(self, ref: RemoteRef) -> dict:
        d = await self._call("GET", f"/v1/jobs/{ref.remote_id}", what=f"job {ref.remote_id}", job=True)
        job = pj(d, "job")
        if not isinstance(job, dict):
            raise self.error(ProtocolError, f"job {ref.remote_id}: the answer has no 'job' object")
        return job

    async def poll(self, ref: RemoteRef) -> TaskUpdate:
        return self.update_from(await self._job(ref), ref)

    async def outputs(self, ref: RemoteRef) -> list[Output]:
        upd = self.update_from(await self._job(ref), ref)  # freshly signed URLs every time
        if upd.state is not State.SUCCEEDED or upd.outputs is None:
            raise self.error(TransientError, f"job {ref.remote_id} is {upd.raw_state}, not SUCCESS: no outputs")
        return upd.outputs

    async def cancel(self, ref: RemoteRef) -> CancelResult:
        try:
            await self._call("DELETE", f"/v1/jobs/{ref.remote_id}", what=f"cancel job {ref.remote_id}", job=True)
        except RejectedInput as e:
            if e.code == 9:  # FAILED_PRECONDITION "job is already SUCCESS" (INFERRED): it ended first
                return CancelResult.TOO_LATE
            raise
        return CancelResult.REQUESTED

    async def check(self) -> str:
        base, mode = self._base(), Credentials(self.profile, self.id).mode
        try:
            await self._call("GET", "/v1/jobs/0", what="connection test", job=True)
        except TaskGone:
            pass  # authenticated: the service looked for job 0 (auth is checked first)
        return f"TAMS at {urlsplit(base).netloc}: authenticated with {mode}"

    # ------------------------------------------------------------------ job → TaskUpdate
    def update_from(self, job: dict, ref: Optional[RemoteRef] = None) -> TaskUpdate:
        """One TaskUpdate from a protojson job object (current or older ``stages`` shape)."""
        raw = str(pj(job, "status", "DEFAULT") or "DEFAULT").upper()
        state = STATES.get(raw)
        if state is None:
            raise self.error(ProtocolError, f"job has an unknown status {raw[:40]!r}",
                             hint="the TAMS API may have changed; the task stays tracked")
        credits = as_float(pj(job, "credits"))
        up = TaskUpdate(state, raw_state=raw, cost=credits or None)
        cancelled = bool(ref and ref.data.get("cancel_requested"))
        if state is State.QUEUED:
            w = pj(job, "waitingInfo", {})
            up.queue_position, up.queue_length = as_int(pj(w, "queueRank")), as_int(pj(w, "queueLen"))
            up.message = "waiting in the TAMS queue" if raw == "WAITING" else "accepted by TAMS"
        elif state is State.RUNNING:
            up.progress, node, up.step = running_info(pj(job, "runningInfo", {}))
            classes = (ref.data.get("classes") if ref else None) or {}
            up.node = node and (f"{classes[node]} #{node}" if classes.get(node) else f"#{node}")
            up.message = "running on TAMS"
        elif state is State.SUCCEEDED:
            up.progress, up.outputs = 1.0, outputs_of(job)
        elif state is State.FAILED and cancelled:
            up.state, up.message = State.CANCELLED, "cancelled on TAMS (it reported FAILED after our cancel)"
        elif state is State.FAILED:
            up.error = self._failure(job, ref)
            up.message = up.error.detail
        else:
            up.message = "cancelled on TAMS"
        return up

    def _failure(self, job: dict, ref: Optional[RemoteRef]) -> RemoteError:
        info = pj(job, "failedInfo", {})
        reason = str(pj(info, "reason", "") or "the job failed")[:400]
        code = str(pj(info, "code", "DEFAULT") or "DEFAULT").upper()
        for words, cls, hint in FAILURES:
            if any(w in reason.lower() for w in words):
                return self.error(cls, f"TAMS refused the job: {reason}", code=code, field="workflow", hint=hint)
        tagged = lines(reason)
        node, cls_name = tagged.get("node id", ""), tagged.get("class type", "")
        node = node or node_with_status(pj(pj(job, "runningInfo", {}), "workflowFinishItem"), "FAILED") or ""
        if node and not cls_name and ref is not None:
            cls_name = str((ref.data.get("classes") or {}).get(node, ""))
        first = next((ln.strip() for ln in reason.splitlines()
                      if ln.strip() and not ln.lower().startswith(("node id", "class type"))), reason)
        hint = ("TAMS marks it transient: queue it again" if code == "TRANSITORY_ERROR"
                else "check that node's inputs in the workflow") + "; failed jobs cost no credits"
        return self.error(RemoteFailure, f"TAMS job failed: {first}", code=code, remote_node=node,
                          node_class=cls_name, hint=hint)


PROVIDER = TensorArtProvider
