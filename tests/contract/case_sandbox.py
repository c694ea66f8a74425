"""The ``sandbox`` provider in the shared contract suite. The provider starts its own in-process
:class:`SandboxServer` on first use, so this case has no fake to start: it observes the servers started
since ``start()`` through ``SandboxServer.LIVE``. Faults are played by the ``comfyui`` case (same
client code, same fake); the sandbox has no key, so it has no auth scenario (``has_auth``)."""
from __future__ import annotations

from ...sandbox.server import SandboxServer
from .case import FAULT_CLASSES
from .case_comfyui import ComfyWorkflows


class SandboxCase(ComfyWorkflows):
    provider = "sandbox"
    has_auth = False
    # the sandbox is the comfyui provider on the bundled server, started by the provider itself;
    # the comfyui case plays every fault class on the same server and client code
    unplayable = frozenset(FAULT_CLASSES)
    unplayable_why = "the bundled sandbox server takes no injected faults (the comfyui case plays them on the same server)"
    ROUTES = {"create": "prompt", "poll": "history", "outputs": "history", "cancel": "queue_edit", "file": "view"}

    async def start(self) -> None:
        self._before = set(SandboxServer.LIVE)
        self.fake = None

    def _fakes(self) -> list[SandboxServer]:
        return [f for f in list(SandboxServer.LIVE) if f not in self._before]

    def profile(self, key: str) -> dict:
        return {"provider": "sandbox", "poll_interval_s": 0.05}

    def remote_tasks(self) -> int:
        return sum(len(f.created) for f in self._fakes())

    def was_cancelled(self, remote_id: str) -> bool:
        return any(remote_id in f.interrupted or remote_id in f.deleted for f in self._fakes())

    def finished_remotely(self, remote_id: str) -> bool:
        return any(remote_id in f.history for f in self._fakes())

    def server_for(self, route: str):
        raise NotImplementedError("the bundled sandbox server takes no injected faults (the comfyui case plays "
                                  "them on the same server)")

    def fail_node(self) -> None:
        raise NotImplementedError("the comfyui case plays remote node failures on the same server")

    def refuse_content(self) -> None:
        raise NotImplementedError("a plain ComfyUI has no content-safety filter")


CASE = SandboxCase()
