"""Real media made in the tests (PyAV, Pillow, numpy; nothing downloaded), the same bytes every call.

Each maker returns a ``Sample``: the file's bytes, its name and MIME type, and what it holds: frame
count, size, fps for pictures; sample rate, channels and sample count for sound; for lossless formats
the exact content (``frames`` uint8 ``[N,H,W,3]`` or ``[N,H,W,4]``; ``samples`` float32 ``[C,S]``), so a
test can compare what came back with what the remote wrote. For lossy formats ``frames``/``samples``
hold what was *encoded* (compare within a codec tolerance) and ``lossless`` is False.

Used by the fakes of every provider and by the unit/e2e tests; production code never imports it.
"""
from __future__ import annotations

import functools
import io
import json
import struct
from dataclasses import dataclass, field
from typing import Optional

import av
import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Sample:
    data: bytes
    name: str
    mime: str
    kind: str  # image | video | audio | text | file
    lossless: bool = False
    # pictures
    frame_count: int = 0
    width: int = 0
    height: int = 0
    fps: float = 0.0
    frames: Optional[np.ndarray] = field(default=None, repr=False)  # uint8 [N,H,W,3|4]
    # sound (a video's track too)
    sample_rate: int = 0
    channels: int = 0
    sample_count: int = 0
    samples: Optional[np.ndarray] = field(default=None, repr=False)  # float32 [C,S] as encoded
    has_audio: bool = False
    # text / file
    text: str = ""

    @property
    def duration_s(self) -> float:
        if self.frame_count and self.fps:
            return self.frame_count / self.fps
        return self.sample_count / self.sample_rate if self.sample_rate else 0.0


def frames_rgb(n: int = 8, width: int = 64, height: int = 48, alpha: bool = False) -> np.ndarray:
    """``n`` smooth, distinct frames (a gradient whose brightness and a square's place change per
    frame) that survive lossy codecs well: frame ``i``'s mean differs clearly from frame ``i+1``'s."""
    y, x = np.mgrid[0:height, 0:width]
    out = np.empty((n, height, width, 4 if alpha else 3), np.uint8)
    for i in range(n):
        base = 30 + (i * 180) // max(n - 1, 1)
        r = (base + x * 40 // max(width - 1, 1)) % 256
        g = (base // 2 + y * 60 // max(height - 1, 1)) % 256
        b = np.full_like(x, 255 - base)
        out[i, ..., 0], out[i, ..., 1], out[i, ..., 2] = r, g, b
        s = max(4, min(width, height) // 4)
        ox = (i * 5) % max(width - s, 1)
        out[i, 4:4 + s, ox:ox + s, :3] = (250, 250, 250)
        if alpha:
            out[i, ..., 3] = 255
            out[i, :height // 4, :width // 4, 3] = (i * 37) % 256
    return out


def tone(seconds: float = 0.5, rate: int = 44100, channels: int = 2, quantize: bool = True) -> np.ndarray:
    """float32 ``[C,S]``: a different sine per channel; on the int16 grid when ``quantize`` (so a
    16-bit lossless file holds exactly these values)."""
    t = np.arange(int(round(seconds * rate))) / rate
    wave = np.stack([0.5 * np.sin(2 * np.pi * (440 + 220 * c) * t) for c in range(channels)]).astype(np.float32)
    if quantize:
        wave = (np.round(wave * 32767) / 32768).astype(np.float32)
    return wave


def _int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.round(samples * 32768), -32768, 32767).astype(np.int16)


def _encode_video(fmt: str, codec: str, frames: np.ndarray, fps: int, pix_fmt: str,
                  audio: Optional[np.ndarray], rate: int, options: dict) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt, options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        stream.options = dict(options)
        stream.thread_count = 1
        astream = None
        if audio is not None:
            astream = out.add_stream("aac", rate=rate, layout="stereo" if audio.shape[0] == 2 else "mono")
            astream.thread_count = 1
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[..., :3]), format="rgb24")
            vf.pts = i
            for p in stream.encode(vf):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)
        if astream is not None:
            step = 1024
            for start in range(0, audio.shape[1], step):
                chunk = np.ascontiguousarray(audio[:, start:start + step])
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=astream.layout.name)
                af.sample_rate, af.pts = rate, start
                for p in astream.encode(af):
                    out.mux(p)
            for p in astream.encode():
                out.mux(p)
    return buf.getvalue()


@functools.lru_cache(maxsize=None)
def mp4(n: int = 8, width: int = 64, height: int = 48, fps: int = 8, sound: bool = False) -> Sample:
    """H.264 in MP4 (yuv420p, so lossy); with ``sound`` an AAC stereo 44.1 kHz track of the video's length
    (a decoder gives back a little more: AAC's priming/padding, up to a frame of 1024 samples each end)."""
    frames = frames_rgb(n, width, height)
    rate = 44100
    audio = tone(n / fps, rate, 2, quantize=False) if sound else None
    data = _encode_video("mp4", "libx264", frames, fps, "yuv420p", audio, rate,
                         {"crf": "12", "preset": "veryfast", "tune": "zerolatency"})
    return Sample(data, "clip_sound.mp4" if sound else "clip.mp4", "video/mp4", "video", False, n, width, height,
                  float(fps), frames, rate if sound else 0, 2 if sound else 0,
                  audio.shape[1] if sound else 0, audio, sound)


@functools.lru_cache(maxsize=None)
def webm(n: int = 6, width: int = 64, height: int = 48, fps: int = 12, codec: str = "libvpx-vp9") -> Sample:
    """VP9 (or ``libvpx`` VP8) in WebM, no sound."""
    frames = frames_rgb(n, width, height)
    data = _encode_video("webm", codec, frames, fps, "yuv420p", None, 0, {"crf": "10", "b:v": "0", "deadline": "good",
                                                                          "cpu-used": "4"})
    return Sample(data, "clip.webm", "video/webm", "video", False, n, width, height, float(fps), frames)


@functools.lru_cache(maxsize=None)
def animated_webp(n: int = 4, width: int = 32, height: int = 24, fps: int = 6, lossless: bool = True) -> Sample:
    """An animated WebP of ``n`` frames (Pillow); lossless by default so ``frames`` are exact (RGB)."""
    frames = frames_rgb(n, width, height)
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, "WEBP", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0,
                   lossless=lossless, quality=100, method=0)
    return Sample(buf.getvalue(), "anim.webp", "image/webp", "image", lossless, n, width, height, float(fps), frames)


@functools.lru_cache(maxsize=None)
def animated_png(n: int = 3, width: int = 16, height: int = 12, fps: int = 5) -> Sample:
    """An APNG of ``n`` RGB frames (Pillow), lossless."""
    frames = frames_rgb(n, width, height)
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, "PNG", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return Sample(buf.getvalue(), "anim.png", "image/png", "image", True, n, width, height, float(fps), frames)


def _encode_audio(fmt: str, codec: str, samples: np.ndarray, rate: int, sample_fmt: str) -> bytes:
    buf = io.BytesIO()
    layout = "stereo" if samples.shape[0] == 2 else "mono"
    with av.open(buf, "w", format=fmt, options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        stream.format = sample_fmt
        stream.thread_count = 1
        planar = sample_fmt.endswith("p")
        step = 1152 if codec in ("libmp3lame", "mp3") else 4096
        for start in range(0, samples.shape[1], step):
            chunk = samples[:, start:start + step]
            if sample_fmt.startswith("s16"):
                chunk = _int16(chunk)
            arr = np.ascontiguousarray(chunk if planar else chunk.T.reshape(1, -1))
            af = av.AudioFrame.from_ndarray(arr, format=sample_fmt, layout=layout)
            af.sample_rate, af.pts = rate, start
            for p in stream.encode(af):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)
    return buf.getvalue()


def _audio_sample(data: bytes, name: str, mime: str, lossless: bool, samples: np.ndarray, rate: int) -> Sample:
    return Sample(data, name, mime, "audio", lossless, sample_rate=rate, channels=samples.shape[0],
                  sample_count=samples.shape[1], samples=samples, has_audio=True)


@functools.lru_cache(maxsize=None)
def flac(seconds: float = 0.5, rate: int = 44100, channels: int = 2) -> Sample:
    """16-bit FLAC: ``samples`` are exactly what a decoder gives back."""
    s = tone(seconds, rate, channels)
    return _audio_sample(_encode_audio("flac", "flac", s, rate, "s16"), "sound.flac", "audio/flac", True, s, rate)


@functools.lru_cache(maxsize=None)
def wav(seconds: float = 0.25, rate: int = 22050, channels: int = 1) -> Sample:
    """16-bit PCM WAV: ``samples`` are exact."""
    s = tone(seconds, rate, channels)
    return _audio_sample(_encode_audio("wav", "pcm_s16le", s, rate, "s16"), "sound.wav", "audio/wav", True, s, rate)


@functools.lru_cache(maxsize=None)
def mp3(seconds: float = 0.5, rate: int = 44100, channels: int = 2) -> Sample:
    """MP3 (LAME), lossy: ``samples`` are what was encoded; the decoded length may carry codec padding."""
    s = tone(seconds, rate, channels)
    return _audio_sample(_encode_audio("mp3", "libmp3lame", s, rate, "fltp"), "sound.mp3", "audio/mpeg", False,
                         s, rate)


@functools.lru_cache(maxsize=None)
def glb() -> Sample:
    """A minimal binary glTF 2.0 (12-byte header + one JSON chunk, padded to 4 bytes)."""
    doc = {"asset": {"version": "2.0", "generator": "comfyui_remote tests"}, "scenes": [{"nodes": []}], "scene": 0}
    chunk = json.dumps(doc, separators=(",", ":")).encode()
    chunk += b" " * (-len(chunk) % 4)
    body = struct.pack("<II", len(chunk), 0x4E4F534A) + chunk
    data = struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body
    return Sample(data, "mesh.glb", "model/gltf-binary", "file", True)


def text(content: str = "a cat on a mat\nsecond line ✓") -> Sample:
    data = content.encode()
    return Sample(data, "caption.txt", "text/plain", "text", True, text=content)


def decode_video_rgb(data: bytes) -> np.ndarray:
    """Every frame of a video file as uint8 ``[N,H,W,3]`` (a reference decode for the tests)."""
    with av.open(io.BytesIO(data)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    """A sound file as float32 ``[C,S]`` and its rate (a reference decode for the tests)."""
    with av.open(io.BytesIO(data)) as c:
        s = c.streams.audio[0]
        parts = [f.to_ndarray() for f in c.decode(s)]
        fmt, rate = s.codec_context.format, s.rate
    arr = np.concatenate([p if fmt.is_planar else p.reshape(-1, s.channels).T for p in parts], axis=1)
    if arr.dtype == np.int16:
        arr = arr.astype(np.float32) / 32768
    return arr.astype(np.float32), rate
