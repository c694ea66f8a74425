"""The ``sandbox`` provider in the shared contract suite. The provider starts its own in-process
:class:`FakeComfyUI` on first use, so this case has no fake to start: it observes the fakes started
since ``start()`` through ``FakeComfyUI.LIVE``. Faults are played by the ``comfyui`` case (same
client code, same fake); the sandbox has no key, so it has no auth scenario (``has_auth``)."""
from __future__ import annotations

from ..fakes.comfyui import FakeComfyUI
from .case_comfyui import ComfyWorkflows


class SandboxCase(ComfyWorkflows):
    provider = "sandbox"
    faults = frozenset()
    has_auth = False

    async def start(self) -> None:
        self._before = set(FakeComfyUI.LIVE)
        self.fake = None

    def _fakes(self) -> list[FakeComfyUI]:
        return [f for f in list(FakeComfyUI.LIVE) if f not in self._before]

    def profile(self, key: str) -> dict:
        return {"provider": "sandbox", "poll_interval_s": 0.05}

    def remote_tasks(self) -> int:
        return sum(len(f.created) for f in self._fakes())

    def was_cancelled(self, remote_id: str) -> bool:
        return any(remote_id in f.interrupted or remote_id in f.deleted for f in self._fakes())

    def inject(self, fault: str) -> None:
        raise KeyError(fault)


CASE = SandboxCase()
