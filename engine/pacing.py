"""How fast the engine talks to a service, and when it looks at a task.

- :class:`Budget`: one token bucket per profile, shared by every task and every call of that profile
  (polls, creates, uploads, cancels, downloads), so 100 tasks never exceed the service's documented
  rate. A refusal for being too fast (429, a throttling answer) slows the whole profile: nothing is
  sent until its Retry-After has passed, and the rate is halved, then earned back step by step.
- :func:`next_look`: the delay before the next look at one task — relaxed while it waits in a queue,
  tightening as it nears its end (the service's ETA or step counts, else the progress rate, else how
  long the same workflow took before), so a result is seen within a fraction of a second of the
  service finishing without asking every task at the highest rate all the time.
"""
from __future__ import annotations

import asyncio
import time
from typing import Optional

FAST_S = 0.15  # the quickest look at a task about to finish
QUEUED_MAX_S = 5.0  # the slowest look at a task waiting in a queue
RECOVER_AFTER_S = 10.0  # after a slow-down, each calm period of this length earns back rate


class Budget:
    @classmethod
    def for_limit(cls, limit: Optional[float]) -> "Budget":
        """A budget that never sends more than ``limit`` requests in any one-second window."""
        if not limit:
            return cls(None)
        return cls(max(limit - 1.0, limit * 0.5), burst=1)

    def __init__(self, rate: Optional[float], burst: Optional[int] = None):
        self.ceiling = rate  # requests per second the service allows (None: no limit)
        self.rate = rate
        self.burst = max(1, int(burst if burst is not None else (rate or 1)))
        self._tokens = float(self.burst)
        self._stamp = time.monotonic()
        self._paused_until = 0.0
        self._calm_since = time.monotonic()
        self._last_cut = -1e9
        self._lock = asyncio.Lock()
        self.sent = 0

    async def take(self) -> None:
        """Wait for the right to send one request."""
        if self.rate is None:
            self.sent += 1
            return
        async with self._lock:  # first come, first served
            while True:
                now = time.monotonic()
                if now < self._paused_until:
                    await asyncio.sleep(self._paused_until - now)
                    continue
                self._refill(now)
                if self._tokens >= 1:
                    self._tokens -= 1
                    self.sent += 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)

    def _refill(self, now: float) -> None:
        assert self.rate is not None and self.ceiling is not None
        if self.rate < self.ceiling and now - self._calm_since >= RECOVER_AFTER_S:
            self.rate = min(self.ceiling, self.rate * 1.5)
            self._calm_since = now
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def slow_down(self, retry_after: Optional[float]) -> None:
        """The service said "too fast": pause the profile and halve its rate."""
        now = time.monotonic()
        self._paused_until = max(self._paused_until, now + (retry_after if retry_after is not None else 1.0))
        self._calm_since = now
        if self.rate is not None and now - self._last_cut > 1.0:  # one refusal, seen twice, cuts once
            self._last_cut = now
            self.rate = max(0.2, self.rate / 2)
            self._tokens = min(self._tokens, 0.0)


def next_look(base: float, *, state: str, progress: Optional[float] = None, eta_s: Optional[float] = None,
              running_for: Optional[float] = None, usual_s: Optional[float] = None,
              queue_position: Optional[int] = None, push: bool = False) -> float:
    """Seconds until the next look at a task (``base`` is the profile's poll_interval_s)."""
    if state == "queued":
        ahead = queue_position if queue_position and queue_position > 0 else 1
        return min(QUEUED_MAX_S, base * (1 + 0.5 * (ahead - 1)))
    remaining = _remaining(progress, eta_s, running_for, usual_s)
    if remaining is None:
        return base
    if push:  # a live channel says when it ends; looks are only the safety net
        return max(base, min(QUEUED_MAX_S, remaining))
    return max(FAST_S, min(base, remaining / 3))


def _remaining(progress: Optional[float], eta_s: Optional[float], running_for: Optional[float],
               usual_s: Optional[float]) -> Optional[float]:
    if eta_s is not None and eta_s >= 0:
        return eta_s
    if progress is not None and running_for is not None and 0.05 <= progress < 1:
        return running_for * (1 - progress) / progress
    if usual_s is not None and running_for is not None and running_for < usual_s * 1.5:
        return max(0.0, usual_s - running_for)  # (a task that runs far longer than usual: no guess)
    return None
