"""IMAGE/MASK ↔ image file bytes, as design §2 fixes it (numpy only; nodes convert to torch).

- Up: one image per target, lossless PNG; with a mask, alpha = 1 − mask (the inverse of
  ComfyUI's LoadImage, so LoadImage → RemoteInputImage round-trips exactly).
- Down: IMAGE float32 ``v/255`` of the file's 8-bit values (bit-exact, so a SaveImage of an
  unmodified result reproduces the remote file); MASK = 1 − alpha, zeros without alpha.
"""
from __future__ import annotations

import functools
import hashlib
import io
import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
from PIL import Image, ImageOps, ImageSequence

from ..providers.base import RejectedInput

# Pillow's own limit on pixels per image is left as ComfyUI's process has it (never raised here):
# a larger result is a clear error, not a decompression bomb.


def to_uint8(values: np.ndarray) -> np.ndarray:
    """0..1 floats → uint8 with rounding, so ``v/255`` maps back to exactly ``v``."""
    return np.clip(np.rint(np.asarray(values, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def from_uint8(values: np.ndarray) -> np.ndarray:
    """uint8 → float32 ``v/255`` in one pass (IEEE division: identical to astype-then-divide)."""
    return np.divide(values, np.float32(255.0), dtype=np.float32)


@dataclass(frozen=True)
class EncodedImage:
    data: bytes
    sha256: str  # of the pixels (not of encoder output), for pay-once reuse
    width: int
    height: int
    mime: str = "image/png"


def encode_image(image: np.ndarray, mask: Optional[np.ndarray] = None, *, target: str = "") -> EncodedImage:
    """IMAGE ``[B,H,W,C]`` (B must be 1) and optional MASK ``[B,H,W]``/``[H,W]`` → PNG."""
    arr = np.asarray(image)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4):
        raise RejectedInput(f"image for {target or 'the target'} has shape {tuple(arr.shape)}; expected [B,H,W,3]",
                            field="image")
    if arr.shape[0] != 1:
        raise RejectedInput(f"image batch of {arr.shape[0]} for target {target!r}: one image per target",
                            field="image", hint="pick one image (ImageFromBatch) or add one RemoteInputImage per image")
    rgb = to_uint8(arr[0])
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    rgb = rgb[..., :3]
    h, w = rgb.shape[:2]
    if mask is not None:
        m = np.asarray(mask)
        if m.ndim == 3:
            if m.shape[0] != 1:
                raise RejectedInput(f"mask batch of {m.shape[0]} for target {target!r}: one mask per image",
                                    field="mask")
            m = m[0]
        if m.shape != (h, w):
            raise RejectedInput(f"mask is {m.shape[1]}x{m.shape[0]} but the image is {w}x{h} (target {target!r})",
                                field="mask", hint="resize the mask to the image size")
        alpha = to_uint8(1.0 - np.asarray(m, dtype=np.float64))
        pixels = np.dstack([rgb, alpha])
        pil = Image.fromarray(pixels, "RGBA")
    else:
        pixels = rgb
        pil = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=4)
    digest = hashlib.sha256(f"{pixels.shape}".encode() + pixels.tobytes()).hexdigest()
    return EncodedImage(buf.getvalue(), digest, w, h)


@dataclass
class DecodedImage:
    rgb: np.ndarray  # [H,W,3] float32 v/255
    mask: np.ndarray  # [H,W] float32 1 − alpha (zeros without alpha)
    width: int
    height: int


def decode_image(data: bytes, *, name: str = "") -> DecodedImage:
    """Image file bytes (PNG/JPEG/WebP/…) → float32 RGB and mask. EXIF orientation is applied."""
    try:
        pil = Image.open(io.BytesIO(data))
        pil.load()
    except Image.DecompressionBombError as e:
        raise RejectedInput(f"result {name or 'file'} is too large to decode ({e})", field="result",
                            hint="fetch it with RemoteFetchFile, or make the remote output smaller") from None
    except Exception as e:  # Pillow raises many types for corrupt input
        raise RejectedInput(f"result {name or 'file'} is not a readable image ({e.__class__.__name__})",
                            field="result") from None
    if pil.getexif().get(0x0112, 1) != 1:  # EXIF orientation; transposing copies, so only when needed
        pil = ImageOps.exif_transpose(pil) or pil
    has_alpha = pil.mode in ("RGBA", "LA", "PA") or (pil.mode == "P" and "transparency" in pil.info)
    if pil.mode == "I;16" or pil.mode == "I":
        arr16 = np.asarray(pil, dtype=np.float64)
        scale = 65535.0 if arr16.max() > 255 else 255.0
        u8 = np.clip(np.rint(arr16 / scale * 255.0), 0, 255).astype(np.uint8)
        rgb = np.repeat(u8[..., None], 3, axis=-1)
        alpha = None
    elif has_alpha:
        rgba = np.asarray(pil.convert("RGBA"))
        rgb, alpha = rgba[..., :3], rgba[..., 3]
    else:
        rgb, alpha = np.asarray(pil if pil.mode == "RGB" else pil.convert("RGB")), None
    h, w = rgb.shape[:2]
    mask = (1.0 - from_uint8(alpha)).astype(np.float32) if alpha is not None else np.zeros((h, w), np.float32)
    return DecodedImage(from_uint8(rgb), mask, w, h)


def decode_image_frames(data: bytes, *, name: str = "") -> list[DecodedImage]:
    """Every frame of an image file: one for a still, all of them (as the viewer composes them) for an
    animated WebP/PNG/GIF, so a 4-frame animation is a batch of 4."""
    try:
        pil = Image.open(io.BytesIO(data))
        count = int(getattr(pil, "n_frames", 1) or 1)
    except Exception:
        count = 1
    if count <= 1:
        return [decode_image(data, name=name)]
    frames = []
    for i, frame in enumerate(ImageSequence.Iterator(pil)):
        has_alpha = frame.mode in ("RGBA", "LA", "PA") or (frame.mode == "P" and "transparency" in frame.info)
        rgba = np.asarray(frame.convert("RGBA" if has_alpha else "RGB"))
        h, w = rgba.shape[:2]
        mask = (1.0 - from_uint8(rgba[..., 3])).astype(np.float32) if has_alpha else np.zeros((h, w), np.float32)
        frames.append(DecodedImage(from_uint8(rgba[..., :3]), mask, w, h))
    return frames


def stack_images(images: Sequence[DecodedImage], names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Batch decoded images into IMAGE [B,H,W,3] and MASK [B,H,W]; sizes must agree (never resized)."""
    sizes = {(d.width, d.height) for d in images}
    if len(sizes) > 1:
        listing = ", ".join(f"{n} {d.width}x{d.height}" for n, d in zip(names, images))
        raise RejectedInput(f"the selected images have different sizes: {listing}", field="select",
                            hint="select images of one size (e.g. by node id) or use one fetch node per size")
    return (np.stack([d.rgb for d in images]).astype(np.float32),
            np.stack([d.mask for d in images]).astype(np.float32))


def image_size(data: bytes) -> Optional[tuple[int, int]]:
    try:
        with Image.open(io.BytesIO(data)) as pil:
            return pil.size
    except Exception:
        return None


def image_size_of_file(path: Any) -> Optional[tuple[int, int]]:
    """Width and height from the file's header (the pixels are not decoded)."""
    try:
        with Image.open(path) as pil:
            return pil.size
    except Exception:
        return None


def thumbnail(path: str, size: int) -> bytes:
    """A PNG thumbnail of at most ``size`` px on the long side (for the panel); made once per file
    version and size (the panel asks on every refresh), decoding JPEGs at a reduced size."""
    size = max(16, min(int(size), 1024))
    st = os.stat(path)
    return _thumbnail(path, st.st_mtime_ns, st.st_size, size)


@functools.lru_cache(maxsize=256)
def _thumbnail(path: str, _mtime_ns: int, _bytes: int, size: int) -> bytes:
    with Image.open(path) as pil:
        pil.draft("RGB", (size, size))  # JPEG: decode at 1/2, 1/4 or 1/8 scale directly
        pil = ImageOps.exif_transpose(pil) or pil
        pil.thumbnail((size, size))
        if pil.mode not in ("RGB", "RGBA"):
            pil = pil.convert("RGBA")
        buf = io.BytesIO()
        pil.save(buf, format="PNG")
        return buf.getvalue()
