"""The one-command demo behind ./demo.sh (stdlib only: it runs before anything is installed).

It uploads the bundled picture (sandbox/assets/lakeside.png, drawn by scripts/make_demo_picture.py)
to a local ComfyUI with this pack and queues: LoadImage → RemoteInputImage → RemoteRun(profile
"sandbox", invert.json) — the picture is inverted by the sandbox, a ComfyUI-compatible server the
pack runs in-process, exactly as a remote GPU service would — → SaveImage, plus the input and an
ImageStitch of input | result, and prints where the three files are."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COMFYUI_REMOTE_SHARED", ROOT.parent / "shared"))
TOOL = SHARED / "tools" / "comfyui"
DEMO = ROOT / ".demo"
PICTURE = ROOT / "sandbox" / "assets" / "lakeside.png"
OUTPUTS = {"4": "result", "5": "input", "7": "side-by-side"}  # SaveImage node → the line that prints it


def say(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, timeout: float = 30) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"null")


def wait_up(url: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            http("GET", url + "/system_stats", timeout=3)
            return
        except (urllib.error.URLError, OSError, ValueError):
            time.sleep(1)
    raise SystemExit(f"ComfyUI did not answer at {url} within {timeout:.0f} s")


def start_with_tool(port: str, env: dict) -> tuple[str, Path, callable]:
    """The shared harness: its own venv, this checkout linked into custom_nodes."""
    env.setdefault("COMFYUI_VENV", str(ROOT / ".comfyui-venv"))
    env.setdefault("COMFYUI_STATE", str(DEMO / "state"))
    subprocess.run(["bash", str(TOOL), "setup"], env=env, check=True)
    venv_python = Path(env["COMFYUI_VENV"]) / "bin" / "python"
    subprocess.run([str(venv_python), "-m", "pip", "install", "-q", "-c", str(SHARED / "tools" / "comfyui-constraints.txt"),
                    "-r", str(ROOT / "requirements.txt")], env=env, check=True)
    out = subprocess.run(["bash", str(TOOL), "start", port, "--custom-nodes", str(ROOT), "--as", "comfyui_remote"],
                         env=env, check=True, capture_output=True, text=True)
    url = out.stdout.strip().splitlines()[-1]
    output_dir = Path(env["COMFYUI_STATE"]) / url.rsplit(":", 1)[1] / "base" / "output"
    stop = lambda: subprocess.run(["bash", str(TOOL), "stop", url.rsplit(":", 1)[1]], env=env)  # noqa: E731
    return url, output_dir, stop


def start_plain(comfy_dir: Path, port: str, env: dict) -> tuple[str, Path, callable]:
    """Any ComfyUI checkout: link the pack into custom_nodes, install requirements, run main.py."""
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    link = comfy_dir / "custom_nodes" / "comfyui_remote"
    if not link.exists():
        link.symlink_to(ROOT, target_is_directory=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "-r", str(ROOT / "requirements.txt")], check=True)
    p = free_port() if port == "auto" else int(port)
    DEMO.mkdir(exist_ok=True)
    log = open(DEMO / "comfyui.log", "ab")
    proc = subprocess.Popen([python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(p)],
                            cwd=comfy_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{p}"
    wait_up(url)
    return url, comfy_dir / "output", proc.terminate


def install_with_comfy_cli() -> Path:
    target = DEMO / "ComfyUI"
    if not (target / "main.py").exists():
        say("installing ComfyUI with comfy-cli into .demo/ (needs network)")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "comfy-cli"], check=True)
        subprocess.run([sys.executable, "-m", "comfy_cli", "--skip-prompt", "--workspace", str(target), "install",
                        "--cpu"], check=True)
    return target


def upload(url: str, path: Path) -> str:
    """POST /upload/image (multipart, as the frontend sends it); returns the name in input/."""
    boundary = uuid.uuid4().hex
    body = b"".join([
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{path.name}\"\r\n"
        f"Content-Type: image/png\r\n\r\n".encode(), path.read_bytes(),
        f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\ntrue\r\n"
        f"--{boundary}--\r\n".encode()])
    req = urllib.request.Request(url + "/upload/image", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["name"]


def demo_prompt(image: str) -> dict:
    """The picture goes to the sandbox, which inverts it (providers/sandbox_workflows/invert.json:
    its LoadImage is node 10); the result comes back as an IMAGE and is saved beside the input."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "RemoteInputImage", "inputs": {"target": "10.image", "image": ["1", 0]}},
        "3": {"class_type": "RemoteRun", "inputs": {"profile": "sandbox", "workflow": "invert.json", "inputs": ["2", 0],
                                                    "timeout_s": 120, "select": "", "reuse_result": False,
                                                    "cancel_on_interrupt": True}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "comfyui_remote_demo/inverted"}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "comfyui_remote_demo/input"}},
        "6": {"class_type": "ImageStitch", "inputs": {"image1": ["1", 0], "image2": ["3", 0], "direction": "right",
                                                      "match_image_size": True, "spacing_width": 8,
                                                      "spacing_color": "white"}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "comfyui_remote_demo/side_by_side"}},
    }


def main() -> int:
    port = os.environ.get("DEMO_PORT", "8188")
    env = dict(os.environ)
    env.setdefault("COMFYUI_REMOTE_HOME", str(DEMO / "home"))
    comfy_dir = os.environ.get("COMFYUI_DIR")
    if comfy_dir:
        if TOOL.exists():
            env["COMFYUI_DIR"] = comfy_dir
            url, output_dir, stop = start_with_tool(port, env)
        else:
            url, output_dir, stop = start_plain(Path(comfy_dir), port, env)
    elif TOOL.exists() and (SHARED / "comfyui" / "main.py").exists():
        url, output_dir, stop = start_with_tool(port, env)
    else:
        url, output_dir, stop = start_plain(install_with_comfy_cli(), port, env)
    say(f"ComfyUI with ComfyUI Remote is up at {url}")
    try:
        client_id = uuid.uuid4().hex
        image = upload(url, PICTURE)
        answer = http("POST", url + "/prompt", {"prompt": demo_prompt(image), "client_id": client_id})
        prompt_id = answer["prompt_id"]
        say(f"queued {PICTURE.name}, to be inverted remotely by the sandbox (prompt {prompt_id}); waiting for it")
        deadline = time.time() + 180
        entry = None
        while time.time() < deadline:
            hist = http("GET", f"{url}/history/{prompt_id}")
            entry = hist.get(prompt_id)
            if entry and entry.get("status", {}).get("status_str") in ("success", "error"):
                break
            time.sleep(0.5)
        if not entry or entry["status"]["status_str"] != "success":
            say(f"the example did not succeed: {json.dumps(entry and entry.get('status'))[:2000]}")
            return 1
        paths = {}
        for node, label in OUTPUTS.items():
            saved = entry["outputs"][node]["images"][0]
            paths[label] = output_dir / saved.get("subfolder", "") / saved["filename"]
            print(f"{label + ':':<13} {paths[label]}")
        print(f"{'open:':<13} {url}  (sidebar: the cloud icon 'Remote' lists the task and its thumbnail)")
        return 0 if all(p.is_file() for p in paths.values()) else 1
    finally:
        if os.environ.get("DEMO_KEEP", "1") == "0":
            stop()


if __name__ == "__main__":
    sys.exit(main())
