"""Start/stop real ComfyUI instances with ../shared/tools/comfyui, and talk to them over HTTP/WS."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Optional

import aiohttp

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("COMFYUI_REMOTE_SHARED", REPO.parent / "shared"))
TOOL = SHARED / "tools" / "comfyui"
STATE = Path(os.environ.get("COMFYUI_STATE", REPO / ".comfyui-state"))
ALL_MESSAGES: list = []  # every WebSocket message the tests' clients saw (for the canary check)


def available() -> Optional[str]:
    """None when a real ComfyUI can be started here, else the reason."""
    if not TOOL.exists():
        return f"no harness at {TOOL}"
    venv = Path(os.environ.get("COMFYUI_VENV", REPO / ".comfyui-venv"))
    if not (venv / ".comfyui-setup-stamp").exists():
        return f"no ComfyUI venv at {venv} (run {TOOL} setup)"
    return None


class Instance:
    def __init__(self, url: str, env: dict):
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])
        self.env = env
        self.dir = STATE / str(self.port)
        self.base = self.dir / "base"

    @property
    def log(self) -> Path:
        return self.dir / "comfyui.log"

    @property
    def pid(self) -> int:
        return int((self.dir / "comfyui.pid").read_text().split()[0])

    def kill9(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        for _ in range(100):
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)

    def stop(self) -> None:
        subprocess.run([str(TOOL), "stop", str(self.port)], env=self.env, capture_output=True, timeout=60)


def start(*node_dirs: tuple[Path, str], env_extra: Optional[dict] = None, port: str = "auto",
          fresh: bool = True, main_args: tuple = ()) -> Instance:
    """``main_args`` go to ComfyUI's main.py (e.g. ``("--front-end-root", DIR)``)."""
    env = dict(os.environ)
    env.setdefault("COMFYUI_VENV", str(REPO / ".comfyui-venv"))
    env["COMFYUI_STATE"] = str(STATE)
    env.update(env_extra or {})
    args = [str(TOOL), "start", port, "--timeout", "240"]
    for d, name in node_dirs:
        args += ["--custom-nodes", str(d), "--as", name]
    if fresh:
        args.append("--fresh")
    if main_args:
        args += ["--", *map(str, main_args)]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=str(REPO))
    if proc.returncode != 0:
        raise RuntimeError(f"ComfyUI did not start:\n{proc.stderr[-4000:]}")
    return Instance(proc.stdout.strip().splitlines()[-1], env)


class Client:
    """A minimal ComfyUI API client for tests (no Origin header, like any server-to-server client)."""

    def __init__(self, url: str):
        self.url = url
        self.client_id = uuid.uuid4().hex
        self.session: Optional[aiohttp.ClientSession] = None
        self.ws: Optional[aiohttp.ClientWebSocketResponse] = None
        self.messages: list[Any] = []

    async def __aenter__(self) -> "Client":
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        self.ws = await self.session.ws_connect(f"{self.url}/ws?clientId={self.client_id}", heartbeat=20)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        ALL_MESSAGES.extend(self.messages)
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()

    async def get(self, path: str) -> Any:
        async with self.session.get(self.url + path) as r:  # type: ignore[union-attr]
            r.raise_for_status()
            return await r.json()

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        async with self.session.post(self.url + path, json=body) as r:  # type: ignore[union-attr]
            try:
                return r.status, await r.json()
            except Exception:
                return r.status, await r.text()

    async def upload(self, name: str, data: bytes) -> str:
        form = aiohttp.FormData()
        form.add_field("image", data, filename=name, content_type="image/png")
        form.add_field("overwrite", "true")
        async with self.session.post(self.url + "/upload/image", data=form) as r:  # type: ignore[union-attr]
            r.raise_for_status()
            return (await r.json())["name"]

    async def queue(self, prompt: dict) -> str:
        status, body = await self.post("/prompt", {"prompt": prompt, "client_id": self.client_id})
        assert status == 200, body
        return body["prompt_id"]

    async def next_message(self, timeout: float) -> Any:
        msg = await self.ws.receive(timeout=timeout)  # type: ignore[union-attr]
        if msg.type == aiohttp.WSMsgType.TEXT:
            data = json.loads(msg.data)
        elif msg.type == aiohttp.WSMsgType.BINARY:
            data = {"type": "binary", "data": msg.data}
        else:
            raise ConnectionError(f"websocket closed ({msg.type})")
        self.messages.append(data)
        return data

    async def wait_done(self, prompt_id: str, timeout: float = 120) -> dict:
        """Read the socket, in order, until the prompt's end marker (``executing`` with node null,
        sent after ComfyUI wrote the history), so every message the prompt sent — its last
        progress, its last text — is in ``messages``; return its /history entry. Only while the
        socket stays quiet is /history asked (a reconnect may have lost the marker)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                m = await self.next_message(timeout=min(5.0, max(0.1, deadline - time.monotonic())))
            except Exception:
                m = None
            if isinstance(m, dict):
                data = m.get("data") if isinstance(m.get("data"), dict) else {}
                if m.get("type") == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                    break
                continue
            if prompt_id in await self.get(f"/history/{prompt_id}"):
                break
        hist = await self.get(f"/history/{prompt_id}")
        if prompt_id in hist:
            return hist[prompt_id]
        raise AssertionError(f"prompt {prompt_id} did not finish in {timeout} s")

    async def view(self, image: dict) -> bytes:
        q = {"filename": image["filename"], "subfolder": image.get("subfolder", ""), "type": image.get("type", "output")}
        async with self.session.get(self.url + "/view", params=q) as r:  # type: ignore[union-attr]
            r.raise_for_status()
            return await r.read()
