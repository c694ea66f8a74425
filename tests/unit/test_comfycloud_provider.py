"""ComfyCloudProvider against the fake Comfy API v2 (Cloud and deployment surfaces), through public
methods only; the engine's side (an ambiguous submit on Cloud, the built-in profile) through the
TaskManager and Profiles."""
from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfyui_remote.engine.profiles import Profiles
from comfyui_remote.engine.tasks import TaskManager
from comfyui_remote.engine.transfer import Http, Response, RetryPolicy
from comfyui_remote.providers.base import (AuthError, CancelResult, ConfigError, NotSupported, Output, Override,
                                           QuotaError, RateLimited, RejectedInput, RemoteError, RemoteFailure,
                                           RemoteRef, State, SubmitSpec, TaskGone)
from comfyui_remote.providers.comfycloud import CODES, ComfyCloudProvider, KeyReused
from comfyui_remote.providers.comfycloud_wire import blake3_hash
from comfyui_remote.providers.local_file import LocalFile
from comfyui_remote.tests.fakes.comfycloud import FakeComfyCloud
from comfyui_remote.tests.fakes.toolkit import Clock
from comfyui_remote.tests import media_samples as ms
from comfyui_remote.tests.unit import drive

WF = Path(__file__).resolve().parents[2] / "providers" / "sandbox_workflows"
KEY = "comfyui-CANARY-5e4d3c2b1a"


def slow(steps=4, step_seconds=0.05, colour="#3366cc") -> str:
    graph = json.loads((WF / "slow.json").read_text())
    graph["2"]["inputs"].update(steps=steps, step_seconds=step_seconds)
    graph["1"]["inputs"]["text"] = colour
    return json.dumps(graph)


ECHO = json.dumps({"10": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
                   "12": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "echo"}}})


def png(rgb=(10, 200, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (12, 6), rgb).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(params=["deployment", "cloud"])
async def fake(request):
    f = FakeComfyCloud(clock=Clock(), surface=request.param, api_key=KEY)
    await f.start()
    yield f
    await f.stop()


@pytest.fixture
async def make(tmp_path, fake):
    made: list = []

    async def _make(key=KEY, **fields) -> ComfyCloudProvider:
        home = tmp_path / f"home{len(made)}"
        home.mkdir()
        table = {"provider": "comfycloud", "url": fake.url, "api_key": key, "surface": fake.surface,
                 "poll_interval_s": 0.05, **fields}
        (home / "profiles.toml").write_text("[profiles.v2]\n" + "".join(f"{k} = {json.dumps(v)}\n"
                                                                        for k, v in table.items() if v is not None))
        http = Http(provider="comfycloud", profile="v2", policy=RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05))
        p = ComfyCloudProvider(Profiles(home).get("v2"), http)
        made.append((p, http))
        return p

    yield _make
    for p, http in made:
        await p.close()
        await http.close()


def spec(workflow: str, *overrides: Override) -> SubmitSpec:
    return SubmitSpec(workflow=workflow, overrides=tuple(overrides), profile="v2")


async def test_submit_sends_the_key_once_and_follows_the_jobs_links(make, fake):
    p = await make()
    key = p.new_submission_key()
    ref = await p.submit(spec(slow()), key)
    create = fake.requests("jobs_create")[-1]
    assert create.headers["Idempotency-Key"] == key and create.headers["Authorization"] == f"Bearer {KEY}"
    body = create.json()
    assert set(body) == ({"workflow"} if fake.surface == "cloud" else {"workflow", "metadata"})
    updates = await drive.until_end(p, ref)
    assert updates[-1].state is State.SUCCEEDED
    mount = f"/deployment/{fake.deployment}/api/v2/jobs/{ref.remote_id}"
    assert {s.path for s in fake.requests("job")} == {mount if fake.surface == "deployment" else mount[len(
        f"/deployment/{fake.deployment}"):]}
    with pytest.raises(KeyReused) as e:  # single-use: a second create under the key is refused, not replayed
        await p.submit(spec(slow()), key)
    assert e.value.kind == "ambiguous_submit" and "nothing is paid twice" in str(e.value)
    assert len(fake.created) == 1


async def test_push_shows_queue_progress_node_and_previews(make, fake):
    p = await make()
    first = await p.submit(spec(slow(steps=8, colour="red")), p.new_submission_key())
    ref = await p.submit(spec(slow(steps=6)), p.new_submission_key())
    live: list = []
    await drive.until_end(p, first)
    updates = await drive.until_end(p, ref, live=live)
    assert updates[-1].state is State.SUCCEEDED
    running = [u for u in live if u.state is State.RUNNING]
    assert any(u.progress and 0 < u.progress < 1 for u in running), live
    assert any(u.node == "SandboxSlowPass #2" and u.max_steps == 6 for u in running)
    previews = [u.preview for u in running if u.preview]
    assert previews and previews[-1][0] == "image/png" and Image.open(io.BytesIO(previews[-1][1])).size == (64, 64)
    assert fake.count("events") == 1  # one stream per job; it ended with the job


async def test_outputs_download_through_the_content_link_and_the_key_stays_home(make, fake, tmp_path):
    p = await make()
    ref, updates = await drive.run(p, spec(slow(colour="#102030")))
    out = updates[-1].outputs[0]
    asset = fake.jobs[ref.remote_id].outputs[0]
    assert out.url.startswith(fake.url) and out.url.endswith(f"/assets/{asset}/content") and out.kind == "image"
    got = await p.http.fetch_to(out.url, tmp_path / "o.part", headers=p.download_headers(out))
    assert np.asarray(Image.open(got.path))[0, 0].tolist() == [0x10, 0x20, 0x30]
    assert fake.requests("content")[-1].headers["Authorization"] == f"Bearer {KEY}"
    stored = fake.store.requests("object")[-1]
    assert "Authorization" not in stored.headers  # the signed URL on another origin gets no key
    assert p.download_headers(Output(kind="image", url=fake.store.url + "/x")) == {}


async def test_upload_by_blake3_costs_no_second_upload(make, fake, tmp_path):
    p = await make()
    data = png()
    value = await p.upload(data, "image/png", "in.png")
    assert value["__type"] == "core/ASSET" and value["info"]["hash"].startswith("blake3:")
    assert (fake.count("assets_by_hash"), fake.count("assets_upload"), fake.count("assets_from_hash")) == (1, 1, 0)
    assert fake.requests("assets_upload")[-1].body.count(value["info"]["hash"].encode()) == 1  # expected_hash
    again = await p.upload(data, "image/png", "in.png")
    assert (fake.count("assets_by_hash"), fake.count("assets_upload"), fake.count("assets_from_hash")) == (2, 1, 1)
    ref, updates = await drive.run(p, spec(ECHO, Override("10.image", "image", again)))
    out = updates[-1].outputs[0]
    got = await p.http.fetch_to(out.url, tmp_path / "echo.part", headers=p.download_headers(out))
    assert np.array_equal(np.asarray(Image.open(got.path)), np.asarray(Image.open(io.BytesIO(data))))


async def test_a_file_on_disk_is_hashed_and_sent_in_chunks(make, fake, tmp_path, monkeypatch):
    """A video of ComfyUI's folders (a LocalFile) is hashed and uploaded from disk, never read whole:
    the service checks the bytes against the blake3 sent beside them, and the same bytes later are a
    hash hit."""
    monkeypatch.setattr(LocalFile, "read", lambda self: pytest.fail(f"{self.name} was read into memory"))
    clip = ms.webm()
    (tmp_path / clip.name).write_bytes(clip.data)
    p = await make()
    assert p.streams_uploads
    value = await p.upload(LocalFile.at(tmp_path / clip.name), clip.mime, "v-" + clip.name)
    assert value["info"]["hash"] == blake3_hash(clip.data)
    assert (fake.count("assets_by_hash"), fake.count("assets_upload")) == (1, 1)
    again = await p.upload(clip.data, clip.mime, "v-" + clip.name)  # the same bytes: a hit, no upload
    assert again["info"]["hash"] == value["info"]["hash"]
    assert (fake.count("assets_upload"), fake.count("assets_from_hash")) == (1, 1)


@pytest.mark.parametrize("code,cls", [("insufficient_credits", QuotaError), ("queue_full", RateLimited),
                                      ("deployment_not_ready", RateLimited), ("deployment_stopped", ConfigError)])
async def test_refusals_are_the_documented_errors_and_release_the_key(make, fake, code, cls):
    p = await make()
    key = p.new_submission_key()
    fake.refuse_next(code)
    with pytest.raises(cls) as e:
        await p.submit(spec(slow()), key)
    assert code in str(e.value) and "comfycloud" in str(e.value)
    if cls is RateLimited:
        assert e.value.retry_after and e.value.retry_after >= 1
    await p.submit(spec(slow()), key)  # the refusal released the key: the same key creates the job now
    assert len(fake.created) == 1


async def test_invalid_workflow_names_the_remote_node_and_field(make):
    p = await make()
    graph = json.loads(slow())
    graph["1"]["inputs"]["width"] = "abc"
    with pytest.raises(RejectedInput) as e:
        await p.submit(spec(json.dumps(graph)), p.new_submission_key())
    assert e.value.remote_node == "1" and e.value.field == "1.width" and e.value.node_class == "SandboxSolid"
    assert e.value.code == "invalid_workflow"


async def test_ui_format_is_refused_before_sending_with_how_to_export(make, fake):
    p = await make()
    with pytest.raises(RejectedInput) as e:
        await p.validate(spec(json.dumps({"nodes": [], "links": [], "last_node_id": 0})))
    assert "Export (API)" in str(e.value) and fake.count("jobs_create") == 0
    resp = Response(422, {}, json.dumps({"error": {"code": "workflow_format_ui", "message": "UI graph",
                                                   "details": None}}).encode(), fake.url, "POST")
    assert "Export (API)" in str(p.error_of(resp, "POST /api/v2/jobs"))


async def test_wrong_key_is_an_auth_error_naming_where_the_key_comes_from(make, fake):
    p = await make(key="WRONG-key-1234")
    with pytest.raises(AuthError) as e:
        await p.submit(spec(slow()), p.new_submission_key())
    text = str(e.value)
    assert "profiles.toml" in text and "[profiles.v2]" in text and "WRONG-key" not in text
    assert fake.created == []


async def test_expired_and_unknown_jobs_are_gone_but_a_bare_404_is_not(make, fake):
    p = await make()
    ref = await p.submit(spec(slow()), p.new_submission_key())
    fake.expire(ref.remote_id)
    with pytest.raises(TaskGone, match="expired"):
        await p.poll(ref)
    with pytest.raises(TaskGone):
        await p.poll(RemoteRef("f35e38c3-5fe6-4adf-b366-f5a4b6f8eca6"))
    fake.faults.add("job", "status", status=404, body="404: Not Found")
    with pytest.raises(RemoteError) as e:
        await p.poll(ref)
    assert not isinstance(e.value, TaskGone)


async def test_find_uses_the_label_where_the_surface_keeps_one(make, fake):
    p = await make()
    key = p.new_submission_key()
    fake.faults.add("jobs_create", "drop_after")
    with pytest.raises(RemoteError):
        await p.submit(spec(slow()), key)
    if fake.surface == "cloud":
        with pytest.raises(NotSupported, match="no job list"):
            await p.find(key, spec(slow()))
        assert fake.count("jobs_list") == 0
        return
    found = await p.find(key, spec(slow()))
    assert found is not None and found.remote_id == fake.created[0]
    assert await p.find(p.new_submission_key(), spec(slow())) is None
    assert (await drive.until_end(p, found))[-1].state is State.SUCCEEDED


async def test_cloud_ambiguous_submit_stops_honestly_and_never_sends_twice(tmp_path):
    f = FakeComfyCloud(surface="cloud", api_key=KEY)
    await f.start()
    home = tmp_path / "home"
    home.mkdir()
    (home / "profiles.toml").write_text(f'[profiles.v2]\nprovider = "comfycloud"\nurl = "{f.url}"\n'
                                        f'api_key = "{KEY}"\nsurface = "cloud"\npoll_interval_s = 0.05\n')
    m = TaskManager(home, tmp_path / "out", policy=RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05, landing_s=1.0))
    m.start(reattach=False)
    try:
        f.faults.add("jobs_create", "drop_after")
        with pytest.raises(RemoteError) as e:
            await asyncio.wait_for(asyncio.wrap_future(m.call(m.submit("v2", slow(), []))), 60)
        assert e.value.kind == "ambiguous_submit" and "before queueing again" in str(e.value)
        assert len(f.created) == 1 and f.count("jobs_create") == 1
    finally:
        await asyncio.to_thread(m.stop)
        await f.stop()


async def test_cancel_running_then_cancelled_and_too_late_after_the_end(make, fake):
    p = await make()
    ref = await p.submit(spec(slow(steps=200)), p.new_submission_key())
    stream = p.push(ref)
    async for upd in stream:  # the job's own stream says when it runs
        if upd.state is State.RUNNING:
            break
    await stream.aclose()
    assert (await p.poll(ref)).state is State.RUNNING
    ref.data["cancel_requested"] = True
    assert await p.cancel(ref) is CancelResult.REQUESTED
    assert (await drive.until_end(p, ref))[-1].state is State.CANCELLED
    done, _ = await drive.run(p, spec(slow(steps=1)))
    assert await p.cancel(done) is CancelResult.TOO_LATE


async def test_cancel_of_a_queued_job_cancels_it(make, fake):
    p = await make()
    await p.submit(spec(slow(steps=100)), p.new_submission_key())
    ref = await p.submit(spec(slow()), p.new_submission_key())
    assert (await p.poll(ref)).queue_position == 1
    assert await p.cancel(ref) is CancelResult.REQUESTED
    assert (await p.poll(ref)).state is State.CANCELLED


async def test_failed_job_names_the_remote_node(make, fake):
    p = await make()
    fake.worker.fail_next("SandboxSlowPass", "CUDA out of memory")
    _, updates = await drive.run(p, spec(slow()))
    err = updates[-1].error
    assert updates[-1].state is State.FAILED and isinstance(err, RemoteFailure)
    assert (err.remote_node, err.node_class) == ("2", "SandboxSlowPass") and "out of memory" in err.hint


async def test_a_surface_without_streams_is_not_asked_again(make, fake):
    p = await make()
    ref = await p.submit(spec(slow()), p.new_submission_key())
    fake.faults.add("events", "status", status=501, body={"error": {"code": "not_implemented", "message": "no",
                                                                    "details": None}})
    live: list = []
    assert (await drive.until_end(p, ref, live=live))[-1].state is State.SUCCEEDED
    assert fake.count("events") == 1 and p.push(ref) is None


def test_links_resolve_against_the_base_and_the_key_goes_nowhere_else(tmp_path):
    home = tmp_path
    (home / "profiles.toml").write_text('[profiles.v2]\nprovider = "comfycloud"\nurl = "https://comfy.example.com"\n'
                                        f'api_key = "{KEY}"\n')
    p = ComfyCloudProvider(Profiles(home).get("v2"), Http())
    assert p.follow("/deployment/d1/api/v2/jobs/x", "") == "https://comfy.example.com/deployment/d1/api/v2/jobs/x"
    assert p.follow("http://comfy.example.com/api/v2/jobs/x", "") == "https://comfy.example.com/api/v2/jobs/x"
    assert p.headers("https://comfy.example.com/api/v2/jobs") == {"Authorization": f"Bearer {KEY}"}
    assert p.headers("https://storage.example.net/o?sig=1") == {}
    assert p.surface() == "proxy"


def test_builtin_profile_and_where_a_key_is_needed(tmp_path):
    profiles = Profiles(tmp_path, env={"COMFY_API_KEY": KEY})
    cloud = profiles.get("comfycloud")
    assert "comfycloud" in profiles.names() and cloud.url == "https://cloud.comfy.org" and cloud.configured
    assert not Profiles(tmp_path, env={}).get("comfycloud").configured  # Cloud needs a key
    proxy = Profiles(tmp_path, env={"COMFY_BASE_URL": "http://127.0.0.1:8189"}).get("comfycloud")
    assert proxy.configured  # a self-hosted comfy-api-proxy needs none
    assert ComfyCloudProvider(Profiles(tmp_path, env={}).get("comfycloud"), Http()).surface() == "cloud"


def test_every_documented_error_code_is_mapped():
    documented = {"invalid_request", "invalid_workflow", "workflow_format_ui", "missing_asset", "idempotency_key_reuse",
                  "deployment_stopped", "metadata_invalid", "metadata_not_supported", "hash_mismatch", "asset_in_use",
                  "blob_not_found", "not_found", "output_unavailable", "unauthorized", "insufficient_credits",
                  "forbidden", "forbidden_origin", "public_deployment_no_list", "payload_too_large", "queue_full",
                  "deployment_not_ready", "rate_limited", "too_many_streams", "upstream_error", "upstream_unreachable",
                  "not_implemented", "invalid_metadata_filter", "invalid_cursor"}
    assert documented <= set(CODES)
    assert all(CODES[c][0] is RateLimited for c in ("queue_full", "deployment_not_ready", "rate_limited"))
