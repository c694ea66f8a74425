"""The one parser of native ComfyUI progress frames (``{"type", "data"}`` over a WebSocket),
shared by every provider whose service forwards them (a ComfyUI server, RunningHub's task
socket, Comfy API v2 previews).

Overall progress = finished nodes (not counting cached ones) plus the running node's value/max,
over the nodes that actually run; it stays below 1 until the service says the task ended (the
files are what make 100 %). The parser decides nothing about a task's end: ``ended`` only says
what the frames claimed, and the engine asks the service itself.
"""
from __future__ import annotations

import json
import struct
import time
from typing import Any, Optional

from ..providers.base import State, TaskUpdate


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and abs(value) < 1e15


class ComfyProgress:
    def __init__(self, classes: Optional[dict] = None, prompt_id: Optional[str] = None):
        self.classes: dict[str, str] = {str(k): str(v) for k, v in (classes or {}).items()}
        self.prompt_id = prompt_id
        self.running = False
        self.cached: set[str] = set()
        self.done: set[str] = set()
        self.current: Optional[str] = None
        self.value = 0
        self.max = 0
        self.eta_s: Optional[float] = None
        self.ended: Optional[str] = None  # "success" | "error" | "interrupted", as the frames claimed
        self.error: Optional[dict] = None
        self._first_step: Optional[tuple] = None
        self._best = 0.0

    def label(self, node: Optional[str]) -> Optional[str]:
        if node is None:
            return None
        cls = self.classes.get(str(node))
        return f"{cls} #{node}" if cls else f"#{node}"

    def _mine(self, data: dict) -> bool:
        pid = data.get("prompt_id")
        return self.prompt_id is None or pid is None or str(pid) == self.prompt_id

    def _enter(self, node: Any) -> None:
        node = str(node)
        if node != self.current:
            if self.current is not None:
                self.done.add(self.current)
            self.current, self.value, self.max, self.eta_s, self._first_step = node, 0, 0, None, None

    def _step(self, value: Any, mx: Any) -> None:
        if not (_finite(value) and _finite(mx) and mx > 0):
            return
        self.value, self.max = max(0, min(int(value), int(mx))), int(mx)
        now = time.monotonic()
        if self._first_step is None or self._first_step[0] != self.current:
            self._first_step = (self.current, now, self.value)
        else:
            _, t0, v0 = self._first_step
            if self.value > v0:
                self.eta_s = round((self.max - self.value) * (now - t0) / (self.value - v0), 1)

    def feed(self, frame: Any) -> bool:
        """Apply one frame; True when it changed something shown."""
        if not isinstance(frame, dict):
            return False
        kind = frame.get("type")
        data = frame.get("data") if isinstance(frame.get("data"), dict) else {}
        if not self._mine(data):
            return False
        if kind == "execution_start":
            self.running = True
        elif kind == "execution_cached":
            nodes = data.get("nodes")
            if isinstance(nodes, list):
                self.cached.update(str(n) for n in nodes if n is not None)
        elif kind == "executing":
            node = data.get("node")
            if node is None:
                if self.current is not None:
                    self.done.add(self.current)
                self.current = None
                return True
            self.running = True
            self._enter(node)
        elif kind == "progress":
            self.running = True
            if data.get("node") is not None:
                self._enter(data["node"])
            self._step(data.get("value"), data.get("max"))
        elif kind == "progress_state":
            nodes = data.get("nodes") if isinstance(data.get("nodes"), dict) else {}
            for nid, st in nodes.items():
                if not isinstance(st, dict):
                    continue
                if st.get("state") == "finished":
                    self.done.add(str(nid))
                elif st.get("state") == "running":
                    self.running = True
                    self._enter(nid)
                    self._step(st.get("value"), st.get("max"))
        elif kind == "executed":
            if data.get("node") is not None:
                self.done.add(str(data["node"]))
        elif kind == "execution_success":
            self.ended = "success"
        elif kind == "execution_error":
            self.ended, self.error = "error", data
        elif kind == "execution_interrupted":
            self.ended = "interrupted"
        else:
            return False  # status and unknown frames change nothing shown
        return True

    def fraction(self) -> Optional[float]:
        if not self.classes:
            return None
        runs = set(self.classes) - self.cached
        total = max(1, len(runs))
        part = self.value / self.max if self.max and self.current not in self.done else 0.0
        value = (len(self.done & runs) + part) / total
        self._best = max(self._best, min(0.99, value))
        return round(self._best, 4)

    def update(self, raw_state: str = "running") -> TaskUpdate:
        node = self.label(self.current)
        return TaskUpdate(State.RUNNING, queue_position=None, progress=self.fraction(), node=node,
                          step=self.value if self.max else None, max_steps=self.max or None, eta_s=self.eta_s,
                          raw_state=raw_state)


PREVIEW = 1  # ComfyUI binary event: 4-byte image type (1 JPEG, 2 PNG) + image
PREVIEW_WITH_METADATA = 4  # 4-byte JSON length + {prompt_id, node_id, image_type, …} + image
IMAGE_TYPES = {1: "image/jpeg", 2: "image/png"}
FEATURE_FLAGS = {"type": "feature_flags", "data": {"supports_preview_metadata": True}}  # sent first


def binary_preview(data: bytes) -> Optional[tuple[Optional[str], str, bytes]]:
    """(prompt id or None, mime, image bytes) of a ComfyUI binary preview frame; None otherwise."""
    if len(data) < 8:
        return None
    event, word = struct.unpack(">II", data[:8])
    if event == PREVIEW and word in IMAGE_TYPES:
        return None, IMAGE_TYPES[word], bytes(data[8:])
    if event == PREVIEW_WITH_METADATA and 8 + word <= len(data):
        try:
            meta = json.loads(data[8:8 + word])
        except ValueError:
            return None
        if not isinstance(meta, dict):
            return None
        mime = str(meta.get("image_type") or "image/jpeg")
        pid = meta.get("prompt_id")
        return (str(pid) if pid is not None else None), mime, bytes(data[8 + word:])
    return None
