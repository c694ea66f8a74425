"""The README's one-command demo runs against ../shared/comfyui: the bundled picture goes through the
sandbox, which inverts it remotely, and ./demo.sh prints where the input, the result and the
side-by-side are — each a real file with exactly the expected pixels."""
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

from . import harness

pytestmark = [pytest.mark.e2e]
PICTURE = harness.REPO / "sandbox" / "assets" / "lakeside.png"


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_demo_inverts_the_bundled_picture_remotely_and_prints_where_it_is(tmp_path):
    why = harness.available()
    if why:
        pytest.skip(f"real ComfyUI not available: {why}")
    env = dict(os.environ, DEMO_PORT="auto", DEMO_KEEP="0", COMFYUI_STATE=str(tmp_path / "state"),
               COMFYUI_REMOTE_HOME=str(tmp_path / "home"))
    if harness.SHARED == harness.REPO.parent / "shared":
        env.pop("COMFYUI_DIR", None)  # the project's layout: the shared snapshot, whatever the shell says
    proc = subprocess.run([str(harness.REPO / "demo.sh")], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(":", 1) for line in proc.stdout.splitlines() if ":" in line)
    paths = {k: lines[k].strip() for k in ("input", "result", "side-by-side")}
    for path in paths.values():
        assert os.path.isfile(path), path
    original = pixels(PICTURE)
    h, w, _ = original.shape
    assert (h, w) == (200, 320) and original.std() > 20, "a real picture, not a flat square"
    assert (pixels(paths["input"]) == original).all(), "the input round-trips bit-exactly"
    # the sandbox computed 1 − v/255 in float32 and saved it the way SaveImage truncates
    v = original.astype(np.float32) / np.float32(255)
    expected = np.clip(np.float32(255) * (np.float32(1) - v), 0, 255).astype(np.uint8)
    result = pixels(paths["result"])
    assert (result == expected).all()
    assert np.abs(result.astype(int) - (255 - original.astype(int))).max() <= 1, "inverted, not anything else"
    both = pixels(paths["side-by-side"])
    assert both.shape == (h, 2 * w + 8, 3)
    assert (both[:, :w] == original).all() and (both[:, w + 8:] == expected).all()
    assert (both[:, w:w + 8] == 255).all(), "white spacing between input and result"
    assert lines["open"].strip().startswith("http://127.0.0.1:")
