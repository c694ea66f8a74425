"""The fake of a plain ComfyUI server: the bundled sandbox server (``sandbox/server.py``, the
native API of 0.3.64) with the toolkit's request log and switchable faults added.

Fault route names: ``prompt`` (POST /prompt), ``prompt_info``, ``history`` (GET /history/{id}),
``history_list``, ``view``, ``upload``, ``ws`` (HTTP faults refuse the handshake; ``ws_drop``
closes the socket after ``after`` messages; ``ws_mute`` stops sending after ``after`` messages
without closing), ``queue`` (GET /queue), ``queue_edit`` (POST /queue), ``interrupt``,
``object_info``, ``system_stats``; with ``jobs_api=True`` (a newer server) also ``jobs`` (GET
/api/jobs), ``job`` (GET /api/jobs/{id}), ``job_cancel`` (POST /api/jobs/{id}/cancel); ``static``
(any other path: GET 404, other methods 405).
"""
from __future__ import annotations

from typing import Any, Optional

from .toolkit import Clock, FaultKnobs

try:
    from ...sandbox.server import SLOW_FOREIGN, SandboxServer  # noqa: F401  (re-exported for tests)
except ImportError:  # run as ``python -m tests.fakes`` from the repository root
    from sandbox.server import SLOW_FOREIGN, SandboxServer  # type: ignore[no-redef]  # noqa: F401


class FakeComfyUI(SandboxServer, FaultKnobs):
    name = "comfyui"

    def __init__(self, *, clock: Optional[Clock] = None, **kw: Any):
        self._init_knobs()
        super().__init__(clock=clock or Clock(), middlewares=(self._middleware,), **kw)

    async def start(self) -> str:
        self._knobs_started()
        return await super().start()

    def ws_fault(self, kind: str) -> Any:
        return self.faults.take("ws", {kind})
