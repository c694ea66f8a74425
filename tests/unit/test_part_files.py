"""``.part`` files (downloads in progress) never outlive their download: a file refused for good
leaves none, and on start the engine deletes those of tasks no longer downloading — while a task
still unfinished or recoverable keeps what arrived, to resume with ``Range``."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web

from comfyui_remote.engine.journal import Journal
from comfyui_remote.engine.rules import RetryPolicy
from comfyui_remote.engine.tasks import TaskManager
from comfyui_remote.engine.transfer import Http
from comfyui_remote.providers.errors import RejectedInput
from comfyui_remote.tests.fakes.toolkit import FakeServer

BLOB = bytes(range(256)) * 1024


class Files(FakeServer):
    name = "files"

    def setup_routes(self, router):
        async def blob(request):
            rng = request.headers.get("Range", "")
            start = int(rng[6:-1]) if rng.startswith("bytes=") and rng.endswith("-") else 0
            return web.Response(body=BLOB[start:], status=206 if start else 200,
                                content_type="application/octet-stream")

        async def endless(request):  # no Content-Length: the cap trips while streaming
            resp = web.StreamResponse()
            resp.content_type = "application/octet-stream"
            await resp.prepare(request)
            for _ in range(64):
                await resp.write(BLOB[:4096])
            return resp

        router.add_get("/blob", blob, name="blob")
        router.add_get("/endless", endless, name="endless")


@pytest.fixture
async def server():
    s = Files()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def http():
    h = Http(provider="t", profile="p", policy=RetryPolicy(attempts=1, request_timeout_s=2))
    yield h
    await h.close()


async def test_a_resumed_file_over_the_cap_leaves_no_part_file(server, http, tmp_path):
    part = tmp_path / "r.png.part"
    part.write_bytes(BLOB[:1000])  # an earlier attempt's bytes
    with pytest.raises(RejectedInput, match="cap"):
        await http.fetch_to(server.url + "/blob", part, max_bytes=5000)
    assert not part.exists()


async def test_a_stream_that_grows_over_the_cap_leaves_no_part_file(server, http, tmp_path):
    part = tmp_path / "e.png.part"
    with pytest.raises(RejectedInput, match="cap"):
        await http.fetch_to(server.url + "/endless", part, max_bytes=20_000)
    assert not part.exists()


def _task(j: Journal, tid: str, profile: str, **fields) -> None:
    j.create(tid, profile=profile, provider="sandbox", workflow="wf", remote_id=f"r-{tid}", **fields)


def test_on_start_stale_part_files_are_deleted_and_resumable_ones_kept(tmp_path):
    home, out = tmp_path / "home", tmp_path / "out"
    home.mkdir()
    (home / "profiles.toml").write_text('[profiles.sandbox]\nprovider = "sandbox"\n')
    j = Journal(home / "journal.sqlite3")
    _task(j, "saved1", "sandbox", state="succeeded", outputs_state="saved")
    _task(j, "cancelled1", "sandbox", state="cancelled")
    # finished, a result still to fetch (its profile is gone, so it just stays recoverable)
    _task(j, "missing1", "elsewhere", state="succeeded", outputs_state="missing")
    j.close()
    folder = out / "remote" / "sandbox"
    parts = {}
    for tid in ("saved1", "cancelled1", "missing1", "forgotten1"):
        (folder / tid).mkdir(parents=True)
        parts[tid] = folder / tid / "image_0.png.part"
        parts[tid].write_bytes(b"partial")
    (folder / "saved1" / "image_1.png").write_bytes(b"a saved result")

    m = TaskManager(home, out).start(reattach=True)
    try:
        assert not parts["saved1"].exists() and not parts["cancelled1"].exists()
        assert not parts["forgotten1"].exists(), "a folder with no task in the journal"
        assert parts["missing1"].read_bytes() == b"partial", "a recoverable task resumes from what arrived"
        assert (folder / "saved1" / "image_1.png").exists(), "only .part files are swept"
    finally:
        m.stop()


async def test_a_download_refused_for_good_leaves_no_part_file(tmp_path):
    """Half a result arrives, then the server refuses the file for good (HTTP 400): the task stays
    recoverable, and the half file is gone (nothing could resume it)."""
    from comfyui_remote.tests.fakes.comfyui import FakeComfyUI

    fake = FakeComfyUI()
    await fake.start()
    home = tmp_path / "home"
    home.mkdir()
    (home / "profiles.toml").write_text(f'[profiles.remote]\nprovider = "comfyui"\nurl = "{fake.url}"\n'
                                        'poll_interval_s = 0.05\n')
    fake.faults.add("view", "truncate")
    fake.faults.add("view", "status", status=400, times=-1)
    graph = (Path(__file__).resolve().parents[2] / "providers" / "sandbox_workflows" / "solid.json").read_text()
    m = TaskManager(home, tmp_path / "out", policy=RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05,
                                                               request_timeout_s=2.0)).start(reattach=False)
    try:
        call = lambda coro: asyncio.wait_for(asyncio.wrap_future(m.call(coro)), 60)  # noqa: E731
        tid = await call(m.submit("remote", graph, [], reuse=False))
        snap = await call(m.wait(tid))
        assert snap["state"] == "succeeded" and snap["outputs_state"] == "missing", snap
        assert len(fake.requests("view")) >= 2, "the half download, then the refusal"
        assert not list((tmp_path / "out").rglob("*.part"))
    finally:
        await asyncio.to_thread(m.stop)
        await fake.stop()
