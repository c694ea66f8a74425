"""The ``sandbox`` provider in the shared contract suite. The provider starts its own in-process
:class:`FakeComfyUI` on first use, so this case has no fake to start: it observes the fakes started
since ``start()`` through ``FakeComfyUI.LIVE``. Faults are played by the ``comfyui`` case (same
client code, same fake); the sandbox has no key, so it has no auth scenario (``has_auth``)."""
from __future__ import annotations

from ..fakes.comfyui import FakeComfyUI
from .case import FAULT_CLASSES
from .case_comfyui import ComfyWorkflows


class SandboxCase(ComfyWorkflows):
    provider = "sandbox"
    has_auth = False
    # the sandbox is the comfyui provider on the bundled server, started by the provider itself;
    # the comfyui case plays every fault class on the same server and client code
    unplayable = frozenset(FAULT_CLASSES)
    ROUTES = {"create": "prompt", "poll": "history", "outputs": "history", "cancel": "queue_edit", "file": "view"}

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

    def finished_remotely(self, remote_id: str) -> bool:
        return any(remote_id in f.history for f in self._fakes())

    def server_for(self, route: str):
        fakes = self._fakes()
        if not fakes:
            raise NotImplementedError("the sandbox starts its server on first use")
        return fakes[-1]

    def fail_node(self) -> None:
        raise NotImplementedError("the comfyui case plays remote node failures on the same server")

    def refuse_content(self) -> None:
        raise NotImplementedError("a plain ComfyUI has no content-safety filter")


CASE = SandboxCase()
