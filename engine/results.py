"""Choosing and loading saved outputs (every RemoteFetch* node's ``select``), without ComfyUI.

``select`` works the same for every kind: "" = the default choice of the fetch node (every image,
the first video or sound, every text, every file); a remote node id (``9``, ``12:5``) = that node's
outputs; a glob on file name or named output field (``*.png``, ``poster*``); comma-separated = union,
in result order. Images: "" takes the ``output`` images, and a result's ``temp`` previews only when
it has none. A choice that finds nothing lists what the result does contain and names the node to use.
"""
from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..providers.base import RejectedInput
from ..providers.kinds import kind_of
from . import media

NODE_FOR = {"image": "RemoteFetchImage", "video": "RemoteFetchVideo", "audio": "RemoteFetchAudio",
            "text": "RemoteFetchText", "file": "RemoteFetchFile"}
PLURAL = {"image": "images", "video": "videos", "audio": "sounds", "text": "texts", "file": "files"}


def kind(o: dict) -> str:
    """An output's kind: the provider's word, else what its name or type says."""
    said = o.get("kind")
    return said if isinstance(said, str) and said else kind_of(o.get("filename"), o.get("mime"))


def is_image(o: dict) -> bool:
    return kind(o) == "image"


def _counts(outputs: Sequence[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for o in outputs:
        counts[kind(o)] = counts.get(kind(o), 0) + 1
    return counts


def tally(outputs: Sequence[dict]) -> str:
    """``2 images, 1 video`` (``no outputs`` when empty), in result order."""
    return ", ".join(f"{n} {k if n == 1 else PLURAL.get(k, k)}" for k, n in _counts(outputs).items()) or "no outputs"


def contents(outputs: Sequence[dict]) -> str:
    """``2 images: use RemoteFetchImage; 1 video: use RemoteFetchVideo`` — what a result holds, by kind,
    with the node for each."""
    parts = [f"{n} {k if n == 1 else PLURAL.get(k, k)}: use {NODE_FOR.get(k, 'RemoteFetchFile')}"
             for k, n in _counts(outputs).items()]
    return "; ".join(parts) or "the result has no outputs"


def describe(outputs: Sequence[dict]) -> str:
    if not outputs:
        return "the result has no outputs"
    items = []
    for o in outputs:
        where = f"node {o['node']}" if o.get("node") else (f"field {o['field']}" if o.get("field") else "")
        extra = ", preview" if o.get("preview") else ""
        items.append(f"{o.get('filename') or kind(o)} ({kind(o)}{extra}{', ' + where if where else ''})")
    return "the result contains: " + "; ".join(items)


def select_outputs(outputs: Sequence[dict], select: str, want: str = "image") -> list[dict]:
    """The outputs of kind ``want`` (``"any"`` = every saved file) that ``select`` names."""
    if want == "any":
        pool = [o for o in outputs if o.get("path") or kind(o) != "text"]
    else:
        pool = [o for o in outputs if kind(o) == want]
    terms = [t.strip() for t in (select or "").split(",") if t.strip()]
    if terms:
        chosen = [o for o in pool if any(_matches(o, t) for t in terms)]
    elif want == "image":
        chosen = [o for o in pool if not o.get("preview")] or pool  # previews only when there is no output
    else:
        chosen = pool
    if not chosen:
        if terms:
            what = f"select {select!r} matches nothing{'' if want == 'any' else ' among the ' + PLURAL[want]}"
        else:
            what = f"the result has no {'files' if want == 'any' else PLURAL.get(want, want)}"
        raise RejectedInput(f"{what}; it has {contents(outputs)} ({describe(outputs)})", field="select",
                            hint="leave select empty for the default, or use a node id / file-name glob from the list")
    return chosen


def _matches(o: dict, term: str) -> bool:
    if o.get("node") is not None and str(o["node"]) == term:
        return True
    for name in (o.get("filename"), o.get("field")):
        if name and fnmatch.fnmatchcase(str(name), term):
            return True
    return False


def saved_path(o: dict) -> Path:
    path = o.get("path")
    if not path or not Path(path).is_file():
        raise RejectedInput(f"result file {o.get('filename')!r} is missing on disk", field="result",
                            hint="use RemoteRecover or the panel's Recover to download it again")
    return Path(path)


def load_images(chosen: Sequence[dict], limit: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode the chosen files into IMAGE [B,H,W,3] and MASK [B,H,W] (sizes must agree); an animated
    image gives all its frames. Frames that would not fit in ``limit`` bytes (IMAGE and MASK, float32)
    are refused before decoding."""
    need = sum(media.frames_bytes(saved_path(o)) for o in chosen)
    if limit is not None and need > limit:
        raise RejectedInput(f"the selected images would need {need / 2**20:.0f} MB but {limit / 2**20:.0f} MB are "
                            f"available", field="select",
                            hint="select fewer images or a smaller animation, or fetch the files with RemoteFetchFile")
    decoded, names = [], []
    for o in chosen:
        path = saved_path(o)
        frames = media.decode_image_frames(path.read_bytes(), name=o.get("filename") or "")
        decoded.extend(frames)
        label = o.get("filename") or str(o.get("n"))
        names.extend([label] if len(frames) == 1 else [f"{label}[{i}]" for i in range(len(frames))])
    return media.stack_images(decoded, names)


def load_texts(chosen: Sequence[dict]) -> list[str]:
    """Each chosen text: its inline value, else the saved file read as UTF-8."""
    out = []
    for o in chosen:
        if o.get("text") is not None:
            out.append(str(o["text"]))
        else:
            out.append(saved_path(o).read_text(encoding="utf-8", errors="replace"))
    return out
