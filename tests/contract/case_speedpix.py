"""SpeedPix in the shared contract suite: the fake of tests/fakes/speedpix.py, published workflows
``wf_solid`` (one image, typed fields), ``wf_multi`` (two images), ``wf_echo`` (returns the uploaded
image), ``wf_slow`` (runs ~40 s). The service has no cancel, so cancel scenarios are skipped by
capabilities and ``was_cancelled`` is always False.

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
    faults = frozenset({"submit_5xx", "submit_429", "submit_drop_after", "poll_5xx", "poll_malformed",
                        "download_truncated", "download_expired", "node_error", "content_safety",
                        "slow_answers"})

    async def start(self) -> None:
        self.fake = FakeSpeedPix(clock=self.clock, queue_s=0.3, run_s=1.0, steps=4)
        self.fake.apps = {}
        await self.fake.start()

    def profile(self, key: str) -> dict:
        assert isinstance(self.fake, FakeSpeedPix), "start() first"
        if key and not _WRONG.search(key):
            self.fake.apps[app_key_for(key)] = key
        return {"provider": "speedpix", "url": self.fake.url, "app_key": app_key_for(key), "app_secret": key,
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
        assert self.fake is not None
        return self.fake.task_count()

    def was_cancelled(self, remote_id: str) -> bool:
        return False  # the service has no cancel

    def inject(self, fault: str) -> None:
        f = self.fake
        assert isinstance(f, FakeSpeedPix)
        if fault == "submit_5xx":
            f.faults.add("comfy_prompt", "status", status=503)
        elif fault == "submit_429":
            f.faults.add("comfy_prompt", "status", status=429, retry_after=1)
        elif fault == "submit_drop_after":
            f.faults.add("comfy_prompt", "drop_after")
        elif fault == "poll_5xx":
            f.faults.add("comfy_get_progress", "status", status=502, times=3)
        elif fault == "poll_malformed":
            f.faults.add("comfy_get_progress", "malformed")
        elif fault == "download_truncated":
            f.faults.add("oss_get", "truncate")
        elif fault == "download_expired":
            f.expire_urls = True
        elif fault == "node_error":
            f.node_error_next = ("3", "KSampler",
                                 "Error occurred when executing KSampler (node 3): CUDA out of memory")
        elif fault == "content_safety":
            f.content_safety_next = "input"
        elif fault == "slow_answers":
            for route in ("comfy_prompt", "comfy_get_progress"):
                f.faults.add(route, "slow", delay=1.5)
        else:
            raise ValueError(f"speedpix cannot play fault {fault!r}")


CASE = SpeedPixCase()
