"""The ``sandbox`` provider in the shared contract suite. The provider starts its own in-process
:class:`FakeComfyUI` on first use, so this case has no fake to start: it observes the fakes started
since ``start()`` through ``FakeComfyUI.LIVE``. Faults are played by the ``comfyui`` case (same
client code, same fake); the sandbox has no key, so it has no auth scenario (``has_auth``)."""
from __future__ import annotations

from typing import Optional

from ..fakes.comfyui import FakeComfyUI
from .case import ContractCase, Expect
from .case_comfyui import ECHO, MULTI, slow_text


class SandboxCase(ContractCase):
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

    def workflow_single(self) -> tuple[str, list[tuple[str, str, object]], Expect]:
        overrides = [("text", "1.text", "#3366cc"), ("int", "2.steps", 6), ("float", "2.step_seconds", 0.05)]
        return slow_text(), overrides, Expect(images=[(64, 64, (0x33, 0x66, 0xCC))])

    def workflow_multi(self) -> tuple[str, list, Expect]:
        return MULTI, [], Expect(images=[(32, 16, (255, 0, 0)), (32, 16, (0, 255, 255))])

    def workflow_upload(self) -> Optional[tuple[str, str]]:
        return ECHO, "10.image"

    def workflow_slow(self) -> tuple[str, list]:
        return slow_text(), [("int", "2.steps", 400), ("float", "2.step_seconds", 0.05)]

    def bad_target(self) -> tuple[str, list]:
        return slow_text(), [("int", "2.stepz", 3)]

    def remote_tasks(self) -> int:
        return sum(len(f.created) for f in self._fakes())

    def was_cancelled(self, remote_id: str) -> bool:
        return any(remote_id in f.interrupted or remote_id in f.deleted for f in self._fakes())

    def inject(self, fault: str) -> None:
        raise KeyError(fault)


CASE = SandboxCase()
