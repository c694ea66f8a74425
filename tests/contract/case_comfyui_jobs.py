"""A newer ComfyUI (v0.26+) in the shared contract suite: :class:`FakeComfyUI` with the jobs API
(``GET /api/jobs``, ``GET /api/jobs/{id}``, ``POST /api/jobs/{id}/cancel``) behind a token, so
every fault class is also played on the provider's jobs path (status looks on ``/api/jobs/{id}``,
cancel on the jobs route)."""
from __future__ import annotations

from ..fakes.comfyui import FakeComfyUI
from .case_comfyui import ComfyUICase

OLD_ROUTES = ("queue", "history", "queue_edit", "interrupt")


class ComfyUIJobsCase(ComfyUICase):
    ROUTES = {"create": "prompt", "poll": "job", "outputs": "job", "cancel": "job_cancel",
              "file": "view", "upload": "upload", "ws": "ws"}

    async def start(self) -> None:
        fake = FakeComfyUI(clock=self.clock, jobs_api=True)
        await fake.start()
        self.fake = fake

    async def stop(self) -> None:
        old = {route: self.cf.count(route) for route in OLD_ROUTES}
        await super().stop()
        # every scenario must have run on the jobs path, or its faults were played on nothing
        assert not any(old.values()), f"the provider asked a newer server the old way: {old}"

    def was_cancelled(self, remote_id: str) -> bool:
        return remote_id in self.cf.cancel_requests and super().was_cancelled(remote_id)


CASE = ComfyUIJobsCase()
