"""SpeedPix in the shared contract suite: the fake of tests/fakes/speedpix.py, published workflows
``wf_solid`` (one image, typed fields), ``wf_multi`` (two images), ``wf_echo`` (returns the uploaded
image), ``wf_slow`` (runs ~40 s). The service has no cancel and no push channel: the suite skips
``ws_drop`` and the assertions about a remote cancel, and ``was_cancelled`` is always False.

Keys: the profile's ``app_secret`` is the suite's key and its ``app_key`` is derived from it. Every
key the suite hands to ``profile()`` is registered as an application, except one that contains
"wrong", "bad" or "invalid": that one the gateway refuses (``Invalid AppKey``), as it refuses a
wrong secret for a known key (``Invalid Signature``).
"""
from __future__ import annotations

import hashlib
import re

from ..fakes.speedpix import FakeSpeedPix, colour_for
from .case import ContractCase, Expect

_WRONG = re.compile(r"wrong|bad|invalid", re.I)


def app_key_for(key: str) -> str:
    return "contract-" + hashlib.sha256(key.encode()).hexdigest()[:16]


class SpeedPixCase(ContractCase):
    provider = "speedpix"
    ROUTES = {"create": "comfy_prompt", "poll": "comfy_get_progress", "outputs": "comfy_get_result",
              "file": "oss_get", "upload": "sp_create_temp_file_upload_sign"}

    async def start(self) -> None:
        self.fake = FakeSpeedPix(clock=self.clock, queue_s=0.3, run_s=1.0, steps=4)
        self.fake.apps = {}
        await self.fake.start()

    @property
    def sp(self) -> FakeSpeedPix:
        assert isinstance(self.fake, FakeSpeedPix), "start() first"
        return self.fake

    def profile(self, key: str) -> dict:
        if key and not _WRONG.search(key):
            self.sp.apps[app_key_for(key)] = key
        return {"provider": "speedpix", "url": self.sp.url, "app_key": app_key_for(key), "app_secret": key,
                "poll_interval_s": 0.05}

    def workflow_single(self):
        prompt = "contract cat"
        return ("wf_solid", [("text", "prompt", prompt), ("int", "width", 24), ("int", "height", 16),
                             ("int", "steps", 4), ("float", "cfg", 2.0)],
                Expect(images=[(24, 16, colour_for(prompt))]))

    def workflow_multi(self):
        rgb = colour_for("contract pair")
        return ("wf_multi", [("text", "prompt", "contract pair")],
                Expect(images=[(16, 16, rgb), (16, 16, tuple(255 - c for c in rgb))]))

    def workflow_upload(self):
        return ("wf_echo", "image")

    def workflow_slow(self):
        return ("wf_slow", [("text", "prompt", "slow")])

    def bad_target(self):
        # node addressing on a field-addressed provider: refused by validate(), before anything is paid
        return ("wf_solid", [("text", "6.text", "x")])

    def remote_tasks(self) -> int:
        return self.sp.task_count()

    def was_cancelled(self, remote_id: str) -> bool:
        return False  # the service has no cancel

    def finished_remotely(self, remote_id: str) -> bool:
        return self.sp.finished(remote_id)

    def expire_urls(self) -> None:
        # the URLs handed out so far, and those of the next comfy_get_result answer, have expired
        self.sp.expire_urls(next_answers=1)

    def fail_node(self) -> None:
        self.sp.node_error_next = ("3", "KSampler", "Error occurred when executing KSampler (node 3): CUDA out of memory")

    def refuse_content(self) -> None:
        self.sp.content_safety_next = "output"  # the output fails the check: the task ends failed


CASE = SpeedPixCase()
