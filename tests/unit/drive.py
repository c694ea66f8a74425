"""Drive one provider directly in its unit tests: submit, then ask ``poll`` at the provider's
interval until the service reports an end (collecting every update), and read ``push`` on the side.
Errors from a look are returned, not retried: the retry rules are the engine's and are tested
through the contract suite."""
from __future__ import annotations

import asyncio
from typing import Any, Optional

from comfyui_remote.providers.base import Provider, RemoteRef, SubmitSpec, TaskUpdate


async def submit(p: Provider, spec: SubmitSpec, *, validate: bool = True) -> RemoteRef:
    if validate:
        await p.validate(spec)
    return await p.submit(spec, p.new_submission_key())


async def until_end(p: Provider, ref: RemoteRef, *, timeout: float = 30.0, live: Optional[list] = None,
                    interval: Optional[float] = None) -> list[TaskUpdate]:
    """Every polled update up to and including the terminal one. ``live`` collects push updates."""
    updates: list[TaskUpdate] = []
    reader: Optional[asyncio.Future] = None

    def follow_push() -> Optional[asyncio.Future]:  # like the engine: asked again after each poll
        if live is None or (reader is not None and not reader.done()):
            return reader
        push = p.push(ref)
        return asyncio.ensure_future(_read(push, live)) if push is not None else reader

    try:
        async def loop() -> None:
            nonlocal reader
            while True:
                reader = follow_push()
                upd = await p.poll(ref)
                updates.append(upd)
                if upd.state.terminal:
                    return
                await asyncio.sleep(interval if interval is not None else p.poll_interval())
        await asyncio.wait_for(loop(), timeout)
    finally:
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    return updates


async def _read(stream: Any, into: list) -> None:
    async for upd in stream:
        into.append(upd)


async def run(p: Provider, spec: SubmitSpec, **kw: Any) -> tuple[RemoteRef, list[TaskUpdate]]:
    ref = await submit(p, spec)
    return ref, await until_end(p, ref, **kw)
