"""TaskManager: submit, watch, cancel, recover, per-profile concurrency and pay-once reuse.

It runs on its own engine thread with its own event loop, so remote work keeps progressing (and
results keep downloading) while a local node blocks ComfyUI's prompt loop, across prompts, and
after a prompt ends. Nodes and routes talk to it through thread-safe futures (:meth:`call`).

Journal order for one task (each step written before the network call it guards)::

    create row (submitting, phase=prepared) → uploads → phase=sending + submission key →
    submit → remote id, phase=acknowledged, queued → updates … → downloading → outputs saved →
    succeeded | failed | cancelled   (abandoned: interrupted where the provider cannot cancel)
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

from ..providers import provider_class
from ..providers.base import (AmbiguousSubmit, CapacityBusy, NotFound, NotSupported, Override, ProtocolError,
                              Provider, RemoteError, RemoteRef, State, SubmitSpec, TaskUpdate, TransientError,
                              last_wins)
from . import redaction
from .downloads import DownloadsMixin
from .events import EventHub
from .journal import Journal
from .live import Live, new_task_id, task_json
from .profiles import Profile, Profiles
from .recovery import RecoveryMixin
from .transfer import Http, RetryPolicy
from .workflows import resolve_workflow, reuse_key as make_reuse_key

log = redaction.get_logger("comfyui_remote.engine")

WATCH_BACKOFF_CAP_S = 30.0
CAPACITY_BACKOFF_CAP_S = 30.0


class TaskManager(RecoveryMixin, DownloadsMixin):
    def __init__(self, home: Path, results_dir: Path, *, profiles: Optional[Profiles] = None,
                 policy: Optional[RetryPolicy] = None, sandbox_workflows: Optional[Path] = None):
        self.home = Path(home)
        self.results_dir = Path(results_dir)
        self.profiles = profiles or Profiles(self.home)
        self.policy = policy or RetryPolicy()
        self.sandbox_workflows = sandbox_workflows or Path(__file__).resolve().parents[1] / "providers" / "sandbox_workflows"
        self.events = EventHub()
        self.journal: Optional[Journal] = None
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._db_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="comfyui_remote_journal")
        self._providers: dict[str, Provider] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._live: dict[str, Live] = {}
        self._snapshots: dict[str, dict] = {}  # task id -> last Task JSON (read from any thread)
        self._upload_cache: dict[tuple[str, str], Any] = {}
        self._started = threading.Event()
        self._background: set[asyncio.Task] = set()
        self._early_cancels: set[str] = set()

    # ================================================================ lifecycle
    def start(self, reattach: bool = True) -> "TaskManager":
        if self._thread is not None:
            return self
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "workflows").mkdir(exist_ok=True)
        self.journal = Journal(self.home / "journal.sqlite3")
        self._thread = threading.Thread(target=self._run_loop, name="comfyui_remote_engine", daemon=True)
        self._thread.start()
        self._started.wait(10)
        if reattach:
            self.call(self.reattach())
        return self

    def _run_loop(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self._started.set()
        self.loop.run_forever()

    def stop(self, timeout: float = 10.0) -> None:
        if self.loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
        try:
            fut.result(timeout)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None
        self._db_pool.shutdown(wait=True)
        if self.journal is not None:
            self.journal.close()

    async def _shutdown(self) -> None:
        for t in list(self._background):
            t.cancel()
        for live in list(self._live.values()):
            if live.watcher is not None:
                live.watcher.cancel()
        await asyncio.gather(*self._background, *(l.watcher for l in self._live.values() if l.watcher),
                             return_exceptions=True)
        for p in self._providers.values():
            try:
                await p.close()
                await p.http.close()
            except Exception:
                pass

    def call(self, coro: Awaitable) -> concurrent.futures.Future:
        """Run a coroutine on the engine loop from any thread."""
        assert self.loop is not None, "TaskManager not started"
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def _spawn(self, coro: Awaitable) -> asyncio.Task:
        t = asyncio.ensure_future(coro)
        self._background.add(t)
        t.add_done_callback(self._background.discard)
        return t

    async def _db(self, fn: Callable, *args: Any, **kw: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_pool, lambda: fn(*args, **kw))

    # ================================================================ providers
    def provider(self, profile: Profile) -> Provider:
        p = self._providers.get(profile.name)
        if p is None or p.profile is not profile:
            self.profiles.validate_provider(profile)
            cls = provider_class(profile.provider)
            http = Http(provider=profile.provider, profile=profile.name, policy=self.policy)
            p = cls(profile, http)
            if hasattr(p, "attach_engine"):
                p.attach_engine(self)
            self._providers[profile.name] = p
            self._slots.setdefault(profile.name, asyncio.Semaphore(max(1, int(profile.max_concurrent or 1))))
        return p

    def _provider_for_row(self, row: dict) -> Provider:
        return self.provider(self.profiles.get(row["profile"]))

    # ================================================================ snapshots & events
    def snapshot(self, task_id: str) -> Optional[dict]:
        """Latest Task JSON (thread-safe read of an in-memory copy; journal for old tasks)."""
        snap = self._snapshots.get(task_id)
        if snap is not None:
            return snap
        assert self.journal is not None
        row = self.journal.get(task_id)
        return task_json(row, self.journal.outputs(task_id)) if row else None

    async def _save(self, live_or_id: Any, **fields: Any) -> dict:
        """Write fields to the journal, refresh the snapshot, publish an event."""
        task_id = live_or_id.row["id"] if isinstance(live_or_id, Live) else live_or_id
        if isinstance(live_or_id, Live) and live_or_id.abandoned and fields.get("state") in (
                State.QUEUED.value, State.RUNNING.value):
            fields.pop("state")  # an update read before the task was abandoned must not revive it
        if fields:
            await self._db(self.journal.update, task_id, **fields)  # type: ignore[union-attr]
        row = await self._db(self.journal.get, task_id)  # type: ignore[union-attr]
        outs = await self._db(self.journal.outputs, task_id)  # type: ignore[union-attr]
        if isinstance(live_or_id, Live):
            live_or_id.row = row
        snap = task_json(row, outs)
        self._snapshots[task_id] = snap
        self.events.publish(snap)
        return snap

    # ================================================================ submit
    async def submit(self, profile_name: str, workflow: str, overrides: list[Override], *,
                     reuse: bool = True, owner: Optional[str] = None, task_id: Optional[str] = None) -> str:
        """Submit a task and return its local id as soon as the provider acknowledged it (or
        as soon as a reusable earlier result is found). Errors before any paid step raise."""
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
        row = await self._db(self.journal.create, task_id, profile=profile.name,  # type: ignore[union-attr]
                             provider=profile.provider, workflow=label, state=State.SUBMITTING.value,
                             reuse_key=reuse_key, owner=owner, can_cancel=provider.capabilities.cancel,
                             message="preparing")
        live = Live(row=row, provider=provider, done=asyncio.get_running_loop().create_future())
        live.cancel_requested = task_id in self._early_cancels
        self._live[task_id] = live
        await self._save(live)
        try:
            ref = await self._submit_steps(live, spec)
        except BaseException as e:
            err = e if isinstance(e, RemoteError) else None
            if isinstance(e, asyncio.CancelledError):
                await self._finish(live, State.CANCELLED, message="cancelled before submission")
                raise
            await self._finish(live, State.FAILED, error=err or e)
            if err is not None:
                raise err.with_context(provider=profile.provider, profile=profile.name)
            raise
        if ref is None:  # cancelled while submitting (and cancelled remotely where possible)
            return task_id
        live.watcher = self._spawn(self._watch(live))
        return task_id

    async def _submit_steps(self, live: Live, spec: SubmitSpec) -> Optional[RemoteRef]:
        provider = live.provider
        pre = await provider.validate(spec)
        if pre.cost_estimate is not None:
            unit = f" {pre.cost_unit}" if pre.cost_unit else ""
            await self._save(live, cost=pre.cost_estimate, message=f"estimated cost {pre.cost_estimate:g}{unit}")
        if pre.workflow_label:
            await self._save(live, workflow=pre.workflow_label)
        slot = self._slots[live.row["profile"]]
        if slot.locked():
            await self._save(live, message=f"waiting for a free slot (max_concurrent "
                                           f"{live.provider.profile.max_concurrent} for this profile)")
        while True:  # in slices, so a cancel while waiting for a slot ends the task at once
            if live.cancel_requested:
                await self._finish(live, State.CANCELLED, message="cancelled while waiting for a free slot; "
                                                                  "nothing was paid")
                return None
            try:
                await asyncio.wait_for(slot.acquire(), 0.25)
                break
            except asyncio.TimeoutError:
                continue
        live.holds_slot = True
        try:
            spec = await self._upload_inputs(live, spec)
            if live.cancel_requested:
                await self._finish(live, State.CANCELLED, message="cancelled before submission; nothing was paid")
                return None
            key = provider.new_submission_key()
            fields: dict = {"phase": "sending", "submission_key": key, "message": "submitting"}
            if provider.capabilities.client_chosen_id:
                fields["remote_id"] = key
            await self._save(live, **fields)
            ref = await self._send(live, spec, key)
        except BaseException:
            self._release_slot(live)
            raise
        live.ref = ref
        await self._save(live, remote_id=ref.remote_id, remote_data=ref.data, console_url=ref.console_url,
                         phase="acknowledged", state=State.QUEUED.value, message="submitted",
                         started_at=time.time())
        if live.cancel_requested:
            await self._cancel_remote(live)
            return None
        return ref

    async def _upload_inputs(self, live: Live, spec: SubmitSpec) -> SubmitSpec:
        out = []
        images = [o for o in spec.overrides if o.kind == "image"]
        for o in spec.overrides:
            if o.kind != "image":
                out.append(o)
                continue
            cache_key = (live.row["profile"], o.sha256 or hashlib.sha256(o.value).hexdigest())
            value = self._upload_cache.get(cache_key)
            if value is None:
                await self._save(live, message=f"uploading image {images.index(o) + 1} of {len(images)} "
                                               f"for {o.target}")
                try:
                    value = await live.provider.upload(o.value, "image/png", f"{cache_key[1]}.png")
                except RemoteError as e:
                    if not e.field:
                        e.field = "image"
                    e.detail = f"upload for target {o.target} failed: {e.detail}"
                    raise
                self._upload_cache[cache_key] = value
            out.append(o.with_value(value))
        return SubmitSpec(workflow=spec.workflow, overrides=tuple(out), profile=spec.profile, options=spec.options)

    async def _send(self, live: Live, spec: SubmitSpec, key: str) -> RemoteRef:
        """submit() with the engine's rules: capacity waits locally, ambiguous answers are
        resolved with find() or stop for the user, never a blind resend."""
        provider = live.provider
        attempt = 0
        while True:
            try:
                return await provider.submit(spec, key)
            except CapacityBusy as e:
                attempt += 1
                delay = e.retry_after or min(CAPACITY_BACKOFF_CAP_S, 2.0 * 2 ** min(attempt, 4))
                await self._save(live, message=f"waiting in the local queue: {e.detail} (attempt {attempt}, "
                                               f"next try in {delay:.0f} s)")
                await self._sleep_or_cancel(live, delay)
                if live.cancel_requested:
                    raise asyncio.CancelledError()
            except AmbiguousSubmit as e:
                ref = await self._resolve_ambiguous(live, spec, key, e)
                if ref is not None:
                    return ref
                # find() says nothing was created: sending again cannot pay twice
                await self._save(live, message="the service did not receive the submission; sending again")

    async def _resolve_ambiguous(self, live: Live, spec: SubmitSpec, key: str, err: AmbiguousSubmit) -> Optional[RemoteRef]:
        provider = live.provider
        for attempt in range(6):
            try:
                return await provider.find(key, spec)
            except NotSupported:
                raise provider.error(
                    AmbiguousSubmit, f"the submission may have reached the service, but its answer was lost "
                                     f"({err.detail})",
                    hint="check the provider's console for a new task before queueing again; it was not "
                         "re-sent automatically so that you are not billed twice") from None
            except (TransientError, ProtocolError):
                await asyncio.sleep(self.policy.delay(attempt))
        raise provider.error(AmbiguousSubmit, f"could not find out whether the submission was received ({err.detail})",
                             hint="check the provider's console before queueing again")

    async def _sleep_or_cancel(self, live: Live, delay: float) -> None:
        end = time.monotonic() + delay
        while time.monotonic() < end and not live.cancel_requested:
            await asyncio.sleep(min(0.2, end - time.monotonic()))

    # ================================================================ reuse
    async def _try_reuse(self, reuse_key: str, profile: Profile, label: str, owner: Optional[str],
                         task_id: Optional[str]) -> Optional[str]:
        candidates = await self._db(self.journal.find_reusable, reuse_key) or []  # type: ignore[union-attr]
        for old in candidates:
            outs = await self._db(self.journal.outputs, old["id"])  # type: ignore[union-attr]
            if not all((o.get("path") and Path(o["path"]).is_file()) or o["kind"] == "text" for o in outs):
                continue
            task_id = task_id or new_task_id()
            now = time.time()
            await self._db(self.journal.create, task_id, profile=profile.name,  # type: ignore[union-attr]
                           provider=profile.provider, workflow=old.get("workflow") or label,
                           state=State.SUCCEEDED.value, phase="acknowledged", reused=True, reused_from=old["id"],
                           reuse_key=reuse_key, remote_id=old.get("remote_id"), owner=owner, progress=1.0,
                           cost=0.0, console_url=old.get("console_url"), outputs_state="saved",
                           message=f"reused the result of task {old['id']} (no remote call, no cost)",
                           started_at=now, finished_at=now)
            await self._db(self.journal.set_outputs, task_id, outs)  # type: ignore[union-attr]
            await self._save(task_id)
            return task_id
        return None

    # ================================================================ watch
    async def _watch(self, live: Live) -> None:
        failures = 0
        provider = live.provider
        try:
            while True:
                try:
                    terminal = None
                    async for upd in provider.watch(live.ref):  # type: ignore[arg-type]
                        failures = 0
                        await self._apply(live, upd)
                        if upd.state.terminal:
                            terminal = upd
                            break
                    if terminal is not None:
                        await self._on_terminal(live, terminal)
                        return
                    raise provider.error(TransientError, "the status stream ended without a final state")
                except (TransientError, ProtocolError) as e:
                    failures += 1
                    delay = min(WATCH_BACKOFF_CAP_S, self.policy.delay(min(failures, 6)))
                    if failures >= 3:
                        await self._save(live, message=f"lost contact ({e.detail}); still tracked, retrying in "
                                                       f"{delay:.0f} s")
                    await asyncio.sleep(delay)
                except NotFound as e:
                    await self._finish(live, State.FAILED, error=e)
                    return
                except RemoteError as e:
                    await self._finish(live, State.FAILED, error=e)
                    return
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a provider bug must not leave the task hanging
            log.exception("watcher for task %s crashed", live.row["id"])
            await self._finish(live, State.FAILED, error=e)

    async def _apply(self, live: Live, upd: TaskUpdate) -> None:
        fields: dict = {}
        for name in ("queue_position", "queue_length", "progress", "node", "step", "max_steps", "eta_s",
                     "message", "cost"):
            value = getattr(upd, name)
            if value is not None:
                fields[name] = value
        if upd.state in (State.QUEUED, State.RUNNING):
            fields["state"] = upd.state.value
            if upd.state is State.RUNNING:
                fields.setdefault("queue_position", None)
        if fields:
            await self._save(live, **fields)

    async def _on_terminal(self, live: Live, upd: TaskUpdate) -> None:
        if upd.state is State.SUCCEEDED:
            outputs = upd.outputs
            if outputs is None:
                outputs = await self._retry(lambda: live.provider.outputs(live.ref), live)  # type: ignore[arg-type]
            await self._download_all(live, outputs)
            return
        if upd.state is State.CANCELLED:
            await self._finish(live, State.CANCELLED, message=upd.message or "cancelled on the service")
            return
        await self._finish(live, State.FAILED, error=upd.error or live.provider.error(
            RemoteError, upd.message or "the remote task failed"))

    async def _retry(self, fn: Callable[[], Awaitable[Any]], live: Live, attempts: int = 8) -> Any:
        for attempt in range(attempts):
            try:
                return await fn()
            except (TransientError, ProtocolError):
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(self.policy.delay(attempt))

    # ================================================================ finishing
    async def _finish(self, live: Live, state: State, *, error: Any = None, message: Optional[str] = None,
                      outputs_state: Optional[str] = None, error_text: Optional[str] = None,
                      pending_outputs: Any = ...) -> None:
        fields: dict = {"state": state.value, "finished_at": time.time()}
        if state is State.SUCCEEDED:
            fields.update(progress=1.0, queue_position=None)
        if error is not None:
            if isinstance(error, RemoteError):
                error.with_context(provider=live.row["provider"], profile=live.row["profile"])
                fields.update(error=str(error), error_kind=error.kind)
            else:
                fields.update(error=f"[{live.row['provider']}/{live.row['profile']}] internal error: "
                                    f"{error.__class__.__name__}: {error}", error_kind="internal")
        if error_text:
            fields["error"] = error_text
        if message is not None:
            fields["message"] = message
        if outputs_state is not None:
            fields["outputs_state"] = outputs_state
        if pending_outputs is not ...:
            fields["pending_outputs"] = pending_outputs
        self._release_slot(live)
        await self._save(live, **fields)
        if live.done is not None and not live.done.done():
            live.done.set_result(live.row["id"])
        self._live.pop(live.row["id"], None)

    def _release_slot(self, live: Live) -> None:
        if live.holds_slot:
            live.holds_slot = False
            self._slots[live.row["profile"]].release()

    # ================================================================ waiting
    async def wait(self, task_id: str) -> dict:
        """Until the task is terminal (succeeded/failed/cancelled); returns its Task JSON."""
        live = self._live.get(task_id)
        if live is not None and live.done is not None:
            await asyncio.shield(live.done)
        snap = self.snapshot(task_id)
        if snap is None:
            raise NotFound(f"unknown task {task_id}", field="task_id")
        return snap

    def outputs_of(self, task_id: str) -> list[dict]:
        """Saved outputs with their paths (engine-side records; never for routes to echo)."""
        return self.journal.outputs(task_id)  # type: ignore[union-attr]

    # ================================================================ cancel
    async def cancel(self, task_id: str, reason: str = "cancelled by the user") -> dict:
        live = self._live.get(task_id)
        if live is None:
            snap = self.snapshot(task_id)
            if snap is None:
                self._early_cancels.add(task_id)  # the submit that creates it will stop
                raise NotFound(f"unknown task {task_id}", field="task_id")
            return snap
        live.cancel_requested = True
        if live.ref is None:  # still preparing/submitting: the submit path honours the flag
            await self._save(live, message="cancel requested; stopping before submission")
            return self.snapshot(task_id)  # type: ignore[return-value]
        await self._cancel_remote(live, reason)
        return self.snapshot(task_id)  # type: ignore[return-value]

    async def _cancel_remote(self, live: Live, reason: str = "cancelled by the user") -> None:
        provider = live.provider
        if provider.capabilities.cancel:
            try:
                await asyncio.wait_for(provider.cancel(live.ref), 10)  # type: ignore[arg-type]
            except (RemoteError, asyncio.TimeoutError) as e:
                detail = e.detail if isinstance(e, RemoteError) else "timed out"
                await self._save(live, message=f"cancel failed ({detail}); the task stays tracked")
                return
            if live.watcher is not None:
                live.watcher.cancel()
            await self._finish(live, State.CANCELLED, message=reason)
            return
        live.abandoned = True
        await self._save(live, state=State.ABANDONED.value,
                         message=f"stopped waiting: {provider.id} has no cancel, so the remote task may still run "
                                 f"and bill; it stays tracked and its result is fetched if it finishes "
                                 f"(RemoteRecover or the Remote panel)")
        if live.done is not None and not live.done.done():
            live.done.set_result(live.row["id"])

    # ================================================================ profiles
    async def test_profile(self, name: str) -> tuple[bool, str]:
        try:
            profile = self.profiles.get(name)
            profile.check_configured()
            provider = self.provider(profile)
            msg = await asyncio.wait_for(provider.check(), 30)
            return True, redaction.scrub(str(msg))
        except RemoteError as e:
            return False, redaction.scrub(str(e))
        except asyncio.TimeoutError:
            return False, f"[{name}] no answer within 30 s"

    def list_tasks(self, state: Optional[str], limit: int, before: Optional[int]) -> tuple[list[dict], Optional[int]]:
        rows, nxt = self.journal.list(state, limit, before)  # type: ignore[union-attr]
        return [self._snapshots.get(r["id"]) or task_json(r, self.journal.outputs(r["id"])) for r in rows], nxt  # type: ignore[union-attr]


