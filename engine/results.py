"""Choosing and loading saved outputs (RemoteFetchImage's ``select``), without ComfyUI."""
from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Sequence

import numpy as np

from ..providers.base import RejectedInput
from . import media

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def is_image(o: dict) -> bool:
    if o.get("kind") == "image":
        return True
    mime = o.get("mime") or ""
    return mime.startswith("image/") or str(o.get("filename") or "").lower().endswith(IMAGE_EXT)


def describe(outputs: Sequence[dict]) -> str:
    if not outputs:
        return "the result has no outputs"
    items = []
    for o in outputs:
        where = f"node {o['node']}" if o.get("node") else (f"field {o['field']}" if o.get("field") else "")
        items.append(f"{o.get('filename') or o.get('kind')} ({o.get('kind')}{', ' + where if where else ''})")
    return "the result contains: " + "; ".join(items)


def select_outputs(outputs: Sequence[dict], select: str, *, images_only: bool = True) -> list[dict]:
    """"" = every image; a remote node id (``9``, ``12:5``) = that node's outputs; a glob on file
    name or output field (``*.png``, ``poster*``); comma-separated = union (in result order)."""
    pool = [o for o in outputs if is_image(o)] if images_only else list(outputs)
    terms = [t.strip() for t in (select or "").split(",") if t.strip()]
    if not terms:
        chosen = pool
    else:
        chosen = [o for o in pool if any(_matches(o, t) for t in terms)]
    if not chosen:
        what = f"select {select!r} matches nothing" if terms else "the result has no images"
        raise RejectedInput(f"{what}; {describe(outputs)}", field="select",
                            hint="leave select empty for every image, or use a node id / file-name glob from the list")
    return chosen


def _matches(o: dict, term: str) -> bool:
    if o.get("node") is not None and str(o["node"]) == term:
        return True
    for name in (o.get("filename"), o.get("field")):
        if name and fnmatch.fnmatchcase(str(name), term):
            return True
    return False


def load_images(chosen: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Decode the chosen files into IMAGE [B,H,W,3] and MASK [B,H,W] (sizes must agree)."""
    decoded, names = [], []
    for o in chosen:
        path = o.get("path")
        if not path or not Path(path).is_file():
            raise RejectedInput(f"result file {o.get('filename')!r} is missing on disk", field="result",
                                hint="use RemoteRecover or the panel's Recover to download it again")
        decoded.append(media.decode_image(Path(path).read_bytes(), name=o.get("filename") or ""))
        names.append(o.get("filename") or str(o.get("n")))
    return media.stack_images(decoded, names)
