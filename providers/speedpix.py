"""Alibaba Cloud Intelligent Production Workshop (智作工坊, "SpeedPix"): published ComfyUI workflows.

Facts: ``shared/providers/speedpix.md``. Four POST-only JSON calls, each signed with Alibaba
API-Gateway digest auth (``speedpix_signing``, signed again for every attempt):
``/scc/comfy_prompt`` (the paid create), ``/scc/comfy_get_progress`` (poll),
``/scc/comfy_get_result`` (outputs, or why a task failed) and ``/scc/sp_create_temp_file_upload_sign``
(+ an unsigned ``PUT`` of the bytes; ``accessUrl`` goes into the field). Answers are HTTP 200 with
the envelope ``{status: 10|20, errCode, errMessage, subErrCode, subErrMessage, data}``; gateway
refusals are HTTP 4xx with ``X-Ca-Error-Message``. No cancel, no push, no idempotency key, no way
to look a task up: poll only, and an ambiguous create stays ambiguous (the engine says so).

``STATES``, ``CODES``/``FAMILIES`` and ``GATEWAY`` below are the service → State / error tables.
"""
from __future__ import annotations

import json
import math
import re
import time
import uuid
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

from .base import (FILE_KINDS, AuthError, Capabilities, ConfigError, ContentRejected, NotFound, Output, Preflight,
                   ProtocolError, Provider, QuotaError, RateLimited, RejectedInput, RemoteError, RemoteFailure,
                   RemoteRef, ServerError, State, SubmitSpec, TaskGone, TaskUpdate, TransientError)
from .kinds import kind_of
from .local_file import not_uploaded, sendable, size_of
from .speedpix_wire import (USER_AGENT, as_int, checked_url, clean, node_of, num, parse_outputs, parse_workflow,
                            sign_request)

# data.status of comfy_get_progress / comfy_get_result -> State; anything else is a ProtocolError
STATES = {
    "waiting": State.QUEUED,  # queue_position = lastQueueRemaining (INFERRED: counting this task)
    "running": State.RUNNING,  # progress, state.nodeLabel/step/maxSteps, etaRelative
    "succeeded": State.SUCCEEDED,  # outputs from comfy_get_result
    "successed": State.SUCCEEDED,  # the progress doc's spelling
    "failed": State.FAILED,  # the reason from comfy_get_result's status-20 answer
    "canceled": State.CANCELLED,  # known to the SDK models only, never documented as sent
    "cancelled": State.CANCELLED,
}

_AUTH = "use the AppKey and AppSecret of a ComfyUI-type application (SpeedPix console, 应用管理)"
_WORKFLOW = "check the workflow id (and @alias / #version) in the SpeedPix console's workflow management"
_INPUTS = ("the published input fields and their types are set when the workflow API is published; check the "
           "target names and values")
_SYSTEM = "a SpeedPix system error that asks to retry; a submit that got it may or may not have created a task"

# service codes (envelope status 20: subErrCode, else errCode; case-insensitive) -> (class, field, hint)
CODES: dict[str, tuple[type[RemoteError], str, str]] = {
    "b_computing_cannotfindtask": (TaskGone, "", "SpeedPix does not know this task id (another application's "
                                                 "task, or expired)"),
    "p_request_contentsafe": (ContentRejected, "inputs", "SpeedPix's content-safety check refused the input or "
                                                         "the output; change the prompt or image"),
    "s_common_lockfail": (ServerError, "", _SYSTEM),  # "内部错误, 请重试"
    "b_session_tokennotvalid": (AuthError, "app_key", _AUTH),
    "b_session_tokenforbidden": (AuthError, "app_key", _AUTH),
    "p_common_apitokenrequired": (AuthError, "app_key", _AUTH),
    "p_common_tenantidrequired": (AuthError, "app_key", _AUTH),
    "b_tenant_invalidtenantidnul": (AuthError, "app_key", _AUTH),
    "b_model_modelidnotfound": (NotFound, "workflow", _WORKFLOW),
    "b_model_modelversionidnotfound": (NotFound, "workflow", _WORKFLOW),
    "p_function_invalidtemplateid": (NotFound, "workflow", _WORKFLOW),
}
# every other code by its family (INFERRED: no source lists them one by one), first match wins;
# a code in none of them is an undocumented answer: ServerError (a submit stays ambiguous)
FAMILIES: tuple[tuple[str, type[RemoteError], str, str], ...] = (
    (r"contentsafe", ContentRejected, "inputs", CODES["p_request_contentsafe"][2]),
    (r"(workflow|alias|version|model|template).*(notfound|cannotfind)", NotFound, "workflow", _WORKFLOW),
    (r"notfound|cannotfind", NotFound, "", "the id is unknown to SpeedPix"),
    (r"^p_", RejectedInput, "target", _INPUTS),  # parameter errors
    (r"^s_", ServerError, "", _SYSTEM),  # system errors
    (r"^b_", RemoteFailure, "", "see the message; check the workflow in the SpeedPix console"),  # business
)
_UNKNOWN = (ServerError, "", "an undocumented SpeedPix error; the service may or may not have acted")

# X-Ca-Error-Message of a gateway refusal (HTTP 4xx), by prefix -> (class, field, hint). Every one
# proves the backend never saw the request, so a create refused here was not created.
GATEWAY: tuple[tuple[str, type[RemoteError], str, str], ...] = (
    ("invalid appkey", AuthError, "app_key", _AUTH),
    ("invalid appsecret", AuthError, "app_secret", _AUTH),
    ("empty signature", AuthError, "app_secret", _AUTH),
    ("invalid signature", AuthError, "app_secret", _AUTH + "; a proxy that rewrites requests also breaks it"),
    ("timestamp expired", AuthError, "", "this computer's clock is more than 15 minutes off; sync it (NTP)"),
    ("invalid timestamp", AuthError, "", "this computer's clock is wrong; sync it (NTP)"),
    ("nonce used", RateLimited, "", "the gateway refused a replayed signature; it is signed again and re-sent"),
    ("throttled by", RateLimited, "", "SpeedPix flow control limits this application; sent again later"),
    ("quota exhausted", QuotaError, "", "the application's API quota is used up; raise it in the console"),
    ("user arrears", QuotaError, "", "the Alibaba Cloud account is in arrears; top it up"),
    ("invalid url", ConfigError, "url", "check the endpoint (SPEEDPIX_ENDPOINT or 'url' in profiles.toml)"),
    ("invalid httpmethod", RejectedInput, "", "a client bug; please report it"),
    ("empty request body", RejectedInput, "", "a client bug; please report it"),
    ("invalid request body", RejectedInput, "", "a client bug; please report it"),
    ("invalid content-md5", RejectedInput, "", "a proxy altered the request body, or a client bug"),
)

_PROBE_TASK = "00000000000000000000000000"  # a ULID-shaped id no task has (check())


def classify(code: str) -> tuple[type[RemoteError], str, str]:
    """(error class, field, hint) of a service code, from CODES, else FAMILIES."""
    low = code.lower()
    if low in CODES:
        return CODES[low]
    for pattern, cls, fld, hint in FAMILIES:
        if re.search(pattern, low):
            return cls, fld, hint
    return _UNKNOWN


class SpeedPixProvider(Provider):
    id = "speedpix"
    label = "Alibaba SpeedPix"
    capabilities = Capabilities(cancel=False, queue_position=True, progress="poll", uploads=True, cost=False,
                                idempotent_submit=False, client_chosen_id=False, findable=False,
                                addressing="field", input_kinds=FILE_KINDS)  # temporary files of any type
    streams_uploads = True
    upload_ttl_s = 20 * 3600  # INFERRED: temporary files are kept about a day (no source states it)

    # ------------------------------------------------------------------ plumbing
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

    def _hint(self, field: str, hint: str) -> str:
        """A hint naming where the app_key / app_secret comes from (both for ``field`` "keys")."""
        where = getattr(self.profile, "where", None)
        names = {"app_key": ["app_key"], "app_secret": ["app_secret"], "keys": ["app_key", "app_secret"]}
        if field in names and callable(where):
            return "check " + " and ".join(where(n) for n in names[field]) + f": {hint}"
        return hint

    async def _call(self, api: str, payload: dict, *, creates: bool = False) -> dict:
        """ONE signed call (the transport retries it unless it ``creates``); returns the envelope
        (status 10 or 20) or raises what an HTTP-level refusal means."""
        path = f"/scc/{api}"
        try:
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
        except ValueError:
            raise self.error(RejectedInput, "an input value is not a finite number", field="target",
                             hint="NaN and infinity cannot be sent to SpeedPix") from None
        app_key = self.profile.require("app_key", "SpeedPix app key")
        app_secret = self.profile.require("app_secret", "SpeedPix app secret")
        extra = {"X-SP-RESOURCE-CONFIG-ID": self.resource_config_id} if api == "comfy_prompt" else {}

        def headers(sent: bytes) -> dict[str, str]:  # per attempt: a fresh nonce and timestamp
            signed = sign_request(app_key, app_secret, path, sent, now_ms=int(time.time() * 1000),
                                  nonce=str(uuid.uuid4()))
            return {**signed, "User-Agent": USER_AGENT, **extra}

        resp = await self.http.request("POST", self.base_url + path, data=body, headers=headers, creates=creates)
        if not resp.ok:
            raise self._refusal(api, resp)
        env = resp.json()
        if not isinstance(env, dict) or env.get("status") not in (10, 20):
            raise self.error(ProtocolError, f"{api}: the answer is not a SpeedPix envelope",
                             hint="the endpoint url may point at something else than SpeedPix")
        return env

    def _data(self, api: str, env: Mapping[str, Any]) -> Any:
        """``data`` of a successful envelope; the mapped service error otherwise."""
        if env.get("status") == 10 and not env.get("errCode") and not env.get("subErrCode"):
            return env.get("data")
        raise self._service_error(api, env)

    def _service_error(self, api: str, env: Mapping[str, Any]) -> RemoteError:
        code = str(env.get("subErrCode") or env.get("errCode") or "")
        msg = clean(env.get("subErrMessage") or env.get("errMessage") or "")
        cls, fld, hint = classify(code)
        remote_node, node_class = node_of(msg) if cls is RemoteFailure else ("", "")
        return self.error(cls, f"{api}: {msg or 'failed'}" + (f" ({code})" if code else ""), field=fld,
                          hint=self._hint(fld, hint), code=code or None, remote_node=remote_node,
                          node_class=node_class)

    def _refusal(self, api: str, resp: Any) -> RemoteError:
        """A non-2xx answer: the gateway's X-Ca-Error-Message, else an envelope in the body
        (INFERRED), else the shared HTTP status table."""
        gw = {k.lower(): v for k, v in resp.headers.items()}.get("x-ca-error-message", "")
        short = clean(gw.split(", Server StringToSign")[0], 160)  # the echoed string holds the app key
        for prefix, cls, fld, hint in GATEWAY:
            if gw and short.lower().startswith(prefix):
                return self.error(cls, f"{api}: the API gateway refused the call: {short} (HTTP {resp.status})",
                                  field=fld, hint=self._hint(fld, hint), code=resp.status,
                                  retry_after=resp.retry_after)
        try:
            env = json.loads(resp.body)
        except (ValueError, UnicodeDecodeError):
            env = None
        if not gw and isinstance(env, dict) and (env.get("subErrCode") or env.get("errCode")):
            return self._service_error(api, env)
        what = f"{api} ({short})" if short else api
        return self.http_error(resp, what, auth_hint=self._hint("keys", _AUTH))

    # ------------------------------------------------------------------ inputs, pre-flight, upload
    def _value(self, name: str, o: Any, uploaded: bool) -> Any:
        try:
            if o.kind == "text":
                return "" if o.value is None else str(o.value)
            if o.kind == "int":
                if isinstance(o.value, bool) or not isinstance(o.value, (int, float, str)) or (
                        isinstance(o.value, float) and not o.value.is_integer()):
                    raise ValueError
                return int(o.value)
            if o.kind == "boolean":
                return bool(o.value)
            if o.kind == "float":
                value = float(o.value) if not isinstance(o.value, bool) else float("nan")
                if not math.isfinite(value):
                    raise ValueError
                return value
        except (TypeError, ValueError, OverflowError):
            raise self.error(RejectedInput, f"input {name!r}: {o.kind} value {clean(o.value, 40)!r} is invalid",
                             field="target", hint=f"give a valid (finite) {o.kind}") from None
        if o.kind not in FILE_KINDS:
            raise self.error(RejectedInput, f"input {name!r} has kind {o.kind!r}", field="target",
                             hint="SpeedPix takes text, int, float, boolean and file (image, video, audio, other) inputs")
        if not uploaded and not_uploaded(o.value):
            return ""  # pre-flight runs before the engine uploads files
        if not isinstance(o.value, str) or not o.value:
            raise self.error(RejectedInput, f"{o.kind} for {name!r} was not uploaded", field="target",
                             hint="the engine uploads files before submit; this is a bug")
        return o.value

    def _prepare(self, spec: SubmitSpec, uploaded: bool = True) -> tuple[str, Optional[str], Optional[str], dict]:
        """Workflow reference and typed inputs, with errors naming this provider and profile."""
        try:
            wf, alias, version = parse_workflow(spec.workflow)
            inputs = {t.field: self._value(t.field, o, uploaded) for t, o in spec.targets(self.capabilities.addressing)}
        except RemoteError as e:
            raise e.with_context(provider=self.id, profile=self.name)
        return wf, alias, version, inputs

    async def validate(self, spec: SubmitSpec) -> Preflight:
        """Syntax only: the service has no call listing a workflow's published fields, so unknown
        names and wrong types are refused by ``comfy_prompt`` (before a task exists)."""
        wf, alias, version, _inputs = self._prepare(spec, uploaded=False)
        label = wf + (f"@{alias}" if alias and alias != "main" else "") + (f"#{version}" if version else "")
        return Preflight(workflow_label=label)

    async def upload(self, data: bytes, mime: str, name: str) -> str:
        """Temp-file upload: sign, PUT the bytes (a file streamed from disk) to the presigned URL, return
        ``accessUrl``."""
        api = "sp_create_temp_file_upload_sign"
        sign = self._data(api, await self._call(api, {"contentType": mime, "originalFilename": name,
                                                      "size": size_of(data)}))
        urls = [checked_url(str(sign.get(k) if isinstance(sign, dict) else ""), f"{api}: {k}")
                for k in ("uploadUrl", "accessUrl")]
        resp = await self.http.request("PUT", urls[0], data=lambda: sendable(data), headers={"Content-Type": mime},
                                       max_body=1 << 20)
        if resp.status == 403:  # the presigned URL expired or was refused: the next try signs a fresh one
            raise self.error(TransientError, f"upload of {name}: the presigned upload URL was refused (HTTP 403)",
                             field=kind_of(name, mime), code=403, hint="a fresh upload URL is asked for")
        if not resp.ok:
            raise self.http_error(resp, f"PUT upload of {name}")
        return urls[1]

    # ------------------------------------------------------------------ submit, poll, outputs
    async def submit(self, spec: SubmitSpec, key: str) -> RemoteRef:
        """``comfy_prompt``, sent ONCE. The service has no idempotency key and no lookup, so a lost
        answer, a 5xx or an undocumented/system code stays ambiguous (the engine tells the user)."""
        wf, alias, version, inputs = self._prepare(spec)
        body = {"workflow_id": wf, "alias_id": alias, "version_id": version, "inputs": inputs,
                "randomise_seeds": bool(spec.options.get("randomise_seeds", False)),
                "return_temp_files": bool(spec.options.get("return_temp_files", False))}
        data = self._data("comfy_prompt", await self._call("comfy_prompt", body, creates=True))
        task_id = data.get("taskId") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not task_id.strip():
            raise self.error(ProtocolError, "comfy_prompt: the answer has no taskId",
                             hint="the task may have been created; check the SpeedPix console before retrying")
        ref_data: dict[str, Any] = {"workflow_id": wf, "alias_id": alias, "version_id": version,
                                    "submitted_at": time.time()}
        if num(data.get("estimatedDurationInSeconds")) is not None:
            ref_data["estimated_s"] = num(data.get("estimatedDurationInSeconds"))
        return RemoteRef(remote_id=task_id.strip(), data=ref_data)

    async def poll(self, ref: RemoteRef) -> TaskUpdate:
        """``comfy_get_progress``; on an end, ``comfy_get_result`` for the outputs or the reason."""
        env = await self._call("comfy_get_progress", {"taskId": ref.remote_id})
        data = self._data("comfy_get_progress", env)
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            raise self.error(ProtocolError, "comfy_get_progress: the answer has no task status")
        upd = self.parse_progress(data)
        if upd.state is State.SUCCEEDED:
            result = await self._result(ref)
            upd.outputs = None if result is None else self.parse_outputs(result)  # None: the engine asks outputs()
        elif upd.state is State.FAILED:
            upd.error = await self._failure(ref, upd.message)
            upd.message = upd.error.detail
        return upd

    def parse_progress(self, data: Mapping[str, Any]) -> TaskUpdate:
        raw = str(data.get("status"))
        state = STATES.get(raw.lower())
        if state is None:
            raise self.error(ProtocolError, f"comfy_get_progress: unknown task status {clean(raw, 40)!r}",
                             hint="the service changed its states; please report this")
        st = data.get("state") if isinstance(data.get("state"), dict) else {}
        upd = TaskUpdate(state=state, raw_state=raw, message=clean(data.get("message"), 200) or None,
                         eta_s=num(data.get("etaRelative")))
        if state is State.QUEUED:
            upd.queue_position, upd.progress = as_int(data.get("lastQueueRemaining")), 0.0
        elif state is State.RUNNING:
            p = num(data.get("progress"))
            upd.progress = None if p is None else min(1.0, max(0.0, p))
            upd.node = clean(st.get("nodeLabel"), 80) or None
            upd.step, upd.max_steps = as_int(st.get("step")), as_int(st.get("maxSteps"))
        elif state is State.SUCCEEDED:
            upd.progress = 1.0
        return upd

    async def _result(self, ref: RemoteRef) -> Optional[dict]:
        """ONE ``comfy_get_result``: its data once succeeded, None while not there yet (INFERRED lag)."""
        data = self._data("comfy_get_result", await self._call("comfy_get_result", {"taskId": ref.remote_id}))
        if not isinstance(data, dict):
            raise self.error(ProtocolError, "comfy_get_result: the answer has no data")
        return data if STATES.get(str(data.get("status", "")).lower()) is State.SUCCEEDED else None

    async def _failure(self, ref: RemoteRef, message: Optional[str]) -> RemoteError:
        """Why a task the service reported failed: ``comfy_get_result`` answers status 20 with it."""
        env = await self._call("comfy_get_result", {"taskId": ref.remote_id})
        if env.get("status") == 10 and not env.get("errCode") and not env.get("subErrCode"):
            text = message or "the task failed"
            remote_node, node_class = node_of(text)
            return self.error(RemoteFailure, f"the remote run failed: {text}", remote_node=remote_node,
                              node_class=node_class, hint="check the workflow in the SpeedPix console")
        err = self._service_error("comfy_get_result", env)
        if str(err.code or "").lower().startswith("s_"):
            raise err  # the call failed (a system error asking to retry), not the task: asked again
        if err.retryable:  # an undocumented code is the task's reason here
            remote_node, node_class = node_of(err.detail)
            err = self.error(RemoteFailure, err.detail, code=err.code, remote_node=remote_node, node_class=node_class,
                             hint="see the message; check the workflow in the SpeedPix console")
        return err

    async def outputs(self, ref: RemoteRef) -> list[Output]:
        """The finished task's outputs from a fresh ``comfy_get_result`` (fresh URLs)."""
        result = await self._result(ref)
        if result is None:
            raise self.error(TransientError, "comfy_get_result: the result is not ready yet")
        return self.parse_outputs(result)

    def parse_outputs(self, data: Mapping[str, Any]) -> list[Output]:
        try:
            return parse_outputs(data)
        except RemoteError as e:
            raise e.with_context(provider=self.id, profile=self.name)

    async def check(self) -> str:
        """A signed ``comfy_get_progress`` for a task id nobody has: "task not found" proves the
        gateway accepted the signature."""
        try:
            self._data("comfy_get_progress", await self._call("comfy_get_progress", {"taskId": _PROBE_TASK}))
        except TaskGone:
            pass
        host = urlsplit(self.base_url).netloc
        return f"SpeedPix at {host}: signature accepted (resource pool {self.resource_config_id})"


PROVIDER = SpeedPixProvider
