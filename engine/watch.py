"""The one watch loop: every task of every provider is followed here.

``provider.poll`` is asked at the profile's interval (at once when a push hint or a cancel says
the end may have come); ``provider.push`` — a live socket where the service has one — only adds
progress in between. Only a terminal state the service reported ends a task (rule 2): a failed
look, an auth or 404 answer from a proxy, a parser surprise or a dropped socket keep the task
tracked and visible ("status unavailable since 0:40 — retrying"), asked again with backoff.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Optional

from ..providers.base import RemoteError, State, TaskGone, TaskUpdate
from . import redaction
from .live import Live
from .pacing import FAST_S, next_look, urgent
from .redaction import describe

log = redaction.get_logger("comfyui_remote.engine")
SHOWN_FIELDS = ("queue_position", "queue_length", "progress", "node", "step", "max_steps", "eta_s", "message",
                "cost")


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"


class WatchMixin:
    """Part of :class:`engine.tasks.TaskManager`."""

    async def _watch(self, live: Live) -> None:
        provider = live.provider
        push: Optional[asyncio.Task] = None
        failures = 0
        down_since: Optional[float] = None
        gone_since: Optional[float] = None
        surprised = False
        live.usual_s = await self._db(self.journal.usual_duration, live.row["profile"], live.row.get("workflow"))
        try:
            while True:
                if push is None or push.done():
                    push = self._start_push(live)
                live.wake.clear()
                delay = provider.poll_interval()
                try:
                    upd = await asyncio.wait_for(provider.poll(live.ref), 2 * self.policy.request_timeout_s + 5)
                except asyncio.CancelledError:
                    raise
                except TaskGone as e:
                    now = time.monotonic()
                    gone_since = gone_since or now
                    if live.cancel_requested:
                        await self._finish(live, State.CANCELLED, message=f"cancelled: {provider.id} removed the "
                                                                          f"task ({describe(e, 100)})")
                        return
                    if now - gone_since >= self.policy.gone_confirm_s:
                        await self._finish(live, State.FAILED, error=e)
                        return
                    await self._save(live, message=f"{provider.id} does not know the task right now; checking again")
                except Exception as e:  # rule 2: no look ends a task
                    self._throttled(provider, e)
                    failures += 1
                    now = time.monotonic()
                    down_since = down_since or now
                    if not isinstance(e, RemoteError) and not surprised:
                        surprised = True
                        log.warning("%s/%s: reading task %s failed (%s: %s); still tracked", provider.id,
                                    live.row["profile"], live.row["id"], e.__class__.__name__, describe(e))
                    delay = min(self.policy.status_backoff_cap_s,
                                max(delay, self.policy.delay(failures, getattr(e, "retry_after", None))))
                    await self._save(live, message=f"status unavailable since {_clock(now - down_since)} — retrying "
                                                   f"in {delay:.0f} s ({describe(e, 120)})")
                else:
                    if failures or gone_since:  # the service answers again: drop "status unavailable…"
                        await self._save(live, message=None)
                    failures, down_since, gone_since = 0, None, None
                    if upd.state.terminal:
                        if push is not None:  # nothing live may speak after the end
                            push.cancel()
                            await asyncio.gather(push, return_exceptions=True)
                        await self._on_terminal(live, upd)
                        return
                    await self._apply(live, upd)
                    delay = self._next_look(live, push is not None and not push.done())
                try:
                    await asyncio.wait_for(live.wake.wait(), delay)
                except asyncio.TimeoutError:
                    pass
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug in the engine itself: keep the task recoverable, say so
            log.exception("watcher for task %s crashed", live.row["id"])
            await self._save(live, message=f"internal error while following the task ({e.__class__.__name__}); "
                                           f"it stays tracked: Recover from the panel")
        finally:
            if push is not None and not push.done():
                push.cancel()

    def _next_look(self, live: Live, push_alive: bool) -> float:
        now = time.monotonic()
        if live.end_hinted is not None and now - live.end_hinted < 30.0:
            return FAST_S  # the live channel said it ended: look quickly until the service confirms
        row = live.row
        if row.get("state") == "running" and live.running_since is None:
            live.running_since = now
        return next_look(live.provider.poll_interval(), state=str(row.get("state")), progress=row.get("progress"),
                         eta_s=row.get("eta_s"), queue_position=row.get("queue_position"),
                         running_for=(now - live.running_since) if live.running_since else None,
                         usual_s=live.usual_s, push=push_alive and live.provider.capabilities.progress == "push")

    def _start_push(self, live: Live) -> Optional[asyncio.Task]:
        try:
            stream = live.provider.push(live.ref)
        except Exception as e:
            log.info("%s: no live updates for task %s (%s)", live.provider.id, live.row["id"], describe(e))
            return None
        if stream is None:
            return None
        return asyncio.ensure_future(self._follow_push(live, stream))

    async def _follow_push(self, live: Live, stream: Any) -> None:
        try:
            async for upd in stream:
                if upd.state.terminal:
                    live.end_hinted = time.monotonic()
                    live.wake.set()  # the service may have finished: ask it now
                    continue
                await self._apply(live, upd)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a live channel is a bonus: polling carries on
            log.info("%s: live updates for task %s stopped (%s)", live.provider.id, live.row["id"], describe(e))
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    pass

    async def _apply(self, live: Live, upd: TaskUpdate) -> None:
        if upd.preview is not None:  # kept in memory only: the waiting node shows it
            live.preview = ((live.preview[0] + 1) if live.preview else 1, upd.preview[0], upd.preview[1])
        fields: dict = {}
        for name in SHOWN_FIELDS:
            value = getattr(upd, name)
            if value is not None:
                fields[name] = value
        if live.cancel_requested and not live.abandoned:
            fields.pop("message", None)  # keep saying that a cancel is on its way
        if upd.state in (State.QUEUED, State.RUNNING):
            fields["state"] = upd.state.value
            if upd.state is State.RUNNING:
                fields.setdefault("queue_position", None)
            if live.row.get("state") != upd.state.value and "message" not in fields and not live.cancel_requested:
                fields["message"] = None  # "submitted" or "queued…" no longer describes a running task
        current = live.row
        if all(current.get(k) == v for k, v in fields.items()):
            return
        # an update read before the end (or before the download began) must not reopen the task
        await self._save(live, when=lambda: live.id in self._live and not live.downloading, **fields)

    async def _on_terminal(self, live: Live, upd: TaskUpdate) -> None:
        if upd.state is State.SUCCEEDED:
            if upd.cost is not None:
                await self._save(live, cost=upd.cost)
            outputs = upd.outputs
            if outputs is None:
                outputs = await self._outputs_until_known(live)
            await self._download_all(live, outputs, note=upd.message)
            return
        if upd.state is State.CANCELLED:
            await self._finish(live, State.CANCELLED, message=upd.message or "cancelled on the service")
            return
        await self._finish(live, State.FAILED, error=upd.error or live.provider.error(
            RemoteError, upd.message or "the remote task failed"))

    async def _outputs_until_known(self, live: Live) -> list:
        """The service said the task succeeded: ask for its outputs until it answers."""
        failures = 0
        while True:
            try:
                with urgent():  # the task has ended: its result is what the user waits for
                    return await live.provider.outputs(live.ref)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                failures += 1
                delay = min(self.policy.status_backoff_cap_s, self.policy.delay(failures, getattr(e, "retry_after", None)))
                await self._save(live, message=f"finished; its result list is not available yet ({describe(e, 120)}); "
                                               f"asking again in {delay:.0f} s")
                await asyncio.sleep(delay)
