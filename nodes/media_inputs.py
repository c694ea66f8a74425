"""RemoteInputVideo, RemoteInputAudio, RemoteInputFile: a file override in the REMOTE_INPUTS chain.

- A VIDEO that came from a file (ComfyUI's ``VideoFromFile``: LoadVideo, a fetched video) goes up
  as that file, byte for byte; any other VIDEO (CreateVideo's) is encoded by ComfyUI to mp4/h264.
- AUDIO goes up as lossless 24-bit FLAC (``engine/audio.py``).
- A file of ComfyUI's input folder, named as LoadImage names them (``clip.mp4``, ``sub/x.glb``,
  ``x.png [output]``), keeps its bytes and name.
A file on disk (a loaded video, a file of the input folder other than an image) stays there as a
``LocalFile`` until the upload streams it: its bytes are never held in memory.
The engine uploads each as ``<sha256[:32]>-<name>``, and refuses a kind the provider cannot take
before anything is paid.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import folder_paths

from ..engine import audio as audio_codec
from ..engine.files import file_sha256
from ..providers.base import Override, RejectedInput
from ..providers.kinds import kind_of, mime_of
from ..providers.local_file import LocalFile
from .inputs import CHAIN, TARGET, _RemoteInput, chain

try:  # ComfyUI's own video types (0.3.40+)
    from comfy_api.input_impl import VideoFromFile
    from comfy_api.util import VideoCodec, VideoContainer
except ImportError:  # an older ComfyUI has no VIDEO type; RemoteInputVideo then says so
    VideoFromFile = VideoCodec = VideoContainer = None


def file_override(target: str, kind: str, data: "bytes | LocalFile", name: str) -> Override:
    digest = file_sha256(data.path) if isinstance(data, LocalFile) else hashlib.sha256(data).hexdigest()
    return Override(target.strip(), kind, data, sha256=digest, name=name, mime=mime_of(name, kind))


def video_bytes(video) -> "tuple[bytes | LocalFile, str]":
    """What to upload for a ComfyUI VIDEO, and its name: the file it was loaded from (left on disk),
    else its bytes."""
    if VideoFromFile is None:
        raise RejectedInput("this ComfyUI has no VIDEO type (comfy_api): update ComfyUI to use RemoteInputVideo",
                            field="video")
    if isinstance(video, VideoFromFile):
        src = video.get_stream_source()
        if isinstance(src, (str, os.PathLike)):
            return LocalFile.at(src), Path(src).name
        try:
            fmt = video.get_container_format().split(",")[0]  # e.g. "mov,mp4,m4a,3gp,3g2,mj2" → mov
        except Exception:
            fmt = ""
        ext = {"mov": "mp4", "matroska": "mkv", "": "mp4"}.get(fmt, fmt)
        return src.getvalue(), f"video.{ext}"
    with tempfile.TemporaryDirectory(prefix="comfyui_remote_") as tmp:
        path = os.path.join(tmp, "video.mp4")
        video.save_to(path, format=VideoContainer.MP4, codec=VideoCodec.H264)
        return Path(path).read_bytes(), "video.mp4"


def input_file(name: str) -> Path:
    """A file of ComfyUI's input folder (or ``[output]``/``[temp]``), never outside it."""
    clean = (name or "").strip()
    if not clean:
        raise RejectedInput("no file named: give a file of ComfyUI's input folder (e.g. clip.mp4)", field="file")
    bare, base = folder_paths.annotated_filepath(clean)
    base = os.path.realpath(base or folder_paths.get_input_directory())
    path = os.path.realpath(os.path.join(base, bare))
    if os.path.commonpath([base, path]) != base:
        raise RejectedInput(f"file {clean!r} is outside ComfyUI's folders", field="file")
    if not os.path.isfile(path):
        raise RejectedInput(f"file {clean!r} is not in ComfyUI's input folder ({base})", field="file",
                            hint="upload it (e.g. with LoadImage/LoadAudio's upload) or copy it into the input folder")
    return Path(path)


class RemoteInputVideo(_RemoteInput):
    DESCRIPTION = ("Upload a VIDEO to a file field of the remote workflow: a video loaded from a file goes up as that "
                   "file; any other is encoded to mp4 (h264) first.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"target": TARGET, "video": ("VIDEO",)}, "optional": {"inputs": CHAIN}}

    def build(self, target, video, inputs=None):
        data, name = video_bytes(video)
        return chain(inputs, file_override(target, "video", data, name))


class RemoteInputAudio(_RemoteInput):
    DESCRIPTION = "Upload an AUDIO (lossless 24-bit FLAC) to a file field of the remote workflow."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"target": TARGET, "audio": ("AUDIO",)}, "optional": {"inputs": CHAIN}}

    def build(self, target, audio, inputs=None):
        wave = audio["waveform"]
        wave = wave.detach().cpu().float().numpy() if hasattr(wave, "detach") else wave
        data = audio_codec.encode_flac(wave, int(audio["sample_rate"]), target=target.strip())
        return chain(inputs, file_override(target, "audio", data, "audio.flac"))


class RemoteInputFile(_RemoteInput):
    DESCRIPTION = ("Upload a file of ComfyUI's input folder (any type: video, audio, .glb, .zip…) to a file field of "
                   "the remote workflow, keeping its bytes and name.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"target": TARGET,
                             "file": ("STRING", {"default": "", "tooltip": "a file in ComfyUI's input folder, named as "
                                                                          "LoadImage names them (clip.mp4, sub/a.glb)"})},
                "optional": {"inputs": CHAIN}}

    @classmethod
    def IS_CHANGED(cls, target="", file="", inputs=None):
        try:
            return file_sha256(input_file(file))
        except RejectedInput as e:
            return str(e)

    def build(self, target, file, inputs=None):
        path = input_file(file)
        kind = kind_of(path.name)
        data = path.read_bytes() if kind == "image" else LocalFile.at(path)  # (an image is small; TAMS takes bytes)
        return chain(inputs, file_override(target, "file" if kind == "text" else kind, data, path.name))


NODES = {cls.__name__: cls for cls in (RemoteInputVideo, RemoteInputAudio, RemoteInputFile)}
DISPLAY = {"RemoteInputVideo": "Remote Input (Video)", "RemoteInputAudio": "Remote Input (Audio)",
           "RemoteInputFile": "Remote Input (File)"}
