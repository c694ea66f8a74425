"""The one TaskManager of this ComfyUI process, its ComfyUI wiring (paths, WebSocket events), and
the interrupt-aware wait every waiting node uses."""
from __future__ import annotations

import asyncio
import io
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import comfy.model_management as mm
from PIL import Image
import comfy.utils
import folder_paths
from server import PromptServer

try:
    from comfy_execution.utils import get_executing_context
except ImportError:  # older ComfyUI: no context, the prompt's outcome is then unknown
    def get_executing_context() -> Any:
        return None

from ..engine import redaction, results
from ..engine.tasks import TaskManager
from ..providers.base import RemoteError, RemoteTimeout
from ..providers.sandbox import SandboxProvider

EVENT = "comfyui_remote.task"
POLL_S = 0.25  # how often a waiting node checks interrupt and refreshes its progress

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
    downloading = state == "running" and snap.get("outputs_state") == "pending"  # "downloading result 1 of 2: …"
    if state == "queued":
        pos, length = snap.get("queue_position"), snap.get("queue_length")
        if pos is not None and length:
            parts.append(f"queued {pos} of {length}")
        elif pos is not None:
            parts.append(f"queued, position {pos}")
        else:
            parts.append("queued")
    elif downloading:
        parts.append(str(snap.get("message") or "downloading results")[:120])
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


async def follow(task_id: str, fut: asyncio.Future, *, node_id: Optional[str], node_label: str,
                  timeout_s: float = 0, timeout_error: Optional[Any] = None, also_node: Optional[str] = None) -> Any:
    """Wait for an engine future on ComfyUI's prompt loop: progress bar + text on the node (the text
    also on ``also_node``: the RemoteSubmit of a waited task, so it does not keep saying "queued"),
    the interrupt checked every 0.25 s, and an optional timeout (``timeout_error(elapsed)`` is raised)."""
    m = manager()
    pbar = comfy.utils.ProgressBar(1000, node_id=node_id)
    server = PromptServer.instance
    text_nodes = [n for n in dict.fromkeys((node_id, also_node)) if n is not None]
    start = time.monotonic()
    last_text, last_value, last_preview = None, -1, 0
    while True:
        done, _ = await asyncio.wait({fut}, timeout=POLL_S)
        if done:
            break
        mm.throw_exception_if_processing_interrupted()
        elapsed = time.monotonic() - start
        snap = m.snapshot(task_id) or {}
        text = progress_text(snap, elapsed)
        if text != last_text and server is not None:
            for n in text_nodes:
                server.send_progress_text(text, n)
            last_text = text
        value = int(1000 * min(1.0, max(0.0, snap.get("progress") or 0.0)))
        preview = m.preview(task_id)
        shown = None
        if preview is not None and preview[0] != last_preview:
            last_preview = preview[0]
            shown = preview_image(preview[1], preview[2])
        if value != last_value or shown is not None:
            pbar.update_absolute(value, 1000, shown)  # also raises if ComfyUI was interrupted
            last_value = value
        if timeout_s and elapsed > timeout_s and timeout_error is not None:
            raise timeout_error(elapsed)
    result = fut.result()
    snap = m.snapshot(task_id) or {}
    if server is not None:
        for n in text_nodes:
            server.send_progress_text(progress_text(snap, time.monotonic() - start), n)
    if snap.get("state") == "succeeded":
        pbar.update_absolute(1000, 1000)
    return result


def preview_image(mime: str, data: bytes) -> Optional[tuple]:
    """The remote's preview as ComfyUI's own progress preview ("JPEG"|"PNG", PIL image, max size)."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception:
        return None
    return ("PNG" if mime == "image/png" else "JPEG", img.convert("RGB"), 512)


def stop_waiting(task_id: str, owner: Optional[str], e: BaseException, *, cancel_on_interrupt: bool) -> None:
    """A waiting node stopped early. An interrupt means "stop": the engine cancels the remote task
    (and owns the cancel from here). A prompt that ended because ANOTHER node failed leaves the
    paid task running and tracked, so that queueing again reuses its result; which of the two it
    was is read from ComfyUI's history of the prompt once ComfyUI has written it."""
    m = manager()
    if isinstance(e, mm.InterruptProcessingException) or mm.processing_interrupted():
        if cancel_on_interrupt:
            m.call(m.cancel(task_id, "interrupted in ComfyUI"))
            bump_generation(owner)
        else:
            m.call(m.note(task_id, "interrupted in ComfyUI; the remote task was not cancelled "
                                   "(cancel_on_interrupt is off) and stays tracked"))
        return
    if isinstance(e, asyncio.CancelledError):
        ctx = get_executing_context()
        prompt_id = ctx.prompt_id if ctx is not None else None
        m.call(m.after_prompt_stopped(task_id, lambda: prompt_outcome(prompt_id),
                                      cancel=cancel_on_interrupt, on_cancel=lambda: bump_generation(owner)))


def prompt_outcome(prompt_id: Optional[str]) -> Optional[tuple[str, str]]:
    """("interrupted" | "failed" | "ended", detail) from ComfyUI's history of a prompt, None until written."""
    server = PromptServer.instance
    if prompt_id is None or server is None:
        return ("ended", "")
    entry = server.prompt_queue.get_history(prompt_id=prompt_id).get(prompt_id)
    if not entry:
        return None
    for message in (entry.get("status") or {}).get("messages") or []:
        if isinstance(message, (list, tuple)) and len(message) == 2 and isinstance(message[1], dict):
            name, data = message
            if name == "execution_interrupted":
                return ("interrupted", "")
            if name == "execution_error":
                return ("failed", f"{data.get('node_type')} #{data.get('node_id')}: "
                                  f"{str(data.get('exception_message') or '').strip()[:160]}")
    return ("ended", "")


async def wait_for_task(handle: TaskHandle, *, node_id: Optional[str], timeout_s: float,
                        cancel_on_interrupt: bool, node_label: str) -> dict:
    """Wait for a task while the engine works on its own loop; a timeout leaves the task tracked."""
    m = manager()
    fut = asyncio.wrap_future(m.call(m.wait(handle.task_id)))

    def timed_out(elapsed: float) -> RemoteTimeout:
        return RemoteTimeout(
            f"{node_label}: the remote task did not finish within {int(timeout_s)} s (it ran {int(elapsed)} s); it "
            f"is still tracked as {handle.task_id} and was not cancelled", provider=handle.provider,
            profile=handle.profile,
            hint=f"fetch it later with RemoteRecover (task_id {handle.task_id}) or from the Remote panel, or queue "
                 f"the same graph again: it waits for this task instead of paying again")

    try:
        return await follow(handle.task_id, fut, node_id=node_id, node_label=node_label, timeout_s=timeout_s,
                             timeout_error=timed_out, also_node=handle.owner)
    except RemoteTimeout:
        raise
    except BaseException as e:
        stop_waiting(handle.task_id, handle.owner, e, cancel_on_interrupt=cancel_on_interrupt)
        raise


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
    bits.append(results.tally(outs))
    if snap.get("message"):
        bits.append(str(snap["message"]))
    return redaction.scrub(" · ".join(bits))


def call_engine(coro: Any, timeout: Optional[float] = None) -> Any:
    return manager().call(coro).result(timeout)
