"""The bundled sandbox: a ComfyUI-compatible server (native API of 0.3.64) that runs in-process on
127.0.0.1 for the ``sandbox`` profile — no key, no network, no GPU. The tests use it (with fault
knobs added by ``tests/fakes/comfyui.py``) as the faithful fake of a plain ComfyUI server.

Built from ComfyUI's documented behaviour and checked against a real 0.3.64 running the sandbox
node pack (``tests/remote_nodes``, ``tests/unit/test_comfyui_fidelity.py``). Same paths (each also under ``/api``), fields, status
codes and WebSocket message sequences:

- ``POST /prompt``  → 200 ``{prompt_id, number, node_errors}`` or 400 ``{error, node_errors}``
  (ComfyUI's validation, see ``nodes.validate_prompt``); the client may choose ``prompt_id``;
  ``number`` increments on every POST, valid or not; ``front`` queues first.
- ``GET /prompt`` → ``{exec_info: {queue_remaining}}``; ``GET /queue`` → ``{queue_running,
  queue_pending}`` of ``[number, prompt_id, prompt, extra_data, outputs_to_execute]`` (pending in
  heap order, as ComfyUI returns it); ``POST /queue {"delete": [ids]} | {"clear": true}`` → 200 empty.
- ``POST /interrupt`` (optional ``{"prompt_id"}``: ignored unless that prompt runs) → 200 empty.
- ``GET /history[/{id}]`` (``max_items``, ``offset``), ``GET /view``, ``POST /upload/image``,
  ``GET /object_info[/{class}]``, ``GET /system_stats``, ``GET /features``.
- ``WS /ws?clientId=`` first ``status {exec_info, sid}``; per prompt ``status``×2 (broadcast),
  ``execution_start``, ``execution_cached``, per node ``progress_state``/``executing``/``progress``…/
  ``executed``, then ``execution_success | execution_error | execution_interrupted``, ``status``,
  ``executing {node: null}``. Everything but ``status`` goes only to the submitting client id, live,
  never replayed. A reconnect of the running client gets ``executing {node}`` (no prompt_id).
- ONE prompt runs at a time; node outputs are cached across consecutive prompts like ComfyUI's
  classic cache (``cache=False`` turns that off); ``SandboxSlowPass`` is never cached.
- Any other path: ``GET`` 404, other methods 405 (``Allow: GET,HEAD``), as 0.3.64's static route.

A newer server (off by default): ``jobs_api=True`` adds the jobs routes of ComfyUI v0.26+ —
``GET /api/jobs``, ``GET /api/jobs/{id}`` (404 ``{"error": "Job not found"}``) and ``POST
/api/jobs/{id}/cancel`` → ``{"cancelled": bool}`` — with answers from ``sandbox/jobs.py``, and stamps
``extra_data.create_time`` like those servers; ``jobs_api="list"`` plays v0.6–v0.25 (the two GET
routes only: the cancel POST meets the static route's 405).

Auth: a plain ComfyUI has none. ``SandboxServer(token="...")`` mirrors an authenticating reverse
proxy in front of it: every HTTP route and the WebSocket handshake need ``Authorization: Bearer
<token>`` and answer 401 ``{"error": "unauthorized"}`` otherwise.

Knobs: ``node_s`` (seconds per plain node), ``self.clock`` drives every sleep, ``queue_foreign()``
puts another user's slow prompt in the queue (queue position > 0), ``preview_frames`` sends binary
preview frames (event 1) with each progress step, ``disable_metadata``, ``fail_next(class_type,
message)`` (the next such node raises: ``execution_error``), ``expire_views`` (output files gone:
``/view`` 404), ``cache``. Route names (for ``route_name`` and the tests' fault knobs): ``prompt``
(POST /prompt), ``prompt_info`` (GET /prompt), ``history`` (GET /history/{id}), ``history_list``,
``view``, ``upload``, ``ws``, ``queue`` (GET /queue), ``queue_edit`` (POST /queue), ``interrupt``,
``object_info``, ``system_stats``, ``jobs`` (GET /api/jobs), ``job`` (GET /api/jobs/{id}),
``job_cancel`` (POST /api/jobs/{id}/cancel), ``static`` (any other path);
:meth:`SandboxServer.ws_fault` lets a subclass drop or mute a socket after some messages.
"""
from __future__ import annotations

import asyncio
import copy
import email.parser
import email.policy
import heapq
import json
import mimetypes
import random
import struct
import sys
import time
import traceback
import uuid
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from aiohttp import web

from . import jobs
from .nodes import NODE_TYPES, Interrupted, NodeFailure, format_value, to_png, validate_prompt

SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")
FEATURES = {"supports_preview_metadata": True, "max_upload_size": 104857600}
SLOW_FOREIGN = "another-user"


class _Conn:
    def __init__(self, ws: web.WebSocketResponse, drop_after: Optional[int], mute_after: Optional[int]):
        self.ws = ws
        self.sent = 0
        self.drop_after = drop_after
        self.mute_after = mute_after
        self.flags: dict = {}


class NodeContext:
    def __init__(self, server: "SandboxServer", run: "_Run", node_id: str):
        self.server = server
        self.run = run
        self.node_id = node_id
        self.prompt = run.prompt
        self.extra_data = run.extra

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            await self.server.clock.sleep(seconds)

    def check_interrupt(self) -> None:
        self.server.check_interrupt()

    async def progress(self, value: int, total: int) -> None:
        await self.run.update(self.node_id, value, total)


class _Run:
    """One prompt being executed: its progress registry and message helpers."""

    def __init__(self, server: "SandboxServer", item: list):
        self.server = server
        self.number, self.prompt_id, self.prompt, self.extra, self.outputs = item
        self.client = self.extra.get("client_id")
        self.registry: dict[str, dict] = {}
        self.messages: list = []

    async def send(self, event: str, data: dict) -> None:
        if self.client is not None:
            await self.server.send(event, data, self.client)

    async def add_message(self, event: str, data: dict, broadcast: bool = False) -> None:
        data = {**data, "timestamp": int(time.time() * 1000)}
        self.messages.append([event, data])
        if self.client is not None or broadcast:
            await self.server.send(event, data, self.client)

    async def _state(self) -> None:
        nodes = {nid: {"value": e["value"], "max": e["max"], "state": e["state"], "node_id": nid,
                       "prompt_id": self.prompt_id, "display_node_id": nid, "parent_node_id": None,
                       "real_node_id": nid}
                 for nid, e in self.registry.items() if e["state"] != "pending"}
        await self.send("progress_state", {"prompt_id": self.prompt_id, "nodes": nodes})

    async def start(self, nid: str) -> None:
        self.registry[nid] = {"state": "running", "value": 0.0, "max": 1.0}
        await self._state()

    async def update(self, nid: str, value: int, total: int) -> None:
        self.server.check_interrupt()  # ComfyUI's progress hook checks before it reports
        self.registry[nid] = {"state": "running", "value": value, "max": total}
        await self._state()
        await self.send("progress", {"value": value, "max": total, "prompt_id": self.prompt_id, "node": nid})
        if self.server.preview_frames and self.client is not None:
            png = to_png(self.server.preview_pixels, compress_level=1)
            await self.server.send_bytes(struct.pack(">II", 1, 2) + png, self.client)

    async def finish(self, nid: str) -> None:
        entry = self.registry.setdefault(nid, {"state": "pending", "value": 0, "max": 1})
        entry["state"] = "finished"
        entry["value"] = entry["max"]
        await self._state()


HOST = "127.0.0.1"


def json_response(data: Any, status: int = 200, headers: Optional[dict] = None) -> web.Response:
    return web.Response(body=json.dumps(data, ensure_ascii=False).encode(), status=status,
                        content_type="application/json", headers=headers)


class RealClock:
    """Wall time; the tests pass a controllable clock with the same two methods."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass
class WsFault:
    after: int  # messages sent before the socket is dropped (or muted)


class SandboxServer:
    name = "sandbox"
    LIVE: "weakref.WeakSet[SandboxServer]" = weakref.WeakSet()  # started instances

    def credentials(self) -> dict:
        return {"COMFYUI_REMOTE_URL": self.url}

    def __init__(self, *, clock: Optional[Any] = None, port: int = 0, token: Optional[str] = None,
                 node_s: float = 0.0, cache: bool = True, preview_frames: bool = False, seed: int = 0,
                 middlewares: tuple = (), jobs_api: Any = False):
        self.clock = clock or RealClock()
        self.port = port
        self.url = ""
        self._runner: Optional[web.AppRunner] = None
        self.token = token
        self.node_s = node_s
        self.cache_enabled = cache
        self.preview_frames = preview_frames
        self.jobs_api = jobs_api  # False: 0.3.64; True: v0.26+ jobs routes; "list": v0.6-v0.25 (no cancel)
        self.disable_metadata = False
        self.expire_views = False  # /view answers 404 for output/temp files (outputs deleted remotely)
        self._fail_next: list[tuple[str, str, type]] = []
        self.files: dict[tuple[str, str, str], bytes] = {}
        self.history: "OrderedDict[str, dict]" = OrderedDict()
        self.number = 0
        self.created: list[str] = []  # prompt ids accepted into the queue (each would be paid)
        self.deleted: list[str] = []  # removed from the pending queue by POST /queue
        self.interrupted: list[str] = []  # prompts that ended with execution_interrupted
        self.interrupt_requests: list[Optional[str]] = []
        self.cancel_requests: list[str] = []  # ids POSTed to /api/jobs/{id}/cancel
        self.sockets: dict[str, _Conn] = {}
        self.client_id: Optional[str] = None  # of the running prompt, like PromptServer.client_id
        self.last_node_id: Optional[str] = None
        self.preview_pixels = np.full((64, 64, 3), 0.5, dtype=np.float32)
        self._pending: list = []  # heap of (number, seq, item)
        self._seq = 0
        self._running: dict[int, list] = {}
        self._task_counter = 0
        self._interrupt = False
        self._cache: dict = {}
        self._counters: dict = {}
        self._temp_suffix: dict[str, str] = {}
        self._rand = random.Random(seed)
        self._wake: Optional[asyncio.Event] = None
        self._worker: Optional[asyncio.Task] = None
        self.idle: Optional[asyncio.Event] = None
        self.app = web.Application(middlewares=list(middlewares), client_max_size=64 * 1024 * 1024)
        self.setup_routes(self.app.router)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> str:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{HOST}:{self.port}"
        self._wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self._worker = asyncio.get_running_loop().create_task(self._work())
        SandboxServer.LIVE.add(self)
        return self.url

    def ws_fault(self, kind: str) -> Optional[WsFault]:
        """``ws_drop``/``ws_mute`` for the next socket; none in production (tests add them)."""
        return None

    def fail_next(self, class_type: str = "SandboxSlowPass", message: str = "injected failure",
                  exception: type = RuntimeError) -> None:
        """The next execution of a ``class_type`` node raises ``exception(message)`` (execution_error)."""
        self._fail_next.append((class_type, message, exception))

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except (asyncio.CancelledError, Exception):
                pass
            self._worker = None
        for conn in list(self.sockets.values()):
            try:
                await conn.ws.close()
            except Exception:
                pass
        self.sockets.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ routes
    def setup_routes(self, router: web.UrlDispatcher) -> None:
        table = [
            ("GET", "/ws", self._ws, "ws"),
            ("POST", "/prompt", self._post_prompt, "prompt"),
            ("GET", "/prompt", self._get_prompt, "prompt_info"),
            ("GET", "/queue", self._get_queue, "queue"),
            ("POST", "/queue", self._post_queue, "queue_edit"),
            ("POST", "/interrupt", self._post_interrupt, "interrupt"),
            ("GET", "/history", self._get_history, "history_list"),
            ("GET", "/history/{prompt_id}", self._get_history_id, "history"),
            ("GET", "/view", self._view, "view"),
            ("POST", "/upload/image", self._upload, "upload"),
            ("GET", "/object_info", self._object_info, "object_info"),
            ("GET", "/object_info/{node_class}", self._object_info_one, "object_info"),
            ("GET", "/system_stats", self._system_stats, "system_stats"),
            ("GET", "/features", self._features, "features"),
        ]
        if self.jobs_api:  # newer servers register these under /api already (and /api/api by prefixing)
            table += [("GET", "/api/jobs", self._jobs, "jobs"), ("GET", "/api/jobs/{job_id}", self._job, "job")]
        if self.jobs_api is True:
            table.append(("POST", "/api/jobs/{job_id}/cancel", self._job_cancel, "job_cancel"))
        used: set = set()
        for method, path, handler, name in table:
            for prefix in ("", "/api"):
                base = f"{prefix.strip('/') or 'root'}:{name}"
                rname, n = base, 1
                while rname in used:
                    n += 1
                    rname = f"{base}-n{n}"
                used.add(rname)
                router.add_route(method, prefix + path, self._guard(handler), name=rname)
        router.add_route("*", "/{tail:.*}", self._guard(self._static), name="static")

    def route_name(self, request: web.Request) -> str:
        name = getattr(request.match_info.route, "name", None) or request.path
        return name.split(":", 1)[1].split("-")[0] if ":" in name else name

    def _guard(self, handler: Any) -> Any:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
                return json_response({"error": "unauthorized"}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="comfyui"'})
            return await handler(request)
        return guarded

    # ------------------------------------------------------------------ websocket
    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=64 * 1024 * 1024)
        await ws.prepare(request)
        sid = request.query.get("clientId", "")
        if sid:
            self.sockets.pop(sid, None)
        else:
            sid = uuid.uuid4().hex
        drop = self.ws_fault("ws_drop")
        mute = self.ws_fault("ws_mute")
        conn = _Conn(ws, drop.after if drop else None, mute.after if mute else None)
        self.sockets[sid] = conn
        try:
            await self._send_conn(conn, {"type": "status", "data": {"status": self.queue_info(), "sid": sid}})
            if self.client_id == sid and self.last_node_id is not None:
                await self._send_conn(conn, {"type": "executing", "data": {"node": self.last_node_id}})
            first = True
            async for msg in ws:
                if msg.type.name == "TEXT":
                    try:
                        data = json.loads(msg.data)
                        if first and isinstance(data, dict) and data.get("type") == "feature_flags":
                            conn.flags = data.get("data") or {}
                            await self._send_conn(conn, {"type": "feature_flags", "data": dict(FEATURES)})
                        first = False
                    except ValueError:
                        pass
        finally:
            if self.sockets.get(sid) is conn:
                self.sockets.pop(sid, None)
        return ws

    async def _send_conn(self, conn: _Conn, message: Any) -> None:
        if conn.mute_after is not None and conn.sent >= conn.mute_after:
            return
        if conn.ws.closed:
            return
        try:
            if isinstance(message, (bytes, bytearray)):
                await conn.ws.send_bytes(bytes(message))
            else:
                await conn.ws.send_str(json.dumps(message))
        except (ConnectionError, RuntimeError):
            return
        conn.sent += 1
        if conn.drop_after is not None and conn.sent >= conn.drop_after:
            await conn.ws.close()

    async def send(self, event: str, data: Any, sid: Optional[str] = None) -> None:
        message = {"type": event, "data": data}
        if sid is None:
            for conn in list(self.sockets.values()):
                await self._send_conn(conn, message)
        elif sid in self.sockets:
            await self._send_conn(self.sockets[sid], message)

    async def send_bytes(self, data: bytes, sid: Optional[str]) -> None:
        for s, conn in list(self.sockets.items()):
            if sid is None or s == sid:
                await self._send_conn(conn, data)

    async def queue_updated(self) -> None:
        await self.send("status", {"status": self.queue_info()})

    def queue_info(self) -> dict:
        return {"exec_info": {"queue_remaining": len(self._pending) + len(self._running)}}

    # ------------------------------------------------------------------ prompt + queue
    async def _post_prompt(self, request: web.Request) -> web.Response:
        try:
            data = json.loads(await request.read())
        except ValueError:
            return web.Response(status=500, text="500 Internal Server Error\n\nServer got itself in trouble")
        if not isinstance(data, dict):
            return web.Response(status=500, text="500 Internal Server Error\n\nServer got itself in trouble")
        return await self.enqueue(data)

    async def enqueue(self, data: dict) -> web.Response:
        if "number" in data:
            number: Any = float(data["number"])
        else:
            number = self.number
            if data.get("front"):
                number = -number
            self.number += 1
        if "prompt" not in data:
            error = {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided",
                     "extra_info": {}}
            return json_response({"error": error, "node_errors": {}}, status=400)
        prompt = data["prompt"]
        prompt_id = str(data.get("prompt_id") or uuid.uuid4())
        if not isinstance(prompt, dict):
            return web.Response(status=500, text="500 Internal Server Error\n\nServer got itself in trouble")
        ok, error, outputs, node_errors = validate_prompt(self, prompt, data.get("partial_execution_targets"))
        extra = data.get("extra_data") or {}
        if "client_id" in data:
            extra["client_id"] = data["client_id"]
        if not ok:
            return json_response({"error": error, "node_errors": node_errors}, status=400)
        if self.jobs_api:
            extra["create_time"] = int(time.time() * 1000)
        item = [number, prompt_id, prompt, extra, outputs]
        self._seq += 1
        heapq.heappush(self._pending, (number, self._seq, item))
        self.created.append(prompt_id)
        await self.queue_updated()
        assert self._wake is not None
        self._wake.set()
        return json_response({"prompt_id": prompt_id, "number": number, "node_errors": node_errors})

    async def queue_foreign(self, steps: int = 20, step_seconds: float = 0.25,
                            client_id: str = SLOW_FOREIGN) -> str:
        """Another user's slow prompt, queued like any other (makes queue positions > 0)."""
        graph = {"1": {"class_type": "SandboxSolid", "inputs": {"text": "gray", "width": 8, "height": 8}},
                 "2": {"class_type": "SandboxSlowPass",
                       "inputs": {"image": ["1", 0], "steps": steps, "step_seconds": step_seconds}},
                 "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
        resp = await self.enqueue({"prompt": graph, "client_id": client_id})
        return json.loads(resp.body)["prompt_id"]  # type: ignore[arg-type]

    async def _get_prompt(self, request: web.Request) -> web.Response:
        return json_response(self.queue_info())

    async def _get_queue(self, request: web.Request) -> web.Response:
        return json_response({"queue_running": [x for x in self._running.values()],
                              "queue_pending": [t[2] for t in self._pending]})

    def running_ids(self) -> list[str]:
        return [x[1] for x in self._running.values()]

    def pending_ids(self) -> list[str]:
        return [t[2][1] for t in sorted(self._pending)]

    async def _post_queue(self, request: web.Request) -> web.Response:
        try:
            data = json.loads(await request.read())
        except ValueError:
            return web.Response(status=500, text="500 Internal Server Error\n\nServer got itself in trouble")
        if data.get("clear"):
            self.deleted.extend(t[2][1] for t in self._pending)
            self._pending = []
            await self.queue_updated()
        for pid in data.get("delete") or []:
            if self._dequeue(pid):
                await self.queue_updated()
        return web.Response(status=200)

    def _dequeue(self, pid: str) -> bool:
        for i, t in enumerate(self._pending):
            if t[2][1] == pid:
                self._pending.pop(i)
                heapq.heapify(self._pending)
                self.deleted.append(pid)
                return True
        return False

    def _interrupt_if_running(self, pid: str) -> bool:
        if pid in self.running_ids():
            self._interrupt = True
            return True
        return False

    # ------------------------------------------------------------------ jobs API (newer servers only)
    def _queue_items(self) -> tuple[list, list]:
        return list(self._running.values()), [t[2] for t in self._pending]

    async def _jobs(self, request: web.Request) -> web.Response:
        status, body = jobs.list_jobs(request.query, *self._queue_items(), self.history)
        return json_response(body, status=status)

    async def _job(self, request: web.Request) -> web.Response:
        job = jobs.get_job(request.match_info["job_id"], *self._queue_items(), self.history)
        return json_response(jobs.NOT_FOUND, status=404) if job is None else json_response(job)

    async def _job_cancel(self, request: web.Request) -> web.Response:
        pid = request.match_info["job_id"]
        self.cancel_requests.append(pid)
        pending = len(self._pending)
        answer = jobs.cancel(pid, *self._queue_items(), self._interrupt_if_running, self._dequeue)
        if len(self._pending) != pending:
            await self.queue_updated()
        return json_response(answer)

    async def _static(self, request: web.Request) -> web.Response:
        if request.method in ("GET", "HEAD"):
            return web.Response(status=404, text="404: Not Found")
        return web.Response(status=405, text="405: Method Not Allowed", headers={"Allow": "GET,HEAD"})

    async def _post_interrupt(self, request: web.Request) -> web.Response:
        try:
            data = json.loads(await request.read() or b"{}")
        except ValueError:
            data = {}
        pid = data.get("prompt_id") if isinstance(data, dict) else None
        self.interrupt_requests.append(pid)
        if not pid:
            self._interrupt = True
        else:
            self._interrupt_if_running(pid)
        return web.Response(status=200)

    def check_interrupt(self) -> None:
        if self._interrupt:
            self._interrupt = False
            raise Interrupted()

    # ------------------------------------------------------------------ history / files
    async def _get_history(self, request: web.Request) -> web.Response:
        q = request.query
        max_items = int(q["max_items"]) if "max_items" in q else None
        offset = int(q["offset"]) if "offset" in q else -1
        if offset < 0 and max_items is not None:
            offset = len(self.history) - max_items
        out = {}
        for i, (k, v) in enumerate(self.history.items()):
            if i >= offset:
                out[k] = v
                if max_items is not None and len(out) >= max_items:
                    break
        return json_response(out)

    async def _get_history_id(self, request: web.Request) -> web.Response:
        pid = request.match_info["prompt_id"]
        return json_response({pid: self.history[pid]} if pid in self.history else {})

    def read_annotated(self, name: str) -> Optional[bytes]:
        """LoadImage's ``name [output]`` / ``sub/name`` addressing into the file store."""
        typ = "input"
        for t in ("input", "output", "temp"):
            if name.endswith(f" [{t}]"):
                name, typ = name[: -len(t) - 3], t
        sub, _, fn = name.rpartition("/")
        return self.files.get((typ, sub, fn))

    def next_counter(self, typ: str, subfolder: str, prefix: str) -> int:
        key = (typ, subfolder, prefix)
        existing = [int(fn[len(prefix) + 1: len(prefix) + 6]) for (t, s, fn) in self.files
                    if t == typ and s == subfolder and fn.startswith(prefix + "_") and fn.endswith("_.png")
                    and fn[len(prefix) + 1: len(prefix) + 6].isdigit()]
        value = max([self._counters.get(key, 0)] + existing) + 1
        return value

    def temp_suffix(self, node_id: str) -> str:
        if node_id not in self._temp_suffix:
            self._temp_suffix[node_id] = "".join(self._rand.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))
        return self._temp_suffix[node_id]

    async def _view(self, request: web.Request) -> web.Response:
        q = request.query
        if "filename" not in q:
            return web.Response(status=404)
        filename = q["filename"]
        typ = q.get("type", "output")
        for t in ("input", "output", "temp"):
            if filename.endswith(f" [{t}]"):
                filename, typ = filename[: -len(t) - 3], t
        if not filename or filename[0] == "/" or ".." in filename:
            return web.Response(status=400)
        if typ not in ("input", "output", "temp"):
            return web.Response(status=400)
        if self.expire_views and typ in ("output", "temp"):
            return web.Response(status=404)
        subfolder = q.get("subfolder", "")
        if ".." in subfolder.split("/") or subfolder.startswith("/"):
            return web.Response(status=403)
        data = self.files.get((typ, subfolder.strip("/"), filename.rpartition("/")[2]))
        if data is None:
            return web.Response(status=404)
        ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        return web.Response(body=data, headers={"Content-Disposition": f'filename="{filename}"',
                                                "Content-Type": ctype})

    async def _upload(self, request: web.Request) -> web.Response:
        ctype = request.headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            return web.Response(status=400)
        body = await request.read()
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
        fields: dict = {}
        image: Optional[tuple[str, bytes]] = None
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            if name == "image" and part.get_filename() is not None:
                image = (part.get_filename() or "", payload)
            elif name:
                fields[name] = payload.decode("utf-8", "replace")
        if image is None:
            return web.Response(status=400)
        filename, data = image
        if not filename:
            return web.Response(status=400)
        typ = fields.get("type") or "input"
        if typ not in ("input", "output", "temp"):
            return web.Response(status=500, text="500 Internal Server Error")
        subfolder = fields.get("subfolder", "")
        if ".." in subfolder.split("/") or subfolder.startswith("/") or "/" in filename or ".." in filename:
            return web.Response(status=400)
        overwrite = fields.get("overwrite")
        stem, dot, ext = filename.rpartition(".")
        stem, ext = (stem, dot + ext) if dot else (filename, "")
        if overwrite not in ("true", "1"):
            i = 1
            while (typ, subfolder, filename) in self.files:
                if self.files[(typ, subfolder, filename)] == data:
                    break  # same content under that name: reuse it
                filename = f"{stem} ({i}){ext}"
                i += 1
        self.files[(typ, subfolder, filename)] = data
        return json_response({"name": filename, "subfolder": subfolder, "type": typ})

    async def _object_info(self, request: web.Request) -> web.Response:
        return json_response({name: t.info(self) for name, t in NODE_TYPES.items()})

    async def _object_info_one(self, request: web.Request) -> web.Response:
        name = request.match_info["node_class"]
        return json_response({name: NODE_TYPES[name].info(self)} if name in NODE_TYPES else {})

    async def _system_stats(self, request: web.Request) -> web.Response:
        return json_response({
            "system": {"os": "posix", "ram_total": 17179869184, "ram_free": 8589934592,
                       "comfyui_version": "0.3.64", "required_frontend_version": "1.27.10",
                       "installed_templates_version": "0.1.95", "required_templates_version": "0.1.95",
                       "python_version": sys.version, "pytorch_version": "server (numpy)",
                       "embedded_python": False, "argv": ["main.py", "--cpu", "--server"]},
            "devices": [{"name": "cpu", "type": "cpu", "index": None, "vram_total": 17179869184,
                         "vram_free": 8589934592, "torch_vram_total": 17179869184,
                         "torch_vram_free": 8589934592}],
        })

    async def _features(self, request: web.Request) -> web.Response:
        return json_response(dict(FEATURES))

    # ------------------------------------------------------------------ execution
    async def _work(self) -> None:
        assert self._wake is not None and self.idle is not None
        while True:
            if not self._pending:
                self.idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            self.idle.clear()
            _, _, item = heapq.heappop(self._pending)
            item_id = self._task_counter
            self._task_counter += 1
            self._running[item_id] = copy.deepcopy(item)
            await self.queue_updated()
            run = _Run(self, copy.deepcopy(item))
            try:
                success, ui = await self._execute(run)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in the server must not wedge the queue
                traceback.print_exc()
                success, ui = False, {}
            prompt = self._running.pop(item_id)
            for key in SENSITIVE_EXTRA_DATA_KEYS:
                prompt[3].pop(key, None)
            self.history[prompt[1]] = {
                "prompt": prompt,
                "outputs": {nid: u["output"] for nid, u in ui.items()},
                "status": {"status_str": "success" if success else "error", "completed": success,
                           "messages": run.messages},
                "meta": {nid: u["meta"] for nid, u in ui.items()},
            }
            await self.queue_updated()
            if run.client is not None:
                await self.send("executing", {"node": None, "prompt_id": run.prompt_id}, run.client)

    def _signatures(self, prompt: dict) -> dict:
        sigs: dict = {}

        def sig(nid: str) -> Any:
            if nid in sigs:
                return sigs[nid]
            node = prompt[nid]
            ntype = NODE_TYPES[node["class_type"]]
            parts = []
            for k, v in sorted(node.get("inputs", {}).items()):
                if isinstance(v, list) and len(v) == 2 and v[0] in prompt:
                    parts.append((k, ("link", sig(v[0]), v[1])))
                else:
                    parts.append((k, json.dumps(v, sort_keys=True)))
            changed: Any = None
            if ntype.never_cached or not self.cache_enabled:
                changed = uuid.uuid4().hex  # NaN: never equal
            elif ntype.is_changed is not None:
                changed = ntype.is_changed(NodeContext(self, _Run(self, [0, "", prompt, {}, []]), nid),
                                           **{k: node["inputs"].get(k) for k in ntype.validate_inputs})
            sigs[nid] = (node["class_type"], changed, tuple(parts))
            return sigs[nid]

        for nid in prompt:
            sig(nid)
        return sigs

    def _order(self, prompt: dict, outputs: list, cached: set) -> list:
        order: list = []
        seen: set = set()

        def visit(nid: str) -> None:
            if nid in seen:
                return
            seen.add(nid)
            for v in prompt[nid].get("inputs", {}).values():
                if isinstance(v, list) and len(v) == 2 and v[0] in prompt and v[0] not in cached:
                    visit(v[0])
            order.append(nid)

        for o in outputs:
            visit(o)
        return order

    async def _execute(self, run: _Run) -> tuple[bool, dict]:
        self._interrupt = False
        self.client_id = run.client
        prompt = run.prompt
        await run.add_message("execution_start", {"prompt_id": run.prompt_id})
        sigs = self._signatures(prompt)
        cached = {nid for nid in prompt if sigs[nid] in self._cache}
        await run.add_message("execution_cached", {"nodes": [n for n in prompt if n in cached],
                                                   "prompt_id": run.prompt_id})
        results: dict = {}
        ui: dict = {}
        executed: list = []
        for nid in prompt:
            if nid in cached and self._cache[sigs[nid]].get("ui") is not None:
                ui[nid] = self._cache[sigs[nid]]["ui"]
        success = True
        for nid in self._order(prompt, run.outputs, cached):
            node = prompt[nid]
            ntype = NODE_TYPES[node["class_type"]]
            if nid in cached:
                entry = self._cache[sigs[nid]]
                results[nid] = entry["outputs"]
                await run.send("executed", {"node": nid, "display_node": nid,
                                            "output": (entry.get("ui") or {}).get("output"),
                                            "prompt_id": run.prompt_id})
                await run.finish(nid)
                continue
            await run.start(nid)
            self.last_node_id = nid
            await run.send("executing", {"node": nid, "display_node": nid, "prompt_id": run.prompt_id})
            kwargs: dict = {}
            for k, v in node.get("inputs", {}).items():
                if isinstance(v, list) and len(v) == 2 and v[0] in prompt:
                    src = results.get(v[0]) or self._cache.get(sigs[v[0]], {}).get("outputs")
                    kwargs[k] = src[v[1]]
                elif k in ntype.required or k in ntype.optional:
                    kwargs[k] = v
            try:
                self.check_interrupt()
                if self.node_s > 0 and not ntype.name.startswith("SandboxSlow"):
                    await self.clock.sleep(self.node_s)
                for i, (cls, message, exc_type) in enumerate(self._fail_next):
                    if cls == ntype.name:
                        del self._fail_next[i]
                        raise NodeFailure(exc_type(message))
                outs, out_ui = await ntype.run(NodeContext(self, run, nid), **kwargs)
            except Interrupted:
                success = False
                self.interrupted.append(run.prompt_id)
                await run.add_message("execution_interrupted", {
                    "prompt_id": run.prompt_id, "node_id": nid, "node_type": node["class_type"],
                    "executed": list(executed)}, broadcast=True)
                break
            except Exception as e:
                exc = e.exc if isinstance(e, NodeFailure) else e
                success = False
                tb = ['  File "<ComfyUI>/execution.py", line 496, in execute\n',
                      f'  File "<sandbox>/nodes.py", in {ntype.name}\n    raise {type(exc).__name__}\n']
                mod = type(exc).__module__
                await run.add_message("execution_error", {
                    "prompt_id": run.prompt_id, "node_id": nid, "node_type": node["class_type"],
                    "executed": list(executed), "exception_message": f"{exc}\n",
                    "exception_type": type(exc).__qualname__ if mod == "builtins" else f"{mod}.{type(exc).__qualname__}",
                    "traceback": tb,
                    "current_inputs": {k: [format_value(v)] for k, v in kwargs.items()},
                    "current_outputs": list(prompt)})
                break
            results[nid] = outs
            if out_ui:
                ui[nid] = {"meta": {"node_id": nid, "display_node": nid, "parent_node": None, "real_node_id": nid},
                           "output": out_ui}
                await run.send("executed", {"node": nid, "display_node": nid, "output": out_ui,
                                            "prompt_id": run.prompt_id})
            self._cache[sigs[nid]] = {"outputs": outs, "ui": ui.get(nid)}
            await run.finish(nid)
            executed.append(nid)
        else:
            await run.add_message("execution_success", {"prompt_id": run.prompt_id})
        keep = set(sigs.values())
        self._cache = {k: v for k, v in self._cache.items() if k in keep and self.cache_enabled}
        self.last_node_id = None
        return success, ui
