"""nextGPU results and input kinds: ``ossUrls``/``urls`` mapped to the kinds by file name, an app
whose animated WebP comes back through the engine byte for byte (its ``gifs`` video is never
delivered by nextGPU's node client), and the kinds nextGPU cannot take refused before anything is
paid (its node fetches image URLs only)."""
from __future__ import annotations

import pytest

from comfyui_remote.providers import nextgpu_parse as parse
from comfyui_remote.providers.base import NotSupported, Override
from comfyui_remote.tests import media_samples as ms
from comfyui_remote.tests.fakes import nextgpu_apps as apps
from comfyui_remote.tests.fakes.nextgpu import FakeNextGPU

from . import test_nextgpu_fidelity as fidelity
from .media_engine import Engine, file_input, profile, saved_bytes

USER, TOKEN = "media-user-3c9e", "media-token-81fa2d"
OSS = "https://ngpu.oss-accelerate.aliyuncs.com/2025/08/"


@pytest.fixture
async def fake():
    async with FakeNextGPU(users=(USER,), token=TOKEN, run_s=0.1, dispatch_s=0.01, local_queue_s=0.01,
                           foreign_run_s=0.02) as f:
        yield f


@pytest.fixture
async def engine(tmp_path, fake):
    async with Engine(tmp_path, profile("ng", "nextgpu", url=fake.url, user=USER, token=TOKEN,
                                        image_upload_url=f"{fake.url}/_store")) as e:
        yield e


def test_result_urls_map_to_the_kinds_by_file_name():
    names = ["20250811082646517895.png", "20250811082646517896.webp", "20250811082646517897.gif",
             "20250811082646517898.mp4", "20250811082646517899.glb", "20250811082646517895.png"]
    outs = parse.outputs_of("t_0001", [OSS + n for n in names] + ["not a url"], {})
    assert [(o.kind, o.filename[-4:], o.mime, o.field) for o in outs] == [
        ("image", ".png", "image/png", "t_0001"), ("image", "webp", "image/webp", "t_0001"),
        ("video", ".gif", "image/gif", "t_0001"), ("video", ".mp4", "video/mp4", "t_0001"),
        ("file", ".glb", None, "t_0001")]


async def test_an_animated_webp_comes_back_through_the_engine_and_the_gifs_video_does_not(engine, fake):
    snap, outs = await engine.run("ng", apps.ANIMATED_TITLE, [Override("promptText", "text", "a dancing fox")])
    assert snap["state"] == "succeeded", snap
    assert [(o["kind"], o["node"], o["mime"]) for o in outs] == [("image", "9", "image/webp")]
    assert saved_bytes(outs) == [("image", ms.animated_webp().data)]


@pytest.mark.parametrize("sample", [ms.mp4, ms.flac, ms.glb], ids=["video", "audio", "file"])
async def test_kinds_nextgpu_cannot_take_are_refused_before_anything_is_paid(engine, fake, sample):
    o = file_input("imageName", sample())
    with pytest.raises(NotSupported) as info:
        await engine.run("ng", apps.ECHO_TITLE, [o])
    assert info.value.field == o.kind and "takes image" in str(info.value)
    assert fake.count("publish") == 0 and fake.count("store_put") == 0 and not fake.tasks


@pytest.mark.skipif(not fidelity.SEED.exists(), reason="the nextGPU seed (shared reference material) is absent")
async def test_the_animated_app_answers_getTask_in_the_documented_shape(engine, fake):
    """getTask of the animated app has the seed's shape; its one delivered file is the WebP (``ossSize``
    its length) and the /history entry lists the WebP under ``images`` (``animated``) and the
    undelivered mp4 under ``gifs``."""
    import json

    import aiohttp

    snap, _ = await engine.run("ng", apps.ANIMATED_TITLE, [Override("promptText", "text", "a dancing fox")])
    async with aiohttp.ClientSession() as client:
        status, _, got = await fidelity.post(client, fake.url + "/backend/getTask", {"taskID": snap["remote_id"]},
                                    headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    fidelity.same_shape(got, fidelity.seed_blocks()[11])
    sub = got["task"]["subTasks"][0]
    assert sub["state"] == 3 and sub["urls"].endswith(".webp") and "\n" not in sub["urls"]
    assert sub["ossSize"] == len(ms.animated_webp().data)
    outputs = next(iter(json.loads(sub["output"]).values()))["outputs"]
    assert outputs["9"]["animated"] == [True] and outputs["9"]["images"][0]["filename"].endswith(".webp")
    assert outputs["10"]["gifs"][0]["format"] == "video/h264-mp4" and "images" not in outputs["10"]
