"""nextGPU in the shared contract suite: the fake with fast timings, four foreign jobs (one per
simulated node) ahead of every task so each one visibly queues, result files on the fake's separate
OSS listener with signed, expiring URLs. nextGPU has no cancel (``was_cancelled`` is always False)
and documents no content filter."""
from __future__ import annotations

from ..fakes import nextgpu_apps as apps
from ..fakes.nextgpu import FakeNextGPU
from ..fakes.toolkit import FakeServer
from .case import ContractCase, Expect


class NextGPUCase(ContractCase):
    provider = "nextgpu"
    ROUTES = {"create": "publish", "poll": "getTask", "outputs": "getTask", "file": "file", "upload": "store_put",
              "ws": "ws"}

    async def start(self) -> None:
        fake = FakeNextGPU(clock=self.clock, users=(), run_s=0.8, dispatch_s=0.05, local_queue_s=0.05,
                           foreign_run_s=0.1, slow_run_s=8.0, slots=4)
        fake.default_knobs.ahead = 4  # one foreign job per node: every task visibly queues
        fake.oss.signed = True
        await fake.start()
        self.fake = fake

    @property
    def ng(self) -> FakeNextGPU:
        assert isinstance(self.fake, FakeNextGPU), "start() first"
        return self.fake

    def server_for(self, route: str) -> FakeServer:
        return self.ng.oss if route == "file" else self.ng

    def profile(self, key: str) -> dict:
        """``key`` is both the user name and the bearer token (strict token mode): every key except
        those starting with ``WRONG-`` is accepted, so a wrong key gets nextGPU's (inferred) HTTP 401."""
        if not key.startswith("WRONG-"):
            self.ng.users.add(key)
            self.ng.tokens.add(key)
        return {"provider": "nextgpu", "url": self.ng.url, "user": key, "token": key,
                "image_upload_url": f"{self.ng.url}/_store", "poll_interval_s": 0.05}

    def workflow_single(self):
        prompt = "a red fox"
        return (apps.T2I_TITLE, [("text", "promptText", prompt), ("text", "imageRatio", "1:1")],
                Expect([(16, 16, apps.solid_colour(prompt))]))

    def workflow_multi(self):
        rgb = apps.solid_colour("two of them")
        expect = Expect([(8, 8, rgb), (8, 8, apps.inverse(rgb))])
        return apps.PAIR_TITLE, [("text", "promptText", "two of them")], expect

    def workflow_upload(self):
        return apps.ECHO_TITLE, "imageName"

    def workflow_slow(self):
        return apps.SLOW_TITLE, [("text", "promptText", "slow")]

    def bad_target(self):
        return apps.T2I_TITLE, [("text", "6.text", "node addressing is not nextGPU's")]

    def remote_tasks(self) -> int:
        return self.ng.task_count()

    def was_cancelled(self, remote_id: str) -> bool:
        return False  # nextGPU has no cancel: a task always runs to its end

    def finished_remotely(self, remote_id: str) -> bool:
        task = self.ng.tasks.get(remote_id)
        return task is not None and task.state in (3, 4)

    def expire_urls(self) -> None:
        self.ng.oss.expire_all()

    def fail_node(self) -> None:
        self.ng.next_task(fail_attempts=3, failure_reason="KSampler (#3): CUDA out of memory", ahead=4)

    def refuse_content(self) -> None:
        raise NotImplementedError("nextGPU documents no content-safety filter")


CASE = NextGPUCase()
