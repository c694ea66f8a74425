"""The ``comfyui`` provider against a REAL second ComfyUI (``../shared/tools/comfyui`` with the test
node pack ``tests/remote_nodes``): the session fixture named by ``requires`` provides it. The pack
gives that 0.3.64 the jobs routes of newer servers, so the provider takes its jobs path here
(``/api/jobs``, ``POST /api/jobs/{id}/cancel``); the old path on the same real server is tested in
``tests/e2e/test_comfyui_jobs_real.py``. No faults can be injected into a real server; those
scenarios run against the fakes (``case_comfyui``, ``case_comfyui_jobs``)."""
from __future__ import annotations

import json
import urllib.request
from .case import FAULT_CLASSES, Expect
from .case_comfyui import ComfyWorkflows, slow_text


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


class RealComfyUICase(ComfyWorkflows):
    provider = "comfyui"
    requires = "remote_comfy"  # session fixture giving the running instance
    has_auth = False  # a plain ComfyUI has no authentication
    unplayable = frozenset(FAULT_CLASSES)
    unplayable_why = "a real ComfyUI takes no injected faults (the comfyui fake case plays them)"

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
        if self._fail_next:
            self._fail_next = False
            graph = json.loads(slow_text())
            graph["2"] = {"class_type": "SandboxFail", "inputs": {"image": ["1", 0], "message": "injected failure"}}
            return json.dumps(graph), [("text", "1.text", "#3366cc")], Expect(images=[])
        return super().workflow_single()

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

    def finished_remotely(self, remote_id: str) -> bool:
        return bool(_get(f"{self.url}/history/{remote_id}").get(remote_id))

    def fail_node(self) -> None:
        self._fail_next = True

    def refuse_content(self) -> None:
        raise NotImplementedError("a plain ComfyUI has no content-safety filter")

    def add(self, kind: str, fault: str, **kw):
        raise NotImplementedError("a real server takes no injected faults")


CASE = RealComfyUICase()
