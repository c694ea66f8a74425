"""Any plain ComfyUI server, through its native API (``/prompt``, ``/ws``, ``/view``, ``/upload/image``,
``/object_info``, ``/system_stats``; the jobs API ``/api/jobs`` where the server has it, else
``/queue``, ``/history`` and ``/interrupt``).

Profile: ``url`` (``COMFYUI_REMOTE_URL``), optional secret ``token`` (``COMFYUI_REMOTE_TOKEN``) sent
as ``Authorization: Bearer`` on every request, HTTP and WebSocket, and for ``/view`` downloads
(ComfyUI itself has no auth; the token is for an authenticating reverse proxy).

- The submission key is a uuid4 that becomes the ``prompt_id`` (ComfyUI lets the client choose it),
  so an ambiguous create is looked up in ``/queue`` and ``/history`` (``find``).
- ``validate`` checks node types and targets against ``/object_info`` (``comfy_graph_check``).
- ``upload`` sends PNGs under their content-addressed name (``<sha256>.png``) to ``/upload/image``
  (type input, overwrite), skipped when ``GET /view`` already has those bytes.
- Newer servers (v0.6+) are found by ONE probe of ``GET /api/jobs`` per server (``comfy_jobs``;
  profile setting ``jobs_api = "off"`` keeps the old routes).
- ``poll``/``push``: one shared socket and queue snapshot per server (``comfy_native.ComfyServer``);
  the end is read from ``GET /api/jobs/{id}`` (its ``execution_error``) or ``/history/{id}``.
- ``cancel``: ``POST /api/jobs/{id}/cancel`` (v0.26+: deletes if pending, interrupts if it runs);
  elsewhere ``POST /queue {"delete": [id]}``, then ``POST /interrupt {"prompt_id": id}`` if it runs.
  A deleted prompt leaves no record, which the engine reads as "cancelled".

``STATES`` and ``CODES`` below are the service → State / error tables (docs link here).
"""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, AsyncIterator, Optional
from urllib.parse import quote, urlencode

import aiohttp

from ..engine.redaction import strip_query
from .base import (CancelResult, Capabilities, ConfigError, NotFound, Output, Preflight, ProtocolError, Provider,
                   RemoteError, RemoteFailure, RemoteRef, State, SubmitSpec, TaskGone, TaskUpdate, apply_overrides,
                   node_sort_key, parse_api_graph)
from . import comfy_jobs
from .kinds import kind_of, mime_of
from .local_file import SMALL, LocalFile, sendable
from .comfy_graph_check import check_graph, rejected
from .comfy_native import ComfyServer

# queue / jobs / history entry / WebSocket → State (what the engine sees through poll)
STATES = {
    "in /queue queue_pending, or /api/jobs status pending": "QUEUED (position = prompts ahead + 1)",
    "in /queue queue_running, /api/jobs in_progress, execution_start, executing, progress":
        "RUNNING (node, step/max, progress)",
    "history status_str success, or /api/jobs/{id} completed": "SUCCEEDED, outputs from the record",
    "history message execution_error, or /api/jobs/{id} execution_error": "FAILED: RemoteFailure naming node "
                                                                           "id and class",
    "history message execution_interrupted, or /api/jobs/{id} cancelled": "CANCELLED",
    "history status_str error without a message, or failed without execution_error": "FAILED: RemoteFailure",
    "neither queued nor in history, or /api/jobs/{id} 404 Job not found":
        "TaskGone (the engine: CANCELLED if we cancelled, else FAILED once confirmed)",
}
# answers to POST /prompt → error class (see comfy_graph_check.rejected); other statuses: engine.rules.status_error
CODES = {
    "400 invalid_prompt": "RejectedInput, field workflow (unknown class_type)",
    "400 prompt_no_outputs": "RejectedInput, field workflow",
    "400 prompt_outputs_failed_validation + node_errors": "RejectedInput naming remote node, class and NODE.input",
    "400 no_prompt": "RejectedInput",
    "401/403 (a proxy refused the token)": "AuthError naming where the token comes from",
}
# ui output key → kind when the file name does not tell (``animated`` is a list of flags, not files:
# an animated WebP/PNG is still an image, whose frames RemoteFetchImage returns as one batch)
FILE_KEYS = {"images": "image", "gifs": "video", "videos": "video", "video": "video", "audio": "audio",
             "3d": "file", "files": "file"}
OBJECT_INFO_TTL_S = 60.0


def output_kind(key: str, filename: str) -> str:
    """A file's kind from its name (``.mp4`` under ``images`` is SaveVideo's video), else from the ui key."""
    by_name = kind_of(filename)
    return by_name if by_name != "file" else FILE_KEYS.get(key, "file")


class ComfyUIProvider(Provider):
    id = "comfyui"
    label = "ComfyUI"
    capabilities = Capabilities(cancel=True, queue_position=True, progress="push", uploads=True, cost=False,
                                idempotent_submit=False, client_chosen_id=True, findable=True, addressing="node",
                                node_types="listed", input_kinds=("image", "video", "audio", "file"))  # /upload/image takes any file
    max_rps = None  # a ComfyUI server has no request limit; one shared look serves all tasks anyway
    streams_uploads = True

    def __init__(self, profile: Any, http: Any):
        super().__init__(profile, http)
        self.client_id = uuid.uuid4().hex
        self._servers: dict[str, ComfyServer] = {}
        self._object_info: dict[str, tuple[float, Optional[dict]]] = {}
        self.known = comfy_jobs.Known()  # which routes each server has (probed once)

    # ------------------------------------------------------------------ plumbing
    async def base(self) -> str:
        url = getattr(self.profile, "url", None)
        if not url:
            where = (self.profile.missing() if hasattr(self.profile, "missing") else None) or "no endpoint URL"
            raise self.error(ConfigError, f"profile '{self.name}' has {where}", field="url",
                             hint="set COMFYUI_REMOTE_URL (built-in profile) or 'url' in profiles.toml")
        return str(url).rstrip("/")

    def auth_headers(self) -> dict:
        secret = getattr(self.profile, "secret", None)
        token = secret("token") if callable(secret) else None
        return {"Authorization": f"Bearer {token}"} if token else {}

    def download_headers(self, output: Output) -> dict:
        return self.auth_headers()

    def _auth_hint(self) -> str:
        where = getattr(self.profile, "where", None)
        place = where("token") if callable(where) else "the profile's token"
        if self.auth_headers():
            return f"the server refused the token: check {place}"
        return f"the server (or its proxy) needs a token: set {place}"

    async def get(self, path: str, what: str, **kw: Any) -> Any:
        resp = await self.http.request("GET", await self.base() + path, headers=self.auth_headers(), **kw)
        if not resp.ok:
            raise self.http_error(resp, what, auth_hint=self._auth_hint())
        return resp.json()

    async def _post(self, path: str, body: Any, what: str) -> Any:
        resp = await self.http.request("POST", await self.base() + path, json=body, headers=self.auth_headers())
        if not resp.ok:
            raise self.http_error(resp, what, auth_hint=self._auth_hint())
        return resp

    def server(self, client_id: Optional[str] = None) -> ComfyServer:
        cid = client_id or self.client_id
        srv = self._servers.get(cid)
        if srv is None:
            srv = self._servers[cid] = ComfyServer(self, cid)
        return srv

    def _server_of(self, ref: RemoteRef) -> ComfyServer:
        return self.server(str(ref.data.get("client_id") or self.client_id))

    def console_url(self, base: str) -> Optional[str]:
        return strip_query(base)  # never a user:password@ of the profile's URL

    async def _workflow_text(self, spec: SubmitSpec) -> str:
        return spec.workflow

    async def _graph(self, spec: SubmitSpec) -> dict:
        try:
            graph = parse_api_graph(await self._workflow_text(spec), provider=self.id, profile=self.name)
            return apply_overrides(graph, spec, provider=self.id, profile=self.name, check_fields=False)
        except RemoteError as e:
            raise e.with_context(provider=self.id, profile=self.name)

    # ------------------------------------------------------------------ pre-flight, upload
    async def _info(self, cls: str) -> Optional[dict]:
        hit = self._object_info.get(cls)
        if hit is None or time.monotonic() - hit[0] > OBJECT_INFO_TTL_S:
            data = await self.get(f"/object_info/{quote(cls, safe='')}", "GET /object_info")
            info = data.get(cls) if isinstance(data, dict) else None
            hit = self._object_info[cls] = (time.monotonic(), info if isinstance(info, dict) else None)
        return hit[1]

    async def validate(self, spec: SubmitSpec) -> Preflight:
        graph = await self._graph(spec)
        await check_graph(self, graph, spec.targets("node"), self._info)
        return Preflight()

    async def upload(self, data: bytes, mime: str, name: str) -> Any:
        base = await self.base()
        if isinstance(data, LocalFile) and data.size <= SMALL:
            data = await asyncio.to_thread(data.read)
        if not isinstance(data, LocalFile):  # (a large file on disk is sent without looking first)
            resp = await self.http.request("GET", base + "/view", params={"filename": name, "type": "input",
                                                                          "subfolder": ""},
                                           headers=self.auth_headers(), max_body=len(data) + 65536)
            if resp.status in (401, 403):
                raise self.http_error(resp, "GET /view", auth_hint=self._auth_hint())
            if resp.status == 200 and resp.body == data:
                return name

        def form() -> aiohttp.FormData:
            fd = aiohttp.FormData()
            fd.add_field("image", sendable(data), filename=name, content_type=mime or "image/png")
            fd.add_field("type", "input")
            fd.add_field("overwrite", "true")
            return fd

        # same name, same bytes: sending it again is harmless, so the transport may retry it
        resp = await self.http.request("POST", base + "/upload/image", data=form, headers=self.auth_headers())
        if not resp.ok:
            raise self.http_error(resp, "POST /upload/image", auth_hint=self._auth_hint())
        answer = resp.json()
        if not isinstance(answer, dict) or not answer.get("name"):
            raise self.error(ProtocolError, "POST /upload/image answered without a file name")
        sub = answer.get("subfolder") or ""
        return f"{sub}/{answer['name']}" if sub else str(answer["name"])

    # ------------------------------------------------------------------ submit, find
    def new_submission_key(self) -> str:
        return str(uuid.uuid4())

    async def submit(self, spec: SubmitSpec, key: str) -> RemoteRef:
        base = await self.base()
        graph = await self._graph(spec)
        srv = self.server()
        srv.follow(key, {str(k): str(v.get("class_type")) for k, v in graph.items()})  # frames are never replayed
        await srv.wait_connected(3.0)
        body = {"prompt": graph, "client_id": self.client_id, "prompt_id": key}
        resp = await self.http.request("POST", base + "/prompt", json=body, headers=self.auth_headers(), creates=True)
        if resp.status == 400:
            srv.forget(key)
            raise rejected(self, resp.json())
        if not resp.ok:
            raise self.http_error(resp, "POST /prompt", auth_hint=self._auth_hint())
        answer = resp.json()
        if not isinstance(answer, dict) or not answer.get("prompt_id"):
            raise self.error(ProtocolError, "POST /prompt answered without a prompt_id")
        pid = str(answer["prompt_id"])
        if pid != key:  # a server that ignores client-chosen ids: follow its own
            srv.forget(key)
            srv.follow(pid, {str(k): str(v.get("class_type")) for k, v in graph.items()})
        srv.follow(pid).since = time.monotonic()  # a queue snapshot from before this answer cannot miss it
        return RemoteRef(remote_id=pid, data={"client_id": self.client_id, "number": answer.get("number")},
                         console_url=self.console_url(base))

    async def find(self, key: str, spec: SubmitSpec) -> Optional[RemoteRef]:
        srv = self.server()
        if await comfy_jobs.has_jobs(self):
            known = await comfy_jobs.job(self, key) is not None
        else:
            running, pending = await srv.queue(max_age=0)
            known = key in running or key in pending or await srv.history(key) is not None
        if known:
            return RemoteRef(remote_id=key, data={"client_id": self.client_id},
                             console_url=self.console_url(await self.base()))
        return None

    # ------------------------------------------------------------------ poll, push
    async def poll(self, ref: RemoteRef) -> TaskUpdate:
        srv = self._server_of(ref)
        what, value = await srv.look(ref.remote_id, self.poll_interval())
        if what in ("history", "job"):
            srv.forget(ref.remote_id)
            return await (self._from_history(ref, value) if what == "history" else self._from_job(ref, value))
        if what == "gone":
            raise self.error(TaskGone, f"the remote ComfyUI no longer knows prompt {ref.remote_id} (not queued, "
                                       f"no history)", hint="the server restarted, its history was cleared, or "
                                                            "someone deleted the prompt; queue the workflow again")
        return value

    def push(self, ref: RemoteRef) -> Optional[AsyncIterator[TaskUpdate]]:
        return self._server_of(ref).updates(ref.remote_id)

    def _failure(self, d: dict) -> RemoteFailure:
        node, cls = str(d.get("node_id") or ""), str(d.get("node_type") or "")
        etype = str(d.get("exception_type") or "error")
        msg = str(d.get("exception_message") or "").strip()[:500]
        hint = "fix the inputs or the remote workflow; the remote ComfyUI's log has the traceback"
        if "OutOfMemory" in etype or "out of memory" in msg.lower():
            hint = "the remote GPU ran out of memory: use smaller sizes or batch, or a bigger server"
        return self.error(RemoteFailure, f"{cls} #{node} failed: {etype}: {msg}", remote_node=node,
                          node_class=cls, code=etype, hint=hint)

    async def _from_history(self, ref: RemoteRef, entry: dict) -> TaskUpdate:
        status = entry.get("status") if isinstance(entry.get("status"), dict) else {}
        for m in status.get("messages") or []:
            if isinstance(m, list) and len(m) == 2 and isinstance(m[1], dict):
                if m[0] == "execution_error":
                    return TaskUpdate(State.FAILED, error=self._failure(m[1]), raw_state="error")
                if m[0] == "execution_interrupted":
                    return TaskUpdate(State.CANCELLED, raw_state="interrupted", message="interrupted on the remote server")
        if status.get("status_str") == "error":
            return TaskUpdate(State.FAILED, raw_state="error", error=self.error(
                RemoteFailure, "the remote prompt ended with an error", hint="see the remote ComfyUI's log"))
        return TaskUpdate(State.SUCCEEDED, progress=1.0, outputs=self._outputs(await self.base(), entry),
                          raw_state="success")

    async def _from_job(self, ref: RemoteRef, job: dict) -> TaskUpdate:
        """An ended job of ``GET /api/jobs/{id}``: its status, ``execution_error`` (the error message's
        data, as in history), else its ``execution_status`` read like a history entry."""
        status = str(job.get("status"))
        if status == "cancelled":
            return TaskUpdate(State.CANCELLED, raw_state=status, message="interrupted on the remote server")
        if isinstance(job.get("execution_error"), dict):
            return TaskUpdate(State.FAILED, error=self._failure(job["execution_error"]), raw_state=status)
        info = job.get("execution_status") if isinstance(job.get("execution_status"), dict) else {
            "status_str": "success" if status == "completed" else "error"}
        return await self._from_history(ref, {"status": info, "outputs": job.get("outputs")})

    # ------------------------------------------------------------------ outputs, cancel, check
    def _outputs(self, base: str, entry: dict) -> list[Output]:
        outs = entry.get("outputs") if isinstance(entry.get("outputs"), dict) else {}
        files: list = []
        texts: list[Output] = []
        for nid in sorted(outs, key=lambda n: node_sort_key(str(n))):
            o = outs[nid] if isinstance(outs[nid], dict) else {}
            for key, items in o.items():
                if not isinstance(items, list):
                    continue
                if key == "text":
                    texts.extend(Output(kind="text", text=str(t), node=str(nid)) for t in items if isinstance(t, str))
                    continue
                files.extend((str(nid), key, it) for it in items
                             if isinstance(it, dict) and isinstance(it.get("filename"), str) and it["filename"])
        result: list[Output] = []
        seen: set = set()
        for nid, key, it in files:  # every file; a ``temp`` one is a preview, fetched only when nothing else is
            folder = it.get("type") or "output"
            query = urlencode({"filename": it["filename"], "subfolder": it.get("subfolder") or "", "type": folder})
            url = f"{base}/view?{query}"
            if url in seen:
                continue
            seen.add(url)
            result.append(Output(kind=output_kind(key, str(it["filename"])), url=url, filename=str(it["filename"]),
                                 node=nid, mime=mime_of(str(it["filename"])) if "." in str(it["filename"]) else None,
                                 preview=True if folder == "temp" else None))
        return result + texts

    async def outputs(self, ref: RemoteRef) -> list[Output]:
        if await comfy_jobs.has_jobs(self):
            entry = await comfy_jobs.job(self, ref.remote_id)
            entry = None if entry is None or entry.get("status") in ("pending", "in_progress") else entry
        else:
            entry = await self._server_of(ref).history(ref.remote_id)
        if entry is None:
            raise self.error(NotFound, f"no record of prompt {ref.remote_id} on the remote ComfyUI",
                             hint="it may still be running, or the server restarted and lost it")
        return self._outputs(await self.base(), entry)

    async def cancel(self, ref: RemoteRef) -> CancelResult:
        pid = ref.remote_id
        if await comfy_jobs.has_jobs(self):
            answer = await comfy_jobs.cancel(self, pid)
            if answer is not None:
                return answer
        srv = self._server_of(ref)
        await self._post("/queue", {"delete": [pid]}, "POST /queue")
        running, _ = await srv.queue(max_age=0)
        if pid in running:
            await self._post("/interrupt", {"prompt_id": pid}, "POST /interrupt")
            return CancelResult.REQUESTED
        if await srv.history(pid) is not None:
            return CancelResult.TOO_LATE
        return CancelResult.REQUESTED

    async def check(self) -> str:
        base = await self.base()
        data = await self.get("/system_stats", "GET /system_stats")
        system = data.get("system") if isinstance(data, dict) and isinstance(data.get("system"), dict) else {}
        devices = data.get("devices") if isinstance(data, dict) and isinstance(data.get("devices"), list) else []
        names = ", ".join(str(d.get("name")) for d in devices if isinstance(d, dict)) or "no device info"
        return f"ComfyUI {system.get('comfyui_version') or '(version unknown)'} at {base} ({names})"

    async def close(self) -> None:
        for srv in list(self._servers.values()):
            await srv.close()
        self._servers.clear()


PROVIDER = ComfyUIProvider
