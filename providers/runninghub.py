"""RunningHub (runninghub.cn / runninghub.ai): saved workflows, AI Apps and your own API graphs.

``workflow`` is one of
- a workflow id (19 digits; a pasted ``…/post/<id>`` URL also works) → ``/task/openapi/create``
  with ``nodeInfoList`` built from the overrides (``NODE_ID.FIELD`` targets);
- ``app:<webappId>`` → ``/task/openapi/ai-app/run`` (targets are the app's editable fields);
- an API-format graph (JSON) → ``create`` with ``workflow`` = the graph (overrides baked in) on the
  profile's ``base_workflow_id`` (RUNNINGHUB_BASE_WORKFLOW_ID), ``nodeInfoList: []``.

Images go up through ``/openapi/v2/media/upload/binary`` (Bearer) and fall back to the legacy
``/task/openapi/upload`` when the v2 route is missing or broken; the returned ``fileName`` is the
field value. Files over 30 MB are refused before any upload starts.

Watching: HTTP ``/task/openapi/outputs`` is the source of truth (polled every
``poll_interval()``); once the task runs, its ``netWssUrl`` (from create or the 804 answer) is
followed for native ComfyUI frames (current node, steps, cached nodes), reconnecting a bounded
number of times. Node ids are named from ``getJsonApiFormat`` (workflows), the graph itself (own
graphs) or ``apiCallDemo`` (apps). The socket never decides success or failure.

Create is not idempotent. Before each create the key's ``currentTaskCounts`` is noted; after an
ambiguous create ``find()`` compares it again (see :meth:`RunningHubProvider.find`).

Status and error codes (``code`` of the ``{code,msg,data}`` envelope, HTTP 200) → what we do:

====== ======================================== ============================== ======================
code   identifier                               where                          State / error class
====== ======================================== ============================== ======================
0      success + list                           outputs                        SUCCEEDED (outputs)
0      success + ``[]``                         outputs                        SUCCEEDED, no files
0      ``APIKEY_TASK_IS_RUNNING`` / ``QUEUED``  outputs (variant, §5)          RUNNING / QUEUED
0      success + ``null``                       outputs (unknown variant)      asks ``/status``
813    APIKEY_TASK_IS_QUEUED                    outputs                        QUEUED
804    APIKEY_TASK_IS_RUNNING                   outputs (+ ``netWssUrl``)      RUNNING
805    APIKEY_TASK_STATUS_ERROR + failedReason  outputs                        FAILED: RemoteFailure naming
                                                                               node id + class; CANCELLED
                                                                               when we cancelled it;
                                                                               ContentRejected when v2
                                                                               query says 1501/1505
807    APIKEY_TASK_NOT_FOUND                    outputs, cancel                3× on outputs → FAILED
                                                                               NotFound; cancel: NotFound
423    TASK_NOT_FOUNED                          any                            NotFound
1      misc ("webhook event not exists")        any                            ProtocolError
301    PARAMS_INVALID                           any                            RejectedInput
380    WORKFLOW_NOT_EXISTS                      create, getJsonApiFormat       NotFound (field workflow)
412    TOKEN_INVALID (path misspelled)          any                            ConfigError (url)
415    TASK_INSTANCE_MAXED                      create                         CapacityBusy
416    …NOT_ENOUGH_WALLET                       create                         QuotaError
421    TASK_QUEUE_MAXED                         create                         CapacityBusy
433    VALIDATE_PROMPT_FAILED                   create                         RejectedInput naming nodes
435    EXCLAPI_INSTANCE_NOT_FOUND               create                         ConfigError (instance_type)
436    TASK_USER_EXCLAPI_REQUIRED               create                         AuthError
500    UNKNOWN_ERROR                            create → AmbiguousSubmit; else TransientError
801    APIKEY_UNSUPPORTED_FREE_USER             any                            AuthError
802    APIKEY_UNAUTHORIZED                      any                            AuthError
803    APIKEY_INVALID_NODE_INFO                 create                         RejectedInput (target)
806    APIKEY_USER_NOT_FOUND                    accountStatus                  AuthError
808    APIKEY_UPLOAD_FAILED                     upload                         TransientError
809    APIKEY_FILE_SIZE_EXCEEDED                upload                         RejectedInput (image)
810    WORKFLOW_NOT_SAVED_OR_NOT_RUNNING        create                         RejectedInput (workflow)
811    CORPAPIKEY_INVALID                       any                            AuthError
812    CORPAPIKEY_INSUFFICIENT_FUNDS            create                         QuotaError
814    PERSONAL_QUEUE_COUNT_LIMIT               create                         CapacityBusy
901    WEBAPP_NOT_EXISTS                        ai-app/run, apiCallDemo        NotFound (field workflow)
1601   param apiKey is required                 accountStatus                  ProtocolError
v2 401 / "1002"                                 v2 upload                      AuthError
v2 "1501" / "1505"                              v2 query of a failed task      ContentRejected
other                                           any                            ProtocolError (code shown)
====== ======================================== ============================== ======================

HTTP level (engine.transfer): 429/5xx retried, except 5xx or a lost answer on create →
AmbiguousSubmit; 401/403 → AuthError; 404 → ConfigError (check url); non-JSON → ProtocolError.
"""
from __future__ import annotations

import asyncio
import json
import logging
import mimetypes
import re
from dataclasses import dataclass
from typing import Any, AsyncIterator, Optional
from urllib.parse import urlsplit

import aiohttp

from .base import (AmbiguousSubmit, AuthError, Capabilities, CapacityBusy, ConfigError, ContentRejected, NotFound,
                   NotSupported, Output, Preflight, ProtocolError, Provider, QuotaError, RejectedInput, RemoteError,
                   RemoteFailure, RemoteRef, State, SubmitSpec, TaskUpdate, TransientError, apply_overrides,
                   parse_api_graph)

log = logging.getLogger("comfyui_remote.runninghub")

MiB = 1024 * 1024
MAX_UPLOAD = 30 * MiB  # per file [DOC upload, code 809]
FIND_WINDOW_S = 10.0  # INFERRED: a created task stays counted (queued/running) at least this long
MAX_POLL_FAILURES = 3  # consecutive failed polls inside one watch() before it gives up to the engine
NOT_FOUND_POLLS = 3  # INFERRED: 807 just after create may be a race; three in a row is final
FAST_POLL_S = 0.25  # outputs lag execution_success by a few seconds [SEED]
WS_RECONNECTS = 4
WS_RESTARTS = 3
MAX_TEXT = 300

IMAGE_TYPES = {"png", "jpg", "jpeg", "webp", "gif", "bmp"}
VIDEO_TYPES = {"mp4", "webm", "mov", "avi", "mkv"}
AUDIO_TYPES = {"wav", "mp3", "flac", "ogg"}
TEXT_TYPES = {"txt"}
_ID_RE = re.compile(r"^\d{1,25}$")
_URL_ID_RE = re.compile(r"runninghub\.(?:cn|ai)/(?:post|workflow)/(\d{6,25})")


def _short(text: Any, n: int = MAX_TEXT) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _num(value: Any) -> Optional[float]:
    """Numbers arrive as strings, numbers or null [facts §2]."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
        and abs(value) < 1e15


def _as_bool(value: Any) -> Optional[bool]:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


@dataclass
class _Workflow:
    kind: str  # workflow | app | graph
    id: str  # workflow id, webapp id, or the base workflow id for a graph
    graph: Optional[dict] = None


@dataclass
class _Poll:
    state: State
    raw: str
    wss: Optional[str] = None
    items: Optional[list] = None
    reason: Any = None
    not_found: bool = False


class _Progress:
    """Native ComfyUI frames → completed nodes, current node, steps (the [SEED] progress maths:
    overall = completed nodes / node count, plus the current node's value/max)."""

    def __init__(self, names: dict[str, str], total: Optional[int]):
        self.names = names
        self.total = total
        self.done: set[str] = set()
        self.current: Optional[str] = None
        self.value = 0
        self.max = 0
        self.finished = False
        self.error: Optional[dict] = None
        self.interrupted = False

    def label(self, nid: Optional[str]) -> Optional[str]:
        if nid is None:
            return None
        cls = self.names.get(nid)
        return f"{cls} #{nid}" if cls else f"node {nid}"

    def feed(self, frame: Any) -> bool:
        if not isinstance(frame, dict):
            return False
        kind = frame.get("type")
        data = frame.get("data") if isinstance(frame.get("data"), dict) else {}
        if kind == "execution_cached":
            nodes = data.get("nodes")
            if isinstance(nodes, list):
                self.done.update(str(n) for n in nodes if n is not None)
        elif kind == "executing":
            node = data.get("node")
            if self.current is not None:
                self.done.add(self.current)
            self.current = str(node) if node is not None else None
            self.value = self.max = 0
        elif kind == "progress":
            node = data.get("node")
            if node is not None and str(node) != self.current:
                self.current = str(node)
            value, mx = data.get("value"), data.get("max")
            if _finite(value) and _finite(mx) and mx > 0:
                self.value, self.max = max(0, min(int(value), int(mx))), int(mx)
        elif kind == "progress_state":
            nodes = data.get("nodes") if isinstance(data.get("nodes"), dict) else {}
            for nid, st in nodes.items():
                if isinstance(st, dict) and st.get("state") == "finished":
                    self.done.add(str(nid))
                elif isinstance(st, dict) and st.get("state") == "running":
                    self.current = str(nid)
                    if _finite(st.get("value")) and _finite(st.get("max")) and st["max"] > 0:
                        self.value, self.max = max(0, min(int(st["value"]), int(st["max"]))), int(st["max"])
        elif kind == "executed":
            if data.get("node") is not None:
                self.done.add(str(data["node"]))
        elif kind == "execution_success":
            self.finished = True
            if self.current is not None:
                self.done.add(self.current)
            self.current = None
            self.value = self.max = 0
        elif kind == "execution_error":
            self.error = data
        elif kind == "execution_interrupted":
            self.interrupted = True
        else:
            return False  # status, execution_start and unknown frames change nothing shown
        return True

    def fraction(self) -> Optional[float]:
        if not self.total:
            return None
        done = len(self.done & set(self.names)) if self.names else len(self.done)
        part = self.value / self.max if self.max and self.current not in self.done else 0.0
        return max(0.0, min(0.99, (done + part) / self.total))  # 100 % only when the files are there


class RunningHubProvider(Provider):
    id = "runninghub"
    label = "RunningHub"
    capabilities = Capabilities(cancel=True, queue_position=False, progress="push", uploads=True, cost=True,
                                idempotent_submit=False, client_chosen_id=False, findable=False, addressing="node")

    def __init__(self, profile: Any, http: Any):
        super().__init__(profile, http)
        self._graphs: dict[str, dict] = {}  # workflow id → API graph (getJsonApiFormat)
        self._apps: dict[str, dict] = {}  # webapp id → apiCallDemo data
        self._wss: dict[str, str] = {}  # task id → netWssUrl (a signed token: memory only)
        self._cancelled: set[str] = set()
        self._stash: dict[str, dict] = {}  # submission key → account snapshot before create
        self._epoch = 0  # bumps whenever our own task count changes (create, end, cancel)
        self._creates_started = 0

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
        try:
            return self.profile.where("api_key")
        except Exception:  # a minimal profile object in a test
            return "RUNNINGHUB_API_KEY"

    async def _call(self, method: str, path: str, *, body: Any = None, params: Optional[dict] = None,
                    data: Any = None, headers: Optional[dict] = None, idempotent: bool = True,
                    timeout_s: Optional[float] = None) -> dict:
        resp = await self.http.request(method, self.base + path, json=body, params=params, data=data,
                                       headers=headers, idempotent=idempotent, timeout_s=timeout_s)
        if resp.status in (401, 403):
            raise self.error(AuthError, f"{path}: HTTP {resp.status}", code=resp.status,
                             hint=f"check the key ({self._where_key()})")
        if resp.status == 404:
            raise self.error(ConfigError, f"{path}: HTTP 404 (no such endpoint)", code=404, field="url",
                             hint="the profile's url must be the RunningHub site root, e.g. https://www.runninghub.cn")
        if resp.status >= 400:
            raise self.error(ProtocolError, f"{path}: unexpected HTTP {resp.status}", code=resp.status)
        out = resp.json()
        if not isinstance(out, dict):
            raise self.error(ProtocolError, f"{path}: answer is not a JSON object")
        return out

    def _code_error(self, code: Any, msg: Any, data: Any = None, *, where: str = "") -> RemoteError:
        """The documented error codes → one error each (see the module table)."""
        m = _short(msg, 120) if msg not in (None, "") else ""
        tag = f"{code} {m}".strip()
        key_hint = f"check the key ({self._where_key()}); keys belong to one site (.cn or .ai)"
        E = self.error
        if code == 802:
            return E(AuthError, f"the API key is invalid, expired or disabled ({tag})", code=code, hint=key_hint)
        if code == 806:
            return E(AuthError, f"no RunningHub user has this API key ({tag})", code=code, hint=key_hint)
        if code == 801:
            return E(AuthError, f"free accounts cannot use the RunningHub API ({tag})", code=code,
                     hint="the API needs a paid membership")
        if code == 811:
            return E(AuthError, f"the enterprise API key is invalid ({tag})", code=code, hint=key_hint)
        if code == 436:
            return E(AuthError, f"this exclusive key's membership has expired ({tag})", code=code,
                     hint="renew the exclusive membership on RunningHub")
        if code == 416:
            return E(QuotaError, f"insufficient balance to start the task ({tag})", code=code,
                     hint="top up your RunningHub wallet or coins")
        if code == 812:
            return E(QuotaError, f"the enterprise balance is exhausted ({tag})", code=code,
                     hint="top up the enterprise account")
        if code in (421, 415, 814):
            what = {421: "the key's concurrent-task limit is reached",
                    415: "no free machine for this exclusive key",
                    814: "the personal queue is full (1000 tasks)"}[code]
            hint = ("waiting in the local queue and retrying"
                    + ("; set use_personal_queue = true to queue on RunningHub instead" if code == 415 else ""))
            return E(CapacityBusy, f"{what} ({tag}); nothing was created", code=code, hint=hint)
        if code == 380:
            return E(NotFound, f"workflow not found ({tag})", code=code, field="workflow",
                     hint="check the workflow id; a workflow belongs to one site, so the url (RUNNINGHUB_BASE_URL) "
                          "must be the site it was saved on")
        if code == 901:
            return E(NotFound, f"AI App not found ({tag})", code=code, field="workflow",
                     hint="check the id after app: (the webappId of the AI App)")
        if code == 810:
            return E(RejectedInput, f"the workflow or app is not runnable yet ({tag})", code=code, field="workflow",
                     hint="open it on the RunningHub website, save it and run it once, then try again")
        if code == 803:
            return E(RejectedInput, f"the inputs do not match the workflow's nodes ({tag})", code=code, field="target",
                     hint="each target must be NODE_ID.FIELD of an existing node and a non-linked input")
        if code == 433:
            return self._validation_error(code, m, data)
        if code == 435:
            return E(ConfigError, f"this 48 GB exclusive key needs the 'plus' instance ({tag})", code=code,
                     field="instance_type", hint="set instance_type = \"plus\" in the profile")
        if code == 301:
            return E(RejectedInput, f"RunningHub refused a parameter ({tag})", code=code,
                     hint="check the workflow id, the app id and the input values")
        if code == 412:
            return E(ConfigError, f"RunningHub did not recognise the API path ({tag})", code=code, field="url",
                     hint="the profile's url must be the site root, e.g. https://www.runninghub.cn")
        if code in (807, 423):
            return E(NotFound, f"task not found ({tag})", code=code,
                     hint="the task id is unknown to this key and site")
        if code == 808:
            return E(TransientError, f"RunningHub's storage failed to take the upload ({tag})", code=code,
                     hint="retrying later usually works")
        if code == 809:
            return E(RejectedInput, f"the file exceeds RunningHub's 30 MB limit ({tag})", code=code, field="image",
                     hint="downscale it, or pass a public URL with RemoteInputText")
        if code == 500:
            return E(TransientError, f"RunningHub internal error ({tag})", code=code, hint="try again later")
        if code == 1601:
            return E(ProtocolError, f"the account request lacked the key ({tag})", code=code)
        return E(ProtocolError, f"{where + ': ' if where else ''}unexpected answer code {tag}", code=code,
                 hint="see the RunningHub error-code reference")

    def _validation_error(self, code: int, msg: str, data: Any) -> RemoteError:
        tips: Any = data.get("promptTips") if isinstance(data, dict) else None
        if isinstance(tips, str):
            try:
                tips = json.loads(tips)
            except ValueError:
                tips = None
        lines, first, first_cls = [], "", ""
        if isinstance(tips, dict):
            for nid, err in list((tips.get("node_errors") or {}).items())[:5]:
                cls = err.get("class_type", "") if isinstance(err, dict) else ""
                for e in (err.get("errors") or [])[:1] if isinstance(err, dict) else []:
                    lines.append(f"{cls}#{nid}: {_short(e.get('message', ''), 80)} ({_short(e.get('details', ''), 120)})")
                first, first_cls = first or str(nid), first_cls or cls
            if not lines and isinstance(tips.get("error"), dict):
                lines.append(_short(tips["error"].get("message", ""), 160))
        detail = "the workflow failed RunningHub's validation (433 VALIDATE_PROMPT_FAILED)"
        if lines:
            detail += ": " + "; ".join(lines)
        elif msg and msg != "VALIDATE_PROMPT_FAILED":
            detail += f": {msg}"
        return self.error(RejectedInput, detail, code=code, field="workflow", remote_node=first, node_class=first_cls,
                          hint="fix the named node's value (a missing model or file) or the input you override")

    # ------------------------------------------------------------------ workflow text
    def _parse_workflow(self, text: str) -> _Workflow:
        raw = (text or "").strip()
        if not raw:
            raise self.error(RejectedInput, "the workflow is empty", field="workflow",
                             hint="give a workflow id, app:<webappId> or an API-format graph (JSON)")
        if raw.startswith("{"):
            graph = parse_api_graph(raw, provider=self.id, profile=self.name)
            base = str(self.profile.get("base_workflow_id") or "").strip()
            if not base:
                raise self.error(ConfigError, "running your own graph needs a base workflow id",
                                 field="base_workflow_id",
                                 hint="set RUNNINGHUB_BASE_WORKFLOW_ID (or base_workflow_id in this profile's table of "
                                      "profiles.toml) to any workflow id of yours that has run once on RunningHub")
            if not _ID_RE.match(base):
                raise self.error(ConfigError, f"base_workflow_id {base!r} is not a workflow id", field="base_workflow_id",
                                 hint="RUNNINGHUB_BASE_WORKFLOW_ID must be the digits of a workflow id")
            return _Workflow("graph", base, graph)
        if raw.lower().startswith("app:"):
            wid = raw[4:].strip()
            if not _ID_RE.match(wid):
                raise self.error(RejectedInput, f"{raw!r} is not app:<webappId>", field="workflow",
                                 hint="the webappId is the number in the AI App's address, e.g. app:1937084629516193794")
            return _Workflow("app", wid)
        if _ID_RE.match(raw):
            return _Workflow("workflow", raw)
        m = _URL_ID_RE.search(raw)
        if m:
            return _Workflow("workflow", m.group(1))
        raise self.error(RejectedInput, f"workflow {_short(raw, 60)!r} is not a RunningHub workflow id", field="workflow",
                         hint="give the digits of a workflow id (…/post/<id>), app:<webappId>, or an API-format graph")

    async def _workflow_graph(self, wid: str) -> dict:
        if wid in self._graphs:
            return self._graphs[wid]
        out = await self._call("POST", "/api/openapi/getJsonApiFormat", body={"apiKey": self._key(), "workflowId": wid})
        if out.get("code") != 0:
            raise self._code_error(out.get("code"), out.get("msg"), out.get("data"), where="getJsonApiFormat")
        prompt = (out.get("data") or {}).get("prompt") if isinstance(out.get("data"), dict) else None
        try:
            graph = json.loads(prompt) if isinstance(prompt, str) else prompt
        except ValueError:
            graph = None
        if not isinstance(graph, dict):
            raise self.error(ProtocolError, "getJsonApiFormat answered without a readable graph")
        self._graphs[wid] = graph
        return graph

    async def _app_info(self, app_id: str) -> dict:
        if app_id in self._apps:
            return self._apps[app_id]
        out = await self._call("GET", "/api/webapp/apiCallDemo", params={"apiKey": self._key(), "webappId": app_id})
        if out.get("code") != 0:
            raise self._code_error(out.get("code"), out.get("msg"), out.get("data"), where="apiCallDemo")
        data = out.get("data") if isinstance(out.get("data"), dict) else {}
        self._apps[app_id] = data
        return data

    # ------------------------------------------------------------------ pre-flight
    async def validate(self, spec: SubmitSpec) -> Preflight:
        wf = self._parse_workflow(spec.workflow)
        targets = spec.targets("node")
        for tgt, o in targets:
            if o.kind == "image" and isinstance(o.value, (bytes, bytearray)) and len(o.value) > MAX_UPLOAD:
                raise self.error(RejectedInput, f"image for {tgt.raw} is {len(o.value) / MiB:.1f} MB; RunningHub "
                                 "accepts at most 30 MB per file", field="image",
                                 hint="downscale it, or pass a public URL with RemoteInputText")
        if wf.kind == "graph":
            apply_overrides(wf.graph or {}, spec, provider=self.id, profile=self.name)
            return Preflight(workflow_label=f"own graph ({len(wf.graph or {})} nodes) on workflow {wf.id}")
        if wf.kind == "workflow":
            graph = await self._workflow_graph(wf.id)
            for tgt, _ in targets:
                self._check_target(tgt, graph)
            return Preflight(workflow_label=f"workflow {wf.id}")
        info = await self._app_info(wf.id)
        fields = [f for f in info.get("nodeInfoList") or [] if isinstance(f, dict)]
        have = {(str(f.get("nodeId")), str(f.get("fieldName"))) for f in fields}
        listed = ", ".join(f"{f.get('nodeId')}.{f.get('fieldName')}" for f in fields[:20])
        for tgt, _ in targets:
            if not fields:
                raise self.error(RejectedInput, f"target {tgt.raw}: the AI App lists no editable fields",
                                 field="target", hint="run the app once on the RunningHub website; it then "
                                 "publishes its fields")
            if (tgt.node, tgt.field) not in have:
                raise self.error(RejectedInput, f"target {tgt.raw} is not an editable field of this AI App",
                                 field="target", hint=f"its fields are: {listed}")
        name = info.get("webappName")
        return Preflight(workflow_label=f"app {_short(name, 40)}" if name else f"app {wf.id}")

    def _check_target(self, tgt: Any, graph: dict) -> None:
        node = graph.get(tgt.node)
        if not isinstance(node, dict):
            ids = ", ".join(sorted(graph, key=lambda s: (len(s), s))[:30])
            raise self.error(RejectedInput, f"target {tgt.raw}: the workflow has no node {tgt.node!r}", field="target",
                             hint=f"node ids in this workflow: {ids}")
        inputs = node.get("inputs") or {}
        if tgt.field not in inputs:
            names = ", ".join(sorted(inputs)) or "none"
            raise self.error(RejectedInput, f"target {tgt.raw}: node {tgt.node} ({node.get('class_type')}) has no "
                             f"input {tgt.field!r}", field="target", hint=f"its inputs are: {names}")
        value = inputs[tgt.field]
        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
            raise self.error(RejectedInput, f"target {tgt.raw}: that input is linked to node {value[0]}, so RunningHub "
                             "cannot override it", field="target",
                             hint="override a widget value instead (or run your own graph as JSON)")

    # ------------------------------------------------------------------ uploads
    async def upload(self, data: bytes, mime: str, name: str) -> Any:
        if len(data) > MAX_UPLOAD:
            raise self.error(RejectedInput, f"file {name} is {len(data) / MiB:.1f} MB; RunningHub accepts at most 30 MB",
                             field="image", hint="downscale it, or pass a public URL with RemoteInputText")
        try:
            return await self._upload_v2(data, mime, name)
        except _UseLegacy as e:
            log.info("runninghub/%s: v2 upload unavailable (%s); using the legacy upload", self.name, e)
        return await self._upload_legacy(data, mime, name)

    @staticmethod
    def _form(fields: dict, data: bytes, mime: str, name: str) -> aiohttp.FormData:
        form = aiohttp.FormData()
        for k, v in fields.items():
            form.add_field(k, v)
        form.add_field("file", data, filename=name, content_type=mime or "application/octet-stream")
        return form

    async def _upload_v2(self, data: bytes, mime: str, name: str) -> str:
        try:
            out = await self._call("POST", "/openapi/v2/media/upload/binary",
                                   data=lambda: self._form({}, data, mime, name),
                                   headers={"Authorization": f"Bearer {self._key()}"}, idempotent=True)
        except (ConfigError, ProtocolError, TransientError) as e:  # no such route, HTML, 5xx after retries
            raise _UseLegacy(e.detail) from None
        code = out.get("code")
        info = out.get("data") if isinstance(out.get("data"), dict) else {}
        value = info.get("fileName") or info.get("filename")
        if code in (0, 200, "0", "200") and isinstance(value, str) and value:
            return value
        text = out.get("message") or out.get("msg")
        if code in (401, "401", 1002, "1002", 802):
            raise self.error(AuthError, f"the upload was refused: {_short(text, 120)} ({code})", code=code,
                             hint=f"check the key ({self._where_key()})")
        if code in (809, "809", 1008, "1008"):
            raise self._code_error(809, text)
        raise _UseLegacy(f"code {code} {_short(text, 80)}")

    async def _upload_legacy(self, data: bytes, mime: str, name: str) -> str:
        key = self._key()
        out = await self._call("POST", "/task/openapi/upload",
                               data=lambda: self._form({"apiKey": key, "fileType": "input"}, data, mime, name),
                               idempotent=True)
        info = out.get("data") if isinstance(out.get("data"), dict) else {}
        value = info.get("fileName") or info.get("filename")
        if out.get("code") == 0 and isinstance(value, str) and value:
            return value
        if out.get("code") == 0:
            raise self.error(ProtocolError, "the upload answered without a fileName")
        raise self._code_error(out.get("code"), out.get("msg"), out.get("data"), where="upload")

    # ------------------------------------------------------------------ submit
    def _options(self, body: dict) -> None:
        inst = str(self.profile.get("instance_type") or "").strip()
        if inst:
            if inst not in ("default", "plus"):
                raise self.error(ConfigError, f"instance_type {inst!r} is not 'default' or 'plus'", field="instance_type",
                                 hint="default = 24 GB, plus = 48 GB")
            body["instanceType"] = inst
        try:
            queue = _as_bool(self.profile.get("use_personal_queue"))
        except ValueError:
            raise self.error(ConfigError, "use_personal_queue must be true or false", field="use_personal_queue") from None
        if queue is not None:
            body["usePersonalQueue"] = queue

    @staticmethod
    def _node_info(spec: SubmitSpec) -> list[dict]:
        items = []
        for tgt, o in spec.targets("node"):
            value = o.value  # fieldValue is a string in the schema; the server coerces [DOC]
            items.append({"nodeId": tgt.node, "fieldName": tgt.field,
                          "fieldValue": value if isinstance(value, str) else str(value)})
        return items

    async def submit(self, spec: SubmitSpec, key: str) -> RemoteRef:
        wf = self._parse_workflow(spec.workflow)
        api_key = self._key()
        body: dict[str, Any] = {"apiKey": api_key}
        data: dict[str, Any] = {"kind": wf.kind}
        if wf.kind == "graph":
            graph = apply_overrides(wf.graph or {}, spec, provider=self.id, profile=self.name)
            path = "/task/openapi/create"
            body.update(workflowId=wf.id, workflow=json.dumps(graph, ensure_ascii=False), nodeInfoList=[])
            data.update(workflow_id=wf.id, nodes={k: str(v.get("class_type", "")) for k, v in graph.items()})
        elif wf.kind == "workflow":
            path = "/task/openapi/create"
            body.update(workflowId=wf.id, nodeInfoList=self._node_info(spec))
            data["workflow_id"] = wf.id
        else:
            path = "/task/openapi/ai-app/run"
            body.update(webappId=int(wf.id), nodeInfoList=self._node_info(spec))  # int64 in the schema [DOC]
            data["webapp_id"] = wf.id
        self._options(body)
        await self._note_count(key)
        self._creates_started += 1
        try:
            out = await self._call("POST", path, body=body, idempotent=False, timeout_s=60.0)
        except AmbiguousSubmit:
            raise
        except RemoteError:
            self._stash.pop(key, None)
            raise
        code = out.get("code")
        if code == 500:  # answered, but "unknown error": it may or may not have created a task
            raise self.error(AmbiguousSubmit, "RunningHub answered 500 UNKNOWN_ERROR to the create",
                             code=500, hint="it may have created the task; not re-sent to avoid paying twice")
        self._stash.pop(key, None)
        if code != 0:
            raise self._code_error(code, out.get("msg"), out.get("data"), where="create")
        res = out.get("data") if isinstance(out.get("data"), dict) else {}
        tid = res.get("taskId")
        if isinstance(tid, bool) or not isinstance(tid, (str, int)) or not str(tid).strip():
            raise self.error(AmbiguousSubmit, "create answered success without a taskId",
                             hint="a task may exist; check RunningHub's task list before running again")
        tid = str(tid).strip()  # 19 digits: never a float
        self._epoch += 1
        if isinstance(res.get("netWssUrl"), str) and res["netWssUrl"]:
            self._wss[tid] = res["netWssUrl"]
        status = str(res.get("taskStatus") or "")
        data["task_status"] = status
        if isinstance(res.get("clientId"), str):
            data["client_id"] = res["clientId"]
        return RemoteRef(tid, data, self.console_url(tid))

    def console_url(self, task_id: str) -> Optional[str]:
        """[OPENAPI] links finished tasks to …/call-api/call-record-detail/<taskId> (same path on .ai: INFERRED)."""
        try:
            return f"{self.base}/call-api/call-record-detail/{task_id}"
        except ConfigError:
            return None

    async def _account(self) -> dict:
        out = await self._call("POST", "/uc/openapi/accountStatus", body={"apikey": self._key()}, timeout_s=15.0)
        if out.get("code") != 0 or not isinstance(out.get("data"), dict):
            raise self._code_error(out.get("code"), out.get("msg"), out.get("data"), where="accountStatus")
        return out["data"]

    async def _note_count(self, key: str) -> None:
        """Remember the key's task count right before create, for find() after an ambiguous create."""
        try:
            acct = await self._account()
        except (TransientError, ProtocolError) as e:
            log.info("runninghub/%s: accountStatus before create failed (%s); find() will not be able to tell",
                     self.name, e.detail)
            return
        count = _num(acct.get("currentTaskCounts"))
        if count is None:
            return
        while len(self._stash) >= 256:  # keys whose find() never came
            self._stash.pop(next(iter(self._stash)))
        self._stash[key] = {"count": int(count), "t": asyncio.get_running_loop().time(), "epoch": self._epoch,
                            "creates": self._creates_started}

    async def find(self, key: str, spec: SubmitSpec) -> Optional[RemoteRef]:
        """RunningHub has no lookup by client key and no task listing. What it allows: compare the
        key's ``currentTaskCounts`` with the count noted just before the create. A rise means a task
        was probably created (its id is lost): raise NotSupported so nobody pays twice. No rise,
        soon after, with none of this process's tasks starting or ending meanwhile: None. Anything
        else (a restart, a late call, other activity): NotSupported."""
        st = self._stash.get(key)
        cannot = ("open RunningHub's task list to see whether it runs, then re-run or recover it by id; "
                  "not re-sent automatically to avoid paying twice")
        if st is None:
            raise self.error(NotSupported, "cannot tell whether the lost create reached RunningHub", hint=cannot)
        acct = await self._account()
        now_count = _num(acct.get("currentTaskCounts"))
        if now_count is None:
            raise self.error(NotSupported, "cannot tell whether the lost create reached RunningHub", hint=cannot)
        if now_count > st["count"]:
            self._stash.pop(key, None)
            raise self.error(NotSupported, f"RunningHub probably created the task (running/queued tasks went from "
                             f"{st['count']} to {int(now_count)}) but its id was lost", hint=cannot)
        elapsed = asyncio.get_running_loop().time() - st["t"]
        quiet = st["epoch"] == self._epoch and st["creates"] + 1 == self._creates_started
        if not quiet or elapsed > FIND_WINDOW_S:
            raise self.error(NotSupported, "cannot tell whether the lost create reached RunningHub (other tasks of "
                             "this key started or ended meanwhile, or too much time passed)", hint=cannot)
        self._stash.pop(key, None)
        return None

    # ------------------------------------------------------------------ polling
    async def _poll(self, tid: str) -> _Poll:
        out = await self._call("POST", "/task/openapi/outputs", body={"apiKey": self._key(), "taskId": tid},
                               timeout_s=20.0)
        code, msg, data = out.get("code"), str(out.get("msg") or ""), out.get("data")
        upper = msg.upper()
        if "APIKEY_TASK_IS_QUEUED" in upper or code == 813:  # msg before code (§5 variant)
            return _Poll(State.QUEUED, f"{code} {msg}".strip())
        if "APIKEY_TASK_IS_RUNNING" in upper or code == 804:
            wss = data.get("netWssUrl") if isinstance(data, dict) else None
            return _Poll(State.RUNNING, f"{code} {msg}".strip(), wss=wss if isinstance(wss, str) and wss else None)
        if code == 0 and isinstance(data, list):
            return _Poll(State.SUCCEEDED, "0 success", items=data)
        if code == 0:
            return await self._poll_status(tid)
        if code == 805:
            reason = data.get("failedReason") if isinstance(data, dict) else None
            if isinstance(reason, str):
                try:
                    reason = json.loads(reason)
                except ValueError:
                    reason = {"exception_message": reason}
            return _Poll(State.FAILED, f"805 {msg}", reason=reason if isinstance(reason, dict) else {})
        if code in (807, 423):
            return _Poll(State.RUNNING, f"{code} {msg}", not_found=True)
        raise self._code_error(code, msg, data, where="outputs")

    async def _poll_status(self, tid: str) -> _Poll:
        """The outputs answer was code 0 without a list: ask the bare-string status endpoint."""
        out = await self._call("POST", "/task/openapi/status", body={"apiKey": self._key(), "taskId": tid},
                               timeout_s=20.0)
        if out.get("code") != 0:
            raise self._code_error(out.get("code"), out.get("msg"), out.get("data"), where="status")
        status = str(out.get("data") or "").upper()
        if status == "QUEUED":
            return _Poll(State.QUEUED, "status QUEUED")
        if status == "FAILED":
            return _Poll(State.FAILED, "status FAILED", reason={})
        # RUNNING, or SUCCESS whose files are not listed yet (outputs lag): keep polling
        return _Poll(State.RUNNING, f"status {status or '?'}")

    def _outputs_from(self, items: list) -> tuple[list[Output], Optional[float], Optional[float]]:
        outs: list[Output] = []
        seen: set[str] = set()
        coins: Optional[float] = None
        secs: Optional[float] = None
        for item in items:
            if not isinstance(item, dict):
                continue
            url = item.get("fileUrl") or item.get("url")
            c = _num(item.get("consumeCoins"))
            coins = c if c is not None and (coins is None or c > coins) else coins  # per task, repeated (INFERRED)
            s = _num(item.get("taskCostTime"))
            secs = s if s is not None and (secs is None or s > secs) else secs
            text = item.get("text")
            if not isinstance(url, str) or not url:
                if isinstance(text, str) and text:
                    outs.append(Output(kind="text", text=text, node=str(item.get("nodeId") or "") or None))
                continue
            if url in seen:
                continue
            seen.add(url)
            path = urlsplit(url).path
            filename = path.rsplit("/", 1)[-1] or None
            ftype = str(item.get("fileType") or item.get("outputType") or
                        (filename.rsplit(".", 1)[-1] if filename and "." in filename else "")).lower().lstrip(".")
            kind = ("image" if ftype in IMAGE_TYPES else "video" if ftype in VIDEO_TYPES
                    else "audio" if ftype in AUDIO_TYPES else "text" if ftype in TEXT_TYPES else "file")
            mime = mimetypes.guess_type(f"x.{ftype}")[0] if ftype else None
            node = item.get("nodeId")
            outs.append(Output(kind=kind, url=url, filename=filename, node=str(node) if node is not None else None,
                               mime=mime))
        return outs, coins, secs

    async def _failure(self, ref: RemoteRef, reason: dict, prog: _Progress) -> TaskUpdate:
        tid = ref.remote_id
        etype = str(reason.get("exception_type") or "")
        if tid in self._cancelled or ref.data.get("cancel_requested") or prog.interrupted or "interrupt" in etype.lower():
            return TaskUpdate(State.CANCELLED, raw_state="805 cancelled", message="cancelled on RunningHub")
        code, text = await self._v2_error(tid)
        if code in ("1501", "1505"):
            err = self.error(ContentRejected, f"RunningHub's content check refused the task ({code}: "
                             f"{_short(text, 160)})", code=code, field="workflow",
                             hint="change the prompt or input image")
            return TaskUpdate(State.FAILED, raw_state=f"805 v2 {code}", error=err, message=str(err))
        if not reason and prog.error:
            e = prog.error
            reason = {"node_id": e.get("node_id"), "node_name": e.get("node_type"),
                      "exception_type": e.get("exception_type"), "exception_message": e.get("exception_message")}
        node_id = str(reason.get("node_id") or "")
        node_cls = str(reason.get("node_name") or prog.names.get(node_id, ""))
        message = str(reason.get("exception_message") or "")
        if node_id or message:
            what = f"{etype}: {message}" if etype else message
            hint = ("try instance_type = \"plus\" (48 GB) or smaller sizes" if "out of memory" in message.lower()
                    else "fix that node's inputs or models on RunningHub, then re-queue")
            err = self.error(RemoteFailure, f"the remote run failed: {_short(what)}", code=805, remote_node=node_id,
                             node_class=node_cls, hint=hint)
        else:
            err = self.error(RemoteFailure, "the task failed without a reason (it may have been cancelled on the "
                             "RunningHub website)", code=805, hint="open the task on RunningHub for details")
        return TaskUpdate(State.FAILED, raw_state="805 APIKEY_TASK_STATUS_ERROR", error=err, message=str(err))

    async def _v2_error(self, tid: str) -> tuple[str, str]:
        """Best effort: the v2 query of a failed task carries errorCode (1501 moderation …) [CLAW]."""
        try:
            out = await self._call("POST", "/openapi/v2/query", body={"taskId": tid},
                                   headers={"Authorization": f"Bearer {self._key()}"}, timeout_s=15.0)
        except RemoteError:
            return "", ""
        return str(out.get("errorCode") or ""), str(out.get("errorMessage") or "")

    # ------------------------------------------------------------------ node names
    async def _names(self, ref: RemoteRef) -> tuple[dict[str, str], Optional[int]]:
        data = ref.data or {}
        try:
            if isinstance(data.get("nodes"), dict):
                nodes = {str(k): str(v) for k, v in data["nodes"].items()}
                return nodes, len(nodes)
            if data.get("workflow_id"):
                graph = await self._workflow_graph(str(data["workflow_id"]))
                return {str(k): str(v.get("class_type", "")) for k, v in graph.items() if isinstance(v, dict)}, len(graph)
            if data.get("webapp_id"):
                info = await self._app_info(str(data["webapp_id"]))
                return {str(f.get("nodeId")): str(f.get("nodeName") or "") for f in info.get("nodeInfoList") or []
                        if isinstance(f, dict)}, None
        except (TransientError, ProtocolError, NotFound) as e:
            log.info("runninghub/%s: node names unavailable (%s)", self.name, e.detail)
        return {}, None

    # ------------------------------------------------------------------ watch
    async def _listen(self, url: str, out: asyncio.Queue) -> None:
        """Follow the task's socket, reconnecting a bounded number of times; frames go to ``out``.
        Any trouble just ends the listener: HTTP polling carries on."""
        failures = 0
        while failures < WS_RECONNECTS:
            try:
                ws = await self.http.ws_connect(url, heartbeat=30.0)
            except TransientError as e:
                failures += 1
                if e.code == 403:
                    break  # the token was refused: a reconnect will not help
                await asyncio.sleep(min(2.0, 0.2 * 2 ** failures))
                continue
            ended = False
            try:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        try:
                            frame = json.loads(msg.data)
                        except ValueError:
                            continue
                        if isinstance(frame, dict) and frame.get("type") != "status":
                            failures = 0  # real progress: the connection is worth keeping
                        out.put_nowait(frame)
                        if isinstance(frame, dict) and frame.get("type") in (
                                "execution_success", "execution_error", "execution_interrupted"):
                            ended = True
                    elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                        break
                    # binary frames (previews) are ignored
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
                pass
            finally:
                await ws.close()
            if ended:
                return
            failures += 1
            await asyncio.sleep(min(2.0, 0.1 * 2 ** failures))

    def _update(self, state: State, prog: _Progress, raw: str) -> TaskUpdate:
        if state == State.QUEUED:
            return TaskUpdate(State.QUEUED, raw_state=raw, message="queued on RunningHub (no position is published)")
        node = prog.label(prog.current)
        return TaskUpdate(State.RUNNING, raw_state=raw, progress=prog.fraction(), node=node,
                          step=prog.value if prog.max else None, max_steps=prog.max or None,
                          message=f"running {node}" if node else "running")

    @staticmethod
    def _sig(u: TaskUpdate) -> tuple:
        return (u.state, u.progress, u.node, u.step, u.max_steps, u.message)

    async def watch(self, ref: RemoteRef) -> AsyncIterator[TaskUpdate]:
        tid = ref.remote_id
        names, total = await self._names(ref)
        prog = _Progress(names, total)
        frames: asyncio.Queue = asyncio.Queue()
        listener: Optional[asyncio.Task] = None
        listen_url: Optional[str] = None
        restarts = 0
        failures = 0
        missing = 0
        last: Optional[tuple] = None
        loop = asyncio.get_running_loop()
        try:
            while True:
                poll: Optional[_Poll] = None
                try:
                    poll = await self._poll(tid)
                    failures = 0
                except (TransientError, ProtocolError):
                    failures += 1
                    if failures >= MAX_POLL_FAILURES:
                        raise
                if poll is not None:
                    if poll.not_found:
                        missing += 1
                        if missing >= NOT_FOUND_POLLS:
                            err = self._code_error(807, "APIKEY_TASK_NOT_FOUND")
                            yield TaskUpdate(State.FAILED, raw_state=poll.raw, error=err, message=str(err))
                            return
                        poll = None
                    else:
                        missing = 0
                if poll is not None:
                    if poll.state in (State.SUCCEEDED, State.FAILED):
                        self._wss.pop(tid, None)
                    if poll.state == State.SUCCEEDED:
                        self._epoch += 1
                        outs, coins, secs = self._outputs_from(poll.items or [])
                        bits = [f"{len(outs)} output(s)" if outs else
                                "finished but saved no files (only save nodes produce outputs)"]
                        if secs is not None:
                            bits.append(f"{secs:g} s")
                        if coins is not None:
                            bits.append(f"{coins:g} coins")
                        yield TaskUpdate(State.SUCCEEDED, raw_state=poll.raw, progress=1.0, cost=coins, outputs=outs,
                                         message=", ".join(bits))
                        return
                    if poll.state == State.FAILED:
                        self._epoch += 1
                        yield await self._failure(ref, poll.reason or {}, prog)
                        return
                    url = poll.wss or self._wss.get(tid)
                    if poll.wss:
                        self._wss[tid] = poll.wss
                    if (poll.state == State.RUNNING and url and not (prog.finished or prog.error or prog.interrupted)
                            and (listener is None or (listener.done() and (restarts < WS_RESTARTS or url != listen_url)))):
                        if listener is not None:
                            restarts += 1
                        listener, listen_url = asyncio.create_task(self._listen(url, frames)), url
                    update = self._update(poll.state, prog, poll.raw)
                    if self._sig(update) != last:
                        last = self._sig(update)
                        yield update
                interval = self.poll_interval()
                if prog.finished or prog.error or prog.interrupted or failures:
                    interval = min(interval, FAST_POLL_S)
                deadline = loop.time() + interval
                while True:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        frame = await asyncio.wait_for(frames.get(), remaining)
                    except asyncio.TimeoutError:
                        break
                    if not prog.feed(frame):
                        continue
                    update = self._update(State.RUNNING, prog, "ws")
                    if self._sig(update) != last:
                        last = self._sig(update)
                        yield update
                    if prog.finished or prog.error or prog.interrupted:
                        break  # ask HTTP now: it decides the end
        finally:
            if listener is not None and not listener.done():
                listener.cancel()
            if listener is not None:
                await asyncio.gather(listener, return_exceptions=True)

    async def outputs(self, ref: RemoteRef) -> list[Output]:
        poll = await self._poll(ref.remote_id)
        if poll.state == State.SUCCEEDED:
            return self._outputs_from(poll.items or [])[0]
        if poll.state == State.FAILED:
            upd = await self._failure(ref, poll.reason or {}, _Progress({}, None))
            if upd.error is not None:
                raise upd.error
            raise self.error(RemoteFailure, "the task was cancelled; it has no outputs")
        if poll.not_found:
            raise self._code_error(807, "APIKEY_TASK_NOT_FOUND")
        raise self.error(TransientError, f"the task is still {poll.state} ({poll.raw}); no outputs yet")

    # ------------------------------------------------------------------ cancel, check
    async def cancel(self, ref: RemoteRef) -> None:
        out = await self._call("POST", "/task/openapi/cancel", body={"apiKey": self._key(), "taskId": ref.remote_id},
                               idempotent=True, timeout_s=15.0)
        if out.get("code") != 0:
            raise self._code_error(out.get("code"), out.get("msg"), out.get("data"), where="cancel")
        self._cancelled.add(ref.remote_id)
        ref.data["cancel_requested"] = True
        self._epoch += 1

    async def check(self) -> str:
        acct = await self._account()
        coins = acct.get("remainCoins")
        money = acct.get("remainMoney")
        cur = acct.get("currency") or ""
        parts = [f"RunningHub OK ({acct.get('apiType') or 'key'})"]
        if coins not in (None, ""):
            parts.append(f"{coins} coins")
        if money not in (None, ""):
            parts.append(f"balance {money} {cur}".strip())
        parts.append(f"{acct.get('currentTaskCounts', '0')} task(s) running or queued")
        return ", ".join(parts)


class _UseLegacy(Exception):
    """The v2 upload route is missing or failed in a way the legacy route may not."""

    @property
    def detail(self) -> str:
        return str(self)


PROVIDER = RunningHubProvider
