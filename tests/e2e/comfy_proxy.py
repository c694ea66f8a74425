"""Start/stop the REAL ``comfy-api-proxy`` (PyPI, in its own venv made by test.sh) in front of a real
ComfyUI: the self-hosted Comfy API v2 the ``comfycloud`` provider is tested against."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("COMFY_PROXY_VENV", REPO / ".proxy-venv"))
BIN = VENV / "bin" / "comfy-api-proxy"


def available() -> Optional[str]:
    """None when the proxy can be started here, else the reason."""
    if not BIN.exists():
        return f"comfy-api-proxy not installed at {BIN} (./test.sh installs it)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path):
        self.proc, self.url, self.log = proc, url, log

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start(comfyui_url: str, state: Path, *, token: Optional[str] = None, timeout: float = 30.0) -> Proxy:
    """``comfy-api-proxy run`` on a free loopback port; returns once ``/api/v2/health`` answers."""
    port = free_port()
    state.mkdir(parents=True, exist_ok=True)
    log = state / f"proxy-{port}.log"
    args = [str(BIN), "run", "--comfyui", comfyui_url, "--port", str(port), "--state-dir", str(state / f"s{port}")]
    if token:
        args += ["--token", token]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, cwd=str(state))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"comfy-api-proxy exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/api/v2/health", timeout=2) as r:
                if json.loads(r.read()).get("status") == "healthy":
                    return Proxy(proc, url, log)
        except OSError:
            time.sleep(0.2)  # the process is starting; nothing to await but its port
    proc.kill()
    raise RuntimeError(f"comfy-api-proxy did not answer in {timeout} s:\n{log.read_text()[-2000:]}")
