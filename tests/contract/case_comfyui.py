"""A plain ComfyUI server in the shared contract suite: :class:`FakeComfyUI` behind a token (the
authenticating reverse proxy a remote ComfyUI usually sits behind), running the sandbox node types."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ..fakes.comfyui import FakeComfyUI
from .case import ContractCase, Expect

WORKFLOWS = Path(__file__).resolve().parents[2] / "providers" / "sandbox_workflows"

ECHO = json.dumps({"10": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
                   "12": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "echo"}}})
MULTI = json.dumps({
    "1": {"class_type": "SandboxSolid", "inputs": {"text": "red", "width": 32, "height": 16}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "5": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "multi_red"}},
    "6": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "multi_cyan"}},
})


def slow_text() -> str:
    return (WORKFLOWS / "slow.json").read_text()


class ComfyWorkflows(ContractCase):
    """The graphs every ComfyUI-speaking case runs (fake, sandbox, real server): sandbox node types."""

    def workflow_single(self) -> tuple[str, list[tuple[str, str, object]], Expect]:
        overrides = [("text", "1.text", "#3366cc"), ("int", "2.steps", 6), ("float", "2.step_seconds", 0.05)]
        return slow_text(), overrides, Expect(images=[(64, 64, (0x33, 0x66, 0xCC))])

    def workflow_multi(self) -> tuple[str, list, Expect]:
        return MULTI, [], Expect(images=[(32, 16, (255, 0, 0)), (32, 16, (0, 255, 255))])

    def workflow_upload(self) -> Optional[tuple[str, str]]:
        return ECHO, "10.image"

    def workflow_slow(self) -> tuple[str, list]:
        return slow_text(), [("int", "2.steps", 400), ("float", "2.step_seconds", 0.05)]

    def bad_target(self) -> tuple[str, list]:
        return slow_text(), [("int", "2.stepz", 3)]


class ComfyUICase(ComfyWorkflows):
    provider = "comfyui"
    ROUTES = {"create": "prompt", "poll": "history", "outputs": "history", "cancel": "queue_edit",
              "file": "view", "upload": "upload", "ws": "ws"}

    async def start(self) -> None:
        fake = FakeComfyUI(clock=self.clock)
        await fake.start()
        self.fake = fake

    @property
    def cf(self) -> FakeComfyUI:
        assert isinstance(self.fake, FakeComfyUI), "start() first"
        return self.fake

    def profile(self, key: str) -> dict:
        if key and not key.startswith("WRONG-"):
            self.cf.token = key  # the proxy's token is the one the suite means to be right
        return {"provider": "comfyui", "url": self.cf.url, "token": key, "poll_interval_s": 0.05}

    def remote_tasks(self) -> int:
        return len(self.cf.created)

    def was_cancelled(self, remote_id: str) -> bool:
        return remote_id in self.cf.interrupted or remote_id in self.cf.deleted

    def finished_remotely(self, remote_id: str) -> bool:
        return remote_id in self.cf.history

    def expire_urls(self) -> None:
        # /view links do not expire on a ComfyUI, but a proxy in front of one may refuse a stale
        # signed link once; a fresh look at /history gives the link again
        self.cf.faults.add("view", "status", status=403, body={"error": "Request has expired"})

    def fail_node(self) -> None:
        self.cf.fail_next("SandboxSlowPass", "mat1 and mat2 shapes cannot be multiplied (1x768 and 1024x320)")

    def refuse_content(self) -> None:
        raise NotImplementedError("a plain ComfyUI has no content-safety filter")


CASE = ComfyUICase()
