"""Re-attaching after a restart and RemoteRecover: follow unfinished tasks again, fetch missing
results, finish delivering cancels, and resolve submissions that ComfyUI stopped in the middle of —
never by resubmitting."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Optional

from ..providers.base import AmbiguousSubmit, NotFound, Output, RejectedInput, RemoteError, RemoteRef, State
from . import redaction
from .live import Live, new_task_id
from .submission import spec_from_json

log = redaction.get_logger("comfyui_remote.engine")


class RecoveryMixin:
    """Part of :class:`engine.tasks.TaskManager`."""

    async def recover(self, ident: str, profile_name: Optional[str] = None) -> str:
        """Find a task by local or remote id; re-attach it (or adopt a remote id unknown to the
        journal); re-download missing results. Returns the local id."""
        ident = (ident or "").strip()
        if not ident:
            raise RejectedInput("task_id is empty", field="task_id", hint="give a local task id or a remote id")
        row = await self._db(self.journal.get, ident) or await self._db(self.journal.by_remote_id, ident, profile_name)
        if row is None:
            if not profile_name:
                raise NotFound(f"no task {ident!r} in the journal", field="task_id",
                               hint="for a remote id submitted elsewhere, choose its profile too")
            profile = self.profiles.get(profile_name)
            profile.check_configured()
            provider = self.provider(profile)
            row = await self._db(self.journal.create, new_task_id(), profile=profile.name, provider=profile.provider,
                                 workflow="(recovered)", remote_id=ident, state=State.QUEUED.value,
                                 phase="acknowledged", can_cancel=provider.capabilities.cancel,
                                 message="recovering a task submitted elsewhere")
        if row.get("reused") and row.get("reused_from"):
            return row["id"]
        if row["state"] == State.SUCCEEDED.value and row.get("outputs_state") == "saved":
            outs = await self._db(self.journal.outputs, row["id"])
            if any(o.get("path") and not Path(o["path"]).is_file() for o in outs):
                await self._save(row["id"], outputs_state="missing", message="a result file is missing; fetching it again")
                row = await self._db(self.journal.get, row["id"])
        await self._reattach_row(row, explicit=True)
        return row["id"]

    async def reattach(self) -> None:
        """On start: follow every unfinished task again, fetch missing results (background)."""
        try:
            await self._sweep_stale_parts()
        except Exception:
            log.exception("sweeping stale .part files failed")
        for row in await self._db(self.journal.unfinished):
            try:
                await self._reattach_row(row)
            except RemoteError as e:
                await self._save(row["id"], message=f"could not re-attach: {e}")
            except Exception:
                log.exception("re-attach of task %s failed", row["id"])

    async def _reattach_row(self, row: dict, explicit: bool = False) -> None:
        if row["id"] in self._live:
            return
        state = State(row["state"])
        if state is State.SUCCEEDED and row.get("outputs_state") == "saved":
            return
        provider = self._provider_for_row(row)
        live = Live(row=row, provider=provider, done=asyncio.get_running_loop().create_future(),
                    abandoned=state is State.ABANDONED, cancel_requested=bool(row.get("cancel_requested")))
        if row.get("remote_id"):
            live.ref = RemoteRef(row["remote_id"], row.get("remote_data") or {}, row.get("console_url"))
        if state is State.SUCCEEDED:  # finished; results still to fetch
            pending = [Output.from_json(o) for o in (row.get("pending_outputs") or [])]
            self._live[row["id"]] = live
            if pending and live.ref is not None:
                self._spawn(self._download_all(live, pending))
            else:
                live.watcher = self._spawn(self._watch(live))
            return
        if live.ref is None or row.get("phase") in ("prepared", "sending"):
            self._live[row["id"]] = live  # waiters wait for the look-up's outcome
            self._spawn(self._resolve_unsent(live, row))
            return
        if state.terminal:
            if not explicit:
                return
            # failed/cancelled with a remote id, recovered on purpose (e.g. after a timeout): look again
            await self._save(live, state=State.QUEUED.value, error=None, message="re-attaching")
        self._live[row["id"]] = live
        live.watcher = self._spawn(self._watch(live))
        if live.cancel_requested and not live.abandoned:
            live.canceller = self._spawn(self._deliver_cancel(live, "cancel requested before the restart"))

    async def _resolve_unsent(self, live: Live, row: dict) -> None:
        """A task journalled as submitting without a remote id (ComfyUI stopped mid-submit)."""
        provider = live.provider
        key = row.get("submission_key")
        if row.get("phase") == "prepared" or not key:
            await self._finish(live, State.CANCELLED, message="ComfyUI stopped before this task was submitted; "
                                                              "nothing was paid")
            return
        await self._save(live, message="ComfyUI stopped while submitting; checking whether the service received the task")
        # the landing window counts from the moment the create was sent (journalled just before)
        sent_at = time.monotonic() - max(0.0, time.time() - float(row.get("updated_at") or time.time()))
        spec = spec_from_json(row.get("submit_spec"), row["profile"])  # what was sent, for look-ups that compare
        ref, why = await self._find_with_landing(provider, key, spec, sent_at)
        if ref is not None:
            live.ref = ref
            await self._save(live, remote_id=ref.remote_id, remote_data=ref.data, console_url=ref.console_url,
                             phase="acknowledged", state=State.QUEUED.value, message="re-attached after restart")
            live.watcher = self._spawn(self._watch(live))
            if live.cancel_requested:
                await self.cancel(row["id"], "cancel requested before the restart", force=True)
            return
        if why is None:  # the service answered: no task under this key
            await self._finish(live, State.CANCELLED, message="ComfyUI stopped while submitting and the service never "
                                                              "received the task, so nothing was paid — queue it again")
            return
        await self._finish(live, State.FAILED, error=provider.error(
            AmbiguousSubmit, f"ComfyUI stopped while this task was being submitted and it is unknown whether it "
                             f"arrived ({why})", hint="check the provider's console before queueing again (not "
                                                      "resubmitted, so you are not billed twice)"))
