"""A remote ComfyUI server as one provider instance sees it: ONE WebSocket per client id shared by
every prompt it follows, ONE shared snapshot of ``/queue`` (fetched at most once per interval for
all prompts together), and per-prompt progress from the native frames (``engine/comfy_progress``).

ComfyUI sends a prompt's messages only to the client id that queued it, live, never replayed. So
the socket is opened before a prompt is posted, and a prompt queued by an earlier process is
followed by connecting with *its* client id. While the socket has been up the whole time and the
prompt is running, its state comes from the frames alone; otherwise (queued, socket down or
reconnected, frames silent for a while) the shared queue snapshot and the prompt's record decide:
``GET /api/jobs`` and ``/api/jobs/{id}`` on servers with the jobs API (``comfy_jobs``), else
``GET /queue`` and ``/history/{id}``.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Optional
from urllib.parse import quote

from ..engine.comfy_progress import FEATURE_FLAGS, ComfyProgress, binary_preview
from ..engine.websocket import Frame, SocketPolicy, frames
from . import comfy_jobs
from .base import State, TaskUpdate
from .errors import ProtocolError

IDLE_CLOSE_S = 5.0  # close the socket this long after the last prompt stopped being followed
TRUST_FRAMES_S = 10.0  # without any HTTP look, trust a running prompt's frames this long at most


WS_SCHEMES = {"https": "wss", "http": "ws"}


def ws_url(base: str, client_id: str) -> str:
    scheme, _, rest = base.partition("://")
    return f"{WS_SCHEMES.get(scheme, scheme)}://{rest}/ws?clientId={quote(client_id)}"


class Followed:
    """One prompt being followed: its progress, whether the socket saw all of it, push listeners."""

    def __init__(self, pid: str, classes: Optional[dict]):
        self.progress = ComfyProgress(classes, prompt_id=pid)
        self.whole = True  # the socket was up since this prompt was followed (no frame can be missing)
        self.checked = 0.0  # monotonic time of the last HTTP look
        self.confirmed = False  # that look saw it running (frames alone are trusted only then)
        self.listeners: list[asyncio.Queue] = []
        self.since = time.monotonic()  # a queue snapshot older than this (or the submit's answer) may miss it
        self.preview: Optional[tuple[str, bytes]] = None  # the latest, not yet handed to a listener

    def notify(self) -> None:
        for q in self.listeners:
            q.put_nowait(True)


class ComfyServer:
    def __init__(self, provider: Any, client_id: str):
        self.p = provider
        self.client_id = client_id
        self.followed: dict[str, Followed] = {}
        self.connected = asyncio.Event()
        self.tried = asyncio.Event()
        self._socket: Optional[asyncio.Task] = None
        self._queue: Optional[tuple[float, list, list]] = None  # (when, running ids, pending ids)
        self._queue_lock = asyncio.Lock()
        self.graphs: dict[str, dict] = {}  # prompt id -> {node: class} learnt from /queue or /api/jobs/{id}

    # ------------------------------------------------------------------ following prompts
    def follow(self, pid: str, classes: Optional[dict] = None) -> Followed:
        f = self.followed.get(pid)
        if f is None:
            f = self.followed[pid] = Followed(pid, classes or self.graphs.get(pid))
            f.whole = self.connected.is_set()
        elif classes and not f.progress.classes:
            f.progress.classes = dict(classes)
        if self._socket is None or self._socket.done():
            self._socket = asyncio.ensure_future(self._run_socket())
        return f

    def forget(self, pid: str) -> None:
        f = self.followed.pop(pid, None)
        self.graphs.pop(pid, None)
        if f is not None:
            f.notify()  # ends its push listeners

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.tried.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        return self.connected.is_set()

    async def _run_socket(self) -> None:
        base = await self.p.base()
        stream = frames(self.p.http, ws_url(base, self.client_id), headers=self.p.auth_headers(),
                        policy=SocketPolicy(reconnects=None, backoff_cap_s=2.0), first=FEATURE_FLAGS)
        idle_since: Optional[float] = None
        dropped = False
        try:
            async for fr in stream:
                self._on_frame(fr)
                if self.followed:
                    idle_since = None
                elif fr.kind in ("json", "connected", "disconnected"):
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > IDLE_CLOSE_S:
                        return
        except GeneratorExit:  # dropped with a stopped loop: the stream, mid-read, goes with it
            dropped = True
            raise
        finally:
            self.connected.clear()
            self.tried.set()
            if not dropped:
                await stream.aclose()

    def _on_frame(self, fr: Frame) -> None:
        if fr.kind == "connected":
            self.connected.set()
            self.tried.set()
            self._queue = None  # whatever happened while we were away is only in /queue and /history
            return
        if fr.kind == "disconnected":
            self.connected.clear()
            self.tried.set()
            for f in self.followed.values():
                f.whole = False
                f.notify()
            return
        if fr.kind == "binary":
            self._on_preview(fr.data)
            return
        if fr.kind != "json" or not isinstance(fr.data, dict):
            return
        data = fr.data.get("data") if isinstance(fr.data.get("data"), dict) else {}
        pid = data.get("prompt_id")
        if pid is None:
            if fr.data.get("type") == "status":
                self._queue = None  # the queue moved
                for f in self.followed.values():
                    f.notify()
            return
        f = self.followed.get(str(pid))
        if f is not None and f.progress.feed(fr.data):
            f.notify()

    def _on_preview(self, data: bytes) -> None:
        got = binary_preview(data)
        if got is None:
            return  # progress text and other binary events
        pid, mime, image = got
        if pid is None:  # an old server: the preview belongs to the prompt that runs
            running = [k for k, f in self.followed.items() if f.progress.running and f.progress.ended is None]
            pid = running[-1] if len(running) == 1 else None
        f = self.followed.get(pid) if pid is not None else None
        if f is not None:
            f.preview = (mime, image)
            f.notify()

    # ------------------------------------------------------------------ shared HTTP looks
    async def queue(self, max_age: float, since: float = 0.0) -> tuple[list, list]:
        """Running and pending prompt ids (pending in run order), shared by every follower; taken
        at most ``max_age`` s ago, and not before ``since``."""
        async with self._queue_lock:
            now = time.monotonic()
            if self._queue is None or now - self._queue[0] > max_age or self._queue[0] < since:
                if await comfy_jobs.has_jobs(self.p):
                    running, pending = await comfy_jobs.snapshot(self.p)
                else:
                    running, pending = await self._classic_queue()
                self._queue = (now, running, pending)  # as old as the request, not its answer
            return self._queue[1], self._queue[2]

    async def _classic_queue(self) -> tuple[list, list]:
        data = await self.p.get("/queue", "GET /queue")
        if not isinstance(data, dict):
            raise self.p.error(ProtocolError, "GET /queue answered something that is not an object")
        running = [x for x in _list(data.get("queue_running")) if isinstance(x, list) and len(x) > 2]
        pending = [x for x in _list(data.get("queue_pending")) if isinstance(x, list) and len(x) > 2]
        pending.sort(key=lambda x: (x[0] if isinstance(x[0], (int, float)) else 0))
        for item in running + pending:
            if isinstance(item[2], dict) and str(item[1]) in self.followed:
                self.graphs.setdefault(str(item[1]), {str(k): str(v.get("class_type")) for k, v in
                                                      item[2].items() if isinstance(v, dict)})
        return [str(x[1]) for x in running], [str(x[1]) for x in pending]

    async def history(self, pid: str) -> Optional[dict]:
        data = await self.p.get(f"/history/{quote(pid, safe='')}", "GET /history")
        entry = data.get(pid) if isinstance(data, dict) else None
        return entry if isinstance(entry, dict) else None

    # ------------------------------------------------------------------ one look
    async def look(self, pid: str, interval: float) -> tuple[str, Any]:
        """("frames", TaskUpdate) | ("queued", TaskUpdate) | ("running", TaskUpdate) |
        ("history", entry) | ("job", job) | ("gone", None)."""
        f = self.follow(pid)
        prog = f.progress
        now = time.monotonic()
        trusted = (self.connected.is_set() and f.whole and f.confirmed and prog.running and prog.ended is None
                   and now - f.checked < TRUST_FRAMES_S)
        if trusted:
            return "frames", prog.update()
        f.checked, f.confirmed = now, False
        jobs = await comfy_jobs.has_jobs(self.p)
        if prog.ended is not None:  # the frames say it ended: its record is what we want
            found = await self._record(f, pid, jobs)
            if found[0] != "gone":  # (none yet: between the end frames and the history write)
                return found
        running, pending = await self.queue(max_age=interval if prog.ended is None else 0, since=f.since)
        if pid in running or pid in pending:
            if jobs and not prog.classes and pid not in self.graphs:  # a prompt queued by an earlier process
                self.graphs[pid] = comfy_jobs.classes(await comfy_jobs.job(self.p, pid) or {}) or {}
            if not prog.classes and self.graphs.get(pid):
                prog.classes = self.graphs[pid]
            if pid in running:
                prog.running = f.confirmed = True
                return "running", prog.update()
            i = pending.index(pid)
            return "queued", TaskUpdate(State.QUEUED, queue_position=len(running) + i,
                                        queue_length=len(running) + len(pending), raw_state="pending")
        return await self._record(f, pid, jobs)

    async def _record(self, f: Followed, pid: str, jobs: bool) -> tuple[str, Any]:
        """The prompt's own record: ("history", entry), or ("job", job) once the job ended (while it
        is still queued or running, as such); ("gone", None) when the server does not know it."""
        if not jobs:
            entry = await self.history(pid)
            return ("gone", None) if entry is None else ("history", entry)
        found = await comfy_jobs.job(self.p, pid)
        if found is None:
            return "gone", None
        if found.get("status") == "in_progress":  # the shared snapshot was older than this look
            f.progress.running = f.confirmed = True
            return "running", f.progress.update()
        if found.get("status") == "pending":
            return "queued", TaskUpdate(State.QUEUED, raw_state="pending")
        return "job", found

    async def updates(self, pid: str) -> AsyncIterator[TaskUpdate]:
        """Push: the prompt's frames as updates (and a terminal hint when they claim an end)."""
        f = self.follow(pid)
        q: asyncio.Queue = asyncio.Queue()
        f.listeners.append(q)
        try:
            while pid in self.followed:
                await q.get()
                prog = f.progress
                if prog.ended is not None:
                    yield TaskUpdate(State.SUCCEEDED if prog.ended == "success" else State.FAILED, raw_state=prog.ended)
                elif prog.running:
                    upd = prog.update("running (live)")
                    upd.preview, f.preview = f.preview, None
                    yield upd
        finally:
            if q in f.listeners:
                f.listeners.remove(q)

    async def close(self) -> None:
        if self._socket is not None:
            self._socket.cancel()
            await asyncio.gather(self._socket, return_exceptions=True)
            self._socket = None


def _list(value: Any) -> list:
    """A list the server sent, or none (a wrong type reads as nothing, never a TypeError)."""
    return value if isinstance(value, list) else []
