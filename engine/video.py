"""Video files → frames, sound and frame rate with PyAV (numpy only; nodes convert to torch).

Frames are exactly ``v/255`` of the decoded 8-bit RGB (``rgb24``, as ComfyUI's own video loader
converts). ``frame_load_cap`` / ``skip_first_frames`` / ``select_every_nth`` mean what they mean in
ComfyUI-VideoHelperSuite's Load Video: skip the first frames, then take every nth, at most ``cap``
(0 = all). Memory is bounded: the frames' size (W·H·3·4 bytes each) is checked against the limit
BEFORE anything is decoded; the limit is ``COMFYUI_REMOTE_FRAME_MEMORY_MB`` when set, else 3/4 of
the memory available now.
"""
from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import av
import numpy as np

from ..providers.base import RejectedInput
from . import audio as audio_codec
from .media import from_uint8

LIMIT_ENV = "COMFYUI_REMOTE_FRAME_MEMORY_MB"
BYTES_PER_VALUE = 4  # float32
Source = Union[str, Path, bytes]


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frame_count: int
    has_audio: bool

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps else 0.0


def _open(source: Source):
    return av.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source))


def probe(source: Source, *, name: str = "") -> VideoInfo:
    """Size, frame rate, frame count (from the container, else by counting packets: nothing is
    decoded) and whether there is sound."""
    try:
        with _open(source) as c:
            if not c.streams.video:
                raise RejectedInput(f"{name or 'the file'} has no video track", field="result")
            s = c.streams.video[0]
            rate = s.average_rate or s.guessed_rate or s.base_rate
            fps = float(rate) if rate else 0.0
            count = int(s.frames or 0)
            if count <= 0:
                count = sum(1 for p in c.demux(s) if p.size)
            return VideoInfo(s.codec_context.width, s.codec_context.height, fps, count, bool(c.streams.audio))
    except av.FFmpegError as e:
        raise RejectedInput(f"{name or 'the file'} is not a readable video ({e.__class__.__name__})",
                            field="result") from None


def planned(total: int, cap: int = 0, skip: int = 0, nth: int = 1) -> int:
    """How many frames a load takes from ``total`` (VideoHelperSuite's meaning of the three inputs)."""
    left = max(0, total - max(0, skip))
    n = math.ceil(left / max(1, nth))
    return min(n, cap) if cap and cap > 0 else n


def available_bytes() -> Optional[int]:
    """Memory this process could take now (``MemAvailable``; psutil where there is no /proc)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil  # ComfyUI ships it
        return int(psutil.virtual_memory().available)
    except Exception:
        return None


def frame_limit_bytes() -> Optional[int]:
    env = os.environ.get(LIMIT_ENV, "").strip()
    if env:
        return int(float(env) * 1024 * 1024)
    avail = available_bytes()
    return avail * 3 // 4 if avail is not None else None


def check_fits(info: VideoInfo, n: int, limit: Optional[int], *, name: str = "") -> None:
    """Refuse, before decoding, frames that would not fit in ``limit`` bytes."""
    each = info.width * info.height * 3 * BYTES_PER_VALUE
    need = each * n
    if limit is None or need <= limit:
        return
    fits = max(0, limit // max(each, 1))
    raise RejectedInput(
        f"{name or 'the video'} would need {need / 2**20:.0f} MB for {n} frames of {info.width}x{info.height} "
        f"but {limit / 2**20:.0f} MB are available", field="frame_load_cap",
        hint=f"set frame_load_cap to at most {fits} (or raise select_every_nth / skip_first_frames); "
             f"{LIMIT_ENV} sets the limit")


def decode_frames(source: Source, info: VideoInfo, *, cap: int = 0, skip: int = 0, nth: int = 1,
                  limit: Optional[int] = None, name: str = "") -> np.ndarray:
    """The selected frames as float32 ``[N,H,W,3]``, exactly ``v/255`` of the decoded rgb24."""
    n = planned(info.frame_count, cap, skip, nth)
    check_fits(info, n, limit, name=name)
    if n == 0:
        raise RejectedInput(f"{name or 'the video'} has {info.frame_count} frames: none left after "
                            f"skip_first_frames={skip}", field="skip_first_frames")
    out = np.empty((n, info.height, info.width, 3), np.float32)
    k = 0
    skip, nth = max(0, skip), max(1, nth)
    with _open(source) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i < skip or (i - skip) % nth:
                continue
            rgb = frame.to_ndarray(format="rgb24")
            if rgb.shape != out.shape[1:]:
                raise RejectedInput(f"{name or 'the video'} changes size mid-stream ({rgb.shape[1]}x{rgb.shape[0]} "
                                    f"after {info.width}x{info.height})", field="result")
            out[k] = from_uint8(rgb)
            k += 1
            if k == n:
                break
    return out[:k]


def sound(source: Source, info: VideoInfo, *, skip: int = 0, nth: int = 1, frames: Optional[int] = None,
          name: str = "") -> tuple[np.ndarray, int]:
    """The video's sound ``[C,S]`` and rate for the span of the loaded frames (all of it when nothing is
    skipped or capped); a silent mono track of that length when the file has none."""
    fps = info.fps or 1.0
    start = max(0, skip) / fps
    end = None if frames is None else (max(0, skip) + frames * max(1, nth)) / fps
    if not info.has_audio:
        return audio_codec.silent((end if end is not None else info.duration_s) - start), 44100
    wave, rate = audio_codec.decode(source if isinstance(source, (bytes, bytearray)) else str(source), name=name)
    return audio_codec.segment(wave, rate, start, end), rate


def capped(total: int, cap: int, skip: int, nth: int) -> Optional[int]:
    """The loaded frame count when the load is a part of the video, else None (= to the end)."""
    n = planned(total, cap, skip, nth)
    return n if (cap and n < planned(total, 0, skip, nth)) else None
