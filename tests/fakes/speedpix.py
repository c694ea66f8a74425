"""A faithful fake of Alibaba Cloud Intelligent Production Workshop ("SpeedPix"), built from
``shared/providers/speedpix.md`` only (it never imports the extension).

What it is:
- the API gateway: Alibaba digest auth re-derived here (HmacSHA256 over method, Accept, Content-MD5,
  Content-Type, Date, the sorted ``x-ca-signature-headers`` and the path), a ±15 min
  ``x-ca-timestamp`` window, ``x-ca-nonce`` replay refusal, Content-MD5 checked against the bytes
  received when present (``strict_md5``), refusals as HTTP 4xx with ``X-Ca-Error-Message``;
- the four POST-only calls (``/scc/comfy_prompt``, ``comfy_get_progress``, ``comfy_get_result``,
  ``sp_create_temp_file_upload_sign``) answering HTTP 200 with the ``status: 10|20`` envelope;
- a published-workflow catalogue (``workflows``) with typed input fields, versions and aliases;
- tasks driven by ``self.clock``: ``waiting`` for ``queue_s`` → ``running`` for ``run_s`` through
  CheckpointLoader → CLIPTextEncode → KSampler (``steps`` steps) → VAEDecode → SaveImage →
  ``succeeded`` | ``failed``;
- an OSS-like bucket under ``/oss/``: presigned ``PUT`` targets for uploads (an hour), presigned
  ``GET`` result URLs that expire after ``url_ttl_s`` by the bucket's clock, and access URLs of
  temporary uploads that last ``temp_ttl_s`` (a day, INFERRED); every ``comfy_get_result`` signs
  fresh URLs. ``expire_urls()`` moves the bucket's clock past every URL handed out so far.

Knobs: ``hold``/``release()`` (keep new tasks waiting until released), ``node_error_next`` (next
task fails in KSampler), ``content_safety_next`` ("input": refused at submit; "output": fails at the
end), ``service_error(api, code, msg, times)`` (scripted status-20 answers), ``wall_offset_s`` (the
gateway's and the bucket's clock), ``expire_urls(next_answers)``, ``strict_inputs``, ``strict_md5``;
HTTP faults via
``self.faults`` on route names ``comfy_prompt``, ``comfy_get_progress``, ``comfy_get_result``,
``sp_create_temp_file_upload_sign``, ``oss_put``, ``oss_get``.

INFERRED here (no source shows them): the codes ``P_Request_ParamInvalid``,
``B_WORKFLOW_NotFound``, ``B_WORKFLOW_VersionNotFound``, ``B_COMPUTING_ExecutionError``; the
pairing errCode = subErrCode; ``comfy_get_result`` on an unfinished task answering status 10 with
its current status; ``lastQueueRemaining`` counting the waiting tasks up to and including this one;
the lifetime of temporary uploads (a day; an expired one is refused by ``comfy_prompt``).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import quote, unquote, urlsplit, parse_qs

from aiohttp import web

from .. import media_samples as ms
from .toolkit import Clock, FakeServer, json_response, png_bytes

APIS = ("comfy_prompt", "comfy_get_progress", "comfy_get_result", "sp_create_temp_file_upload_sign")
JSON_CT = "application/json; charset=utf-8"
WINDOW_S = 15 * 60
CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
# the run: (class, node id, share of run_s)
MEDIA_FIELDS = ("video", "audio", "file")  # the file inputs wf_media_echo saves back as its outputs
CTYPES = {"png": "image/png", "mp4": "video/mp4", "flac": "audio/flac", "wav": "audio/wav", "glb": "model/gltf-binary"}
NODES = (("CheckpointLoaderSimple", "4", 0.1), ("CLIPTextEncode", "6", 0.1), ("KSampler", "3", 0.6),
         ("VAEDecode", "8", 0.1), ("SaveImage", "9", 0.1))


def ulid(ms: int) -> str:
    """Lower-case 26-char ULID: 48-bit ms time + 80 random bits, Crockford base32."""
    n = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(CROCKFORD[(n >> (5 * i)) & 31] for i in reversed(range(26)))


def invoke_id() -> str:
    """``i_`` + a Mongo ObjectId: 4 bytes unix time + 8 random bytes, hex."""
    return "i_" + f"{int(time.time()):08x}" + secrets.token_hex(8)


def colour_for(text: str) -> tuple[int, int, int]:
    d = hashlib.sha256(text.encode()).digest()
    return d[0], d[1], d[2]


def envelope(data: Any = None, code: Optional[str] = None, message: Optional[str] = None,
             **extra: Any) -> dict:
    env = {"status": 10 if code is None else 20, "apiInvokeId": invoke_id(), "data": data,
           "errCode": code, "errMessage": message, "subErrCode": code, "subErrMessage": message}
    env.update(extra)
    return env


@dataclass
class Published:
    """A workflow published as an API: typed input fields, versions, aliases."""

    id: str
    kind: str  # solid | multi | echo | video | media_echo
    fields: dict  # name -> (type, default); type in string|int|float|bool|image|video|audio|file
    versions: tuple = ("v1", "v2")
    aliases: dict = field(default_factory=lambda: {"main": "v2", "stable": "v1"})
    run_factor: float = 1.0


def default_workflows() -> dict[str, Published]:
    solid = {"prompt": ("string", "a cat"), "negative": ("string", ""), "steps": ("int", 20),
             "cfg": ("float", 1.5), "denoise": ("float", 1.0), "width": ("int", 16), "height": ("int", 16),
             "seed": ("int", 0), "tiled": ("bool", False)}
    return {
        "wf_solid": Published("wf_solid", "solid", solid),
        "wf_multi": Published("wf_multi", "multi", {"prompt": ("string", "two cats"), "seed": ("int", 0)}),
        "wf_echo": Published("wf_echo", "echo", {"image": ("image", None), "prompt": ("string", "")}),
        "wf_slow": Published("wf_slow", "solid", dict(solid), run_factor=40.0),
        # custom outputs of file types (video with and without sound, audio, a .glb) and text fields
        "wf_video": Published("wf_video", "video", {"prompt": ("string", "a fox"), "seed": ("int", 0)}),
        "wf_media_echo": Published("wf_media_echo", "media_echo", {k: (k, None) for k in MEDIA_FIELDS}),
    }


@dataclass
class Task:
    id: str
    workflow: Published
    version: str
    inputs: dict
    created: float  # fake clock
    created_wall_ms: int
    resource_config: str
    queue_s: float
    run_s: float
    steps: int
    node_error: Optional[tuple] = None  # (node id, class, text)
    unsafe_output: bool = False
    held: bool = False  # kept waiting until FakeSpeedPix.release()
    seq: int = 0  # submission order (ties of a frozen clock)
    outputs: Optional[dict] = None  # {"images": [...], "result": {...}} once built


class FakeSpeedPix(FakeServer):
    name = "speedpix"

    def credentials(self) -> dict:
        key, secret = next(iter(self.apps.items()))
        return {"SPEEDPIX_ENDPOINT": self.url, "SPEEDPIX_APP_KEY": key, "SPEEDPIX_APP_SECRET": secret}

    def __init__(self, *, clock: Optional[Clock] = None, port: int = 0, app_key: str = "test-app-key",
                 app_secret: str = "test-app-secret", queue_s: float = 0.3, run_s: float = 0.6, steps: int = 4):
        self.apps = {app_key: app_secret}
        self.queue_s, self.run_s, self.steps = queue_s, run_s, steps
        self.workflows = default_workflows()
        self.tasks: dict[str, Task] = {}
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.nonces: dict[str, float] = {}
        self.wall_offset_s = 0.0
        self.strict_md5 = True
        self.strict_inputs = True
        self.url_ttl_s = 3600.0  # result URLs (INFERRED: OSS signed URLs, hours)
        self.temp_ttl_s = 24 * 3600.0  # temporary uploads and their access URLs (INFERRED: a day)
        self.bucket_skew_s = 0.0  # the bucket's clock ahead of the gateway's (expire_urls)
        self.stale_results = 0  # comfy_get_result answers still to hand out already-expired URLs
        self.node_error_next: Optional[tuple] = None
        self.content_safety_next: Optional[str] = None
        self.auth_failures: list[str] = []
        self.hold = False  # new tasks stay ``waiting`` until release() (deterministic queue tests)
        self._scripted: dict[str, list[list]] = {}
        self._oss_secret = secrets.token_bytes(16)
        super().__init__(clock=clock, port=port)

    # ------------------------------------------------------------------ routes
    def setup_routes(self, router: web.UrlDispatcher) -> None:
        for api in APIS:
            router.add_post(f"/scc/{api}", self._api, name=api)
        router.add_route("*", "/scc/{tail:.*}", self._unknown, name="scc_other")
        router.add_put("/oss/{key:.+}", self._oss_put, name="oss_put")
        router.add_get("/oss/{key:.+}", self._oss_get, name="oss_get")

    def service_error(self, api: str, code: str, message: str, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``api`` (after auth) with a status-20 envelope."""
        self._scripted.setdefault(api, []).append([code, message, times])

    def wall(self) -> float:
        return time.time() + self.wall_offset_s

    def bucket_now(self) -> float:
        return self.wall() + self.bucket_skew_s

    def expire_urls(self, next_answers: int = 0) -> None:
        """Every result URL handed out so far has expired (the bucket's clock passes their
        ``Expires``); the next ``next_answers`` ``comfy_get_result`` answers hand out URLs that are
        already expired too (a client that took too long), later answers fresh ones that work."""
        self.bucket_skew_s += self.url_ttl_s + 1
        self.stale_results = next_answers

    def finished(self, task_id: str) -> bool:
        """The task has ended on the service (its result, or its failure, can be read)."""
        task = self.tasks.get(task_id)
        return task is not None and self.phase(task)["status"] in ("succeeded", "failed")

    # ------------------------------------------------------------------ gateway
    def _refuse(self, status: int, message: str) -> web.Response:
        self.auth_failures.append(message)
        return web.Response(status=status, headers={"X-Ca-Request-Id": str(uuid.uuid4()).upper(),
                                                    "X-Ca-Error-Message": message})

    def _verify(self, request: web.Request, body: bytes) -> Optional[web.Response]:
        """The gateway's digest-auth check, derived from the facts (not from the client)."""
        h = request.headers
        key = h.get("x-ca-key", "")
        secret = self.apps.get(key)
        if not key or secret is None:
            return self._refuse(400, "Invalid AppKey")
        given = h.get("x-ca-signature", "")
        if not given:
            return self._refuse(401, "Empty Signature")
        names = sorted({n.strip().lower() for n in h.get("x-ca-signature-headers", "").split(",") if n.strip()})
        parts = [request.method, h.get("Accept", ""), h.get("Content-MD5", ""), h.get("Content-Type", ""),
                 h.get("Date", "")]
        parts += [f"{n}:{h.get(n, '')}" for n in names]
        parts.append(request.path + (f"?{request.query_string}" if request.query_string else ""))
        server_sts = "\n".join(parts)
        want = base64.b64encode(hmac.new(secret.encode(), server_sts.encode(), hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(want, given):
            return self._refuse(400, "Invalid Signature, Server StringToSign:" + server_sts.replace("\n", "#"))
        ts = h.get("x-ca-timestamp", "")
        if "x-ca-timestamp" not in names or not ts.isdigit():
            return self._refuse(400, "Invalid Timestamp")
        if abs(int(ts) / 1000.0 - self.wall()) > WINDOW_S:
            return self._refuse(400, "Timestamp Expired")
        nonce = h.get("x-ca-nonce")
        if nonce:
            now = self.wall()
            for n, t in list(self.nonces.items()):
                if now - t > WINDOW_S:
                    del self.nonces[n]
            if nonce in self.nonces:
                return self._refuse(400, "Nonce Used")
            self.nonces[nonce] = now
        md5 = h.get("Content-MD5")
        if md5 and self.strict_md5 and base64.b64encode(hashlib.md5(body).digest()).decode() != md5:
            return self._refuse(400, "Invalid Content-MD5")
        return None

    async def _unknown(self, request: web.Request) -> web.Response:
        body = await request.read()
        refused = self._verify(request, body)
        if refused is not None:
            return refused
        if request.path.rsplit("/", 1)[-1] in APIS:
            return self._refuse(400, "Invalid HttpMethod")
        return self._refuse(400, "Invalid Url")

    async def _api(self, request: web.Request) -> web.Response:
        body = await request.read()
        refused = self._verify(request, body)
        if refused is not None:
            return refused
        if not body:
            return self._refuse(400, "Empty Request Body")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return self._refuse(400, "Invalid Request Body")
        if not isinstance(payload, dict):
            return self._refuse(400, "Invalid Request Body")
        api = request.path.rsplit("/", 1)[-1]
        for entry in self._scripted.get(api, []):
            if entry[2] != 0:
                entry[2] -= 1
                return json_response(envelope(None, entry[0], entry[1]))
        handler = getattr(self, f"_do_{api}")
        return json_response(handler(request, payload))

    # ------------------------------------------------------------------ APIs
    def _do_comfy_prompt(self, request: web.Request, p: dict) -> dict:
        bad = "P_Request_ParamInvalid"
        wid = p.get("workflow_id")
        if not isinstance(wid, str) or not wid:
            return envelope(None, bad, "workflow_id is required")
        wf = self.workflows.get(wid)
        if wf is None:
            return envelope(None, "B_WORKFLOW_NotFound", f"Cannot find workflow:{wid}")
        alias, version = p.get("alias_id"), p.get("version_id")
        for name, v in (("alias_id", alias), ("version_id", version)):
            if v is not None and not isinstance(v, str):
                return envelope(None, bad, f"{name} must be a string")
        if version:
            if version not in wf.versions:
                return envelope(None, "B_WORKFLOW_VersionNotFound", f"Cannot find version:{version} of workflow:{wid}")
        elif alias:
            if alias not in wf.aliases:
                return envelope(None, "B_WORKFLOW_VersionNotFound", f"Cannot find alias:{alias} of workflow:{wid}")
            version = wf.aliases[alias]
        else:
            return envelope(None, bad, "one of alias_id or version_id is required")
        for flag in ("randomise_seeds", "return_temp_files"):
            if p.get(flag) is not None and not isinstance(p.get(flag), bool):
                return envelope(None, bad, f"{flag} must be a boolean")
        inputs = p.get("inputs")
        if not isinstance(inputs, dict):
            return envelope(None, bad, "inputs is required")
        values = {name: default for name, (_t, default) in wf.fields.items()}
        for name, value in inputs.items():
            spec = wf.fields.get(name)
            if spec is None:
                if self.strict_inputs:
                    return envelope(None, bad, f"unknown input field '{name}'; published fields: "
                                    + ", ".join(wf.fields))
                continue
            problem = _type_problem(spec[0], value)
            if problem:
                return envelope(None, bad, f"input field '{name}' {problem}")
            values[name] = value
        if any(isinstance(v, str) and "UNSAFE" in v for v in values.values()) or self.content_safety_next == "input":
            self.content_safety_next = None
            return envelope(None, "P_Request_ContentSafe", "The content is non-compliant.")
        for name in ("image",) if wf.kind == "echo" else MEDIA_FIELDS if wf.kind == "media_echo" else ():
            if self._load(values.get(name)) is None:
                return envelope(None, bad, f"input field '{name}' is not a readable file URL or data URI")
        now_ms = int(self.wall() * 1000)
        task = Task(ulid(now_ms), wf, version, values, self.clock.now(), now_ms,
                    request.headers.get("X-SP-RESOURCE-CONFIG-ID", "default"), self.queue_s,
                    self.run_s * wf.run_factor, self.steps)
        task.held, task.seq = self.hold, len(self.tasks)
        if self.node_error_next:
            task.node_error, self.node_error_next = self.node_error_next, None
        if self.content_safety_next == "output":
            task.unsafe_output, self.content_safety_next = True, None
        self.tasks[task.id] = task
        return envelope({"taskId": task.id, "status": "waiting",
                         "estimatedDurationInSeconds": float(task.queue_s + task.run_s)})

    def _task(self, p: dict) -> tuple[Optional[Task], Optional[dict]]:
        tid = p.get("taskId")
        if not isinstance(tid, str) or not tid:
            return None, envelope(None, "P_Request_ParamInvalid", "taskId is required")
        task = self.tasks.get(tid)
        if task is None:
            return None, envelope(None, "B_COMPUTING_CanNotFindTask", f"Cannot find task:{tid}")
        return task, None

    def phase(self, task: Task) -> dict:
        """Where the task is now: status, progress, node, step, eta, error."""
        t = self.clock.now() - task.created
        if task.held or t < task.queue_s:
            ahead = sum(1 for o in self.tasks.values()
                        if o.seq <= task.seq and (o.held or self.clock.now() - o.created < o.queue_s))
            if task.held:
                return {"status": "waiting", "queue": max(1, ahead), "eta": task.queue_s + task.run_s}
            return {"status": "waiting", "queue": max(1, ahead), "eta": task.queue_s - t + task.run_s}
        r = t - task.queue_s
        start = 0.0
        for cls, nid, share in NODES:
            span = share * task.run_s
            if task.node_error and cls == task.node_error[1] and r >= start:
                return {"status": "failed", "error": ("B_COMPUTING_ExecutionError", task.node_error[2]),
                        "end": task.queue_s + start}
            if r < start + span:
                frac = (r - start) / span if span > 0 else 1.0
                step, max_steps = (min(task.steps, int(frac * task.steps) + 1), task.steps) if cls == "KSampler" \
                    else (1, 1)
                return {"status": "running", "progress": min(0.999, r / task.run_s), "node": cls, "step": step,
                        "max": max_steps, "eta": task.run_s - r}
            start += span
        if task.unsafe_output:
            return {"status": "failed", "error": ("P_Request_ContentSafe", "The content is non-compliant."),
                    "end": task.queue_s + task.run_s}
        return {"status": "succeeded", "end": task.queue_s + task.run_s}

    def _do_comfy_get_progress(self, request: web.Request, p: dict) -> dict:
        task, err = self._task(p)
        if err:
            return dict(err, startTime=None, endTime=None)
        ph = self.phase(task)
        data: dict[str, Any] = {"taskId": task.id, "status": ph["status"]}
        if ph["status"] == "waiting":
            data.update(etaRelative=round(ph["eta"], 3), lastQueueRemaining=ph["queue"], progress=0)
        elif ph["status"] == "running":
            data.update(etaRelative=round(ph["eta"], 3), lastQueueRemaining=0, progress=round(ph["progress"], 4),
                        message="running", state={"nodeLabel": ph["node"], "step": ph["step"], "maxSteps": ph["max"]})
        else:
            data.update(etaRelative=0, lastQueueRemaining=0, progress=1 if ph["status"] == "succeeded" else 0,
                        message=ph["error"][1] if ph["status"] == "failed" else "")
        return envelope(data, startTime=None, endTime=None)

    def _do_comfy_get_result(self, request: web.Request, p: dict) -> dict:
        task, err = self._task(p)
        if err:
            return err
        ph = self.phase(task)
        if ph["status"] == "failed":
            return envelope(None, *ph["error"])
        if ph["status"] != "succeeded":
            return envelope({"taskId": task.id, "status": ph["status"], "images": [], "result": {}})
        begin = task.created_wall_ms + int(task.queue_s * 1000)
        end = task.created_wall_ms + int(ph["end"] * 1000)
        out = self._outputs(request, task)
        return envelope({"result": out["result"], "images": out["images"], "taskDuration": end - begin,
                         "taskBeginTime": begin, "taskId": task.id, "status": "succeeded", "taskEndTime": end})

    def _do_sp_create_temp_file_upload_sign(self, request: web.Request, p: dict) -> dict:
        ct, name = p.get("contentType"), p.get("originalFilename")
        if not isinstance(ct, str) or not ct or not isinstance(name, str) or not name:
            return envelope(None, "P_Request_ParamInvalid", "contentType and originalFilename are required")
        key = f"comfy/temp/{uuid.uuid4().hex}/{name.replace('/', '_')}"
        expires = int(self.bucket_now() + 3600)
        return envelope({"uploadUrl": self.presign(request, "PUT", key, ct, expires), "objectKey": key,
                         "path": key, "expireTime": expires * 1000,
                         "accessUrl": self.presign(request, "GET", key, "", int(self.bucket_now() + self.temp_ttl_s))})

    # ------------------------------------------------------------------ results
    def _outputs(self, request: web.Request, task: Task) -> dict:
        if task.outputs is None:
            v, wf = task.inputs, task.workflow
            files: list[tuple[str, bytes, int, int]] = []  # (name, bytes, w, h)
            if wf.kind == "echo":
                data, _mime = self._load(v.get("image"))
                files.append((f"{task.id}_echo_00000_.png", data, *_image_size(data)))
            elif wf.kind == "multi":
                rgb = colour_for(str(v.get("prompt")))
                files.append((f"{task.id}_00000_.png", png_bytes(rgb, (16, 16)), 16, 16))
                inv = tuple(255 - c for c in rgb)
                files.append((f"{task.id}_00001_.png", png_bytes(inv, (16, 16)), 16, 16))  # type: ignore[arg-type]
            elif wf.kind == "video":
                for part, sample in (("video", ms.mp4(sound=True)), ("silent", ms.mp4()), ("audio", ms.flac()),
                                     ("mesh", ms.glb())):
                    files.append((f"{task.id}_{part}_00000_.{sample.name.rsplit('.', 1)[-1]}", sample.data,
                                  sample.width, sample.height))
            elif wf.kind == "media_echo":  # each uploaded file saved back under its own extension
                for name in MEDIA_FIELDS:
                    data, _mime = self._load(v.get(name))
                    ext = unquote(urlsplit(v[name]).path).rsplit(".", 1)[-1]
                    files.append((f"{task.id}_{name}_00000_.{ext}", data, 0, 0))
            else:
                w, h = (max(1, min(512, int(v.get(k) or 16))) for k in ("width", "height"))
                files.append((f"{task.id}_00000_.png", png_bytes(colour_for(str(v.get("prompt"))), (w, h)), w, h))
            for name, data, _w, _h in files:
                self.objects[f"comfy/output/{name}"] = (data, CTYPES.get(name.rsplit(".", 1)[-1],
                                                                         "application/octet-stream"))
            task.outputs = {"files": files}
        files = task.outputs["files"]
        exp = int(self.bucket_now() + self.url_ttl_s)
        if self.stale_results > 0:  # signed long ago: expired when it arrives
            self.stale_results -= 1
            exp = int(self.bucket_now()) - 1
        urls = [self.presign(request, "GET", f"comfy/output/{n}", "", exp) for n, *_ in files]

        def obj(i: int) -> dict:  # common url/type + the type's own fields (sizes for pictures)
            name, _d, w, h = files[i]
            out = {"filename": name, "object_key": f"comfy/output/{name}", "format": name.rsplit(".", 1)[-1],
                   "subfolder": "", "type": "output", "url": urls[i]}
            return {**out, "width": w, "height": h} if w else out

        wf = task.workflow
        if wf.kind == "video":  # no image among the outputs: the default list is empty
            return {"images": [], "result": {"video": obj(0), "silent": obj(1), "soundtrack": obj(2), "mesh": obj(3),
                                             "caption": str(task.inputs.get("prompt")), "seed": task.inputs.get("seed")}}
        if wf.kind == "media_echo":
            return {"images": [], "result": {name: obj(i) for i, name in enumerate(MEDIA_FIELDS)}}
        if wf.kind == "echo":
            return {"images": [], "result": {"image": obj(0)}}
        if wf.kind == "multi":
            return {"images": urls, "result": {}}
        return {"images": urls, "result": {"poster": obj(0), "caption": str(task.inputs.get("prompt")),
                                           "seed": task.inputs.get("seed"),
                                           "score": round(float(task.inputs.get("cfg") or 0) / 2, 3)}}

    def _load(self, value: Any) -> Optional[tuple[bytes, str]]:
        """An input file: an access URL of this bucket or a data URI."""
        if not isinstance(value, str):
            return None
        if value.startswith("data:") and ";base64," in value:
            head, _, b64 = value.partition(";base64,")
            try:
                return base64.b64decode(b64, validate=True), head[5:] or "application/octet-stream"
            except ValueError:
                return None
        parts = urlsplit(value)
        if not parts.path.startswith("/oss/"):
            return None
        key = unquote(parts.path[len("/oss/"):])
        q = parse_qs(parts.query)
        if not self._signed_ok("GET", key, "", q) or int(q["Expires"][0]) < self.bucket_now():
            return None  # not ours, or the temporary file has expired
        return self.objects.get(key)

    # ------------------------------------------------------------------ OSS-like bucket
    def _sig(self, method: str, key: str, content_type: str, expires: int) -> str:
        text = f"{method}\n\n{content_type}\n{expires}\n/speed-pix-fake/{key}"
        return base64.b64encode(hmac.new(self._oss_secret, text.encode(), hashlib.sha1).digest()).decode()

    def presign(self, request: Optional[web.Request], method: str, key: str, content_type: str, expires: int) -> str:
        base = self.url or (f"{request.scheme}://{request.host}" if request is not None else "")
        sig = quote(self._sig(method, key, content_type, expires), safe="")
        return f"{base}/oss/{quote(key)}?OSSAccessKeyId=LTAIfakeaccesskey&Expires={expires}&Signature={sig}"

    def _signed_ok(self, method: str, key: str, content_type: str, q: Any) -> bool:
        def one(name: str) -> str:
            v = q.get(name)
            return (v[0] if isinstance(v, list) else v) or ""
        exp = one("Expires")
        return exp.isdigit() and hmac.compare_digest(one("Signature"), self._sig(method, key, content_type, int(exp)))

    def _oss_error(self, status: int, code: str, message: str) -> web.Response:
        xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n  <Code>{code}</Code>\n  <Message>{message}'
               f'</Message>\n  <RequestId>{uuid.uuid4().hex[:24].upper()}</RequestId>\n</Error>\n')
        return web.Response(status=status, text=xml, content_type="application/xml")

    def _oss_check(self, request: web.Request, method: str, key: str, ct: str) -> Optional[web.Response]:
        if not self._signed_ok(method, key, ct, request.query):
            return self._oss_error(403, "SignatureDoesNotMatch",
                                   "The request signature we calculated does not match the signature you provided.")
        if int(request.query["Expires"]) < self.bucket_now():
            return self._oss_error(403, "AccessDenied", "Request has expired.")
        return None

    async def _oss_put(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        ct = request.headers.get("Content-Type", "")
        refused = self._oss_check(request, "PUT", key, ct)
        if refused is not None:
            return refused
        if request.headers.get("Content-Length") is None:  # OSS takes no chunked upload
            return self._oss_error(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
        data = await request.read()
        self.objects[key] = (data, ct)
        return web.Response(status=200, headers={"ETag": '"' + hashlib.md5(data).hexdigest().upper() + '"'})

    async def _oss_get(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        refused = self._oss_check(request, "GET", key, "")
        if refused is not None:
            return refused
        if key not in self.objects:
            return self._oss_error(404, "NoSuchKey", "The specified key does not exist.")
        data, ct = self.objects[key]
        return web.Response(body=data, content_type=ct.split(";")[0] or "application/octet-stream")

    # ------------------------------------------------------------------ test helpers
    def task_count(self) -> int:
        return len(self.tasks)

    def release(self) -> None:
        """Let held tasks leave the queue now (and new ones queue normally)."""
        self.hold = False
        for t in self.tasks.values():
            if t.held:
                t.held = False
                t.created = self.clock.now() - t.queue_s


def _image_size(data: bytes) -> tuple[int, int]:
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:  # not an image: the service would still copy it
        return 0, 0


def _type_problem(kind: str, value: Any) -> Optional[str]:
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind == "bool":
        ok = isinstance(value, bool)
    else:  # string, image (URL or data URI)
        ok = isinstance(value, str)
    return None if ok else f"expects {kind}, got {type(value).__name__}"
