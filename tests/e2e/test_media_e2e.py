"""Video, audio, text and files in and out, end to end: a real local ComfyUI with the pack against a
real remote ComfyUI, with core nodes only (LoadVideo, GetVideoComponents, CreateVideo → SaveVideo,
LoadAudio → SaveAudio, SaveAnimatedWEBP, PreviewAny, a graph ending in PreviewImage). What comes back
equals what the remote wrote: frames exactly (decoded 8-bit over 255, lossless WebP), audio exactly
(FLAC), text and a FLOAT exactly; files byte for byte. ONE local prompt (two remote prompts) keeps CI time small."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from .. import media_samples as ms
from . import harness

pytestmark = [pytest.mark.e2e]
why = harness.available()
if why:
    pytest.skip(f"real ComfyUI not available: {why}", allow_module_level=True)

TEXT = "a cat on a mat\nzweite Zeile ✓"
# the remote graph: the uploaded video's frames → CreateVideo (with the uploaded sound) → SaveVideo,
# the same frames → lossless animated WebP, the sound → SaveAudio, a text → PreviewAny
MEDIA = {
    "1": {"class_type": "LoadVideo", "inputs": {"file": "placeholder.mp4"}},
    "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
    "3": {"class_type": "LoadAudio", "inputs": {"audio": "placeholder.flac"}},
    "4": {"class_type": "CreateVideo", "inputs": {"images": ["2", 0], "fps": ["2", 2], "audio": ["3", 0]}},
    "5": {"class_type": "SaveVideo", "inputs": {"video": ["4", 0], "filename_prefix": "video/e2e_media",
                                                "format": "mp4", "codec": "h264"}},
    "6": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["2", 0], "filename_prefix": "e2e_anim", "fps": 8.0,
                                                       "lossless": True, "quality": 100, "method": "fastest"}},
    "7": {"class_type": "SaveAudio", "inputs": {"audio": ["3", 0], "filename_prefix": "audio/e2e_media"}},
    "8": {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "placeholder"}},
    "9": {"class_type": "PreviewAny", "inputs": {"source": ["8", 0]}},
    "11": {"class_type": "LoadVideo", "inputs": {"file": "placeholder.mp4"}},
    "12": {"class_type": "SaveVideo", "inputs": {"video": ["11", 0], "filename_prefix": "video/e2e_created",
                                                 "format": "auto", "codec": "auto"}},
    "13": {"class_type": "LoadVideo", "inputs": {"file": "placeholder.mp4"}},  # not run: only its upload is looked at
    "14": {"class_type": "PrimitiveFloat", "inputs": {"value": 0.1}},  # a FLOAT, shown as "0.1"
    "15": {"class_type": "PreviewAny", "inputs": {"source": ["14", 0]}},
}
PREVIEW = {"1": {"class_type": "LoadImage", "inputs": {"image": "placeholder.png"}},
           "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}


def local_graph(video: str, sound: str, still: str) -> dict:
    # RemoteRun with only its `result` used: no image is asked for (this result has videos, sound, text)
    run = {"profile": "comfyui", "workflow": json.dumps(MEDIA), "reuse_result": False, "inputs": ["18", 0],
           "timeout_s": 300}
    return {
        "10": {"class_type": "LoadVideo", "inputs": {"file": video}},
        "11": {"class_type": "RemoteInputVideo", "inputs": {"target": "1.file", "video": ["10", 0]}},
        "12": {"class_type": "LoadAudio", "inputs": {"audio": sound}},
        "13": {"class_type": "RemoteInputAudio", "inputs": {"target": "3.audio", "audio": ["12", 0],
                                                            "inputs": ["14", 0]}},
        "14": {"class_type": "RemoteInputText", "inputs": {"target": "8.value", "text": TEXT, "inputs": ["11", 0]}},
        # a VIDEO made in the graph (not from a file) goes up encoded as mp4/h264
        "15": {"class_type": "GetVideoComponents", "inputs": {"video": ["10", 0]}},
        "16": {"class_type": "CreateVideo", "inputs": {"images": ["15", 0], "fps": ["15", 2]}},
        "17": {"class_type": "RemoteInputVideo", "inputs": {"target": "11.file", "video": ["16", 0],
                                                            "inputs": ["13", 0]}},
        # a file of the input folder keeps its bytes and its name
        "18": {"class_type": "RemoteInputFile", "inputs": {"target": "13.file", "file": video, "inputs": ["17", 0]}},
        "21": {"class_type": "RemoteRun", "inputs": run},
        "22": {"class_type": "RemoteFetchVideo", "inputs": {"result": ["21", 2], "frame_load_cap": 3,
                                                            "skip_first_frames": 1, "select_every_nth": 1}},
        "23": {"class_type": "SaveVideo", "inputs": {"video": ["22", 0], "filename_prefix": "e2e_local_video",
                                                     "format": "auto", "codec": "auto"}},
        "24": {"class_type": "SaveImage", "inputs": {"images": ["22", 1], "filename_prefix": "e2e_local_frames"}},
        "25": {"class_type": "RemoteFetchImage", "inputs": {"result": ["21", 2]}},
        "26": {"class_type": "SaveImage", "inputs": {"images": ["25", 0], "filename_prefix": "e2e_local_anim"}},
        "27": {"class_type": "RemoteFetchAudio", "inputs": {"result": ["21", 2]}},
        "28": {"class_type": "SaveAudio", "inputs": {"audio": ["27", 0], "filename_prefix": "e2e_local_audio"}},
        "29": {"class_type": "RemoteFetchText", "inputs": {"result": ["21", 2], "select": "9"}},
        "30": {"class_type": "PreviewAny", "inputs": {"source": ["29", 0]}},
        "31": {"class_type": "RemoteFetchFile", "inputs": {"result": ["21", 2], "select": "*.flac"}},
        "32": {"class_type": "PreviewAny", "inputs": {"source": ["31", 0]}},
        # the remote FLOAT read back (its int output, unconnected, need not parse "0.1")
        "33": {"class_type": "RemoteFetchValue", "inputs": {"result": ["21", 2], "select": "15"}},
        "34": {"class_type": "PreviewAny", "inputs": {"source": ["33", 1]}},
        # a second remote graph that ends in PreviewImage: its temp preview is what comes back
        "40": {"class_type": "LoadImage", "inputs": {"image": still}},
        "41": {"class_type": "RemoteInputImage", "inputs": {"target": "1.image", "image": ["40", 0]}},
        "42": {"class_type": "RemoteRun", "inputs": {"profile": "comfyui", "workflow": json.dumps(PREVIEW),
                                                     "inputs": ["41", 0], "reuse_result": False, "timeout_s": 300}},
        "43": {"class_type": "SaveImage", "inputs": {"images": ["42", 0], "filename_prefix": "e2e_local_preview"}},
    }


def rgb_frames(data: bytes) -> np.ndarray:
    return np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(Image.open(io.BytesIO(data)))])


def local_file(local, item: dict) -> Path:
    return local.base / "output" / item.get("subfolder", "") / item["filename"]


async def test_video_audio_text_files_and_previews_come_back_as_the_remote_wrote_them(local_comfy, remote_comfy):
    local, remote = local_comfy, remote_comfy
    clip, sound = ms.mp4(n=8, fps=8), ms.flac()
    still = np.random.default_rng(5).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(still).save(buf, "PNG")
    async with harness.Client(local.url) as c:
        names = (await c.upload("e2e_clip.mp4", clip.data), await c.upload("e2e_sound.flac", sound.data),
                 await c.upload("e2e_still.png", buf.getvalue()))
        hist = await c.wait_done(await c.queue(local_graph(*names)), 420)
    assert hist["status"]["status_str"] == "success", hist["status"]
    out = hist["outputs"]
    async with harness.Client(remote.url) as rc:
        entries = (await rc.get("/history")).values()
        media = max((h for h in entries if "5" in h["outputs"] and "9" in h["outputs"]), key=lambda h: h["prompt"][0])
        preview = max((h for h in entries if list(h["outputs"]) == ["2"]), key=lambda h: h["prompt"][0])
        ro = media["outputs"]
        remote_mp4 = await rc.view(ro["5"]["images"][0])
        remote_webp = await rc.view(ro["6"]["images"][0])
        remote_flac = await rc.view(ro["7"]["audio"][0])
        remote_preview = await rc.view(preview["outputs"]["2"]["images"][0])
        uploaded = await rc.view({"filename": media["prompt"][2]["1"]["inputs"]["file"], "type": "input"})
        created = await rc.view({"filename": media["prompt"][2]["11"]["inputs"]["file"], "type": "input"})
        as_file_name = media["prompt"][2]["13"]["inputs"]["file"]
        as_file = await rc.view({"filename": as_file_name, "type": "input"})
    assert uploaded == clip.data  # a VIDEO loaded from a file goes up byte for byte
    assert as_file == clip.data and as_file_name.endswith("-" + names[0])
    made = ms.decode_video_rgb(created)  # one made in the graph: encoded to mp4 (h264), the same frames
    assert made.shape == clip.frames.shape and np.abs(made.astype(int) - clip.frames.astype(int)).mean() < 6
    assert preview["outputs"]["2"]["images"][0]["type"] == "temp"

    # video: the local SaveVideo re-muxes the fetched file (same frames); frames 1..3 exactly v/255
    decoded = ms.decode_video_rgb(remote_mp4)
    assert np.array_equal(ms.decode_video_rgb(local_file(local, out["23"]["images"][0]).read_bytes()), decoded)
    frames = [np.asarray(Image.open(local_file(local, i))) for i in out["24"]["images"]]
    assert len(frames) == 3 and np.array_equal(np.stack(frames), decoded[1:4])
    # the animated WebP: all 8 frames, exactly (lossless)
    anim = [np.asarray(Image.open(local_file(local, i))) for i in out["26"]["images"]]
    assert len(anim) == 8 and np.array_equal(np.stack(anim), rgb_frames(remote_webp))
    # audio exactly, at its own rate and channels
    local_wave, local_rate = ms.decode_audio(local_file(local, out["28"]["audio"][0]).read_bytes())
    remote_wave, remote_rate = ms.decode_audio(remote_flac)
    assert (local_rate, local_wave.shape[0]) == (remote_rate, remote_wave.shape[0]) == (44100, 2)
    assert np.array_equal(local_wave, remote_wave)
    assert np.array_equal(remote_wave, sound.samples)  # and the 24-bit FLAC upload lost nothing
    # text exactly; the file's saved path holds the remote's bytes
    assert out["30"]["text"] == [TEXT] == ro["9"]["text"]
    assert out["34"]["text"] == ["0.1"] == ro["15"]["text"]
    (path,) = out["32"]["text"][0].splitlines()
    assert Path(path).is_absolute() and Path(path).read_bytes() == remote_flac
    # a graph ending in PreviewImage: its preview comes back, pixel for pixel
    assert np.array_equal(np.asarray(Image.open(local_file(local, out["43"]["images"][0]))),
                          np.asarray(Image.open(io.BytesIO(remote_preview)).convert("RGB")))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(remote_preview)).convert("RGB")), still)


async def test_media_nodes_keep_the_contract(local_comfy):
    """design §2: ids, input names and types, outputs."""
    async with harness.Client(local_comfy.url) as c:
        info = await c.get("/object_info")

    def shape(node: str) -> tuple:
        i = info[node]["input"]
        typ = lambda spec: spec[0] if isinstance(spec[0], str) else "COMBO"  # noqa: E731
        return ({k: typ(v) for k, v in i["required"].items()}, {k: typ(v) for k, v in i.get("optional", {}).items()},
                list(zip(info[node]["output_name"], info[node]["output"])))

    chain = {"inputs": "REMOTE_INPUTS"}
    assert shape("RemoteInputVideo") == ({"target": "STRING", "video": "VIDEO"}, chain, [("inputs", "REMOTE_INPUTS")])
    assert shape("RemoteInputAudio") == ({"target": "STRING", "audio": "AUDIO"}, chain, [("inputs", "REMOTE_INPUTS")])
    assert shape("RemoteInputFile") == ({"target": "STRING", "file": "STRING"}, chain, [("inputs", "REMOTE_INPUTS")])
    assert shape("RemoteFetchVideo") == (
        {"result": "REMOTE_RESULT"},
        {"select": "STRING", "frame_load_cap": "INT", "skip_first_frames": "INT", "select_every_nth": "INT"},
        [("video", "VIDEO"), ("frames", "IMAGE"), ("audio", "AUDIO"), ("fps", "FLOAT")])
    assert shape("RemoteFetchAudio") == ({"result": "REMOTE_RESULT"}, {"select": "STRING"}, [("audio", "AUDIO")])
    assert shape("RemoteFetchText") == ({"result": "REMOTE_RESULT"}, {"select": "STRING"},
                                        [("text", "STRING"), ("count", "INT")])
    assert shape("RemoteFetchFile") == ({"result": "REMOTE_RESULT"}, {"select": "STRING"},
                                        [("paths", "STRING"), ("count", "INT")])
    assert shape("RemoteFetchValue") == ({"result": "REMOTE_RESULT"}, {"select": "STRING"},
                                         [("int", "INT"), ("float", "FLOAT"), ("boolean", "BOOLEAN"), ("text", "STRING")])
    defaults = info["RemoteFetchVideo"]["input"]["optional"]
    assert [defaults[k][1]["default"] for k in ("select", "frame_load_cap", "skip_first_frames", "select_every_nth")] \
        == ["", 0, 0, 1]
    assert all(info[n]["category"] == "remote" for n in ("RemoteInputFile", "RemoteFetchVideo", "RemoteFetchFile"))


async def test_the_sandbox_media_nodes_are_comfyuis(remote_comfy):
    """The sandbox's media nodes take what ComfyUI 0.3.64's take, and its video.json runs unchanged on a
    real ComfyUI, listing the same outputs."""
    from comfyui_remote.sandbox.nodes import NODE_TYPES

    async with harness.Client(remote_comfy.url) as c:
        info = await c.get("/object_info")
        graph = json.loads((harness.REPO / "providers" / "sandbox_workflows" / "video.json").read_text())
        real = (await c.wait_done(await c.queue(graph), 120))["outputs"]
    for name in ("SaveAnimatedWEBP", "PreviewAny"):
        ours, theirs = NODE_TYPES[name].info(None), info[name]
        assert ours["input"]["required"] == theirs["input"]["required"], name
    for name in ("SaveAnimatedWEBP", "PreviewAny", "CreateVideo", "SaveVideo"):
        ours, theirs = NODE_TYPES[name].info(None), info[name]
        assert {k: list(v) for k, v in ours["input_order"].items() if k != "hidden"} == \
            {k: list(v) for k, v in theirs["input_order"].items() if k != "hidden"}, name
        assert (ours["output"], ours["output_node"], ours["category"]) == (theirs["output"], theirs["output_node"],
                                                                           theirs["category"]), name
    shape = {nid: {k: (v if k != "images" else [i["filename"].rsplit(".", 1)[1] for i in v]) for k, v in o.items()}
             for nid, o in real.items()}
    assert shape == {"6": {"images": ["mp4"], "animated": [True]}, "7": {"images": ["webp"], "animated": [True]},
                     "8": {"text": ["four frames: a colour and its inverse, twice"]}}
