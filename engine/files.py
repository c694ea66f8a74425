"""Small file operations the transfer and download code share (all blocking: call them through
``asyncio.to_thread`` from the engine's loop)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

BLOCK = 1 << 20


def size_or_zero(p: Path) -> int:
    """The file's size; 0 when it does not exist."""
    try:
        return p.stat().st_size
    except FileNotFoundError:
        return 0


def unlink_quietly(p: Path) -> None:
    """Delete the file if it is there."""
    try:
        p.unlink()
    except FileNotFoundError:
        pass


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def replace(src: Path, dst: Path) -> None:
    """Move ``src`` over ``dst`` in one step (a finished download takes its name)."""
    os.replace(src, dst)
