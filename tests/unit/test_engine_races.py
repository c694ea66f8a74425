"""Engine races with a scripted in-memory provider (no network): what arrives late — a live update
after the service reported the end, a progress note after the download — never reopens or
relabels a finished task."""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Optional

import pytest

from comfyui_remote.engine import tasks as tasks_module
from comfyui_remote.engine.rules import RetryPolicy
from comfyui_remote.engine.tasks import TaskManager
from comfyui_remote.providers.base import (Capabilities, Output, Provider, RemoteRef, State, SubmitSpec,
                                           TaskUpdate)


class Chatty(Provider):
    """Finishes on the second look; its live channel keeps talking (RUNNING) forever."""

    id = "comfyui"
    capabilities = Capabilities(cancel=True, progress="push", client_chosen_id=True, findable=True)

    def __init__(self, profile: Any, http: Any):
        super().__init__(profile, http)
        self.looks = 0

    async def submit(self, spec: SubmitSpec, key: str) -> RemoteRef:
        return RemoteRef(key)

    async def poll(self, ref: RemoteRef) -> TaskUpdate:
        self.looks += 1
        if self.looks < 2:
            return TaskUpdate(State.RUNNING, progress=0.5)
        return TaskUpdate(State.SUCCEEDED, outputs=[Output(kind="text", text="done", node="9")], message="done")

    def push(self, ref: RemoteRef) -> Optional[AsyncIterator[TaskUpdate]]:
        async def talk() -> AsyncIterator[TaskUpdate]:
            step = 0
            while True:
                step += 1
                yield TaskUpdate(State.RUNNING, progress=0.5, step=step, max_steps=10 ** 6, node="Late #1")
                await asyncio.sleep(0)
        return talk()


@pytest.fixture
def manager(tmp_path, monkeypatch):
    monkeypatch.setattr(tasks_module, "provider_class", lambda _id: Chatty)
    home = tmp_path / "home"
    home.mkdir()
    (home / "profiles.toml").write_text('[profiles.p]\nprovider = "comfyui"\nurl = "http://127.0.0.1:9"\n'
                                        'poll_interval_s = 0.05\n')
    m = TaskManager(home, tmp_path / "out", policy=RetryPolicy(attempts=2, base_s=0.01, cap_s=0.02)).start(reattach=False)
    yield m
    m.stop()


async def run(m: TaskManager, coro):
    return await asyncio.wait_for(asyncio.wrap_future(m.call(coro)), 30)


async def test_live_updates_after_the_end_never_reopen_the_task(manager):
    m = manager
    events: list = []
    m.events.subscribe(events.append)
    ids = await asyncio.gather(*(run(m, m.submit("p", '{"9": {"class_type": "PreviewAny", "inputs": {}}}', [],
                                                 reuse=False)) for _ in range(20)))
    for tid in ids:
        assert (await run(m, m.wait(tid)))["state"] == "succeeded"
    await run(m, asyncio.sleep(0.3))  # the live channels would have kept talking
    for tid in ids:
        assert m.snapshot(tid)["state"] == "succeeded"
        ended = [i for i, e in enumerate(events) if e["id"] == tid and e["state"] == "succeeded"]
        assert ended and all(e["state"] == "succeeded" for e in events[ended[0]:] if e["id"] == tid)
