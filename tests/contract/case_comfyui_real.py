"""The ``comfyui`` provider against a REAL second ComfyUI (``../shared/tools/comfyui`` with the test
node pack ``tests/remote_nodes``): the session fixture named by ``requires`` provides it. No faults
can be injected into a real server; those scenarios run against the fake (``case_comfyui``)."""
from __future__ import annotations

import json
import urllib.request
from typing import Optional

from .case import ContractCase, Expect
from .case_comfyui import ECHO, MULTI, slow_text


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


class RealComfyUICase(ContractCase):
    provider = "comfyui"
    requires = "remote_comfy"  # session fixture giving the running instance
    faults = frozenset({"node_error"})
    has_auth = False  # a plain ComfyUI has no authentication

    def __init__(self) -> None:
        super().__init__()
        self.url = ""
        self._fail_next = False

    async def start(self) -> None:
        assert self.url, "the suite sets url from the remote_comfy fixture"

    async def stop(self) -> None:
        pass

    def profile(self, key: str) -> dict:
        return {"provider": "comfyui", "url": self.url, "token": key, "poll_interval_s": 0.1}

    def workflow_single(self) -> tuple[str, list, Expect]:
        overrides = [("text", "1.text", "#3366cc"), ("int", "2.steps", 6), ("float", "2.step_seconds", 0.05)]
        if self._fail_next:
            self._fail_next = False
            graph = json.loads(slow_text())
            graph["2"] = {"class_type": "SandboxFail", "inputs": {"image": ["1", 0], "message": "injected failure"}}
            return json.dumps(graph), overrides[:1], Expect(images=[])
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
        q = _get(self.url + "/queue")
        return len(_get(self.url + "/history?max_items=100000")) + len(q["queue_running"]) + len(q["queue_pending"])

    def was_cancelled(self, remote_id: str) -> bool:
        q = _get(self.url + "/queue")
        if any(item[1] == remote_id for item in q["queue_running"] + q["queue_pending"]):
            return False
        hist = _get(f"{self.url}/history/{remote_id}").get(remote_id)
        if hist is None:
            return True  # deleted from the queue before it ran
        return any(m[0] == "execution_interrupted" for m in hist["status"]["messages"])

    def inject(self, fault: str) -> None:
        if fault != "node_error":
            raise KeyError(fault)
        self._fail_next = True


CASE = RealComfyUICase()
