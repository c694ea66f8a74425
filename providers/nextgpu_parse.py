"""Reading nextGPU's answers, beside ``providers/nextgpu.py``: numbers that may be anything, the
``state``/``codeId`` fields, and a finished sub-task's result files.

Result files: ``ossUrls`` (socket) or ``urls`` (getTask, newline-joined) hold one URL per file the
GPU node delivered — only files ComfyUI lists under ``images`` (facts §7.4: a ``SaveAnimatedWEBP``
is delivered, a ``VHS_VideoCombine`` ``gifs`` list is not). The kind comes from the file name
(providers.kinds: ``.png``/``.webp`` image — an animated WebP is one, its frames a batch — ``.gif``
or ``.mp4`` video). A file maps to a remote node only when exactly one node saved outputs.
"""
from __future__ import annotations

import json
from typing import Any, Optional
from urllib.parse import urlsplit

from .base import Output
from .kinds import kind_of, mime_of


def as_int(value: Any, default: int = 0) -> int:
    try:
        return default if isinstance(value, bool) else int(value)
    except (TypeError, ValueError, OverflowError):
        return default


def state_of(obj: dict) -> Optional[int]:
    return obj.get("state") if type(obj.get("state")) is int else None


def code_of(data: Any) -> Any:
    code = next((v for k, v in data.items() if str(k).lower() == "codeid"), None) if isinstance(data, dict) else None
    return code if isinstance(code, (int, str)) else None  # (a list or an object is no code at all)


def duration(ms: int) -> str:
    s = max(0, ms // 1000)
    return f"{s // 3600} h {s % 3600 // 60:02d} min" if s >= 3600 else (f"{s // 60} min" if s >= 60 else f"{s} s")


def saving_node(sub: dict) -> Optional[str]:
    """The one node of the sub-task's /history entry (``output``) that saved files, else None."""
    try:
        entry = next(iter(json.loads(sub.get("output") or "{}").values()))
        saved = [n for n, o in entry["outputs"].items()
                 if any(isinstance(i, dict) and i.get("type") == "output" for i in o.get("images", []))]
        return saved[0] if len(saved) == 1 else None
    except (ValueError, TypeError, AttributeError, KeyError, StopIteration):
        return None


def outputs_of(sub_id: str, urls: list, sub: dict) -> list[Output]:
    """The result files of one sub-task (``field`` = its id); a URL listed twice is one output."""
    node = saving_node(sub)
    outs = []
    for url in dict.fromkeys(u.strip() for u in urls if isinstance(u, str)):
        if not url.startswith(("http://", "https://")):
            continue
        name = urlsplit(url).path.rsplit("/", 1)[-1] or f"{sub_id}.png"
        kind = kind_of(name)
        outs.append(Output(kind, url, name, node, field=sub_id, mime=mime_of(name, kind) if kind != "file" else None))
    return outs
