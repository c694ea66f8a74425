"""RunningHub video, audio, text and files, in and out: the output list mapped to kinds, the
resource upload's types, and whole tasks through the engine against the fake (real media)."""
from __future__ import annotations

import aiohttp
import pytest

from comfyui_remote.providers import runninghub_parse as rp
from comfyui_remote.providers.base import Override, RejectedInput
from comfyui_remote.providers.local_file import LocalFile
from comfyui_remote.providers.runninghub import RunningHubProvider
from comfyui_remote.tests import media_samples as ms
from comfyui_remote.tests.fakes import runninghub_media as media
from comfyui_remote.tests.fakes.runninghub import FakeRunningHub

from . import test_runninghub_fidelity as fidelity
from .media_engine import Engine, file_input, profile, saved_bytes

KEY = "rh-media-key-5b1e9c0d7a3f"


@pytest.fixture
async def fake():
    async with FakeRunningHub(api_key=KEY) as f:
        f.queue_s, f.run_s, f.output_lag_s, f.ws_close_after_s = 0.05, 0.2, 0.02, 0.05
        yield f


@pytest.fixture
async def engine(tmp_path, fake):
    async with Engine(tmp_path, profile("rh", "runninghub", url=fake.url, api_key=KEY)) as e:
        yield e


def served(fake: FakeRunningHub, task_id: str) -> list[bytes]:
    """The bytes of every file the fake saved for a task, in save order."""
    return [fake.files[path][0] for _, _, path in fake.tasks[task_id].saved]


# ---------------------------------------------------------------- the output list → kinds

def test_file_types_map_to_the_kinds_and_a_repeated_url_is_one_output():
    items = [{"fileUrl": f"https://rh-images.xiaoyaoyou.com/o/{n}", "fileType": t, "nodeId": "9", "taskCostTime": "3"}
             for n, t in (("a.mp4", "mp4"), ("b.gif", "gif"), ("c.flac", "flac"), ("d.txt", "txt"), ("e.glb", "glb"),
                          ("f.png", "png"), ("g.latent", "latent"), ("a.mp4", "mp4"))]
    outs, _, secs = rp.outputs_from(items)
    assert [(o.kind, o.filename, o.mime) for o in outs] == [
        ("video", "a.mp4", "video/mp4"), ("video", "b.gif", "image/gif"), ("audio", "c.flac", "audio/flac"),
        ("text", "d.txt", "text/plain"), ("file", "e.glb", "model/gltf-binary"), ("image", "f.png", "image/png"),
        ("file", "g.latent", "application/octet-stream")]
    assert secs == 3


def test_v2_query_results_give_text_inline_and_files_by_output_type():
    items = [{"url": None, "nodeId": "8", "outputType": "text", "text": "a fox in the snow"},
             {"url": "https://rh-images.xiaoyaoyou.com/o/x.webm", "nodeId": "4", "outputType": "webm", "text": None}]
    outs, _, _ = rp.outputs_from(items)
    assert [(o.kind, o.node, o.text) for o in outs] == [("text", "8", "a fox in the snow"), ("video", "4", None)]


# ---------------------------------------------------------------- through the engine

async def test_a_video_app_gives_video_with_sound_and_its_caption(engine, fake):
    snap, outs = await engine.run("rh", f"app:{media.APP_VIDEO}", [Override("52.prompt", "text", "a heron fishing")])
    assert snap["state"] == "succeeded", snap
    assert [(o["kind"], o["node"]) for o in outs] == [("video", "4"), ("text", "8")]
    task_id = snap["remote_id"]
    video, caption = served(fake, task_id)
    assert saved_bytes(outs) == [("video", video), ("text", caption)] and caption == b"a heron fishing"
    assert video == ms.mp4(sound=True).data


async def test_every_kind_of_result_comes_back_with_the_bytes_served(engine, fake):
    snap, outs = await engine.run("rh", media.WF_MEDIA)
    assert snap["state"] == "succeeded", snap
    assert [(o["kind"], o["node"]) for o in outs] == [("video", "4"), ("video", "6"), ("audio", "7"), ("text", "8"),
                                                      ("file", "10")]
    got = saved_bytes(outs)
    assert got == list(zip(["video", "video", "audio", "text", "file"], served(fake, snap["remote_id"])))
    assert [b for _, b in got] == [ms.mp4(sound=True).data, ms.mp4().data, ms.flac().data, media.CAPTION.encode(),
                                   ms.glb().data]
    assert [o["filename"].rsplit(".", 1)[-1] for o in outs] == ["mp4", "mp4", "flac", "txt", "glb"]


async def test_video_audio_and_zip_inputs_reach_runninghub_byte_for_byte(engine, fake):
    clip, sound = ms.mp4(n=6, sound=True), ms.wav()
    snap, outs = await engine.run("rh", media.WF_MEDIA_ECHO, [file_input("1.video", clip),
                                                               file_input("3.audio", sound)])
    assert snap["state"] == "succeeded", snap
    assert saved_bytes(outs) == [("video", clip.data), ("audio", sound.data)]
    names = [n for n, b in fake.uploads.items() if b in (clip.data, sound.data)]
    assert sorted(n.rsplit(".", 1)[-1] for n in names) == ["mp4", "wav"]
    assert all(n.startswith("openapi/") for n in names)


async def test_a_file_on_disk_reaches_runninghub_and_one_too_large_is_refused_unread(engine, fake, tmp_path, monkeypatch):
    """A video of ComfyUI's folders (a LocalFile) goes up as its bytes; one over the 30 MB the upload
    takes is refused before anything is paid, by its size on disk, without reading it."""
    clip = ms.mp4(n=6, sound=True)
    (tmp_path / clip.name).write_bytes(clip.data)
    o = file_input("1.video", clip).with_value(LocalFile.at(tmp_path / clip.name))
    snap, outs = await engine.run("rh", media.WF_MEDIA_ECHO, [o])
    assert snap["state"] == "succeeded", snap
    assert saved_bytes(outs)[0] == ("video", clip.data) and clip.data in fake.uploads.values()
    created, uploads = fake.created_count(), fake.count("upload")
    with open(tmp_path / "big.mp4", "wb") as fh:
        fh.truncate(rp.MAX_UPLOAD + 1)  # (sparse: no 30 MB written)
    monkeypatch.setattr(LocalFile, "read", lambda self: pytest.fail(f"{self.name} was read into memory"))
    with pytest.raises(RejectedInput) as info:
        await engine.run("rh", media.WF_MEDIA_ECHO, [o.with_value(LocalFile.at(tmp_path / "big.mp4"))])
    assert "at most 30 MB" in str(info.value) and info.value.field == "video"
    assert (fake.created_count(), fake.count("upload")) == (created, uploads)


async def test_types_the_upload_does_not_take_are_refused_before_anything_is_paid(engine, fake):
    refused = ((file_input("1.video", ms.webm()), ".webm"), (file_input("1.video", ms.glb(), kind="file"), ".glb"))
    for o, what in refused:
        with pytest.raises(RejectedInput) as info:
            await engine.run("rh", media.WF_MEDIA_ECHO, [o])
        assert info.value.field == o.kind and what in str(info.value) and "runninghub" in str(info.value)
    assert fake.count("upload") == 0 and fake.count("upload_legacy") == 0 and fake.created_count() == 0


async def test_the_fake_upload_takes_the_documented_types_and_refuses_others(fake):
    async with aiohttp.ClientSession() as s:
        async def up(name: str, data: bytes) -> dict:
            form = aiohttp.FormData()
            form.add_field("file", data, filename=name)
            async with s.post(fake.url + "/openapi/v2/media/upload/binary", data=form,
                              headers={"Authorization": f"Bearer {KEY}"}) as r:
                return await r.json()

        assert (await up("a.mp4", ms.mp4().data))["data"]["type"] == "video"
        assert (await up("a.flac", ms.flac().data))["data"]["type"] == "audio"
        assert (await up("a.zip", b"PK\x03\x04zip"))["data"]["fileName"].endswith(".zip")
        assert (await up("a.webm", ms.webm().data)) == {"code": 301, "message": "PARAMS_INVALID", "data": None}


def test_runninghub_takes_video_audio_and_archives():
    assert set(RunningHubProvider.capabilities.input_kinds) == {"image", "video", "audio", "file"}


# ---------------------------------------------------------------- the fake keeps the documented shapes

@pytest.mark.skipif(not fidelity.SAMPLES.is_dir(), reason="the RunningHub samples (shared/) are absent")
async def test_media_answers_keep_the_documented_shapes(fake):
    assert_shape, sample = fidelity.assert_shape, fidelity.sample
    async with aiohttp.ClientSession() as s:
        async def post(path: str, body: dict) -> dict:
            async with s.post(fake.url + path, json=body) as r:
                return await r.json()

        fake.queue_s = fake.run_s = fake.output_lag_s = 0.0  # finished as soon as it is created
        tid = (await post("/task/openapi/create", {"apiKey": KEY, "workflowId": media.WF_MEDIA}))["data"]["taskId"]
        done = await post("/task/openapi/outputs", {"apiKey": KEY, "taskId": tid})
        assert_shape(done, sample("outputs_success"), nullable=frozenset(
            {"$.data[].thirdPartyConsumeMoney", "$.data[].consumeMoney", "$.data[].consumeCoins"}))
        assert [i["fileType"] for i in done["data"]] == ["mp4", "mp4", "flac", "txt", "glb"]  # lower case, no dot
        for item in done["data"]:
            async with s.get(item["fileUrl"]) as r:  # unauthenticated GET, typed by extension
                assert r.status == 200 and r.content_type == media.CTYPES[item["fileType"]]
        async with s.post(fake.url + "/openapi/v2/query", json={"taskId": tid},
                          headers={"Authorization": f"Bearer {KEY}"}) as r:
            q = await r.json()
        assert_shape(q, sample("v2_query_success"), nullable=frozenset(
            {"$.results[].text", "$.usage.consumeMoney", "$.usage.consumeCoins", "$.usage.thirdPartyConsumeMoney"}))
        assert [i["outputType"] for i in q["results"]] == ["mp4", "mp4", "flac", "txt", "glb"]
