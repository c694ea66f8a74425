"""Tensor.Art TAMS in the shared contract suite: :class:`FakeTensorArt` and its templates (the
workflows are template ids, so creates go to ``POST /v1/jobs/workflow/template``). TAMS has no
push channel, so the suite skips ``ws_drop``."""
from __future__ import annotations

from typing import Optional

from ..fakes.tensorart import FakeTensorArt
from ..fakes.tensorart_graph import text_color
from .case import ContractCase, Expect

SOLID, MULTI, SLOW, ECHO = "700000000000000001", "700000000000000002", "700000000000000003", "676018193025756628"


class TensorArtCase(ContractCase):
    provider = "tensorart"
    ROUTES = {"create": "template_job", "poll": "get_job", "outputs": "get_job", "cancel": "cancel",
              "file": "file", "upload": "upload"}

    async def start(self) -> None:
        fake = FakeTensorArt(clock=self.clock)
        # queued ~0.3 s, then runs ~1 s with progress; the slow template's 400 steps take ~8 s
        fake.created_s, fake.queue_s, fake.run_s, fake.step_s = 0.05, 0.3, 0.9, 0.02
        await fake.start()
        self.fake = fake

    @property
    def ta(self) -> FakeTensorArt:
        assert isinstance(self.fake, FakeTensorArt), "start() first"
        return self.fake

    def profile(self, key: str) -> dict:
        if not key.startswith("WRONG-"):
            self.ta.api_keys.add(key)  # the key the suite means to be right; a WRONG- key gets TAMS's 401
        # max_rps 0: no pacing here (the fake enforces no QPS limit unless a test sets qps_limit; the
        # 5 QPS budget is tested in tests/unit/test_pacing.py)
        return {"provider": "tensorart", "url": self.ta.url, "api_key": key, "poll_interval_s": 0.05, "max_rps": 0}

    def workflow_single(self):
        text = "contract cat"
        return SOLID, [("text", "6.text", text), ("int", "7.width", 24)], Expect([(24, 16, text_color(text))])

    def workflow_multi(self):
        c = text_color("pair")
        return MULTI, [("text", "6.text", "pair")], Expect([(12, 12, c), (12, 12, tuple(255 - x for x in c))])

    def workflow_upload(self) -> Optional[tuple[str, str]]:
        return ECHO, "25.image"

    def workflow_slow(self):
        return SLOW, [("text", "6.text", "slow"), ("int", "3.steps", 400)]

    def bad_target(self):
        return SOLID, [("text", "99.text", "x")]

    def remote_tasks(self) -> int:
        return self.ta.created

    def was_cancelled(self, remote_id: str) -> bool:
        job = self.ta.jobs.get(remote_id)
        return job is not None and job.cancelled_at is not None

    def finished_remotely(self, remote_id: str) -> bool:
        return self.ta.finished(remote_id)

    def expire_urls(self) -> None:
        self.ta.expire_urls()  # signed OSS-style links: 403 AccessDenied "Request has expired."

    def fail_node(self) -> None:
        self.ta.fail_next("node", node="7")  # failedInfo.reason "node id: 7\nclass type: SolidFromText\n…"

    def refuse_content(self) -> None:
        self.ta.fail_next("content")  # failedInfo.reason names the NSFW filter


CASE = TensorArtCase()
