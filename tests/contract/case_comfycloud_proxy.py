"""The ``comfycloud`` provider against the REAL ``comfy-api-proxy`` (PyPI, its own venv from test.sh)
in front of the real remote ComfyUI with the sandbox node pack: the session fixture named by
``requires`` provides it. No faults can be injected into real servers; those scenarios run against
the fake (``case_comfycloud``). The proxy runs without ``--token``: no auth scenario here.

Cancel needs ComfyUI's ``POST /api/jobs/{id}/cancel`` (ComfyUI ≥ 0.26.0); on 0.3.64 the proxy's
cancel does nothing and the job ends ``succeeded`` (facts §8), so the cancel scenarios pass only
once the remote has that route (the test node pack emulates it)."""
from __future__ import annotations

from .case_comfyui_real import RealComfyUICase, _get


class ProxyCase(RealComfyUICase):
    """The real-ComfyUI case's graphs and failing node, seen through the proxy in front of it."""

    provider = "comfycloud"
    requires = "comfy_proxy"  # session fixture giving the running proxy
    unplayable_why = "a real comfy-api-proxy takes no injected faults (the comfycloud fake case plays them)"

    def __init__(self) -> None:
        super().__init__()
        self.native = RealComfyUICase()  # the ComfyUI behind the proxy, for counting what it received

    async def start(self) -> None:
        assert self.url, "the suite sets url from the comfy_proxy fixture"
        self.native.url = _get(self.url + "/api/v2/health")["upstream"]

    def profile(self, key: str) -> dict:
        return {"provider": "comfycloud", "url": self.url, "api_key": key, "poll_interval_s": 0.1}

    def _job(self, remote_id: str) -> dict:
        return _get(f"{self.url}/api/v2/jobs/{remote_id}")

    def remote_tasks(self) -> int:  # prompts the ComfyUI behind the proxy received (each would be paid)
        return self.native.remote_tasks()

    def was_cancelled(self, remote_id: str) -> bool:
        return self._job(remote_id)["status"] in ("canceled", "expired")  # a dequeued job reads expired (§8)

    def finished_remotely(self, remote_id: str) -> bool:
        return self._job(remote_id)["status"] in ("succeeded", "failed")


CASE = ProxyCase()
