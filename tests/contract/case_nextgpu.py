"""nextGPU for the shared contract suite: the fake with fast timings, four foreign jobs (one per
simulated node) ahead of every task so each one visibly queues, and the faults nextGPU can have.
``content_safety`` is absent: nextGPU documents no content filter. No cancel (capabilities.cancel
is False): ``was_cancelled`` is always False."""
from __future__ import annotations

from ..fakes import nextgpu_apps as apps
from ..fakes.nextgpu import FakeNextGPU
from .case import ContractCase, Expect


class NextGPUCase(ContractCase):
    provider = "nextgpu"
    faults = frozenset({"submit_5xx", "submit_429", "submit_drop_after", "poll_5xx", "poll_malformed", "ws_drop",
                        "download_truncated", "download_expired", "node_error", "slow_answers"})

    async def start(self) -> None:
        self.fake = FakeNextGPU(clock=self.clock, users=(), run_s=0.4, dispatch_s=0.03, local_queue_s=0.03,
                                foreign_run_s=0.1, slow_run_s=6.0, slots=4)
        self.fake.default_knobs.ahead = 4  # one foreign job per node: every task visibly queues
        await self.fake.start()

    def profile(self, key: str) -> dict:
        """``key`` is both the user name and the bearer token. Every key except those starting with
        ``WRONG-`` is accepted (strict token mode), so a wrong key gets nextGPU's (inferred) HTTP 401."""
        assert isinstance(self.fake, FakeNextGPU), "start() first"
        if not key.startswith("WRONG-"):
            self.fake.users.add(key)
            self.fake.tokens.add(key)
        return {"provider": "nextgpu", "url": self.fake.url, "user": key, "token": key,
                "image_upload_url": f"{self.fake.url}/_store", "poll_interval_s": 0.05}

    def workflow_single(self):
        prompt = "a red fox"
        return (apps.T2I_TITLE, [("text", "promptText", prompt), ("text", "imageRatio", "1:1")],
                Expect([(16, 16, apps.solid_colour(prompt))]))

    def workflow_multi(self):
        prompt = "two of them"
        rgb = apps.solid_colour(prompt)
        return apps.PAIR_TITLE, [("text", "promptText", prompt)], Expect([(8, 8, rgb), (8, 8, apps.inverse(rgb))])

    def workflow_upload(self):
        return apps.ECHO_TITLE, "imageName"

    def workflow_slow(self):
        return apps.SLOW_TITLE, [("text", "promptText", "slow")]

    def bad_target(self):
        return apps.T2I_TITLE, [("text", "6.text", "node addressing is not nextGPU's")]

    def remote_tasks(self) -> int:
        assert isinstance(self.fake, FakeNextGPU)
        return self.fake.task_count()

    def was_cancelled(self, remote_id: str) -> bool:
        return False  # nextGPU has no cancel: tasks always run to the end

    def inject(self, fault: str) -> None:
        f = self.fake
        assert isinstance(f, FakeNextGPU)
        if fault == "submit_5xx":
            f.faults.add("publish", "status", status=503, body="<html>503 Service Temporarily Unavailable</html>")
        elif fault == "submit_429":
            f.faults.add("publish", "status", status=429, retry_after=1, body="<html>429 Too Many Requests</html>")
        elif fault == "submit_drop_after":
            f.faults.add("publish", "drop_after")
        elif fault == "poll_5xx":
            f.faults.add("getTask", "status", status=502, times=3, body="<html>502 Bad Gateway</html>")
        elif fault == "poll_malformed":
            f.faults.add("getTask", "malformed")
        elif fault == "ws_drop":
            f.faults.add("ws", "ws_drop", after=2)
        elif fault == "download_truncated":
            f.oss.faults.add("file", "truncate")
        elif fault == "download_expired":
            f.expire_files = True
        elif fault == "node_error":
            f.next_task(fail_attempts=3, failure_reason="KSampler (#3): CUDA out of memory", ahead=4)
        elif fault == "slow_answers":
            f.faults.add("publish", "slow", delay=1.5)
            f.faults.add("getTask", "slow", delay=1.5, times=2)
        else:
            raise ValueError(f"nextgpu case cannot play fault {fault!r}")


CASE = NextGPUCase()
