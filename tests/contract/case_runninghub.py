"""RunningHub in the shared contract suite: :class:`FakeRunningHub` with small timings."""
from __future__ import annotations

import io
import re
from typing import Optional

from ..fakes import runninghub_workflows as wf
from ..fakes.runninghub import FakeRunningHub
from .case import ContractCase, Expect

# keys the suite means to be wrong are refused; every other key given to profile() is a valid account
_WRONG = re.compile(r"wrong|bad|invalid|nope", re.I)


class RunningHubCase(ContractCase):
    provider = "runninghub"
    faults = frozenset({"submit_5xx", "submit_429", "submit_drop_after", "poll_5xx", "poll_malformed", "ws_drop",
                        "download_truncated", "download_expired", "node_error", "content_safety", "slow_answers"})

    async def start(self) -> None:
        fake = FakeRunningHub(clock=self.clock)
        # queue, then run with progress; a created task stays counted ≥ 2 s (find() relies on it)
        fake.queue_s, fake.run_s, fake.slow_run_s = 0.3, 2.0, 30.0
        fake.output_lag_s, fake.ws_close_after_s = 0.1, 0.2
        await fake.start()
        self.fake = fake

    @property
    def rh(self) -> FakeRunningHub:
        assert isinstance(self.fake, FakeRunningHub), "start() first"
        return self.fake

    def profile(self, key: str) -> dict:
        if key and not _WRONG.search(key) and key not in self.rh.keys:
            self.rh.keys[key] = {"type": "NORMAL", "coins": 99999, "money": "999", "currency": "CNY",
                                 "free": False, "balance": True}
        return {"provider": "runninghub", "url": self.rh.url, "api_key": key, "poll_interval_s": 0.05,
                "base_workflow_id": wf.WF_SOLID}

    @staticmethod
    def _expect(graph: dict, overrides: dict) -> Expect:
        from PIL import Image

        g = {k: {**v, "inputs": dict(v["inputs"])} for k, v in graph.items()}
        for target, value in overrides.items():
            node, _, fld = target.rpartition(".")
            g[node]["inputs"][fld] = value
        images = []
        for _, pngs in wf.render_saves(g, wf.builtin_files()):
            for data in pngs:
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

    def inject(self, fault: str) -> None:
        f = self.rh.faults
        if fault == "submit_5xx":
            f.add("create", "status", status=503)
        elif fault == "submit_429":
            f.add("create", "status", status=429, retry_after=1)
        elif fault == "submit_drop_after":
            f.add("create", "drop_after")
        elif fault == "poll_5xx":
            f.add("outputs", "status", status=502, times=3)
        elif fault == "poll_malformed":
            f.add("outputs", "malformed")
        elif fault == "ws_drop":
            f.add("ws", "ws_drop", after=4)
        elif fault == "download_truncated":
            f.add("file", "truncate")
        elif fault == "download_expired":
            self.rh.expire_files = True
        elif fault == "node_error":
            self.rh.fail_next(exception_type="TypeError", message="sampler_main() missing 2 required positional "
                              "arguments: 'clip_vision' and 'vae'")
        elif fault == "content_safety":
            self.rh.content_safety_next()
        elif fault == "slow_answers":
            f.add("create", "slow", delay=1.5)
            f.add("outputs", "slow", delay=1.5, times=2)
        else:
            raise KeyError(fault)


CASE = RunningHubCase()
