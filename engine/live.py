"""The Task JSON of design §4 and the in-memory record of an active task."""
from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Optional

from ..providers.base import Provider, RemoteRef


def task_json(row: dict, outputs: list[dict]) -> dict:
    """The Task JSON of design §4 (routes, events, panel)."""
    def iso(t: Optional[float]) -> Optional[str]:
        if not t:
            return None
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"

    return {
        "id": row["id"], "remote_id": row.get("remote_id"), "profile": row["profile"],
        "provider": row["provider"], "workflow": row.get("workflow"), "state": row["state"],
        "reused": bool(row.get("reused")), "queue_position": row.get("queue_position"),
        "queue_length": row.get("queue_length"), "progress": row.get("progress"), "node": row.get("node"),
        "step": row.get("step"), "max_steps": row.get("max_steps"), "eta_s": row.get("eta_s"),
        "message": row.get("message"), "cost": row.get("cost"), "error": row.get("error"),
        "can_cancel": bool(row.get("can_cancel")) and row.get("state") in ("submitting", "queued", "running")
        and row.get("outputs_state") != "pending" and not row.get("cancel_requested"),
        "console_url": row.get("console_url"),
        "created_at": iso(row.get("created_at")), "updated_at": iso(row.get("updated_at")),
        "started_at": iso(row.get("started_at")), "finished_at": iso(row.get("finished_at")),
        "outputs_state": row.get("outputs_state"),
        "outputs": [{"n": o["n"], "kind": o["kind"], "filename": o.get("filename"), "width": o.get("width"),
                     "height": o.get("height"), "node": o.get("node"), "field": o.get("field"),
                     "mime": o.get("mime"), "preview": bool(o.get("preview"))}
                    for o in outputs],
    }


@dataclass
class Live:
    """An active task in memory (the journal row is the durable copy)."""

    row: dict
    provider: Provider
    ref: Optional[RemoteRef] = None
    done: Optional[asyncio.Future] = None  # set when the task ends (or is abandoned)
    watcher: Optional[asyncio.Task] = None
    canceller: Optional[asyncio.Task] = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # poll now (a push said it ended, a cancel went out)
    cancel_requested: bool = False
    abandoned: bool = False  # stopped waiting where the provider cannot cancel; still followed
    downloading: bool = False  # results are being saved: a cancel no longer applies
    holds_slot: bool = False  # a max_concurrent slot of its profile, released when it ends
    preview: Optional[tuple[int, str, bytes]] = None  # (number, mime, image): the remote's latest preview
    running_since: Optional[float] = None  # monotonic time it was first seen running
    end_hinted: Optional[float] = None  # monotonic time a live channel said it ended (look fast until confirmed)
    usual_s: Optional[float] = None  # how long this workflow usually runs on this profile

    @property
    def id(self) -> str:
        return self.row["id"]


def new_task_id() -> str:
    return uuid.uuid4().hex[:16]
