"""Video, audio, text and 3D in the RunningHub fake: the media nodes it runs, the built-in media
workflows and the AI App a video example uses, and what each save node writes — real files from
:mod:`tests.media_samples` (deterministic bytes), or the uploaded file itself when a save node is
fed directly by its loader (the upload round trip, byte for byte).

RunningHub lists every saved file as ``{fileUrl, fileType}`` with ``fileType`` the extension
(facts §3.5: video mp4/webm/mov/avi, audio wav/mp3/flac/ogg, other txt/latent); a text node's
output is a ``.txt`` file. Loaders take an uploaded ``fileName`` in ``video``/``audio`` (facts §4).
"""
from __future__ import annotations

from typing import Any, Callable

from .. import media_samples as ms

LOADERS = {"LoadVideo": "video", "LoadAudio": "audio"}  # class → the field holding the file name
# save class → (the input it saves, what it writes when not fed by a loader)
SAVES: dict[str, tuple[str, Callable[[dict, str], tuple[str, bytes]]]] = {
    "SaveVideo": ("video", lambda g, src: ("mp4", ms.mp4(sound=bool(_inputs(g, src).get("with_audio"))).data)),
    "SaveAudio": ("audio", lambda g, src: ("flac", ms.flac().data)),
    "SaveText|pysssss": ("text", lambda g, src: ("txt", _text(g, src).encode())),
    "SaveGLB": ("mesh", lambda g, src: ("glb", ms.glb().data)),
}
GENERATORS = {"RH_WanVideo", "RH_Hunyuan3D"}  # a video model (optionally with sound) and a 3D model
NODE_TYPES = set(LOADERS) | set(SAVES) | GENERATORS
CTYPES = {"mp4": "video/mp4", "webm": "video/webm", "mov": "video/quicktime", "mkv": "video/x-matroska",
          "avi": "video/x-msvideo", "flac": "audio/flac", "wav": "audio/wav", "mp3": "audio/mpeg",
          "txt": "text/plain", "glb": "model/gltf-binary", "png": "image/png", "jpg": "image/jpeg",
          "jpeg": "image/jpeg", "webp": "image/webp", "zip": "application/zip"}
# what the resource upload takes [facts §3.9 "Accepted types"]; anything else is refused
UPLOAD_TYPES = {"png": "image", "jpg": "image", "jpeg": "image", "webp": "image", "zip": "file",
                "mp3": "audio", "wav": "audio", "flac": "audio", "mp4": "video", "avi": "video", "mov": "video",
                "mkv": "video"}

EXAMPLE_VIDEO, EXAMPLE_AUDIO = "example.mp4", "example.flac"
WF_MEDIA = "1979026379880697870"  # a video with sound, a silent one, audio, a caption (.txt) and a .glb
WF_MEDIA_ECHO = "1979026379880697871"  # LoadVideo → SaveVideo, LoadAudio → SaveAudio (inputs come back)
APP_VIDEO = "1958345023645872130"  # an AI App: Wan 2.2 text-to-video with sound, and its caption
CAPTION = "a red fox runs across fresh snow at dawn"


def _node(cls: str, title: str, **inputs: Any) -> dict:
    return {"class_type": cls, "inputs": inputs, "_meta": {"title": title}}


def _inputs(graph: dict, nid: str) -> dict:
    return graph.get(nid, {}).get("inputs") or {}


def _text(graph: dict, nid: str) -> str:
    """The string a text input carries: the value itself, or what the linked node's prompt/text holds."""
    node = graph.get(nid, {})
    ins = node.get("inputs") or {}
    for f in ("text", "prompt"):
        v = ins.get(f)
        if isinstance(v, str):
            return v
        if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str):
            return _text(graph, v[0])
    return ""


def builtin_files() -> dict[str, bytes]:
    return {EXAMPLE_VIDEO: ms.mp4().data, EXAMPLE_AUDIO: ms.flac().data}


def render(graph: dict, nid: str, files: dict[str, bytes]) -> list[tuple[str, bytes]]:
    """[(extension, bytes)] a media save node writes, or [] when ``nid`` is not one."""
    node = graph[nid]
    if node["class_type"] not in SAVES:
        return []
    field, make = SAVES[node["class_type"]]
    src = _inputs(graph, nid).get(field)
    if isinstance(src, list) and len(src) == 2 and isinstance(src[0], str):
        up = graph.get(src[0], {})
        if up.get("class_type") in LOADERS:  # the round trip: the stored upload, byte for byte
            name = str((up.get("inputs") or {}).get(LOADERS[up["class_type"]]))
            return [(name.rsplit(".", 1)[-1].lower(), files[name])]
        return [make(graph, src[0])]
    return [make(graph, nid)]


def missing_file(node: dict, files: dict[str, bytes]) -> str:
    """The invalid-file detail ComfyUI's validation gives for a loader whose file does not exist, or ""."""
    field = LOADERS.get(node.get("class_type"))
    value = (node.get("inputs") or {}).get(field) if field else None
    if field and not isinstance(value, list) and value not in files:
        return f"{field} - Invalid {field} file: {value}"
    return ""


WORKFLOWS: dict[str, dict] = {
    WF_MEDIA: {"name": "video, audio, text and 3D", "graph": {
        "3": _node("RH_WanVideo", "Wan 2.2 (sound)", prompt=CAPTION, frames=8, with_audio=True),
        "4": _node("SaveVideo", "Save Video", filename_prefix="wan", video=["3", 0]),
        "5": _node("RH_WanVideo", "Wan 2.2 (silent)", prompt=CAPTION, frames=8, with_audio=False),
        "6": _node("SaveVideo", "Save Video", filename_prefix="silent", video=["5", 0]),
        "7": _node("SaveAudio", "Save Audio", filename_prefix="audio", audio=["3", 0]),
        "8": _node("SaveText|pysssss", "Save Text", file="caption.txt", text=["3", 0]),
        "9": _node("RH_Hunyuan3D", "Hunyuan3D", prompt="a small teapot"),
        "10": _node("SaveGLB", "Save GLB", filename_prefix="mesh", mesh=["9", 0]),
    }},
    WF_MEDIA_ECHO: {"name": "echo a video and an audio input", "graph": {
        "1": _node("LoadVideo", "Load Video", video=EXAMPLE_VIDEO),
        "2": _node("SaveVideo", "Save Video", filename_prefix="echo", video=["1", 0]),
        "3": _node("LoadAudio", "Load Audio", audio=EXAMPLE_AUDIO),
        "4": _node("SaveAudio", "Save Audio", filename_prefix="echo", audio=["3", 0]),
    }},
}
_APP_GRAPH = {
    "52": _node("RH_Translator", "Translator", prompt=CAPTION),
    "3": _node("RH_WanVideo", "Wan 2.2", prompt=["52", 0], frames=8, with_audio=True),
    "4": _node("SaveVideo", "Save Video", filename_prefix="wan", video=["3", 0]),
    "8": _node("SaveText|pysssss", "Save Text", file="caption.txt", text=["52", 0]),
}
APPS: dict[str, dict] = {APP_VIDEO: {"name": "Wan2.2 文生视频 (text to video with sound)", "graph": _APP_GRAPH,
                                     "fields": [
    {"nodeId": "52", "nodeName": "RH_Translator", "fieldName": "prompt", "fieldValue": CAPTION,
     "fieldData": "[\"STRING\", {\"default\": \"\", \"multiline\": true}]", "fieldType": "STRING",
     "description": "提示词", "descriptionEn": "Prompt"},
    {"nodeId": "3", "nodeName": "RH_WanVideo", "fieldName": "with_audio", "fieldValue": "true",
     "fieldData": "[\"BOOLEAN\", {\"default\": true}]", "fieldType": "BOOLEAN",
     "description": "生成音频", "descriptionEn": "Generate sound"},
]}}
