"""The baseline: a direct aiohttp client per service doing the same calls as the pack (create, look,
result list, download, save), with no engine — no journal, no budget, no retries. Services without a
push channel are looked at every ``DIRECT_POLL_S`` (inside TAMS's 5 QPS for one task).
"""
from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Awaitable, Callable

import aiohttp

from comfyui_remote.providers.speedpix_wire import sign_request

from .services import KEY, Service

DIRECT_POLL_S = 0.25
OnRemote = Callable[[str], None]


async def _save(s: aiohttp.ClientSession, url: str, dest: Path, **kw) -> None:
    async with s.get(url, **kw) as r:
        r.raise_for_status()
        body = await r.read()
    await asyncio.to_thread(dest.write_bytes, body)


async def tensorart(s: aiohttp.ClientSession, svc: Service, tag: str, dest: Path, on_remote: OnRemote) -> None:
    h = {"Authorization": f"Bearer {KEY}"}
    wf, overrides = svc.workflow(tag)
    overrides.append(("int", "7.height", 16))  # the template's fields the engine fills from get_template
    fields = [{"nodeId": t.split(".")[0], "fieldName": t.split(".")[1], "fieldValue": str(v)} for _, t, v in overrides]
    async with s.post(f"{svc.fake.url}/v1/jobs/workflow/template", headers=h,
                      json={"requestId": str(uuid.uuid4()), "templateId": wf, "fields": {"fieldAttrs": fields}}) as r:
        jid = (await r.json())["job"]["id"]
    on_remote(jid)
    while True:
        await asyncio.sleep(DIRECT_POLL_S)
        async with s.get(f"{svc.fake.url}/v1/jobs/{jid}", headers=h) as r:
            job = (await r.json())["job"]
        if job["status"] == "SUCCESS":
            break
        assert job["status"] in ("CREATED", "WAITING", "RUNNING"), job
    await _save(s, job["successInfo"]["images"][0]["url"], dest)


async def speedpix(s: aiohttp.ClientSession, svc: Service, tag: str, dest: Path, on_remote: OnRemote) -> None:
    prof = svc.profile()

    async def call(path: str, payload: dict) -> dict:
        body = json.dumps(payload).encode()
        hd = sign_request(prof["app_key"], prof["app_secret"], path, body, now_ms=int(time.time() * 1000),
                          nonce=str(uuid.uuid4()))
        async with s.post(svc.fake.url + path, data=body, headers=hd) as r:
            return (await r.json())["data"]

    wf, overrides = svc.workflow(tag)
    data = await call("/scc/comfy_prompt", {"workflow_id": wf, "alias_id": "main",
                                            "inputs": {t: v for _, t, v in overrides}})
    tid = data["taskId"]
    on_remote(tid)
    while True:
        await asyncio.sleep(DIRECT_POLL_S)
        status = (await call("/scc/comfy_get_progress", {"taskId": tid}))["status"]
        if status == "succeeded":
            break
        assert status in ("waiting", "running", "queued"), status
    result = await call("/scc/comfy_get_result", {"taskId": tid})
    await _save(s, result["images"][0], dest)


async def runninghub(s: aiohttp.ClientSession, svc: Service, tag: str, dest: Path, on_remote: OnRemote) -> None:
    wf, overrides = svc.workflow(tag)
    infos = [{"nodeId": t.split(".")[0], "fieldName": t.split(".")[1], "fieldValue": str(v)} for _, t, v in overrides]
    async with s.post(f"{svc.fake.url}/task/openapi/create",
                      json={"apiKey": KEY, "workflowId": wf, "nodeInfoList": infos}) as r:
        tid = (await r.json())["data"]["taskId"]
    on_remote(tid)
    while True:
        await asyncio.sleep(DIRECT_POLL_S)
        async with s.post(f"{svc.fake.url}/task/openapi/outputs", json={"apiKey": KEY, "taskId": tid}) as r:
            answer = await r.json()
        if answer["code"] == 0 and answer["data"]:
            break
        assert answer["code"] in (804, 813), answer  # running, queued
    await _save(s, answer["data"][0]["fileUrl"], dest)


async def comfyui(s: aiohttp.ClientSession, svc: Service, tag: str, dest: Path, on_remote: OnRemote) -> None:
    """ComfyUI's own client pattern: one WebSocket, the prompt, its end frame, /history, /view."""
    h = {"Authorization": f"Bearer {KEY}"}
    wf, overrides = svc.workflow(tag)
    graph = _graph(wf, overrides)
    cid = uuid.uuid4().hex
    url = svc.fake.url
    async with s.ws_connect(f"{url}/ws?clientId={cid}", headers=h) as ws:
        async with s.post(f"{url}/prompt", headers=h, json={"prompt": graph, "client_id": cid}) as r:
            pid = (await r.json())["prompt_id"]
        on_remote(pid)
        async for msg in ws:
            data = json.loads(msg.data) if msg.type == aiohttp.WSMsgType.TEXT else {}
            if data.get("type") == "execution_success" and data["data"]["prompt_id"] == pid:
                break
    async with s.get(f"{url}/history/{pid}", headers=h) as r:
        hist = await r.json()
    img = next(o["images"][0] for o in hist[pid]["outputs"].values() if o.get("images"))
    await _save(s, f"{url}/view", dest, headers=h, params=img)


async def comfycloud(s: aiohttp.ClientSession, svc: Service, tag: str, dest: Path, on_remote: OnRemote) -> None:
    """Comfy API v2: POST /jobs, GET the job's ``urls.self`` until it ends, fetch the output's url."""
    h = {"Authorization": f"Bearer {KEY}"}
    wf, overrides = svc.workflow(tag)
    graph = _graph(wf, overrides)
    base = svc.fake.url
    async with s.post(f"{base}/api/v2/jobs", headers=h, json={"workflow": graph}) as r:
        job = await r.json()
    on_remote(job["id"])
    link = job["urls"]["self"]
    while True:
        await asyncio.sleep(DIRECT_POLL_S)
        async with s.get(link if link.startswith("http") else base + link, headers=h) as r:
            job = await r.json()
        if job["status"] == "succeeded":
            break
        assert job["status"] in ("queued", "running"), job["status"]
    await _save(s, job["outputs"][0]["url"], dest)


async def nextgpu(s: aiohttp.ClientSession, svc: Service, tag: str, dest: Path, on_remote: OnRemote) -> None:
    """nextGPU: /session/publish with a client-chosen taskID, /backend/getTask until completed (3),
    the first sub-task's first url."""
    h = {"Authorization": f"Bearer {KEY}"}
    title, overrides = svc.workflow(tag)
    task_id = "nextGPU" + time.strftime("%Y%m%d%H%M%S") + f"{uuid.uuid4().int % 10**8:08d}"
    body = {"userName": KEY, "title": title, "inputType": "text", "inputImageScaledRatio": 8, "imageCount": 1,
            "imagePath": time.strftime("%Y/%m"), "taskID": task_id,
            "data": {"parameters": {t: v for _, t, v in overrides}}}
    async with s.post(f"{svc.fake.url}/session/publish", headers=h, json=body) as r:
        assert (await r.json())["taskID"] == task_id
    on_remote(task_id)
    while True:
        await asyncio.sleep(DIRECT_POLL_S)
        async with s.post(f"{svc.fake.url}/backend/getTask", headers=h, json={"taskID": task_id}) as r:
            task = (await r.json())["task"]
        if task["state"] == 3:
            break
        assert task["state"] in (0, 1, 2), task["state"]
    await _save(s, str(task["subTasks"][0]["urls"]).split("\n")[0].strip(), dest)


def _graph(wf: str, overrides: list) -> dict:
    graph = json.loads(wf)
    for _, target, value in overrides:
        node, _, field = target.partition(".")
        graph[node]["inputs"][field] = value
    return graph


CLIENTS: dict[str, Callable[..., Awaitable[None]]] = {
    "tensorart": tensorart, "speedpix": speedpix, "runninghub": runninghub, "comfyui": comfyui,
    "comfycloud": comfycloud, "nextgpu": nextgpu,
}


class DirectRun:
    """One long-lived aiohttp session, as a hand-written client would keep."""

    def __init__(self, svc: Service):
        from .engine_runs import remote_end

        self.svc, self._remote_end = svc, remote_end
        self.client = CLIENTS[svc.name]
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-direct-{svc.name}-"))
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self._n = 0

    def _dest(self) -> Path:
        self._n += 1
        return self.dir / f"{self._n}.png"

    async def one(self, tag: str) -> tuple[float, float]:
        await self.svc.before_task()
        rid: dict = {}
        t0 = time.monotonic()
        job = asyncio.ensure_future(self.client(self.session, self.svc, tag, self._dest(),
                                                lambda r: rid.setdefault("id", r)))
        ended = asyncio.ensure_future(self._remote_end(self.svc, lambda: rid.get("id")))
        await asyncio.wait([job, ended], return_when=asyncio.FIRST_COMPLETED)
        if job.done() and job.exception() is not None:
            ended.cancel()
            raise job.exception()  # type: ignore[misc]
        end = await ended
        await asyncio.wait_for(job, 120)
        done = time.monotonic()
        return done - end, done - t0

    async def fan_out(self, n: int, svcs: list) -> float:
        t0 = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(
            CLIENTS[svcs[i % len(svcs)].name](self.session, svcs[i % len(svcs)], f"fan {i}", self._dest(),
                                              lambda r: None) for i in range(n))), 600)
        return time.monotonic() - t0

    async def close(self) -> None:
        await self.session.close()
