"""nextGPU (www.nextgpu.net): run a published app by title on nextGPU's pool of consumer GPUs.

Wire facts: ``shared/providers/nextgpu.md`` (SEED = nextGPU's API document, SRC = its public source).

- ``workflow`` = the app **title** (opaque UTF-8, compared exactly; surrounding whitespace trimmed).
  nextGPU cannot run a graph sent by the client.
- ``target`` = a parameter name of the app (``promptText``, ``imageName``, ``imageRatio``…), written
  into ``data.parameters``; nextGPU matches names case-insensitively and silently ignores unknown ones.
- ``imageCount`` / ``inputImageScaledRatio`` / ``imagePath`` come from the profile (``image_count``
  default 1, ``image_scaled_ratio`` default 8, ``image_path`` default the current ``YYYY/MM``);
  ``spec.options["image_count"]`` overrides the count. One sub-task per image; each is an output.
- The client chooses the ``taskID`` (``nextGPU`` + ``YYYYMMDDhhmmss`` UTC+8 + 8 random digits):
  :meth:`new_submission_key` returns it, the engine journals it before publishing, and a lost answer
  or a crash is resolved with ``POST /backend/getTask`` (:meth:`find`) — never a second paid task.
- Live state: the session WebSocket (``connect`` from the publish answer, used verbatim). Every
  message is a full snapshot (also "foreign" broadcasts caused by other users' work), so state is read
  from each sub-task's ``status`` code, never from the ``event`` name. The socket ends by dropping TCP
  and cannot be re-joined after a drop: the client then polls getTask (different state numbering).
  getTask is also polled as a safety net while the socket is up (every 5 × ``poll_interval_s``), and
  every ``poll_interval_s`` once it is gone.
- ``estimateMs`` is a per-attempt **deadline** (nextGPU fails an attempt that runs past it and retries
  on another node, at most 3 attempts), not an ETA: it is shown in ``message``; ``eta_s`` stays None.
  ``progress`` is stage-based, averaged over the images: 0 waiting, 0.05 dispatched, 0.1 running,
  1 finished (nextGPU relays no steps, node or previews, so the bar jumps when an image arrives).
- No cancel endpoint: ``capabilities.cancel`` is False (an interrupted task may still run and bill).
- No upload endpoint: images go to the user's own public store (``image_upload_url`` /
  ``NEXTGPU_IMAGE_UPLOAD_URL``): ``PUT <image_upload_url>/<sha256>.png``; the value sent is the ``url``
  of the store's JSON answer, or the PUT URL (query dropped) when there is none.
- Auth (INFERRED): ``userName`` (``user`` / ``NEXTGPU_USER``, a secret) goes in the publish body; an
  optional ``token`` (``NEXTGPU_TOKEN``) is sent as ``Authorization: Bearer <token>`` on publish and
  getTask (header name and scheme configurable: ``auth_header``, ``auth_scheme``) and on the
  WebSocket only when its host is the API host. Never on result or image-store URLs.

State mapping — WebSocket sub-task ``status`` (one per image; the task takes the least advanced):

| status | meaning (SRC/SEED)                         | State      | notes |
|--------|--------------------------------------------|------------|-------|
| 0      | waiting in the global queue (also re-queued after a failed attempt) | QUEUED | queue_position = spareWaitCount, queue_length = initWaitCount; "retrying (attempt n of 3)" after a failure |
| 1      | being dispatched to a GPU node             | QUEUED     | |
| 2      | in the node's local queue (InLocalQueue)   | QUEUED     | |
| 3      | running (GenerateStart)                    | RUNNING    | message shows the attempt deadline estimateMs |
| 4      | succeeded, ossUrls set                      | SUCCEEDED  | outputs = ossUrls of every succeeded sub-task |
| 5      | failed for good (3 attempts or no node left) | FAILED    | RemoteFailure with failureReason (from getTask) |
| top-level ``status`` 4 | every sub-task terminal (not "success") | — | confirms the end; the socket then drops (1006) |

getTask ``task.state`` / ``subTasks[].state``:

| state | task                         | sub-task                                  | State |
|-------|------------------------------|-------------------------------------------|-------|
| 0     | created                      | created                                    | QUEUED |
| 1     | published                    | dispatched to a node                        | QUEUED |
| 2     | processing                   | attempt running                             | RUNNING |
| 3     | completed (last sub-task ok) | succeeded, ``urls`` newline-joined          | SUCCEEDED (if ≥ 1 image) |
| 4     | failed (last sub-task failed)| a failed attempt; final only when the task is 3/4 | FAILED (if no image at all) |
| ``taskID == ""`` | unknown task (answer still "success") | — | find → None; watch → NotFound after 3 polls |

With several images, succeeded ones are delivered and the failures are named in ``message``;
FAILED only when no image came back. Missing sub-tasks in a finished getTask answer (an SRC quirk)
count as "not reported" unless the WebSocket delivered their URLs.

Errors — HTTP status and ``codeID``/``codeId`` (read case-insensitively):

| where    | answer                                           | error |
|----------|--------------------------------------------------|-------|
| publish  | 200 ``codeID 200`` ``msg "success"`` + fields    | — (QUEUED) |
| publish  | 200 ``codeID 200`` ``msg "taskPublish Failed"``  | getTask first (an earlier POST may have landed), then RejectedInput (field workflow: unknown title, bad parameters, unknown user, duplicate task id) |
| any      | 400 ``codeId 301`` BindJSON Failed               | RejectedInput (a value of the wrong JSON type) |
| any      | 200 ``codeId 302`` parameter missing             | RejectedInput |
| publish  | 200 ``codeId 304`` database error                | AmbiguousSubmit (engine asks find) |
| getTask  | 200 ``codeId 304``                               | TransientError (poll retried) |
| any      | 200 ``codeId 305`` payment error (INFERRED)      | QuotaError |
| any      | 401/403, or ``codeId 401`` (INFERRED)            | AuthError (names NEXTGPU_TOKEN / NEXTGPU_USER) |
| any      | 404                                              | ConfigError (wrong NEXTGPU_BASE_URL) |
| publish  | 500 (panic) / 502 / 503 / 504 / drop after send  | AmbiguousSubmit (Http) → find(key) via getTask |
| getTask  | 429 / 5xx / drop                                 | retried by Http, then TransientError; watch tolerates 5 in a row |
| any      | body not JSON                                    | ProtocolError |
| WebSocket| handshake 400 ``Invalid path``, drop, silence     | poll getTask (never re-joined) |
| getTask  | sub-task failureReason ``estimateTimeout``        | RemoteFailure "ran past the per-attempt deadline" |
| result   | 403/404/410 on the file URL                      | NotFound (Http.download) |
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator, Optional
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from ..engine.redaction import scrub, strip_query
from .base import (AmbiguousSubmit, AuthError, Capabilities, ConfigError, NotFound, Output, Preflight,
                   ProtocolError, Provider, QuotaError, RejectedInput, RemoteError, RemoteFailure, RemoteRef,
                   State, SubmitSpec, TaskUpdate, TransientError)

CST = timezone(timedelta(hours=8))
PUBLISH_PATH = "/session/publish"
GET_TASK_PATH = "/backend/getTask"
MAX_ATTEMPTS = 3  # SRC config maxRetryCount
MAX_IMAGES = 20  # imageCount limit of nextGPU's web UI
RATIOS = ("16:9", "4:3", "1:1", "9:16")
ENUM_PARAMS = frozenset({"imageratio"})
NOT_FOUND_POLLS = 3
MAX_POLL_FAILURES = 5
WS_POLL_FACTOR = 5.0  # safety-net polls while the WebSocket is up: every 5 × poll_interval
MAX_TEXT = 300

WS_PHASE = {0: "waiting", 1: "dispatched", 2: "dispatched", 3: "running", 4: "succeeded", 5: "failed"}
DB_PHASE = {0: "waiting", 1: "dispatched", 2: "running", 3: "succeeded", 4: "failed"}
TERMINAL = frozenset({"succeeded", "failed"})
# nextGPU reports stages, not steps: per image 0 waiting, 0.05 dispatched, 0.1 running, 1 finished
STAGE_PROGRESS = {"dispatched": 0.05, "running": 0.1, "succeeded": 1.0, "failed": 1.0}
IMAGE_EXT = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
             "gif": "image/gif"}
VIDEO_EXT = {"mp4": "video/mp4", "webm": "video/webm", "mov": "video/quicktime"}


def _clip(text: Any) -> str:
    """Service text for messages: untrusted, so one line, bounded, and scrubbed of every secret."""
    s = scrub(" ".join(str(text or "").split()))
    return s if len(s) <= MAX_TEXT else s[:MAX_TEXT] + "…"


def _duration(ms: int) -> str:
    s = max(0, int(ms // 1000))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def _code(data: dict) -> Any:
    for k, v in data.items():
        if str(k).lower() == "codeid":
            return v
    return None


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


# --------------------------------------------------------------------------- state tracking

@dataclass
class _Sub:
    sub_id: str
    phase: str = "waiting"
    spare: Optional[int] = None
    init: Optional[int] = None
    estimate_ms: int = 0
    urls: list = field(default_factory=list)
    failed_seen: int = 0  # failed attempts seen on the WebSocket (running → back in the queue)
    retry_count: int = 0  # failed attempts according to getTask
    reason: Optional[str] = None
    raw: str = ""

    @property
    def failed_attempts(self) -> int:
        return max(self.failed_seen, self.retry_count)


class _Tracker:
    """One task's sub-tasks, merged from WebSocket snapshots and getTask answers."""

    def __init__(self, task_id: str, sub_ids: list, count: Optional[int]):
        self.task_id = task_id
        self.count = count if isinstance(count, int) and 1 <= count <= MAX_IMAGES else (len(sub_ids) or None)
        self.subs: dict[str, _Sub] = {s: _Sub(s) for s in sub_ids}
        self.task_final = False
        self.seen = False  # the service showed this task at least once
        self.ws_live = False  # snapshots are arriving: they win over polls for unfinished sub-tasks
        self.reason_polled = False

    def _sub(self, sub_id: str) -> Optional[_Sub]:
        if not isinstance(sub_id, str) or not sub_id.startswith(self.task_id + "_") \
                or not sub_id[len(self.task_id) + 1:].isdigit():
            return None
        if sub_id not in self.subs:
            if len(self.subs) >= MAX_IMAGES:
                return None
            self.subs[sub_id] = _Sub(sub_id)
        return self.subs[sub_id]

    def apply_ws(self, msg: Any) -> bool:
        """Apply one snapshot; True when a failed attempt was just seen (worth a getTask)."""
        if not isinstance(msg, dict) or msg.get("taskID") != self.task_id or msg.get("messageID", 1) != 1:
            return False
        tasks = msg.get("tasks")
        if not isinstance(tasks, list):
            return False
        self.seen = True
        retry = False
        for t in tasks:
            if not isinstance(t, dict):
                continue
            sub = self._sub(t.get("subID"))
            status = t.get("status")
            if sub is None or type(status) is not int or status not in WS_PHASE:
                continue
            sub.raw = str(status)
            if sub.phase in TERMINAL:
                continue
            phase = WS_PHASE[status]
            if (sub.phase == "running" and phase in ("waiting", "dispatched")) or phase == "failed":
                sub.failed_seen += 1
                retry = True
            sub.phase = phase
            sub.spare = max(0, _int(t.get("spareWaitCount"), 0))
            sub.init = max(0, _int(t.get("initWaitCount"), 0))
            if _int(t.get("estimateMs")) > 0:
                sub.estimate_ms = _int(t.get("estimateMs"))
            if status == 4:
                urls = t.get("ossUrls")
                sub.urls = [u for u in urls if isinstance(u, str) and u] if isinstance(urls, list) else []
        return retry

    def apply_task(self, task: dict) -> None:
        self.seen = True
        state = task.get("state") if type(task.get("state")) is int else None
        count = _int(task.get("subNum"))
        if 1 <= count <= MAX_IMAGES:  # hostile or broken values never size our tables
            self.count = count
        final = state in (3, 4)
        listed = set()
        sub_tasks = task.get("subTasks")
        for st in sub_tasks if isinstance(sub_tasks, list) else []:
            if not isinstance(st, dict):
                continue
            sub = self._sub(st.get("subID"))
            if sub is None:
                continue
            listed.add(sub.sub_id)
            sub.retry_count = max(sub.retry_count, _int(st.get("retryCount")))
            if st.get("failureReason") or sub.reason is None:
                sub.reason = str(st.get("failureReason") or "")
            if _int(st.get("estimateTime")) > 0:
                sub.estimate_ms = _int(st.get("estimateTime"))
            if sub.phase in TERMINAL:
                continue
            s = st.get("state")
            s = s if type(s) is int else None
            if not (self.ws_live and sub.raw.isdigit()):
                sub.raw = f"db{s}"
            if s == 3:
                sub.phase = "succeeded"
                sub.urls = [u.strip() for u in str(st.get("urls") or "").split("\n") if u.strip()]
            elif s in DB_PHASE:
                phase = DB_PHASE[s]
                if s == 4:  # a failed attempt: retried unless the task ended
                    phase = "failed" if final else "waiting"
                if self.ws_live and not final and sub.phase != phase and sub.raw.isdigit():
                    continue  # the live WebSocket is fresher than this poll for unfinished work
                sub.phase = phase
        if final:
            self.task_final = True
            for sub in self.subs.values():
                if sub.phase not in TERMINAL and sub.sub_id not in listed:
                    sub.phase = "failed"
                    sub.reason = sub.reason or "nextGPU did not report this sub-task"
            if self.count:
                for i in range(1, self.count + 1):
                    sid = f"{self.task_id}_{i:04d}"
                    if sid not in self.subs:
                        self.subs[sid] = _Sub(sid, phase="failed", reason="nextGPU did not report this sub-task")

    def ordered(self) -> list[_Sub]:
        return [self.subs[k] for k in sorted(self.subs)]

    def terminal(self) -> bool:
        if self.task_final:
            return True
        subs = self.ordered()
        return bool(subs) and self.count is not None and len(subs) >= self.count and \
            all(s.phase in TERMINAL for s in subs)

    def needs_reason(self) -> bool:
        """A sub-task failed and getTask was not asked since (the last failureReason/retryCount)."""
        return any(s.phase == "failed" for s in self.subs.values())


# --------------------------------------------------------------------------- provider

class NextGPU(Provider):
    id = "nextgpu"
    label = "nextGPU"
    capabilities = Capabilities(cancel=False, queue_position=True, progress="push", uploads=True, cost=False,
                                idempotent_submit=False, client_chosen_id=True, findable=True,
                                addressing="field")

    def __init__(self, profile: Any, http: Any):
        super().__init__(profile, http)
        self._results: dict[str, list[Output]] = {}
        self._ws_gone: set[str] = set()

    # ------------------------------------------------------------------ config
    @property
    def base_url(self) -> str:
        url = (getattr(self.profile, "url", None) or "").rstrip("/")
        if not url:
            raise self.error(ConfigError, "no nextGPU endpoint URL", field="url",
                             hint="set NEXTGPU_BASE_URL (default https://www.nextgpu.net) or 'url' in profiles.toml")
        return url

    def _user(self) -> str:
        return self.profile.require("user", "nextGPU user name (userName)")

    def _headers(self) -> dict:
        token = self.profile.secret("token")
        if not token:
            return {}
        header = str(self.profile.get("auth_header", "Authorization"))
        scheme = str(self.profile.get("auth_scheme", "Bearer"))
        return {header: f"{scheme} {token}".strip() if scheme.lower() != "none" else token}

    def _setting_int(self, name: str, default: int, lo: int, hi: int, spec: Optional[SubmitSpec] = None) -> int:
        raw = (spec.options.get(name) if spec is not None and spec.options else None)
        if raw is None:
            raw = self.profile.get(name, default)
        try:
            value = int(raw)
        except (TypeError, ValueError):
            value = None
        if value is None or not lo <= value <= hi or isinstance(raw, bool):
            raise self.error(ConfigError, f"{name} must be a whole number from {lo} to {hi}, not {raw!r}",
                             field=name, hint=f"fix '{name}' in [profiles.{self.name}] of profiles.toml")
        return value

    def new_submission_key(self) -> str:
        """The nextGPU taskID, chosen by the client: ``nextGPU`` + UTC+8 time + 8 random digits."""
        return "nextGPU" + datetime.now(CST).strftime("%Y%m%d%H%M%S") + f"{secrets.randbelow(10 ** 8):08d}"

    # ------------------------------------------------------------------ validate / build
    def _title(self, spec: SubmitSpec) -> str:
        title = (spec.workflow or "").strip()
        if not title:
            raise self.error(RejectedInput, "the workflow is empty", field="workflow",
                             hint="give the title of a published nextGPU app, e.g. Image generation")
        if title[:1] in "{[":
            try:
                json.loads(title)
            except ValueError:
                pass
            else:
                raise self.error(RejectedInput, "nextGPU runs published apps by title; it cannot run a graph",
                                 field="workflow", hint="put the app's title in 'workflow' and its parameter "
                                 "names (promptText, imageName, …) in the targets")
        return title

    def _parameters(self, spec: SubmitSpec, *, uploaded: bool) -> dict:
        params: dict = {}
        for tgt, o in spec.targets("field"):
            value = o.value
            name = tgt.field
            if o.kind == "image":
                if uploaded:
                    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
                        raise self.error(RejectedInput, f"target {name}: the image was not turned into a URL",
                                         field="target", hint="set image_upload_url so images can be uploaded")
                elif not self.profile.get("image_upload_url"):
                    raise self._no_store()
            elif o.kind == "int":
                if isinstance(value, bool) or not isinstance(value, int):
                    try:
                        value = int(value)
                    except (TypeError, ValueError):
                        raise self.error(RejectedInput, f"target {name}: {value!r} is not a whole number",
                                         field="target") from None
            elif o.kind == "float":
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    raise self.error(RejectedInput, f"target {name}: {value!r} is not a number",
                                     field="target") from None
            else:
                value = "" if value is None else str(value)
            if name.lower() in ENUM_PARAMS and not isinstance(value, str):
                raise self.error(RejectedInput, f"target {name}: nextGPU needs this choice as text, e.g. \"16:9\"",
                                 field="target", hint="use RemoteInputText for " + name)
            params[name] = value
        return params

    def _no_store(self) -> RemoteError:
        return self.error(ConfigError, "nextGPU has no upload API: an IMAGE input needs your own public image store",
                          field="image_upload_url",
                          hint="set NEXTGPU_IMAGE_UPLOAD_URL (or image_upload_url in profiles.toml) to an HTTP PUT "
                               "location that serves the files publicly, or pass a public image URL with "
                               "RemoteInputText")

    def _body(self, spec: SubmitSpec, key: str, *, uploaded: bool) -> dict:
        title = self._title(spec)
        params = self._parameters(spec, uploaded=uploaded)
        image_path = str(self.profile.get("image_path") or datetime.now(CST).strftime("%Y/%m")).strip("/")
        return {"userName": self._user(), "title": title, "inputType": "text",
                "inputImageScaledRatio": self._setting_int("image_scaled_ratio", 8, 1, 1000),
                "imageCount": self._setting_int("image_count", 1, 1, 20, spec),
                "imagePath": image_path, "taskID": key, "data": {"parameters": params}}

    async def validate(self, spec: SubmitSpec) -> Preflight:
        body = self._body(spec, "nextGPU-validate", uploaded=False)
        self.base_url  # noqa: B018 - raises ConfigError when missing
        notes = []
        for name, value in body["data"]["parameters"].items():
            if name.lower() == "imageratio" and value not in RATIOS:
                notes.append(f"{name} {value!r} is not one of {', '.join(RATIOS)}; nextGPU ignores unknown "
                             "choices silently")
        if body["imageCount"] > 1:
            notes.append(f"{body['imageCount']} images (one sub-task each)")
        return Preflight(message="; ".join(notes) or None, workflow_label=body["title"][:60])

    # ------------------------------------------------------------------ HTTP
    def _envelope(self, resp: Any, what: str, *, creates: bool = False) -> dict:
        if resp.status in (401, 403):
            raise self._auth_error(f"nextGPU refused the request (HTTP {resp.status})")
        if resp.status == 404:
            raise self.error(ConfigError, f"no nextGPU {what} endpoint at {strip_query(resp.url)} (HTTP 404)",
                             field="url", hint="check NEXTGPU_BASE_URL (default https://www.nextgpu.net)")
        if resp.status >= 500:
            cls = AmbiguousSubmit if creates else TransientError
            raise self.error(cls, f"nextGPU {what} answered HTTP {resp.status}",
                             hint="the service had an internal error; a task may have been created")
        data = resp.json()
        if not isinstance(data, dict):
            raise self.error(ProtocolError, f"nextGPU {what} answered {type(data).__name__}, not an object")
        code, msg = _code(data), _clip(data.get("msg"))
        if code == 200 and resp.status == 200:
            return data
        if code == 301 or resp.status == 400:
            raise self.error(RejectedInput, f"nextGPU could not read the {what} request (code {code}): {msg}",
                             field="inputs", code=code,
                             hint="a value has the wrong type (a number where text is expected?); if the inputs "
                                  "look right, report this as a bug")
        if code == 302:
            raise self.error(RejectedInput, f"nextGPU says a parameter is missing (code 302): {msg}",
                             field="inputs", code=code)
        if code == 304:
            cls = AmbiguousSubmit if creates else TransientError
            raise self.error(cls, f"nextGPU database error (code 304): {msg}", code=code,
                             hint="a temporary problem on nextGPU's side")
        if code == 305:
            raise self.error(QuotaError, f"nextGPU refused the task for payment reasons (code 305): {msg}",
                             code=code, hint="top up your nextGPU balance")
        if code in (401, 403):
            raise self._auth_error(f"nextGPU refused the credentials (code {code}): {msg}")
        raise self.error(ProtocolError, f"nextGPU {what} answered HTTP {resp.status}, code {code!r}: {msg}",
                         code=code)

    def _auth_error(self, detail: str) -> RemoteError:
        return self.error(AuthError, detail, field="token",
                          hint="check NEXTGPU_TOKEN / 'token' (nextGPU's API-key scheme is undocumented: leave it "
                               "unset if your account has none, or set auth_header/auth_scheme) and NEXTGPU_USER")

    async def _get_task(self, task_id: str) -> Optional[dict]:
        resp = await self.http.request("POST", self.base_url + GET_TASK_PATH, json={"taskID": task_id},
                                       headers=self._headers(), idempotent=True)
        data = self._envelope(resp, "getTask")
        task = data.get("task")
        if not isinstance(task, dict):
            raise self.error(ProtocolError, "nextGPU getTask answered without a task object")
        if task.get("taskID") != task_id:
            return None  # unknown ids answer "success" with an empty task
        return task

    def _ref(self, task_id: str, title: str, session: str, connect: Optional[str], subs: list,
             count: int) -> RemoteRef:
        data = {"session": session, "connect": connect, "subs": subs, "count": count, "title": title}
        return RemoteRef(remote_id=task_id, data={k: v for k, v in data.items() if v not in (None, "", [])})

    def _guess_connect(self, session: str) -> Optional[str]:
        if not session or not session.isdigit():
            return None
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urlunsplit((scheme, parts.netloc, f"/ws/user/{session}", "", ""))

    # ------------------------------------------------------------------ submit / find
    async def submit(self, spec: SubmitSpec, key: str) -> RemoteRef:
        body = self._body(spec, key, uploaded=True)
        resp = await self.http.request("POST", self.base_url + PUBLISH_PATH, json=body, headers=self._headers(),
                                       idempotent=False)
        data = self._envelope(resp, "publish", creates=True)
        if data.get("msg") != "success":
            ref = await self.find(key, spec)  # an earlier POST with this taskID may have landed late
            if ref is not None:
                return ref
            raise self.error(RejectedInput, f"nextGPU refused the task: {_clip(data.get('msg')) or 'no reason'}",
                             field="workflow", hint=f"check that the app title {body['title']!r} exists exactly as "
                             "published, that the parameter values are valid, and that NEXTGPU_USER is your "
                             "nextGPU user name")
        subs = data.get("subs")
        if data.get("taskID") != key or not isinstance(subs, list) or not data.get("session"):
            ref = await self.find(key, spec)
            if ref is not None:
                return ref
            raise self.error(ProtocolError, "nextGPU publish answered success without the task fields")
        ids = [s.get("subID") for s in subs if isinstance(s, dict) and isinstance(s.get("subID"), str)]
        connect = data.get("connect") if isinstance(data.get("connect"), str) else None
        return self._ref(key, body["title"], str(data.get("session")), connect, ids,
                         _int(data.get("imageNum")) or len(ids) or body["imageCount"])

    async def find(self, key: str, spec: SubmitSpec) -> Optional[RemoteRef]:
        task = await self._get_task(key)
        if task is None:
            return None
        raw = task.get("subTasks")
        subs = [s.get("subID") for s in (raw if isinstance(raw, list) else []) if isinstance(s, dict)]
        session = str(task.get("session") or "")
        return self._ref(key, str(task.get("title") or ""), session, self._guess_connect(session),
                         [s for s in subs if isinstance(s, str)], _int(task.get("subNum")))

    # ------------------------------------------------------------------ watch
    async def watch(self, ref: RemoteRef) -> AsyncIterator[TaskUpdate]:  # type: ignore[override]
        task_id = ref.remote_id
        data = ref.data or {}
        tr = _Tracker(task_id, [s for s in data.get("subs") or [] if isinstance(s, str)], data.get("count"))
        events: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        interval = self.poll_interval()
        connect = data.get("connect")
        ws_task: Optional[asyncio.Task] = None
        if isinstance(connect, str) and connect.startswith(("ws://", "wss://")) and task_id not in self._ws_gone:
            ws_task = asyncio.create_task(self._read_ws(connect, events))
        next_poll = loop.time() + (interval * WS_POLL_FACTOR if ws_task else 0.0)
        last_key: Any = None
        poll_failures = not_found = 0
        try:
            while True:
                tr.ws_live = ws_task is not None
                now = loop.time()
                if now >= next_poll:
                    kind, payload = "poll", None
                elif not events.empty():
                    kind, payload = events.get_nowait()
                else:
                    try:
                        kind, payload = await asyncio.wait_for(events.get(), next_poll - now)
                    except asyncio.TimeoutError:
                        kind, payload = "poll", None
                if kind == "ws":
                    tr.reason_polled = False  # news since the last poll
                    if tr.apply_ws(payload):
                        next_poll = loop.time()  # a failed attempt: ask getTask for the reason
                elif kind == "ws_end":
                    ws_task = None
                    if not tr.terminal():
                        self._ws_gone.add(task_id)  # the session is gone; a reconnect would get HTTP 400
                        next_poll = loop.time()
                elif kind == "poll":
                    next_poll = loop.time() + interval * (WS_POLL_FACTOR if ws_task else 1.0)
                    try:
                        task = await self._get_task(task_id)
                    except (TransientError, ProtocolError):
                        poll_failures += 1
                        if ws_task is None and poll_failures >= MAX_POLL_FAILURES:
                            raise
                        continue
                    poll_failures = 0
                    if task is None:
                        not_found += 1
                        if not tr.seen and not_found >= NOT_FOUND_POLLS:
                            raise self.error(NotFound, f"nextGPU does not know task {task_id}",
                                             hint="it was never accepted; it is safe to submit again")
                        continue
                    tr.apply_task(task)
                    tr.reason_polled = True  # fresh failureReason/retryCount are in
                if tr.terminal():
                    if tr.needs_reason() and not tr.reason_polled:
                        tr.reason_polled = True
                        try:
                            task = await self._get_task(task_id)
                            if task is not None:
                                tr.apply_task(task)
                        except (TransientError, ProtocolError):
                            pass
                    final = self._final(tr)
                    yield final
                    return
                update = self._progress(tr)
                key = (update.state, update.queue_position, update.queue_length, update.progress, update.message)
                if key != last_key:
                    last_key = key
                    yield update
        finally:
            if ws_task is not None:
                ws_task.cancel()
                try:
                    await ws_task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - only cleaning up
                    pass

    async def _read_ws(self, url: str, events: asyncio.Queue) -> None:
        api = urlsplit(self.base_url).hostname
        headers = self._headers() if urlsplit(url).hostname == api else {}
        ws = None
        try:
            ws = await self.http.ws_connect(url, headers=headers)
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        events.put_nowait(("ws", json.loads(msg.data)))
                    except ValueError:
                        continue
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break
        except (RemoteError, aiohttp.ClientError, asyncio.TimeoutError, OSError):
            pass  # refused (400 Invalid path) or dropped: getTask takes over
        finally:
            if ws is not None and not ws.closed:
                try:
                    await asyncio.wait_for(ws.close(), 2.0)
                except (asyncio.TimeoutError, aiohttp.ClientError, OSError):
                    pass
            events.put_nowait(("ws_end", None))

    def _progress(self, tr: _Tracker) -> TaskUpdate:
        subs = tr.ordered()
        n = tr.count or len(subs) or 1
        done = sum(1 for s in subs if s.phase in TERMINAL)
        running = [s for s in subs if s.phase == "running"]
        waiting = [s for s in subs if s.phase == "waiting"]
        parts = []
        position = length = None
        if running:
            state = State.RUNNING
            s = running[0]
            txt = "running on a GPU node"
            if s.failed_attempts:
                txt += f" (attempt {s.failed_attempts + 1} of {MAX_ATTEMPTS})"
            if s.estimate_ms:
                txt += (f"; per-attempt deadline {_duration(s.estimate_ms)} — not an ETA: past it nextGPU "
                        "fails the attempt and retries on another node")
            parts.append(txt)
        else:
            state = State.QUEUED
            if waiting:
                s = min(waiting, key=lambda x: x.spare if x.spare is not None else 1 << 30)
                if s.spare is not None:
                    position, length = s.spare, max(s.init or 0, s.spare)
                    parts.append(f"waiting in nextGPU's queue: {s.spare} ahead"
                                 + (f" (was {s.init})" if s.init and s.init != s.spare else ""))
                else:
                    parts.append("waiting in nextGPU's queue")
            else:
                position = 0
                parts.append("dispatched to a GPU node, in its local queue")
        retrying = [s for s in subs if s.failed_attempts and s.phase not in TERMINAL and s not in running]
        if retrying:
            s = retrying[0]
            why = "" if s.reason is None else f"; last failure: {_clip(s.reason) or 'no reason given'}"
            parts.append(f"retrying on another GPU node (attempt {s.failed_attempts + 1} of {MAX_ATTEMPTS}{why})")
        if n > 1:
            parts.insert(0, f"{done} of {n} images done")
        raw = ",".join(s.raw or "?" for s in subs)
        stage = sum(STAGE_PROGRESS.get(s.phase, 0.0) for s in subs)
        progress = round(min(stage / n, 0.99), 4)
        return TaskUpdate(state=state, queue_position=position, queue_length=length, progress=progress,
                          message="; ".join(parts), raw_state=f"sub-tasks {raw}" if raw else None)

    def _final(self, tr: _Tracker) -> TaskUpdate:
        subs = tr.ordered()
        outs = self._outputs_of(subs)
        failed = [s for s in subs if s.phase != "succeeded" or not s.urls]
        raw = ",".join(s.raw or "?" for s in subs)
        if outs:
            self._results[tr.task_id] = outs
            msg = f"{len(outs)} image{'s' if len(outs) != 1 else ''}"
            if failed:
                msg += (f"; {len(failed)} of {len(subs)} sub-tasks failed: "
                        f"{_clip(failed[0].reason) or 'nextGPU gave no reason'}")
            return TaskUpdate(state=State.SUCCEEDED, progress=1.0, message=msg, outputs=outs,
                              raw_state=f"sub-tasks {raw}")
        s = failed[0] if failed else None
        reason = _clip(s.reason) if s and s.reason else ""
        attempts = max((x.failed_attempts for x in subs), default=0)
        if reason == "estimateTimeout":
            detail = (f"every attempt ran past nextGPU's per-attempt deadline (estimateTimeout; "
                      f"{attempts} attempt(s))")
        elif s is not None and s.phase == "succeeded":
            detail = "nextGPU finished the task but delivered no image"
        else:
            detail = (f"nextGPU could not generate the image after {attempts or 1} attempt(s): "
                      f"{reason or 'nextGPU gave no reason'}")
        err = self.error(RemoteFailure, detail, code=reason or None,
                         hint="the app failed on nextGPU's GPU nodes; check the inputs (image URLs must be public) "
                              "and try again, or ask nextGPU about the app")
        return TaskUpdate(state=State.FAILED, progress=1.0, message=str(err), error=err, raw_state=f"sub-tasks {raw}")

    @staticmethod
    def _outputs_of(subs: list) -> list[Output]:
        seen: set = set()
        outs: list[Output] = []
        for s in subs:
            if s.phase != "succeeded":
                continue
            for url in s.urls:
                if url in seen:
                    continue
                seen.add(url)
                name = urlsplit(url).path.rsplit("/", 1)[-1] or f"{s.sub_id}.png"
                ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
                kind = "image" if ext in IMAGE_EXT else ("video" if ext in VIDEO_EXT else "file")
                outs.append(Output(kind=kind, url=url, filename=name, field=s.sub_id,
                                   mime=IMAGE_EXT.get(ext) or VIDEO_EXT.get(ext)))
        return outs

    async def outputs(self, ref: RemoteRef) -> list[Output]:
        cached = self._results.get(ref.remote_id)
        if cached is not None:
            return list(cached)
        task = await self._get_task(ref.remote_id)
        if task is None:
            raise self.error(NotFound, f"nextGPU does not know task {ref.remote_id}")
        if task.get("state") not in (3, 4):
            raise self.error(TransientError, f"nextGPU task {ref.remote_id} has not finished yet")
        tr = _Tracker(ref.remote_id, [], None)
        tr.apply_task(task)
        return self._outputs_of(tr.ordered())

    # ------------------------------------------------------------------ upload / check
    async def upload(self, data: bytes, mime: str, name: str) -> str:
        base = str(self.profile.get("image_upload_url") or "").strip()
        if not base:
            raise self._no_store()
        digest = hashlib.sha256(data).hexdigest()
        ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(mime, "png")
        parts = urlsplit(base)
        put_url = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + f"/{digest}.{ext}",
                              parts.query, ""))
        public = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + f"/{digest}.{ext}", "", ""))
        resp = await self.http.request("PUT", put_url, data=data, headers={"Content-Type": mime or "image/png"})
        if resp.status in (401, 403):
            raise self.error(ConfigError, f"the image store refused the upload (HTTP {resp.status})",
                             field="image_upload_url",
                             hint="image_upload_url must accept an HTTP PUT of <url>/<sha256>.png")
        if not resp.ok:
            raise self.error(TransientError if resp.status >= 500 else ProtocolError,
                             f"the image store answered HTTP {resp.status} to PUT {strip_query(put_url)}",
                             field="image_upload_url")
        url = None
        if resp.body.strip():
            try:
                answer = json.loads(resp.body)
            except ValueError:
                answer = None
            if isinstance(answer, dict) and isinstance(answer.get("url"), str):
                url = answer["url"].strip()
        if not url or not url.startswith(("http://", "https://")):
            url = public
        return url

    async def check(self) -> str:
        self._user()
        probe = "nextGPUconnectioncheck" + f"{secrets.randbelow(10 ** 8):08d}"
        task = await self._get_task(probe)
        found = " (the probe id exists?)" if task is not None else ""
        return (f"nextGPU answered getTask{found}; the user name is only checked when a task is published "
                "(nextGPU has no account endpoint)")


PROVIDER = NextGPU
