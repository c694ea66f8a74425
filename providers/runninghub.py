"""RunningHub (runninghub.cn / runninghub.ai): saved workflows, AI Apps and your own API graphs.

``workflow`` is a workflow id (or a pasted ``…/post/<id>`` URL) → ``/task/openapi/create`` with a
``nodeInfoList`` from the ``NODE_ID.FIELD`` overrides; ``app:<webappId>`` → ``/task/openapi/ai-app/run``;
or an API-format graph → ``create`` with ``workflow`` = the graph (overrides baked in) on the
profile's ``base_workflow_id``. Facts: shared/providers/runninghub.md (§ numbers below).

- Create is not idempotent and RunningHub has no lookup by a client key, so ``find`` is
  NotSupported: an ambiguous create ends in the engine's AmbiguousSubmit, never a second task.
- ``poll`` = ONE ``/task/openapi/outputs`` (STATES); an 805 also asks ``/openapi/v2/query`` (best
  effort) for a content-safety code. ``push`` follows the task's ``netWssUrl`` (kept in memory only:
  it carries a signed token) for native ComfyUI frames; frames never decide the end.
- ``CODES`` maps every documented answer code to one error class, for every call.
Answer parsing lives in :mod:`.runninghub_parse`.
"""
from __future__ import annotations

import json
from typing import Any, AsyncIterator, Optional

import aiohttp

from ..engine.comfy_progress import ComfyProgress
from ..engine.websocket import SocketPolicy, frames
from . import runninghub_parse as rp
from .kinds import kind_of
from ..engine.redaction import get_logger
from .base import (AuthError, CancelResult, Capabilities, CapacityBusy, ConfigError, ContentRejected, NotFound,
                   NotSupported, Preflight, ProtocolError, Provider, QuotaError, RateLimited, RejectedInput,
                   RemoteError, RemoteRef, ServerError, State, SubmitSpec, TaskGone, TaskUpdate, TransientError,
                   apply_overrides, field_text)

log = get_logger("comfyui_remote.runninghub")

KEY = "check the key ({key}); a key belongs to one site (.cn or .ai)"
WAIT = "nothing was created; the engine waits in its local queue and sends it again"
GONE = "the task id is unknown to this key and site"
# ``code`` of the {code,msg,data} envelope (HTTP 200) of every legacy call, and v2 ``code``/``errorCode``
# (same numbers) → (error class, field, meaning, hint) [§5]. Not listed → ProtocolError; on create an
# unknown code, like 500, stays ambiguous (the engine never re-sends it).
CODES: dict[int, tuple[type[RemoteError], str, str, str]] = {
    1: (ProtocolError, "", "RunningHub refused the request", ""),
    301: (RejectedInput, "", "a parameter is missing or invalid", "check the workflow id, app id and input values"),
    380: (NotFound, "workflow", "workflow not found", "check the workflow id; a workflow belongs to one site, so "
          "the url (RUNNINGHUB_BASE_URL) must be the site it was saved on"),
    401: (AuthError, "", "the API key was refused", KEY),  # v2 upload
    412: (ConfigError, "url", "RunningHub did not recognise the API path",
          "the profile's url must be the site root, e.g. https://www.runninghub.cn"),
    415: (CapacityBusy, "", "no free machine for this exclusive key",
          WAIT + "; set use_personal_queue = true to queue on RunningHub instead"),
    416: (QuotaError, "", "insufficient balance to start the task", "top up your RunningHub wallet or coins"),
    421: (CapacityBusy, "", "the key's concurrent-task limit is reached", WAIT),
    423: (TaskGone, "", "RunningHub does not know this task", GONE),
    433: (RejectedInput, "workflow", "the workflow failed RunningHub's validation", ""),  # details: promptTips
    435: (ConfigError, "instance_type", "this 48 GB exclusive key needs the 'plus' instance",
          'set instance_type = "plus" in the profile'),
    436: (AuthError, "", "this exclusive key's membership has expired", "renew the exclusive membership"),
    500: (ServerError, "", "RunningHub internal error", "it may or may not have acted; try again later"),
    801: (AuthError, "", "free accounts cannot use the RunningHub API", "the API needs a paid membership"),
    802: (AuthError, "", "the API key is invalid, expired or disabled", KEY),
    803: (RejectedInput, "target", "the inputs do not match the workflow's nodes",
          "each target must be NODE_ID.FIELD of an existing node and a non-linked input"),
    806: (AuthError, "", "no RunningHub user has this API key", KEY),
    807: (TaskGone, "", "RunningHub does not know this task", GONE),
    808: (TransientError, "", "RunningHub's storage failed to take the upload", "retrying usually works"),
    809: (RejectedInput, "", "the file exceeds RunningHub's 30 MB limit",
          "make it smaller, or pass a public URL with RemoteInputText"),
    810: (RejectedInput, "workflow", "the workflow or app is not runnable yet",
          "open it on the RunningHub website, save it and run it once, then try again"),
    811: (AuthError, "", "the enterprise API key is invalid", KEY),
    812: (QuotaError, "", "the enterprise balance is exhausted", "top up the enterprise account"),
    814: (CapacityBusy, "", "the personal queue is full (1000 tasks)", WAIT),
    901: (NotFound, "workflow", "AI App not found", "check the id after app: (the AI App's webappId)"),
    1002: (AuthError, "", "the API key was refused", KEY),
    1003: (RateLimited, "", "the request rate limit is exceeded", WAIT),
    1004: (TaskGone, "", "the task is missing or expired", GONE),
    1008: (RejectedInput, "", "the file is too large", "make it smaller"),
    1011: (CapacityBusy, "", "RunningHub is busy", WAIT),
    1501: (ContentRejected, "workflow", "RunningHub's content check refused the task",
           "change the prompt or input image"),
    1505: (ContentRejected, "workflow", "real-person content is prohibited", "change the prompt or input image"),
    1520: (CapacityBusy, "", "the user's concurrent-task limit is reached", WAIT),  # [3P]
    1601: (ProtocolError, "", "the account request lacked the key", ""),
}
# /task/openapi/outputs → State [§3.5]. ``msg`` is read before ``code``: {"code":0,"msg":"APIKEY_TASK_IS_RUNNING",
# "data":null} means running (§5). 0 is a success only with a list (``[]`` = nothing saved); 807/423 → CODES
# (TaskGone, which the engine confirms over a window). Outputs lag execution_success: 804 until then.
STATES: dict[Any, State] = {"APIKEY_TASK_IS_QUEUED": State.QUEUED, "APIKEY_TASK_IS_RUNNING": State.RUNNING,
                            813: State.QUEUED, 804: State.RUNNING, 805: State.FAILED, 0: State.SUCCEEDED}
# the task socket is unstable by the docs' own words (§6): a few reconnects, a refused token is final
SOCKET = SocketPolicy(reconnects=4, final_codes=frozenset({401, 403}))


class RunningHubProvider(Provider):
    id = "runninghub"
    label = "RunningHub"
    capabilities = Capabilities(cancel=True, queue_position=False, progress="push", uploads=True, cost=True,
                                idempotent_submit=False, client_chosen_id=False, findable=False, addressing="node",
                                input_kinds=tuple(rp.ACCEPTS))  # image, video, audio, file (a ZIP) [§3.9]
    upload_ttl_s = 20 * 3600  # v2 upload links live one day [§3.10]

    def __init__(self, profile: Any, http: Any):
        super().__init__(profile, http)
        self._graphs: dict[str, dict] = {}  # workflow id → API graph (getJsonApiFormat)
        self._apps: dict[str, dict] = {}  # webapp id → apiCallDemo data
        self._wss: dict[str, str] = {}  # task id → netWssUrl (a signed token: memory only)
        self._followed: dict[str, str] = {}  # task id → the netWssUrl already followed to its end

    # ------------------------------------------------------------------ plumbing
    @property
    def base(self) -> str:
        url = (getattr(self.profile, "url", None) or "").rstrip("/")
        if not url:
            raise self.error(ConfigError, "no RunningHub site URL", field="url",
                             hint="set RUNNINGHUB_BASE_URL (https://www.runninghub.cn or https://www.runninghub.ai)")
        return url

    def _key(self) -> str:
        return self.profile.require("api_key", "RunningHub API key")

    def _where_key(self) -> str:
        return self.profile.where("api_key")

    def code_error(self, code: Any, msg: Any, data: Any = None) -> RemoteError:
        """The error a documented answer code means (CODES); the code and msg are shown."""
        n = rp.as_int(code)
        text = rp.short(msg, 120) if msg not in (None, "") else ""
        if n == 433:
            return rp.validation_error(self, n, text, data)
        cls, field, meaning, hint = CODES.get(n if n is not None else -1, (
            ProtocolError, "", "unexpected answer code", "see RunningHub's error-code reference"))
        return self.error(cls, f"{meaning} ({code} {text})".replace(" )", ")"), code=n if n is not None else code,
                          field=field, hint=hint.format(key=self._where_key()))

    def _read(self, resp: Any, what: str) -> dict:
        if not resp.ok:
            raise self.http_error(resp, what, auth_hint=KEY.format(key=self._where_key()))
        out = resp.json()
        if not isinstance(out, dict):
            raise self.error(ProtocolError, f"{what}: the answer is not a JSON object")
        return out

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        """One non-creating call (the transport retries it); its ``data`` when ``code`` is 0."""
        out = self._read(await self.http.request(method, self.base + path, **kw), f"{method} {path}")
        if rp.as_int(out.get("code")) != 0:
            raise self.code_error(out.get("code"), out.get("msg") or out.get("message"), out.get("data"))
        return out.get("data")

    def console_url(self, task_id: str) -> str:
        """[OPENAPI] links tasks to …/call-api/call-record-detail/<taskId> (the same path on .ai: INFERRED)."""
        return f"{self.base}/call-api/call-record-detail/{task_id}"

    # ------------------------------------------------------------------ workflow graphs, app fields
    async def _workflow_graph(self, wid: str) -> dict:
        if wid not in self._graphs:
            data = await self._call("POST", "/api/openapi/getJsonApiFormat", json={"apiKey": self._key(),
                                                                                   "workflowId": wid})
            graph = rp.json_value(data.get("prompt")) if isinstance(data, dict) else None
            if not isinstance(graph, dict):
                raise self.error(ProtocolError, "getJsonApiFormat answered without a readable graph")
            self._graphs[wid] = graph
        return self._graphs[wid]

    async def _app_info(self, app_id: str) -> dict:
        if app_id not in self._apps:
            data = await self._call("GET", "/api/webapp/apiCallDemo", params={"apiKey": self._key(), "webappId": app_id})
            self._apps[app_id] = data if isinstance(data, dict) else {}
        return self._apps[app_id]

    async def _names(self, ref: RemoteRef) -> tuple[dict[str, str], bool]:
        """Node classes for labels, and whether they are the whole graph (progress needs a node count;
        an AI App publishes only its editable fields). Best effort: progress works without them."""
        data = ref.data or {}
        try:
            if isinstance(data.get("nodes"), dict):
                return {str(k): str(v) for k, v in data["nodes"].items()}, True
            if data.get("workflow_id"):
                return rp.classes(await self._workflow_graph(str(data["workflow_id"]))), True
            if data.get("webapp_id"):
                info = await self._app_info(str(data["webapp_id"]))
                return {str(f.get("nodeId")): str(f.get("nodeName") or "") for f in info.get("nodeInfoList") or []
                        if isinstance(f, dict)}, False
        except RemoteError as e:
            log.info("runninghub/%s: node names unavailable (%s)", self.name, e.detail)
        return {}, False

    # ------------------------------------------------------------------ pre-flight
    async def validate(self, spec: SubmitSpec) -> Preflight:
        wf = rp.parse_workflow(self, spec.workflow)
        targets = spec.targets("node")
        for tgt, o in targets:
            rp.check_file(self, tgt, o)
        if wf.kind == "graph":
            apply_overrides(wf.graph or {}, spec, provider=self.id, profile=self.name)
            return Preflight(workflow_label=f"own graph ({len(wf.graph or {})} nodes) on workflow {wf.id}")
        if wf.kind == "workflow":
            graph = await self._workflow_graph(wf.id)
            for tgt, _ in targets:
                rp.check_target(self, tgt, graph)
            return Preflight(workflow_label=f"workflow {wf.id}")
        info = await self._app_info(wf.id)
        rp.check_app_targets(self, info, targets)
        name = info.get("webappName")
        return Preflight(workflow_label=f"app {rp.short(name, 40)}" if name else f"app {wf.id}")

    # ------------------------------------------------------------------ upload
    async def upload(self, data: bytes, mime: str, name: str) -> Any:
        """v2 ``media/upload/binary`` (Bearer); the legacy ``/task/openapi/upload`` only where the v2
        route does not exist. The ``fileName`` answered is the field value [§3.9, §3.10]."""
        if len(data) > rp.MAX_UPLOAD:
            raise self.error(RejectedInput, f"file {name} is {len(data) / 2**20:.1f} MB; RunningHub accepts at most "
                             "30 MB", field=kind_of(name, mime), hint="make it smaller, or pass a public URL")
        key = self._key()

        def form(**fields: str) -> aiohttp.FormData:
            fd = aiohttp.FormData()
            for k, v in fields.items():
                fd.add_field(k, v)
            fd.add_field("file", data, filename=name, content_type=mime or "application/octet-stream")
            return fd

        path = "/openapi/v2/media/upload/binary"
        resp = await self.http.request("POST", self.base + path, data=form, headers={"Authorization": f"Bearer {key}"})
        if resp.status in (404, 405):  # a site without the v2 route
            path = "/task/openapi/upload"
            resp = await self.http.request("POST", self.base + path, data=lambda: form(apiKey=key, fileType="input"))
        out = self._read(resp, f"POST {path}")
        info = out.get("data") if isinstance(out.get("data"), dict) else {}
        value = info.get("fileName") or info.get("filename")  # envelope drift [§3.10]
        if rp.as_int(out.get("code")) in (0, 200) and isinstance(value, str) and value:
            return value
        if rp.as_int(out.get("code")) in (0, 200):
            raise self.error(ProtocolError, f"POST {path} answered without a fileName")
        raise self.code_error(out.get("code"), out.get("message") or out.get("msg"))

    # ------------------------------------------------------------------ submit, find
    def _options(self, body: dict) -> None:
        inst = str(self.profile.get("instance_type") or "").strip()
        if inst not in ("", "default", "plus"):
            raise self.error(ConfigError, f"instance_type {inst!r} is not 'default' or 'plus'", field="instance_type",
                             hint="default = 24 GB, plus = 48 GB")
        if inst:
            body["instanceType"] = inst
        try:
            queue = rp.as_bool(self.profile.get("use_personal_queue"))
        except ValueError:
            raise self.error(ConfigError, "use_personal_queue must be true or false", field="use_personal_queue") from None
        if queue is not None:
            body["usePersonalQueue"] = queue

    def _create(self, spec: SubmitSpec) -> tuple[str, dict, dict]:
        """(path, body, ref data) of the create for ``spec``."""
        wf = rp.parse_workflow(self, spec.workflow)
        body: dict[str, Any] = {"apiKey": self._key()}
        node_info = [{"nodeId": t.node, "fieldName": t.field, "fieldValue": field_text(o)}
                     for t, o in spec.targets("node")]  # the server coerces strings [§4]
        if wf.kind == "graph":
            graph = apply_overrides(wf.graph or {}, spec, provider=self.id, profile=self.name)
            body.update(workflowId=wf.id, workflow=json.dumps(graph, ensure_ascii=False), nodeInfoList=[])
            path, data = "/task/openapi/create", {"workflow_id": wf.id, "nodes": rp.classes(graph)}
        elif wf.kind == "workflow":
            body.update(workflowId=wf.id, nodeInfoList=node_info)
            path, data = "/task/openapi/create", {"workflow_id": wf.id}
        else:
            body.update(webappId=int(wf.id), nodeInfoList=node_info)  # int64 in the schema [§3.2]
            path, data = "/task/openapi/ai-app/run", {"webapp_id": wf.id}
        self._options(body)
        return path, body, data

    async def submit(self, spec: SubmitSpec, key: str) -> RemoteRef:
        path, body, data = self._create(spec)
        resp = await self.http.request("POST", self.base + path, json=body, creates=True)
        out = self._read(resp, f"POST {path}")
        if rp.as_int(out.get("code")) != 0:
            raise self.code_error(out.get("code"), out.get("msg"), out.get("data"))
        res = out.get("data") if isinstance(out.get("data"), dict) else {}
        tid = res.get("taskId")
        if isinstance(tid, bool) or not isinstance(tid, (str, int)) or not str(tid).strip():
            raise self.error(ProtocolError, f"POST {path} answered success without a taskId")
        tid = str(tid).strip()  # 19 digits: never a float
        if isinstance(res.get("netWssUrl"), str) and res["netWssUrl"]:
            self._wss[tid] = res["netWssUrl"]
        return RemoteRef(tid, data, self.console_url(tid))

    async def find(self, key: str, spec: SubmitSpec) -> Optional[RemoteRef]:
        raise self.error(NotSupported, "RunningHub has no lookup by a client key and no task listing, so a lost "
                         "create cannot be told apart from one never received")

    # ------------------------------------------------------------------ poll
    async def poll(self, ref: RemoteRef) -> TaskUpdate:
        tid = ref.remote_id
        resp = await self.http.request("POST", self.base + "/task/openapi/outputs",
                                       json={"apiKey": self._key(), "taskId": tid})
        out = self._read(resp, "POST /task/openapi/outputs")
        code, msg, data = rp.as_int(out.get("code")), str(out.get("msg") or ""), out.get("data")
        state = STATES.get(msg.strip().upper()) or STATES.get(code)
        raw = f"{out.get('code')} {msg}".strip()
        if state is None:
            err = self.code_error(out.get("code"), msg, data)
            if isinstance(err, TaskGone):
                self._forget(tid)
            raise err
        if state is State.QUEUED:
            return TaskUpdate(State.QUEUED, raw_state=raw, message="queued on RunningHub (it publishes no position)")
        if state is State.RUNNING:
            wss = data.get("netWssUrl") if isinstance(data, dict) else None
            if isinstance(wss, str) and wss:
                self._wss[tid] = wss
            return TaskUpdate(State.RUNNING, raw_state=raw, message="running on RunningHub")
        if state is State.SUCCEEDED and not isinstance(data, list):
            raise self.error(ProtocolError, f"outputs answered {raw} without a file list")
        self._forget(tid)
        if state is State.SUCCEEDED:
            return rp.succeeded(data, raw)
        reason = rp.reason_of(data)
        if ref.data.get("cancel_requested") or rp.interrupted(reason):
            return TaskUpdate(State.CANCELLED, raw_state=raw, message="cancelled on RunningHub")
        err = await self._content_refusal(tid) or rp.failure(self, reason)
        return TaskUpdate(State.FAILED, raw_state=raw, error=err, message=str(err))

    def _forget(self, tid: str) -> None:
        self._wss.pop(tid, None)
        self._followed.pop(tid, None)

    async def _content_refusal(self, tid: str) -> Optional[RemoteError]:
        """Best effort, ONE try: the v2 query of a failed task carries errorCode 1501/1505 for a
        content-safety refusal [§3.12, CLAW]; legacy outputs do not say it."""
        try:
            resp = await self.http.request("POST", self.base + "/openapi/v2/query", json={"taskId": tid},
                                           headers={"Authorization": f"Bearer {self._key()}"}, retry=False)
            out = self._read(resp, "POST /openapi/v2/query")
        except RemoteError:
            return None
        code = rp.as_int(out.get("errorCode"))
        if code is not None and code in CODES and issubclass(CODES[code][0], ContentRejected):
            return self.code_error(code, out.get("errorMessage"))
        return None

    # ------------------------------------------------------------------ push
    def push(self, ref: RemoteRef) -> Optional[AsyncIterator[TaskUpdate]]:
        url = self._wss.get(ref.remote_id)
        if not url or self._followed.get(ref.remote_id) == url:
            return None  # no socket yet (queued, or a restart before the next 804), or this one is done
        return self._follow(ref, url)

    async def _follow(self, ref: RemoteRef, url: str) -> AsyncIterator[TaskUpdate]:
        tid = ref.remote_id
        try:
            names, whole = await self._names(ref)
            prog = ComfyProgress(names)
            async for fr in frames(self.http, url, policy=SOCKET):
                if fr.kind != "json" or not prog.feed(fr.data):
                    continue  # binary previews, status frames
                if prog.ended is not None:  # a hint only: the engine asks outputs now
                    yield TaskUpdate(State.SUCCEEDED if prog.ended == "success" else State.FAILED,
                                     raw_state=f"socket: {prog.ended}")
                    return
                upd = prog.update("running (live)")
                if not whole:
                    upd.progress = None  # no node count for an AI App: steps only
                yield upd
        finally:
            if tid in self._wss:
                self._followed[tid] = url

    # ------------------------------------------------------------------ cancel, check
    async def cancel(self, ref: RemoteRef) -> CancelResult:
        """``/task/openapi/cancel`` answers 0 for a finished task too (INFERRED, §3.6), so a cancel
        that came too late is told by the next poll, which still reports the success."""
        await self._call("POST", "/task/openapi/cancel", json={"apiKey": self._key(), "taskId": ref.remote_id})
        return CancelResult.REQUESTED

    async def check(self) -> str:
        acct = await self._call("POST", "/uc/openapi/accountStatus", json={"apikey": self._key()})  # lower case [§3.8]
        acct = acct if isinstance(acct, dict) else {}
        parts = [f"RunningHub OK ({acct.get('apiType') or 'key'})"]
        if acct.get("remainCoins") not in (None, ""):
            parts.append(f"{acct['remainCoins']} coins")
        if acct.get("remainMoney") not in (None, ""):
            parts.append(f"balance {acct['remainMoney']} {acct.get('currency') or ''}".strip())
        parts.append(f"{acct.get('currentTaskCounts', '0')} task(s) running or queued")
        return ", ".join(parts)


PROVIDER = RunningHubProvider
