"""The fake TAMS's tiny deterministic "model zoo": how a workflow graph turns into result images.

Real TAMS runs ComfyUI; the fake runs these node types instead (anything else is refused with
the documented ``code 3 "Params Valid"`` + ``tams_api.ArgumentError`` shape):

================================  =====================================================================
class type                        what it does
================================  =====================================================================
``LoadImage``,                    ``image`` = a ``resourceId`` from ``POST /v1/resource/image``; the
``TensorArt_LoadImage``           uploaded file, byte for byte (upload round trip)
``EmptyImage``                    ``width``, ``height``, ``color`` (0xRRGGBB int): a solid image
``SolidFromText``                 ``text`` (literal or link), ``width``/``height`` (default 16): solid
                                  image coloured :func:`text_color` of the text
``CLIPTextEncode``,               ``text``: passes the text on
``TensorArt_PromptText``,
``PrimitiveString``
``ImageInvert``                   ``image`` link: 255 − v per channel
``KSampler``, ``SlowPass``        passes ``image``/``latent_image``/``samples`` on; adds
                                  ``steps`` × step time to the run (progress, cancel tests)
``SaveImage``, ``PreviewImage``,  output nodes: ``images`` link → result files
``TensorArt_SaveImage``
``FakeVideoModel``                ``text``, ``with_audio``: a real H.264 mp4 (with an AAC track when
                                  ``with_audio``) from :mod:`tests.media_samples`; ``LoadVideo``
                                  cannot exist (TAMS uploads take images only)
``SaveVideo``                     output node: ``video`` link → a result in ``successInfo.videos``
================================  =====================================================================
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any, Callable, Optional

OUTPUT_CLASSES = frozenset({"SaveImage", "PreviewImage", "TensorArt_SaveImage", "SaveVideo"})
VIDEO_OUTPUTS = frozenset({"SaveVideo"})
LOAD_CLASSES = frozenset({"LoadImage", "TensorArt_LoadImage"})
TEXT_CLASSES = frozenset({"CLIPTextEncode", "TensorArt_PromptText", "PrimitiveString"})
PASS_CLASSES = frozenset({"KSampler", "SlowPass"})
KNOWN_CLASSES = OUTPUT_CLASSES | LOAD_CLASSES | TEXT_CLASSES | PASS_CLASSES | {
    "EmptyImage", "SolidFromText", "ImageInvert", "FakeVideoModel"}
REQUIRED = {"SaveVideo": ("video",), "LoadImage": ("image",), "TensorArt_LoadImage": ("image",), "SaveImage": ("images",),
            "PreviewImage": ("images",), "TensorArt_SaveImage": ("images",), "ImageInvert": ("image",),
            "SolidFromText": ("text",)}


def text_color(text: str) -> tuple[int, int, int]:
    """The colour SolidFromText paints for ``text`` (tests compute expectations with it)."""
    d = hashlib.sha256(str(text).encode()).digest()
    return d[0], d[1], d[2]


class GraphError(Exception):
    """A node the fake refuses: becomes ``code 3`` with an ArgumentError naming node and class."""

    def __init__(self, node: str, class_type: str, field: str, message: str):
        self.node, self.class_type, self.field, self.message = node, class_type, field, message
        super().__init__(f"node id: {node}\nclass type: {class_type}\n{field}: {message}\n")


@dataclass
class Result:
    node: str
    png: bytes  # the file's bytes (a PNG, or an mp4 when ``ext`` says so)
    width: int
    height: int
    ext: str = "png"

    @property
    def video(self) -> bool:
        return self.ext != "png"


def _is_link(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], (str, int)) and isinstance(v[1], int)


def check_graph(graph: dict, resource_exists: Callable[[str], bool]) -> None:
    """Validate a normalised graph ``{id: {"class": ..., "inputs": {...}}}``; raise GraphError."""
    if not any(n["class"] in OUTPUT_CLASSES for n in graph.values()):
        raise GraphError("-", "-", "workflow", "the workflow has no output node (SaveImage/PreviewImage)")
    for nid, node in graph.items():
        ct, inputs = node["class"], node["inputs"]
        if ct not in KNOWN_CLASSES:
            raise GraphError(nid, ct, "class_type", "节点类型不存在 (node type not found)")
        for f in REQUIRED.get(ct, ()):
            v = inputs.get(f)
            if v is None or v == "":
                raise GraphError(nid, ct, f, "字段必填")
        for f, v in inputs.items():
            if _is_link(v) and str(v[0]) not in graph:
                raise GraphError(nid, ct, f, f"links to missing node {v[0]}")
        if ct in LOAD_CLASSES and not resource_exists(str(inputs["image"])):
            raise GraphError(nid, ct, "image", "resource not found")


def run_graph(graph: dict, load: Callable[[str], bytes]) -> list[Result]:
    """Evaluate every output node in id order; one Result per image."""
    memo: dict[str, Any] = {}

    def value(v: Any) -> Any:
        return evaluate(str(v[0])) if _is_link(v) else v

    def evaluate(nid: str) -> Any:
        if nid in memo:
            return memo[nid]
        node = graph[nid]
        ct, inp = node["class"], node["inputs"]
        if ct in LOAD_CLASSES:
            out: Any = load(str(inp["image"]))
        elif ct in TEXT_CLASSES:
            out = str(value(inp.get("text", "")))
        elif ct == "EmptyImage":
            c = int(value(inp.get("color", 0)) or 0)
            out = solid(((c >> 16) & 255, (c >> 8) & 255, c & 255),
                        int(value(inp.get("width", 16))), int(value(inp.get("height", 16))))
        elif ct == "SolidFromText":
            out = solid(text_color(str(value(inp["text"]))), int(value(inp.get("width", 16)) or 16),
                        int(value(inp.get("height", 16)) or 16))
        elif ct == "ImageInvert":
            out = invert(value(inp["image"]))
        elif ct == "FakeVideoModel":
            from .. import media_samples as ms

            out = ms.mp4(sound=bool(value(inp.get("with_audio", False))))
        elif ct in PASS_CLASSES:
            src = next((inp[k] for k in ("image", "latent_image", "samples") if k in inp), None)
            out = value(src) if src is not None else solid((0, 0, 0), 16, 16)
        else:
            out = None
        memo[nid] = out
        return out

    results: list[Result] = []
    for nid in sorted(graph, key=_sort_key):
        if graph[nid]["class"] in VIDEO_OUTPUTS:
            clip = evaluate(str(graph[nid]["inputs"]["video"][0])) if _is_link(graph[nid]["inputs"]["video"]) else None
            if clip is not None and hasattr(clip, "data"):
                results.append(Result(nid, clip.data, clip.width, clip.height, clip.name.rsplit(".", 1)[-1]))
        elif graph[nid]["class"] in OUTPUT_CLASSES:
            img = evaluate(str(graph[nid]["inputs"]["images"][0])) if _is_link(graph[nid]["inputs"]["images"]) else None
            if isinstance(img, (bytes, bytearray)):
                w, h = size_of(bytes(img))
                results.append(Result(nid, bytes(img), w, h))
    return results


def total_steps(graph: dict) -> int:
    return sum(int(n["inputs"].get("steps") or 0) for n in graph.values() if n["class"] in PASS_CLASSES
               and not _is_link(n["inputs"].get("steps")))


def order(graph: dict) -> list[str]:
    return sorted(graph, key=_sort_key)


def _sort_key(nid: str) -> tuple:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in str(nid).split(":"))


def solid(rgb: tuple[int, int, int], w: int, h: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (max(1, w), max(1, h)), rgb).save(buf, format="PNG")
    return buf.getvalue()


def invert(png: Optional[bytes]) -> bytes:
    from PIL import Image, ImageOps

    img = Image.open(io.BytesIO(png or solid((0, 0, 0), 16, 16)))
    if img.mode == "RGBA":
        r, g, b, a = img.split()
        rgb = ImageOps.invert(Image.merge("RGB", (r, g, b)))
        img = Image.merge("RGBA", (*rgb.split(), a))
    else:
        img = ImageOps.invert(img.convert("RGB"))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def size_of(png: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        return img.size
