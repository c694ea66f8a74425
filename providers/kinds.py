"""What kind of output a file is (design §2): image, video, audio, text or file.

Every provider maps its own output shapes to these kinds; where the service says nothing better,
the file name's extension (or else the MIME type) decides. A GIF is a video (ComfyUI's ``gifs``
outputs); an animated WebP/PNG is known as such only from the service's own flag (ComfyUI's
``animated``), so by name it is an image.
"""
from __future__ import annotations

import mimetypes
from typing import Optional

EXTENSIONS = {
    "image": frozenset({"png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "avif", "heic"}),
    "video": frozenset({"mp4", "webm", "mov", "mkv", "gif", "avi", "m4v"}),
    "audio": frozenset({"flac", "wav", "mp3", "ogg", "opus", "m4a", "aac"}),
    "text": frozenset({"txt", "md"}),
}
KINDS = ("image", "video", "audio", "text", "file")
# the types this pack's files go up and are served with, whatever the machine's mime.types says
MIMES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif",
         "mp4": "video/mp4", "webm": "video/webm", "mov": "video/quicktime", "mkv": "video/x-matroska",
         "flac": "audio/flac", "wav": "audio/wav", "mp3": "audio/mpeg", "ogg": "audio/ogg", "opus": "audio/opus",
         "m4a": "audio/mp4", "txt": "text/plain", "json": "application/json", "glb": "model/gltf-binary",
         "zip": "application/zip"}


def extension(name: Optional[str]) -> str:
    """``clip.MP4?x=1`` → ``mp4``; "" when there is none."""
    base = (name if isinstance(name, str) else "").split("?", 1)[0].split("#", 1)[0].rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[-1].lower() if "." in base else ""


def kind_of(name: Optional[str] = None, mime: Optional[str] = None) -> str:
    """The kind of a file from its name, else its MIME type; ``file`` when neither tells."""
    ext = extension(name)
    mime = mime if isinstance(mime, str) else None
    for kind, exts in EXTENSIONS.items():
        if ext in exts:
            return kind
    major = (mime or "").split("/", 1)[0].lower()
    if major in ("image", "video", "audio"):
        return "video" if (mime or "").lower() == "image/gif" else major
    if (mime or "").lower().startswith("text/plain"):
        return "text"
    return "file"


def mime_of(name: Optional[str], kind: str = "file") -> str:
    """A MIME type for a file name (``application/octet-stream`` when unknown)."""
    ext = extension(name)
    guessed = MIMES.get(ext) or (mimetypes.guess_type("x." + ext)[0] if ext else None)
    if guessed:
        return guessed
    return {"audio": "audio/flac", "video": "video/mp4", "image": "image/png", "text": "text/plain"}.get(
        kind, "application/octet-stream")
