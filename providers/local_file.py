"""A file input that stays on disk until it is sent.

A video, audio file or other file of ComfyUI's input folder goes into the REMOTE_INPUTS chain as a
:class:`LocalFile` — its path, size and modification time — instead of its bytes, so that a 2 GB
video is never held in memory (by the node's output, ComfyUI's cache or the engine): the upload
streams it from disk. Images made from an IMAGE tensor (small PNGs) stay bytes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, BinaryIO

from .errors import RejectedInput

SMALL = 64 << 20  # a file this size or under may be read whole where a service needs the bytes


@dataclass(frozen=True)
class LocalFile:
    path: str
    size: int
    mtime_ns: int

    @classmethod
    def at(cls, path: "str | os.PathLike[str]") -> "LocalFile":
        st = os.stat(path)
        return cls(os.fspath(path), st.st_size, st.st_mtime_ns)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def check(self) -> None:
        """Refuse a file that changed or went away since the node read it (its hash would be wrong);
        the engine adds the provider, the target and the field (the input's kind)."""
        try:
            st = os.stat(self.path)
        except OSError as e:
            raise RejectedInput(f"input file {self.name} cannot be read any more ({e.strerror or e})",
                                hint="queue the prompt again") from None
        if (st.st_size, st.st_mtime_ns) != (self.size, self.mtime_ns):
            raise RejectedInput(f"input file {self.name} changed after its node ran",
                                hint="queue the prompt again: the loader of a changed file runs again and sends "
                                     "the new version")

    def open(self) -> BinaryIO:
        """The file to send, for one attempt (aiohttp reads it in chunks and closes it)."""
        return open(self.path, "rb")

    def read(self) -> bytes:
        with open(self.path, "rb") as fh:
            return fh.read()

    def __repr__(self) -> str:
        return f"<file {self.name}, {self.size} bytes>"


def not_uploaded(value: Any) -> bool:
    """A file override's value before the engine uploaded it (bytes or a file on disk)."""
    return isinstance(value, (bytes, bytearray, LocalFile))


def size_of(value: Any) -> int:
    return value.size if isinstance(value, LocalFile) else len(value)


def sendable(value: Any) -> Any:
    """What an upload request carries, made fresh for each attempt: the bytes, or the file opened anew."""
    return value.open() if isinstance(value, LocalFile) else value
