"""Engine timing targets (design §6), on loopback against the fakes:

- push provider (comfyui over its WebSocket): result seen locally ≤ 250 ms after the remote finished;
- poll provider (speedpix): mean delay ≤ about half the poll interval;
- per-task overhead ≤ 20 % over a direct aiohttp client doing the same calls;
- 100 concurrent tasks finish in about the time of the slowest.
Stated latency: FakeComfyUI spends 0.05 s per node; SpeedPix tasks queue 0.2 s and run 1 s.
"""
from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from pathlib import Path

import aiohttp

from comfyui_remote.engine.tasks import TaskManager
from comfyui_remote.engine.transfer import RetryPolicy
from comfyui_remote.providers.base import Override
from comfyui_remote.tests.fakes.comfyui import FakeComfyUI
from comfyui_remote.tests.fakes.speedpix import FakeSpeedPix

SOLID = {"1": {"class_type": "SandboxSolid", "inputs": {"text": "red", "width": 64, "height": 64}},
         "9": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bench"}}}


def _manager(tmp_path: Path, tables: str) -> TaskManager:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "profiles.toml").write_text(tables)
    return TaskManager(home, tmp_path / "out", policy=RetryPolicy(attempts=3, base_s=0.05, cap_s=0.5)).start(
        reattach=False)


async def _call(m: TaskManager, coro, timeout: float = 120):
    return await asyncio.wait_for(asyncio.wrap_future(m.call(coro)), timeout)


def _seen_times(m: TaskManager) -> dict:
    seen: dict = {}
    m.events.subscribe(lambda t: seen.setdefault(t["id"], time.time()) if t["state"] == "succeeded" else None)
    return seen


async def test_push_result_seen_within_250_ms(tmp_path):
    fake = FakeComfyUI(node_s=0.05, cache=False)
    await fake.start()
    m = _manager(tmp_path, f'[profiles.r]\nprovider = "comfyui"\nurl = "{fake.url}"\npoll_interval_s = 1\n')
    seen = _seen_times(m)
    lat = []
    try:
        for i in range(8):
            g = json.loads(json.dumps(SOLID))
            g["1"]["inputs"]["width"] = 64 + i  # distinct prompts
            tid = await _call(m, m.submit("r", json.dumps(g), [], reuse=False))
            snap = await _call(m, m.wait(tid))
            async with aiohttp.ClientSession() as s:
                hist = await (await s.get(f"{fake.url}/history/{snap['remote_id']}")).json()
            done_ms = next(d["timestamp"] for k, d in hist[snap["remote_id"]]["status"]["messages"]
                           if k == "execution_success")
            lat.append(seen[tid] - done_ms / 1000)
    finally:
        await asyncio.to_thread(m.stop)
        await fake.stop()
    print(f"\npush (comfyui WS): result seen {statistics.median(lat) * 1000:.0f} ms median, "
          f"{max(lat) * 1000:.0f} ms max after the remote finished (incl. download)")
    assert statistics.median(lat) <= 0.25


async def test_poll_result_seen_within_about_half_the_interval(tmp_path):
    fake = FakeSpeedPix(queue_s=0.2, run_s=1.0)
    await fake.start()
    interval = 0.5
    m = _manager(tmp_path, f'[profiles.s]\nprovider = "speedpix"\nurl = "{fake.url}"\napp_key = "test-app-key"\n'
                           f'app_secret = "test-app-secret"\npoll_interval_s = {interval}\n')
    seen = _seen_times(m)
    lat = []
    try:
        for i in range(8):
            fake.run_s = 1.0 + i * interval / 8  # finish at every phase of the poll timer
            tid = await _call(m, m.submit("s", "wf_solid", [Override("prompt", "text", f"bench {i}")], reuse=False))
            snap = await _call(m, m.wait(tid))
            task = fake.tasks[snap["remote_id"]]
            lat.append(seen[tid] - (task.created_wall_ms / 1000 + task.queue_s + task.run_s))
    finally:
        await asyncio.to_thread(m.stop)
        await fake.stop()
    mean = statistics.mean(lat)
    print(f"\npoll (speedpix, {interval} s): result seen {mean * 1000:.0f} ms mean, {max(lat) * 1000:.0f} ms max "
          f"after the remote finished (half the interval: {interval * 500:.0f} ms)")
    assert mean <= interval * 0.5 + 0.1  # + the last poll's round trip and the download


async def _direct_comfyui(url: str, graph: dict, dest: Path) -> None:
    """The baseline: the same calls with plain aiohttp, no engine."""
    cid = uuid.uuid4().hex
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"{url}/ws?clientId={cid}") as ws:
            r = await s.post(f"{url}/prompt", json={"prompt": graph, "client_id": cid})
            pid = (await r.json())["prompt_id"]
            async for msg in ws:
                data = json.loads(msg.data) if msg.type == aiohttp.WSMsgType.TEXT else {}
                if data.get("type") == "execution_success" and data["data"]["prompt_id"] == pid:
                    break
        hist = await (await s.get(f"{url}/history/{pid}")).json()
        img = hist[pid]["outputs"]["9"]["images"][0]
        body = await (await s.get(f"{url}/view", params=img)).read()
        await asyncio.to_thread(dest.write_bytes, body)


async def test_overhead_over_direct_aiohttp_at_most_20_percent(tmp_path):
    fake = FakeComfyUI(node_s=0.05, cache=False)
    await fake.start()
    m = _manager(tmp_path, f'[profiles.r]\nprovider = "comfyui"\nurl = "{fake.url}"\npoll_interval_s = 1\n')
    base, ours = [], []
    try:
        for i in range(10):
            g = json.loads(json.dumps(SOLID))
            g["1"]["inputs"]["height"] = 100 + i
            t0 = time.perf_counter()
            await _direct_comfyui(fake.url, g, tmp_path / f"direct_{i}.png")
            base.append(time.perf_counter() - t0)
            g["1"]["inputs"]["height"] = 200 + i
            t0 = time.perf_counter()
            tid = await _call(m, m.submit("r", json.dumps(g), [], reuse=False))
            await _call(m, m.wait(tid))
            ours.append(time.perf_counter() - t0)
    finally:
        await asyncio.to_thread(m.stop)
        await fake.stop()
    b, o = statistics.median(base), statistics.median(ours)
    print(f"\nper task: direct aiohttp {b * 1000:.0f} ms, engine {o * 1000:.0f} ms ({(o / b - 1) * 100:+.0f} %)")
    assert o <= b * 1.20


async def test_100_concurrent_tasks_take_about_the_time_of_the_slowest(tmp_path):
    fake = FakeSpeedPix(queue_s=0.2, run_s=1.0)
    await fake.start()
    m = _manager(tmp_path, f'[profiles.s]\nprovider = "speedpix"\nurl = "{fake.url}"\napp_key = "test-app-key"\n'
                           f'app_secret = "test-app-secret"\npoll_interval_s = 0.25\nmax_concurrent = 100\n')
    try:
        t0 = time.perf_counter()
        tid = await _call(m, m.submit("s", "wf_solid", [Override("prompt", "text", "single")], reuse=False))
        await _call(m, m.wait(tid))
        single = time.perf_counter() - t0

        async def one(i: int) -> str:
            tid = await _call(m, m.submit("s", "wf_solid", [Override("prompt", "text", f"c{i}")], reuse=False))
            return (await _call(m, m.wait(tid)))["state"]

        t0 = time.perf_counter()
        states = await asyncio.gather(*(one(i) for i in range(100)))
        many = time.perf_counter() - t0
    finally:
        await asyncio.to_thread(m.stop)
        await fake.stop()
    assert states.count("succeeded") == 100
    print(f"\n1 task {single:.2f} s; 100 concurrent tasks {many:.2f} s ({many / single:.1f}x)")
    assert many <= single * 2.0
