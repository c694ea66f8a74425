"""PNG decode to an IMAGE array: ours vs Pillow + numpy alone (target: within 10 %)."""
import io
import time

import numpy as np
from PIL import Image

from comfyui_remote.engine import media


def _best(fn, n=7):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def test_png_decode_overhead_within_10_percent():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (1536, 1536, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    data = buf.getvalue()

    def baseline():
        img = Image.open(io.BytesIO(data)).convert("RGB")
        return np.asarray(img).astype(np.float32) / np.float32(255.0)

    def ours():
        return media.decode_image(data).rgb

    assert np.array_equal(baseline(), ours())
    t_base, t_ours = _best(baseline), _best(ours)
    print(f"\nPNG 1536x1536 decode: baseline {t_base * 1000:.1f} ms, ours {t_ours * 1000:.1f} ms "
          f"({(t_ours / t_base - 1) * 100:+.1f} %)")
    assert t_ours <= t_base * 1.10 + 0.002
