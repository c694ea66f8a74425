"""Comfy API v2 in the shared contract suite: :class:`FakeComfyCloud` as a serverless deployment
(everything only Comfy's own hosts do: Bearer keys, signed redirects to an object store on another
origin, host-relative mount-prefixed links, a job list with labels that ``find`` uses), running the
graphs of the ``comfyui`` case on its in-process sandbox worker.

The push channel is the job's SSE stream (route ``events``): the suite's generic ``ws_drop`` is
read by the fake's stream handler (the toolkit fault of that name), which drops the stream after
``after`` frames. Result files come from the object store (route ``object``), reached through the
302 of ``/assets/{id}/content``.
"""
from __future__ import annotations

from ..fakes.comfycloud import FakeComfyCloud
from ..fakes.toolkit import FakeServer
from .case_comfyui import ComfyWorkflows


class ComfyCloudCase(ComfyWorkflows):
    provider = "comfycloud"
    ROUTES = {"create": "jobs_create", "poll": "job", "outputs": "job", "cancel": "cancel", "file": "object",
              "upload": "assets_upload", "ws": "events"}
    surface = "deployment"

    async def start(self) -> None:
        fake = FakeComfyCloud(clock=self.clock, surface=self.surface)
        await fake.start()
        self.fake = fake

    @property
    def cc(self) -> FakeComfyCloud:
        assert isinstance(self.fake, FakeComfyCloud), "start() first"
        return self.fake

    def server_for(self, route: str) -> FakeServer:
        return self.cc.store if route == "object" else self.cc

    def profile(self, key: str) -> dict:
        if key and not key.startswith("WRONG-"):
            self.cc.api_key = key  # the key the suite means to be right
        return {"provider": "comfycloud", "url": self.cc.url, "api_key": key, "surface": self.surface,
                "poll_interval_s": 0.05}

    def remote_tasks(self) -> int:
        return len(self.cc.created)

    def was_cancelled(self, remote_id: str) -> bool:
        return remote_id in self.cc.cancels and self.cc.status(self.cc.jobs[remote_id]) == "canceled"

    def finished_remotely(self, remote_id: str) -> bool:
        return remote_id in self.cc.jobs and self.cc.status(self.cc.jobs[remote_id]) in ("succeeded", "failed")

    def expire_urls(self) -> None:
        self.cc.stale_links()

    def fail_node(self) -> None:
        self.cc.worker.fail_next("SandboxSlowPass", "mat1 and mat2 shapes cannot be multiplied (1x768 and 1024x320)")

    def refuse_content(self) -> None:
        raise NotImplementedError("Comfy API v2 documents no content-safety refusal")


CASE = ComfyCloudCase()
