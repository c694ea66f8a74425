"""Peak memory (the process's peak RSS, VmHWM) while 1 GB streams to disk, while a 1 GB file of
ComfyUI's folders is uploaded to a ComfyUI server, and while a 1 GB video decodes. Each measurement runs in a fresh child process (``python -m benchmarks --child WHAT ...``)
so one peak does not hide another; the 1 GB is generated as it is served, never stored first.
"""
from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

from comfyui_remote.tests.fakes.toolkit import FakeServer

CHUNK = b"\x5a" * (1024 * 1024)
ROOT = Path(__file__).resolve().parents[1]


class BigFile(FakeServer):
    """``GET /big?mb=N``: N MiB generated while streamed (Content-Length set, as a CDN would)."""
    name = "bigfile"

    def setup_routes(self, router):
        async def big(request):
            mb = int(request.query.get("mb", "1024"))
            resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            resp.content_length = mb * len(CHUNK)
            await resp.prepare(request)
            for _ in range(mb):
                await resp.write(CHUNK)
            return resp

        router.add_get("/big", big, name="big")


class UploadSink:
    """ComfyUI's ``/upload/image`` (and a ``/view`` that has nothing), counting the file as it arrives
    without keeping it (a plain aiohttp app: the fakes' toolkit logs whole bodies)."""

    def __init__(self) -> None:
        self.received = 0
        self.url = ""
        self._runner: "web.AppRunner | None" = None

    async def _upload(self, request: web.Request) -> web.Response:
        size, name = 0, "x"
        async for part in await request.multipart():
            if part.name == "image":
                name = part.filename or name
                while chunk := await part.read_chunk(1 << 20):
                    size += len(chunk)
            else:
                await part.read()
        self.received = size
        return web.json_response({"name": name, "subfolder": "", "type": "input"})

    async def start(self) -> None:
        app = web.Application(client_max_size=1 << 40)
        app.router.add_post("/upload/image", self._upload)
        app.router.add_get("/view", lambda request: web.Response(status=404))
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self.url = "http://127.0.0.1:%d" % sock.getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _status(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


# ------------------------------------------------------------------ in the child
async def _download(how: str, url: str, dest: Path) -> int:
    if how == "engine":
        from comfyui_remote.engine.transfer import Http

        http = Http()
        try:
            return (await http.fetch_to(url, dest)).size
        finally:
            await http.close()
    import aiohttp

    size = 0
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        with open(dest, "wb") as fh:
            async for chunk in r.content.iter_chunked(1024 * 1024):
                fh.write(chunk)
                size += len(chunk)
    return size


async def _upload(how: str, path: Path, url: str) -> int:
    """The pack: the comfyui provider's upload of a LocalFile (what RemoteInputVideo/File send);
    direct: aiohttp posting the open file."""
    import aiohttp

    if how == "engine":
        from comfyui_remote.engine.profiles import Profiles
        from comfyui_remote.engine.transfer import Http
        from comfyui_remote.providers.comfyui import ComfyUIProvider
        from comfyui_remote.providers.local_file import LocalFile

        with tempfile.TemporaryDirectory() as home:
            Path(home, "profiles.toml").write_text(f'[profiles.up]\nprovider = "comfyui"\nurl = "{url}"\n')
            p = ComfyUIProvider(Profiles(Path(home)).get("up"), Http(provider="comfyui", profile="up"))
            try:
                await p.upload(LocalFile.at(path), "video/mp4", path.name)
            finally:
                await p.close()
                await p.http.close()
        return path.stat().st_size
    with open(path, "rb") as fh:
        fd = aiohttp.FormData()
        fd.add_field("image", fh, filename=path.name, content_type="video/mp4")
        async with aiohttp.ClientSession() as s, s.post(url + "/upload/image", data=fd) as r:
            r.raise_for_status()
    return path.stat().st_size


def _decode(path: Path) -> int:
    import av
    import numpy as np

    frames = 0
    with av.open(str(path)) as box:
        for frame in box.decode(video=0):
            arr = frame.to_ndarray(format="rgb24").astype(np.float32) / np.float32(255.0)  # an IMAGE frame
            frames += arr.shape[0] > 0
    return frames


def _decode_engine(path: Path) -> int:
    """The pack's own decode (RemoteFetchVideo's frames): every frame into one IMAGE batch, with the
    memory check first."""
    from comfyui_remote.engine import video

    info = video.probe(path, name=path.name)
    return int(video.decode_frames(path, info, limit=video.frame_limit_bytes(), name=path.name).shape[0])


def child(args: list[str]) -> None:
    """``download engine|direct URL``, ``upload engine|direct PATH URL`` or ``decode engine|direct PATH``:
    prints seconds, base and peak RSS MB."""
    what, how, target = args[:3]
    base = _status("VmRSS")
    t0 = time.monotonic()
    if what == "download":
        with tempfile.TemporaryDirectory() as d:
            done = asyncio.run(_download(how, target, Path(d) / "big.bin.part"))
    elif what == "upload":
        done = asyncio.run(_upload(how, Path(target), args[3]))
    else:
        done = _decode_engine(Path(target)) if how == "engine" else _decode(Path(target))
    print(f"{time.monotonic() - t0:.2f} {base:.1f} {_status('VmHWM'):.1f} {done}")


# ------------------------------------------------------------------ in the parent
def _run_child(*args: str) -> tuple[float, float, float, int]:
    """(seconds, RSS before, peak RSS in MB, bytes or frames done) of one child run."""
    out = subprocess.run([sys.executable, "-m", "benchmarks", "--child", *args], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=900).stdout.split()
    return float(out[0]), float(out[1]), float(out[2]), int(out[3])


async def download_rows(mb: int) -> dict:
    server = BigFile()
    await server.start()
    try:
        url = f"{server.url}/big?mb={mb}"
        rows = {}
        for how in ("direct", "engine"):
            rows[how] = await asyncio.to_thread(_run_child, "download", how, url)
        return rows
    finally:
        await server.stop()


async def upload_rows(mb: int) -> dict:
    server = UploadSink()
    await server.start()
    try:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "big.mp4"
            with open(path, "wb") as fh:
                for _ in range(mb):
                    fh.write(CHUNK)
            rows = {}
            for how in ("direct", "engine"):
                rows[how] = await asyncio.to_thread(_run_child, "upload", how, str(path), server.url)
                assert server.received == mb * len(CHUNK), f"{how}: the server got {server.received} bytes"
            return rows
    finally:
        await server.stop()


def make_video(path: Path, mb: int) -> int:
    """A generated video of about ``mb`` MiB (raw frames, 640×360: decoding cost is the frames,
    not the codec). Returns the frame count."""
    import av
    import numpy as np

    w, h = 640, 360
    n = max(1, mb * 1024 * 1024 // (w * h * 3))
    with av.open(str(path), "w", format="nut") as box:
        stream = box.add_stream("rawvideo", rate=24)
        stream.width, stream.height, stream.pix_fmt = w, h, "rgb24"
        ramp = np.arange(w, dtype=np.uint8)[None, :, None].repeat(h, 0).repeat(3, 2)
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(ramp + np.uint8(i % 256), format="rgb24")
            for packet in stream.encode(frame):
                box.mux(packet)
        for packet in stream.encode():
            box.mux(packet)
    return n


async def decode_rows(mb: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "big.nut"
        frames = await asyncio.to_thread(make_video, path, mb)
        rows = {how: await asyncio.to_thread(_run_child, "decode", how, str(path)) for how in ("direct", "engine")}
        for how, row in rows.items():
            assert row[3] == frames, f"{how}: decoded {row[3]} of {frames} frames"
        return {**rows, "frames": frames, "bytes": path.stat().st_size, "batch_mb": frames * 640 * 360 * 3 * 4 / 2**20}
