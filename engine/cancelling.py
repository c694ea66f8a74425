"""Cancel is a request, not an outcome (rule 3).

The engine records it (journal, and ``ref.data["cancel_requested"]`` for the provider), delivers
it — retrying refusals such as a 429 with Retry-After for up to ``policy.cancel_deadline_s`` —
and keeps watching until the service reports the end: cancelled, or finished (then the result is
fetched and kept). A task whose results are downloading is never cancelled. The waiting node only
asks; it never waits for the delivery.
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable, Optional

from ..providers.base import CancelResult, NotFound, State
from .live import Live
from .pacing import urgent
from .redaction import describe
from .rules import look_is_fatal


class CancelMixin:
    """Part of :class:`engine.tasks.TaskManager`."""

    async def cancel(self, task_id: str, reason: str = "cancelled by the user", *, force: bool = False) -> dict:
        live = self._live.get(task_id)
        if live is None:
            snap = self.snapshot(task_id)
            if snap is None or snap.get("state") == "submitting":
                # a submit just starting (its row may already be in the journal): it stops when it
                # registers the task
                if len(self._early_cancels) > 1000:
                    self._early_cancels.clear()
                self._early_cancels.add(task_id)
            if snap is None:
                raise NotFound(f"unknown task {task_id}", field="task_id")
            return snap  # already ended (or only known from the journal): nothing to stop
        if live.downloading:
            return await self._save(live, message="its results are being downloaded, so it was not cancelled; "
                                                  "they are kept")
        if live.cancel_requested and not force:
            return self.snapshot(task_id)  # type: ignore[return-value]
        live.cancel_requested = True
        if live.ref is None:  # still preparing or submitting: the submit path honours the flag
            return await self._save(live, cancel_requested=True, message=f"{reason}; stopping before anything is paid")
        live.ref.data["cancel_requested"] = True
        snap = await self._save(live, cancel_requested=True, remote_data=live.ref.data,
                                message=f"{reason}; asking {live.provider.id} to stop the task")
        if live.canceller is None or live.canceller.done():
            live.canceller = self._spawn(self._deliver_cancel(live, reason))
        return snap

    async def after_prompt_stopped(self, task_id: str, outcome: Callable[[], Optional[tuple]], *, cancel: bool,
                                   on_cancel: Callable[[], None], wait_s: float = 30.0) -> None:
        """ComfyUI stopped the prompt that waited for this task. ``outcome()`` reads the prompt's
        history (None until ComfyUI wrote it): an interrupt cancels the task (when ``cancel``); a
        failure of another node leaves it running and tracked for the re-queue to reuse."""
        deadline = time.monotonic() + wait_s
        result = None
        while result is None and time.monotonic() < deadline:
            result = await asyncio.to_thread(outcome)
            if result is None:
                await asyncio.sleep(0.2)
        kind, detail = result or ("ended", "")
        if kind == "interrupted" and cancel:
            on_cancel()
            await self.cancel(task_id, "interrupted in ComfyUI")
            return
        why = f"another node of the prompt failed ({detail})" if kind == "failed" else "the prompt stopped"
        if kind == "interrupted":
            why = "interrupted in ComfyUI (cancel_on_interrupt is off)"
        await self.note(task_id, f"{why}; the remote task keeps running and stays tracked — queue the prompt again "
                                 f"to use its result without paying again")

    async def _deliver_cancel(self, live: Live, reason: str) -> None:
        provider = live.provider
        if not provider.capabilities.cancel:
            if await self._ended_already(live):
                return
            await self._abandon(live)
            return
        deadline = time.monotonic() + self.policy.cancel_deadline_s
        attempt = 0
        while live.row["id"] in self._live and not live.downloading:
            try:
                with urgent():  # the remote task bills until this arrives: ahead of routine looks
                    result = await asyncio.wait_for(provider.cancel(live.ref), 2 * self.policy.request_timeout_s + 5)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                attempt += 1
                self._throttled(provider, e)
                if look_is_fatal(e) or time.monotonic() > deadline:
                    await self._save(live, message=f"the cancel could not be delivered ({describe(e, 120)}); the "
                                                   f"task is still tracked and may still run")
                    return
                delay = self.policy.delay(attempt, getattr(e, "retry_after", None))
                await self._save(live, message=f"the cancel was not accepted yet ({describe(e, 100)}); trying "
                                               f"again in {delay:.0f} s")
                await asyncio.sleep(delay)
                continue
            if result is CancelResult.UNSUPPORTED:
                await self._abandon(live)
            elif result is CancelResult.TOO_LATE:
                await self._save(live, message="it had already finished when the cancel arrived; its result is kept")
            else:
                await self._save(live, message=f"cancel sent ({reason}); waiting for {provider.id} to confirm")
            live.wake.set()
            return

    async def _ended_already(self, live: Live) -> bool:
        """One look before giving up on a task that cannot be cancelled: if the service already
        finished it, say so (the watcher fetches the result) instead of "abandoned"."""
        try:
            upd = await asyncio.wait_for(live.provider.poll(live.ref), 2 * self.policy.request_timeout_s + 5)
        except asyncio.CancelledError:
            raise
        except Exception:
            return False
        if not upd.state.terminal:
            return False
        await self._save(live, message="it had already finished when the cancel arrived; its result is kept")
        live.wake.set()
        return True

    async def _abandon(self, live: Live) -> None:
        live.abandoned = True
        await self._save(live, state=State.ABANDONED.value, can_cancel=False,
                         message=f"stopped waiting: {live.provider.id} has no cancel, so the remote task may still run "
                                 f"and bill; it stays tracked and its result is fetched if it finishes "
                                 f"(RemoteRecover or the Remote panel)")
        if live.done is not None and not live.done.done():
            live.done.set_result(live.row["id"])
