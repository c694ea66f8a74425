"""Task updates → subscribers (ComfyUI's WebSocket event ``comfyui_remote.task``, tests).

At most ``rate`` events per second per task, plus every state change; an update held back by the
limit is delivered when the window ends, so the last word is never lost. Runs on the engine loop.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Optional

from . import redaction

Subscriber = Callable[[dict], Any]


class EventHub:
    def __init__(self, rate: float = 5.0):
        self.min_gap = 1.0 / rate
        self._subs: list[Subscriber] = []
        self._last_sent: dict[str, float] = {}
        self._last_state: dict[str, str] = {}
        self._held: dict[str, dict] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        self._subs.append(fn)
        return lambda: self._subs.remove(fn) if fn in self._subs else None

    def publish(self, task: dict) -> None:
        tid = task["id"]
        state_changed = self._last_state.get(tid) != task.get("state")
        now = time.monotonic()
        wait = self._last_sent.get(tid, -1e9) + self.min_gap - now
        if state_changed or wait <= 0:
            self._send(tid, task, now)
            return
        self._held[tid] = task
        if tid not in self._timers:
            loop = asyncio.get_running_loop()
            self._timers[tid] = loop.call_later(wait, self._flush, tid)

    def forget(self, tid: str) -> None:
        """Drop what is kept about a task that ended long ago (bounded memory)."""
        for d in (self._last_sent, self._last_state, self._held):
            d.pop(tid, None)
        timer = self._timers.pop(tid, None)
        if timer is not None:
            timer.cancel()

    def _flush(self, tid: str) -> None:
        self._timers.pop(tid, None)
        task = self._held.pop(tid, None)
        if task is not None:
            self._send(tid, task, time.monotonic())

    def _send(self, tid: str, task: dict, now: float) -> None:
        self._held.pop(tid, None)
        timer: Optional[asyncio.TimerHandle] = self._timers.pop(tid, None)
        if timer is not None:
            timer.cancel()
        self._last_sent[tid] = now
        self._last_state[tid] = task.get("state")  # type: ignore[assignment]
        clean = redaction.scrub(task)
        for fn in list(self._subs):
            try:
                fn(clean)
            except Exception:  # a broken subscriber must not stop the engine
                redaction.get_logger().exception("event subscriber failed")
