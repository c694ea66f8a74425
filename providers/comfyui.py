"""Any plain ComfyUI server, through its native API (``/prompt``, ``/ws``, ``/history``, ``/view``,
``/upload/image``, ``/queue``, ``/interrupt``, ``/object_info``, ``/system_stats``).

Profile: ``url`` (``COMFYUI_REMOTE_URL``), optional secret ``token`` (``COMFYUI_REMOTE_TOKEN``) sent
as ``Authorization: Bearer`` on every request, HTTP and WebSocket, and in ``download_headers`` for
``/view`` (ComfyUI itself has no auth; the token is for an authenticating reverse proxy).

How a task runs:
- ``new_submission_key()`` is a uuid4 that becomes the ``prompt_id`` (ComfyUI lets the client choose
  it), so ``find()`` can look the prompt up in ``/queue`` and ``/history`` after a lost answer.
- ``validate()`` parses the API graph, checks every target's node, then asks ``/object_info/{class}``
  for each class of the graph: unknown node types and unknown target inputs are refused before
  anything runs; values of INT/FLOAT/combo targets are checked against the remote's limits.
- ``upload()`` sends PNGs under their content-addressed name (``<sha256>.png``) to
  ``/upload/image`` (type input, overwrite); skipped when ``GET /view`` already has those bytes.
- ``submit()`` posts ``{prompt, client_id, prompt_id}``. One WebSocket per client id is shared by
  every task of this provider instance and dispatches messages by ``prompt_id``; it is opened
  before the POST so no message is missed, reconnects with backoff, and is closed when idle.
- ``watch()`` follows the WebSocket and polls ``GET /queue`` (position) and ``GET /history/{id}``
  (final state, outputs) every ``poll_interval_s`` as a safety net: ComfyUI does not replay
  messages after a reconnect, and after a restart the prompt's messages went to an older client id.
- ``cancel()``: ``POST /queue {"delete": [id]}`` (pending) then, if it is running,
  ``POST /interrupt {"prompt_id": id}``.

Status / error mapping (service → State / error class):

| ComfyUI answer                                                    | State / error                    |
|-------------------------------------------------------------------|----------------------------------|
| in ``/queue`` ``queue_pending``                                   | QUEUED (position = prompts ahead)|
| in ``queue_running``, ``execution_start``, ``executing {node}``   | RUNNING                          |
| ``progress {value,max,node}`` / ``progress_state``                | RUNNING, step/max, progress      |
| history ``status_str: success`` (``execution_success``)           | SUCCEEDED, outputs from history  |
| ``execution_error {node_id,node_type,exception_*}``               | FAILED, RemoteFailure(node, class)|
| ``execution_interrupted``                                         | CANCELLED                        |
| history ``status_str: error`` without a message                   | FAILED, RemoteFailure            |
| neither queued nor in history (deleted, server restarted)         | CANCELLED if we cancelled, else FAILED NotFound |
| POST /prompt 400 ``invalid_prompt`` (unknown class_type)          | RejectedInput field ``workflow`` |
| POST /prompt 400 ``prompt_no_outputs``                            | RejectedInput field ``workflow`` |
| POST /prompt 400 ``prompt_outputs_failed_validation`` + node_errors (``required_input_missing``, ``value_not_in_list``, ``value_bigger_than_max``, ``value_smaller_than_min``, ``invalid_input_type``, ``return_type_mismatch``, ``bad_linked_input``, ``custom_validation_failed``, ``exception_during_validation``) | RejectedInput naming remote node, class and ``NODE.input`` (≤ 5 errors summarised) |
| POST /prompt 400 ``no_prompt``                                    | ProtocolError                    |
| HTTP 401 / 403 (proxy refused the token; WS handshake too)        | AuthError                        |
| HTTP 404 on an API route                                          | NotFound (not a ComfyUI URL)     |
| HTTP 413                                                          | RejectedInput (body too large)   |
| 429 / 5xx / dropped connection                                    | retried by Http; on POST /prompt → AmbiguousSubmit, resolved by ``find()`` |
| malformed JSON                                                    | ProtocolError                    |
"""
from __future__ import annotations

import asyncio
import collections
import json
import mimetypes
import time
import uuid
from typing import Any, AsyncIterator, Optional
from urllib.parse import quote, urlencode

import aiohttp

from ..engine.redaction import get_logger
from .base import (AuthError, Capabilities, ConfigError, NotFound, Output, Preflight, ProtocolError, Provider,
                   RejectedInput, RemoteError, RemoteFailure, RemoteRef, State, SubmitSpec, TaskUpdate,
                   TransientError, _node_sort_key, apply_overrides, parse_api_graph)

log = get_logger("comfyui_remote.providers.comfyui")

FILE_KEYS = {"images": "image", "gifs": "video", "videos": "video", "video": "video", "audio": "audio",
             "animated": "image", "3d": "file", "files": "file"}
SOCKET_TYPES = frozenset({"IMAGE", "MASK", "LATENT", "MODEL", "CLIP", "VAE", "CONDITIONING", "CONTROL_NET",
                          "AUDIO", "VIDEO", "NOISE", "SAMPLER", "SIGMAS", "GUIDER", "CLIP_VISION",
                          "CLIP_VISION_OUTPUT", "STYLE_MODEL", "UPSCALE_MODEL", "GLIGEN"})
MAX_SUMMARISED = 5
WS_IDLE_S = 5.0
OBJECT_INFO_TTL_S = 60.0


def _ws_url(base: str, client_id: str) -> str:
    scheme, _, rest = base.partition("://")
    ws_scheme = {"https": "wss", "http": "ws"}.get(scheme, scheme)
    return f"{ws_scheme}://{rest}/ws?clientId={quote(client_id)}"


class _Sub:
    """Buffered messages of one prompt (or broadcasts) for one watcher."""

    def __init__(self) -> None:
        self.items: collections.deque = collections.deque(maxlen=4096)
        self.event = asyncio.Event()

    def push(self, msg: dict) -> None:
        self.items.append(msg)
        self.event.set()

    async def get(self, timeout: float) -> list:
        if not self.items:
            try:
                await asyncio.wait_for(self.event.wait(), max(0.0, timeout))
            except asyncio.TimeoutError:
                pass
        self.event.clear()
        out = list(self.items)
        self.items.clear()
        return out


class _Channel:
    """One WebSocket for one client id, shared by all watched prompts; dispatch by prompt_id.
    Synthetic messages to every subscriber: ``_connected`` {generation}, ``_disconnected``."""

    def __init__(self, provider: "ComfyUIProvider", client_id: str):
        self.p = provider
        self.client_id = client_id
        self.subs: dict[str, _Sub] = {}
        self.connected = asyncio.Event()
        self.tried = asyncio.Event()  # the first connection attempt ended (either way)
        self.generation = 0
        self.task: Optional[asyncio.Task] = None
        self.ws: Optional[aiohttp.ClientWebSocketResponse] = None
        self.last_error: Optional[RemoteError] = None

    def subscribe(self, prompt_id: str) -> _Sub:
        sub = self.subs.get(prompt_id)
        if sub is None:
            sub = self.subs[prompt_id] = _Sub()
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())
        return sub

    def unsubscribe(self, prompt_id: str) -> None:
        self.subs.pop(prompt_id, None)

    async def wait_connected(self, timeout: float) -> bool:
        """Wait (bounded) until the socket is up or its first attempt failed."""
        try:
            await asyncio.wait_for(self.tried.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        return self.connected.is_set()

    def _broadcast(self, msg: dict) -> None:
        for sub in list(self.subs.values()):
            sub.push(msg)

    def _dispatch(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            return
        data = msg.get("data")
        pid = data.get("prompt_id") if isinstance(data, dict) else None
        if pid is not None:
            sub = self.subs.get(str(pid))
            if sub is not None:
                sub.push(msg)
        else:
            self._broadcast(msg)

    async def _run(self) -> None:
        backoff = 0.05
        idle_since: Optional[float] = None
        while True:
            if not self.subs:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > WS_IDLE_S:
                    return
                await asyncio.sleep(0.1)
                continue
            idle_since = None
            try:
                base = await self.p._base()
                ws = await self.p.http.ws_connect(_ws_url(base, self.client_id), headers=self.p._headers())
            except asyncio.CancelledError:
                raise
            except RemoteError as e:
                self.last_error = e
                self.tried.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self.ws = ws
            self.generation += 1
            self.connected.set()
            self.tried.set()
            self._broadcast({"type": "_connected", "data": {"generation": self.generation}})
            try:
                quiet_since = time.monotonic()
                while True:
                    try:
                        m = await ws.receive(timeout=1.0)
                    except asyncio.TimeoutError:
                        if self.subs:
                            quiet_since = time.monotonic()
                        elif time.monotonic() - quiet_since > WS_IDLE_S:
                            break  # nobody listens: close the idle socket
                        continue
                    if m.type == aiohttp.WSMsgType.TEXT:
                        try:
                            self._dispatch(json.loads(m.data))
                        except ValueError:
                            log.debug("comfyui: ignored a WebSocket text frame that is not JSON")
                    elif m.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                                    aiohttp.WSMsgType.ERROR):
                        break
                    # binary frames (previews, progress text) carry nothing we need
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a dropped socket is a normal event: reconnect
                log.debug("comfyui: WebSocket dropped (%s)", e.__class__.__name__)
            finally:
                self.connected.clear()
                self.ws = None
                try:
                    await ws.close()
                except Exception:
                    pass
            if self.subs:
                self._broadcast({"type": "_disconnected", "data": {}})
                backoff = 0.05 if self.generation else backoff
                await asyncio.sleep(backoff)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass
            self.task = None
        if self.ws is not None:
            try:
                await self.ws.close()
            except Exception:
                pass


class _Tracker:
    """What watch() knows about one prompt; turns WS messages and polls into TaskUpdates."""

    def __init__(self, provider: "ComfyUIProvider", prompt_id: str, classes: Optional[dict]):
        self.p = provider
        self.pid = prompt_id
        self.classes = dict(classes or {})
        self.state = State.QUEUED
        self.queue_position: Optional[int] = None
        self.queue_length: Optional[int] = None
        self.node: Optional[str] = None
        self.step: Optional[int] = None
        self.max_steps: Optional[int] = None
        self.progress: float = 0.0
        self.eta_s: Optional[float] = None
        self.cached: set = set()
        self.finished_nodes: set = set()
        self.running_frac: float = 0.0
        self.need_poll = False
        self.terminal: Optional[TaskUpdate] = None
        self.first_step: Optional[tuple] = None
        self.missing = 0
        self._last: Optional[tuple] = None

    def label(self, node_id: Optional[str]) -> Optional[str]:
        if node_id is None:
            return None
        cls = self.classes.get(str(node_id))
        return f"{cls} #{node_id}" if cls else f"#{node_id}"

    def _recompute(self) -> None:
        if not self.classes:
            return
        total = max(1, len(self.classes) - len(self.cached & set(self.classes)))
        value = (len(self.finished_nodes - self.cached) + self.running_frac) / total
        self.progress = max(self.progress, min(0.99, value))

    def running(self) -> None:
        self.state = State.RUNNING
        self.queue_position = 0

    def apply(self, msg: dict) -> None:
        t = msg.get("type")
        d = msg.get("data") if isinstance(msg.get("data"), dict) else {}
        if t == "status":
            if self.state == State.QUEUED:
                self.need_poll = True  # the queue moved: re-read our position
        elif t == "execution_start":
            self.running()
        elif t == "execution_cached":
            self.cached = {str(n) for n in d.get("nodes") or []}
            self._recompute()
        elif t == "executing":
            node = d.get("node")
            if node is None:
                if d.get("prompt_id") is not None:
                    self.need_poll = True  # end marker: history is written
            else:
                self.running()
                if str(node) != self.node:
                    self.node, self.step, self.max_steps, self.eta_s, self.first_step = str(node), None, None, None, None
        elif t == "progress":
            self.running()
            node, value, total = d.get("node"), d.get("value"), d.get("max")
            if node is not None:
                self.node = str(node)
            if isinstance(value, (int, float)) and isinstance(total, (int, float)) and total > 0:
                self.step, self.max_steps = int(value), int(total)
                now = time.monotonic()
                if self.first_step is None or self.first_step[0] != self.node:
                    self.first_step = (self.node, now, value)
                else:
                    _, t0, v0 = self.first_step
                    if value > v0:
                        self.eta_s = round((total - value) * (now - t0) / (value - v0), 1)
        elif t == "progress_state":
            nodes = d.get("nodes") if isinstance(d.get("nodes"), dict) else {}
            frac = 0.0
            for nid, st in nodes.items():
                if not isinstance(st, dict):
                    continue
                if st.get("state") == "finished":
                    self.finished_nodes.add(str(nid))
                elif st.get("state") == "running":
                    try:
                        frac += float(st.get("value") or 0) / float(st.get("max") or 1)
                    except (TypeError, ValueError, ZeroDivisionError):
                        pass
            self.running_frac = min(frac, 1.0)
            self.running()
            self._recompute()
        elif t == "execution_success":
            self.need_poll = True
        elif t == "execution_error":
            self.terminal = TaskUpdate(State.FAILED, error=self.p._failure(d), raw_state="execution_error",
                                       node=self.label(d.get("node_id")))
        elif t == "execution_interrupted":
            self.terminal = TaskUpdate(State.CANCELLED, raw_state="execution_interrupted",
                                       node=self.label(d.get("node_id")),
                                       message="interrupted on the remote server")
        elif t == "_connected":
            if int(d.get("generation") or 0) > 1:
                self.need_poll = True  # messages sent while we were away are not replayed
        elif t == "_disconnected":
            self.need_poll = True

    def update(self) -> Optional[TaskUpdate]:
        snap = (self.state, self.queue_position, self.queue_length, round(self.progress, 3), self.node,
                self.step, self.max_steps)
        if snap == self._last:
            return None
        self._last = snap
        running = self.state == State.RUNNING
        return TaskUpdate(self.state, queue_position=self.queue_position, queue_length=self.queue_length,
                          progress=round(self.progress, 4) if running else None,
                          node=self.label(self.node) if running else None, step=self.step,
                          max_steps=self.max_steps, eta_s=self.eta_s if running else None,
                          raw_state="running" if running else "pending")


class ComfyUIProvider(Provider):
    id = "comfyui"
    label = "ComfyUI"
    capabilities = Capabilities(cancel=True, queue_position=True, progress="push", uploads=True, cost=False,
                                idempotent_submit=False, client_chosen_id=True, findable=True,
                                addressing="node")

    def __init__(self, profile: Any, http: Any):
        super().__init__(profile, http)
        self.client_id = uuid.uuid4().hex
        self._channels: dict[str, _Channel] = {}
        self._classes: dict[str, dict] = {}
        self._cancel_requested: set[str] = set()
        self._object_info: dict[str, tuple[float, Optional[dict]]] = {}

    # ------------------------------------------------------------------ plumbing
    async def _base(self) -> str:
        url = getattr(self.profile, "url", None)
        if not url:
            where = (self.profile.missing() if hasattr(self.profile, "missing") else None) or "no endpoint URL"
            raise self.error(ConfigError, f"profile '{self.name}' has {where}", field="url",
                             hint="set COMFYUI_REMOTE_URL (built-in profile) or 'url' in profiles.toml")
        return str(url).rstrip("/")

    def _token(self) -> Optional[str]:
        secret = getattr(self.profile, "secret", None)
        return secret("token") if callable(secret) else None

    def _headers(self) -> dict:
        token = self._token()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def download_headers(self, output: Output) -> dict:
        return self._headers()

    def _channel(self, client_id: str) -> _Channel:
        ch = self._channels.get(client_id)
        if ch is None:
            ch = self._channels[client_id] = _Channel(self, client_id)
        return ch

    def _where_token(self) -> str:
        where = getattr(self.profile, "where", None)
        return where("token") if callable(where) else "the profile's token"

    def _raise_status(self, resp: Any, what: str) -> None:
        status = resp.status
        if 200 <= status < 300:
            return
        if status in (401, 403):
            if self._token():
                hint = f"the server refused the token: check {self._where_token()}"
            else:
                hint = f"the server (or its proxy) needs a token: set {self._where_token()}"
            raise self.error(AuthError, f"{what}: HTTP {status} from the remote ComfyUI", code=status, hint=hint)
        if status == 404:
            raise self.error(NotFound, f"{what}: HTTP 404, no ComfyUI API at this URL", code=status,
                             hint="check the profile's url (the ComfyUI server root, e.g. http://host:8188)")
        if status == 413:
            raise self.error(RejectedInput, f"{what}: the server refused the request as too large (HTTP 413)",
                             code=status, hint="use smaller images or raise the proxy's upload limit")
        if status >= 500 or status in (408, 429):
            raise self.error(TransientError, f"{what}: HTTP {status} from the remote ComfyUI", code=status,
                             hint="the server is busy or failing; try again later")
        raise self.error(ProtocolError, f"{what}: unexpected HTTP {status}", code=status)

    async def _get(self, path: str, what: str, **kw: Any) -> Any:
        base = await self._base()
        resp = await self.http.request("GET", base + path, headers=self._headers(), **kw)
        self._raise_status(resp, what)
        return resp.json()

    async def _post(self, path: str, body: Any, what: str, *, idempotent: bool = True) -> Any:
        base = await self._base()
        resp = await self.http.request("POST", base + path, json=body, headers=self._headers(),
                                       idempotent=idempotent)
        self._raise_status(resp, what)
        return resp

    async def _workflow_text(self, spec: SubmitSpec) -> str:
        return spec.workflow

    async def _graph(self, spec: SubmitSpec) -> dict:
        return parse_api_graph(await self._workflow_text(spec), provider=self.id, profile=self.name)

    def _ctx(self, e: RemoteError) -> RemoteError:
        return e.with_context(provider=self.id, profile=self.name)

    # ------------------------------------------------------------------ pre-flight
    async def _object_infos(self, classes: set[str]) -> dict[str, Optional[dict]]:
        now = time.monotonic()
        missing = [c for c in classes if c not in self._object_info or now - self._object_info[c][0] > OBJECT_INFO_TTL_S]

        async def one(cls: str) -> None:
            data = await self._get(f"/object_info/{quote(cls, safe='')}", "GET /object_info")
            info = data.get(cls) if isinstance(data, dict) else None
            self._object_info[cls] = (time.monotonic(), info if isinstance(info, dict) else None)

        if missing:
            await asyncio.gather(*(one(c) for c in missing))
        return {c: self._object_info[c][1] for c in classes}

    async def validate(self, spec: SubmitSpec) -> Preflight:
        graph = await self._graph(spec)
        try:
            targets = spec.targets("node")
            apply_overrides(graph, spec, provider=self.id, profile=self.name, check_fields=False)
        except RemoteError as e:
            raise self._ctx(e)
        classes = {str(n.get("class_type")) for n in graph.values()}
        infos = await self._object_infos(classes)
        unknown = sorted(c for c in classes if infos.get(c) is None)
        if unknown:
            where = ", ".join(f"{graph[n]['class_type']} #{n}" for n in sorted(graph, key=_node_sort_key)
                              if graph[n]["class_type"] in unknown)
            raise self.error(RejectedInput, f"the remote ComfyUI does not know node type(s) {', '.join(unknown)} "
                             f"(used by {where})", field="workflow", code="unknown_node_type",
                             hint="install the custom nodes that provide them on the remote server, "
                                  "or use a profile whose server has them")
        for tgt, o in targets:
            node = graph[tgt.node]
            cls = str(node["class_type"])
            self._check_target(tgt, o, cls, infos[cls] or {})
        return Preflight(workflow_label=None)

    def _check_target(self, tgt: Any, o: Any, cls: str, info: dict) -> None:
        inputs = info.get("input") or {}
        specs: dict = {}
        for cat in ("required", "optional"):
            if isinstance(inputs.get(cat), dict):
                specs.update(inputs[cat])
        if tgt.field not in specs:
            names = ", ".join(specs) or "none"
            raise self.error(RejectedInput, f"target {tgt.raw}: {cls} #{tgt.node} has no input '{tgt.field}'",
                             field="target", remote_node=tgt.node, node_class=cls,
                             hint=f"its inputs are: {names}")
        spec = specs[tgt.field]
        typ = spec[0] if isinstance(spec, list) and spec else spec
        opts = spec[1] if isinstance(spec, list) and len(spec) > 1 and isinstance(spec[1], dict) else {}
        bad = lambda detail, hint: self.error(RejectedInput, f"target {tgt.raw}: {detail}", field="target",
                                             remote_node=tgt.node, node_class=cls, hint=hint)
        if o.kind == "image":
            if not (isinstance(typ, list) or typ == "STRING"):
                raise bad(f"{cls}.{tgt.field} is a {typ} input and cannot take an uploaded image",
                          "target the image (file name) input of a LoadImage node, e.g. 10.image")
            return
        if isinstance(typ, str) and typ in SOCKET_TYPES:
            raise bad(f"{cls}.{tgt.field} is a {typ} socket, not a value",
                      "override a widget input (text, number, file name) instead")
        if isinstance(typ, list):
            if o.kind == "text" and typ and not opts.get("image_upload") and o.value not in typ:
                shown = ", ".join(map(str, typ[:20])) + (f" … ({len(typ)} in all)" if len(typ) > 20 else "")
                raise bad(f"{o.value!r} is not one of the remote's values for {cls}.{tgt.field}",
                          f"use one of: {shown}")
            return
        if typ in ("INT", "FLOAT"):
            if o.kind not in ("int", "float"):
                raise bad(f"{cls}.{tgt.field} takes a number", "use RemoteInputInt or RemoteInputFloat")
            if typ == "INT" and isinstance(o.value, float) and not float(o.value).is_integer():
                raise bad(f"{cls}.{tgt.field} takes an integer, got {o.value}", "use RemoteInputInt")
            lo, hi = opts.get("min"), opts.get("max")
            if isinstance(lo, (int, float)) and o.value < lo:
                raise bad(f"value {o.value} is smaller than the remote's min {lo}", f"use {lo} … {hi}")
            if isinstance(hi, (int, float)) and o.value > hi:
                raise bad(f"value {o.value} is bigger than the remote's max {hi}", f"use {lo} … {hi}")

    # ------------------------------------------------------------------ upload
    async def upload(self, data: bytes, mime: str, name: str) -> Any:
        base = await self._base()
        resp = await self.http.request("GET", base + "/view", params={"filename": name, "type": "input",
                                                                      "subfolder": ""},
                                       headers=self._headers(), max_body=len(data) + 65536)
        if resp.status in (401, 403):
            self._raise_status(resp, "GET /view")
        if resp.status == 200 and resp.body == data:
            return name

        def form() -> aiohttp.FormData:
            fd = aiohttp.FormData()
            fd.add_field("image", data, filename=name, content_type=mime or "image/png")
            fd.add_field("type", "input")
            fd.add_field("overwrite", "true")
            return fd

        resp = await self.http.request("POST", base + "/upload/image", data=form, headers=self._headers(),
                                       idempotent=True)  # same name, same bytes: a resend is harmless
        self._raise_status(resp, "POST /upload/image")
        answer = resp.json()
        if not isinstance(answer, dict) or not answer.get("name"):
            raise self.error(ProtocolError, "POST /upload/image answered without a file name")
        sub = answer.get("subfolder") or ""
        return f"{sub}/{answer['name']}" if sub else str(answer["name"])

    # ------------------------------------------------------------------ submit
    def new_submission_key(self) -> str:
        return str(uuid.uuid4())

    async def submit(self, spec: SubmitSpec, key: str) -> RemoteRef:
        base = await self._base()
        graph = await self._graph(spec)
        try:
            graph = apply_overrides(graph, spec, provider=self.id, profile=self.name, check_fields=False)
        except RemoteError as e:
            raise self._ctx(e)
        classes = {str(k): str(v.get("class_type")) for k, v in graph.items()}
        self._classes[key] = classes
        channel = self._channel(self.client_id)
        channel.subscribe(key)  # buffer from now on: messages are never replayed
        await channel.wait_connected(3.0)
        body = {"prompt": graph, "client_id": self.client_id, "prompt_id": key}
        try:
            resp = await self.http.request("POST", base + "/prompt", json=body, headers=self._headers())
            if resp.status == 400:
                raise self._rejected(resp.json())
            self._raise_status(resp, "POST /prompt")
            answer = resp.json()
        except RemoteError as e:
            if e.kind != "ambiguous_submit":
                channel.unsubscribe(key)
            raise
        if not isinstance(answer, dict) or not answer.get("prompt_id"):
            raise self.error(ProtocolError, "POST /prompt answered without a prompt_id")
        pid = str(answer["prompt_id"])
        if pid != key:  # a server that ignores client-chosen ids: follow its own
            channel.unsubscribe(key)
            channel.subscribe(pid)
            self._classes[pid] = classes
        if answer.get("node_errors"):
            log.warning("comfyui: prompt %s runs only part of the workflow: %s", pid,
                        self._summarise(answer["node_errors"])[0])
        return RemoteRef(remote_id=pid, data={"client_id": self.client_id, "number": answer.get("number")},
                         console_url=self._console(base))

    def _console(self, base: str) -> Optional[str]:
        return base

    def _summarise(self, node_errors: dict) -> tuple[str, Optional[str], Optional[str], Optional[str], list]:
        lines: list = []
        first: tuple = (None, None, None)
        types: list = []
        for nid in sorted(node_errors, key=lambda n: _node_sort_key(str(n))):
            ne = node_errors[nid] if isinstance(node_errors[nid], dict) else {}
            cls = ne.get("class_type") or "?"
            for e in ne.get("errors") or []:
                if not isinstance(e, dict):
                    continue
                inp = (e.get("extra_info") or {}).get("input_name")
                details = str(e.get("details") or "")
                where = f"{cls} #{nid}" + (f".{inp}" if inp else "")
                text = f"{where}: {e.get('message') or e.get('type')}"
                if details and details != inp:
                    text += f" ({details[:200]})"
                lines.append(text)
                types.append(e.get("type"))
                if first[0] is None:
                    first = (str(nid), cls, f"{nid}.{inp}" if inp else None)
        more = f"; and {len(lines) - MAX_SUMMARISED} more" if len(lines) > MAX_SUMMARISED else ""
        return "; ".join(lines[:MAX_SUMMARISED]) + more, first[0], first[1], first[2], types

    def _rejected(self, data: Any) -> RemoteError:
        if not isinstance(data, dict):
            return self.error(ProtocolError, "POST /prompt answered 400 without a JSON error")
        err = data.get("error") if isinstance(data.get("error"), dict) else {}
        etype = err.get("type") if isinstance(err, dict) else None
        node_errors = data.get("node_errors") if isinstance(data.get("node_errors"), dict) else {}
        if etype == "invalid_prompt":
            return self.error(RejectedInput, f"the remote ComfyUI refused the workflow: {err.get('message')} "
                              f"({err.get('details')})", field="workflow", code=etype,
                              hint="install the missing custom nodes on the remote server, "
                                   "or fix the API-format graph")
        if etype == "prompt_no_outputs":
            return self.error(RejectedInput, "the workflow has no output node", field="workflow", code=etype,
                              hint="add a SaveImage (or PreviewImage) node to the remote workflow")
        if etype == "no_prompt":
            return self.error(ProtocolError, "the remote ComfyUI saw no prompt in the request", code=etype)
        if node_errors:
            summary, node, cls, fld, types = self._summarise(node_errors)
            hint = "fix these inputs with RemoteInput… targets or in the remote workflow"
            if "custom_validation_failed" in types and "Invalid image file" in summary:
                hint = "the image is not on the remote server: feed it through RemoteInputImage"
            elif "value_not_in_list" in types:
                hint = "use a value the remote server offers (models and files must exist there)"
            return self.error(RejectedInput, f"the remote ComfyUI rejected the workflow: {summary}",
                              field=fld or "workflow", remote_node=node or "", node_class=cls or "",
                              code=etype or "prompt_outputs_failed_validation", hint=hint)
        message = (err.get("message") if isinstance(err, dict) else None) or "invalid prompt"
        return self.error(RejectedInput, f"the remote ComfyUI rejected the workflow: {message}",
                          field="workflow", code=etype)

    # ------------------------------------------------------------------ find / queue / history
    async def _queue(self) -> tuple[list, list]:
        data = await self._get("/queue", "GET /queue")
        if not isinstance(data, dict):
            raise self.error(ProtocolError, "GET /queue answered something that is not an object")
        running = [x for x in data.get("queue_running") or [] if isinstance(x, list) and len(x) > 2]
        pending = [x for x in data.get("queue_pending") or [] if isinstance(x, list) and len(x) > 2]
        pending.sort(key=lambda x: (x[0] if isinstance(x[0], (int, float)) else 0))
        return running, pending

    async def _history(self, pid: str) -> Optional[dict]:
        data = await self._get(f"/history/{quote(pid, safe='')}", "GET /history")
        entry = data.get(pid) if isinstance(data, dict) else None
        return entry if isinstance(entry, dict) else None

    async def find(self, key: str, spec: SubmitSpec) -> Optional[RemoteRef]:
        base = await self._base()
        running, pending = await self._queue()
        if any(str(x[1]) == key for x in running + pending) or await self._history(key) is not None:
            return RemoteRef(remote_id=key, data={"client_id": self.client_id}, console_url=self._console(base))
        return None

    # ------------------------------------------------------------------ watch
    def _failure(self, d: dict) -> RemoteError:
        node = str(d.get("node_id") or "")
        cls = str(d.get("node_type") or "")
        etype = str(d.get("exception_type") or "error")
        msg = str(d.get("exception_message") or "").strip()[:500]
        hint = "fix the inputs or the remote workflow; the remote ComfyUI's log has the traceback"
        if "OutOfMemory" in etype or "out of memory" in msg.lower():
            hint = "the remote GPU ran out of memory: use smaller sizes or batch, or a bigger server"
        return self.error(RemoteFailure, f"{cls} #{node} failed: {etype}: {msg}", remote_node=node,
                          node_class=cls, code=etype, hint=hint)

    async def _poll(self, ref: RemoteRef, tr: _Tracker) -> Optional[TaskUpdate]:
        pid = ref.remote_id
        running, pending = await self._queue()
        for item in running:
            if str(item[1]) == pid:
                if not tr.classes and isinstance(item[2], dict):
                    tr.classes = {str(k): str(v.get("class_type")) for k, v in item[2].items()
                                  if isinstance(v, dict)}
                tr.running()
                tr.queue_length = len(running) + len(pending)
                return None
        for i, item in enumerate(pending):
            if str(item[1]) == pid:
                if not tr.classes and isinstance(item[2], dict):
                    tr.classes = {str(k): str(v.get("class_type")) for k, v in item[2].items()
                                  if isinstance(v, dict)}
                tr.state = State.QUEUED
                tr.queue_position = len(running) + i
                tr.queue_length = len(running) + len(pending)
                return None
        entry = await self._history(pid)
        if entry is not None:
            return await self._from_history(ref, entry)
        if pid in self._cancel_requested or ref.data.get("cancel_requested"):
            return TaskUpdate(State.CANCELLED, raw_state="deleted", message="removed from the remote queue")
        tr.missing += 1
        if tr.missing >= 2:
            return TaskUpdate(State.FAILED, raw_state="unknown", error=self.error(
                NotFound, f"the remote ComfyUI no longer knows prompt {pid} (not queued, no history)",
                hint="the server restarted, its history was cleared, or someone deleted the prompt; "
                     "queue the workflow again"))
        return None

    async def _from_history(self, ref: RemoteRef, entry: dict) -> TaskUpdate:
        status = entry.get("status") if isinstance(entry.get("status"), dict) else {}
        for m in status.get("messages") or []:
            if isinstance(m, list) and len(m) == 2 and isinstance(m[1], dict):
                if m[0] == "execution_error":
                    return TaskUpdate(State.FAILED, error=self._failure(m[1]), raw_state="error")
                if m[0] == "execution_interrupted":
                    return TaskUpdate(State.CANCELLED, raw_state="interrupted",
                                      message="interrupted on the remote server")
        if status.get("status_str") == "error":
            return TaskUpdate(State.FAILED, raw_state="error", error=self.error(
                RemoteFailure, "the remote prompt ended with an error", hint="see the remote ComfyUI's log"))
        outputs = self._outputs(await self._base(), entry)
        return TaskUpdate(State.SUCCEEDED, progress=1.0, outputs=outputs, raw_state="success")

    async def watch(self, ref: RemoteRef) -> AsyncIterator[TaskUpdate]:
        pid = ref.remote_id
        client_id = str(ref.data.get("client_id") or self.client_id)
        channel = self._channel(client_id)
        sub = channel.subscribe(pid)
        tr = _Tracker(self, pid, self._classes.get(pid))
        loop = asyncio.get_running_loop()
        interval = self.poll_interval()
        next_poll = loop.time()
        failures = 0
        try:
            while True:
                if loop.time() >= next_poll or tr.need_poll:
                    tr.need_poll = False
                    try:
                        final = await self._poll(ref, tr)
                        failures = 0
                    except (TransientError, ProtocolError):
                        # the poll is the safety net: while the WebSocket still talks, one bad
                        # answer is not fatal; several in a row go to the engine (it re-watches)
                        failures += 1
                        if failures >= 3 or not channel.connected.is_set():
                            raise
                        final = None
                    next_poll = loop.time() + interval
                    if final is not None:
                        yield final
                        return
                    upd = tr.update()
                    if upd is not None:
                        yield upd
                for msg in await sub.get(next_poll - loop.time()):
                    tr.apply(msg)
                    if tr.terminal is not None:
                        yield tr.terminal
                        return
                upd = tr.update()
                if upd is not None:
                    yield upd
        finally:
            channel.unsubscribe(pid)

    # ------------------------------------------------------------------ outputs / cancel / check
    def _outputs(self, base: str, entry: dict) -> list[Output]:
        outs = entry.get("outputs") if isinstance(entry.get("outputs"), dict) else {}
        files: list = []
        texts: list[Output] = []
        for nid in sorted(outs, key=lambda n: _node_sort_key(str(n))):
            o = outs[nid] if isinstance(outs[nid], dict) else {}
            for key, items in o.items():
                if not isinstance(items, list):
                    continue
                if key == "text":
                    texts.extend(Output(kind="text", text=str(t), node=str(nid)) for t in items
                                 if isinstance(t, str))
                    continue
                for it in items:
                    if isinstance(it, dict) and it.get("filename"):
                        files.append((str(nid), key, it))
        chosen = [f for f in files if f[2].get("type", "output") == "output"] or \
            [f for f in files if f[2].get("type") == "temp"]
        result: list[Output] = []
        seen: set = set()
        for nid, key, it in chosen:
            query = urlencode({"filename": it["filename"], "subfolder": it.get("subfolder") or "",
                               "type": it.get("type") or "output"})
            url = f"{base}/view?{query}"
            if url in seen:
                continue
            seen.add(url)
            mime = mimetypes.guess_type(it["filename"])[0]
            kind = FILE_KEYS.get(key, "file")
            if mime and kind in ("image", "file"):
                kind = mime.split("/")[0] if mime.split("/")[0] in ("image", "video", "audio") else kind
            result.append(Output(kind=kind, url=url, filename=str(it["filename"]), node=nid, mime=mime))
        return result + texts

    async def outputs(self, ref: RemoteRef) -> list[Output]:
        entry = await self._history(ref.remote_id)
        if entry is None:
            raise self.error(NotFound, f"no history for prompt {ref.remote_id} on the remote ComfyUI",
                             hint="it may still be running, or the server restarted and lost it")
        return self._outputs(await self._base(), entry)

    async def cancel(self, ref: RemoteRef) -> None:
        pid = ref.remote_id
        self._cancel_requested.add(pid)
        ref.data["cancel_requested"] = True
        await self._post("/queue", {"delete": [pid]}, "POST /queue")
        running, _ = await self._queue()
        if any(str(x[1]) == pid for x in running):
            await self._post("/interrupt", {"prompt_id": pid}, "POST /interrupt")

    async def check(self) -> str:
        base = await self._base()
        data = await self._get("/system_stats", "GET /system_stats")
        system = data.get("system") if isinstance(data, dict) and isinstance(data.get("system"), dict) else {}
        devices = data.get("devices") if isinstance(data, dict) and isinstance(data.get("devices"), list) else []
        names = ", ".join(str(d.get("name")) for d in devices if isinstance(d, dict)) or "no device info"
        return f"ComfyUI {system.get('comfyui_version') or '(version unknown)'} at {base} ({names})"

    async def close(self) -> None:
        for ch in list(self._channels.values()):
            await ch.close()
        self._channels.clear()


PROVIDER = ComfyUIProvider
