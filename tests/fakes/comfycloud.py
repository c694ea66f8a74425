"""The fake of the Comfy API v2 as Comfy Cloud and serverless deployments speak it — everything only
those do, built from ``shared/providers/comfy-api-v2.md`` (§n below): Bearer auth (§1), 402
``insufficient_credits`` and 429 ``queue_full``/``deployment_not_ready`` with Retry-After (§10),
302 redirects of ``/assets/{id}/content`` to short-lived self-authorizing signed URLs on another
origin (a GCS-V4-style object store, §5), job expiry (§4), the job list (deployment labels; Cloud
501, §3.6), host-relative mount-prefixed links (deployments, §2), SSE with keepalive comments and a
stream cap (§7), single-use Idempotency-Keys (§9) and blake3 assets (§6).

The jobs run on an in-process sandbox ComfyUI (``sandbox/server.py``, the native API's fake): its
native messages become v2 events the way the real backends translate them, so the graphs of the
``comfyui`` contract case run unchanged (SandboxSolid, SandboxSlowPass, LoadImage, SaveImage…).

Surfaces: ``surface="deployment"`` (default; links ``/deployment/{dep}/api/v2/…``, ``GET /jobs``
with ``metadata[k]=v`` filters) or ``"cloud"`` (absolute links, metadata refused, list 501).
Route names (faults, ``seen``): ``jobs_create``, ``job``, ``jobs_list``, ``job_workflow``,
``events`` (reads the toolkit fault ``ws_drop``: the stream drops after ``after`` frames),
``cancel``, ``assets_upload``, ``assets_from_hash``, ``assets_by_hash``, ``asset``,
``asset_delete``, ``content``; the object store's: ``object``. Knobs: ``credits`` (None =
unlimited), ``queue_limit``, ``refuse_next(code)``, ``max_streams``, ``keepalive_s``,
``signed_ttl_s``, ``stale_links()`` (each result's next link is already expired), ``expire(id)``,
``worker.fail_next(...)``.
"""
from __future__ import annotations

import asyncio
import base64
import email.parser
import email.policy
import hashlib
import hmac
import json
import mimetypes
import re
import struct
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Optional
from urllib.parse import urlencode

import blake3
from aiohttp import web

from .toolkit import Clock, FakeServer, json_response

try:
    from ...sandbox.server import SandboxServer
except ImportError:  # run as ``python -m tests.fakes`` from the repository root
    from sandbox.server import SandboxServer  # type: ignore[no-redef]

API = "/api/v2"
TERMINAL = ("succeeded", "failed", "canceled", "expired")
LABEL_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
BAD_LABEL_CHARS = re.compile("[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]")
REFUSALS = {  # refuse_next(code) → (status, message, Retry-After)
    "queue_full": (429, "The queue is full; retry later.", 3),
    "deployment_not_ready": (429, "The deployment is starting.", 5),
    "rate_limited": (429, "Rate limit exceeded.", 2),
    "insufficient_credits": (402, "Insufficient credits.", None),
    "deployment_stopped": (422, "The deployment is stopped.", None),
}


def error(status: int, code: str, message: str, details: Any = None, retry_after: Optional[int] = None) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return json_response({"error": {"code": code, "message": message, "details": details}}, status, headers)


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def b3(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


@dataclass
class Job:
    id: str
    created: float
    metadata: Any
    workflow: dict
    started: Optional[float] = None
    ended: Optional[float] = None
    gone: bool = False  # expired: retention passed or the backend lost it
    canceled: bool = False  # dequeued before it ran
    progress: Optional[dict] = None
    node: Optional[str] = None
    outputs: list = field(default_factory=list)  # asset ids, in history order
    listeners: list = field(default_factory=list)  # SSE queues


@dataclass
class Asset:
    id: str
    hash: str
    file_path: str
    content_type: str
    created: float
    job_id: Optional[str] = None
    node_id: Optional[str] = None


class Worker(SandboxServer):
    """The backend ComfyUI; its per-client messages go to the v2 layer (client id = job id)."""

    def __init__(self, fake: "FakeComfyCloud", clock: Clock):
        super().__init__(clock=clock, preview_frames=True, cache=False)
        self.fake = fake

    async def run(self) -> None:  # the execution loop only: the v2 layer is its one client
        self._wake, self.idle = asyncio.Event(), asyncio.Event()
        self.idle.set()
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def send(self, event: str, data: Any, sid: Optional[str] = None) -> None:
        if sid is not None:
            self.fake.on_native(sid, event, data)

    async def send_bytes(self, data: bytes, sid: Optional[str]) -> None:
        if sid is not None and len(data) > 8 and struct.unpack(">I", data[:4])[0] == 1:
            kind = struct.unpack(">I", data[4:8])[0]
            self.fake.on_preview(sid, "image/png" if kind == 2 else "image/jpeg", data[8:])


class ObjectStore(FakeServer):
    """GCS-style object store: ``GET /{bucket}/{object}?X-Goog-Date&X-Goog-Expires&X-Goog-Signature``;
    needs no Authorization (the signature is the credential), answers 403 XML when it has expired."""

    name = "comfycloud-storage"

    def __init__(self, fake: "FakeComfyCloud", clock: Clock):
        self.fake = fake
        super().__init__(clock=clock)

    def setup_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/comfy-outputs/{blob}", self._object, name="object")

    async def _object(self, request: web.Request) -> web.Response:
        q, blob = request.query, request.match_info["blob"]
        want = self.fake.signature(blob, q.get("X-Goog-Date", ""), q.get("X-Goog-Expires", ""))
        if not hmac.compare_digest(want, q.get("X-Goog-Signature", "")) or blob not in self.fake.blobs:
            return _xml(403, "SignatureDoesNotMatch", "Access denied.")
        issued = datetime.strptime(q["X-Goog-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
        if time.time() > issued + int(q["X-Goog-Expires"]):
            return _xml(403, "ExpiredToken", "Invalid argument.")  # the status is INFERRED (§14.6)
        data = self.fake.blobs[blob]
        ctype = self.fake.blob_types.get(blob, "application/octet-stream")
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("Range", ""))
        if m:
            start = int(m.group(1))
            end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
            if start >= len(data):
                return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
            return web.Response(status=206, body=data[start:end + 1], content_type=ctype,
                                headers={"Content-Range": f"bytes {start}-{end}/{len(data)}", "Accept-Ranges": "bytes"})
        return web.Response(body=data, content_type=ctype, headers={"Accept-Ranges": "bytes"})


def _xml(status: int, code: str, message: str) -> web.Response:
    return web.Response(status=status, content_type="application/xml",
                        text=f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}"
                             f"</Message></Error>")


class FakeComfyCloud(FakeServer):
    name = "comfycloud"

    def __init__(self, *, clock: Optional[Clock] = None, port: int = 0, api_key: str = "comfyui-fake-key",
                 surface: str = "deployment", deployment: str = "dep-1234abcd-56ef-7890-abcd-ef1234567890",
                 credits: Optional[int] = None, queue_limit: Optional[int] = None, max_streams: int = 64,
                 keepalive_s: float = 15.0, signed_ttl_s: int = 900, retention_s: float = 7 * 86400):
        self.api_key, self.surface, self.deployment = api_key, surface, deployment
        self.credits, self.queue_limit, self.max_streams = credits, queue_limit, max_streams
        self.keepalive_s, self.signed_ttl_s, self.retention_s = keepalive_s, signed_ttl_s, retention_s
        self.jobs: dict[str, Job] = {}
        self.assets: dict[str, Asset] = {}
        self.blobs: dict[str, bytes] = {}  # blob name (hex hash) → bytes (the object store's content)
        self.blob_types: dict[str, str] = {}
        self.keys: set[str] = set()  # claimed Idempotency-Keys
        self.cancels: list[str] = []  # job ids a cancel was asked for
        self.created: list[str] = []  # every job created (each would be paid)
        self._refuse: list[str] = []
        self._stale = False
        self._staled: set[str] = set()
        self._secret = uuid.uuid4().bytes
        self.open_streams = 0
        clock = clock or Clock()
        self.worker = Worker(self, clock)
        self.store = ObjectStore(self, clock)
        super().__init__(clock=clock, port=port)

    def credentials(self) -> dict:
        return {"COMFY_BASE_URL": self.url, "COMFY_API_KEY": self.api_key}

    async def start(self) -> str:
        await self.store.start()
        await self.worker.run()
        return await super().start()

    async def stop(self) -> None:
        await super().stop()
        await self.worker.stop()
        await self.store.stop()

    # ------------------------------------------------------------------ routes
    def setup_routes(self, router: web.UrlDispatcher) -> None:
        table = [("POST", "/jobs", self._create, "jobs_create"), ("GET", "/jobs", self._list, "jobs_list"),
                 ("GET", "/jobs/{id}", self._get, "job"), ("GET", "/jobs/{id}/workflow", self._workflow, "job_workflow"),
                 ("GET", "/jobs/{id}/events", self._events, "events"), ("POST", "/jobs/{id}/cancel", self._cancel, "cancel"),
                 ("POST", "/assets", self._upload, "assets_upload"),
                 ("POST", "/assets/from-hash", self._from_hash, "assets_from_hash"),
                 ("HEAD", "/assets/by-hash/{hash}", self._by_hash, "assets_by_hash"),
                 ("GET", "/assets/{id}", self._asset, "asset"), ("DELETE", "/assets/{id}", self._delete, "asset_delete"),
                 ("GET", "/assets/{id}/content", self._content, "content")]
        for method, path, handler, name in table:
            router.add_route(method, API + path, self._auth(handler), name=name)
            router.add_route(method, f"/deployment/{{dep}}{API}{path}", self._auth(handler), name="mount:" + name)

    def route_name(self, request: web.Request) -> str:
        return super().route_name(request).rpartition(":")[2]

    def _auth(self, handler: Any) -> Any:
        async def guarded(request: web.Request) -> web.StreamResponse:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                return error(401, "unauthorized", "Missing or malformed Authorization header.")
            if not hmac.compare_digest(token.encode(), self.api_key.encode()):
                return error(401, "unauthorized", "Invalid token.")
            return await handler(request)
        return guarded

    def link(self, path: str) -> str:
        return f"/deployment/{self.deployment}{API}{path}" if self.surface == "deployment" else f"{self.url}{API}{path}"

    # ------------------------------------------------------------------ knobs
    def refuse_next(self, code: str) -> None:
        self._refuse.append(code)

    def stale_links(self) -> None:
        """Each result's next link (in a job answer or a content redirect) has already expired."""
        self._stale = True

    def expire(self, job_id: str) -> None:
        self.jobs[job_id].gone = True

    # ------------------------------------------------------------------ jobs
    def status(self, job: Job) -> str:
        if job.gone or time.time() > job.created + self.retention_s:
            return "expired"
        if job.canceled:
            return "canceled"
        entry = self.worker.history.get(job.id)
        if entry is not None:
            msgs = [m[0] for m in entry["status"]["messages"]]
            if "execution_interrupted" in msgs:
                return "canceled"
            return "succeeded" if entry["status"]["status_str"] == "success" else "failed"
        if job.id in self.worker.running_ids():
            return "canceling" if job.id in self.cancels else "running"
        return "queued"

    def job_json(self, job: Job) -> dict:
        status = self.status(job)
        pending = self.worker.pending_ids()
        entry = self.worker.history.get(job.id)
        err = None
        if status == "failed":
            data = next((m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"), {}) if entry else {}
            err = {"code": "node_execution_error", "message": data.get("exception_message", "execution failed"),
                   "node_id": data.get("node_id"), "class_type": data.get("node_type"), "traceback": None}
        done = job.ended if status in TERMINAL else None
        return {"id": job.id, "status": status, "created_at": rfc3339(job.created),
                "started_at": rfc3339(job.started) if job.started else None,
                "completed_at": rfc3339(done) if done else None, "expires_at": rfc3339(job.created + self.retention_s),
                "queue_position": pending.index(job.id) + 1 if job.id in pending else None,
                "progress": job.progress if status in ("running", "canceling") else None,
                "outputs": [self.output_json(self.assets[a]) for a in job.outputs] if status != "expired" else [],
                "error": err, "metrics": {"queue_ms": _ms(job.started, job.created), "execution_ms": _ms(done, job.started)},
                "urls": {"self": self.link(f"/jobs/{job.id}"), "events": self.link(f"/jobs/{job.id}/events"),
                         "cancel": self.link(f"/jobs/{job.id}/cancel")}}

    def _job(self, request: web.Request) -> Optional[Job]:
        return self.jobs.get(request.match_info["id"])

    async def _create(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            return error(400, "invalid_request", "Body must be JSON.")
        if body.get("webhook_url") is not None or body.get("inputs") is not None:
            return error(422, "invalid_workflow", "'webhook_url' and 'inputs' are reserved and not accepted.")
        workflow = body.get("workflow")
        if not isinstance(workflow, dict):
            return error(422, "invalid_workflow", "Missing 'workflow' (API-format graph).")
        if isinstance(workflow.get("nodes"), list) and "links" in workflow:
            return error(422, "workflow_format_ui", "This is a UI-export graph. Export the workflow in API format instead.")
        meta = body.get("metadata")
        if meta is not None:
            if self.surface == "cloud":
                return error(422, "metadata_not_supported", "Job metadata is not supported here.")
            bad = _bad_labels(meta)
            if bad:
                return error(422, "metadata_invalid", bad)
        extra = body.get("extra_data")
        if extra is not None and (not isinstance(extra, dict) or not extra or set(extra) - {"api_key_comfy_org"}):
            return error(400, "invalid_request", "'extra_data' accepts only the 'api_key_comfy_org' field.")
        missing: list[str] = []
        resolved = self._resolve(workflow, missing)
        if missing:
            return error(422, "missing_asset", f"Unresolvable core/ASSET reference(s): {', '.join(missing)}",
                         {"missing_ids": missing})
        key = request.headers.get("Idempotency-Key")
        if key is not None:
            if not 1 <= len(key) <= 255:
                return error(400, "invalid_request", "Idempotency-Key must be 1-255 characters.")
            if key in self.keys:
                return error(422, "idempotency_key_reuse", "This Idempotency-Key has already been used. Keys are "
                             "single-use; poll or list your jobs instead of resubmitting with the same key.")
            self.keys.add(key)
        refusal = self._refusal()
        if refusal is not None:
            self.keys.discard(key or "")  # definitely nothing created: the key is released
            return refusal
        job_id = str(uuid.uuid4())
        resp = await self.worker.enqueue({"prompt": resolved, "prompt_id": job_id, "client_id": job_id})
        if resp.status != 200:
            self.keys.discard(key or "")
            native = json.loads(resp.body)  # type: ignore[arg-type]
            return error(422, "invalid_workflow", (native.get("error") or {}).get("message", "Workflow rejected."),
                         {"node_errors": native.get("node_errors") or {}})
        if self.credits is not None:
            self.credits -= 1
        job = self.jobs[job_id] = Job(job_id, time.time(), meta, resolved)
        self.created.append(job_id)
        return json_response(self.job_json(job), 201)

    def _refusal(self) -> Optional[web.Response]:
        code = self._refuse.pop(0) if self._refuse else None
        if code is None and self.credits is not None and self.credits <= 0:
            code = "insufficient_credits"
        if code is None and self.queue_limit is not None and len(self.worker.pending_ids()) >= self.queue_limit:
            code = "queue_full"
        if code is None:
            return None
        status, message, retry = REFUSALS[code]
        return error(status, code, message, retry_after=retry)

    def _resolve(self, node: Any, missing: list) -> Any:
        if isinstance(node, dict) and node.get("__type") == "core/ASSET":
            info = node.get("info")
            asset = self.assets.get(info.get("id")) if isinstance(info, dict) and isinstance(info.get("id"), str) else None
            if asset is None:
                missing.append(str(info.get("id", "<no id>")) if isinstance(info, dict)
                               else "<malformed core/ASSET: missing info>")
                return node
            self.worker.files[("input", "", asset.file_path)] = self.blobs[asset.hash[7:]]
            return asset.file_path
        if isinstance(node, dict):
            return {k: self._resolve(v, missing) for k, v in node.items()}
        if isinstance(node, list):
            return [self._resolve(v, missing) for v in node]
        return node

    async def _list(self, request: web.Request) -> web.Response:
        if self.surface == "cloud":
            return error(501, "not_implemented", "Listing jobs is not implemented on Comfy Cloud.")
        want = {k[9:-1]: v for k, v in request.query.items() if k.startswith("metadata[") and k.endswith("]")}
        if len(want) > 3:
            return error(400, "invalid_metadata_filter", "At most 3 metadata filters.")
        limit = int(request.query.get("limit", "20"))
        jobs = sorted(self.jobs.values(), key=lambda j: j.created, reverse=True)
        items = [{"id": j.id, "status": self.status(j), "create_time": rfc3339(j.created),
                  "update_time": rfc3339(j.ended or j.started or j.created), "deployment_id": self.deployment,
                  "metadata": j.metadata or {}} for j in jobs
                 if all(isinstance(j.metadata, dict) and j.metadata.get(k) == v for k, v in want.items())]
        return json_response({"jobs": items[:limit], "next_cursor": ""})

    async def _get(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return error(404, "not_found", f"No job {request.match_info['id']}.")
        return json_response(self.job_json(job))

    async def _workflow(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return error(404, "not_found", f"No job {request.match_info['id']}.")
        return json_response({"workflow": job.workflow, "format": "api"})

    async def _cancel(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return error(404, "not_found", f"No job {request.match_info['id']}.")
        status = self.status(job)
        if status not in TERMINAL:
            self.cancels.append(job.id)
            if job.id in self.worker.running_ids():
                self.worker._interrupt = True  # lands at the next step boundary
            else:
                self.worker._pending = [t for t in self.worker._pending if t[2][1] != job.id]
                job.canceled, job.ended = True, time.time()
                self.emit(job, "status", {"status": "canceled"}, end=True)
        return json_response(self.job_json(job))

    # ------------------------------------------------------------------ native messages → job state, events
    def on_native(self, job_id: str, event: str, data: Any) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            return
        if event == "execution_start":
            job.started = time.time()
            job.progress = {"value": 0.0, "nodes_done": 0, "nodes_total": len(job.workflow), "current_node": None,
                            "current_node_class": None, "step": None, "steps": None, "message": None}
            self.emit(job, "status", {"status": "running"})
        elif event == "progress_state" and job.progress is not None:
            nodes = data.get("nodes") or {}
            done = sum(1 for n in nodes.values() if n.get("state") == "finished")
            cur = next((n for n in nodes.values() if n.get("state") == "running"), None)
            part = cur["value"] / cur["max"] if cur and cur.get("max") else 0.0
            job.progress.update(value=round((done + part) / max(1, len(job.workflow)), 4), nodes_done=done)
            if cur is not None:
                nid = str(cur["node_id"])
                job.progress.update(current_node=nid, current_node_class=job.workflow[nid]["class_type"])
        elif event == "progress" and job.progress is not None:
            job.progress.update(step=data.get("value"), steps=data.get("max"))
            self.emit(job, "progress", dict(job.progress))
        elif event == "executing" and data.get("node") is None:  # after the history entry was written
            job.ended = time.time()
            job.outputs = self._outputs_of(job)
            for a in job.outputs:
                self.emit(job, "output", self.output_json(self.assets[a]))
            self.emit(job, "status", {"status": self.status(job)}, end=True)

    def on_preview(self, job_id: str, mime: str, image: bytes) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job.progress is not None:
            self.emit(job, "preview", {"node_id": job.progress.get("current_node"), "content_type": mime,
                                       "data_base64": base64.b64encode(image).decode()})

    def emit(self, job: Job, name: str, data: Any, end: bool = False) -> None:
        for q in job.listeners:
            q.put_nowait((name, data, end))

    def _outputs_of(self, job: Job) -> list[str]:
        entry = self.worker.history.get(job.id) or {}
        ids = []
        for nid, out in (entry.get("outputs") or {}).items():
            for it in out.get("images") or []:
                data = self.worker.files[(it["type"], it.get("subfolder", ""), it["filename"])]
                asset = self._put(data, it["filename"], mimetypes.guess_type(it["filename"])[0] or "image/png")
                asset.job_id, asset.node_id = job.id, str(nid)
                ids.append(asset.id)
        return ids

    async def _events(self, request: web.Request) -> web.StreamResponse:
        job = self._job(request)
        if job is None:
            return error(404, "not_found", f"No job {request.match_info['id']}.")
        if self.open_streams >= self.max_streams:
            return error(429, "too_many_streams", "Maximum concurrent event streams reached; poll GET /jobs/{id} "
                         "instead.", retry_after=5)
        drop = self.faults.take("events", {"ws_drop"})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        q: asyncio.Queue = asyncio.Queue()
        job.listeners.append(q)
        self.open_streams += 1
        sent = 0
        try:
            status = self.status(job)
            first = {"status": status}
            if status == "queued":
                first["queue_position"] = self.worker.pending_ids().index(job.id) + 1
            backlog: list = [("status", first, False)]
            if status == "running" and job.progress is not None:
                backlog.append(("progress", dict(job.progress), False))
            if status in TERMINAL:
                backlog = backlog + [("output", self.output_json(self.assets[a]), False) for a in job.outputs]
                backlog.append(("", None, True))
            for item in backlog:
                q.put_nowait(item)
            while True:
                try:
                    name, data, end = await asyncio.wait_for(q.get(), self.keepalive_s)
                except asyncio.TimeoutError:
                    await resp.write(b": keepalive\n\n")
                    continue
                if name:
                    await resp.write(f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode())
                    sent += 1
                if end:
                    break
                if drop is not None and sent >= drop.after:
                    request.transport.close()  # type: ignore[union-attr]
                    return resp
            await resp.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.open_streams -= 1
            job.listeners.remove(q)
        return resp

    # ------------------------------------------------------------------ assets and signed links
    def _put(self, data: bytes, file_path: str, ctype: str) -> Asset:
        digest = b3(data)
        self.blobs[digest[7:]] = data
        self.blob_types[digest[7:]] = ctype
        asset = Asset(str(uuid.uuid4()), digest, file_path, ctype, time.time())
        self.assets[asset.id] = asset
        return asset

    def signature(self, blob: str, date: str, expires: str) -> str:
        return hmac.new(self._secret, f"{blob}\n{date}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def signed(self, asset: Asset) -> tuple[str, float]:
        issued = time.time()
        if self._stale and asset.id not in self._staled:
            self._staled.add(asset.id)
            issued -= self.signed_ttl_s + 60
        date = datetime.fromtimestamp(issued, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        blob, ttl = asset.hash[7:], str(self.signed_ttl_s)
        query = urlencode({"X-Goog-Algorithm": "GOOG4-HMAC-SHA256", "X-Goog-Date": date, "X-Goog-Expires": ttl,
                           "X-Goog-Signature": self.signature(blob, date, ttl)})
        return f"{self.store.url}/comfy-outputs/{blob}?{query}", issued + self.signed_ttl_s

    def output_json(self, a: Asset) -> dict:
        url, until = self.signed(a)
        return {"node_id": a.node_id, "name": a.file_path, "type": "image" if a.content_type.startswith("image/")
                else "file", "content_type": a.content_type, "size_bytes": len(self.blobs[a.hash[7:]]), "id": a.id,
                "hash": a.hash, "url": url, "url_expires_at": rfc3339(until), "job_id": a.job_id}

    def asset_json(self, a: Asset, created_new: Optional[bool] = None) -> dict:
        url, until = self.signed(a)
        out = {"id": a.id, "hash": a.hash, "size_bytes": len(self.blobs[a.hash[7:]]), "content_type": a.content_type,
               "file_path": a.file_path, "created_at": rfc3339(a.created), "url": url, "url_expires_at": rfc3339(until),
               "expires_at": None}
        if created_new is not None:
            out["created_new"] = created_new
        return out

    async def _upload(self, request: web.Request) -> web.Response:
        if not request.content_type.startswith("multipart/"):
            return error(422, "invalid_request", "Expected multipart/form-data.")
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + request.headers["Content-Type"].encode() + b"\r\n\r\n" + await request.read())
        if not msg.is_multipart():
            return error(422, "invalid_request", "Malformed multipart body.")
        parts = {p.get_param("name", header="content-disposition"): (p.get_payload(decode=True) or b"",
                                                                     p.get_content_type()) for p in msg.iter_parts()}
        if "file" not in parts:
            return error(422, "invalid_request", "Missing 'file' part.")
        if "file_path" not in parts:
            return error(422, "invalid_request", "Missing 'file_path'.")
        data = parts["file"][0]
        expected = parts.get("expected_hash", (b"", None))[0].decode()
        if expected and expected.lower() != b3(data):
            return error(409, "hash_mismatch", "expected_hash does not match the received bytes.")
        existed = b3(data)[7:] in self.blobs
        ctype = parts.get("content_type", (b"", None))[0].decode() or parts["file"][1] or "application/octet-stream"
        asset = self._put(data, parts["file_path"][0].decode(), ctype)
        return json_response(self.asset_json(asset, created_new=not existed), 200 if existed else 201)

    async def _by_hash(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if request.match_info["hash"][7:] in self.blobs else 404)

    async def _from_hash(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read() or b"{}")
        digest = body.get("hash") if isinstance(body, dict) else None
        if not isinstance(digest, str) or digest[7:] not in self.blobs:
            return error(404, "blob_not_found", "No blob the caller may mint from.")
        asset = self._put(self.blobs[digest[7:]], str(body.get("file_path") or "asset"), "image/png")
        return json_response(self.asset_json(asset, created_new=True), 201)

    async def _asset(self, request: web.Request) -> web.Response:
        a = self.assets.get(request.match_info["id"])
        return json_response(self.asset_json(a)) if a else error(404, "not_found", "No such asset.")

    async def _delete(self, request: web.Request) -> web.Response:
        a = self.assets.pop(request.match_info["id"], None)
        return web.Response(status=204) if a else error(404, "not_found", "No such asset.")

    async def _content(self, request: web.Request) -> web.Response:
        a = self.assets.get(request.match_info["id"])
        if a is None:
            return error(404, "not_found", "No such asset.")
        return web.Response(status=302, headers={"Location": self.signed(a)[0]})


def _ms(later: Optional[float], earlier: Optional[float]) -> Optional[int]:
    return int((later - earlier) * 1000) if later and earlier else None


def _bad_labels(meta: Any) -> Optional[str]:
    if not isinstance(meta, dict):
        return "metadata must be a map of string labels."
    if len(meta) > 16:
        return f"metadata has {len(meta)} labels; at most 16."
    for k, v in meta.items():
        if not LABEL_KEY.match(str(k)):
            return f"metadata key {k!r} must be 1-40 characters from A-Z a-z 0-9 _ - ."
        if not isinstance(v, str) or len(v.encode()) > 256 or BAD_LABEL_CHARS.search(v):
            return f"metadata value of {k!r} must be a string of at most 256 bytes without control characters."
    return None
