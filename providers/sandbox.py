"""The ``sandbox`` provider: the bundled fake ComfyUI server, started in-process on 127.0.0.1.

Needs no key and no network. On first use it starts :class:`sandbox.server.SandboxServer` on an
ephemeral loopback port, on the running loop, and then behaves exactly like the ``comfyui``
provider pointed at it (same native API, same WebSocket, same validation). Its node types are
ComfyUI's core image nodes plus ``SandboxSolid``, ``SandboxSlowPass`` and ``SandboxFail``; the
workflows it ships live in ``WORKFLOWS_DIR`` (``invert.json``, ``solid.json``, ``slow.json``); the
engine resolves those file names (``TaskManager._resolve_workflow``).
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Optional

from .base import Capabilities
from .comfyui import ComfyUIProvider

class SandboxProvider(ComfyUIProvider):
    id = "sandbox"
    label = "sandbox"
    capabilities = Capabilities(cancel=True, queue_position=True, progress="push", uploads=True, cost=False,
                                idempotent_submit=False, client_chosen_id=True, findable=True,
                                addressing="node", node_types="listed", input_kinds=("image", "video", "audio", "file"))
    WORKFLOWS_DIR = Path(__file__).parent / "sandbox_workflows"

    def __init__(self, profile: Any, http: Any):
        super().__init__(profile, http)
        self.fake: Optional[Any] = None
        self._start_lock: Optional[asyncio.Lock] = None

    async def base(self) -> str:
        if self.fake is None:
            if self._start_lock is None:
                self._start_lock = asyncio.Lock()
            async with self._start_lock:
                if self.fake is None:
                    from ..sandbox.server import SandboxServer  # lazy: only the sandbox needs it

                    fake = SandboxServer()
                    await fake.start()
                    self.fake = fake
        return self.fake.url

    def auth_headers(self) -> dict:
        return {}

    def console_url(self, base: str) -> Optional[str]:
        return None  # the in-process fake has no user interface

    async def check(self) -> str:
        await self.base()
        return "sandbox: the bundled fake ComfyUI is running in-process (no network, no key)"

    async def close(self) -> None:
        await super().close()
        if self.fake is not None:
            await self.fake.stop()
            self.fake = None


PROVIDER = SandboxProvider
