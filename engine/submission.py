"""Submitting: pre-flight, a free slot, uploads, the create under the rules of ``engine/rules.py``,
and pay-once reuse (a finished identical task, or one still on its way, is used instead of paying
again). The whole phase has a deadline; until the create is sent, nothing is paid."""
from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import time
from pathlib import Path, PurePosixPath
from typing import Any, Optional

from ..providers.base import (AmbiguousSubmit, NotSupported, Override, RemoteError, RemoteRef, RemoteTimeout, State,
                              SubmitSpec, last_wins)
from ..providers.local_file import LocalFile, not_uploaded
from . import redaction
from .files import file_sha256
from .redaction import describe as _short
from .live import Live, new_task_id
from .rules import Create, create_outcome, look_is_fatal
from .workflows import resolve_workflow, reuse_key as make_reuse_key

log = redaction.get_logger("comfyui_remote.engine")
DEFAULT_SUBMIT_DEADLINE_S = 3600.0
MAX_RESENDS = 3  # creates sent again after the service proved it never received them


class _Stop(Exception):
    """The submit phase ended without a create being sent (cancel or deadline)."""

    def __init__(self, message: str, error: Optional[RemoteError] = None):
        super().__init__(message)
        self.message, self.error = message, error


class SubmitMixin:
    """Part of :class:`engine.tasks.TaskManager`."""

    async def submit(self, profile_name: str, workflow: str, overrides: list[Override], *,
                     reuse: bool = True, owner: Optional[str] = None, task_id: Optional[str] = None,
                     deadline_s: Optional[float] = None) -> str:
        """Submit a task and return its local id as soon as the provider acknowledged it (or as
        soon as a reusable earlier result, or an identical task still running, is found). Errors
        before any paid step raise; the deadline covers everything before the acknowledgement."""
        profile = self.profiles.get(profile_name)
        self.profiles.validate_provider(profile)
        profile.check_configured()
        provider = self.provider(profile)
        text, label = resolve_workflow(workflow, profile, self.home, self.sandbox_workflows)
        overrides = list(last_wins(overrides))
        spec = SubmitSpec(workflow=text, overrides=tuple(overrides), profile=profile.name)
        reuse_key = make_reuse_key(profile, text, overrides)
        if reuse:
            reused = await self._try_reuse(reuse_key, profile, label, owner, task_id)
            if reused is not None:
                return reused
        task_id = task_id or new_task_id()
        row = await self._db(self.journal.create, task_id, profile=profile.name,
                             provider=profile.provider, workflow=label, state=State.SUBMITTING.value,
                             reuse_key=reuse_key, owner=owner, can_cancel=provider.capabilities.cancel,
                             message="preparing")
        live = Live(row=row, provider=provider, done=asyncio.get_running_loop().create_future())
        live.cancel_requested = task_id in self._early_cancels
        self._early_cancels.discard(task_id)
        self._live[task_id] = live
        await self._save(live)
        limit = deadline_s or getattr(profile, "timeout_s", None) or DEFAULT_SUBMIT_DEADLINE_S
        live.deadline = time.monotonic() + float(limit)  # type: ignore[attr-defined]
        try:
            ref = await self._submit_steps(live, spec)
        except _Stop as stop:
            await self._finish(live, State.CANCELLED, message=stop.message, error=stop.error)
            if stop.error is not None:
                raise stop.error
            return task_id
        except asyncio.CancelledError:
            await self._finish(live, State.CANCELLED, message="cancelled before submission; nothing was paid")
            raise
        except BaseException as e:
            await self._finish(live, State.FAILED, error=e)
            if isinstance(e, RemoteError):
                raise e.with_context(provider=profile.provider, profile=profile.name)
            raise
        live.ref = ref
        await self._save(live, remote_id=ref.remote_id, remote_data=ref.data, console_url=ref.console_url,
                         phase="acknowledged", state=State.QUEUED.value, message="submitted",
                         started_at=time.time())
        live.watcher = self._spawn(self._watch(live))
        if live.cancel_requested:  # asked while the create was on its way: stop it now
            await self.cancel(task_id, "cancelled while submitting", force=True)
        return task_id

    def _check_stop(self, live: Live, doing: str) -> None:
        if live.cancel_requested:
            raise _Stop(f"cancelled {doing}; nothing was paid")
        if time.monotonic() > live.deadline:  # type: ignore[attr-defined]
            raise _Stop(f"not submitted: the deadline passed {doing}; nothing was paid",
                        live.provider.error(RemoteTimeout, f"the task could not be submitted in time ({doing}); "
                                            "nothing was paid", hint="raise timeout_s or try again later"))

    async def _nap(self, live: Live, seconds: float, doing: str) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._check_stop(live, doing)
            await asyncio.sleep(min(0.25, max(0.0, end - time.monotonic())))
        self._check_stop(live, doing)

    async def _submit_steps(self, live: Live, spec: SubmitSpec) -> RemoteRef:
        provider = live.provider
        refuse_file_kinds(provider, spec)
        pre = await provider.validate(spec)
        if pre.cost_estimate is not None:
            unit = f" {pre.cost_unit}" if pre.cost_unit else ""
            await self._save(live, cost=pre.cost_estimate, message=f"estimated cost {pre.cost_estimate:g}{unit}")
        if pre.workflow_label:
            await self._save(live, workflow=pre.workflow_label)
        slot = self._slots[live.row["profile"]]
        said = False
        while True:  # in slices, so a cancel or the deadline ends the wait at once
            self._check_stop(live, "while waiting for a free slot")
            if slot.locked() and not said:  # (checked each slice: another task may have just taken it)
                said = True
                await self._save(live, message=f"waiting for a free slot (max_concurrent "
                                               f"{provider.profile.max_concurrent} for this profile)")
            try:
                await asyncio.wait_for(slot.acquire(), 0.25)
                break
            except asyncio.TimeoutError:
                continue
        live.holds_slot = True
        spec = await self._upload_inputs(live, spec)
        self._check_stop(live, "before submission")
        key = provider.new_submission_key()
        fields: dict = {"phase": "sending", "submission_key": key, "message": "submitting",
                        "submit_spec": spec_json(spec)}  # what a look-up after a crash re-sends or compares
        if provider.capabilities.client_chosen_id:
            fields["remote_id"] = key
        await self._save(live, **fields)
        return await self._send(live, spec, key)

    async def _upload_inputs(self, live: Live, spec: SubmitSpec) -> SubmitSpec:
        provider = live.provider
        files = [o for o in spec.overrides if o.is_file]
        out = []
        for o in spec.overrides:
            if not o.is_file:
                out.append(o)
                continue
            digest = o.sha256 or await asyncio.to_thread(content_sha256, o.value)
            cache_key = (live.row["profile"], digest)
            cached = self._upload_cache.get(cache_key)
            ttl = provider.upload_ttl_s
            if cached is not None and (ttl is None or time.time() - cached[1] < ttl * 0.9):
                out.append(o.with_value(cached[0]))
                continue
            n = files.index(o) + 1
            what = f"uploading {o.kind} {n} of {len(files)}"
            await self._save(live, message=f"{what} for {o.target}")
            mime, name = upload_name(o, digest)
            try:
                data = await self._sendable(provider, o.value)
                value = await self._look(live, lambda data=data: provider.upload(data, mime, name), what)
            except RemoteError as e:
                if not e.field:
                    e.field = o.kind
                e.detail = f"upload for target {o.target} failed: {e.detail}"
                raise
            self._upload_cache[cache_key] = (value, time.time())
            while len(self._upload_cache) > 4096:  # bounded: the oldest uploads are forgotten first
                self._upload_cache.pop(next(iter(self._upload_cache)))
            out.append(o.with_value(value))
        return SubmitSpec(workflow=spec.workflow, overrides=tuple(out), profile=spec.profile, options=spec.options)

    @staticmethod
    async def _sendable(provider: Any, data: Any) -> Any:
        """A file on disk goes to a provider whose upload streams it as is (checked unchanged since its
        node read it); other providers get its bytes."""
        if not isinstance(data, LocalFile):
            return data
        try:
            await asyncio.to_thread(data.check)
        except RemoteError as e:
            raise e.with_context(provider=provider.id, profile=provider.name) from None
        return data if provider.streams_uploads else await asyncio.to_thread(data.read)

    async def _look(self, live: Live, fn: Any, doing: str) -> Any:
        """A step that pays nothing (upload, find): retried with backoff until the deadline."""
        attempt = 0
        while True:
            self._check_stop(live, doing)
            try:
                return await fn()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                attempt += 1
                if look_is_fatal(e) or attempt >= self.policy.attempts:
                    raise
                delay = self.policy.delay(attempt, getattr(e, "retry_after", None))
                await self._save(live, message=f"{doing}: {_short(e)}; trying again in {delay:.0f} s")
                await self._nap(live, delay, doing)

    async def _send(self, live: Live, spec: SubmitSpec, key: str) -> RemoteRef:
        """The create, under the rules: resend only what provably never arrived; wait out
        refusals that say "later"; resolve every other failure by looking the task up."""
        provider = live.provider
        attempt = resends = 0
        while True:
            sent_at = time.monotonic()
            try:
                return await provider.submit(spec, key)
            except asyncio.CancelledError:
                raise
            except BaseException as e:
                outcome = create_outcome(e)
                if outcome is Create.REFUSED:
                    raise
                if outcome is Create.AMBIGUOUS:
                    ref = await self._resolve_ambiguous(live, spec, key, e, sent_at)
                    if ref is not None:
                        return ref
                    resends += 1
                    if resends > MAX_RESENDS:
                        raise provider.error(AmbiguousSubmit, f"the service keeps failing to answer the submission "
                                             f"({_short(e)}), and it received none of them",
                                             hint="nothing was paid; try again later") from None
                    await self._save(live, message="the service never received the submission; sending it again")
                    continue
                attempt += 1
                self._throttled(provider, e)
                if outcome is Create.RESEND and attempt >= self.policy.attempts:
                    raise
                delay = self.policy.delay(attempt, getattr(e, "retry_after", None))
                what = "waiting in the local queue" if outcome is Create.WAIT else "could not reach the service"
                await self._save(live, message=f"{what}: {_short(e)} (attempt {attempt}, next try in {delay:.0f} s)")
                await self._nap(live, delay, "before submission")

    async def _resolve_ambiguous(self, live: Live, spec: SubmitSpec, key: str, err: BaseException,
                                 sent_at: float) -> Optional[RemoteRef]:
        """Look the task up by the provider's means. "Not found" is trusted only once the landing
        window after the send has passed; when the provider cannot look, or the look keeps
        failing, stop and tell the user (the task row stays in the journal)."""
        provider = live.provider
        detail = _short(err)
        await self._save(live, message=f"the answer to the submission was lost ({detail}); checking whether "
                                       f"{provider.id} received it")
        ref, why = await self._find_with_landing(provider, key, spec, sent_at)
        if ref is not None or why is None:
            return ref
        raise provider.error(
            AmbiguousSubmit, f"the submission may have reached the service, but its answer was lost ({detail}); {why}",
            hint="check the provider's console for a new task before queueing again (it was not re-sent, so you are "
                 "not billed twice); if one is there, RemoteRecover fetches it by its remote id") from None

    async def _find_with_landing(self, provider: Any, key: str, spec: SubmitSpec,
                                 sent_at: float) -> tuple[Optional[RemoteRef], Optional[str]]:
        """(ref, None) found; (None, None) the service says there is none after the landing
        window; (None, why) the service could not tell."""
        if not provider.capabilities.can_find:
            return None, f"{provider.id} gives no way to look a task up by the client's key"
        failures = 0
        while True:
            try:
                ref = await provider.find(key, spec)
                failures = 0
            except NotSupported as e:
                return None, f"{provider.id} cannot look it up here ({_short(e, 120)})"
            except asyncio.CancelledError:
                raise
            except Exception as e:
                failures += 1
                if failures > self.policy.attempts + 2:
                    return None, f"looking it up kept failing ({_short(e)})"
                await asyncio.sleep(self.policy.delay(failures, getattr(e, "retry_after", None)))
                continue
            if ref is not None:
                return ref, None
            remaining = sent_at + self.policy.landing_s - time.monotonic()
            if remaining <= 0:
                return None, None
            await asyncio.sleep(min(2.0, max(0.05, remaining / 4)))

    # ================================================================ reuse
    async def _try_reuse(self, reuse_key: str, profile: Any, label: str, owner: Optional[str],
                         task_id: Optional[str]) -> Optional[str]:
        active = await self._db(self.journal.find_active, reuse_key)
        if active is not None:  # the same paid task is still on its way: wait for it, do not pay again
            return active["id"]
        candidates = await self._db(self.journal.find_reusable, reuse_key) or []
        for old in candidates:
            outs = await self._db(self.journal.outputs, old["id"])
            if not all((o.get("path") and Path(o["path"]).is_file()) or o["kind"] == "text" for o in outs):
                continue
            task_id = task_id or new_task_id()
            now = time.time()
            await self._db(self.journal.create, task_id, profile=profile.name,
                           provider=profile.provider, workflow=old.get("workflow") or label,
                           state=State.SUCCEEDED.value, phase="acknowledged", reused=True, reused_from=old["id"],
                           reuse_key=reuse_key, remote_id=old.get("remote_id"), owner=owner, progress=1.0,
                           cost=0.0, console_url=old.get("console_url"), outputs_state="saved",
                           message=f"reused the result of task {old['id']} (no remote call, no cost)",
                           started_at=now, finished_at=now)
            await self._db(self.journal.set_outputs, task_id, outs)
            await self._save(task_id)
            return task_id
        return None



def spec_json(spec: SubmitSpec) -> dict:
    """The submitted spec as journal JSON (uploads already replaced by the service's values)."""
    return {"workflow": spec.workflow, "profile": spec.profile,
            "overrides": [[o.target, o.kind, o.value, o.sha256] for o in spec.overrides]}


def content_sha256(value: Any) -> str:
    """The hash of a file input that came without one: its bytes, or the file on disk in blocks."""
    return file_sha256(value.path) if isinstance(value, LocalFile) else hashlib.sha256(value).hexdigest()


def spec_from_json(data: Any, profile: str) -> SubmitSpec:
    if not isinstance(data, dict):
        return SubmitSpec(workflow="", profile=profile)
    overrides = tuple(Override(str(t), str(k), v, sha256=h) for t, k, v, h in data.get("overrides") or []
                      if not not_uploaded(v))
    return SubmitSpec(workflow=str(data.get("workflow") or ""), overrides=overrides, profile=profile)


def refuse_file_kinds(provider: Any, spec: SubmitSpec) -> None:
    """A file input the service cannot take is refused before anything is paid (design §2)."""
    takes = tuple(provider.capabilities.input_kinds) if provider.capabilities.uploads else ()
    for o in spec.overrides:
        if o.is_file and o.kind not in takes:
            can = ", ".join(takes) if takes else "no files"
            raise provider.error(NotSupported, f"{provider.name} cannot take a {o.kind} input (target {o.target}); "
                                               f"it takes {can}", field=o.kind,
                                 hint="pass a URL of the file with RemoteInputText where the workflow takes one")


def upload_name(o: Override, digest: str) -> tuple[str, str]:
    """The type and content-addressed name a file goes up under: ``<sha256>.png`` for images,
    ``<sha256>-<own name>`` for other files (the service sees the real extension)."""
    if o.kind == "image" and not o.name:
        return o.mime or "image/png", f"{digest}.png"
    own = PurePosixPath((o.name or "").replace("\\", "/")).name or f"input.{o.kind}"
    return o.mime or mimetypes.guess_type(own)[0] or "application/octet-stream", f"{digest[:32]}-{own}"
