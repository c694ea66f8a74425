"""A faithful fake of nextGPU (www.nextgpu.net), built from ``shared/providers/nextgpu.md`` and
``shared/seeds/nextgpu-api.md`` only.

Routes (API listener; names in brackets are what ``faults`` and ``seen`` use):
- ``POST /session/publish`` [publish] — ``{"codeID":200,"msg":"success","session","connect","taskID",
  "imageNum","subs"}``; refusals keep ``codeID`` 200 with ``msg "taskPublish Failed"``; bad JSON or a
  wrong JSON type → HTTP 400 ``{"codeId":301,…}`` (text/plain); a non-string enum value → HTTP 500, empty.
- ``POST /backend/getTask`` [getTask] — ``{"codeId":200,"msg":"success","task":{…}}``; unknown id →
  the zero-valued task.
- ``GET /ws/user/{session}`` [ws] — full snapshots, ``SessionSync`` on connect (no top-level status),
  broadcast of every scheduling event to every session, end by dropping TCP without a close frame;
  unknown session → 400 ``Invalid path``.
- ``PUT|GET /_store/{name}`` [store_put, store_get] — NOT nextGPU: a stand-in for the user's own public
  image store (``image_upload_url``); PUT answers 201 ``{"url": …}``.
Result files live on a second listener (``fake.oss``, route [file]) like Alibaba OSS: a different
host:port, no auth header, 404 ``NoSuchKey`` XML when missing (``expire_files``: every file gone).
By default the URLs are plain public-read object URLs, as in the SEED. ``fake.oss.signed = True``
(INFERRED: a private bucket) makes every answer that carries a URL (getTask ``urls``, WebSocket
``ossUrls``) hand out a fresh OSS V1 presigned URL (``?Expires=&OSSAccessKeyId=&Signature=``, valid
``url_ttl_s``); an expired one answers 403 ``AccessDenied`` "Request has expired.", a tampered one
403 ``SignatureDoesNotMatch``; ``fake.oss.expire_all()`` expires every URL handed out before the
next file request, so only a fresh getTask gives working links.

Auth (INFERRED, see facts §2.3): default mode requires a known ``userName`` (``users``) — otherwise
``taskPublish Failed``; strict mode (``token`` set) requires ``Authorization: Bearer <token>`` on
publish and getTask — otherwise HTTP 401 ``{"codeId":401,"msg":"unauthorized"}``.

Scheduler: a global FIFO (retries go to the head) served by ``slots`` simulated GPU nodes. A sub-task
goes 0 → 1 → 2 (InLocalQueue) → 3 (GenerateStart, estimateMs) → 4 (ImageGenerateSuccess) | back to 0
(ImageGenerateFailed, retried on another node) | 5 after ``max_attempts``. ``next_task(**knobs)``
scripts faults for the next published task: ``fail_attempts``/``failure_reason`` (node errors),
``estimate_ms`` (budget overrun → ``estimateTimeout``), ``reject_results`` (``ImageGenerateSuccess``
event while the sub-task goes back to 0), ``stuck`` (never starts), ``silent_final_failure``,
``hide_subtasks`` (getTask drops sub-tasks without exactly one file), ``fail_subs`` (these sub-tasks
always fail), ``ahead`` (foreign jobs queued
first — their start/end are broadcast as "foreign" snapshots). Fake-wide: ``balance_error`` (305),
``db_error`` (getTask 304 ``n`` times), ``expire_files``.
"""
from __future__ import annotations

import asyncio
import base64
import collections
import dataclasses
import hashlib
import hmac
import json
import random
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Optional
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web

from . import nextgpu_apps as apps_mod
from .nextgpu_apps import CST, UTC, App, db_time, digits, go_json, ws_time
from .toolkit import Clock, FakeServer, png_bytes

FAILURE_MEASUREMENT = "The computing power node failed the measurement"
ESTIMATE_TIMEOUT = "estimateTimeout"


@dataclass
class Knobs:
    fail_attempts: int = 0
    failure_reason: str = ""
    estimate_ms: Optional[int] = None
    reject_results: int = 0
    stuck: bool = False
    silent_final_failure: bool = False
    hide_subtasks: bool = False
    ahead: int = 0
    fail_subs: tuple = ()  # 1-based sub-task indices whose every attempt fails


@dataclass
class Sub:
    sub_id: str
    task: "Task"
    graph: dict
    create_time: datetime
    status: int = 0  # WebSocket status 0..5
    db_state: int = 0  # getTask state 0..4
    init_wait: int = 0
    publish_time: Optional[datetime] = None  # dispatch time
    start: Optional[datetime] = None
    end: Optional[datetime] = None
    start_succeeded: bool = False
    estimate_ms: int = 0
    oss_keys: Optional[list] = None  # WebSocket ossUrls (as OSS object keys): None until success
    keys: list = field(default_factory=list)  # getTask urls (as OSS object keys)
    oss_durations: list = field(default_factory=list)
    oss_sizes: list = field(default_factory=list)
    inference_ms: int = 0
    system_uuid: str = ""
    retry_count: int = 0
    error_nodes: list = field(default_factory=list)
    failure_reason: str = ""
    output: str = ""
    attempts: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in (4, 5)


@dataclass
class Task:
    task_id: str
    session: str
    app: App
    request: dict  # normalised publish request
    data: dict
    generated: dict
    image_path: str
    ratio: int
    knobs: Knobs
    publish_time: datetime
    subs: list = field(default_factory=list)
    state: int = 0
    start_time: Optional[datetime] = None
    completion_time: Optional[datetime] = None
    failed_last: bool = False


@dataclass
class Conn:
    ws: web.WebSocketResponse
    request: web.Request
    drop_after: Optional[int] = None
    sent: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    dead: bool = False


@dataclass
class Session:
    sid: str
    task: Task
    conns: list = field(default_factory=list)


class _OssHost(FakeServer):
    """The result-file host (Alibaba OSS stand-in): no auth header; public-read object URLs, or
    OSS V1 presigned URLs when ``signed`` (see the module docstring)."""

    name = "nextgpu-oss"
    BUCKET = "ngpu"
    ACCESS_KEY_ID = "LTAI5tNextGPUFakeKey"

    def __init__(self, *, now: Callable[[], float] = time.time, **kw: Any):
        self.files: dict[str, bytes] = {}
        self.expired = False  # every file gone (retention over): 404 NoSuchKey
        self.signed = False
        self.url_ttl_s = 3600
        self._now = now
        self._secret = secrets.token_bytes(20)
        self._issued = 0  # the latest Expires handed out
        self._cutoff = 0  # URLs expiring at or before this have expired
        self._expire_on_next_get = False
        super().__init__(**kw)

    def _signature(self, key: str, expires: int) -> str:
        to_sign = f"GET\n\n\n{expires}\n/{self.BUCKET}/{key}"
        return base64.b64encode(hmac.new(self._secret, to_sign.encode(), hashlib.sha1).digest()).decode()

    def url_for(self, key: str, now: float) -> str:
        if not self.signed:
            return f"{self.url}/{key}"
        expires = max(int(now) + self.url_ttl_s, self._cutoff + 1)
        self._issued = max(self._issued, expires)
        query = urlencode({"Expires": expires, "OSSAccessKeyId": self.ACCESS_KEY_ID,
                           "Signature": self._signature(key, expires)})
        return f"{self.url}/{quote(key)}?{query}"

    def expire_all(self) -> None:
        """Every URL handed out so far — and until the next file request — has expired: the client's
        links are stale by the time it uses them; a fresh answer of the service gives working ones."""
        self._cutoff = self._issued
        self._expire_on_next_get = True

    def setup_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/{key:.+}", self.get_file, name="file")

    async def get_file(self, request: web.Request) -> web.Response:
        if self._expire_on_next_get:
            self._expire_on_next_get, self._cutoff = False, max(self._cutoff, self._issued)
        key = request.match_info["key"]
        data = self.files.get(key)
        if data is None or self.expired:
            return _oss_error(404, "NoSuchKey", "The specified key does not exist.")
        if self.signed:
            q = request.query
            expires = q.get("Expires", "")
            if not expires.isdigit() or q.get("OSSAccessKeyId") != self.ACCESS_KEY_ID or \
                    not hmac.compare_digest(q.get("Signature", ""), self._signature(key, int(expires))):
                return _oss_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match "
                                                                "the signature you provided.")
            if int(expires) <= self._cutoff or int(expires) < self._now():
                return _oss_error(403, "AccessDenied", "Request has expired.")
        return web.Response(body=data, content_type=apps_mod.CTYPES.get(key.rsplit(".", 1)[-1], "image/png"))


def _oss_error(status: int, code: str, message: str) -> web.Response:
    xml = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>{code}</Code>\n  <Message>{message}"
           f"</Message>\n  <RequestId>{uuid.uuid4().hex[:24].upper()}</RequestId>\n  "
           f"<HostId>{_OssHost.BUCKET}.oss-accelerate.aliyuncs.com</HostId>\n</Error>\n")
    return web.Response(status=status, text=xml, content_type="application/xml")


class FakeNextGPU(FakeServer):
    name = "nextgpu"

    def credentials(self) -> dict:
        return {"NEXTGPU_BASE_URL": self.url, "NEXTGPU_USER": sorted(self.users)[0],
                "NEXTGPU_IMAGE_UPLOAD_URL": f"{self.url}/_store"}

    def __init__(self, *, clock: Optional[Clock] = None, port: int = 0, users: tuple = ("fxh7622",),
                 token: Optional[str] = None, slots: int = 1, dispatch_s: float = 0.05,
                 local_queue_s: float = 0.05, run_s: float = 0.3, foreign_run_s: float = 0.1,
                 estimate_ms: int = 21_120_000, max_attempts: int = 3, slow_run_s: float = 5.0,
                 ws_scheme_host: Optional[str] = None):
        self.users = set(users)
        self.tokens: set = {token} if token else set()  # strict mode when non-empty
        self.slots = slots
        self.dispatch_s = dispatch_s
        self.local_queue_s = local_queue_s
        self.run_s = run_s
        self.foreign_run_s = foreign_run_s
        self.estimate_ms = estimate_ms
        self.max_attempts = max_attempts
        self.apps: dict[str, App] = apps_mod.default_apps(slow_run_s)
        self.tasks: dict[str, Task] = {}
        self.sessions: dict[str, Session] = {}
        self.store: dict[str, bytes] = {}
        self.store_answers_url = True
        self.web: dict[str, bytes] = {}  # "the internet" for input URLs the tests must not really fetch
        self.balance_error = False
        self.db_error = 0
        self.ws_scheme_host = ws_scheme_host
        self._next_knobs: collections.deque = collections.deque()
        self.default_knobs = Knobs()  # for tasks nothing was scripted for (e.g. ahead=1 to always queue)
        self._queue: collections.deque = collections.deque()
        self._busy = 0
        self._foreign_seq = 0
        self._workers: list[asyncio.Task] = []
        self._wake: Optional[asyncio.Event] = None
        self._stopping: Optional[asyncio.Event] = None
        self._epoch = datetime.now(UTC)
        self._last_sid = ""
        self._last_file = ""
        self._rng = random.Random(7622)
        super().__init__(clock=clock, port=port)
        self.oss = _OssHost(clock=self.clock, now=lambda: self.now().timestamp())

    # ------------------------------------------------------------------ knobs
    @property
    def token(self) -> Optional[str]:
        return next(iter(self.tokens), None)

    @token.setter
    def token(self, value: Optional[str]) -> None:
        self.tokens = {value} if value else set()

    def next_task(self, **knobs: Any) -> None:
        """Script service-level faults for the next published task (see module docstring)."""
        self._next_knobs.append(Knobs(**knobs))

    def add_app(self, app: App) -> None:
        self.apps[app.title] = app

    @property
    def expire_files(self) -> bool:
        return self.oss.expired

    @expire_files.setter
    def expire_files(self, value: bool) -> None:
        self.oss.expired = value

    def task_count(self) -> int:
        """Tasks created (each one would be paid)."""
        return len(self.tasks)

    # ------------------------------------------------------------------ lifecycle
    def setup_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/session/publish", self.publish, name="publish")
        router.add_post("/backend/getTask", self.get_task, name="getTask")
        router.add_get("/ws/user/{session}", self.ws_user, name="ws")
        router.add_put("/_store/{name}", self.store_put, name="store_put")
        router.add_get("/_store/{name}", self.store_get, name="store_get")

    async def start(self) -> str:
        await self.oss.start()
        url = await super().start()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._workers = [asyncio.create_task(self._worker(i)) for i in range(self.slots)]
        return url

    async def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        for w in self._workers:
            w.cancel()
        for w in self._workers:
            try:
                await w
            except (asyncio.CancelledError, Exception):
                pass
        self._workers = []
        for sess in list(self.sessions.values()):
            for c in list(sess.conns):
                _drop(c)
        await super().stop()
        await self.oss.stop()

    # ------------------------------------------------------------------ helpers
    def now(self) -> datetime:
        return self._epoch + timedelta(seconds=self.clock.now())

    def _new_session_id(self) -> str:
        sid = digits(self.now(), CST)
        while sid <= self._last_sid:
            sid = str(int(self._last_sid) + 1)
        self._last_sid = sid
        return sid

    def _new_file_name(self) -> str:
        name = digits(self.now(), UTC)
        while name <= self._last_file:
            name = str(int(self._last_file) + 1)
        self._last_file = name
        return name

    def _connect_url(self, sid: str) -> str:
        base = self.ws_scheme_host or self.url.replace("http://", "ws://", 1)
        return f"{base}/ws/user/{sid}"

    def _auth_refused(self, request: web.Request) -> Optional[web.Response]:
        if not self.tokens:
            return None
        if request.headers.get("Authorization", "") not in {f"Bearer {t}" for t in self.tokens}:
            return _json({"codeId": 401, "msg": "unauthorized"}, status=401)
        return None

    def _spare(self, sub: Sub) -> int:
        if sub.status != 0:
            return 0
        try:
            pos = list(self._queue).index(sub)
        except ValueError:
            return 0
        return pos + self._busy

    # ------------------------------------------------------------------ publish
    async def publish(self, request: web.Request) -> web.Response:
        refused = self._auth_refused(request)
        if refused is not None:
            return refused
        raw = await request.read()
        try:
            body = _bind_publish(raw)
        except _BindError as e:
            return _bind_failed("publish", str(e))
        if self.balance_error:
            return _json({"codeId": 305, "msg": "insufficient credits"})
        failed = _json({"codeID": 200, "msg": "taskPublish Failed"})
        user, title, task_id = body.get("username"), body.get("title"), body.get("taskid")
        app = self.apps.get(title or "")
        count = body.get("imagecount") or 1
        ratio = body.get("inputimagescaledratio") or 1
        data = body.get("data") or {}
        params = data.get("parameters") or {}
        if not user or user not in self.users or app is None or not task_id or task_id in self.tasks \
                or not 1 <= count <= 20:
            return failed
        try:
            generated = apps_mod.bind(app, params)
        except apps_mod.EnumPanic:
            return web.Response(status=500)
        except apps_mod.BindError:
            return failed
        knobs = self._next_knobs.popleft() if self._next_knobs else dataclasses.replace(self.default_knobs)
        now = self.now()
        norm = {"userName": user, "title": title, "inputImageScaledRatio": ratio, "imageCount": count,
                "imagePath": body.get("imagepath") or "", "taskID": task_id,
                "data": {"parameters": params}}
        sid = self._new_session_id()
        task = Task(task_id, sid, app, norm, {"parameters": params}, generated, norm["imagePath"], ratio,
                    knobs, now)
        for i in range(count):
            seeded = apps_mod.with_seed(app, generated, self._rng.randint(0, 999999))
            task.subs.append(Sub(f"{task_id}_{i + 1:04d}", task, seeded, now))
        self.tasks[task_id] = task
        self.sessions[sid] = Session(sid, task)
        for _ in range(knobs.ahead):
            self._foreign_seq += 1
            self._queue.append(("foreign", self._foreign_seq))
        for sub in task.subs:
            self._queue.append(sub)
        for sub in task.subs:
            sub.init_wait = self._spare(sub)
        self._kick()
        return _json({"codeID": 200, "msg": "success", "session": sid, "connect": self._connect_url(sid),
                      "taskID": task_id, "imageNum": count,
                      "subs": [{"subID": s.sub_id, "initWaitCount": s.init_wait,
                                "spareWaitCount": self._spare(s)} for s in task.subs]})

    # ------------------------------------------------------------------ getTask
    async def get_task(self, request: web.Request) -> web.Response:
        refused = self._auth_refused(request)
        if refused is not None:
            return refused
        try:
            body = _lower_keys(json.loads(await request.read()))
            task_id = body.get("taskid", "")
            if not isinstance(task_id, str):
                raise _BindError(f"json: cannot unmarshal {_go_type(task_id)} into Go struct field "
                                 f"GetTaskRequest.taskID of type string")
        except (ValueError, UnicodeDecodeError, AttributeError) as e:
            return _bind_failed("getTask", f"invalid character in JSON: {e.__class__.__name__}")
        except _BindError as e:
            return _bind_failed("getTask", str(e))
        if self.db_error:
            self.db_error -= 1
            return _json({"codeId": 304, "msg": "getTask Failed err=[Error 1040: Too many connections]"})
        task = self.tasks.get(task_id)
        return _json({"codeId": 200, "msg": "success", "task": self._task_json(task)})

    def _task_json(self, t: Optional[Task]) -> dict:
        if t is None:
            return {"taskID": "", "session": "", "publishTime": "", "completionTime": "", "title": "",
                    "input": "", "state": 0, "billMode": False, "duration": 0, "subNum": 0,
                    "workspaceID": "", "generatedData": "", "startTime": "", "delete": False,
                    "request": "", "subTasks": None}
        subs = [s for s in t.subs if not (t.knobs.hide_subtasks and len(s.keys) != 1)]
        completion_tz = UTC if t.failed_last else CST
        return {
            "taskID": t.task_id, "session": t.session, "publishTime": db_time(t.publish_time, UTC),
            "completionTime": db_time(t.completion_time, completion_tz), "title": t.app.title,
            "input": go_json(t.data), "state": t.state, "billMode": False,
            "duration": sum(s.inference_ms for s in t.subs), "subNum": len(t.subs),
            "workspaceID": t.app.workspace, "generatedData": go_json(t.generated, sort=True),
            "startTime": db_time(t.start_time, CST), "delete": False, "request": go_json(t.request),
            "subTasks": [self._sub_json(s) for s in subs] or None,
        }

    def _sub_json(self, s: Sub) -> dict:
        return {
            "subID": s.sub_id, "startTime": db_time(s.start, CST if s.start_succeeded else UTC),
            "endTime": db_time(s.end, CST), "estimateTime": s.estimate_ms,
            "input": go_json(s.graph, sort=True), "systemUUID": s.system_uuid, "state": s.db_state,
            "output": s.output, "workspaceID": s.task.app.workspace,
            "publishTime": db_time(s.publish_time, CST), "urls": "\n".join(self._urls(s.keys)),
            "ossDuration": "\n".join(s.oss_durations),
            "ossSize": s.oss_sizes[0] if len(s.oss_sizes) == 1 else 0,
            "inferenceDuration": s.inference_ms, "createTime": db_time(s.create_time, UTC),
            "retryCount": s.retry_count, "errorNodes": ",".join(s.error_nodes), "delete": False,
            "failureReason": s.failure_reason,
        }

    # ------------------------------------------------------------------ WebSocket
    async def ws_user(self, request: web.Request) -> web.StreamResponse:
        sess = self.sessions.get(request.match_info["session"])
        if sess is None:
            return web.Response(status=400, text="Invalid path")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        fault = self.faults.take("ws", {"ws_drop"})
        conn = Conn(ws, request, drop_after=fault.after if fault else None)
        sess.conns.append(conn)
        await self._send(sess, conn, self._snapshot(sess.task, "SessionSync", top=False))
        try:
            async for _msg in ws:  # client messages are read and ignored (SRC)
                pass
        except Exception:  # noqa: BLE001 - a dropped transport ends the loop any way it likes
            pass
        finally:
            conn.dead = True
            if conn in sess.conns:
                sess.conns.remove(conn)
            if not sess.conns and self.sessions.get(sess.sid) is sess:
                del self.sessions[sess.sid]  # the last connection went: the session is gone (SRC)
        return ws

    def _snapshot(self, t: Task, event: str, top: bool = True) -> dict:
        msg: dict = {"messageID": 1, "taskID": t.task_id, "event": event}
        if top:
            if all(s.terminal for s in t.subs):
                msg["status"] = 4
            elif any(s.status in (1, 2, 3, 4) for s in t.subs):
                msg["status"] = 3
            else:
                msg["status"] = 0
        msg["tasks"] = [{"subID": s.sub_id, "status": s.status, "initWaitCount": s.init_wait,
                         "spareWaitCount": self._spare(s), "publishTime": ws_time(t.publish_time),
                         "startTime": ws_time(s.start), "estimateMs": s.estimate_ms, "endTime": ws_time(s.end),
                         "ossUrls": None if s.oss_keys is None else self._urls(s.oss_keys)} for s in t.subs]
        return msg

    async def _send(self, sess: Session, conn: Conn, msg: dict) -> None:
        if conn.dead:
            return
        async with conn.lock:
            try:
                await conn.ws.send_str(go_json(msg))
            except Exception:  # noqa: BLE001 - a gone client is the client's problem
                conn.dead = True
                return
            conn.sent += 1
        if conn.drop_after is not None and conn.sent >= conn.drop_after:
            _drop(conn)
            if conn in sess.conns:
                sess.conns.remove(conn)
            if not sess.conns and self.sessions.get(sess.sid) is sess:
                del self.sessions[sess.sid]

    async def _broadcast(self, event: str, final: Optional[Task] = None) -> None:
        """Every scheduling event re-sends every connected session a snapshot of its task (SRC)."""
        for sess in list(self.sessions.values()):
            silent = final is sess.task and final.failed_last and final.knobs.silent_final_failure
            if not silent:
                msg = self._snapshot(sess.task, event)
                for conn in list(sess.conns):
                    await self._send(sess, conn, msg)
            if final is sess.task:  # end of stream: drop TCP without a close frame, forget the session
                for conn in list(sess.conns):
                    _drop(conn)
                self.sessions.pop(sess.sid, None)

    # ------------------------------------------------------------------ the user's image store
    async def store_put(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.store[name] = await request.read()
        url = f"{self.url}/_store/{name}"
        if not self.store_answers_url:
            return web.Response(status=200)
        return _json({"url": url}, status=201)

    async def store_get(self, request: web.Request) -> web.Response:
        data = self.store.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404, text="not found")
        return web.Response(body=data, content_type="image/png")

    # ------------------------------------------------------------------ scheduler
    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _next_job(self) -> Any:
        assert self._wake is not None
        while not self._queue:
            self._wake.clear()
            await self._wake.wait()
        return self._queue.popleft()

    async def _worker(self, slot: int) -> None:
        node_uuid = str(uuid.UUID(int=self._rng.getrandbits(128)))
        while True:
            job = await self._next_job()
            self._busy += 1
            try:
                if isinstance(job, tuple):  # someone else's image: broadcast "foreign" snapshots
                    await self._broadcast("GenerateStart")
                    await self.clock.sleep(self.foreign_run_s)
                    self._busy -= 1
                    await self._broadcast("ImageGenerateSuccess")
                    continue
                await self._attempt(job, node_uuid)
            finally:
                if not isinstance(job, tuple):
                    self._busy -= 1
                    self._kick()

    async def _attempt(self, sub: Sub, node_uuid: str) -> None:
        t = sub.task
        sub.status, sub.db_state = 1, 1
        sub.system_uuid = node_uuid
        sub.publish_time = self.now()
        await self.clock.sleep(self.dispatch_s)
        sub.status = 2
        await self._broadcast("InLocalQueue")
        await self.clock.sleep(self.local_queue_s)
        if t.knobs.stuck:  # the node's ComfyUI refused the graph: no GenerateStart ever follows
            assert self._stopping is not None
            await self._stopping.wait()
            return
        sub.attempts += 1
        sub.status, sub.db_state = 3, 2
        sub.start, sub.start_succeeded, sub.end = self.now(), False, None
        budget = t.knobs.estimate_ms if t.knobs.estimate_ms is not None else self.estimate_ms
        sub.estimate_ms = int(budget * max(1, t.ratio) / 8) if t.knobs.estimate_ms is None else budget
        if t.start_time is None:
            t.start_time, t.state = sub.start, 2
        await self._broadcast("GenerateStart")
        run_s = t.app.run_s if t.app.run_s is not None else self.run_s
        if sub.estimate_ms / 1000 < run_s:
            await self.clock.sleep(sub.estimate_ms / 1000)
            return await self._fail(sub, ESTIMATE_TIMEOUT, "ImageGenerateFailed")
        fetched: dict[str, bytes] = {}
        for name in t.app.image_params:
            url = str(apps_mod.param_value(t.app, t.generated, name))
            data, err = (self.web[url], "") if url in self.web else await _fetch(url)
            if data is None:
                await self.clock.sleep(run_s)
                return await self._fail(sub, f"input image download failed: {err}", "ImageGenerateFailed")
            fetched[name] = data
        await self.clock.sleep(run_s)
        if sub.attempts <= t.knobs.fail_attempts or int(sub.sub_id.rsplit("_", 1)[1]) in t.knobs.fail_subs:
            return await self._fail(sub, t.knobs.failure_reason, "ImageGenerateFailed")
        files = self._render(t, sub, fetched)
        if sub.attempts <= t.knobs.fail_attempts + t.knobs.reject_results:
            sub.keys = [self._upload(t, *f) for f in files]  # SRC writes urls, then rejects the result
            return await self._fail(sub, FAILURE_MEASUREMENT, "ImageGenerateSuccess")
        await self._succeed(sub, files)

    def _render(self, t: Task, sub: Sub, fetched: dict) -> list[tuple[bytes, str]]:
        """(bytes, extension) of each file the node delivers: only ``images`` lists (facts §7.4)."""
        app = t.app
        if app.render == "echo":
            return [(fetched[app.image_params[0]], "png")]
        if app.render == "animated":  # SaveAnimatedWEBP lists its file under images: delivered
            return [(apps_mod.animated_webp(), "webp")]
        prompt = apps_mod.param_value(app, t.generated, "promptText") or ""
        rgb = apps_mod.solid_colour(prompt)
        if app.render == "pair":
            return [(png_bytes(rgb, (8, 8)), "png"), (png_bytes(apps_mod.inverse(rgb), (8, 8)), "png")]
        size = (int(t.generated["5"]["inputs"]["width"]) // 64, int(t.generated["5"]["inputs"]["height"]) // 64)
        return [(png_bytes(rgb, size), "png")]

    def _upload(self, t: Task, data: bytes, ext: str = "png") -> str:
        key = f"{t.image_path.strip('/')}/{self._new_file_name()}.{ext}".lstrip("/")
        self.oss.files[key] = data
        return key

    def _urls(self, keys: list) -> list:
        """The URLs of OSS objects as an answer hands them out now (fresh signatures when signed)."""
        return [self.oss.url_for(k, self.now().timestamp()) for k in keys]

    async def _succeed(self, sub: Sub, files: list[tuple[bytes, str]]) -> None:
        t = sub.task
        end = self.now()
        sub.keys = [self._upload(t, *f) for f in files]
        sub.oss_keys = list(sub.keys)
        sub.oss_durations = [str(120 + 7 * i) for i in range(len(files))]
        sub.oss_sizes = [len(f) for f, _ in files]
        sub.inference_ms = max(1, int((end - sub.start).total_seconds() * 1000)) if sub.start else 1
        sub.status, sub.db_state, sub.end, sub.start_succeeded = 4, 3, end, True
        saved_nodes = [n for n, kind in t.app.outputs.items() if kind == "output"]
        ext = files[0][1] if files else "png"
        saved = {n: [f"{t.app.template[n]['inputs'].get('filename_prefix', 'ComfyUI')}_{1:05d}_.{ext}"]
                 for n in saved_nodes}
        graph_ran = json.loads(json.dumps(sub.graph))
        for name in t.app.image_params:
            node = t.app.mapping[name].split("->")[0]
            graph_ran[node]["inputs"]["image"] = digits(sub.start or end, UTC) + ".png"
        pid = str(uuid.UUID(int=self._rng.getrandbits(128)))
        start_ms = int((sub.start or end).timestamp() * 1000)
        sub.output = apps_mod.history_json(pid, 200 + len(self.tasks), graph_ran,
                                           str(uuid.UUID(int=self._rng.getrandbits(128))), t.app, saved,
                                           start_ms, start_ms + sub.inference_ms)
        await self._after_terminal_or_change(sub, "ImageGenerateSuccess", success=True)

    async def _fail(self, sub: Sub, reason: str, event: str) -> None:
        sub.retry_count += 1
        sub.error_nodes.append(sub.system_uuid)
        sub.failure_reason = reason
        sub.db_state, sub.end = 4, self.now()
        if sub.retry_count >= self.max_attempts:
            sub.status = 5
            await self._after_terminal_or_change(sub, event, success=False)
            return
        sub.status = 0  # re-queued at the head for another node
        self._queue.appendleft(sub)
        self._kick()
        await self._broadcast(event)

    async def _after_terminal_or_change(self, sub: Sub, event: str, success: bool) -> None:
        t = sub.task
        if all(s.terminal for s in t.subs):
            t.completion_time = self.now()
            t.state = 3 if success else 4
            t.failed_last = not success
            await self._broadcast(event, final=t)
        else:
            await self._broadcast(event)


# ---------------------------------------------------------------------- wire helpers

class _BindError(Exception):
    pass


_PUBLISH_TYPES = {"username": str, "title": str, "inputtype": str, "imagepath": str, "taskid": str,
                  "imagecount": int, "inputimagescaledratio": int, "systemuuid": str, "data": dict}
_GO_NAMES = {"username": "userName", "title": "title", "inputtype": "inputType", "imagepath": "imagePath",
             "taskid": "taskID", "imagecount": "imageCount", "inputimagescaledratio": "inputImageScaledRatio",
             "systemuuid": "systemUUID", "data": "data"}


def _go_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def _lower_keys(obj: Any) -> dict:
    if not isinstance(obj, dict):
        raise _BindError(f"json: cannot unmarshal {_go_type(obj)} into Go value of type main.Request")
    return {str(k).lower(): v for k, v in obj.items()}


def _bind_publish(raw: bytes) -> dict:
    """Go ``ShouldBindJSON``: keys case-insensitive, unknown keys ignored, wrong JSON types refused."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise _BindError(f"invalid character in JSON ({e.__class__.__name__})") from None
    body = _lower_keys(obj)
    out: dict = {}
    for key, value in body.items():
        want = _PUBLISH_TYPES.get(key)
        if want is None or value is None:
            continue
        ok = (isinstance(value, int) and not isinstance(value, bool)) if want is int else isinstance(value, want)
        if not ok:
            go = "int" if want is int else ("string" if want is str else "main.Data")
            raise _BindError(f"json: cannot unmarshal {_go_type(value)} into Go struct field "
                             f"PublishRequest.{_GO_NAMES[key]} of type {go}")
        out[key] = value
    if "data" in out:
        data = {str(k).lower(): v for k, v in out["data"].items()}
        params = data.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise _BindError(f"json: cannot unmarshal {_go_type(params)} into Go struct field "
                             f"Data.data.parameters of type map[string]interface {{}}")
        out["data"] = {"parameters": params or {}}
    return out


def _bind_failed(handler: str, err: str) -> web.Response:
    # The framework writes the 400 before the JSON: the body is JSON, the type is sniffed as text.
    body = go_json({"codeId": 301, "msg": f"{handler} BindJSON Failed err=[{err}]"})
    return web.Response(status=400, body=body.encode(), content_type="text/plain", charset="utf-8")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=go_json(data).encode(), content_type="application/json",
                        charset="utf-8")


def _drop(conn: Conn) -> None:
    """Close the TCP connection without a WebSocket close frame (the client sees 1006)."""
    conn.dead = True
    transport = conn.request.transport
    if transport is not None:
        transport.close()


async def _fetch(url: str) -> tuple[Optional[bytes], str]:
    """What the GPU node does with an input URL: download it (INFERRED failure wording)."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
            async with s.get(url) as r:
                if r.status != 200:
                    return None, f"HTTP {r.status}"
                return await r.read(), ""
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
        return None, e.__class__.__name__
