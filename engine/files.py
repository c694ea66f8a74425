"""Small file operations the transfer and download code share (those that touch the disk block: call
them through ``asyncio.to_thread`` from the engine's loop), and how a byte count is shown."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterator

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


def blocks(path: "str | os.PathLike[str]") -> Iterator[bytes]:
    """The file's bytes a block at a time (a hash of a large file never holds it whole)."""
    with open(path, "rb") as fh:
        yield from iter(lambda: fh.read(BLOCK), b"")


def file_sha256(path: "str | os.PathLike[str]") -> str:
    h = hashlib.sha256()
    for block in blocks(path):
        h.update(block)
    return h.hexdigest()


def replace(src: Path, dst: Path) -> None:
    """Move ``src`` over ``dst`` in one step (a finished download takes its name)."""
    os.replace(src, dst)


def amount(n: int) -> str:
    """A byte count in the unit that reads right for it: "812 bytes", "48.2 KB", "3.4 MB", "1.20 GB"
    (decimal units, as file managers and browsers show downloads)."""
    if n < 1000:
        return f"{n} bytes"
    for unit, scale, digits in (("KB", 1e3, 1), ("MB", 1e6, 1)):
        if n < scale * 999.95:
            return f"{n / scale:.{digits}f} {unit}"
    return f"{n / 1e9:.2f} GB"
