"""A faithful fake of RunningHub (runninghub.cn / runninghub.ai), built from
``shared/providers/runninghub.md`` and its samples only.

Routes (name → path), all answering HTTP 200 with the documented envelopes:

=====================  ==================================================  =====================
name                   path                                                auth
=====================  ==================================================  =====================
create                 POST /task/openapi/create                           body ``apiKey``
app_run                POST /task/openapi/ai-app/run                       body ``apiKey``
outputs                POST /task/openapi/outputs                          body ``apiKey``
status                 POST /task/openapi/status                           body ``apiKey``
cancel                 POST /task/openapi/cancel                           body ``apiKey``
workflow_json          POST /api/openapi/getJsonApiFormat                  body ``apiKey``
app_demo               GET  /api/webapp/apiCallDemo?apiKey=&webappId=      query ``apiKey``
account                POST /uc/openapi/accountStatus                      body ``apikey`` (lower case)
upload_legacy          POST /task/openapi/upload (multipart)               form ``apiKey``
lora_url               POST /api/openapi/getLoraUploadUrl                  body ``apiKey``
lora_put               PUT  /lora/{name}                                   presigned (any)
webhook_detail         POST /task/openapi/getWebhookDetail                 body ``apiKey``
webhook_retry          POST /task/openapi/retryWebhook                     body ``apiKey``
upload                 POST /openapi/v2/media/upload/binary (multipart)    ``Authorization: Bearer``
query                  POST /openapi/v2/query                              Bearer
queue_status           GET  /openapi/v2/queue/status                       Bearer
v2_run_workflow        POST /openapi/v2/run/workflow/{id}                  Bearer
v2_run_app             POST /openapi/v2/run/ai-app/{id}                    Bearer
file                   GET  /files/...  (result and v2 upload files)       signed link (below)
ws                     GET  /ws/c_instance?c_host=&c_port=&clientId=&workflowId=&Rh-Comfy-Auth=
=====================  ==================================================  =====================

Any ``Host`` header is accepted and never routed on; a Bearer header on v1 routes is ignored.
State machine per task, driven by ``self.clock``: QUEUED for ``queue_s`` → RUNNING for ``run_s``
(``slow_run_s`` for the built-in slow workflow) with native ComfyUI WebSocket frames → SUCCESS
(outputs visible ``output_lag_s`` after ``execution_success``) or FAILED (805 + failedReason).
Cancel → FAILED (805, empty failedReason; INFERRED); a cancel of a finished task answers 0 and
changes nothing (INFERRED, facts §3.6). Concurrency per key: ``keys[key]["limit"]`` (default
``concurrency_limit`` = 3, the third-party figure for shared keys) tasks in QUEUED+RUNNING; over it
NORMAL/SHARED keys get 421, EXCLUSIVE keys 415, or with ``usePersonalQueue`` a QUEUED task that
waits for a slot (814 beyond ``personal_queue_max``).

Result and upload links are signed like the COS links seen in the facts (``q-sign-algorithm``,
``q-sign-time=<start>;<end>``, ``q-signature``): each answer that lists files signs them afresh,
valid ``url_ttl_s`` (24 h, the integrators' figure) for results and one day for v2 uploads. A link
past its window answers 403 ``AccessDenied``/"Request has expired", a forged one 403
``SignatureDoesNotMatch`` (XML, as COS does). INFERRED: the documented outputs sample shows an
unsigned CDN link; the COS host seen in the facts signs them.

Service knobs beside ``self.faults``: ``fail_next(node_id=None, ...)`` (805 in a named node),
``content_safety_next()`` (805, v2 errorCode 1501; INFERRED), ``validate_fail_next()`` (433),
``ws_refuse`` (403 at the handshake), ``ws_silent`` (socket opens, sends nothing),
``faults.add("ws", "ws_drop", after=N)``, ``expire_urls()`` (every link handed out so far
expires, and so do those of the next answer listing files; later answers carry fresh links),
``running_code0`` (outputs answers the ``{"code":0,"msg":"APIKEY_TASK_IS_RUNNING"}`` variant),
``keys[key]`` (``type`` NORMAL|SHARED|EXCLUSIVE, ``coins``, ``money``, ``free`` → 801,
``balance`` False → 416), ``v2_upload_enabled`` (False → the v2 upload route is a 404, for the
legacy fallback), ``binary_previews`` (a binary preview frame during sampling, which clients
must ignore).

Simplification (documented): the *first* socket of a task receives that run's frames from
``execution_start`` on (buffered); a reconnect gets ``status`` + ``executing{current}`` and then
the live frames, like a native ComfyUI reconnect.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import quote

from aiohttp import ClientSession, ClientTimeout, WSMsgType, web

from . import runninghub_media as media
from . import runninghub_workflows as wf
from .toolkit import Clock, FakeServer, json_response, png_bytes

DEFAULT_KEY = "rhfake0123456789abcdef0123456789ab"
MAX_UPLOAD = 30 * 1024 * 1024
USER_ID = "de0db6f2564c8697b07df55a77f07be9"
TASK_ID_BASE = 1910246754753896450

MSG = {  # code → msg identifiers of the documented error table
    0: "success", 301: "PARAMS_INVALID", 380: "WORKFLOW_NOT_EXISTS", 412: "TOKEN_INVALID",
    415: "TASK_INSTANCE_MAXED", 416: "TASK_CREATE_FAILED_BY_NOT_ENOUGH_WALLET", 421: "TASK_QUEUE_MAXED",
    433: "VALIDATE_PROMPT_FAILED", 435: "TASK_USER_EXCLAPI_INSTANCE_NOT_FOUND", 801: "APIKEY_UNSUPPORTED_FREE_USER",
    802: "APIKEY_UNAUTHORIZED", 803: "APIKEY_INVALID_NODE_INFO", 804: "APIKEY_TASK_IS_RUNNING",
    805: "APIKEY_TASK_STATUS_ERROR", 806: "APIKEY_USER_NOT_FOUND", 807: "APIKEY_TASK_NOT_FOUND",
    808: "APIKEY_UPLOAD_FAILED", 809: "APIKEY_FILE_SIZE_EXCEEDED", 810: "WORKFLOW_NOT_SAVED_OR_NOT_RUNNING",
    813: "APIKEY_TASK_IS_QUEUED", 814: "PERSONAL_QUEUE_COUNT_LIMIT", 901: "WEBAPP_NOT_EXISTS",
}
V2_CODE = {802: "1002", 801: "1002", 380: "1001", 901: "1001", 803: "1101", 433: "1007", 421: "1011",
           415: "1011", 814: "1011", 416: "1007", 810: "1007", 301: "1007"}  # INFERRED mapping


def envelope(code: int, data: Any = None, msg: Optional[str] = None) -> web.Response:
    return json_response({"code": code, "msg": MSG.get(code, "error") if msg is None else msg, "data": data})


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[Optional[str], bytes]]:
    """Parse multipart/form-data from bytes (the toolkit's middleware has read the body)."""
    m = re.search(r'boundary="?([^";]+)"?', content_type or "")
    if not m:
        return {}
    delim = b"--" + m.group(1).encode()
    out: dict[str, tuple[Optional[str], bytes]] = {}
    for part in body.split(delim)[1:]:
        if part.startswith(b"--"):
            break
        part = part[2:] if part.startswith(b"\r\n") else part
        head, _, data = part.partition(b"\r\n\r\n")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        disp = next((ln for ln in head.decode("utf-8", "replace").split("\r\n")
                     if ln.lower().startswith("content-disposition")), "")
        name = re.search(r'\bname="([^"]*)"', disp)
        fname = re.search(r'\bfilename="([^"]*)"', disp)
        if name:
            out[name.group(1)] = (fname.group(1) if fname else None, data)
    return out


@dataclass
class Task:
    id: str
    key: str
    client_id: str
    workflow_id: str
    webapp_id: Optional[str]
    graph: dict
    order: list
    cached: list
    created: float
    queue_s: float
    run_s: float
    prompt_id: str
    ws_auth: str
    needs_slot: bool = False
    start: Optional[float] = None
    end: Optional[float] = None
    status: str = "QUEUED"
    cancelled: bool = False
    fail: Optional[dict] = None
    moderation: bool = False
    frames: list = field(default_factory=list)
    saved: list = field(default_factory=list)  # [(node id, file name, file path)]
    cost_coins: int = 17
    webhook_url: Optional[str] = None
    webhook: Optional[dict] = None
    ws_connects: int = 0


class FakeRunningHub(FakeServer):
    name = "runninghub"

    def credentials(self) -> dict:
        return {"RUNNINGHUB_BASE_URL": self.url, "RUNNINGHUB_API_KEY": self.api_key}

    def __init__(self, *, clock: Optional[Clock] = None, port: int = 0, api_key: str = DEFAULT_KEY,
                 key_type: str = "NORMAL"):
        super().__init__(clock=clock, port=port)
        self.keys: dict[str, dict] = {api_key: {"type": key_type, "coins": 99999, "money": "999", "currency": "CNY",
                                                "free": False, "balance": True}}
        self.api_key = api_key
        self.queue_s = 0.5
        self.run_s = 1.0
        self.slow_run_s = 30.0
        self.output_lag_s = 1.0
        self.ws_close_after_s = 2.0
        self.concurrency_limit = 3  # per key unless keys[key]["limit"]
        self.url_ttl_s = 86400.0
        self.personal_queue_max = 1000
        self.cached_classes = {"CheckpointLoaderSimple", "EmptyLatentImage"}
        self.ws_refuse = False
        self.ws_silent = False
        self._url_skew = 0.0  # expire_urls() moves the links' clock past every window handed out
        self._stale_answers = 0
        self._sign_key = hashlib.sha256(api_key.encode() + b"cos").digest()
        self.running_code0 = False
        self.binary_previews = True
        self.v2_upload_enabled = True
        self.tasks: dict[str, Task] = {}
        self.files: dict[str, tuple[bytes, str]] = {}  # url path → (bytes, content type)
        self.uploads: dict[str, bytes] = dict(wf.builtin_files())  # fileName → bytes (usable in LoadImage)
        self.loras: dict[str, bytes] = {}
        self.workflows = {k: dict(v) for k, v in wf.WORKFLOWS.items()}
        self.apps = {k: dict(v) for k, v in wf.APPS.items()}
        self._seq = 0
        self._fail_next: list[dict] = []
        self._moderation_next = 0
        self._validate_fail_next = 0
        self._bg: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ knobs
    def fail_next(self, node_id: Optional[str] = None, exception_type: str = "RuntimeError",
                  message: str = "CUDA out of memory. Tried to allocate 2.00 GiB") -> None:
        self._fail_next.append({"node_id": node_id, "exception_type": exception_type, "exception_message": message})

    def content_safety_next(self) -> None:
        self._moderation_next += 1

    def validate_fail_next(self) -> None:
        self._validate_fail_next += 1

    def created_count(self) -> int:
        return len(self.tasks)

    def limit(self, key: str) -> int:
        return int(self.keys.get(key, {}).get("limit") or self.concurrency_limit)

    def task_ended(self, task_id: str) -> bool:
        """The task has finished on the service (its results exist), whatever the clients saw."""
        self._advance()
        t = self.tasks.get(str(task_id))
        return bool(t and t.status in ("SUCCESS", "FAILED"))

    # ------------------------------------------------------------------ signed links
    def expire_urls(self, stale_next: int = 1) -> None:
        """Every link handed out so far expires now (the links' clock jumps past their windows), and
        so do the links of the next ``stale_next`` answers listing files (an answer cached before the
        jump); the answers after those sign fresh links that work."""
        self._url_skew += max(self.url_ttl_s, 86400.0) + 1
        self._stale_answers += stale_next

    def _take_stale(self) -> bool:
        if self._stale_answers > 0:
            self._stale_answers -= 1
            return True
        return False

    def _url_now(self) -> int:
        return int(1780151960 + self.clock.now() + self._url_skew)

    def _signature(self, path: str, window: str) -> str:
        return hmac.new(self._sign_key, f"get\n/{path}\n{window}".encode(), hashlib.sha1).hexdigest()

    def sign(self, path: str, *, ttl: Optional[float] = None, stale: bool = False) -> str:
        """A COS-style signed link to ``/files/<path>`` valid from now for ``ttl`` seconds (``stale``:
        a window that has already ended)."""
        ttl = self.url_ttl_s if ttl is None else ttl
        start = self._url_now() - (int(ttl) + 2 if stale else 0)
        window = f"{start};{start + int(ttl)}"
        return (f"{self.url}/files/{path}?q-sign-algorithm=sha1&q-ak=AKIDfakerunninghub&q-sign-time={quote(window)}"
                f"&q-key-time={quote(window)}&q-header-list=&q-url-param-list=&q-signature="
                f"{self._signature(path, window)}")

    def _check_signature(self, path: str, query: Any) -> Optional[tuple[str, str]]:
        """None when the link may be served; else COS's (code, message) for the 403."""
        window = query.get("q-sign-time", "")
        if not hmac.compare_digest(query.get("q-signature", ""), self._signature(path, window)):
            return "SignatureDoesNotMatch", "The calculated signature does not match the one provided"
        start, _, end = window.partition(";")
        now = self._url_now()
        if not (start.isdigit() and end.isdigit()) or not int(start) - 60 <= now <= int(end):
            return "AccessDenied", "Request has expired"
        return None

    # ------------------------------------------------------------------ routes
    def setup_routes(self, router: web.UrlDispatcher) -> None:
        r = router
        r.add_post("/task/openapi/create", self.h_create, name="create")
        r.add_post("/task/openapi/ai-app/run", self.h_app_run, name="app_run")
        r.add_post("/task/openapi/outputs", self.h_outputs, name="outputs")
        r.add_post("/task/openapi/status", self.h_status, name="status")
        r.add_post("/task/openapi/cancel", self.h_cancel, name="cancel")
        r.add_post("/api/openapi/getJsonApiFormat", self.h_workflow_json, name="workflow_json")
        r.add_get("/api/webapp/apiCallDemo", self.h_app_demo, name="app_demo")
        r.add_post("/uc/openapi/accountStatus", self.h_account, name="account")
        r.add_post("/task/openapi/upload", self.h_upload_legacy, name="upload_legacy")
        r.add_post("/api/openapi/getLoraUploadUrl", self.h_lora_url, name="lora_url")
        r.add_put("/lora/{name:.+}", self.h_lora_put, name="lora_put")
        r.add_post("/task/openapi/getWebhookDetail", self.h_webhook_detail, name="webhook_detail")
        r.add_post("/task/openapi/retryWebhook", self.h_webhook_retry, name="webhook_retry")
        r.add_post("/openapi/v2/media/upload/binary", self.h_upload_v2, name="upload")
        r.add_post("/openapi/v2/query", self.h_query, name="query")
        r.add_get("/openapi/v2/queue/status", self.h_queue_status, name="queue_status")
        r.add_post("/openapi/v2/run/workflow/{id}", self.h_v2_run_workflow, name="v2_run_workflow")
        r.add_post("/openapi/v2/run/ai-app/{id}", self.h_v2_run_app, name="v2_run_app")
        r.add_get("/files/{path:.+}", self.h_file, name="file")
        r.add_get("/ws/c_instance", self.h_ws, name="ws")

    async def stop(self) -> None:
        for t in list(self._bg):
            t.cancel()
        await asyncio.gather(*self._bg, return_exceptions=True)
        await super().stop()

    # ------------------------------------------------------------------ helpers
    @staticmethod
    async def _body(request: web.Request) -> Optional[dict]:
        try:
            data = json.loads(await request.read() or b"null")
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _key_error(self, key: Any) -> Optional[int]:
        """None when the key may call the API; else the documented code (INFERRED: 802 for unknown)."""
        info = self.keys.get(key) if isinstance(key, str) else None
        if info is None:
            return 802
        if info.get("free"):
            return 801
        return None

    def _bearer(self, request: web.Request) -> Optional[str]:
        auth = request.headers.get("Authorization", "")
        return auth[7:].strip() if auth.startswith("Bearer ") else None

    def _active(self, key: str) -> list[Task]:
        return [t for t in self.tasks.values() if t.key == key and t.status in ("QUEUED", "RUNNING")]

    def _advance(self) -> None:
        now = self.clock.now()
        for t in self.tasks.values():
            if t.status == "QUEUED" and now >= t.created + t.queue_s:
                if t.needs_slot:
                    running = [x for x in self._active(t.key) if x.status == "RUNNING"]
                    if len(running) >= self.limit(t.key):
                        continue
                    t.start = now
                else:
                    t.start = t.created + t.queue_s
                t.status = "RUNNING"
                self._build_run(t)
            if t.status == "RUNNING" and t.end is not None and now >= t.end:
                if t.fail or t.moderation:
                    t.status = "FAILED"
                else:
                    t.status = "SUCCESS"
                    self.keys[t.key]["coins"] = max(0, int(self.keys[t.key]["coins"]) - t.cost_coins)
                self._webhook(t)

    def _build_run(self, t: Task) -> None:
        saved_map: dict[str, list[str]] = {}
        for nid, fname, _ in t.saved:
            saved_map.setdefault(nid, []).append(fname)
        t.frames, length = wf.build_frames(t.graph, t.order, t.cached, t.prompt_id, t.run_s, saved_map, t.fail,
                                           ts0=1743507722000 + int(t.start * 1000))
        t.end = t.start + length

    def _visible_success(self, t: Task) -> bool:
        return t.status == "SUCCESS" and self.clock.now() >= (t.end or 0) + self.output_lag_s

    def net_wss_url(self, t: Task) -> str:
        host = f"127.0.0.1:{self.port}"
        return (f"ws://{host}/ws/c_instance?c_host=10.0.0.7&c_port=85&clientId={t.client_id}"
                f"&workflowId={t.workflow_id}&Rh-Comfy-Auth={quote(t.ws_auth, safe='')}")

    def _failed_reason(self, t: Task) -> dict:
        if t.cancelled or not t.fail:
            return {}
        node = t.graph.get(t.fail["node_id"], {})
        return {"current_outputs": "{}", "exception_type": t.fail["exception_type"],
                "node_name": node.get("class_type", ""), "current_inputs": "{}",
                "traceback": json.dumps(t.fail["traceback"]), "node_id": t.fail["node_id"],
                "exception_message": t.fail["exception_message"]}

    def _output_items(self, t: Task) -> list[dict]:
        cost = str(max(1, int(t.run_s)))
        stale = self._take_stale() if t.saved else False
        return [{"fileUrl": self.sign(path, stale=stale), "fileType": fname.rsplit(".", 1)[-1], "taskCostTime": cost,
                 "nodeId": nid, "thirdPartyConsumeMoney": None, "consumeMoney": None, "consumeCoins": str(t.cost_coins)}
                for nid, fname, path in t.saved]

    def outputs_body(self, t: Task) -> dict:
        """The /task/openapi/outputs answer for a task now (also the webhook's eventData)."""
        self._advance()
        if t.status == "QUEUED":
            return {"code": 813, "msg": MSG[813], "data": None}
        if t.status == "FAILED":
            return {"code": 805, "msg": MSG[805], "data": {"failedReason": self._failed_reason(t)}}
        if t.status == "SUCCESS" and self._visible_success(t):
            return {"code": 0, "msg": "success", "data": self._output_items(t)}
        if self.running_code0:
            return {"code": 0, "msg": MSG[804], "data": None}
        return {"code": 804, "msg": MSG[804], "data": {"netWssUrl": self.net_wss_url(t)}}

    # ------------------------------------------------------------------ task creation
    def _new_task(self, key: str, workflow_id: str, webapp_id: Optional[str], graph: dict, body: dict) -> Task:
        self._seq += 1
        tid = str(TASK_ID_BASE + self._seq * 7919)
        client_id = hashlib.md5(f"client{tid}".encode()).hexdigest()
        now = self.clock.now()
        sign = hmac.new(key.encode(), client_id.encode(), hashlib.md5).hexdigest()
        auth = base64.b64encode(json.dumps({"userId": USER_ID, "signExpire": 1744112521236, "ts": 1743507721236,
                                            "sign": sign}, separators=(",", ":")).encode()).decode()
        slow = bool(self.workflows.get(workflow_id, {}).get("slow"))
        order = wf.execution_order(graph)
        cached = [n for n in order if graph[n]["class_type"] in self.cached_classes]
        t = Task(id=tid, key=key, client_id=client_id, workflow_id=workflow_id, webapp_id=webapp_id, graph=graph,
                 order=order, cached=cached, created=now, queue_s=self.queue_s,
                 run_s=self.slow_run_s if slow else self.run_s,
                 prompt_id=f"7f0c2a1e-0000-4000-8000-{self._seq:012d}", ws_auth=auth)
        if self._fail_next:
            f = self._fail_next.pop(0)
            work = [n for n in order if n not in cached]
            nid = f["node_id"] or next((n for n in work if graph[n]["class_type"] in wf.STEP_TYPES), work[-1])
            t.fail = dict(f, node_id=nid, traceback=[
                "  File \"/workspace/ComfyUI/execution.py\", line 328, in process_inputs\n    result = f(**inputs)\n"])
        elif self._moderation_next:
            self._moderation_next -= 1
            t.moderation = True
        if not t.fail:
            for nid, files in wf.render_saves(graph, self.uploads):
                for i, (ext, data) in enumerate(files):
                    fname = f"ComfyUI_{self._seq:05d}_{nid}_{i}.{ext}"
                    path = f"{USER_ID}/output/{fname}"
                    self.files[path] = (data, media.CTYPES.get(ext, "application/octet-stream"))
                    t.saved.append((nid, fname, path))
        hook = body.get("webhookUrl")
        t.webhook_url = hook if isinstance(hook, str) and hook else None
        self.tasks[tid] = t
        if t.webhook_url:
            self._spawn(self._tick_until_end(t))  # the platform calls back on its own
        return t

    async def _tick_until_end(self, t: Task) -> None:
        while t.status in ("QUEUED", "RUNNING"):
            await asyncio.sleep(0.02)
            self._advance()

    def _create(self, body: Optional[dict], key: Any, *, app: bool, target_id: Any = None) -> tuple[int, Any]:
        """Shared create logic: (code, data) with data the documented create ``data`` on success."""
        if body is None:
            return 301, None
        err = self._key_error(key)
        if err:
            return err, None
        info = self.keys[key]
        if app:
            wid = target_id if target_id is not None else body.get("webappId")
            wid = str(wid) if isinstance(wid, (int, str)) and not isinstance(wid, bool) else None
            if not wid:
                return 301, None
            entry = self.apps.get(wid)
            if entry is None:
                return 901, None
            workflow_id = wid
        else:
            wid = target_id if target_id is not None else body.get("workflowId")
            wid = str(wid) if isinstance(wid, (int, str)) and not isinstance(wid, bool) else None
            if not wid:
                return 301, None
            entry = self.workflows.get(wid)
            if entry is None:
                return 380, None
            workflow_id = wid
        if entry.get("runnable", True) is False:
            return 810, None
        graph = entry["graph"]
        if not app and body.get("workflow") not in (None, ""):
            text = body["workflow"]
            try:
                graph = json.loads(text) if isinstance(text, str) else None
            except ValueError:
                graph = None
            if not isinstance(graph, dict) or not graph:
                return 301, None
        inst = body.get("instanceType")
        if inst not in (None, "", "default", "plus"):
            return 301, None
        if info["type"] == "EXCLUSIVE_48G" and inst != "plus":
            return 435, None
        graph, bad = wf.apply_node_info(graph, body.get("nodeInfoList"))
        if bad:
            return 803, None
        ok, tips = wf.validate_graph(graph, self.uploads)
        if ok and self._validate_fail_next:
            self._validate_fail_next -= 1
            first = wf.execution_order(graph)[0]
            ok, tips = False, json.dumps({"result": False, "error": {"type": "prompt_outputs_failed_validation",
                                          "message": "Prompt outputs failed validation", "details": "",
                                          "extra_info": {}}, "node_errors": {first: {"errors": [
                                              {"type": "value_not_in_list", "message": "Value not in list",
                                               "details": "ckpt_name: 'missing.safetensors' not in [...]",
                                               "extra_info": {}}], "dependent_outputs": wf.output_nodes(graph),
                                              "class_type": graph[first]["class_type"]}}})
        if not ok:
            return 433, {"promptTips": tips}
        if not info.get("balance", True) or (int(info["coins"]) <= 0 and float(info.get("money") or 0) <= 0):
            return 416, None
        self._advance()
        active = self._active(key)
        personal = body.get("usePersonalQueue") in (True, "true", "True")
        needs_slot = False
        if len(active) >= self.limit(key):
            if info["type"] == "EXCLUSIVE":
                if not personal:
                    return 415, None
                if len(active) - self.limit(key) >= self.personal_queue_max:
                    return 814, None
                needs_slot = True
            else:
                return 421, None
        t = self._new_task(key, workflow_id, workflow_id if app else None, graph, body)
        t.needs_slot = needs_slot
        if t.queue_s <= 0 and not needs_slot:
            self._advance()
        return 0, t

    def _create_data(self, t: Task) -> dict:
        running = t.status == "RUNNING"
        return {"netWssUrl": self.net_wss_url(t) if running else None, "taskId": t.id, "clientId": t.client_id,
                "taskStatus": t.status, "promptTips": json.dumps({"result": True, "error": None,
                                                                  "outputs_to_execute": wf.output_nodes(t.graph),
                                                                  "node_errors": {}})}

    async def h_create(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        code, res = self._create(body, (body or {}).get("apiKey"), app=False)
        return envelope(0, self._create_data(res)) if code == 0 else envelope(code, res)

    async def h_app_run(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        code, res = self._create(body, (body or {}).get("apiKey"), app=True)
        return envelope(0, self._create_data(res)) if code == 0 else envelope(code, res)

    def _v2_task(self, t: Optional[Task], code: int = 0, res: Any = None) -> dict:
        if t is None:
            return {"taskId": "", "status": "FAILED", "errorCode": V2_CODE.get(code, "1000"),
                    "errorMessage": MSG.get(code, "unknown error"), "results": None, "clientId": "", "promptTips": ""}
        return {"taskId": t.id, "status": t.status, "errorCode": "", "errorMessage": "", "results": None,
                "clientId": t.client_id, "promptTips": self._create_data(t)["promptTips"]}

    async def h_v2_run_workflow(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        code, res = self._create(body, self._bearer(request), app=False, target_id=request.match_info["id"])
        return json_response(self._v2_task(res if code == 0 else None, code))

    async def h_v2_run_app(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        code, res = self._create(body, self._bearer(request), app=True, target_id=request.match_info["id"])
        return json_response(self._v2_task(res if code == 0 else None, code))

    # ------------------------------------------------------------------ task queries
    def _task_for(self, body: Optional[dict], key: Any) -> tuple[Optional[int], Optional[Task]]:
        if body is None:
            return 301, None
        err = self._key_error(key)
        if err:
            return err, None
        tid = body.get("taskId")
        t = self.tasks.get(str(tid)) if isinstance(tid, (int, str)) and not isinstance(tid, bool) else None
        if t is None or t.key != key:
            return 807, None
        return None, t

    async def h_outputs(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        err, t = self._task_for(body, (body or {}).get("apiKey"))
        if err:
            return envelope(err)
        return json_response(self.outputs_body(t))

    async def h_status(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        err, t = self._task_for(body, (body or {}).get("apiKey"))
        if err:
            return envelope(err)
        self._advance()
        return json_response({"code": 0, "msg": "", "data": t.status})

    async def h_cancel(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        err, t = self._task_for(body, (body or {}).get("apiKey"))
        if err:
            return envelope(err)
        self._advance()
        if t.status in ("QUEUED", "RUNNING"):
            t.cancelled = True
            t.status = "FAILED"
            t.end = self.clock.now()
            self._webhook(t)
        return envelope(0, None, "success")

    async def h_query(self, request: web.Request) -> web.Response:
        key = self._bearer(request)
        body = await self._body(request)
        if self._key_error(key):
            return json_response({"taskId": "", "status": "FAILED", "errorCode": "1002",
                                  "errorMessage": "invalid api key", "results": None, "clientId": "", "promptTips": ""})
        err, t = self._task_for(body, key)
        if err or t is None:
            return json_response({"taskId": "", "status": "FAILED", "errorCode": "1004" if err == 807 else "1007",
                                  "errorMessage": "task not found" if err == 807 else "invalid parameter",
                                  "results": None, "clientId": "", "promptTips": ""})
        self._advance()
        out = {"taskId": t.id, "status": t.status, "errorCode": "", "errorMessage": "", "results": None,
               "clientId": t.client_id, "promptTips": ""}
        if t.status == "FAILED":
            if t.moderation:
                out.update(errorCode="1501", errorMessage="content moderation failed: the output was flagged")
            else:
                out.update(errorCode="1000", errorMessage="unknown error")
            out["failedReason"] = self._failed_reason(t)
        if t.status == "SUCCESS":
            out.update(failedReason={}, usage={"consumeMoney": None, "consumeCoins": str(t.cost_coins),
                                               "taskCostTime": str(max(1, int(t.run_s))),
                                               "thirdPartyConsumeMoney": None},
                       results=[{"url": self.sign(path), "nodeId": nid, "outputType": fname.rsplit(".", 1)[-1],
                                 "text": None} for nid, fname, path in t.saved])
        return json_response(out)

    async def h_queue_status(self, request: web.Request) -> web.Response:
        key = self._bearer(request)
        if self._key_error(key):
            return json_response({"code": 401, "msg": "ApiKey verification failed", "data": None})
        self._advance()
        active = self._active(key)
        running = sum(1 for t in active if t.status == "RUNNING")
        return json_response({"code": 0, "msg": "success", "data": {
            "apiKeyType": self.keys[key]["type"] if self.keys[key]["type"] != "NORMAL" else "SHARED",
            "concurrentLimit": self.limit(key), "runningCount": str(running),
            "queuedCount": str(len(active) - running), "totalCurrentTasks": str(len(active))}})

    # ------------------------------------------------------------------ workflow and app info
    async def h_workflow_json(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if body is None:
            return envelope(301)
        err = self._key_error(body.get("apiKey"))
        if err:
            return envelope(err)
        wid = body.get("workflowId")
        entry = self.workflows.get(str(wid)) if isinstance(wid, (int, str)) else None
        if entry is None:
            return envelope(380)
        return json_response({"code": 0, "msg": "SUCCESS",
                              "data": {"prompt": json.dumps(entry["graph"], ensure_ascii=False)}})

    async def h_app_demo(self, request: web.Request) -> web.Response:
        err = self._key_error(request.query.get("apiKey"))
        if err:
            return envelope(err)
        entry = self.apps.get(request.query.get("webappId", ""))
        if entry is None:
            return envelope(901)
        wid = request.query["webappId"]
        curl = (f"curl --location --request POST '{self.url}/task/openapi/ai-app/run' --header "
                f"'Content-Type: application/json' --data-raw '{{\"webappId\": {wid}, \"apiKey\": \"{{apiKey}}\", "
                f"\"nodeInfoList\": [...]}}'")
        return envelope(0, {"curl": curl, "webappName": entry["name"],
                            "statisticsInfo": {"likeCount": "138", "downloadCount": "0", "useCount": "34545",
                                               "pv": "0", "collectCount": "498"},
                            "nodeInfoList": [dict(f) for f in entry["fields"]], "covers": [], "tags": [],
                            "accessEncrypted": False}, "success")

    async def h_account(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        key = (body or {}).get("apikey")
        if not isinstance(key, str) or not key:
            return envelope(1601, None, "param apiKey is required")
        if key not in self.keys:
            return envelope(806)
        self._advance()
        info = self.keys[key]
        return envelope(0, {"remainCoins": str(info["coins"]), "currentTaskCounts": str(len(self._active(key))),
                            "remainMoney": info.get("money"), "currency": info.get("currency"),
                            "apiType": info["type"] if info["type"] in ("NORMAL", "SHARED", "EXCLUSIVE") else "EXCLUSIVE"},
                        "success")

    # ------------------------------------------------------------------ uploads
    @staticmethod
    def _ext(filename: Optional[str], data: bytes) -> str:
        if filename and "." in filename:
            return filename.rsplit(".", 1)[-1].lower()
        if data.startswith(b"\x89PNG"):
            return "png"
        if data.startswith(b"\xff\xd8"):
            return "jpg"
        if data.startswith(b"PK"):
            return "zip"
        return "bin"

    def _store_upload(self, prefix: str, filename: Optional[str], data: bytes) -> tuple[str, str]:
        digest = hashlib.sha256(data).hexdigest()
        ext = self._ext(filename, data)
        name = digest if ext == "zip" and prefix == "api" else f"{prefix}/{digest}.{ext}"
        self.uploads[name] = data
        self.files[f"input/{name}"] = (data, media.CTYPES.get(ext, "application/octet-stream"))
        return name, ext

    async def h_upload_legacy(self, request: web.Request) -> web.Response:
        form = parse_multipart(request.headers.get("Content-Type", ""), await request.read())
        key = form.get("apiKey", (None, b""))[1].decode("utf-8", "replace")
        err = self._key_error(key)
        if err:
            return envelope(err)
        if "file" not in form:
            return envelope(301)
        fname, data = form["file"]
        if len(data) > MAX_UPLOAD:
            return envelope(809)
        if self._ext(fname, data) not in media.UPLOAD_TYPES:  # INFERRED: the doc lists the types, not the code
            return envelope(301)
        name, _ = self._store_upload("api", fname, data)
        ftype = form.get("fileType", (None, b"input"))[1].decode("utf-8", "replace") or "input"
        return envelope(0, {"fileName": name, "fileType": ftype}, "success")

    async def h_upload_v2(self, request: web.Request) -> web.Response:
        if not self.v2_upload_enabled:
            return web.Response(status=404, text="Not Found")
        key = self._bearer(request)
        if self._key_error(key):
            return json_response({"code": 401, "message": "ApiKey verification failed: API Key不存在", "data": None})
        form = parse_multipart(request.headers.get("Content-Type", ""), await request.read())
        if "file" not in form:
            return json_response({"code": 1007, "message": "parameter validation failed: file", "data": None})
        fname, data = form["file"]
        if len(data) > MAX_UPLOAD:  # INFERRED: the v2 limit is not documented
            return json_response({"code": 809, "message": MSG[809], "data": None})
        if self._ext(fname, data) not in media.UPLOAD_TYPES:  # INFERRED, like the legacy route
            return json_response({"code": 301, "message": MSG[301], "data": None})
        name, ext = self._store_upload("openapi", fname, data)
        kind = media.UPLOAD_TYPES[ext]
        url = self.sign(f"input/{name}", ttl=86400.0)  # one day [DOC]
        return json_response({"code": 0, "message": "success",
                              "data": {"type": kind, "download_url": url, "fileName": name, "size": str(len(data))}})

    async def h_lora_url(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if body is None:
            return envelope(301)
        err = self._key_error(body.get("apiKey"))
        if err:
            return envelope(err)
        md5 = body.get("md5Hex")
        if not isinstance(md5, str) or not re.fullmatch(r"[0-9a-f]{32}", md5) or not body.get("loraName"):
            return envelope(301)
        name = f"api-lora-cn/{md5}.safetensors"
        return envelope(0, {"fileName": name, "url": f"{self.url}/lora/{name}?sign=fake"}, "success")

    async def h_lora_put(self, request: web.Request) -> web.Response:
        self.loras[request.match_info["name"]] = await request.read()
        return web.Response(status=200)

    # ------------------------------------------------------------------ webhooks
    def _webhook(self, t: Task) -> None:
        if not t.webhook_url or t.webhook is not None:
            return
        now = "2025-03-25T16:05:07"
        t.webhook = {"id": str(int(t.id) + 1), "userApiKey": "*" * 18, "taskId": t.id, "webhookUrl": t.webhook_url,
                     "eventData": "", "callbackStatus": "PENDING", "callbackResponse": "", "retryCount": 0,
                     "createTime": now, "updateTime": now}
        self._spawn(self._deliver(t))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def _deliver(self, t: Task, url: Optional[str] = None) -> None:
        hook = t.webhook
        assert hook is not None
        if self.output_lag_s > 0 and t.status == "SUCCESS":
            await self.clock.sleep(self.output_lag_s)
        event = json.dumps(self.outputs_body(t), ensure_ascii=False)
        hook["eventData"] = event
        payload = {"event": "TASK_END", "taskId": t.id, "eventData": event}
        async with ClientSession(timeout=ClientTimeout(total=5)) as s:
            for attempt in range(3):
                try:
                    async with s.post(url or hook["webhookUrl"], json=payload) as resp:
                        hook["callbackResponse"] = (await resp.text())[:200]
                        if resp.status < 300:
                            hook["callbackStatus"] = "SUCCESS"
                            return
                except Exception as e:  # the platform records the failure text
                    hook["callbackResponse"] = f"I/O error on POST request for \"{url or hook['webhookUrl']}\": {e}"
                hook["retryCount"] = attempt + 1
                hook["callbackStatus"] = "RETRYING"
                await asyncio.sleep(0.05)
        hook["callbackStatus"] = "FAILED"

    async def h_webhook_detail(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        err, t = self._task_for(body, (body or {}).get("apiKey"))
        if err:
            return envelope(err)
        if t.webhook is None:
            return envelope(1, None, "webhook event not exists")
        return envelope(0, dict(t.webhook), "success")

    async def h_webhook_retry(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if body is None:
            return envelope(301)
        err = self._key_error(body.get("apiKey"))
        if err:
            return envelope(err)
        t = next((x for x in self.tasks.values() if x.webhook and x.webhook["id"] == str(body.get("webhookId"))
                  and x.key == body.get("apiKey")), None)
        if t is None:
            return envelope(1, None, "webhook event not exists")
        if body.get("webhookUrl"):
            t.webhook["webhookUrl"] = body["webhookUrl"]
        self._spawn(self._deliver(t, t.webhook["webhookUrl"]))
        return envelope(0, None, "")

    # ------------------------------------------------------------------ files
    async def h_file(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        refused = self._check_signature(path, request.query)
        if refused:
            return web.Response(status=403, content_type="application/xml", text=(
                f"<?xml version='1.0' encoding='utf-8' ?><Error><Code>{refused[0]}</Code><Message>{refused[1]}"
                f"</Message><Resource>/{path}</Resource></Error>"))
        entry = self.files.get(path)
        if entry is None:
            return web.Response(status=404, content_type="application/xml",
                                text="<Error><Code>NoSuchKey</Code></Error>")
        return web.Response(body=entry[0], content_type=entry[1])

    # ------------------------------------------------------------------ WebSocket
    async def _until(self, when: float, t: Task) -> None:
        while self.clock.now() < when and not t.cancelled:
            await asyncio.sleep(min(0.02, max(0.001, (when - self.clock.now()) / max(self.clock.speed, 1e-9))))

    async def h_ws(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        t = next((x for x in self.tasks.values() if x.client_id == q.get("clientId")), None)
        if t is None or q.get("Rh-Comfy-Auth") != t.ws_auth or self.ws_refuse:
            return web.Response(status=403, text="Forbidden")  # INFERRED: refused at the handshake
        ws = web.WebSocketResponse(heartbeat=None, autoping=True)
        await ws.prepare(request)
        drop = self.faults.take("ws", {"ws_drop"})
        sent = 0
        t.ws_connects += 1
        first = t.ws_connects == 1

        async def send(frame: Any) -> bool:
            nonlocal sent
            if drop is not None and sent >= drop.after:
                transport = request.transport
                if transport is not None:
                    transport.close()  # an abrupt drop, no close frame
                return False
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(json.dumps(frame, ensure_ascii=False))
            sent += 1
            return True

        try:
            self._advance()
            if not await send({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}},
                                                          "sid": t.client_id}}):
                return ws
            if self.ws_silent:
                while not ws.closed and t.status in ("QUEUED", "RUNNING"):
                    await asyncio.sleep(0.02)
                    self._advance()
                return ws
            while t.start is None and not t.cancelled:  # connected early: wait for the run
                await asyncio.sleep(0.02)
                self._advance()
            idx = 0
            if not first and t.start is not None:
                elapsed = self.clock.now() - t.start
                idx = next((i for i, (off, _) in enumerate(t.frames) if off > elapsed), len(t.frames))
                current = None
                for off, fr in t.frames[:idx]:
                    if fr["type"] == "executing":
                        current = fr["data"]["node"]
                if current is not None and idx < len(t.frames):
                    if not await send({"type": "executing", "data": {"node": current, "display_node": current,
                                                                     "prompt_id": t.prompt_id}}):
                        return ws
            previewed = False
            while idx < len(t.frames) and not t.cancelled:
                off, frame = t.frames[idx]
                await self._until((t.start or 0) + off, t)
                if t.cancelled:
                    break
                if not await send(frame):
                    return ws
                if self.binary_previews and frame["type"] == "progress" and not previewed:
                    previewed = True
                    if not await send(struct.pack(">II", 1, 2) + png_bytes((1, 2, 3), (4, 4))):
                        return ws
                idx += 1
            if t.cancelled:
                node = next((fr["data"]["node"] for _, fr in reversed(t.frames[:idx]) if fr["type"] == "executing"),
                            None)
                await send({"type": "execution_interrupted", "data": {
                    "prompt_id": t.prompt_id, "node_id": node, "node_type": t.graph.get(node or "", {}).get(
                        "class_type"), "executed": [], "timestamp": 0}})
                await send({"type": "executing", "data": {"node": None, "prompt_id": t.prompt_id}})
            await self.clock.sleep(self.ws_close_after_s)
            await ws.close(code=1000)
        except ConnectionResetError:
            pass
        return ws


async def drain_ws(ws: Any) -> list[Any]:
    """Read every frame until the server closes (used by fidelity tests)."""
    out: list[Any] = []
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            out.append(json.loads(msg.data))
        elif msg.type == WSMsgType.BINARY:
            out.append(msg.data)
    return out
