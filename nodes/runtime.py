"""The one TaskManager of this ComfyUI process, its ComfyUI wiring (paths, WebSocket events), and
the interrupt-aware wait every waiting node uses."""
from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import comfy.model_management as mm
import comfy.utils
import folder_paths
from server import PromptServer

from ..engine import redaction
from ..engine.tasks import TaskManager
from ..providers.base import RemoteError, RemoteTimeout
from ..providers.sandbox import SandboxProvider

EVENT = "comfyui_remote.task"
POLL_S = 0.25  # how often a waiting node checks interrupt and refreshes its progress
CANCEL_GRACE_S = 2.0

_lock = threading.Lock()
_manager: Optional[TaskManager] = None
_generation: dict[str, int] = {}  # submit node id -> bumped when its task ended badly


def home_dir() -> Path:
    env = os.environ.get("COMFYUI_REMOTE_HOME")
    if env:
        return Path(env).expanduser()
    return Path(folder_paths.get_user_directory()) / "comfyui_remote"


def manager() -> TaskManager:
    global _manager
    with _lock:
        if _manager is None:
            m = TaskManager(home_dir(), Path(folder_paths.get_output_directory()),
                            sandbox_workflows=SandboxProvider.WORKFLOWS_DIR)
            m.events.subscribe(_send_event)
            m.start()
            _manager = m
        return _manager


def _send_event(task: dict) -> None:
    server = PromptServer.instance
    if server is not None:
        server.send_sync(EVENT, task)  # thread-safe; broadcast to every browser


def profile_names() -> list[str]:
    return manager().profiles.names()


# ---------------------------------------------------------------- handles passed between nodes

@dataclass(frozen=True)
class TaskHandle:
    """REMOTE_TASK: what RemoteSubmit hands to RemoteWait."""

    task_id: str
    profile: str
    provider: str
    remote_id: Optional[str]
    owner: Optional[str] = None
    reused: bool = False

    def __str__(self) -> str:
        return f"{self.provider}/{self.profile} task {self.task_id} (remote {self.remote_id})"


@dataclass(frozen=True)
class RemoteResult:
    """REMOTE_RESULT: a finished task and its saved outputs (paths on this machine)."""

    task: dict
    outputs: tuple = field(default_factory=tuple)


def generation(node_id: Optional[str]) -> int:
    return _generation.get(str(node_id), 0)


def bump_generation(node_id: Optional[str]) -> None:
    """A task from this submit node ended badly: make ComfyUI run the node again next time
    instead of serving a dead handle from its cache."""
    if node_id is not None:
        _generation[str(node_id)] = _generation.get(str(node_id), 0) + 1


# ---------------------------------------------------------------- waiting

def progress_text(snap: dict, elapsed: float) -> str:
    parts = []
    state = snap.get("state")
    if state == "queued":
        pos, length = snap.get("queue_position"), snap.get("queue_length")
        if pos is not None and length:
            parts.append(f"queued {pos} of {length}")
        elif pos is not None:
            parts.append(f"queued, position {pos}")
        else:
            parts.append("queued")
    elif state == "running":
        node = snap.get("node")
        step, mx = snap.get("step"), snap.get("max_steps")
        if node and step is not None and mx:
            parts.append(f"{node} {step}/{mx}")
        elif node:
            parts.append(str(node))
        elif snap.get("progress") is not None:
            parts.append(f"running {int(100 * snap['progress'])}%")
        else:
            parts.append("running")
    else:
        parts.append(str(state))
    mins, secs = divmod(int(elapsed), 60)
    parts.append(f"{mins}:{secs:02d}")
    if snap.get("eta_s") and state in ("queued", "running"):
        parts.append(f"~{int(snap['eta_s'])} s left")
    if snap.get("message") and state in ("submitting", "queued"):
        parts.append(str(snap["message"])[:120])
    return " · ".join(parts)


async def wait_for_task(handle: TaskHandle, *, node_id: Optional[str], timeout_s: float,
                        cancel_on_interrupt: bool, node_label: str) -> dict:
    """Wait for a task on ComfyUI's prompt loop while the engine works on its own loop:
    progress bar + text on the node, interrupt checked every 0.25 s (cancelling the remote task),
    and a timeout that leaves the task tracked."""
    m = manager()
    fut = asyncio.wrap_future(m.call(m.wait(handle.task_id)))
    pbar = comfy.utils.ProgressBar(1000, node_id=node_id)
    server = PromptServer.instance
    start = time.monotonic()
    last_text, last_value = None, -1
    try:
        while True:
            done, _ = await asyncio.wait({fut}, timeout=POLL_S)
            if done:
                break
            mm.throw_exception_if_processing_interrupted()
            elapsed = time.monotonic() - start
            snap = m.snapshot(handle.task_id) or {}
            text = progress_text(snap, elapsed)
            if text != last_text and node_id is not None and server is not None:
                server.send_progress_text(text, node_id)
                last_text = text
            value = int(1000 * min(1.0, max(0.0, snap.get("progress") or 0.0)))
            if value != last_value:
                pbar.update_absolute(value, 1000)  # also raises if ComfyUI was interrupted
                last_value = value
            if timeout_s and elapsed > timeout_s:
                raise RemoteTimeout(
                    f"{node_label}: the remote task did not finish within {int(timeout_s)} s (it ran "
                    f"{int(elapsed)} s); it is still tracked as {handle.task_id} and was not cancelled",
                    provider=handle.provider, profile=handle.profile,
                    hint=f"fetch it later with RemoteRecover (task_id {handle.task_id}) or from the Remote panel")
    except BaseException as e:
        if isinstance(e, RemoteTimeout):
            raise
        if cancel_on_interrupt:
            reason = "interrupted in ComfyUI" if not isinstance(e, asyncio.CancelledError) else "prompt cancelled"
            cf = m.call(m.cancel(handle.task_id, reason))
            try:
                await asyncio.wait_for(asyncio.wrap_future(cf), CANCEL_GRACE_S)
            except BaseException:
                pass
        bump_generation(handle.owner)
        raise
    snap = fut.result()
    if node_id is not None and server is not None:
        server.send_progress_text(progress_text(snap, time.monotonic() - start), node_id)
    pbar.update_absolute(1000, 1000)
    return snap


def raise_for_state(snap: dict, handle: TaskHandle, node_label: str) -> None:
    state = snap.get("state")
    if state == "succeeded":
        if snap.get("outputs_state") in ("missing", "partial") and not snap.get("outputs"):
            bump_generation(handle.owner)
            raise RemoteError(f"{node_label}: the remote task finished but its results could not be downloaded: "
                              f"{snap.get('error') or 'unknown reason'}", provider=handle.provider,
                              profile=handle.profile,
                              hint=f"retry with RemoteRecover (task_id {handle.task_id}) or the panel's Recover")
        return
    bump_generation(handle.owner)
    if state == "abandoned":
        raise RemoteError(f"{node_label}: {snap.get('message') or 'stopped waiting'}", provider=handle.provider,
                          profile=handle.profile)
    if state == "cancelled":
        raise RemoteError(f"{node_label}: the remote task was cancelled ({snap.get('message') or ''})",
                          provider=handle.provider, profile=handle.profile)
    err = snap.get("error") or snap.get("message") or f"the remote task ended as {state}"
    raise RemoteError(redaction.scrub(f"{node_label}: {err}"))


def result_for(snap: dict) -> RemoteResult:
    m = manager()
    return RemoteResult(task=snap, outputs=tuple(m.outputs_of(snap["id"])))


def summary(snap: dict) -> str:
    bits = [f"{snap.get('provider')}/{snap.get('profile')}", f"task {snap.get('id')}",
            f"remote {snap.get('remote_id')}", str(snap.get("state"))]
    if snap.get("reused"):
        bits.append("REUSED (no remote call, no cost)")
    if snap.get("cost") is not None:
        bits.append(f"cost {snap['cost']:g}")
    outs = snap.get("outputs") or []
    bits.append(f"{len(outs)} output(s)")
    if snap.get("message"):
        bits.append(str(snap["message"]))
    return redaction.scrub(" · ".join(bits))


def call_engine(coro: Any, timeout: Optional[float] = None) -> Any:
    return manager().call(coro).result(timeout)
