"""RunningHub in the shared contract suite: :class:`FakeRunningHub` with small timings, played
through the generic fault player (``ROUTES``)."""
from __future__ import annotations

import io
import re
from typing import Optional

from ..fakes import runninghub_workflows as wf
from ..fakes.runninghub import FakeRunningHub
from .case import ContractCase, Expect

# keys the suite means to be wrong are refused; every other key given to profile() is a valid account
_WRONG = re.compile(r"wrong|bad|invalid|nope", re.I)
MANY_AT_ONCE = 40  # the suite runs 34 tasks at once: an enterprise shared key with room for them


class RunningHubCase(ContractCase):
    provider = "runninghub"
    ROUTES = {"create": "create", "poll": "outputs", "outputs": "outputs", "cancel": "cancel", "file": "file",
              "upload": "upload", "ws": "ws"}

    async def start(self) -> None:
        fake = FakeRunningHub(clock=self.clock)
        # queue briefly, run about a second with progress; the slow workflow runs 20 s
        fake.queue_s, fake.run_s, fake.slow_run_s = 0.3, 1.0, 20.0
        fake.output_lag_s, fake.ws_close_after_s = 0.2, 0.2
        await fake.start()
        self.fake = fake

    @property
    def rh(self) -> FakeRunningHub:
        assert isinstance(self.fake, FakeRunningHub), "start() first"
        return self.fake

    def profile(self, key: str) -> dict:
        if key and not _WRONG.search(key) and key not in self.rh.keys:
            self.rh.keys[key] = {"type": "SHARED", "coins": 99999, "money": "999", "currency": "CNY",
                                 "free": False, "balance": True, "limit": MANY_AT_ONCE}
        return {"provider": "runninghub", "url": self.rh.url, "api_key": key, "poll_interval_s": 0.05,
                "base_workflow_id": wf.WF_SOLID, "max_concurrent": MANY_AT_ONCE}

    @staticmethod
    def _expect(graph: dict, overrides: dict) -> Expect:
        from PIL import Image

        g = {k: {**v, "inputs": dict(v["inputs"])} for k, v in graph.items()}
        for target, value in overrides.items():
            node, _, fld = target.rpartition(".")
            g[node]["inputs"][fld] = value
        images = []
        for _, files in wf.render_saves(g, wf.builtin_files()):
            for _ext, data in files:
                img = Image.open(io.BytesIO(data)).convert("RGB")
                images.append((img.width, img.height, img.getpixel((0, 0))))
        return Expect(images=images)

    def workflow_single(self) -> tuple[str, list[tuple[str, str, object]], Expect]:
        overrides = [("text", "6.text", "a contract cat"), ("int", "3.seed", 42)]
        return wf.WF_SOLID, overrides, self._expect(wf.WORKFLOWS[wf.WF_SOLID]["graph"],
                                                   {t: v for _, t, v in overrides})

    def workflow_multi(self) -> tuple[str, list, Expect]:
        return wf.WF_MULTI, [], self._expect(wf.WORKFLOWS[wf.WF_MULTI]["graph"], {})

    def workflow_upload(self) -> Optional[tuple[str, str]]:
        return wf.WF_ECHO, "10.image"

    def workflow_slow(self) -> tuple[str, list]:
        return wf.WF_SLOW, []

    def bad_target(self) -> tuple[str, list]:
        return wf.WF_SOLID, [("text", "99.text", "no such node")]

    def remote_tasks(self) -> int:
        return self.rh.created_count()

    def was_cancelled(self, remote_id: str) -> bool:
        task = self.rh.tasks.get(str(remote_id))
        return bool(task and task.cancelled)

    def finished_remotely(self, remote_id: str) -> bool:
        return self.rh.task_ended(remote_id)

    def expire_urls(self) -> None:
        self.rh.expire_urls()

    def fail_node(self) -> None:
        self.rh.fail_next(exception_type="TypeError", message="sampler_main() missing 2 required positional "
                          "arguments: 'clip_vision' and 'vae'")

    def refuse_content(self) -> None:
        self.rh.content_safety_next()


CASE = RunningHubCase()
