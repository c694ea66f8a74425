"""The pack's engine against one provider's fake: completion lag, time per task, and a fan-out.

Completion lag = the moment the engine says "succeeded" (every result downloaded and saved on disk)
minus the moment the fake's task ended. The end is read from the fake itself, sampled every
``SAMPLE_S`` on the benchmark's loop (the engine runs on its own thread and loop, as in ComfyUI).
"""
from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from comfyui_remote.engine import pacing
from comfyui_remote.engine.tasks import TaskManager
from comfyui_remote.providers.base import Override

from .services import Service

SAMPLE_S = 0.005
STEP_TIMEOUT_S = 120.0


SENT: dict[int, list[float]] = {}  # id(budget) -> when each request of that profile went out


def _record_sends() -> None:
    """Log when each request leaves, per profile: every API call and stream handshake takes one from
    its profile's budget (:class:`engine.pacing.Budget`) right before it is sent. A fake's own log
    stamps a request when its handler runs, which is late and bunched while the fake's loop is busy
    rendering images, so "sent" is read here."""
    orig = pacing.Budget.note_sent
    if getattr(orig, "bench", False):
        return

    def note_sent(self: pacing.Budget) -> None:
        orig(self)
        SENT.setdefault(id(self), []).append(time.monotonic())

    note_sent.bench = True  # type: ignore[attr-defined]
    pacing.Budget.note_sent = note_sent  # type: ignore[method-assign]


def _table(name: str, table: dict) -> str:
    lines = [f"[profiles.{name}]"]
    for k, v in table.items():
        lines.append(f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"')
    return "\n".join(lines) + "\n"


class EngineRun:
    """A TaskManager with a profile ``bench<i>`` pointing at each service's fake."""

    def __init__(self, *svcs: Service, **profile_extra):
        self.svcs = svcs
        self.svc = svcs[0]
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{self.svc.name}-"))
        home = self.dir / "home"
        home.mkdir()
        (home / "profiles.toml").write_text("".join(_table(f"bench{i}", svc.profile(**profile_extra))
                                                    for i, svc in enumerate(svcs)))
        _record_sends()
        self.m = TaskManager(home, self.dir / "out").start(reattach=False)
        self.loop = asyncio.get_running_loop()
        self.remote: dict[str, str] = {}
        self.done_at: dict[str, float] = {}
        self.states: dict[str, str] = {}
        self.m.events.subscribe(self._on_event)

    def _on_event(self, task: dict) -> None:  # on the engine's thread
        if task.get("remote_id"):
            self.remote[task["id"]] = task["remote_id"]
        self.states[task["id"]] = task["state"]
        if task["state"] in ("succeeded", "failed", "cancelled"):
            self.done_at.setdefault(task["id"], time.monotonic())

    async def call(self, coro):
        return await asyncio.wait_for(asyncio.wrap_future(self.m.call(coro)), STEP_TIMEOUT_S)

    async def submit(self, tag: str, i: int = 0) -> str:
        wf, overrides = self.svcs[i].workflow(tag)
        ovs = [Override(t, k, v) for k, t, v in overrides]
        return await self.call(self.m.submit(f"bench{i}", wf, ovs, reuse=False))

    async def one(self, tag: str) -> tuple[float, float]:
        """(completion lag, wall time from submit to saved) of one task."""
        await self.svc.before_task()
        t0 = time.monotonic()
        tid = await self.submit(tag)
        end = await remote_end(self.svc, lambda: self.remote.get(tid))
        snap = await self.call(self.m.wait(tid))
        assert snap["state"] == "succeeded", f"{self.svc.name}: {snap['state']} {snap.get('error')}"
        return self.done_at[tid] - end, self.done_at[tid] - t0

    async def fan_out(self, n: int) -> tuple[float, list[str]]:
        """n tasks submitted at once, spread over the profiles; (seconds until all are saved, their
        end states)."""
        t0 = time.monotonic()
        tids = await asyncio.gather(*(self.submit(f"fan {i}", i % len(self.svcs)) for i in range(n)))
        snaps = await asyncio.gather(*(self.call(self.m.wait(t)) for t in tids))
        return time.monotonic() - t0, [s["state"] for s in snaps]

    def sent_since(self, t0: float) -> list[list[float]]:
        """Per profile, when its requests went out since ``t0`` (monotonic)."""
        out = []
        for i in range(len(self.svcs)):
            p = self.m._providers.get(f"bench{i}")
            out.append([t for t in SENT.get(id(p.http.budget), []) if t >= t0] if p is not None else [])
        return out

    async def close(self) -> None:
        await asyncio.to_thread(self.m.stop)


async def remote_end(svc: Service, remote_id: Callable[[], Optional[str]]) -> float:
    """When the fake's task ended (sampled every ``SAMPLE_S``)."""
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while time.monotonic() < deadline:
        if svc.finished(remote_id()):
            return time.monotonic()
        await asyncio.sleep(SAMPLE_S)
    raise TimeoutError(f"{svc.name}: a task never ended on the fake")


def peak_rate(times: list[float], window: float = 1.0) -> float:
    """The most requests in any one ``window`` (a sliding window over the request times)."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best / window


def api_times(svc: Service, since: float, extra_fakes: Optional[list] = None) -> list[float]:
    """When each API request reached the service's fake(s): every call and stream handshake, not
    result downloads (a file link, or Comfy API's ``/assets/{id}/content`` hop to its store), which
    the services do not count against the rate either."""
    skip = {svc.case.ROUTES.get("file"), "object", "file", "view", "oss_get", "content"}
    out = []
    for fake in [svc.fake, *(extra_fakes or [])]:
        for seen in getattr(fake, "log", []):
            if seen.t >= since and seen.route not in skip:
                out.append(seen.t)
    return out
