"""Run one task of a provider's fake through the engine (TaskManager: upload, submit, watch,
download to disk) and hand back what it saved: the media tests of every provider use it."""
from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any, Optional

from comfyui_remote.engine.tasks import TaskManager
from comfyui_remote.engine.transfer import RetryPolicy
from comfyui_remote.providers.base import Override

POLICY = RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05)


def profile(name: str, provider: str, **fields: Any) -> str:
    """A profiles.toml with one profile (values as TOML strings/numbers), polled every 20 ms."""
    lines = [f"[profiles.{name}]", f'provider = "{provider}"', "poll_interval_s = 0.02"]
    lines += [f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"


def file_input(target: str, sample: Any, kind: Optional[str] = None) -> Override:
    """An override carrying a media sample's bytes, as the RemoteInput* nodes build it."""
    kind = kind or ("file" if sample.kind == "text" else sample.kind)
    return Override(target, kind, sample.data, sha256=hashlib.sha256(sample.data).hexdigest(),
                    name=None if kind == "image" else sample.name, mime=sample.mime)


class Engine:
    """A TaskManager on ``profiles_toml``; ``run`` submits and waits (every step bounded by ``timeout``)."""

    def __init__(self, tmp_path: Path, profiles_toml: str):
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        (home / "profiles.toml").write_text(profiles_toml)
        self.m = TaskManager(home, tmp_path / "out", policy=POLICY)

    async def __aenter__(self) -> "Engine":
        self.m.start(reattach=False)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await asyncio.to_thread(self.m.stop)

    async def call(self, coro: Any, timeout: float = 60.0) -> Any:
        return await asyncio.wait_for(asyncio.wrap_future(self.m.call(coro)), timeout)

    async def run(self, profile: str, workflow: str, overrides: list[Override] = (), **kw: Any) -> tuple[dict, list]:
        """(final Task JSON, saved outputs with their paths) of one task, run to its end."""
        tid = await self.call(self.m.submit(profile, workflow, list(overrides), reuse=False, **kw))
        snap = await self.call(self.m.wait(tid))
        return snap, self.m.outputs_of(tid)


def saved_bytes(outputs: list) -> list[tuple[str, bytes]]:
    """(kind, the saved file's bytes) of every output that was downloaded."""
    return [(o["kind"], Path(o["path"]).read_bytes()) for o in outputs if o.get("path")]
