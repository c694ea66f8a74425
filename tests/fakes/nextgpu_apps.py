"""nextGPU fake, part 2: the app catalogue (server-side graphs + binding configurations), the
parameter binding rules, deterministic result rendering and the wire formats of times and JSON
documents. Facts: ``shared/providers/nextgpu.md`` §2.5, §5, §7 (SRC ``ng-cloud/process/workflow.go``).

Apps shipped by default (titles are opaque UTF-8, compared exactly):

- ``Image generation`` — text-to-image (the title on nextGPU's API page). Parameters ``promptText``
  (node 6 text) and enum ``imageRatio`` (``1:1``/``16:9``/``4:3``/``9:16`` → node 5 width/height).
  Result: one solid PNG, colour = first three bytes of sha256(promptText), size = width/64 × height/64
  (1:1 → 16×16, 16:9 → 30×16, 4:3 → 16×12, 9:16 → 16×30).
- ``一键抠图（背景移除）丨在线生图`` — the SEED's background-removal graph (``imageName`` → node 3).
  The fake's "node" really GETs the URL and delivers the fetched bytes unchanged (an echo), so an
  uploaded input comes back pixel for pixel. Node 42 is a temp preview and is not delivered.
- ``双图输出 Two outputs`` — two SaveImage nodes: two PNGs per sub-task (colour and its inverse,
  8×8), so ``urls`` is newline-joined.
- ``Slow generation`` — like ``Image generation`` but each attempt runs ``slow_run_s``.
- ``动图 Animated`` — ``SaveAnimatedWEBP`` (node 9, listed under ``images`` with ``animated``: the
  node client delivers it, a real 4-frame WebP from tests/media_samples) and ``VHS_VideoCombine``
  (node 10, listed under ``gifs``: not delivered, facts §7.4).
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

UTC = timezone.utc
CST = timezone(timedelta(hours=8))  # Asia/Shanghai, the server's local zone
WS_UNSET = "1970-01-01 08:00:00.000"  # epoch 0 rendered in UTC+8

T2I_TITLE = "Image generation"
ECHO_TITLE = "一键抠图（背景移除）丨在线生图"
PAIR_TITLE = "双图输出 Two outputs"
SLOW_TITLE = "Slow generation"
ANIMATED_TITLE = "动图 Animated"
CTYPES = {"png": "image/png", "webp": "image/webp", "gif": "image/gif", "mp4": "video/mp4"}

RATIOS = {"1:1": (1024, 1024), "16:9": (1920, 1080), "4:3": (1024, 768), "9:16": (1080, 1920)}


# --------------------------------------------------------------------------- times

def ws_time(dt: Optional[datetime]) -> str:
    """WebSocket times: UTC+8 with milliseconds; unset = epoch 0 in UTC+8."""
    if dt is None:
        return WS_UNSET
    t = dt.astimezone(CST)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def db_time(dt: Optional[datetime], tz: timezone) -> str:
    """getTask times: no milliseconds, in the zone the SRC column uses; unset = ""."""
    return "" if dt is None else dt.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def digits(dt: datetime, tz: timezone) -> str:
    """``YYYYMMDDhhmmss`` + 6-digit microseconds (session ids, result file names)."""
    t = dt.astimezone(tz)
    return t.strftime("%Y%m%d%H%M%S") + f"{t.microsecond:06d}"


def go_json(obj: Any, *, sort: bool = False) -> str:
    """Go ``encoding/json`` style: compact, non-ASCII literal."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=sort)


# --------------------------------------------------------------------------- rendering

def solid_colour(prompt: str) -> tuple[int, int, int]:
    d = hashlib.sha256(str(prompt).encode()).digest()
    return d[0], d[1], d[2]


def ratio_size(ratio: Optional[str]) -> tuple[int, int]:
    w, h = RATIOS.get(ratio or "1:1", RATIOS["1:1"])
    return w // 64, h // 64


def inverse(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return 255 - rgb[0], 255 - rgb[1], 255 - rgb[2]


# --------------------------------------------------------------------------- apps

@dataclass
class App:
    title: str
    template: dict
    mapping: dict  # parameter name -> "node->inputs->field"
    enums: dict = field(default_factory=dict)  # name -> [{"key": str, "value": [{path: value}, ...]}]
    seeds: list = field(default_factory=list)  # paths set to a random seed per sub-task
    outputs: dict = field(default_factory=dict)  # node id -> "output" | "temp"
    render: str = "solid"  # solid | echo | pair | animated
    run_s: Optional[float] = None  # per-app attempt duration (None = the fake's run_s)
    workspace: str = "nextGPU"
    image_params: tuple = ()  # parameters the node downloads (URLs)


def _t2i_template(save_nodes: tuple = ("9",)) -> dict:
    g = {
        "3": {"_meta": {"title": "K采样器"}, "class_type": "KSampler",
              "inputs": {"cfg": 1, "denoise": 1, "latent_image": ["5", 0], "model": ["4", 0],
                         "negative": ["7", 0], "positive": ["6", 0], "sampler_name": "euler",
                         "scheduler": "simple", "seed": 0, "steps": 20}},
        "4": {"_meta": {"title": "Checkpoint加载器"}, "class_type": "CheckpointLoaderSimple",
              "inputs": {"ckpt_name": "flux1-dev-fp8.safetensors"}},
        "5": {"_meta": {"title": "空Latent图像"}, "class_type": "EmptyLatentImage",
              "inputs": {"batch_size": 1, "height": 1024, "width": 1024}},
        "6": {"_meta": {"title": "CLIP文本编码"}, "class_type": "CLIPTextEncode",
              "inputs": {"clip": ["4", 1], "text": "a beautiful landscape"}},
        "7": {"_meta": {"title": "CLIP文本编码"}, "class_type": "CLIPTextEncode",
              "inputs": {"clip": ["4", 1], "text": ""}},
        "8": {"_meta": {"title": "VAE解码"}, "class_type": "VAEDecode",
              "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    }
    for n in save_nodes:
        g[n] = {"_meta": {"title": "保存图像"}, "class_type": "SaveImage",
                "inputs": {"filename_prefix": "nextGPU", "images": ["8", 0]}}
    return g


RATIO_ENUM = [{"key": k, "value": [{"5->inputs->width": w}, {"5->inputs->height": h}]}
              for k, (w, h) in RATIOS.items()]

# The SEED's background-removal graph (getTask example), with the input URL as template default.
ECHO_TEMPLATE = {
    "3": {"_meta": {"title": "加载图像"}, "class_type": "LoadImage",
          "inputs": {"image": "https://www.nextgpu.net/images/1.jpg"}},
    "30": {"_meta": {"title": "保存图像"}, "class_type": "SaveImage",
           "inputs": {"filename_prefix": "a", "images": ["39", 0]}},
    "39": {"_meta": {"title": "Inspyrenet Rembg"}, "class_type": "InspyrenetRembg",
           "inputs": {"image": ["3", 0], "torchscript_jit": "default"}},
    "42": {"_meta": {"title": "预览图像"}, "class_type": "PreviewImage", "inputs": {"images": ["44", 0]}},
    "44": {"_meta": {"title": "遮罩转换为图像"}, "class_type": "MaskToImage", "inputs": {"mask": ["39", 1]}},
}


def t2i_app(title: str = T2I_TITLE, run_s: Optional[float] = None) -> App:
    return App(title, _t2i_template(), {"promptText": "6->inputs->text"}, {"imageRatio": RATIO_ENUM},
               ["3->inputs->seed"], {"9": "output"}, "solid", run_s)


def echo_app(title: str = ECHO_TITLE) -> App:
    return App(title, copy.deepcopy(ECHO_TEMPLATE), {"imageName": "3->inputs->image"}, {}, [],
               {"30": "output", "42": "temp"}, "echo", image_params=("imageName",))


def pair_app(title: str = PAIR_TITLE) -> App:
    return App(title, _t2i_template(("9", "10")), {"promptText": "6->inputs->text"}, {"imageRatio": RATIO_ENUM},
               ["3->inputs->seed"], {"9": "output", "10": "output"}, "pair")


def animated_app(title: str = ANIMATED_TITLE) -> App:
    g = _t2i_template(())
    g["9"] = {"_meta": {"title": "保存动画WEBP"}, "class_type": "SaveAnimatedWEBP",
              "inputs": {"filename_prefix": "nextGPU", "fps": 6.0, "lossless": True, "quality": 80,
                         "method": "default", "images": ["8", 0]}}
    g["10"] = {"_meta": {"title": "合并为视频"}, "class_type": "VHS_VideoCombine",
               "inputs": {"images": ["8", 0], "frame_rate": 8, "format": "video/h264-mp4",
                          "filename_prefix": "nextGPU", "save_output": True}}
    return App(title, g, {"promptText": "6->inputs->text"}, {}, ["3->inputs->seed"],
               {"9": "output", "10": "gifs"}, "animated")


def animated_webp() -> bytes:
    from .. import media_samples as ms

    return ms.animated_webp().data


def default_apps(slow_run_s: float) -> dict[str, App]:
    apps = [t2i_app(), echo_app(), pair_app(), t2i_app(SLOW_TITLE, run_s=slow_run_s), animated_app()]
    return {a.title: a for a in apps}


class BindError(Exception):
    """A binding path that does not exist in the template → ``taskPublish Failed``."""


class EnumPanic(Exception):
    """A non-string enum value: the SRC handler panics → HTTP 500, empty body."""


def _set_path(graph: dict, path: str, value: Any) -> None:
    parts = path.split("->")
    if len(parts) != 3 or parts[0] not in graph or parts[1] not in graph[parts[0]]:
        raise BindError(path)
    graph[parts[0]][parts[1]][parts[2]] = value


def _get_path(graph: dict, path: str) -> Any:
    node, sect, fld = path.split("->")
    return graph[node][sect].get(fld)


def bind(app: App, parameters: dict) -> dict:
    """The graph after the parameters were applied (SRC rules: enum keys first, then mapping,
    names matched case-insensitively, unknown names silently ignored)."""
    g = copy.deepcopy(app.template)
    enums = {k.lower(): v for k, v in app.enums.items()}
    mapping = {k.lower(): v for k, v in app.mapping.items()}
    for name, value in parameters.items():
        key = str(name).lower()
        if key in enums:
            if not isinstance(value, str):
                raise EnumPanic(name)
            for entry in enums[key]:
                if entry["key"] == value:
                    for pair in entry["value"]:
                        for path, v in pair.items():
                            _set_path(g, path, v)
        elif key in mapping:
            _set_path(g, mapping[key], value)
    return g


def param_value(app: App, graph: dict, name: str) -> Any:
    path = app.mapping.get(name)
    return _get_path(graph, path) if path else None


def with_seed(app: App, graph: dict, seed: int) -> dict:
    g = copy.deepcopy(graph)
    for path in app.seeds:
        _set_path(g, path, seed)
    return g


def history_json(prompt_id: str, number: int, graph_ran: dict, client_id: str, app: App,
                 saved: dict, start_ms: int, end_ms: int) -> str:
    """``subTasks[].output``: the node's ComfyUI /history entry, Python json.dumps style
    (", " / ": " separators, non-ASCII escaped). ``saved`` = {node id: [file names]}."""
    outputs: dict = {}
    for node, kind in app.outputs.items():
        if kind == "gifs":  # VHS_VideoCombine's own list (never delivered by the node client)
            outputs[node] = {"gifs": [{"filename": "nextGPU_00001.mp4", "subfolder": "", "type": "output",
                                       "format": "video/h264-mp4", "frame_rate": 8.0}]}
            continue
        names = saved.get(node) or [f"ComfyUI_temp_ogpuh_{1:05d}_.png"]
        outputs[node] = {"images": [{"filename": n, "subfolder": "", "type": kind} for n in names]}
        if names[0].endswith(".webp") and kind == "output":
            outputs[node]["animated"] = [True]
    entry = {
        "prompt": [number, prompt_id, graph_ran, {"client_id": client_id}, list(app.outputs)],
        "outputs": outputs,
        "status": {"status_str": "success", "completed": True, "messages": [
            ["execution_start", {"prompt_id": prompt_id, "timestamp": start_ms}],
            ["execution_cached", {"nodes": [], "prompt_id": prompt_id, "timestamp": start_ms + 36}],
            ["execution_success", {"prompt_id": prompt_id, "timestamp": end_ms}]]},
        "meta": {n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n}
                 for n in app.outputs},
    }
    return json.dumps({prompt_id: entry})
