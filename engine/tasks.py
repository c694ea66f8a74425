"""TaskManager: the one owner of every paid step, for every provider.

It runs on its own engine thread with its own event loop, so remote work keeps progressing (and
results keep downloading) while a local node blocks ComfyUI's prompt loop, across prompts, and
after a prompt ends. Nodes and routes talk to it through thread-safe futures (:meth:`call`).
The rules it applies are in ``engine/rules.py``; the steps live in one module each:
``submission.py`` (create, uploads, reuse), ``watch.py`` (the one watch loop), ``cancelling.py``,
``downloads.py`` and ``recovery.py``.

Journal order for one task (each step written before the network call it guards)::

    create row (submitting, phase=prepared) → uploads → phase=sending + submission key →
    submit → remote id, phase=acknowledged, queued → updates … → downloading → outputs saved →
    succeeded | failed | cancelled   (abandoned: interrupted where the provider cannot cancel)
"""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

from ..providers import provider_class
from ..providers.base import NotFound, Provider, RateLimited, RemoteError, State
from . import redaction
from .cancelling import CancelMixin
from .downloads import DownloadsMixin
from .events import EventHub
from .journal import Journal
from .live import Live, new_task_id, task_json  # noqa: F401  (new_task_id is re-exported for nodes)
from .pacing import Budget
from .profiles import Profile, Profiles
from .recovery import RecoveryMixin
from .rules import RetryPolicy
from .submission import SubmitMixin
from .transfer import Http
from .urls import host_is_private
from .watch import WatchMixin

log = redaction.get_logger("comfyui_remote.engine")


def _fingerprint(profile: Any) -> tuple:
    """What makes two loads of a profile the same provider (secrets compare as set/unset only:
    a changed key is read on each call anyway)."""
    return (getattr(profile, "provider", None), getattr(profile, "url", None),
            getattr(profile, "max_concurrent", None), getattr(profile, "poll_interval_s", None),
            repr(sorted((getattr(profile, "settings", None) or {}).items())))


async def _close_provider(p: Provider) -> None:
    try:
        await p.close()
        await p.http.close()
    except Exception:
        pass


class TaskManager(SubmitMixin, WatchMixin, CancelMixin, DownloadsMixin, RecoveryMixin):
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
        self._upload_cache: dict[tuple[str, str], tuple[Any, float]] = {}  # (profile, sha256) -> (value, when)
        self._started = threading.Event()
        self._background: set[asyncio.Task] = set()
        self._early_cancels: set[str] = set()
        self._save_locks: dict[str, asyncio.Lock] = {}

    # ================================================================ lifecycle
    def start(self, reattach: bool = True) -> "TaskManager":
        if self._thread is not None:
            return self
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "workflows").mkdir(exist_ok=True)
        self.journal = Journal(self.home / "journal.sqlite3")
        self._thread = threading.Thread(target=self._run_loop, name="comfyui_remote_engine", daemon=True)
        self._thread.start()
        atexit.register(self.stop, 5.0)  # when ComfyUI exits: close sockets, flush and close the journal
        self._started.wait(10)
        if reattach:  # registers every unfinished task (quick); following them goes on in the background
            try:
                self.call(self.reattach()).result(30)
            except Exception:
                log.exception("re-attaching unfinished tasks failed")
        return self

    def _run_loop(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self._started.set()
        self.loop.run_forever()

    def stop(self, timeout: float = 10.0) -> None:
        if self.loop is None or self._thread is None:
            return
        atexit.unregister(self.stop)
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
        tasks = list(self._background)
        for live in self._live.values():
            tasks += [t for t in (live.watcher, live.canceller) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
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
        """The provider of a profile, kept while the profile's settings stay the same (a reloaded
        profiles.toml that changed nothing for it keeps its sessions and sockets); a changed
        profile gets a new provider and the old one is closed."""
        p = self._providers.get(profile.name)
        if p is not None and p.profile is not profile and _fingerprint(p.profile) == _fingerprint(profile):
            p.profile = profile  # same settings: keep the sessions, take the fresh object
        if p is None or p.profile is not profile:
            if p is not None:
                self._spawn(_close_provider(p))
            self.profiles.validate_provider(profile)
            cls = provider_class(profile.provider)
            limit = profile.get("max_rps") if hasattr(profile, "get") else None  # 0 = no limit
            budget = Budget.for_limit(float(limit) if limit is not None else cls.max_rps)
            http = Http(provider=profile.provider, profile=profile.name, policy=self.policy, allow_private=None,
                        budget=budget)
            p = cls(profile, http)
            if hasattr(p, "attach_engine"):
                p.attach_engine(self)
            self._providers[profile.name] = p
            self._slots.setdefault(profile.name, asyncio.Semaphore(max(1, int(profile.max_concurrent or 1))))
        return p

    @staticmethod
    def _throttled(provider: Provider, err: BaseException) -> None:
        """A "too fast" answer to any call slows every call of the profile, not one task."""
        if isinstance(err, RateLimited):
            provider.http.budget.slow_down(err.retry_after)

    def _provider_for_row(self, row: dict) -> Provider:
        return self.provider(self.profiles.get(row["profile"]))

    def _forget_finished(self) -> None:
        """Keep the in-memory copies small: finished tasks are read from the journal again."""
        if len(self._snapshots) > 2000:
            for tid in [t for t in self._snapshots if t not in self._live][: len(self._snapshots) - 1000]:
                self._snapshots.pop(tid, None)
                self.events.forget(tid)

    async def _downloads_allowed_private(self, provider: Provider) -> None:
        """Decide once per provider whether result links may point at private addresses: only
        when the profile's own host is on this machine or its network."""
        if provider.http.allow_private is None:
            from urllib.parse import urlsplit

            url = getattr(provider.profile, "url", None) or getattr(provider, "local_url", None) or ""
            provider.http.allow_private = provider.id == "sandbox" or await host_is_private(urlsplit(str(url)).hostname)

    # ================================================================ snapshots & events
    def snapshot(self, task_id: str) -> Optional[dict]:
        """Latest Task JSON (thread-safe read of an in-memory copy; journal for old tasks)."""
        snap = self._snapshots.get(task_id)
        if snap is not None:
            return snap
        assert self.journal is not None
        row = self.journal.get(task_id)
        return task_json(row, self.journal.outputs(task_id)) if row else None

    async def _save(self, live_or_id: Any, *, when: Optional[Callable[[], bool]] = None, **fields: Any) -> dict:
        """Write fields to the journal, refresh the snapshot, publish an event. Saves of one task
        run one after the other, so a snapshot read before a later write never replaces it;
        ``when`` (checked in turn) skips a save that no longer applies."""
        task_id = live_or_id.row["id"] if isinstance(live_or_id, Live) else live_or_id
        lock = self._save_locks.setdefault(task_id, asyncio.Lock())
        async with lock:
            if when is not None and not when():
                return self._snapshots.get(task_id) or {}
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
        if task_id not in self._live and not lock.locked():
            self._save_locks.pop(task_id, None)
        return snap

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
        live.abandoned = False
        await self._save(live, **fields)
        if live.done is not None and not live.done.done():
            live.done.set_result(live.row["id"])
        if live.canceller is not None and live.canceller is not asyncio.current_task():
            live.canceller.cancel()
        self._live.pop(live.row["id"], None)
        self._forget_finished()

    def _release_slot(self, live: Live) -> None:
        if live.holds_slot:
            live.holds_slot = False
            self._slots[live.row["profile"]].release()

    # ================================================================ waiting
    async def wait(self, task_id: str) -> dict:
        """Until the task is terminal (or abandoned); returns its Task JSON."""
        live = self._live.get(task_id)
        if live is not None and live.done is not None:
            await asyncio.shield(live.done)
        snap = self.snapshot(task_id)
        if snap is None:
            raise NotFound(f"unknown task {task_id}", field="task_id")
        return snap

    def preview(self, task_id: str) -> Optional[tuple[int, str, bytes]]:
        """(number, mime, image) of the latest remote preview of a running task (thread-safe read)."""
        live = self._live.get(task_id)
        return live.preview if live is not None else None

    def outputs_of(self, task_id: str) -> list[dict]:
        """Saved outputs with their paths (engine-side records; never for routes to echo)."""
        return self.journal.outputs(task_id)  # type: ignore[union-attr]

    async def note(self, task_id: str, message: str) -> Optional[dict]:
        """Put a message on a task still on its way (e.g. why a waiting node stopped without
        cancelling it); an ended task keeps its last word."""
        live = self._live.get(task_id)
        if live is None:
            return None
        return await self._save(live, message=message)

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
