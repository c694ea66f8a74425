"""The jobs API of newer ComfyUI servers, as the ``comfyui`` provider uses it.

ComfyUI v0.6+ answers ``GET /api/jobs`` and ``GET /api/jobs/{id}``; v0.26+ also ``POST
/api/jobs/{id}/cancel`` (facts and sources: ``docs/providers/comfyui.md``). Older servers (0.3.64)
have none of them and keep ``/queue``, ``/history`` and ``/interrupt``.

- :func:`has_jobs`: ONE probe per server (base URL), cached for the provider's life: ``GET
  /api/jobs?status=in_progress&limit=1`` answering a job list means the jobs API; 404/405 (or a page
  that is not JSON) means an old server; auth, 408/429/5xx and drops are raised and asked again
  later. The profile setting ``jobs_api = "off"`` skips the probe and keeps the old routes.
- :func:`snapshot`: running and pending ids from ONE ``GET /api/jobs?status=in_progress,pending``
  (pending in run order: ``priority``, then position in the answer).
- :func:`job`: ``GET /api/jobs/{id}``; None on its 404 ``{"error": "Job not found"}``. A 404/405
  that is not JSON (the routes went away: a downgraded server) makes the next look probe again.
- :func:`cancel`: ``POST /api/jobs/{id}/cancel`` → ``{"cancelled": bool}``; None where the route is
  missing (404/405: v0.6–v0.25), and then this server is asked the old way from then on.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import quote

from .base import CancelResult
from .errors import ProtocolError

PROBE = "/api/jobs?status=in_progress&limit=1"
LIVE = "/api/jobs?status=in_progress,pending"
NOT_FOUND = "Job not found"  # the error of GET /api/jobs/{id} for an id the server does not know
OFF = ("off", "false", "no", "0")
MISSING = (404, 405)  # an old server: no such route (405: its static route takes only GET/HEAD)


@dataclass
class Routes:
    """What one server was found to have."""

    jobs: Optional[bool] = None  # None: not asked yet
    cancel: bool = True  # False once POST /api/jobs/{id}/cancel answered 404/405


class Known:
    """Per provider instance: the routes of each server (base URL) it talked to."""

    def __init__(self) -> None:
        self.servers: dict[str, Routes] = {}
        self.lock = asyncio.Lock()  # many looks at once: one probe

    def of(self, base: str) -> Routes:
        return self.servers.setdefault(base, Routes())


def _json(resp: Any) -> bool:
    return "json" in str(resp.headers.get("Content-Type", "")).lower()


async def has_jobs(p: Any) -> bool:
    """Whether the provider's server has the jobs API (probed once, see the module docstring)."""
    setting = p.profile.get("jobs_api") if hasattr(p.profile, "get") else None
    if str(setting).strip().lower() in OFF or setting is False:
        return False
    base = await p.base()
    routes = p.known.of(base)
    if routes.jobs is None:
        async with p.known.lock:
            if routes.jobs is None:
                routes.jobs = await _probe(p, base)
    return bool(routes.jobs)


async def _probe(p: Any, base: str) -> bool:
    resp = await p.http.request("GET", base + PROBE, headers=p.auth_headers())
    if resp.status in MISSING:
        return False
    if not resp.ok:
        raise p.http_error(resp, "GET /api/jobs", auth_hint=p._auth_hint())
    if not _json(resp):
        return False  # a front end or proxy answering every path with a page
    data = resp.json()
    return isinstance(data, dict) and isinstance(data.get("jobs"), list)


async def _get(p: Any, path: str, what: str) -> Any:
    base = await p.base()
    resp = await p.http.request("GET", base + path, headers=p.auth_headers())
    if resp.status in MISSING and not _json(resp):
        p.known.of(base).jobs = None  # no such route any more: ask the server again what it is
    if not resp.ok and not (resp.status == 404 and _json(resp)):
        raise p.http_error(resp, what, auth_hint=p._auth_hint())
    return resp


async def snapshot(p: Any) -> tuple[list, list]:
    resp = await _get(p, LIVE, "GET /api/jobs")
    if not resp.ok:
        raise p.http_error(resp, "GET /api/jobs", auth_hint=p._auth_hint())
    data = resp.json()
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if not isinstance(jobs, list):
        raise p.error(ProtocolError, "GET /api/jobs answered without a job list")
    live = [j for j in jobs if isinstance(j, dict) and j.get("id") is not None]
    running = [str(j["id"]) for j in live if j.get("status") == "in_progress"]
    pending = [j for j in live if j.get("status") == "pending"]
    pending.sort(key=lambda j: j["priority"] if isinstance(j.get("priority"), (int, float)) else 0)
    return running, [str(j["id"]) for j in pending]


async def job(p: Any, pid: str) -> Optional[dict]:
    resp = await _get(p, f"/api/jobs/{quote(pid, safe='')}", "GET /api/jobs/{id}")
    if resp.status == 404:
        body = resp.json()
        if isinstance(body, dict) and body.get("error") == NOT_FOUND:
            return None  # the server itself does not know the id (a proxy's 404 says something else)
        raise p.http_error(resp, "GET /api/jobs/{id}", auth_hint=p._auth_hint())
    data = resp.json()
    if not isinstance(data, dict) or not data.get("status"):
        raise p.error(ProtocolError, f"GET /api/jobs/{pid} answered without a job status")
    return data


def classes(found: dict) -> Optional[dict]:
    """{node id: class} of the job's workflow (GET by id carries it while queued or running)."""
    wf = found.get("workflow") if isinstance(found.get("workflow"), dict) else {}
    graph = wf.get("prompt") if isinstance(wf.get("prompt"), dict) else None
    return {str(k): str(v.get("class_type")) for k, v in graph.items() if isinstance(v, dict)} if graph else None


async def cancel(p: Any, pid: str) -> Optional[CancelResult]:
    base = await p.base()
    routes = p.known.of(base)
    if not routes.cancel:
        return None
    resp = await p.http.request("POST", f"{base}/api/jobs/{quote(pid, safe='')}/cancel", headers=p.auth_headers())
    if resp.status in MISSING:
        routes.cancel = False
        return None
    if not resp.ok:
        raise p.http_error(resp, "POST /api/jobs/{id}/cancel", auth_hint=p._auth_hint())
    data = resp.json()
    if not isinstance(data, dict) or not isinstance(data.get("cancelled"), bool):
        raise p.error(ProtocolError, "POST /api/jobs/{id}/cancel answered without 'cancelled'")
    # false: the job had finished — or the server no longer knows it (an earlier cancel dequeued it)
    return CancelResult.REQUESTED if data["cancelled"] else CancelResult.TOO_LATE
