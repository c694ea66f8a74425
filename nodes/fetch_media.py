"""RemoteFetchVideo, RemoteFetchAudio, RemoteFetchText, RemoteFetchFile, RemoteFetchValue: a result's saved outputs of
one kind → ComfyUI values. The engine chooses and decodes (numpy); here they become torch tensors and
ComfyUI's own VIDEO (``VideoFromFile`` on the saved file, so SaveVideo and previews need no re-encode)."""
from __future__ import annotations

import asyncio

import torch

from ..engine import audio as audio_codec
from ..engine import results, values, video as video_codec
from ..engine.redaction import get_logger
from .remote import CATEGORY

try:
    from comfy_api.input_impl import VideoFromFile
except ImportError:  # an older ComfyUI without a VIDEO type: frames, audio and fps still come
    VideoFromFile = None

log = get_logger("comfyui_remote.fetch")
RESULT = ("REMOTE_RESULT",)


def _select(default: str) -> tuple:
    return ("STRING", {"default": "", "tooltip": f"empty = {default}; a remote node id (9, 12:5); a glob on file "
                                                 f"name or output field (*.mp4); comma-separated = union"})


def _audio(wave, rate: int) -> dict:
    return {"waveform": torch.from_numpy(wave).unsqueeze(0), "sample_rate": int(rate)}


def fetch_video(result, select: str, cap: int, skip: int, nth: int):
    chosen = results.select_outputs(list(result.outputs), select, "video")
    o = chosen[0]
    path = results.saved_path(o)
    name = o.get("filename") or path.name
    if len(chosen) > 1:
        log.info("RemoteFetchVideo: %s (the first of %d videos selected)", name, len(chosen))
    info = video_codec.probe(path, name=name)
    frames = video_codec.decode_frames(path, info, cap=cap, skip=skip, nth=nth,
                                       limit=video_codec.frame_limit_bytes(), name=name)
    part = video_codec.capped(info.frame_count, cap, skip, nth)
    wave, rate = video_codec.sound(path, info, skip=skip, nth=nth, frames=part, name=name)
    video = VideoFromFile(str(path)) if VideoFromFile is not None else None
    if video is None:
        log.warning("RemoteFetchVideo: this ComfyUI has no VIDEO type (comfy_api); the video output is empty")
    fps = info.fps / max(1, nth)
    return video, torch.from_numpy(frames), _audio(wave, rate), float(fps)


def fetch_audio(result, select: str):
    o = results.select_outputs(list(result.outputs), select, "audio")[0]
    path = results.saved_path(o)
    wave, rate = audio_codec.decode(path, name=o.get("filename") or path.name)
    return (_audio(wave, rate),)


class _Fetch:
    CATEGORY = CATEGORY
    FUNCTION = "run"


class RemoteFetchVideo(_Fetch):
    RETURN_TYPES = ("VIDEO", "IMAGE", "AUDIO", "FLOAT")
    RETURN_NAMES = ("video", "frames", "audio", "fps")
    DESCRIPTION = ("A result's video: ComfyUI's VIDEO of the saved file, its frames (exact v/255 of the decoded "
                   "8-bit RGB), its sound (silent when it has none) and the frames' rate.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"result": RESULT},
                "optional": {"select": _select("the first video"),
                             "frame_load_cap": ("INT", {"default": 0, "min": 0, "max": 1 << 24,
                                                        "tooltip": "at most this many frames (0 = all)"}),
                             "skip_first_frames": ("INT", {"default": 0, "min": 0, "max": 1 << 24}),
                             "select_every_nth": ("INT", {"default": 1, "min": 1, "max": 1 << 16})}}

    async def run(self, result, select="", frame_load_cap=0, skip_first_frames=0, select_every_nth=1):
        return await asyncio.to_thread(fetch_video, result, select, frame_load_cap, skip_first_frames,
                                       select_every_nth)


class RemoteFetchAudio(_Fetch):
    RETURN_TYPES = ("AUDIO",)
    RETURN_NAMES = ("audio",)
    DESCRIPTION = "A result's sound as AUDIO at the file's own sample rate and channels."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"result": RESULT}, "optional": {"select": _select("the first sound")}}

    async def run(self, result, select=""):
        return await asyncio.to_thread(fetch_audio, result, select)


class RemoteFetchText(_Fetch):
    RETURN_TYPES = ("STRING", "INT")
    RETURN_NAMES = ("text", "count")
    DESCRIPTION = "A result's texts (ComfyUI text outputs, text fields, .txt files) joined with newlines."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"result": RESULT}, "optional": {"select": _select("every text")}}

    async def run(self, result, select=""):
        texts = await asyncio.to_thread(results.load_texts, results.select_outputs(list(result.outputs), select,
                                                                                   "text"))
        return ("\n".join(texts), len(texts))


class RemoteFetchFile(_Fetch):
    RETURN_TYPES = ("STRING", "INT")
    RETURN_NAMES = ("paths", "count")
    DESCRIPTION = "The absolute local paths of a result's saved files (any kind), one per line."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"result": RESULT}, "optional": {"select": _select("every saved file")}}

    async def run(self, result, select=""):
        chosen = results.select_outputs(list(result.outputs), select, "any")
        paths = [str(results.saved_path(o).resolve()) for o in chosen]
        return ("\n".join(paths), len(paths))




class RemoteFetchValue(_Fetch):
    RETURN_TYPES = ("INT", "FLOAT", "BOOLEAN", "STRING")
    RETURN_NAMES = ("int", "float", "boolean", "text")
    DESCRIPTION = ("A remote INT, FLOAT or BOOLEAN read from the one text select names (a remote PreviewAny of the "
                   "value): int from an integral number, float from any number, boolean from True/False/1/0. "
                   "Only the outputs that are connected must parse.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"result": RESULT}, "optional": {"select": _select("the only text")},
                "hidden": {"unique_id": "UNIQUE_ID", "prompt": "PROMPT"}}

    async def run(self, result, select="", unique_id=None, prompt=None):
        return await asyncio.to_thread(values.fetch_value, list(result.outputs), select,
                                       values.used_outputs(prompt, unique_id))


NODES = {cls.__name__: cls for cls in (RemoteFetchVideo, RemoteFetchAudio, RemoteFetchText, RemoteFetchFile,
                                       RemoteFetchValue)}
DISPLAY = {"RemoteFetchVideo": "Remote Fetch Video", "RemoteFetchAudio": "Remote Fetch Audio",
           "RemoteFetchText": "Remote Fetch Text", "RemoteFetchFile": "Remote Fetch File",
           "RemoteFetchValue": "Remote Fetch Value"}
