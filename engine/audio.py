"""AUDIO ↔ sound files with PyAV (numpy only; nodes convert to torch).

- Down: float32 ``[C,S]`` at the file's own sample rate and channel count; integer PCM is scaled as
  ComfyUI's own LoadAudio scales it (int16 / 2^15, int32 / 2^31), so a 16-bit FLAC that a remote
  SaveAudio wrote comes back exactly.
- Up: lossless FLAC, 24-bit: a waveform that came from a 16- or 24-bit file goes up bit for bit.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Optional, Union

import av
import numpy as np

from ..providers.base import RejectedInput

FLAC_BITS = 24
FLAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _to_float(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.int16:
        return arr.astype(np.float32) / np.float32(2 ** 15)
    if arr.dtype == np.int32:
        return (arr.astype(np.float64) / 2 ** 31).astype(np.float32)
    if arr.dtype == np.uint8:
        return (arr.astype(np.float32) - 128) / np.float32(128)
    return arr.astype(np.float32, copy=False)


def decode(source: Union[str, Path, bytes], *, name: str = "") -> tuple[np.ndarray, int]:
    """A sound file (or a video's first sound track) → float32 ``[C,S]`` and its sample rate."""
    src = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        with av.open(src) as c:
            if not c.streams.audio:
                raise RejectedInput(f"{name or 'the file'} has no sound track", field="result")
            stream = c.streams.audio[0]
            channels = stream.codec_context.channels
            parts = []
            for frame in c.decode(stream):
                arr = frame.to_ndarray()
                if not frame.format.is_planar:
                    arr = arr.reshape(-1, channels).T
                parts.append(_to_float(arr))
            rate = stream.codec_context.sample_rate
    except av.FFmpegError as e:
        raise RejectedInput(f"{name or 'the file'} is not readable sound ({e.__class__.__name__})",
                            field="result") from None
    if not parts:
        return np.zeros((max(channels, 1), 0), np.float32), rate
    return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32), rate


def silent(seconds: float, rate: int = 44100) -> np.ndarray:
    """A silent mono track ``[1,S]`` of ``seconds``."""
    return np.zeros((1, max(0, int(round(seconds * rate)))), np.float32)


def encode_flac(waveform: np.ndarray, rate: int, *, target: str = "") -> bytes:
    """float ``[C,S]`` (or ``[1,C,S]``) at ``rate`` → 24-bit FLAC bytes (mono or stereo; more channels
    as FLAC's own layouts allow)."""
    arr = np.asarray(waveform, dtype=np.float64)
    if arr.ndim == 3:
        if arr.shape[0] != 1:
            raise RejectedInput(f"audio batch of {arr.shape[0]} for target {target!r}: one sound per target",
                                field="audio", hint="split the batch, one RemoteInputAudio per sound")
        arr = arr[0]
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise RejectedInput(f"audio for {target or 'the target'} has shape {tuple(arr.shape)}; expected [1,C,S]",
                            field="audio")
    channels = arr.shape[0]
    layout = FLAC_LAYOUTS.get(channels)
    if layout is None:
        raise RejectedInput(f"audio for {target or 'the target'} has {channels} channels; FLAC takes 1 to 8",
                            field="audio")
    full = 2 ** (FLAC_BITS - 1)
    ints = (np.clip(np.rint(arr * full), -full, full - 1).astype(np.int64) << (32 - FLAC_BITS)).astype(np.int32)
    buf = io.BytesIO()
    with av.open(buf, "w", format="flac") as out:
        stream = out.add_stream("flac", rate=int(rate), layout=layout)
        stream.format = "s32"
        step = 1 << 16
        for start in range(0, ints.shape[1], step):
            chunk = np.ascontiguousarray(ints[:, start:start + step].T.reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(chunk, format="s32", layout=layout)
            frame.sample_rate, frame.pts = int(rate), start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def segment(waveform: np.ndarray, rate: int, start_s: float, end_s: Optional[float]) -> np.ndarray:
    """The part of ``[C,S]`` from ``start_s`` to ``end_s`` (None = to the end)."""
    a = int(round(max(start_s, 0.0) * rate))
    b = None if end_s is None else max(a, int(round(end_s * rate)))
    return np.ascontiguousarray(waveform[:, a:b])
