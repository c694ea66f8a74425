"""SpeedPix video, audio, text and files: custom result fields of file types and text fields mapped
to the kinds, and whole tasks through the engine against the fake (real media out, and video, audio
and other files going up as temporary files, byte for byte)."""
from __future__ import annotations

import pytest

from comfyui_remote.providers import speedpix_wire as wire
from comfyui_remote.providers.speedpix import SpeedPixProvider
from comfyui_remote.tests import media_samples as ms
from comfyui_remote.tests.fakes.speedpix import FakeSpeedPix

from .media_engine import Engine, file_input, profile, saved_bytes

OSS = "https://speed-pix-beijing-prod.oss-cn-beijing.aliyuncs.com/comfy/output/"


@pytest.fixture
async def fake():
    async with FakeSpeedPix(queue_s=0.05, run_s=0.2, steps=2) as f:
        yield f


@pytest.fixture
async def engine(tmp_path, fake):
    async with Engine(tmp_path, profile("sp", "speedpix", url=fake.url, app_key="test-app-key",
                                        app_secret="test-app-secret")) as e:
        yield e


def obj(name: str, fmt: str = "", **extra) -> dict:
    return {"filename": name, "object_key": f"comfy/output/{name}", "format": fmt or name.rsplit(".", 1)[-1],
            "subfolder": "", "type": "output", "url": OSS + name, **extra}


def test_custom_result_fields_of_file_types_and_text_fields_map_to_the_kinds():
    data = {"images": [OSS + "p.webp", OSS + "loop.gif"], "result": {
        "poster": obj("p.webp", width=4, height=4), "clip": obj("c.mp4", width=64, height=48),
        "anim": obj("a_00001_.gif"), "voice": obj("v.flac"), "mesh": obj("m.glb"), "notes": obj("n.txt"),
        "odd": obj("o", fmt="mp3"), "caption": "a fox", "seed": 7, "scores": [0.5, 1]}}
    got = [(o.kind, o.field, o.filename, o.mime, o.text) for o in wire.parse_outputs(data)]
    assert got == [
        ("image", "poster", "p.webp", "image/webp", None), ("video", None, "loop.gif", "image/gif", None),
        ("video", "clip", "c.mp4", "video/mp4", None), ("video", "anim", "a_00001_.gif", "image/gif", None),
        ("audio", "voice", "v.flac", "audio/flac", None), ("file", "mesh", "m.glb", "model/gltf-binary", None),
        ("text", "notes", "n.txt", "text/plain", None), ("audio", "odd", "o", "audio/mpeg", None),
        ("text", "caption", None, None, "a fox"), ("text", "seed", None, None, "7"),
        ("text", "scores", None, None, "0.5"), ("text", "scores", None, None, "1")]


def test_speedpix_takes_every_file_kind():
    assert set(SpeedPixProvider.capabilities.input_kinds) == {"image", "video", "audio", "file"}


async def test_video_audio_3d_and_text_fields_come_back_through_the_engine(engine, fake):
    snap, outs = await engine.run("sp", "wf_video")
    assert snap["state"] == "succeeded", snap
    assert [(o["kind"], o["field"]) for o in outs] == [("video", "video"), ("video", "silent"), ("audio", "soundtrack"),
                                                       ("file", "mesh"), ("text", "caption"), ("text", "seed")]
    assert saved_bytes(outs) == [("video", ms.mp4(sound=True).data), ("video", ms.mp4().data),
                                 ("audio", ms.flac().data), ("file", ms.glb().data)]
    assert [o.get("text") for o in outs[4:]] == ["a fox", "0"]


async def test_video_audio_and_other_files_go_up_as_temporary_files_byte_for_byte(engine, fake):
    clip, sound, mesh = ms.mp4(n=5, sound=True), ms.wav(), ms.glb()
    snap, outs = await engine.run("sp", "wf_media_echo", [file_input("video", clip), file_input("audio", sound),
                                                          file_input("file", mesh)])
    assert snap["state"] == "succeeded", snap
    assert saved_bytes(outs) == [("video", clip.data), ("audio", sound.data), ("file", mesh.data)]
    temp = {k.rsplit("-", 1)[-1]: v[0] for k, v in fake.objects.items() if k.startswith("comfy/temp/")}
    assert temp == {clip.name: clip.data, sound.name: sound.data, mesh.name: mesh.data}


async def test_the_fake_answers_media_results_in_the_documented_shape(tmp_path):
    """comfy_get_result (doc 2844527): ``images`` a list of URL strings, ``result`` fields of file types
    objects with the common ``url``/``type`` plus the file's own fields, other fields plain values."""
    from comfyui_remote.engine.profiles import Profiles
    from comfyui_remote.engine.transfer import Http
    from comfyui_remote.providers.base import SubmitSpec

    async with FakeSpeedPix(queue_s=0.0, run_s=0.0) as f:
        (tmp_path / "profiles.toml").write_text(
            f'[profiles.sp]\nprovider = "speedpix"\nurl = "{f.url}"\napp_key = "test-app-key"\n'
            'app_secret = "test-app-secret"\n')
        http = Http(provider="speedpix", profile="sp")
        try:
            p = SpeedPixProvider(Profiles(tmp_path).get("sp"), http)
            ref = await p.submit(SubmitSpec("wf_video"), p.new_submission_key())
            assert f.finished(ref.remote_id)
            env = await p._call("comfy_get_result", {"taskId": ref.remote_id})
        finally:
            await http.close()
    data = env["data"]
    assert env["status"] == 10 and data["status"] == "succeeded" and data["images"] == []
    assert set(data) == {"result", "images", "taskDuration", "taskBeginTime", "taskId", "status", "taskEndTime"}
    files = {k: v for k, v in data["result"].items() if isinstance(v, dict)}
    assert sorted(files) == ["mesh", "silent", "soundtrack", "video"]
    for v in files.values():
        assert {"url", "type", "filename", "object_key", "format", "subfolder"} <= set(v) and v["type"] == "output"
        assert v["url"].startswith(f.url) and v["filename"].endswith("." + v["format"])
    assert files["video"]["width"] == 64 and "width" not in files["soundtrack"]
    assert (data["result"]["caption"], data["result"]["seed"]) == ("a fox", 0)
