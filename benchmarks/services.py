"""Each provider's fake, shaped for the benchmark: a remote task that queues 0.5 s, then runs 1.5 s.

Built on the contract suite's cases (``tests/contract/case_<provider>.py``), which already know how
to start each fake and point a profile at it. The profile keeps the pack's defaults (poll interval,
request budget): the benchmark measures what a user gets, not a tuned setting.
"""
from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass
from typing import Any, Optional

QUEUE_S, RUN_S = 0.5, 1.5
KEY = "bench-key-4c1d9e"
# requests per second each service allows (None: no limit), from /work/shared/providers/*.md
DOCUMENTED = {
    "tensorart": (5.0, "5 QPS per app (TAMS FAQ)"),
    "speedpix": (None, "none documented; the pack keeps to 10/s"),
    "runninghub": (None, "none documented; the pack keeps to 10/s"),
    "nextgpu": (None, "none documented; the pack keeps to 10/s"),
    "comfycloud": (None, "none published (account-scoped 429); the pack keeps to 10/s"),
    "comfyui": (None, "your own server: no limit"),
}
PROVIDERS = tuple(DOCUMENTED)


@dataclass
class Service:
    name: str
    case: Any
    run_s: float = RUN_S  # how long a task runs on a ComfyUI-like server (the others: their fake's setting)

    @property
    def fake(self) -> Any:
        return self.case.fake

    def profile(self, **extra: Any) -> dict:
        """The case's profile with the pack's defaults for timing (its test-speed settings removed)."""
        table = dict(self.case.profile(KEY))
        for k in ("poll_interval_s", "max_rps"):
            table.pop(k, None)
        table.update(extra)
        return table

    def workflow(self, tag: str) -> tuple[str, list]:
        """The case's one-image workflow, tagged so no two tasks are alike; on a ComfyUI-like server
        it runs ``self.run_s`` (the other fakes take their run time from their own settings)."""
        wf, overrides, _ = self.case.workflow_single()
        out = []
        for kind, target, value in overrides:
            if self.name in ("comfyui", "comfycloud") and target == "2.steps":
                value = max(1, round(self.run_s / 0.05))  # steps of 0.05 s
            out.append((kind, target, value))
        if self.name in ("comfyui", "comfycloud"):
            out.append(("text", "1.text", _colour(tag)))
        elif self.name == "tensorart":
            out.append(("text", "6.text", tag))
        elif self.name in ("speedpix",):
            out.append(("text", "prompt", tag))
        elif self.name == "nextgpu":
            out.append(("text", "promptText", tag))
        elif self.name == "runninghub":
            out.append(("text", "6.text", tag))
        return wf, _dedupe(out)

    def finished(self, remote_id: Optional[str]) -> bool:
        return bool(remote_id) and self.case.finished_remotely(remote_id)

    def comfy(self) -> Any:
        """The ComfyUI-like server that runs the graphs (comfyui, comfycloud), or None."""
        if self.name == "comfyui":
            return self.fake
        if self.name == "comfycloud":
            return self.fake.worker
        return None

    async def before_task(self) -> None:
        """ComfyUI-like servers queue by order: another user's 0.5 s prompt goes in first."""
        server = self.comfy()
        if server is not None:
            await server.queue_foreign(steps=10, step_seconds=QUEUE_S / 10)


def _colour(tag: str) -> str:
    return "#%06x" % (abs(hash(tag)) % 0xFFFFFF)


def _dedupe(items: list) -> list:
    seen: dict = {}
    for kind, target, value in items:
        seen[target] = (kind, target, value)
    return list(seen.values())


async def start(name: str, fan_out: int = 100) -> Service:
    mod = importlib.import_module(f"comfyui_remote.tests.contract.case_{name}")
    case = type(mod.CASE)()
    await case.start()
    fake = case.fake
    if name == "tensorart":
        fake.created_s, fake.queue_s, fake.run_s, fake.step_s = 0.0, QUEUE_S, RUN_S, 0.0
    elif name == "speedpix":
        fake.queue_s, fake.run_s = QUEUE_S, RUN_S
    elif name == "runninghub":
        fake.queue_s, fake.run_s, fake.output_lag_s = QUEUE_S, RUN_S, 0.0
    elif name == "nextgpu":
        fake.dispatch_s, fake.local_queue_s, fake.run_s = 0.05, QUEUE_S - 0.05, RUN_S
        fake.default_knobs.ahead = 0
        # enough simulated GPU nodes that a fan-out runs at once, as on the other services
        fake._workers += [asyncio.ensure_future(fake._worker(i)) for i in range(fake.slots, fan_out)]
        fake.slots = fan_out
    svc = Service(name, case)
    if name == "runninghub":
        svc.profile()  # registers the key
        fake.keys[KEY]["limit"] = fan_out
    return svc
