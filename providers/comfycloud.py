"""Comfy API v2: Comfy Cloud, serverless deployments and a self-hosted ``comfy-api-proxy`` (guide:
docs/providers/comfycloud.md; facts: shared/providers/comfy-api-v2.md).

Profile: ``url`` (``COMFY_BASE_URL``, default https://cloud.comfy.org), secret ``api_key``
(``COMFY_API_KEY``) sent as ``Authorization: Bearer`` to the url's own origin only — never to a
link or a redirect elsewhere — and ``surface`` (``cloud`` | ``deployment`` | ``proxy``; by default
from the host, see SURFACES).

- ``submit``: ``POST /api/v2/jobs {workflow}`` with the journal's key as ``Idempotency-Key``. The key
  is single-use (a second use is refused with 422, never replayed), so a resend can never make a
  second job; where the surface keeps labels the key also goes in ``metadata`` so that ``find``
  can look the job up in ``GET /jobs``. Comfy Cloud has no job list (501): ``find`` says so
  (NotSupported) and the engine stops honestly instead of guessing.
- ``poll``/``cancel`` follow the job's own ``urls.self``/``urls.cancel``; ``push`` reads
  ``urls.events`` (``engine/sse.py``): status, queue position, progress, current node, previews.
- Outputs download from ``/assets/{id}/content`` with the key; Cloud answers 302 to a signed URL,
  fetched without it (``Http.fetch_to`` sends headers to the first origin only).
- Inputs are uploaded as assets by blake3 hash (``comfycloud_wire``): a hit costs no upload.

``STATES``, ``CODES`` and ``SURFACES`` are the service → engine tables (the docs link here).
"""
from __future__ import annotations

import base64
import binascii
import math
import time
import uuid
from typing import Any, AsyncIterator, Optional
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from ..engine import sse
from .base import (AuthError, CancelResult, Capabilities, ConfigError, NotFound, NotSupported, Output, Preflight,
                   ProtocolError, Provider, QuotaError, RateLimited, RejectedInput, RemoteError, RemoteFailure,
                   RemoteRef, ServerError, State, SubmitSpec, TaskGone, TaskUpdate, apply_overrides, node_sort_key,
                   parse_api_graph)
from .comfycloud_wire import blake3_hash, envelope, node_errors, origin, output_kind, progress, upload_asset

DEFAULT_URL = "https://cloud.comfy.org"
LABEL = "comfyui_remote_key"  # the metadata label that carries the journal's key (find)
UI_HINT = "export it with Workflow → Export (API) in ComfyUI and use that file"
AUTH_WHERE = "Comfy Cloud keys (comfyui-…) come from platform.comfy.org and need a paid plan"

# job.status → State; "expired" (retention passed, or the backend lost the job) is TaskGone, which
# the engine confirms over a window: the proxy can report a job that just ended as expired once
STATES = {"queued": State.QUEUED, "running": State.RUNNING, "canceling": State.RUNNING,
          "succeeded": State.SUCCEEDED, "failed": State.FAILED, "canceled": State.CANCELLED}
TERMINAL = frozenset({"succeeded", "failed", "canceled", "expired"})


class KeyReused(NotSupported):
    """422 idempotency_key_reuse on a create: a submission under this key reached the service
    earlier and its job could not be found. A refusal (nothing is sent again), named honestly."""

    kind = "ambiguous_submit"


# error.code of the envelope {"error": {code, message, details}} → (error class, field, what to do).
# Statuses without an envelope (a gateway, a plain-text 404) fall back to Provider.http_error.
CODES: dict[str, tuple[type, str, str]] = {
    "invalid_request": (RejectedInput, "workflow", "the request was malformed"),
    "invalid_workflow": (RejectedInput, "workflow", "fix the named node input, or export the workflow again"),
    "workflow_format_ui": (RejectedInput, "workflow", UI_HINT),
    "missing_asset": (RejectedInput, "image", "an uploaded input is gone (a proxy restart forgets uploads): "
                                              "queue the workflow again to upload it anew"),
    "idempotency_key_reuse": (KeyReused, "", "it was not sent again, so nothing is paid twice: look for the job "
                                             "in the service's console, and RemoteRecover fetches it by its id"),
    "deployment_stopped": (ConfigError, "url", "the deployment is stopped: start it on platform.comfy.org"),
    "metadata_invalid": (ConfigError, "surface", "set surface = \"cloud\" or \"proxy\" in the profile"),
    "metadata_not_supported": (ConfigError, "surface", "set surface = \"cloud\" in the profile"),
    "hash_mismatch": (RejectedInput, "image", "the upload changed on the way; queue again"),
    "asset_in_use": (RejectedInput, "", "the asset is still used by a job"),
    "blob_not_found": (NotFound, "image", "the blob is not there; it is uploaded instead"),
    "not_found": (NotFound, "", "the job or asset is unknown to this account, or has expired"),
    "output_unavailable": (NotFound, "", "the remote ComfyUI no longer has the output file; queue again"),
    "unauthorized": (AuthError, "api_key", ""),
    "forbidden": (AuthError, "api_key", "the key may not do this"),
    "forbidden_origin": (AuthError, "url", "comfy-api-proxy refused the request's Origin (browser-style "
                                           "request); call it server-side or start it with --enable-cors-header"),
    "insufficient_credits": (QuotaError, "", "add credits (or upgrade the plan) at platform.comfy.org"),
    "payload_too_large": (RejectedInput, "image", "the file is over the service's upload limit"),
    "queue_full": (RateLimited, "", "the service's queue is full; waiting as Retry-After says"),
    "deployment_not_ready": (RateLimited, "", "the deployment is starting; waiting as Retry-After says"),
    "rate_limited": (RateLimited, "", "the account's request rate is exceeded; waiting as Retry-After says"),
    "too_many_streams": (RateLimited, "", "too many live streams; polling meanwhile"),
    "upstream_error": (ServerError, "", "the service's backend failed; asked again"),
    "upstream_unreachable": (ServerError, "", "comfy-api-proxy cannot reach its ComfyUI; is it running?"),
    "not_implemented": (NotSupported, "", "this surface does not offer it"),
    "public_deployment_no_list": (NotSupported, "", "the public demo deployment keeps no job list"),
    "invalid_metadata_filter": (RejectedInput, "", "the job-list filter was refused"),
    "invalid_cursor": (RejectedInput, "", "the job-list cursor was refused"),
}
# what each surface does with job labels: how the key travels for find (None: labels are refused
# and GET /jobs answers 501, so find is impossible)
SURFACES = {
    "cloud": None,  # cloud.comfy.org: metadata → 422 metadata_not_supported, GET /jobs → 501
    "deployment": "labels",  # *.run.comfy.app: metadata {LABEL: key}, GET /jobs?metadata[LABEL]=key
    "proxy": "text",  # comfy-api-proxy: metadata an opaque string, GET /jobs = newest full jobs
}
STREAM_POLICY = sse.StreamPolicy(idle_s=45.0, connect_s=10.0, backoff_cap_s=5.0)
STREAM_QUIET_S = 30.0  # after a refused stream, this long before the next try for that job


class ComfyCloudProvider(Provider):
    id = "comfycloud"
    label = "Comfy Cloud (API v2)"
    capabilities = Capabilities(cancel=True, queue_position=True, progress="push", uploads=True, cost=False,
                                idempotent_submit=False, client_chosen_id=False, findable=True, addressing="node",
                                input_kinds=("image", "video", "audio", "file"))  # assets: any file
    streams_uploads = True
    upload_ttl_s = 0.0  # a blake3 hit costs one HEAD, so every task re-checks that its input is still there

    def __init__(self, profile: Any, http: Any):
        super().__init__(profile, http)
        self._quiet: dict[str, float] = {}  # remote id → no event stream before this (monotonic)
        self._ended: set[str] = set()  # jobs whose stream reported the end (the engine polls now)
        self._classes: dict[str, dict] = {}  # remote id → {node id: class}: labels where the service names none

    # ------------------------------------------------------------------ where, who
    @property
    def base(self) -> str:
        url = str(getattr(self.profile, "url", None) or DEFAULT_URL).rstrip("/")
        return url[: -len("/api/v2")] if url.endswith("/api/v2") else url

    def api(self, path: str) -> str:
        return f"{self.base}/api/v2{path}"

    def surface(self) -> str:
        chosen = self.profile.get("surface") if hasattr(self.profile, "get") else None
        if chosen:
            if chosen not in SURFACES:
                raise self.error(ConfigError, f"surface {chosen!r} is not one of {', '.join(SURFACES)}",
                                 field="surface", hint="leave it out to decide from the url's host")
            return str(chosen)
        host = urlsplit(self.base).hostname or ""
        if host.endswith("comfy.org"):
            return "cloud"
        return "deployment" if host.endswith(".comfy.app") else "proxy"

    def _key(self) -> Optional[str]:
        secret = getattr(self.profile, "secret", None)
        key = secret("api_key") if callable(secret) else None
        if not key and self.surface() != "proxy":
            raise self.error(ConfigError, "no API key", field="api_key",
                             hint=f"set {self.profile.where('api_key')}; {AUTH_WHERE}")
        return key

    def headers(self, url: str) -> dict:
        """The key goes to the profile's own origin only (links and redirects elsewhere get none)."""
        key = self._key()
        return {"Authorization": f"Bearer {key}"} if key and origin(url) == origin(self.base) else {}

    def download_headers(self, output: Output) -> dict:
        return self.headers(output.url or "")

    def _auth_hint(self) -> str:
        where = self.profile.where("api_key")
        if self._key():
            return f"the service refused the key: check {where} ({AUTH_WHERE})"
        return f"the service needs a key: set {where} ({AUTH_WHERE})"

    def follow(self, link: Any, fallback: str) -> str:
        """A link the service gave (absolute, or host-relative with a mount prefix), resolved against
        the base origin; a proxy behind a TLS terminator builds http:// links: same host, base scheme."""
        if not isinstance(link, str) or not link:
            return fallback
        url = urljoin(self.base + "/", link)
        p, b = urlsplit(url), urlsplit(self.base)
        if p.scheme not in ("http", "https"):
            return fallback
        if p.hostname == b.hostname and (p.scheme, p.port) != (b.scheme, b.port):
            url = urlunsplit((b.scheme, b.netloc, p.path, p.query, ""))
        return url

    def _link(self, ref: RemoteRef, name: str) -> str:
        tail = {"self": "", "events": "/events", "cancel": "/cancel"}[name]
        urls = ref.data.get("urls") if isinstance(ref.data.get("urls"), dict) else {}
        return self.follow(urls.get(name), self.api(f"/jobs/{quote(ref.remote_id, safe='')}{tail}"))

    async def call(self, method: str, url: str, what: str, *, job: str = "", **kw: Any) -> Any:
        """One request (the transport retries what it may); the JSON answer, or the error it means."""
        resp = await self.http.request(method, url, headers=self.headers(url), **kw)
        if not resp.ok:
            raise self.error_of(resp, what, job=job)
        if method == "HEAD" or resp.status == 204:
            return None
        return resp.json()

    # ------------------------------------------------------------------ errors
    def error_of(self, resp: Any, what: str, *, job: str = "") -> RemoteError:
        """The error an answer means: its envelope's code (CODES), else its HTTP status."""
        env = envelope(resp)
        row = CODES.get(env[0]) if env else None
        if env is None or row is None:
            err = self.http_error(resp, what, auth_hint=self._auth_hint())
            if env is not None:
                err.detail, err.code = f"{err.detail}: {env[0]}: {env[1]}", env[0]
            return err
        code, message, details = env
        cls, fld, hint = row
        kw: dict = {"field": fld, "code": code, "hint": hint or self._auth_hint()}
        if cls is RateLimited:
            kw["retry_after"] = resp.retry_after if resp.retry_after is not None else 2.0
        if code == "not_found" and job:
            cls, kw["hint"] = TaskGone, "queue the workflow again (the service keeps jobs for a limited time)"
        nodes = details.get("node_errors") if isinstance(details, dict) else None
        if code == "invalid_workflow" and isinstance(nodes, dict) and nodes:
            text, node, node_class, target = node_errors(nodes)
            message = f"{message}: {text}"
            kw.update(remote_node=node or "", node_class=node_class or "", field=target or "workflow")
        return self.error(cls, f"{what}: {code}: {message}"[:700], **kw)

    # ------------------------------------------------------------------ pre-flight, upload, submit, find
    def _graph(self, spec: SubmitSpec) -> dict:
        try:
            graph = parse_api_graph(spec.workflow, provider=self.id, profile=self.name)
            return apply_overrides(graph, spec, provider=self.id, profile=self.name)
        except RemoteError as e:
            raise e.with_context(provider=self.id, profile=self.name)

    async def validate(self, spec: SubmitSpec) -> Preflight:
        self._graph(spec)
        self._key()
        return Preflight()

    async def upload(self, data: bytes, mime: str, name: str) -> Any:
        return await upload_asset(self, data, mime, name)

    def new_submission_key(self) -> str:
        return str(uuid.uuid4())

    def _label(self, key: str) -> Any:
        how = SURFACES[self.surface()]
        return {LABEL: key} if how == "labels" else (f"{LABEL}:{key}" if how == "text" else None)

    async def submit(self, spec: SubmitSpec, key: str) -> RemoteRef:
        body: dict = {"workflow": self._graph(spec)}
        label = self._label(key)
        if label is not None:
            body["metadata"] = label
        url = self.api("/jobs")
        resp = await self.http.request("POST", url, json=body, headers={**self.headers(url), "Idempotency-Key": key},
                                       creates=True)
        if resp.status not in (200, 201):
            raise self.error_of(resp, "POST /api/v2/jobs")
        ref = self._ref(resp.json(), "POST /api/v2/jobs")
        self._classes[ref.remote_id] = {k: str(v.get("class_type")) for k, v in body["workflow"].items()}
        return ref

    def _ref(self, job: Any, what: str) -> RemoteRef:
        if not isinstance(job, dict) or not isinstance(job.get("id"), str) or not job["id"]:
            raise self.error(ProtocolError, f"{what} answered without a job id")
        urls = job.get("urls") if isinstance(job.get("urls"), dict) else {}
        return RemoteRef(remote_id=job["id"], data={"urls": {k: v for k, v in urls.items()
                                                              if k in ("self", "events", "cancel") and isinstance(v, str)}})

    async def find(self, key: str, spec: SubmitSpec) -> Optional[RemoteRef]:
        """The job submitted under ``key``, by its label in the job list (never a second submit)."""
        label = self._label(key)
        if label is None:
            raise self.error(NotSupported, "Comfy Cloud keeps no job list (GET /jobs answers 501) and refuses labels, "
                                           "so a submission whose answer was lost cannot be looked up")
        params = {f"metadata[{LABEL}]": key, "limit": "20"} if isinstance(label, dict) else {"limit": "100"}
        answer = await self.call("GET", self.api("/jobs"), "GET /api/v2/jobs", params=params)
        jobs = answer.get("jobs") if isinstance(answer, dict) else None
        if not isinstance(jobs, list):
            raise self.error(ProtocolError, "GET /api/v2/jobs answered without a 'jobs' list")
        for item in jobs:
            meta = item.get("metadata") if isinstance(item, dict) else None
            if meta == label or (isinstance(label, dict) and isinstance(meta, dict) and meta.get(LABEL) == key):
                return self._ref(item, "GET /api/v2/jobs")
        return None

    # ------------------------------------------------------------------ poll, push
    async def poll(self, ref: RemoteRef) -> TaskUpdate:
        url = self._link(ref, "self")
        job = await self.call("GET", url, f"GET job {ref.remote_id}", job=ref.remote_id)
        if not isinstance(job, dict):
            raise self.error(ProtocolError, f"GET job {ref.remote_id} answered something that is not a job")
        return self.update_of(ref, job)

    def update_of(self, ref: RemoteRef, job: dict) -> TaskUpdate:
        status = job.get("status")
        if status == "expired":
            raise self.error(TaskGone, f"job {ref.remote_id} has expired on the service (its retention passed, or "
                                       f"the backend lost it, e.g. a restart of the ComfyUI behind comfy-api-proxy)",
                             code="expired", hint="queue the workflow again")
        state = STATES.get(str(status))
        if state is None:
            raise self.error(ProtocolError, f"job {ref.remote_id} has an unknown status {status!r}")
        if state is State.SUCCEEDED:
            return TaskUpdate(state, progress=1.0, outputs=self._outputs(ref, job), raw_state=status)
        if state is State.FAILED and ref.data.get("cancel_requested"):
            return TaskUpdate(State.CANCELLED, raw_state=status, message="cancelled (the job stopped with an error)")
        if state is State.FAILED:
            return TaskUpdate(state, raw_state=status, error=self._failure(job.get("error")))
        if state is State.CANCELLED:
            return TaskUpdate(state, raw_state=status, message="cancelled on the service")
        if state is State.QUEUED:
            pos = job.get("queue_position")
            return TaskUpdate(state, queue_position=pos if isinstance(pos, int) else None, raw_state=status)
        upd = progress(job.get("progress"), self._classes.get(ref.remote_id))
        if status == "canceling":
            upd.message = "cancel requested; waiting for the service to stop the job"
        upd.raw_state = status
        return upd

    def _failure(self, err: Any) -> RemoteFailure:
        err = err if isinstance(err, dict) else {}
        node, cls = str(err.get("node_id") or ""), str(err.get("class_type") or "")
        msg = str(err.get("message") or "the job failed").strip()[:500]
        where = f"{cls} #{node} failed: " if node else ""
        hint = "fix the inputs or the remote workflow"
        if "out of memory" in msg.lower() or "OutOfMemory" in msg:
            hint = "the remote GPU ran out of memory: use smaller sizes or batch"
        return self.error(RemoteFailure, f"{where}{msg}", remote_node=node, node_class=cls,
                          code=err.get("code") or "failed", hint=hint)

    def push(self, ref: RemoteRef) -> Optional[AsyncIterator[TaskUpdate]]:
        if ref.remote_id in self._ended or time.monotonic() < self._quiet.get(ref.remote_id, 0.0):
            return None
        return self._stream(ref)

    async def _stream(self, ref: RemoteRef) -> AsyncIterator[TaskUpdate]:
        url = self._link(ref, "events")
        try:
            async for ev in sse.events(self.http, url, headers=self.headers(url), policy=STREAM_POLICY):
                upd = _event_update(ev, self._classes.get(ref.remote_id))
                if upd is None:
                    continue
                if upd.state.terminal:
                    self._ended.add(ref.remote_id)
                    yield upd  # the engine asks the service itself now
                    return
                yield upd
        except sse.StreamRefused as e:  # 501: no streams on this surface; others: this job, for a while
            self._quiet[ref.remote_id] = math.inf if e.code == 501 else time.monotonic() + STREAM_QUIET_S

    # ------------------------------------------------------------------ outputs, cancel, check
    def _outputs(self, ref: RemoteRef, job: dict) -> list[Output]:
        own = self._link(ref, "self")
        root = own.rsplit("/jobs/", 1)[0] if "/jobs/" in own else self.api("")
        result: list[Output] = []
        given_outputs = [o for o in job.get("outputs") or [] if isinstance(o, dict) and isinstance(o.get("id"), str)]
        for o in sorted(given_outputs, key=lambda o: node_sort_key(str(o.get("node_id") or ""))):  # stable
            content = f"{root}/assets/{quote(o['id'], safe='')}/content"
            given = self.follow(o.get("url"), content)
            url = given if given.endswith(f"/assets/{quote(o['id'], safe='')}/content") else content
            mime = o.get("content_type") if isinstance(o.get("content_type"), str) else None
            kind, preview = output_kind(o, mime)
            result.append(Output(kind=kind, url=url, filename=o.get("name") or None,
                                 node=str(o["node_id"]) if o.get("node_id") is not None else None, mime=mime,
                                 preview=preview))
        return result

    async def cancel(self, ref: RemoteRef) -> CancelResult:
        job = await self.call("POST", self._link(ref, "cancel"), f"cancel job {ref.remote_id}", job=ref.remote_id)
        status = job.get("status") if isinstance(job, dict) else None
        return CancelResult.TOO_LATE if status in TERMINAL and status != "canceled" else CancelResult.REQUESTED

    async def check(self) -> str:
        digest = blake3_hash(b"")
        url = self.api(f"/assets/by-hash/{digest}")
        resp = await self.http.request("HEAD", url, headers=self.headers(url))
        if resp.status not in (200, 404):
            raise self.error_of(resp, "HEAD /api/v2/assets/by-hash")
        return f"Comfy API v2 at {self.base} ({self.surface()}): the key is accepted"


def _event_update(ev: Any, classes: Optional[dict] = None) -> Optional[TaskUpdate]:
    """One SSE event as an update (None for markers and events that show nothing)."""
    data = ev.data if isinstance(ev.data, dict) else {}
    if ev.kind != "event":
        return None
    if ev.name == "status":
        status = str(data.get("status"))
        if status in TERMINAL:
            return TaskUpdate(STATES.get(status, State.FAILED), raw_state=status)
        pos = data.get("queue_position")
        return TaskUpdate(STATES[status], queue_position=pos if isinstance(pos, int) else None,
                          raw_state=status) if status in STATES else None
    if ev.name == "progress":
        return progress(data, classes)
    if ev.name == "preview" and isinstance(data.get("data_base64"), str):
        try:
            image = base64.b64decode(data["data_base64"], validate=True)
        except (binascii.Error, ValueError):
            return None
        return TaskUpdate(State.RUNNING, preview=(str(data.get("content_type") or "image/jpeg"), image))
    return None


PROVIDER = ComfyCloudProvider
