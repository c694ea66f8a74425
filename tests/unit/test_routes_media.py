"""Media results over the panel's output route (design §4, issue 14): every kind of saved output is
served with its type from the pack's own table (never sniffed), ``nosniff``, inline only when a
browser can merely show it, as a download otherwise; video and audio seek with Range; a video's
thumbnail is its first frame (PyAV); a text result without a file travels in the Task JSON.
Real HTTP through ``routes.setup_routes`` and a real TaskManager (the ``env`` of test_routes)."""
from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfyui_remote.engine import posters
from comfyui_remote.engine.live import TEXT_PREVIEW
from comfyui_remote.routes import PREFIX

from .test_routes import CANARY, env, succeeded_task  # noqa: F401  (env is a fixture)

av = pytest.importorskip("av")

RED, BLUE = (230, 20, 20), (20, 20, 230)


def write_video(path: Path, colours: list[tuple[int, int, int]], size: tuple[int, int] = (48, 32),
                codec: str = "mpeg4") -> Path:
    """A tiny video whose frame i is the solid colour ``colours[i]`` (deterministic, no audio)."""
    fmt = "webm" if path.suffix == ".webm" else "mp4"
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=8)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 8)
        for i, colour in enumerate(colours):
            arr = np.empty((size[1], size[0], 3), np.uint8)
            arr[...] = colour
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_flac(path: Path) -> Path:
    """0.1 s of a 440 Hz tone, mono 8 kHz, lossless."""
    with av.open(str(path), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=8000, layout="mono")
        t = np.arange(800) / 8000
        samples = (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


async def with_outputs(env, files: list[tuple[str, str, bytes | None, str | None]]) -> tuple[str, Path]:
    """A succeeded task whose outputs are ``(kind, name, bytes or None for an existing file, mime)``,
    saved in its own results folder."""
    task = await succeeded_task(env)
    tid = task["id"]
    folder = Path(env.m.outputs_of(tid)[0]["path"]).parent
    records = []
    for n, (kind, name, data, mime) in enumerate(files):
        path = folder / name
        if data is not None:
            path.write_bytes(data)
        records.append({"n": n, "kind": kind, "filename": name, "path": str(path), "mime": mime,
                        "size": path.stat().st_size})
    env.m.journal.set_outputs(tid, records)
    return tid, folder


# (kind, file name, the type the service recorded, served Content-Type, disposition)
SERVED = [
    ("video", "clip.mp4", "video/mp4", "video/mp4", "inline"),
    ("video", "clip.webm", None, "video/webm", "inline"),
    ("audio", "voice.flac", "audio/flac", "audio/flac", "inline"),
    ("audio", "voice.wav", "audio/x-wav", "audio/wav", "inline"),
    ("audio", "voice.mp3", None, "audio/mpeg", "inline"),
    ("text", "caption.txt", "text/plain", "text/plain; charset=utf-8", "inline"),
    ("file", "mesh.glb", None, "model/gltf-binary", "attachment"),
    ("file", "result.json", "application/json", "application/json", "attachment"),
    ("file", "bundle.zip", None, "application/zip", "attachment"),
    # active content never renders in ComfyUI's origin, whatever the service calls it
    ("file", "page.html", "text/html", "application/octet-stream", "attachment"),
    ("image", "pic.svg", "image/svg+xml", "application/octet-stream", "attachment"),
    ("file", "app.js", "text/javascript", "application/octet-stream", "attachment"),
    ("text", "page.htm", "text/plain", "application/octet-stream", "attachment"),
    # the pack's table by name wins over what the service said; the bytes are never looked at
    ("image", "shot.png", "text/html", "image/png", "inline"),
    ("video", "noext", "video/mp4", "video/mp4", "inline"),
    ("file", "blob", "text/html", "application/octet-stream", "attachment"),
]


async def test_every_kind_is_served_with_its_type_nosniff_and_a_safe_disposition(env):
    files = [(kind, name, b"<html><script>alert(1)</script></html>" + bytes(range(256)), mime)
             for kind, name, mime, _, _ in SERVED]
    tid, _ = await with_outputs(env, files)
    for n, (kind, name, _, ctype, disposition) in enumerate(SERVED):
        r = await env.client.get(f"{PREFIX}/tasks/{tid}/outputs/{n}")
        body = await r.read()
        assert r.status == 200 and body == files[n][2], name
        assert r.headers["Content-Type"] == ctype, (name, r.headers["Content-Type"])
        assert r.headers["X-Content-Type-Options"] == "nosniff", name
        assert "sandbox" in r.headers["Content-Security-Policy"], name
        assert r.headers["Content-Disposition"].startswith(f'{disposition}; filename="{name}"'), (
            name, r.headers["Content-Disposition"])


async def test_a_hostile_file_name_makes_one_valid_header_and_no_other(env):
    name = 'x"; filename=evil.html\r\nX-Injected: 1\\<img src=x>.mp4'
    tid, folder = await with_outputs(env, [("video", "ok.mp4", b"\x00" * 64, "video/mp4")])
    hostile = folder / name
    hostile.write_bytes(b"\x00" * 64)
    env.m.journal.set_outputs(tid, [{"n": 0, "kind": "video", "filename": name, "path": str(hostile),
                                     "mime": "text/html"}])
    r = await env.client.get(f"{PREFIX}/tasks/{tid}/outputs/0")
    await r.read()
    assert r.status == 200 and "X-Injected" not in r.headers
    assert r.headers["Content-Type"] == "video/mp4" and r.headers["X-Content-Type-Options"] == "nosniff"
    disp = r.headers["Content-Disposition"]
    assert disp.startswith('inline; filename="') and disp.count('"') == 2, disp
    assert "\r" not in disp and "\n" not in disp and "<" not in disp.split("filename*")[1], disp
    assert "filename*=UTF-8''x%22%3B%20filename%3Devil.html%0D%0AX-Injected" in disp, disp


async def test_an_output_is_served_as_itself_never_as_a_compressed_sibling(env):
    """A remote may return both ``x.mp4`` and ``x.mp4.gz`` (or ``.br``): asked for ``x.mp4`` by a
    browser that accepts gzip, the route serves the bytes of ``x.mp4``, not the other result
    dressed as its compressed form."""
    import gzip

    real = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4
    other = gzip.compress(b"<html><script>alert(1)</script></html>")
    tid, _ = await with_outputs(env, [("video", "x.mp4", real, "video/mp4"),
                                      ("file", "x.mp4.gz", other, "application/gzip"),
                                      ("file", "x.mp4.br", b"brotli?", None)])
    for enc in ("gzip", "br", "gzip, deflate, br, zstd"):
        r = await env.client.get(f"{PREFIX}/tasks/{tid}/outputs/0", headers={"Accept-Encoding": enc},
                                 auto_decompress=False)
        assert r.status == 200 and await r.read() == real, enc
        assert "Content-Encoding" not in r.headers and r.headers["Content-Type"] == "video/mp4", enc
    r = await env.client.get(f"{PREFIX}/tasks/{tid}/outputs/0", headers={"Range": "bytes=4-11", "Accept-Encoding": "gzip"},
                             auto_decompress=False)
    assert r.status == 206 and await r.read() == real[4:12]


async def test_video_and_audio_answer_range_requests_so_players_can_seek(env, tmp_path):
    clip = write_video(tmp_path / "clip.mp4", [RED, BLUE, BLUE, BLUE])
    sound = write_flac(tmp_path / "voice.flac")
    tid, _ = await with_outputs(env, [("video", "clip.mp4", clip.read_bytes(), "video/mp4"),
                                      ("audio", "voice.flac", sound.read_bytes(), "audio/flac")])
    for n, src, ctype in ((0, clip, "video/mp4"), (1, sound, "audio/flac")):
        whole = src.read_bytes()
        r = await env.client.get(f"{PREFIX}/tasks/{tid}/outputs/{n}", headers={"Range": "bytes=100-199"})
        part = await r.read()
        assert r.status == 206, (n, r.status)
        assert r.headers["Content-Range"] == f"bytes 100-199/{len(whole)}"
        assert part == whole[100:200]
        assert r.headers["Content-Type"] == ctype and r.headers["X-Content-Type-Options"] == "nosniff"
        r = await env.client.get(f"{PREFIX}/tasks/{tid}/outputs/{n}", headers={"Range": f"bytes={len(whole) - 10}-"})
        assert r.status == 206 and await r.read() == whole[-10:]
        assert r.headers.get("Accept-Ranges") == "bytes"


def mean_rgb(png: bytes) -> tuple[Image.Image, np.ndarray]:
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG"
    return img, np.asarray(img.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)


async def test_a_videos_thumbnail_is_its_first_frame_bounded_in_size(env, tmp_path):
    mp4 = write_video(tmp_path / "clip.mp4", [RED, BLUE, BLUE], size=(160, 90))
    webm = write_video(tmp_path / "clip.webm", [BLUE, RED], size=(40, 64), codec="libvpx-vp9")
    tid, _ = await with_outputs(env, [("video", "clip.mp4", mp4.read_bytes(), "video/mp4"),
                                      ("video", "clip.webm", webm.read_bytes(), "video/webm")])
    r = await env.client.get(f"{PREFIX}/tasks/{tid}/outputs/0?thumb=64")
    img, rgb = mean_rgb(await r.read())
    assert r.status == 200 and r.headers["Content-Type"] == "image/png"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert img.size == (64, 36), img.size
    assert np.abs(rgb - RED).max() < 12, rgb  # the first frame, not a later one
    r = await env.client.get(f"{PREFIX}/tasks/{tid}/outputs/1?thumb=256")
    img, rgb = mean_rgb(await r.read())
    assert r.status == 200 and img.size == (40, 64)  # never enlarged
    assert np.abs(rgb - BLUE).max() < 12, rgb
    r = await env.client.get(f"{PREFIX}/tasks/{tid}/outputs/0?thumb=99999")
    img, _ = mean_rgb(await r.read())
    assert r.status == 200 and max(img.size) <= 1024
    # made once per file version and size, like image thumbnails
    before = posters._poster.cache_info().hits
    again = await env.client.get(f"{PREFIX}/tasks/{tid}/outputs/0?thumb=64")
    assert again.status == 200 and posters._poster.cache_info().hits == before + 1


async def test_thumbnails_of_what_is_no_picture_are_a_clear_415(env, tmp_path, monkeypatch):
    sound = write_flac(tmp_path / "voice.flac")
    wide = write_video(tmp_path / "wide.mp4", [RED], size=(48, 32))
    tid, _ = await with_outputs(env, [
        ("audio", "voice.flac", sound.read_bytes(), "audio/flac"),
        ("video", "broken.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 500, "video/mp4"),
        ("file", "mesh.glb", b"glTF" + b"\x00" * 60, None),
        ("video", "wide.mp4", wide.read_bytes(), "video/mp4"),
    ])
    monkeypatch.setattr(posters, "MAX_SIDE", 40)  # frames wider than this are not decoded
    for n in (0, 1, 2, 3):
        status, body, _ = await env.get(f"/tasks/{tid}/outputs/{n}?thumb=128")
        assert status == 415 and f"output {n} is not an image or a video" == body["error"], (n, body)
    monkeypatch.setattr(posters, "MAX_SIDE", 48)
    status, _, _ = await env.get(f"/tasks/{tid}/outputs/3?thumb=128")
    assert status == 200


async def test_a_gif_saved_as_a_video_still_gets_a_thumbnail(env):
    buf = io.BytesIO()
    frames = [Image.new("RGB", (30, 20), c) for c in (RED, BLUE)]
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    tid, _ = await with_outputs(env, [("video", "anim.gif", buf.getvalue(), "image/gif")])
    r = await env.client.get(f"{PREFIX}/tasks/{tid}/outputs/0?thumb=64")
    img, _ = mean_rgb(await r.read())
    assert r.status == 200 and img.size == (30, 20)


async def test_text_results_travel_in_the_task_json_cut_and_redacted(env):
    tid = "textjson1"
    env.insert(tid, "succeeded")  # a task of the journal alone (no snapshot held in memory)
    long = "line <b>&amp;</b>\n" * 400
    env.m.journal.set_outputs(tid, [
        {"n": 0, "kind": "text", "filename": "caption.txt", "path": None, "text": "a cat <script>x</script>"},
        {"n": 1, "kind": "text", "filename": "long.txt", "path": None, "text": long},
        {"n": 2, "kind": "text", "filename": "k.txt", "path": None, "text": f"token={CANARY}"},
    ])
    status, body, raw = await env.get(f"/tasks/{tid}")
    assert status == 200
    outs = body["outputs"]
    assert outs[0]["text"] == "a cat <script>x</script>" and outs[0]["text_length"] == 24
    assert outs[1]["text"] == long[:TEXT_PREVIEW] and outs[1]["text_length"] == len(long)
    assert CANARY not in raw and outs[2]["text"].startswith("token=")
    # the whole text is served by the output route, as plain text that never renders
    r = await env.client.get(f"{PREFIX}/tasks/{tid}/outputs/1")
    assert r.status == 200 and (await r.text()) == long
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Content-Disposition"].startswith('inline; filename="long.txt"')


async def test_file_outputs_carry_their_size_and_never_their_path(env):
    tid = "sizes1"
    env.insert(tid, "succeeded")
    folder = env.results / "x"
    env.m.journal.set_outputs(tid, [
        {"n": 0, "kind": "file", "filename": "mesh.glb", "path": str(folder / "mesh.glb"), "size": 100},
        {"n": 1, "kind": "audio", "filename": "voice.wav", "path": str(folder / "voice.wav"), "size": 44},
        {"n": 2, "kind": "text", "filename": "notes.txt", "path": str(folder / "notes.txt"), "size": 9,
         "text": None}])
    status, body, _ = await env.get(f"/tasks/{tid}")
    assert status == 200
    assert [(o["kind"], o["filename"], o["size"]) for o in body["outputs"]] == [
        ("file", "mesh.glb", 100), ("audio", "voice.wav", 44), ("text", "notes.txt", 9)]
    assert all("path" not in o and "text" not in o for o in body["outputs"])
