"""Tensor.Art (TAMS) video results and input kinds: ``successInfo.images``/``videos`` mapped to the
kinds, a whole task through the engine against the fake (real mp4s, with and without sound), and
the kinds TAMS cannot take (its one upload is /v1/resource/image) refused before anything is paid."""
from __future__ import annotations

import json

import pytest

from comfyui_remote.providers import tensorart_wire as wire
from comfyui_remote.providers.base import NotSupported
from comfyui_remote.tests import media_samples as ms
from comfyui_remote.tests.fakes.tensorart import DEFAULT_API_KEY, FakeTensorArt

from .media_engine import Engine, file_input, profile, saved_bytes

GRAPH = {
    "1": {"class_type": "TensorArt_PromptText", "inputs": {"text": "a fox in the snow"}},
    "2": {"class_type": "FakeVideoModel", "inputs": {"text": ["1", 0], "with_audio": True}},
    "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": "wan"}},
    "4": {"class_type": "FakeVideoModel", "inputs": {"text": ["1", 0], "with_audio": False}},
    "5": {"class_type": "SaveVideo", "inputs": {"video": ["4", 0], "filename_prefix": "silent"}},
    "6": {"class_type": "SolidFromText", "inputs": {"text": ["1", 0], "width": 8, "height": 6}},
    "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "poster"}},
}


@pytest.fixture
async def fake():
    async with FakeTensorArt() as f:
        f.created_s, f.queue_s, f.run_s, f.step_s = 0.02, 0.05, 0.1, 0.005
        yield f


@pytest.fixture
async def engine(tmp_path, fake):
    async with Engine(tmp_path, profile("ta", "tensorart", url=fake.url, api_key=DEFAULT_API_KEY)) as e:
        yield e


def resource(rid: str, url: str, fmt: str = "") -> dict:
    return {"id": rid, "url": url, "expiredIn": "1900000000", "meta": {"image": {"format": fmt}} if fmt else {}}


def test_images_and_videos_map_to_the_kinds():
    job = {"status": "SUCCESS", "successInfo": {
        "images": [resource("a", "https://x/a.png?s=1", "png"), resource("b", "https://x/b.gif?s=1"),
                   resource("a", "https://x/a.png?s=1", "png")],
        "videos": [resource("c", "https://x/c.mp4?s=1", "mp4"), resource("d", "https://x/d.webp?s=1", "webp"),
                   resource("e", "https://x/e.png?s=1", "png"), resource("f", "https://x/f?s=1")]}}
    got = [(o.kind, o.filename, o.mime) for o in wire.outputs_of(job)]
    assert got == [("image", "a.png", "image/png"), ("video", "b.gif", "image/gif"), ("video", "c.mp4", "video/mp4"),
                   ("video", "d.webp", "image/webp"), ("image", "e.png", "image/png"), ("video", "f.mp4", "video/mp4")]


def test_the_fake_lists_saved_videos_under_videos(fake):
    from comfyui_remote.tests.fakes import tensorart_graph as tg

    graph = {k: {"class": v["class_type"], "inputs": v["inputs"]} for k, v in GRAPH.items()}
    results = tg.run_graph(graph, lambda rid: b"")
    assert [(r.node, r.ext) for r in results] == [("3", "mp4"), ("5", "mp4"), ("7", "png")]
    assert results[0].png == ms.mp4(sound=True).data and results[1].png == ms.mp4().data


async def test_videos_with_and_without_sound_come_back_through_the_engine(engine, fake):
    snap, outs = await engine.run("ta", json.dumps(GRAPH))
    assert snap["state"] == "succeeded", snap
    assert [(o["kind"], o["node"]) for o in outs] == [("image", "7"), ("video", "3"), ("video", "5")]
    (job,) = fake.jobs.values()
    by_node = {r.node: fake.files[rid] for r, rid in zip(job.results, job.resource_ids)}
    assert saved_bytes(outs) == [("image", by_node["7"]), ("video", ms.mp4(sound=True).data),
                                 ("video", ms.mp4().data)]


@pytest.mark.parametrize("sample", [ms.mp4, ms.flac, ms.glb], ids=["video", "audio", "file"])
async def test_kinds_tams_cannot_take_are_refused_before_anything_is_paid(engine, fake, sample):
    o = file_input("1.image", sample())
    with pytest.raises(NotSupported) as info:
        await engine.run("ta", json.dumps(GRAPH), [o])
    text = str(info.value)
    assert info.value.field == o.kind and f"cannot take a {o.kind} input (target 1.image)" in text
    assert "takes image" in text and "tensorart" in text
    assert fake.count("upload") == 0 and not fake.jobs


async def test_the_fake_lists_videos_in_the_documented_resource_shape(engine, fake):
    """GET /v1/jobs/{id} (seed tensorart-tams-get-job.txt): ``successInfo.videos[]`` items are Resources
    like ``images[]``: ``{id, url, expiredIn (int64 as a string), meta: {image: {format, width, height}}}``."""
    import aiohttp

    snap, _ = await engine.run("ta", json.dumps(GRAPH))
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{fake.url}/v1/jobs/{snap['remote_id']}",
                         headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"}) as r:
            job = (await r.json())["job"]
    info = job["successInfo"]
    assert set(info) == {"images", "videos", "workflowFinishItem"} and len(info["videos"]) == 2
    for res in info["images"] + info["videos"]:
        assert set(res) == {"id", "url", "expiredIn", "meta"} and set(res["meta"]["image"]) == {"format", "width",
                                                                                                 "height"}
        assert isinstance(res["expiredIn"], str) and res["expiredIn"].isdigit()
    assert [v["meta"]["image"]["format"] for v in info["videos"]] == ["mp4", "mp4"]
    assert {v["id"] for v in info["videos"]} == {i["imageResourceId"] for n in ("3", "5") for i in
                                                 info["workflowFinishItem"]["nodes"][n]["outputUi"]["images"]}
