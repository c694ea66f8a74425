"""A faithful fake of Tensor.Art TAMS (Tensor Art Model Service), from ``shared/providers/tensorart.md``
and ``shared/seeds/tensorart-tams-get-job.txt``.

Wire format: grpc-gateway REST under ``/v1``; requests are read with protojson rules (lowerCamelCase
*and* snake_case field names, int64 as number or string, unknown fields ignored); answers use
lowerCamelCase, int64 as strings, enums as names, and — like grpc-gateway v2's default marshaller
(``EmitUnpopulated``; **INFERRED**) — unset message fields as ``null`` (``emit_unpopulated=False``
omits them instead). Errors are ``google.rpc.Status`` ``{code, message, details}`` with the gRPC →
HTTP mapping of grpc-gateway (5→404, 16→401 documented; 2/13→500, 3/9→400, 7→403, 8→429, 14→503
**INFERRED**).

Auth (every ``/v1`` route): ``Authorization: Bearer <api key>`` or ``TAMS-SHA256-RSA app_id=…,
nonce_str=…,timestamp=…,signature=…`` verified with the app's public key over
``METHOD\\nPATH?QUERY\\nTS\\nNONCE\\nBODY``; anything else → HTTP 401 ``{"code":16,…}``, nothing runs.
A timestamp off by more than ``max_skew_s`` or a replayed signature is refused too (**INFERRED**).

Jobs follow ``CREATED → WAITING(queueRank, queueLen) → RUNNING(processingImages[].progress 0–100,
workflowFinishItem) → SUCCESS(images[]) | FAILED(failedInfo{reason, code}) | CANCELED`` on
``self.clock``; timings are the attributes ``created_s``, ``queue_s``, ``run_s`` and ``step_s`` (per
sampler step in the graph). ``legacy_shape=True`` answers the older ``stages[]`` shape.

Service-level knobs beside ``self.faults`` (route names: ``get_job``, ``cancel``, ``credits``,
``create_job``, ``workflow``, ``params_check``, ``template_job``, ``template_check``,
``get_template``, ``upload``, ``upload_sts``, ``get_model``, ``put``, ``file``):
``fail_next(kind, node=…)`` (``node`` / ``content`` / ``transitory`` / ``fatal`` / ``credits``),
``qps_limit`` (429 ``code 8`` past N requests a second per app), ``url_ttl_s`` (result URLs are
signed with an ``Expires`` time: past it the file host answers 403 ``AccessDenied`` "Request has
expired."), ``expire_urls()`` (every result URL handed out so far, and those of the next answer
that carries results, have expired; the answers after that sign fresh ones that work).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from . import tensorart_graph as tg
from .toolkit import Clock, FakeServer, json_response

DEFAULT_API_KEY = "tams-fake-key"
GRPC_HTTP = {1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 12: 501,
             13: 500, 14: 503, 16: 401}
ARG_ERROR = "type.googleapis.com/tams_api.ArgumentError"
TERMINAL = {"SUCCESS", "FAILED", "CANCELED"}

# Templates the fake knows: id -> (name, credits, graph). Field defaults are the graph's literal
# inputs named in "fields" (what GET /v1/workflows/{id} lists).
TEMPLATES: dict[str, dict] = {
    "676018193025756628": {  # the documented example ("二次元转真实"): fields 25:image, 27:text
        "name": "二次元转真实", "credits": 2.0, "fields": [("25", "image"), ("27", "text")],
        "graph": {"25": ("LoadImage", {"image": ""}), "27": ("TensorArt_PromptText", {"text": "1 girl"}),
                  "9": ("SaveImage", {"images": ["25", 0], "filename_prefix": "ComfyUI"})}},
    "700000000000000001": {  # one solid image coloured by 6.text
        "name": "solid", "credits": 1.5, "fields": [("6", "text"), ("7", "width"), ("7", "height")],
        "graph": {"6": ("TensorArt_PromptText", {"text": "a cat"}),
                  "7": ("SolidFromText", {"text": ["6", 0], "width": 16, "height": 16}),
                  "3": ("KSampler", {"image": ["7", 0], "steps": 4, "seed": 1}),
                  "9": ("SaveImage", {"images": ["3", 0]})}},
    "700000000000000002": {  # two outputs: the solid image (node 9) and its inverse (node 10)
        "name": "multi", "credits": 3.0, "fields": [("6", "text")],
        "graph": {"6": ("TensorArt_PromptText", {"text": "two"}),
                  "7": ("SolidFromText", {"text": ["6", 0], "width": 12, "height": 12}),
                  "8": ("ImageInvert", {"image": ["7", 0]}),
                  "9": ("SaveImage", {"images": ["7", 0]}), "10": ("SaveImage", {"images": ["8", 0]})}},
    "700000000000000003": {  # slow: 3.steps sampler steps
        "name": "slow", "credits": 5.0, "fields": [("6", "text"), ("3", "steps")],
        "graph": {"6": ("TensorArt_PromptText", {"text": "slow"}),
                  "7": ("SolidFromText", {"text": ["6", 0]}),
                  "3": ("SlowPass", {"image": ["7", 0], "steps": 400}),
                  "9": ("SaveImage", {"images": ["3", 0]})}},
}


def pj(d: Any, camel: str) -> Any:
    """protojson field lookup: the JSON name (lowerCamelCase) or the proto name (snake_case)."""
    if not isinstance(d, dict):
        return None
    if camel in d:
        return d[camel]
    return d.get(re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel))


class RpcError(Exception):
    def __init__(self, code: int, message: str, details: Optional[list] = None):
        self.code, self.message, self.details = code, message, details or []
        super().__init__(message)

    def response(self, headers: Optional[dict] = None) -> web.Response:
        return json_response({"code": self.code, "message": self.message, "details": self.details},
                             status=GRPC_HTTP.get(self.code, 500), headers=headers)


def arg_error(err: tg.GraphError) -> RpcError:
    return RpcError(3, "Params Valid", [{"@type": ARG_ERROR, "field": "workflow", "message": str(err)}])


def int64(v: Any, name: str) -> int:
    """int64 per protojson: a JSON number or a decimal string."""
    if isinstance(v, bool):
        raise RpcError(3, f"invalid value for int64 field {name}: {v!r}")
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
        return int(v)
    raise RpcError(3, f"invalid value for int64 field {name}: {v!r}")


@dataclass
class Job:
    id: str
    request_id: str
    app: str
    graph: dict
    created: float
    run_s: float
    credits: float
    results: list
    failure: Optional[dict] = None
    cancelled_at: Optional[float] = None
    resource_ids: list = field(default_factory=list)
    body: Any = None


class FakeTensorArt(FakeServer):
    name = "tensorart"

    def credentials(self) -> dict:
        return {"TENSORART_BASE_URL": self.url, "TENSORART_API_KEY": DEFAULT_API_KEY}

    def __init__(self, *, clock: Optional[Clock] = None, port: int = 0, api_key: str = DEFAULT_API_KEY,
                 emit_unpopulated: bool = True, legacy_shape: bool = False):
        self.api_keys = {api_key}
        self.public_keys: dict[str, Any] = {}  # app_id -> RSA public key
        self.emit_unpopulated = emit_unpopulated
        self.legacy_shape = legacy_shape
        self.created_s, self.queue_s, self.run_s, self.step_s = 0.05, 0.3, 0.3, 0.02
        self.queue_ahead, self.queue_behind = 3, 2
        self.max_skew_s = 900.0
        self.qps_limit: Optional[int] = None
        self.url_ttl_s = 3600.0
        self._revoked = 0  # result URLs whose Expires is at or before this have expired
        self._stale_next = False  # the next answer with results signs them already expired
        self.jobs: dict[str, Job] = {}
        self.by_request: dict[tuple[str, str], str] = {}
        self.resources: dict[str, dict] = {}  # resourceId -> {headers, data, expires}
        self.files: dict[str, bytes] = {}  # output resource id -> PNG (or mp4)
        self.file_types: dict[str, str] = {}  # output resource id -> its Content-Type
        self.templates = {k: dict(v) for k, v in TEMPLATES.items()}
        self.auth_failures = 0
        self.rate_limited = 0
        self._signatures: set[str] = set()
        self._rate: dict[str, list[float]] = {}
        self._failures: list[dict] = []
        self._ids = itertools.count(int(time.time() * 1000) * 1000 % 10**18)
        self._file_secret = uuid.uuid4().hex.encode()
        self._epoch = time.time()
        super().__init__(clock=clock, port=port)

    # ------------------------------------------------------------------ configuration
    def add_app(self, app_id: str, public_key_pem: bytes | str) -> None:
        pem = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
        self.public_keys[app_id] = serialization.load_pem_public_key(pem)

    def fail_next(self, kind: str, node: Optional[str] = None, reason: Optional[str] = None) -> None:
        """The next created job fails: ``node`` (a node raises), ``content`` (safety filter),
        ``transitory`` / ``fatal`` (failedInfo.code), ``credits`` (creation refused, no credits)."""
        self._failures.append({"kind": kind, "node": node, "reason": reason})

    def expire_urls(self) -> None:
        """Every result URL signed so far expires now, and so do those of the next answer that
        carries results (a link that expired before the client used it); later answers sign fresh ones."""
        self._revoked = max(self._revoked, int(self.unix_now() + self.url_ttl_s))
        self._stale_next = True

    def finished(self, job_id: str) -> bool:
        """The job has ended (SUCCESS, FAILED or CANCELED) at the clock's now."""
        job = self.jobs.get(job_id)
        return job is not None and self._status(job)[0] in TERMINAL

    def unix_now(self) -> float:
        return self._epoch + self.clock.now()

    @property
    def created(self) -> int:
        """How many jobs were created (each one would be paid)."""
        return len(self.jobs)

    # ------------------------------------------------------------------ routes
    def setup_routes(self, r: web.UrlDispatcher) -> None:
        r.add_post("/v1/jobs", self._api(self.create_job), name="create_job")
        r.add_post("/v1/jobs/credits", self._api(self.credits), name="credits")
        r.add_post("/v1/jobs/workflow", self._api(self.workflow_job), name="workflow")
        r.add_post("/v1/jobs/workflow/params/check", self._api(self.params_check), name="params_check")
        r.add_post("/v1/jobs/workflow/template", self._api(self.template_job), name="template_job")
        r.add_post("/v1/jobs/workflow/template/check", self._api(self.template_check), name="template_check")
        r.add_get("/v1/jobs/{jobId}", self._api(self.get_job), name="get_job")
        r.add_delete("/v1/jobs/{jobId}", self._api(self.cancel_job), name="cancel")
        r.add_get("/v1/workflows/{templateId}", self._api(self.get_template), name="get_template")
        r.add_post("/v1/resource/image", self._api(self.create_resource), name="upload")
        r.add_post("/v1/resource/image/sts", self._api(self.create_resource_sts), name="upload_sts")
        r.add_get("/v1/models/{modelId}", self._api(self.get_model), name="get_model")
        r.add_put("/_oss/{resourceId}", self.put_object, name="put")
        r.add_get("/_files/{name}", self.get_file, name="file")

    def _api(self, fn: Any) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            try:
                app = self._authenticate(request, raw)
                self._rate_limit(app)
                body: Any = {}
                if raw:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        raise RpcError(3, "invalid character in request body: not JSON") from None
                    if not isinstance(body, dict):
                        raise RpcError(3, "request body must be a JSON object")
                return json_response(self._emit(await fn(request, body, app)))
            except RpcError as e:
                return e.response()
        return handler

    def _emit(self, data: Any) -> Any:
        """Drop nulls unless emitting unpopulated fields (grpc-gateway v2 default)."""
        if self.emit_unpopulated:
            return data
        if isinstance(data, dict):
            return {k: self._emit(v) for k, v in data.items() if v is not None}
        if isinstance(data, list):
            return [self._emit(v) for v in data]
        return data

    # ------------------------------------------------------------------ auth, limits
    def _authenticate(self, request: web.Request, body: bytes) -> str:
        h = request.headers.get("Authorization", "")
        scheme, _, rest = h.partition(" ")
        if scheme == "Bearer" and any(hmac.compare_digest(rest.encode(), k.encode()) for k in self.api_keys):
            return "key:" + hashlib.sha256(rest.encode()).hexdigest()[:8]
        if scheme == "TAMS-SHA256-RSA":
            params = dict(p.partition("=")[::2] for p in rest.split(","))
            app, nonce, ts, sig = (params.get(k, "") for k in ("app_id", "nonce_str", "timestamp", "signature"))
            key = self.public_keys.get(app)
            if key is not None and nonce and re.fullmatch(r"\d+", ts) and sig and sig not in self._signatures \
                    and abs(int(ts) - time.time()) <= self.max_skew_s:  # the wall clock, as a server's
                msg = f"{request.method}\n{request.raw_path}\n{ts}\n{nonce}\n".encode() + body
                try:
                    key.verify(base64.b64decode(sig, validate=True), msg, padding.PKCS1v15(), hashes.SHA256())
                except (InvalidSignature, ValueError):
                    pass
                else:
                    self._signatures.add(sig)
                    return "app:" + app
        self.auth_failures += 1
        raise RpcError(16, "Unauthorized: invalid token or signature")

    def _rate_limit(self, app: str) -> None:
        if not self.qps_limit:
            return
        now = time.monotonic()
        seen = [t for t in self._rate.get(app, []) if t > now - 1.0]
        if len(seen) >= self.qps_limit:
            self._rate[app] = seen
            self.rate_limited += 1
            raise RpcError(8, f"rate limit exceeded: {self.qps_limit} QPS")
        seen.append(now)
        self._rate[app] = seen

    # ------------------------------------------------------------------ job creation
    def _graph_from_params(self, params: Any) -> dict:
        if not isinstance(params, dict) or not params:
            raise RpcError(3, "Params Valid", [{"@type": ARG_ERROR, "field": "params", "message": "params is required"}])
        graph = {}
        for nid, node in params.items():
            ct = pj(node, "classType")
            inputs = pj(node, "inputs")
            if not isinstance(ct, str) or not ct:
                raise arg_error(tg.GraphError(str(nid), "", "classType", "字段必填"))
            graph[str(nid)] = {"class": ct, "inputs": dict(inputs) if isinstance(inputs, dict) else {}}
        return graph

    def _graph_from_template(self, body: dict) -> tuple[dict, float]:
        tid = pj(body, "templateId")
        tpl = self.templates.get(str(tid or ""))
        if tpl is None:
            raise RpcError(5, f"template not found: {tid}")
        attrs = pj(pj(body, "fields"), "fieldAttrs") or []
        given: dict[tuple[str, str], Any] = {}
        for a in attrs if isinstance(attrs, list) else []:
            given[(str(pj(a, "nodeId")), str(pj(a, "fieldName")))] = pj(a, "fieldValue")
        graph = {nid: {"class": ct, "inputs": dict(inp)} for nid, (ct, inp) in tpl["graph"].items()}
        for nid, fname in tpl["fields"]:
            if (nid, fname) not in given:
                raise RpcError(2, f"can't find [nodeId:fieldName] {nid}:{fname} in fields parameter")
            value, node = given[(nid, fname)], graph[nid]
            default = node["inputs"].get(fname)
            if value is not None and isinstance(default, int) and not isinstance(default, bool):
                try:
                    value = int(str(value))
                except ValueError:
                    raise arg_error(tg.GraphError(nid, node["class"], fname, "应为整数")) from None
            node["inputs"][fname] = value
        return graph, float(tpl["credits"])

    def _check(self, graph: dict) -> None:
        try:
            tg.check_graph(graph, lambda rid: rid in self.resources and self.resources[rid]["data"] is not None)
        except tg.GraphError as e:
            raise arg_error(e) from None

    def _credits(self, graph: dict) -> float:
        return round(0.5 + 0.01 * tg.total_steps(graph), 4)

    def _create(self, body: dict, app: str, graph: dict, credits: float) -> dict:
        request_id = pj(body, "requestId")
        if not isinstance(request_id, str) or not request_id:
            raise RpcError(3, "Params Valid", [{"@type": ARG_ERROR, "field": "requestId",
                                                "message": "requestId is required"}])
        existing = self.by_request.get((app, request_id))
        if existing:  # repeated requestId: the same job again (INFERRED), nothing new is paid
            return {"job": self._job_json(self.jobs[existing])}
        self._check(graph)
        failure = self._failures.pop(0) if self._failures else None
        if failure and failure["kind"] == "credits":
            raise RpcError(9, "insufficient credits", [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                                        "reason": "CREDIT_NOT_ENOUGH",
                                                        "message": "credit not enough"}])
        results = tg.run_graph(graph, lambda rid: self.resources[rid]["data"])
        job = Job(id=str(next(self._ids)), request_id=request_id, app=app, graph=graph,
                  created=self.clock.now(), run_s=self.run_s + self.step_s * tg.total_steps(graph),
                  credits=credits, results=results, failure=failure, body=body)
        for res in results:
            rid = str(uuid.uuid4())
            self.files[rid] = res.png
            self.file_types[rid] = "video/mp4" if res.video else "image/png"
            job.resource_ids.append(rid)
        self.jobs[job.id] = job
        self.by_request[(app, request_id)] = job.id
        return {"job": self._job_json(job)}

    async def workflow_job(self, request: web.Request, body: dict, app: str) -> dict:
        graph = self._graph_from_params(pj(body, "params"))
        return self._create(body, app, graph, self._credits(graph))

    async def template_job(self, request: web.Request, body: dict, app: str) -> dict:
        graph, credits = self._graph_from_template(body)
        return self._create(body, app, graph, credits)

    async def create_job(self, request: web.Request, body: dict, app: str) -> dict:
        stages = pj(body, "stages")
        if not isinstance(stages, list) or not stages:
            raise RpcError(3, "Params Valid", [{"@type": ARG_ERROR, "field": "stages", "message": "stages is required"}])
        return self._create(body, app, self._stage_graph(stages), self._stage_credits(stages))

    def _stage_graph(self, stages: list) -> dict:
        count, text, w, h = 1, "", 512, 512
        for st in stages:
            init = pj(st, "inputInitialize")
            if init:
                count = max(1, min(4, int(pj(init, "count") or 1)))
            diff = pj(st, "diffusion")
            if diff:
                prompts = pj(diff, "prompts") or []
                text = " ".join(str(pj(p, "text") or "") for p in prompts)
                w, h = int64(pj(diff, "width") or 512, "width"), int64(pj(diff, "height") or 512, "height")
        graph: dict = {"1": {"class": "SolidFromText", "inputs": {"text": text, "width": w // 32, "height": h // 32}}}
        for i in range(count):
            graph[str(10 + i)] = {"class": "SaveImage", "inputs": {"images": ["1", 0]}}
        return graph

    def _stage_credits(self, stages: list) -> float:
        steps = sum(int(pj(pj(s, "diffusion"), "steps") or 0) for s in stages if pj(s, "diffusion"))
        return round(0.1 * max(1, steps) / 10, 4)

    # ------------------------------------------------------------------ checks, credits
    async def template_check(self, request: web.Request, body: dict, app: str) -> dict:
        graph, credits = self._graph_from_template(body)
        self._check(graph)
        return {"valid": True, "credits": credits}

    async def params_check(self, request: web.Request, body: dict, app: str) -> dict:
        graph = self._graph_from_params(pj(body, "params"))
        self._check(graph)
        return {"valid": True, "credits": self._credits(graph)}

    async def credits(self, request: web.Request, body: dict, app: str) -> dict:
        stages = pj(body, "stages")
        if not isinstance(stages, list) or not stages:
            raise RpcError(3, "Params Valid", [{"@type": ARG_ERROR, "field": "stages", "message": "stages is required"}])
        return {"credits": self._stage_credits(stages)}

    # ------------------------------------------------------------------ jobs
    def _job(self, request: web.Request, app: str) -> Job:
        job = self.jobs.get(request.match_info["jobId"])
        if job is None or job.app != app:
            raise RpcError(5, "job not found")
        return job

    async def get_job(self, request: web.Request, body: dict, app: str) -> dict:
        return {"job": self._job_json(self._job(request, app))}

    async def cancel_job(self, request: web.Request, body: dict, app: str) -> dict:
        job = self._job(request, app)
        status = self._status(job)[0]
        if status in TERMINAL:  # INFERRED: cancelling a finished job is refused
            raise RpcError(9, f"job is already {status}")
        job.cancelled_at = self.clock.now()
        return {"jobId": job.id}

    def _status(self, job: Job) -> tuple[str, float]:
        """(status, fraction of the current phase) at the clock's now."""
        t = self.clock.now() - job.created
        if job.cancelled_at is not None:
            return "CANCELED", 1.0
        if t < self.created_s:
            return "CREATED", 0.0
        t -= self.created_s
        if t < self.queue_s:
            return "WAITING", t / self.queue_s if self.queue_s else 1.0
        t -= self.queue_s
        if t < job.run_s:
            return "RUNNING", t / job.run_s if job.run_s else 1.0
        return ("FAILED" if job.failure else "SUCCESS"), 1.0

    def _resource(self, rid: str, res: tg.Result, stale: bool = False) -> dict:
        exp = self._revoked if stale else max(int(self.unix_now() + self.url_ttl_s), self._revoked + 1)
        sig = hmac.new(self._file_secret, f"{rid}:{exp}".encode(), hashlib.sha256).hexdigest()[:32]
        return {"id": rid, "url": f"{self.url}/_files/{rid}.{res.ext}?Expires={exp}&OSSAccessKeyId=fake&Signature={sig}",
                "expiredIn": str(exp), "meta": {"image": {"format": res.ext, "width": res.width, "height": res.height}}}

    def _wfi(self, job: Job, status: str, frac: float) -> dict:
        order = tg.order(job.graph)
        fail_node = (job.failure or {}).get("node")
        done = len(order) if status == "SUCCESS" else int(frac * len(order))
        nodes, finished = {}, {}
        outputs = {r.node: [] for r in job.results}
        for res, rid in zip(job.results, job.resource_ids):
            outputs[res.node].append({"filename": f"ComfyUI_{job.id[-5:]}_{rid[:8]}.{res.ext}", "type": "output",
                                      "height": res.height, "width": res.width, "format": res.ext,
                                      "imageResourceId": rid})
        for i, nid in enumerate(order):
            st = "SUCCESS" if i < done else ("RUNNING" if i == done and status == "RUNNING" else "INIT")
            if status == "FAILED" and nid == fail_node:
                st = "FAILED"
            node = {"id": nid, "status": st, "process": 100.0 if st == "SUCCESS" else (round(frac * 100, 2) if st == "RUNNING" else 0.0),
                    "outputUi": {"type": "output", "images": outputs[nid]} if st == "SUCCESS" and nid in outputs else None}
            nodes[nid] = node
            if st == "SUCCESS":
                finished[nid] = True
        ms = str(int(self.unix_now() * 1000))
        return {"status": {"SUCCESS": "SUCCESS", "FAILED": "FAILED", "RUNNING": "RUNNING"}.get(status, "INIT"),
                "progress": round(100.0 * (1.0 if status == "SUCCESS" else frac), 2), "step": done,
                "id": f"wf-{job.id}", "ctime": str(int((self._epoch + job.created) * 1000)), "mtime": ms,
                "nodes": nodes, "finishedNodes": finished}

    def _job_json(self, job: Job) -> dict:
        status, frac = self._status(job)
        credits = 0.0 if status in ("FAILED", "CANCELED") else job.credits
        out: dict = {"id": job.id, "status": status, "credits": credits, "waitingInfo": None,
                     "failedInfo": None, "runningInfo": None, "successInfo": None}
        if status == "WAITING":
            rank = max(1, math.ceil(self.queue_ahead * (1.0 - frac)))
            out["waitingInfo"] = {"queueRank": str(rank), "queueLen": str(self.queue_ahead + 1 + self.queue_behind)}
            if self.legacy_shape:
                out["waitingInfo"] = {"queueRank": str(rank)}
        elif status == "RUNNING":
            pct = int(frac * 100)
            imgs = [{"resourceImage": None, "progress": pct} for _ in job.results] or [{"resourceImage": None, "progress": pct}]
            out["runningInfo"] = ({"stages": [{"stageIndex": "0", "processingImages": imgs}]} if self.legacy_shape
                                  else {"processingImages": imgs, "workflowFinishItem": self._wfi(job, status, frac)})
        elif status == "SUCCESS":
            stale, self._stale_next = self._stale_next, False
            pairs = list(zip(job.results, job.resource_ids))
            images = [self._resource(rid, res, stale) for res, rid in pairs if not res.video]
            videos = [self._resource(rid, res, stale) for res, rid in pairs if res.video]
            out["successInfo"] = ({"images": images, "stages": [{"stageIndex": "0", "processingImages":
                                   [{"resourceImage": im, "progress": 100} for im in images]}]} if self.legacy_shape
                                  else {"images": images, "videos": videos, "workflowFinishItem": self._wfi(job, status, frac)})
        elif status == "FAILED":
            f = job.failure or {}
            kind, node = f.get("kind"), f.get("node")
            ct = job.graph.get(node, {}).get("class", "") if node else ""
            reason = f.get("reason") or {
                "node": f"node id: {node}\nclass type: {ct}\nerror: Error while processing node\n",
                "content": "The content you submitted contains sensitive information (NSFW) and was blocked",
                "transitory": "worker lost, please retry later",
            }.get(kind, "workflow execution failed")
            out["failedInfo"] = {"reason": reason, "code": "TRANSITORY_ERROR" if kind == "transitory" else "FATAL_ERROR"}
            if not self.legacy_shape:
                out["runningInfo"] = None
        return out

    # ------------------------------------------------------------------ templates, models
    async def get_template(self, request: web.Request, body: dict, app: str) -> dict:
        tid = request.match_info["templateId"]
        tpl = self.templates.get(tid)
        if tpl is None:
            raise RpcError(5, "template not found")
        attrs = [{"nodeId": nid, "fieldName": f, "fieldValue": str(tpl["graph"][nid][1].get(f, ""))}
                 for nid, f in tpl["fields"]]
        return {"templateId": tid, "name": tpl["name"], "fields": {"fieldAttrs": attrs}}

    async def get_model(self, request: web.Request, body: dict, app: str) -> dict:
        mid = request.match_info["modelId"]
        if not mid.isdigit():
            raise RpcError(5, "model not found")
        return {"model": {"id": mid, "name": f"model {mid}", "description": "", "baseModel": "SD 1.5",
                          "modelType": "CHECKPOINT", "showcaseImageUrls": [], "projectName": "fake"}}

    # ------------------------------------------------------------------ uploads
    async def create_resource(self, request: web.Request, body: dict, app: str) -> dict:
        expire = int64(pj(body, "expireSec") if pj(body, "expireSec") is not None else 3600, "expireSec")
        term = pj(body, "term")
        if term is not None and int64(term, "term") not in (0, 1, 2):
            raise RpcError(3, "term must be 1 (short) or 2 (long)")
        rid = str(uuid.uuid4())
        exp = int(self.unix_now() + 900)
        sig = hmac.new(self._file_secret, f"put:{rid}:{exp}".encode(), hashlib.sha256).hexdigest()[:32]
        headers = {"Content-Type": "application/octet-stream",
                   "x-oss-callback": base64.b64encode(json.dumps({"resourceId": rid}).encode()).decode(),
                   "x-oss-meta-expire-sec": str(expire)}
        self.resources[rid] = {"headers": headers, "data": None, "exp": exp}
        return {"resourceId": rid, "putUrl": f"{self.url}/_oss/{rid}?Expires={exp}&OSSAccessKeyId=fake&Signature={sig}",
                "headers": headers}

    async def create_resource_sts(self, request: web.Request, body: dict, app: str) -> dict:
        rid = str(uuid.uuid4())
        self.resources[rid] = {"headers": {}, "data": None, "exp": int(self.unix_now() + 900)}
        return {"resourceId": rid, "accessId": "fake", "signature": "fake", "host": self.url,
                "expire": str(int(self.unix_now() + 900)), "callback": "", "filePath": f"_oss/{rid}",
                "policy": "", "securityToken": ""}

    async def put_object(self, request: web.Request) -> web.Response:
        rid = request.match_info["resourceId"]
        res = self.resources.get(rid)
        if res is None or int(request.query.get("Expires", "0") or 0) < self.unix_now():
            return _oss_error(403, "AccessDenied", "Request has expired or the resource is unknown.")
        for k, v in res["headers"].items():
            if request.headers.get(k) != v:
                return _oss_error(403, "SignatureDoesNotMatch",
                                  f"The request signature we calculated does not match: header {k}")
        if "Authorization" in request.headers:
            return _oss_error(400, "InvalidArgument", "Presigned requests must not carry Authorization.")
        data = await request.read()
        if not data:
            return _oss_error(400, "InvalidArgument", "empty body")
        res["data"] = data
        return json_response({"Status": "OK"})

    async def get_file(self, request: web.Request) -> web.Response:
        rid = request.match_info["name"].rsplit(".", 1)[0]
        png = self.files.get(rid)
        try:
            exp = int(request.query.get("Expires", "0"))
        except ValueError:
            exp = 0
        good = hmac.new(self._file_secret, f"{rid}:{exp}".encode(), hashlib.sha256).hexdigest()[:32]
        if png is None:
            return _oss_error(404, "NoSuchKey", "The specified key does not exist.")
        if exp <= self._revoked or exp < self.unix_now() or not hmac.compare_digest(good, request.query.get("Signature", "")):
            return _oss_error(403, "AccessDenied", "Request has expired.")
        return web.Response(body=png, content_type=self.file_types.get(rid, "image/png"))


def _oss_error(status: int, code: str, message: str) -> web.Response:
    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
           f"<RequestId>{uuid.uuid4().hex[:24].upper()}</RequestId></Error>")
    return web.Response(text=xml, status=status, content_type="application/xml")
