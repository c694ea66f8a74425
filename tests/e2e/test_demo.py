"""The README's one-command demo runs against ../shared/comfyui and prints a result file that exists."""
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

from . import harness

pytestmark = [pytest.mark.e2e]


def test_demo_prints_an_existing_result(tmp_path):
    why = harness.available()
    if why:
        pytest.skip(f"real ComfyUI not available: {why}")
    env = dict(os.environ, DEMO_PORT="auto", DEMO_KEEP="0", COMFYUI_STATE=str(tmp_path / "state"),
               COMFYUI_REMOTE_HOME=str(tmp_path / "home"))
    env.pop("COMFYUI_DIR", None)
    proc = subprocess.run([str(harness.REPO / "demo.sh")], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(":", 1) for line in proc.stdout.splitlines() if ":" in line)
    path = lines["result"].strip()
    assert os.path.isfile(path)
    px = np.asarray(Image.open(path).convert("RGB"))
    # the sandbox made #2a9d8f, the local ImageInvert after it: truncation of 255 * (1 - v/255)
    v = np.array([0x2A, 0x9D, 0x8F], np.float32) / np.float32(255)
    assert (px == np.clip(np.float32(255) * (np.float32(1) - v), 0, 255).astype(np.uint8)).all()
    assert lines["open"].strip().startswith("http://127.0.0.1:")
