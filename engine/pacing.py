"""How fast the engine talks to a service, and when it looks at a task.

- :class:`Budget`: one sliding-window budget per profile, shared by every task and every call of that
  profile (polls, creates, uploads, cancels, stream handshakes; not result downloads), so 100 tasks
  never exceed the service's documented rate. A refusal for being too fast (429, a throttling
  answer) slows the whole profile: nothing is sent until its Retry-After has passed, and the rate
  is halved, then earned back step by step. Requests wait their turn in order, except urgent ones
  (a cancel, the result list of a task that has ended, fresh result links: see :func:`urgent`),
  which take the next free request ahead of the routine looks queued behind the budget.
- :func:`next_look`: the delay before the next look at one task — relaxed while it waits in a queue,
  tightening as it nears its end (the service's ETA or step counts, else the progress rate, else how
  long the same workflow took before), so a result is seen within a fraction of a second of the
  service finishing without asking every task at the highest rate all the time.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import time
from collections import deque
from typing import Callable, Iterator, Optional

FAST_S = 0.15  # the quickest look at a task about to finish
QUEUED_MAX_S = 5.0  # the slowest look at a task waiting in a queue
RECOVER_AFTER_S = 10.0  # after a slow-down, each calm period of this length earns back rate

_URGENT: contextvars.ContextVar[bool] = contextvars.ContextVar("comfyui_remote_urgent", default=False)


@contextlib.contextmanager
def urgent() -> Iterator[None]:
    """Requests made inside this block (and in tasks started from it) go ahead of routine looks
    waiting for the profile's budget: a user is waiting on them, or the service bills until they
    arrive."""
    token = _URGENT.set(True)
    try:
        yield
    finally:
        _URGENT.reset(token)


class Budget:
    """At most ``k`` requests in any window of ``(k + 1) / rate`` seconds (``k`` = the rate rounded
    down; the window is one request's spacing longer than ``k / rate``, so requests that take up to
    that much longer to arrive than others still land in their own window at the service):
    requests that belong together (a look, then its result list) go out back to back while the
    profile is quiet, and the rate is never exceeded in any one-second window however many tasks
    share it."""

    @classmethod
    def for_limit(cls, limit: Optional[float], clock: Callable[[], float] = time.monotonic) -> "Budget":
        """A budget that never sends more than ``limit`` requests in any one-second window (one less
        than it, so a request delayed on the way cannot make the service count one too many)."""
        if not limit:
            return cls(None, clock=clock)
        return cls(max(limit - 1.0, limit * 0.5), clock=clock)

    def __init__(self, rate: Optional[float], clock: Callable[[], float] = time.monotonic):
        self.ceiling = rate  # requests per second the service allows (None: no limit)
        self.rate = rate
        self._clock = clock
        self._sent_at: deque[float] = deque()  # when the requests of the current window went out
        self._paused_until = 0.0
        self._calm_since = clock()
        self._last_cut = -1e9
        self._queue: list[tuple[int, int]] = []  # (0 urgent / 1 routine, arrival): who goes next
        self._arrivals = itertools.count()
        self._changed: Optional[asyncio.Future] = None  # set when the queue or the budget changes
        self.sent = 0

    def delay(self) -> float:
        """Seconds until one more request may go out (0: now)."""
        if self.rate is None:
            return 0.0
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now
        if self.ceiling is not None and self.rate < self.ceiling and now - self._calm_since >= RECOVER_AFTER_S:
            self.rate = min(self.ceiling, self.rate * 1.5)  # calm for a while: earn rate back
            self._calm_since = now
        k = max(1, int(self.rate))
        window = (k + 1) / self.rate
        while self._sent_at and self._sent_at[0] <= now - window:
            self._sent_at.popleft()
        if len(self._sent_at) < k:
            return 0.0
        return self._sent_at[-k] + window - now  # until the k-th latest request leaves the window

    def note_sent(self) -> None:
        self.sent += 1
        if self.rate is not None:
            self._sent_at.append(self._clock())

    async def take(self) -> None:
        """Wait for the right to send one request."""
        if self.rate is None:
            self.note_sent()
            return
        me = (0 if _URGENT.get() else 1, next(self._arrivals))
        heapq.heappush(self._queue, me)
        self._poke()  # an urgent arrival takes the head's place at once
        try:
            while True:
                head = self._queue[0] == me
                if head and (wait := self.delay()) <= 0:
                    break
                await self._next_change(wait if head else None)
        except BaseException:  # cancelled (or dropped at shutdown) while waiting: leave the queue to the others
            if me in self._queue:
                self._queue.remove(me)
                heapq.heapify(self._queue)
            with contextlib.suppress(RuntimeError):  # (a loop already closed)
                self._poke()
            raise
        heapq.heappop(self._queue)
        self.note_sent()
        self._poke()

    def _poke(self) -> None:
        """Wake every waiter to look again at who is next."""
        changed, self._changed = self._changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)

    async def _next_change(self, timeout: Optional[float]) -> None:
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._changed), timeout)

    def slow_down(self, retry_after: Optional[float]) -> None:
        """The service said "too fast": pause the profile and halve its rate."""
        now = self._clock()
        self._paused_until = max(self._paused_until, now + (retry_after if retry_after is not None else 1.0))
        self._calm_since = now
        if self.rate is not None and now - self._last_cut > 1.0:  # one refusal, seen twice, cuts once
            self._last_cut = now
            self.rate = max(0.2, self.rate / 2)


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
