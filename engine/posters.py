"""A video's poster for the panel: its first frame as a small PNG, decoded with PyAV.

Bounded work and memory whatever the file: the frame is scaled while it is converted to RGB (never a
full-size RGB copy), decoding stops at the first frame or after ``MAX_PACKETS`` packets, and a
stream whose header says its frames are larger than ``MAX_SIDE`` is not decoded at all. Made once per file version and size, like image
thumbnails (``media.thumbnail``); runs on a worker thread (the route calls it with to_thread).
"""
from __future__ import annotations

import functools
import io
import os

MAX_PACKETS = 2000  # a stream that gives no frame within this many packets has no poster
MAX_SIDE = 8192  # larger frames (8K video is 7680 wide) are refused rather than decoded


class NoPoster(ValueError):
    """The file has no decodable video frame."""


def poster(path: str, size: int) -> bytes:
    """A PNG of the first frame, at most ``size`` px on the long side (16..1024)."""
    size = max(16, min(int(size), 1024))
    st = os.stat(path)
    return _poster(path, st.st_mtime_ns, st.st_size, size)


@functools.lru_cache(maxsize=64)  # ≤ 64 small PNGs
def _poster(path: str, _mtime_ns: int, _bytes: int, size: int) -> bytes:
    try:
        import av
    except ImportError as e:  # ComfyUI ships PyAV; a bare test venv may not
        raise NoPoster("PyAV (av) is not installed") from e
    try:
        with av.open(path, metadata_errors="ignore") as container:
            if not container.streams.video:
                raise NoPoster("the file has no video stream")
            stream = container.streams.video[0]
            _check_side(stream.codec_context.width, stream.codec_context.height)
            stream.thread_type = "NONE"  # one frame: no decoder thread pool
            for i, packet in enumerate(container.demux(stream)):
                if i >= MAX_PACKETS:
                    break
                for frame in packet.decode():
                    return _png(frame, size)
    except NoPoster:
        raise
    except Exception as e:  # PyAV raises many types for a corrupt or foreign file
        raise NoPoster(f"the video could not be decoded ({e.__class__.__name__})") from None
    raise NoPoster("the video has no frame")


def _check_side(w: int, h: int) -> None:
    if w > MAX_SIDE or h > MAX_SIDE:
        raise NoPoster(f"the video frame is {w}x{h}, larger than {MAX_SIDE} px on a side")


def _png(frame, size: int) -> bytes:
    w, h = int(frame.width), int(frame.height)
    if w <= 0 or h <= 0:
        raise NoPoster(f"the video frame is {w}x{h}")
    _check_side(w, h)
    scale = min(1.0, size / max(w, h))
    image = frame.to_image(width=max(1, round(w * scale)), height=max(1, round(h * scale)))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
