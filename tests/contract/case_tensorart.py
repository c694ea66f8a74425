"""Contract case for Tensor.Art TAMS: the fake's templates (see tests/fakes/tensorart.py)."""
from __future__ import annotations

from typing import Optional

from ..fakes.tensorart import FakeTensorArt
from ..fakes.tensorart_graph import text_color
from .case import ContractCase, Expect

SOLID, MULTI, SLOW, ECHO = "700000000000000001", "700000000000000002", "700000000000000003", "676018193025756628"


class TensorArtCase(ContractCase):
    provider = "tensorart"
    faults = frozenset({"submit_5xx", "submit_429", "submit_drop_after", "poll_5xx", "poll_malformed",
                        "download_truncated", "download_expired", "node_error", "content_safety", "slow_answers"})

    async def start(self) -> None:
        fake = FakeTensorArt(clock=self.clock)
        fake.created_s, fake.queue_s, fake.run_s, fake.step_s = 0.05, 0.3, 0.5, 0.02  # slow: 400 steps = 8 s
        await fake.start()
        self.fake = fake

    def profile(self, key: str) -> dict:
        # The suite passes its canary key (accepted) or a wrong one for the auth scenario (refused).
        if "wrong" not in key.lower() and "bad" not in key.lower():
            self.fake.api_keys.add(key)  # type: ignore[union-attr]
        # qps = 0: no client pacing against the fake (it enforces no QPS limit unless asked).
        return {"provider": "tensorart", "url": self.fake.url, "api_key": key,  # type: ignore[union-attr]
                "poll_interval_s": 0.05, "qps": 0}

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
        return self.fake.created  # type: ignore[union-attr]

    def was_cancelled(self, remote_id: str) -> bool:
        job = self.fake.jobs.get(remote_id)  # type: ignore[union-attr]
        return job is not None and job.cancelled_at is not None

    def inject(self, fault: str) -> None:
        f = self.fake
        assert f is not None
        if fault == "submit_5xx":
            f.faults.add("template_job", "status", status=503)
        elif fault == "submit_429":
            f.faults.add("template_job", "status", status=429, retry_after=1,
                         body={"code": 8, "message": "rate limit exceeded: 5 QPS", "details": []})
        elif fault == "submit_drop_after":
            f.faults.add("template_job", "drop_after")
        elif fault == "poll_5xx":
            f.faults.add("get_job", "status", status=502, times=2)
        elif fault == "poll_malformed":
            f.faults.add("get_job", "malformed")
        elif fault == "download_truncated":
            f.faults.add("file", "truncate")
        elif fault == "download_expired":
            f.expire_files = True
        elif fault == "node_error":
            f.fail_next("node", node="7")
        elif fault == "content_safety":
            f.fail_next("content")
        elif fault == "slow_answers":
            for route in ("template_job", "get_job", "template_check"):
                f.faults.add(route, "slow", delay=1.5)
        else:
            raise KeyError(fault)


CASE = TensorArtCase()
