"""The fake Comfy API v2 against the facts (``shared/providers/comfy-api-v2.md``: literal bodies, status
codes, SSE framing) and against the REAL ``comfy-api-proxy`` in front of a real ComfyUI (the same
requests to both; key sets and types of jobs, outputs, errors and events must agree except where
the facts say the surfaces differ: §12)."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from comfyui_remote.tests.fakes.comfycloud import FakeComfyCloud, b3

KEY = "comfyui-fidelity-key"
GRAPH = json.loads((Path(__file__).resolve().parents[2] / "providers" / "sandbox_workflows" / "slow.json").read_text())
GRAPH["2"]["inputs"].update(steps=4, step_seconds=0.1)
JOB_FIELDS = {"id", "status", "created_at", "started_at", "completed_at", "expires_at", "queue_position", "progress",
              "outputs", "error", "urls"}  # §3.1: required by the spec
OUTPUT_FIELDS = {"node_id", "name", "type", "content_type", "size_bytes", "id", "hash", "url", "url_expires_at",
                 "job_id"}  # §5
REUSE = ("This Idempotency-Key has already been used. Keys are single-use; poll or list your jobs instead of "
         "resubmitting with the same key.")  # §9, literal


@pytest.fixture
async def fake():
    f = FakeComfyCloud(api_key=KEY, surface="cloud")
    await f.start()
    yield f
    await f.stop()


class V2:
    """A bare v2 client: what the server said, nothing interpreted."""

    def __init__(self, base: str, key: str = ""):
        self.base, self.headers = base, ({"Authorization": f"Bearer {key}"} if key else {})

    async def __aenter__(self):
        self.s = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        return self

    async def __aexit__(self, *exc):
        await self.s.close()

    async def call(self, method: str, path: str, **kw) -> tuple[int, dict, bytes]:
        headers = {**self.headers, **kw.pop("headers", {})}
        async with self.s.request(method, self.base + "/api/v2" + path, headers=headers, **kw) as r:
            return r.status, dict(r.headers), await r.read()

    async def job_to_end(self, key: str) -> dict:
        status, _, body = await self.call("POST", "/jobs", json={"workflow": GRAPH}, headers={"Idempotency-Key": key})
        assert status == 201, body
        job = json.loads(body)
        async with self.s.get(job["urls"]["events"] if job["urls"]["events"].startswith("http") else
                              self.base + job["urls"]["events"], headers=self.headers) as r:
            assert r.headers["Content-Type"].startswith("text/event-stream")
            text = (await r.read()).decode()
        _, _, body = await self.call("GET", f"/jobs/{job['id']}")
        return {"submitted": job, "final": json.loads(body), "events": text}


def events_of(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = [ln for ln in block.split("\n") if not ln.startswith(":")]
        if lines:
            assert all(ln.startswith(("event: ", "data: ")) for ln in lines), block  # no id:, no retry: (§7)
            out.append((lines[0][7:], json.loads(lines[1][6:])))
    return out


def types(x):
    if isinstance(x, dict):
        return {k: types(v) for k, v in x.items()}
    return type(x).__name__


async def test_fake_follows_the_documented_shapes(fake):
    async with V2(fake.url, KEY) as c:
        run = await c.job_to_end("k-1")
        status, _, body = await c.call("POST", "/jobs", json={"workflow": GRAPH}, headers={"Idempotency-Key": "k-1"})
        reuse = json.loads(body)
        anon = await V2(fake.url).__aenter__()
        no_auth = await anon.call("GET", "/jobs/x")
        await anon.__aexit__()
        bad = await V2(fake.url, "nope").__aenter__()
        wrong = await bad.call("GET", "/jobs/x")
        await bad.__aexit__()
        listed = await c.call("GET", "/jobs")
    final = run["final"]
    assert JOB_FIELDS <= set(final) and final["status"] == "succeeded"
    assert set(final["outputs"][0]) == OUTPUT_FIELDS and final["outputs"][0]["hash"].startswith("blake3:")
    assert final["metrics"].keys() == {"queue_ms", "execution_ms"}
    assert (status, reuse) == (422, {"error": {"code": "idempotency_key_reuse", "message": REUSE, "details": None}})
    assert json.loads(no_auth[2])["error"]["message"] == "Missing or malformed Authorization header."
    assert (wrong[0], json.loads(wrong[2])) == (401, {"error": {"code": "unauthorized", "message": "Invalid token.",
                                                                  "details": None}})
    assert listed[0] == 501 and json.loads(listed[2])["error"]["code"] == "not_implemented"  # Cloud (§3.6)
    names = [n for n, _ in events_of(run["events"])]
    assert names[0] == "status" and names[-1] == "status" and {"progress", "preview", "output"} <= set(names)


async def test_fake_assets_dedup_and_errors_like_the_facts(fake):
    data = b"\x89PNG fake bytes"
    async with V2(fake.url, KEY) as c:
        miss = await c.call("HEAD", f"/assets/by-hash/{b3(data)}")
        form = aiohttp.FormData()
        for k, v in (("content_type", "image/png"), ("file_path", "photo.png"), ("expected_hash", b3(data))):
            form.add_field(k, v)
        form.add_field("file", data, filename="photo.png", content_type="image/png")
        first = await c.call("POST", "/assets", data=form)
        hit = await c.call("HEAD", f"/assets/by-hash/{b3(data)}")
        minted = await c.call("POST", "/assets/from-hash", json={"hash": b3(data), "file_path": "photo.png"})
        gone = await c.call("POST", "/assets/from-hash", json={"hash": b3(b"other"), "file_path": "x.png"})
        bad = aiohttp.FormData()
        bad.add_field("file_path", "p.png")
        bad.add_field("expected_hash", b3(b"other"))
        bad.add_field("file", data, filename="p.png", content_type="image/png")
        mismatch = await c.call("POST", "/assets", data=bad)
        content = await c.call("GET", f"/assets/{json.loads(first[2])['id']}/content", allow_redirects=False)
    assert (miss[0], miss[2], hit[0], hit[2]) == (404, b"", 200, b"")
    assert first[0] == 201 and json.loads(first[2])["created_new"] is True
    assert minted[0] in (200, 201) and gone[0] == 404 and json.loads(gone[2])["error"]["code"] == "blob_not_found"
    assert mismatch[0] == 409 and json.loads(mismatch[2])["error"]["code"] == "hash_mismatch"
    assert content[0] == 302 and "X-Goog-Signature=" in content[1]["Location"]
    assert not content[1]["Location"].startswith(fake.url)  # a signed URL on another origin (§5)


async def test_stream_cap_answers_like_the_proxy(fake):
    fake.max_streams = 0
    async with V2(fake.url, KEY) as c:
        _, _, body = await c.call("POST", "/jobs", json={"workflow": GRAPH})
        status, headers, body = await c.call("GET", f"/jobs/{json.loads(body)['id']}/events")
    assert (status, headers["Retry-After"], json.loads(body)["error"]["code"]) == (429, "5", "too_many_streams")


@pytest.mark.e2e
async def test_fake_and_real_proxy_agree(comfy_proxy):
    fake = FakeComfyCloud(api_key=KEY, surface="cloud")
    await fake.start()
    try:
        async with V2(comfy_proxy.url) as real, V2(fake.url, KEY) as ours:
            got = await asyncio.gather(real.job_to_end("fid-1"), ours.job_to_end("fid-1"))
            again = await asyncio.gather(*(c.call("POST", "/jobs", json={"workflow": GRAPH},
                                                  headers={"Idempotency-Key": "fid-1"}) for c in (real, ours)))
            missing = await asyncio.gather(*(c.call("GET", "/jobs/45bb8c5b-8b23-48b6-a4bf-88bdb5cd9f8f")
                                             for c in (real, ours)))
    finally:
        await fake.stop()
    (r, f) = got
    # the proxy-only and Cloud-only fields (§12) aside, a job, an output and the events look the same
    for key in ("submitted", "final"):
        rj, fj = dict(r[key]), dict(f[key])
        rj.pop("outputs_reused"), fj.pop("metrics")
        assert set(rj) == set(fj), key
    ro, fo = r["final"]["outputs"][0], f["final"]["outputs"][0]
    assert set(ro) == set(fo) and ro["type"] == fo["type"] == "image" and ro["content_type"] == fo["content_type"]
    assert {n for n, _ in events_of(r["events"])} <= {n for n, _ in events_of(f["events"])}
    for (rn, rd), (fn, fd) in zip(events_of(r["events"])[:1], events_of(f["events"])[:1]):
        assert rn == fn == "status"
    for (status, _, body) in again + missing:
        assert types(json.loads(body)) == {"error": {"code": "str", "message": "str", "details": "NoneType"}}
    assert [json.loads(b)["error"]["code"] for _, _, b in again] == ["idempotency_key_reuse"] * 2
    assert [json.loads(b)["error"]["message"] for _, _, b in again] == [REUSE] * 2
    assert [s for s, _, _ in missing] == [404, 404]
