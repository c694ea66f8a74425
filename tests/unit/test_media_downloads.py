"""Media results through the whole engine (TaskManager on the sandbox, which writes ComfyUI's own output
shapes): every file is saved under its name with its type, previews are marked in the journal, and the
fetch rules read them back — an animated WebP of 4 frames is 4 frames, the video and its sound decode."""
import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from comfyui_remote.engine import audio, results, video
from comfyui_remote.engine.tasks import TaskManager
from comfyui_remote.providers import comfyui
from comfyui_remote.providers.base import Override, RejectedInput
from comfyui_remote.providers.local_file import LocalFile
from tests import media_samples as ms

GRAPH = {  # 4 distinct frames (a WebP writer merges identical neighbours)
    "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 24, "batch_size": 1, "color": 0x336699}},
    "6": {"class_type": "SandboxSolid", "inputs": {"text": "#ff8000", "width": 32, "height": 24}},
    "7": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["6", 0]}},
    "8": {"class_type": "ImageInvert", "inputs": {"image": ["7", 0]}},
    "9": {"class_type": "ImageBatch", "inputs": {"image1": ["7", 0], "image2": ["8", 0]}},
    "2": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["9", 0], "filename_prefix": "anim", "fps": 6.0,
                                                       "lossless": True, "quality": 80, "method": "fastest"}},
    "3": {"class_type": "PreviewImage", "inputs": {"images": ["9", 0]}},
    "4": {"class_type": "SandboxVideo", "inputs": {"images": ["9", 0], "fps": 8.0, "filename_prefix": "video/clip",
                                                   "sound": True}},
    "5": {"class_type": "PreviewAny", "inputs": {"source": "a cat ✓"}},
    "10": {"class_type": "SandboxSaveText", "inputs": {"text": "line one\nline two ✓", "filename_prefix": "notes/cap"}},
}


@pytest.fixture
def m(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "profiles.toml").write_text('[profiles.sandbox]\nprovider = "sandbox"\npoll_interval_s = 0.05\n')
    mgr = TaskManager(home, tmp_path / "out").start(reattach=False)
    yield mgr
    mgr.stop()


async def run(m: TaskManager, coro, timeout: float = 60):
    return await asyncio.wait_for(asyncio.wrap_future(m.call(coro)), timeout)


async def test_media_results_are_saved_named_typed_and_read_back(m):
    tid = await run(m, m.submit("sandbox", json.dumps(GRAPH), [], reuse=False))
    snap = await run(m, m.wait(tid))
    assert snap["state"] == "succeeded", (snap["error"], snap["message"])
    outs = m.outputs_of(tid)
    got = [(o["node"], o["kind"], Path(o["path"]).suffix if o["path"] else None, o["mime"], o["preview"])
           for o in outs]
    assert got == [("2", "image", ".webp", "image/webp", None), ("3", "image", ".png", "image/png", 1),
                   ("3", "image", ".png", "image/png", 1), ("3", "image", ".png", "image/png", 1),
                   ("3", "image", ".png", "image/png", 1), ("4", "video", ".mp4", "video/mp4", None),
                   ("10", "text", ".txt", "text/plain", None), ("5", "text", None, None, None)]
    task = m.snapshot(tid)  # what the panel and the routes see
    assert [(o["kind"], o["mime"], o["preview"]) for o in task["outputs"][4:6]] == [("image", "image/png", True),
                                                                                   ("video", "video/mp4", False)]
    assert Path(outs[5]["path"]).name == "clip_00001_.mp4" and Path(outs[0]["path"]).name == "anim_00001_.webp"

    image, _ = results.load_images(results.select_outputs(outs, ""))  # the WebP, not the previews
    written = np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(Image.open(outs[0]["path"]))])
    assert image.shape == (4, 24, 32, 3) == written.shape
    assert np.array_equal(image, written.astype(np.float32) / np.float32(255))
    assert [tuple(p) for p in written[:2, 0, 0]] == [(0x33, 0x66, 0x99), (0xFF, 0x80, 0x00)]

    (clip,) = results.select_outputs(outs, "", "video")
    info = video.probe(clip["path"])
    assert (info.frame_count, info.width, info.height, info.fps, info.has_audio) == (4, 32, 24, 8.0, True)
    frames = video.decode_frames(clip["path"], info)
    assert np.abs(frames * 255 - written).mean() < 4
    wave, rate = video.sound(clip["path"], info)
    assert rate == 44100 and wave.shape[0] == 1 and np.abs(wave).max() > 0.2

    # a text file with a link is saved and read back; inline texts come from the journal
    assert results.load_texts(results.select_outputs(outs, "", "text")) == ["line one\nline two ✓", "a cat ✓"]
    assert Path(results.select_outputs(outs, "*.txt", "any")[0]["path"]).read_text() == "line one\nline two ✓"
    with pytest.raises(RejectedInput, match="1 video: use RemoteFetchVideo"):
        results.select_outputs(outs, "", "audio")


async def test_file_inputs_of_every_kind_go_up_to_a_comfyui_server(m):
    """The sandbox (a ComfyUI) takes video, audio and other files: they reach its input folder by name."""
    clip, glb = ms.webm(), ms.glb()
    inputs = [Override("3.image", "video", clip.data, sha256="v" * 64, name=clip.name, mime=clip.mime),
              Override("4.image", "file", glb.data, sha256="g" * 64, name=glb.name, mime=glb.mime)]
    graph = {"1": GRAPH["1"], "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
             "3": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},  # not run: only the uploads count
             "4": {"class_type": "LoadImage", "inputs": {"image": "x.png"}}}
    tid = await run(m, m.submit("sandbox", json.dumps(graph), inputs, reuse=False))
    snap = await run(m, m.wait(tid))
    assert snap["state"] == "succeeded", (snap["error"], snap["message"])
    fake = m.provider(m.profiles.get("sandbox")).fake  # the in-process sandbox server the task ran on
    stored = {name: data for (typ, _sub, name), data in fake.files.items() if typ == "input"}
    assert stored.get("v" * 32 + "-clip.webm") == clip.data and stored.get("g" * 32 + "-mesh.glb") == glb.data


def never_read_whole(self):
    raise AssertionError(f"{self.name} was read into memory instead of streamed")


async def test_a_file_on_disk_goes_up_streamed_byte_for_byte(m, tmp_path, monkeypatch):
    """A video or file of ComfyUI's folders stays on disk (a LocalFile) until the upload streams it:
    what the server stores is the file, and its bytes were never held whole (above the size where
    the comfyui provider first compares with what the server has)."""
    monkeypatch.setattr(comfyui, "SMALL", 0)
    monkeypatch.setattr(LocalFile, "read", never_read_whole)
    clip, glb = ms.webm(), ms.glb()
    (tmp_path / clip.name).write_bytes(clip.data)
    (tmp_path / glb.name).write_bytes(glb.data)
    inputs = [Override("3.image", "video", LocalFile.at(tmp_path / clip.name), sha256="w" * 64, name=clip.name,
                       mime=clip.mime),
              Override("4.image", "file", LocalFile.at(tmp_path / glb.name), sha256="h" * 64, name=glb.name,
                       mime=glb.mime)]
    assert repr(inputs[0]) == f"Override('3.image', video, <file clip.webm, {len(clip.data)} bytes>)"
    graph = {"1": GRAPH["1"], "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
             "3": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},
             "4": {"class_type": "LoadImage", "inputs": {"image": "x.png"}}}
    tid = await run(m, m.submit("sandbox", json.dumps(graph), inputs, reuse=False))
    snap = await run(m, m.wait(tid))
    assert snap["state"] == "succeeded", (snap["error"], snap["message"])
    fake = m.provider(m.profiles.get("sandbox")).fake
    stored = {name: data for (typ, _sub, name), data in fake.files.items() if typ == "input"}
    assert stored.get("w" * 32 + "-clip.webm") == clip.data and stored.get("h" * 32 + "-mesh.glb") == glb.data


async def test_a_file_changed_after_its_node_ran_is_refused_before_anything_is_paid(m, tmp_path):
    clip = ms.webm()
    path = tmp_path / clip.name
    path.write_bytes(clip.data)
    src = LocalFile.at(path)
    path.write_bytes(clip.data + b"more")  # (another size: changed whatever the file system's clock)
    graph = {"1": GRAPH["1"], "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
             "3": {"class_type": "LoadImage", "inputs": {"image": "x.png"}}}
    with pytest.raises(RejectedInput) as e:
        await run(m, m.submit("sandbox", json.dumps(graph),
                              [Override("3.image", "video", src, sha256="c" * 64, name=clip.name)], reuse=False))
    text = str(e.value)
    assert "input file clip.webm changed after its node ran" in text and "[sandbox/sandbox]" in text, text
    fake = m.provider(m.profiles.get("sandbox")).fake
    assert not [k for k in fake.files if k[0] == "input"] and not fake.history


async def test_the_sandbox_video_workflow_gives_a_video_an_animation_and_a_text(m):
    tid = await run(m, m.submit("sandbox", "video.json", [], reuse=False))
    snap = await run(m, m.wait(tid))
    assert snap["state"] == "succeeded", (snap["error"], snap["message"])
    outs = m.outputs_of(tid)
    assert [(o["node"], o["kind"]) for o in outs] == [("6", "video"), ("7", "image"), ("8", "text")]
    (clip,) = results.select_outputs(outs, "", "video")
    info = video.probe(clip["path"])
    assert (info.frame_count, info.width, info.height, info.fps, info.has_audio) == (4, 64, 48, 4.0, False)
    image, _ = results.load_images(results.select_outputs(outs, ""))
    assert image.shape == (4, 48, 64, 3) and np.array_equal(image[0], image[2]) and not np.array_equal(image[0], image[1])
    wave, rate = video.sound(clip["path"], info)
    assert wave.shape == (1, rate) and not wave.any()  # 4 frames at 4 fps: one silent second
