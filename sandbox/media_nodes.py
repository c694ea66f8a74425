"""Media node types of the sandbox server, with ComfyUI 0.3.64's output shapes:

- ``SaveAnimatedWEBP`` (core, ``comfy_extras/nodes_images.py``): ``{"images": [file], "animated": [true]}``;
  pixels as ComfyUI converts them (``clip(255·x)`` truncated), Pillow's WebP writer.
- ``PreviewAny`` (core, ``comfy_extras/nodes_preview_any.py``): ``{"text": [value]}``.
- ``SandboxSaveText`` (sandbox): a text saved as a ``.txt`` file, listed under ``files`` as custom savers do.
- ``SandboxVideo`` (sandbox): the frames as an mp4 (h264, optionally with a sine AAC track), listed as
  ``SaveVideo`` lists its file: ``{"images": [file], "animated": [true]}``.
"""
from __future__ import annotations

import io
import json
from fractions import Fraction
from typing import Any

import numpy as np

from .nodes import SAVE_PREFIX_TOOLTIP, NodeType

WEBP_METHODS = {"default": 4, "fastest": 0, "slowest": 6}


def _to_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.float32(255.0) * images, 0, 255).astype(np.uint8)


def _store(ctx: Any, prefix: str, ext: str, data: bytes) -> dict:
    subfolder, _, base = prefix.rpartition("/")
    counter = ctx.server.next_counter("output", subfolder, base)
    name = f"{base}_{counter:05}_.{ext}"
    ctx.server.files[("output", subfolder, name)] = data
    return {"filename": name, "subfolder": subfolder, "type": "output"}


async def _save_animated_webp(ctx: Any, images: np.ndarray, filename_prefix: str = "ComfyUI", fps: float = 6.0,
                              lossless: bool = True, quality: int = 80, method: str = "default") -> tuple:
    from PIL import Image

    frames = [Image.fromarray(f) for f in _to_uint8(images[..., :3])]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, duration=int(1000.0 / fps), append_images=frames[1:],
                   lossless=lossless, quality=quality, method=WEBP_METHODS.get(method, 4))
    return (), {"images": [_store(ctx, filename_prefix, "webp", buf.getvalue())], "animated": [len(frames) != 1]}


async def _preview_any(ctx: Any, source: Any = None) -> tuple:
    if isinstance(source, str):
        value = source
    elif isinstance(source, (int, float, bool)):
        value = str(source)
    elif source is None:
        value = "None"
    else:
        try:
            value = json.dumps(source)
        except (TypeError, ValueError):
            value = str(source)
    return (), {"text": [value]}


def encode_mp4(frames: np.ndarray, fps: float, sound: bool) -> bytes:
    import av

    buf = io.BytesIO()
    rate = 44100
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(round(fps * 1000), 1000))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "12", "preset": "veryfast"}
        astream = out.add_stream("aac", rate=rate, layout="mono") if sound else None  # every stream before muxing
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            vf.pts = i
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if astream is not None:
            t = np.arange(int(len(frames) / fps * rate)) / rate
            wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            for start in range(0, wave.shape[1], 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, start:start + 1024]), format="fltp",
                                                layout="mono")
                af.sample_rate, af.pts = rate, start
                for packet in astream.encode(af):
                    out.mux(packet)
            for packet in astream.encode():
                out.mux(packet)
    return buf.getvalue()


async def _sandbox_video(ctx: Any, images: np.ndarray, fps: float = 8.0, filename_prefix: str = "video/ComfyUI",
                         sound: bool = False) -> tuple:
    data = encode_mp4(_to_uint8(images[..., :3]), fps, sound)
    return (), {"images": [_store(ctx, filename_prefix, "mp4", data)], "animated": [True]}


async def _sandbox_save_text(ctx: Any, text: str, filename_prefix: str = "text/ComfyUI") -> tuple:
    return (), {"files": [_store(ctx, filename_prefix, "txt", text.encode())]}


TYPES = {t.name: t for t in [
    NodeType("SaveAnimatedWEBP", "SaveAnimatedWEBP", "image/animation", {
        "images": ("IMAGE",),
        "filename_prefix": ("STRING", {"default": "ComfyUI"}),
        "fps": ("FLOAT", {"default": 6.0, "min": 0.01, "max": 1000.0, "step": 0.01}),
        "lossless": ("BOOLEAN", {"default": True}),
        "quality": ("INT", {"default": 80, "min": 0, "max": 100}),
        "method": (list(WEBP_METHODS),),
    }, (), _save_animated_webp, hidden={"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}, output_node=True,
        python_module="comfy_extras.nodes_images"),
    NodeType("PreviewAny", "Preview Any", "utils", {"source": ("*", {})}, (), _preview_any, output_node=True,
             python_module="comfy_extras.nodes_preview_any"),
    NodeType("SandboxVideo", "Sandbox Video", "sandbox", {
        "images": ("IMAGE",),
        "fps": ("FLOAT", {"default": 8.0, "min": 1.0, "max": 120.0, "step": 1.0}),
        "filename_prefix": ("STRING", {"default": "video/ComfyUI", "tooltip": SAVE_PREFIX_TOOLTIP}),
        "sound": ("BOOLEAN", {"default": False}),
    }, (), _sandbox_video, output_node=True, python_module="custom_nodes.sandbox_remote_nodes",
        description="Saves the frames as an mp4 (h264; with sound: a 440 Hz AAC tone), listed like SaveVideo."),
    NodeType("SandboxSaveText", "Sandbox Save Text", "sandbox", {
        "text": ("STRING", {"multiline": True, "default": ""}),
        "filename_prefix": ("STRING", {"default": "text/ComfyUI", "tooltip": SAVE_PREFIX_TOOLTIP}),
    }, (), _sandbox_save_text, output_node=True, python_module="custom_nodes.sandbox_remote_nodes",
        description="Saves the text as a .txt file in the output folder."),
]}
