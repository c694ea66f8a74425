"""A 1 GB download streams to disk with bounded memory (target: < 64 MB RSS growth)."""
import resource
import time

from aiohttp import web

from comfyui_remote.engine.transfer import Http
from comfyui_remote.tests.fakes.toolkit import FakeServer

SIZE = 1024 * 1024 * 1024
CHUNK = b"\x5a" * (1024 * 1024)


class BigFile(FakeServer):
    name = "bigfile"

    def setup_routes(self, router):
        async def big(request):
            resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            resp.content_length = SIZE
            await resp.prepare(request)
            for _ in range(SIZE // len(CHUNK)):
                await resp.write(CHUNK)
            return resp

        router.add_get("/big", big, name="big")


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def test_one_gigabyte_download_has_bounded_memory(tmp_path):
    server = BigFile()
    await server.start()
    http = Http()
    peak = [0.0]

    def on_progress(done, total):
        peak[0] = max(peak[0], _rss_mb())

    try:
        before = _rss_mb()
        t0 = time.monotonic()
        d = await http.fetch_to(server.url + "/big", tmp_path / "big.bin.part", on_progress=on_progress)
        dt = time.monotonic() - t0
    finally:
        await http.close()
        await server.stop()
    assert d.size == SIZE
    growth = peak[0] - before
    print(f"\n1 GiB download: {dt:.1f} s ({SIZE / dt / 1e6:.0f} MB/s), RSS growth {growth:.1f} MB")
    assert growth < 64
