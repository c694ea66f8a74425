"""Node types of the bundled sandbox server (``sandbox/server.py``) and ComfyUI's prompt validation.

Each :class:`NodeType` carries what ComfyUI's ``/object_info`` shows (same keys as 0.3.64:
``input``/``input_order``/``output``/``output_is_list``/``output_name``/``name``/``display_name``/
``description``/``python_module``/``category``/``output_node``) and an async ``run`` working on
real pixels: IMAGE = float32 numpy ``[B,H,W,3]`` in 0..1, MASK = float32 ``[B,H,W]``, computed with
the same float32 arithmetic as ComfyUI (so a SaveImage of an inverted image has ComfyUI's exact
bytes, truncation included).

Core types: LoadImage, ImageInvert, EmptyImage, SaveImage, PreviewImage, ImageBatch, ImageScale,
MaskToImage; with ``media_nodes``: SaveAnimatedWEBP, PreviewAny. Sandbox types (also shipped for a
real server in ``tests/remote_nodes``): SandboxSolid, SandboxSlowPass, SandboxFail; and, sandbox only, SandboxVideo, SandboxSaveText.

:func:`validate_prompt` mirrors ``execution.validate_prompt``/``validate_inputs`` of 0.3.64: error
types ``invalid_prompt``, ``prompt_no_outputs``, ``prompt_outputs_failed_validation`` and per node
``required_input_missing``, ``bad_linked_input``, ``return_type_mismatch``, ``invalid_input_type``,
``value_smaller_than_min``, ``value_bigger_than_max``, ``value_not_in_list``,
``custom_validation_failed``, ``exception_during_validation``.
"""
from __future__ import annotations

import hashlib
import io
import json
import traceback
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional

import numpy as np

MAX_RESOLUTION = 16384
UPSCALE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]
SAVE_PREFIX_TOOLTIP = ("The prefix for the file to save. This may include formatting information such as "
                       "%date:yyyy-MM-dd% or %Empty Latent Image.width% to include values from nodes.")


class NodeFailure(Exception):
    """Raised by a node's run to fail like a Python exception inside ComfyUI would."""

    def __init__(self, exc: BaseException):
        super().__init__(str(exc))
        self.exc = exc


class Interrupted(Exception):
    """ComfyUI's InterruptProcessingException."""


@dataclass
class NodeType:
    name: str
    display_name: str
    category: str
    required: dict
    outputs: tuple
    run: Callable[..., Awaitable[tuple]]
    optional: dict = field(default_factory=dict)
    hidden: dict = field(default_factory=dict)
    output_node: bool = False
    description: str = ""
    python_module: str = "nodes"
    output_names: Optional[tuple] = None
    validate: Optional[Callable[..., Any]] = None  # VALIDATE_INPUTS(ctx, **inputs) -> True | str
    validate_inputs: tuple = ()
    never_cached: bool = False  # IS_CHANGED returns NaN
    is_changed: Optional[Callable[..., Any]] = None

    def input_types(self, ctx: Any) -> dict:
        out: dict = {"required": {k: _spec(v, ctx) for k, v in self.required.items()}}
        if self.optional:
            out["optional"] = {k: _spec(v, ctx) for k, v in self.optional.items()}
        if self.hidden:
            out["hidden"] = dict(self.hidden)
        return out

    def info(self, ctx: Any) -> dict:
        types = self.input_types(ctx)
        return {
            "input": types,
            "input_order": {k: list(v) for k, v in types.items()},
            "output": list(self.outputs),
            "output_is_list": [False] * len(self.outputs),
            "output_name": list(self.output_names or self.outputs),
            "name": self.name,
            "display_name": self.display_name,
            "description": self.description,
            "python_module": self.python_module,
            "category": self.category,
            "output_node": self.output_node,
        }


def _spec(value: Any, ctx: Any) -> list:
    """An input spec as JSON: ``["INT", {...}]``; a callable gives a dynamic one (LoadImage)."""
    if callable(value):
        value = value(ctx)
    return [v if not isinstance(v, tuple) else list(v) for v in value]


# --------------------------------------------------------------------------- pixels

def to_png(image: np.ndarray, text: Optional[dict] = None, compress_level: int = 4) -> bytes:
    """One ``[H,W,3]`` float image → PNG bytes exactly like ComfyUI's SaveImage."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    i = 255. * image
    img = Image.fromarray(np.clip(i, 0, 255).astype(np.uint8))
    meta = None
    if text:
        meta = PngInfo()
        for k, v in text.items():
            meta.add_text(k, v)
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=meta, compress_level=compress_level)
    return buf.getvalue()


def load_png(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """LoadImage: RGB float32 ``[1,H,W,3]`` and MASK = 1 − alpha (64×64 zeros without alpha)."""
    from PIL import Image, ImageOps

    img = Image.open(io.BytesIO(data))
    img = ImageOps.exif_transpose(img)
    if img.mode == "I":
        img = img.point(lambda v: v * (1 / 255))
    rgb = np.array(img.convert("RGB")).astype(np.float32) / 255.0
    if "A" in img.getbands():
        mask = 1. - np.array(img.getchannel("A")).astype(np.float32) / 255.0
    elif img.mode == "P" and "transparency" in img.info:
        mask = 1. - np.array(img.convert("RGBA").getchannel("A")).astype(np.float32) / 255.0
    else:
        mask = np.zeros((64, 64), dtype=np.float32)
    return rgb[None, ...], mask[None, ...]


def solid(rgb: tuple[int, int, int], width: int, height: int, batch: int = 1) -> np.ndarray:
    out = np.empty((batch, height, width, 3), dtype=np.float32)
    for c in range(3):
        out[..., c] = np.float32(rgb[c] / 0xFF)
    return out


def parse_colour(text: str) -> tuple[int, int, int]:
    from PIL import ImageColor

    try:
        return ImageColor.getrgb(str(text).strip())[:3]  # type: ignore[return-value]
    except ValueError:
        raise ValueError(f"unknown colour {text!r}: use a colour name like 'red' or '#rrggbb'") from None


def _resize(image: np.ndarray, width: int, height: int, method: str) -> np.ndarray:
    from PIL import Image

    resample = {"nearest-exact": Image.NEAREST, "bilinear": Image.BILINEAR, "area": Image.BOX,
                "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}.get(method, Image.BILINEAR)
    out = np.empty((image.shape[0], height, width, image.shape[3]), dtype=np.float32)
    for b in range(image.shape[0]):
        for c in range(image.shape[3]):
            ch = Image.fromarray(image[b, :, :, c].astype(np.float32), mode="F")
            out[b, :, :, c] = np.asarray(ch.resize((width, height), resample), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)


# --------------------------------------------------------------------------- node functions
# Each run(ctx, **inputs) -> (outputs_tuple, ui_dict_or_None). ``ctx`` is the executing server's
# NodeContext: ctx.server (file store, counters), ctx.node_id, ctx.prompt, ctx.extra_data,
# ctx.progress(value, max), ctx.check_interrupt(), ctx.sleep(s).

def _input_files(server: Any) -> list:
    return sorted(fn for (typ, sub, fn) in getattr(server, "files", {}) if typ == "input" and sub == "")


async def _load_image(ctx: Any, image: str) -> tuple:
    data = ctx.server.read_annotated(image)
    if data is None:
        raise NodeFailure(FileNotFoundError(f"[Errno 2] No such file or directory: '{image}'"))
    try:
        rgb, mask = load_png(data)
    except Exception as e:  # PIL.UnidentifiedImageError like the D_runtime_error sample
        raise NodeFailure(e) from None
    return (rgb, mask), None


def _validate_load_image(ctx: Any, image: Any) -> Any:
    if ctx.read_annotated(str(image)) is None:
        return "Invalid image file: {}".format(image)
    return True


def _load_image_changed(ctx: Any, image: str) -> str:
    data = ctx.server.read_annotated(image) or b""
    return hashlib.sha256(data).hexdigest()


async def _invert(ctx: Any, image: np.ndarray) -> tuple:
    return (np.float32(1.0) - image,), None


async def _empty_image(ctx: Any, width: int, height: int, batch_size: int = 1, color: int = 0) -> tuple:
    rgb = ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)
    return (solid(rgb, width, height, batch_size),), None


async def _image_batch(ctx: Any, image1: np.ndarray, image2: np.ndarray) -> tuple:
    if image1.shape[1:] != image2.shape[1:]:
        image2 = _resize(image2, image1.shape[2], image1.shape[1], "bilinear")
    return (np.concatenate([image1, image2], axis=0),), None


async def _image_scale(ctx: Any, image: np.ndarray, upscale_method: str, width: int, height: int,
                       crop: str) -> tuple:
    if width == 0 and height == 0:
        return (image,), None
    h, w = image.shape[1], image.shape[2]
    if width == 0:
        width = max(1, round(w * height / h))
    elif height == 0:
        height = max(1, round(h * width / w))
    return (_resize(image, width, height, upscale_method),), None


async def _mask_to_image(ctx: Any, mask: np.ndarray) -> tuple:
    m = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).transpose(0, 2, 3, 1)
    return (np.repeat(m, 3, axis=-1).astype(np.float32),), None


def _save(ctx: Any, images: np.ndarray, prefix: str, typ: str, compress_level: int) -> dict:
    text = None
    if not getattr(ctx.server, "disable_metadata", False):
        text = {"prompt": json.dumps(ctx.prompt)}
        for k, v in (ctx.extra_data.get("extra_pnginfo") or {}).items():
            text[k] = json.dumps(v)
    subfolder, _, base = prefix.rpartition("/")
    counter = ctx.server.next_counter(typ, subfolder, base)
    results = []
    for batch_number, image in enumerate(images):
        name = f"{base.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
        ctx.server.files[(typ, subfolder, name)] = to_png(image, text, compress_level)
        results.append({"filename": name, "subfolder": subfolder, "type": typ})
        counter += 1
    return {"images": results}


async def _save_image(ctx: Any, images: np.ndarray, filename_prefix: str = "ComfyUI") -> tuple:
    return (), _save(ctx, images, filename_prefix, "output", 4)


async def _preview_image(ctx: Any, images: np.ndarray) -> tuple:
    return (), _save(ctx, images, "ComfyUI_temp_" + ctx.server.temp_suffix(ctx.node_id), "temp", 1)


async def _sandbox_solid(ctx: Any, text: str, width: int, height: int) -> tuple:
    try:
        rgb = parse_colour(text)
    except ValueError as e:
        raise NodeFailure(e) from None
    return (solid(rgb, width, height),), None


async def _sandbox_slow_pass(ctx: Any, image: np.ndarray, steps: int, step_seconds: float) -> tuple:
    for i in range(steps):
        await ctx.sleep(step_seconds)
        ctx.check_interrupt()
        await ctx.progress(i + 1, steps)
    return (image,), None


async def _sandbox_fail(ctx: Any, image: np.ndarray, message: str) -> tuple:
    raise NodeFailure(RuntimeError(message))


NODE_TYPES: dict[str, NodeType] = {t.name: t for t in [
    NodeType("LoadImage", "Load Image", "image",
             {"image": lambda server: (_input_files(server), {"image_upload": True})}, ("IMAGE", "MASK"),
             _load_image, validate=_validate_load_image, validate_inputs=("image",),
             is_changed=_load_image_changed),
    NodeType("ImageInvert", "Invert Image", "image", {"image": ("IMAGE",)}, ("IMAGE",), _invert),
    NodeType("EmptyImage", "EmptyImage", "image", {
        "width": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
        "height": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
        "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
        "color": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFF, "step": 1, "display": "color"}),
    }, ("IMAGE",), _empty_image),
    NodeType("SaveImage", "Save Image", "image", {
        "images": ("IMAGE", {"tooltip": "The images to save."}),
        "filename_prefix": ("STRING", {"default": "ComfyUI", "tooltip": SAVE_PREFIX_TOOLTIP}),
    }, (), _save_image, hidden={"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}, output_node=True,
        description="Saves the input images to your ComfyUI output directory."),
    NodeType("PreviewImage", "Preview Image", "image", {"images": ("IMAGE",)}, (), _preview_image,
             hidden={"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}, output_node=True,
             description="Saves the input images to your ComfyUI output directory."),
    NodeType("ImageBatch", "Batch Images", "image", {"image1": ("IMAGE",), "image2": ("IMAGE",)}, ("IMAGE",),
             _image_batch),
    NodeType("ImageScale", "Upscale Image", "image/upscaling", {
        "image": ("IMAGE",), "upscale_method": (UPSCALE_METHODS,),
        "width": ("INT", {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
        "height": ("INT", {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
        "crop": (["disabled", "center"],),
    }, ("IMAGE",), _image_scale),
    NodeType("MaskToImage", "Convert Mask to Image", "mask", {"mask": ("MASK",)}, ("IMAGE",), _mask_to_image,
             python_module="comfy_extras.nodes_mask"),
    NodeType("SandboxSolid", "Sandbox Solid", "sandbox", {
        "text": ("STRING", {"default": "red"}),
        "width": ("INT", {"default": 64, "min": 1, "max": 4096, "step": 1}),
        "height": ("INT", {"default": 64, "min": 1, "max": 4096, "step": 1}),
    }, ("IMAGE",), _sandbox_solid, python_module="custom_nodes.sandbox_remote_nodes",
        description="A solid colour image from a colour name or #rrggbb."),
    NodeType("SandboxSlowPass", "Sandbox Slow Pass", "sandbox", {
        "image": ("IMAGE",),
        "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
        "step_seconds": ("FLOAT", {"default": 0.25, "min": 0.0, "max": 60.0, "step": 0.01}),
    }, ("IMAGE",), _sandbox_slow_pass, python_module="custom_nodes.sandbox_remote_nodes", never_cached=True,
        description="Passes the image through after steps x step_seconds, reporting progress each step."),
    NodeType("SandboxFail", "Sandbox Fail", "sandbox", {
        "image": ("IMAGE",), "message": ("STRING", {"default": "sandbox failure"}),
    }, ("IMAGE",), _sandbox_fail, python_module="custom_nodes.sandbox_remote_nodes",
        description="Raises RuntimeError(message) while executing."),
]}


# --------------------------------------------------------------------------- validation

def _type_ok(received: str, expected: Any) -> bool:
    if isinstance(expected, list):
        return False
    if received == expected or "*" in (received, expected):
        return True
    return bool(set(str(received).split(",")) & set(str(expected).split(",")))


def _full_type_name(exc: BaseException) -> str:
    module = type(exc).__module__
    return type(exc).__qualname__ if module == "builtins" else f"{module}.{type(exc).__qualname__}"


def _validate_inputs(server: Any, prompt: dict, node_id: str, validated: dict) -> tuple:
    if node_id in validated:
        return validated[node_id]
    node = prompt[node_id]
    inputs = node["inputs"]
    ntype = NODE_TYPES[node["class_type"]]
    types = ntype.input_types(server)
    errors: list = []
    valid = True
    for category in ("required", "optional"):
        for name, spec in types.get(category, {}).items():
            input_type = spec[0]
            extra = spec[1] if len(spec) > 1 else {}
            info = [input_type, extra] if len(spec) > 1 else [input_type, {}]
            if name not in inputs:
                if category == "required":
                    errors.append({"type": "required_input_missing", "message": "Required input is missing",
                                   "details": f"{name}", "extra_info": {"input_name": name}})
                continue
            val = inputs[name]
            if isinstance(val, list):
                if len(val) != 2:
                    errors.append({"type": "bad_linked_input",
                                   "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                                   "details": f"{name}",
                                   "extra_info": {"input_name": name, "input_config": info, "received_value": val}})
                    continue
                o_id = val[0]
                o_class = prompt[o_id]["class_type"]  # KeyError → exception_during_validation, as in ComfyUI
                received = NODE_TYPES[o_class].outputs[val[1]]
                if not _type_ok(received, input_type):
                    errors.append({"type": "return_type_mismatch",
                                   "message": "Return type mismatch between linked nodes",
                                   "details": f"{name}, received_type({received}) mismatch input_type({input_type})",
                                   "extra_info": {"input_name": name, "input_config": info,
                                                  "received_type": received, "linked_node": val}})
                    continue
                r = _validate_inputs(server, prompt, o_id, validated)
                if r[0] is False:
                    valid = False
                continue
            try:
                if isinstance(val, dict) and "__value__" in val:
                    val = val["__value__"]
                    inputs[name] = val
                if input_type == "INT":
                    val = int(val)
                elif input_type == "FLOAT":
                    val = float(val)
                elif input_type == "STRING":
                    val = str(val)
                elif input_type == "BOOLEAN":
                    val = bool(val)
                inputs[name] = val
            except Exception as ex:
                errors.append({"type": "invalid_input_type",
                               "message": f"Failed to convert an input value to a {input_type} value",
                               "details": f"{name}, {val}, {ex}",
                               "extra_info": {"input_name": name, "input_config": info, "received_value": val,
                                              "exception_message": str(ex)}})
                continue
            if name in ntype.validate_inputs:
                continue
            if "min" in extra and val < extra["min"]:
                errors.append({"type": "value_smaller_than_min",
                               "message": "Value {} smaller than min of {}".format(val, extra["min"]),
                               "details": f"{name}",
                               "extra_info": {"input_name": name, "input_config": info, "received_value": val}})
                continue
            if "max" in extra and val > extra["max"]:
                errors.append({"type": "value_bigger_than_max",
                               "message": "Value {} bigger than max of {}".format(val, extra["max"]),
                               "details": f"{name}",
                               "extra_info": {"input_name": name, "input_config": info, "received_value": val}})
                continue
            if isinstance(input_type, list) and val not in input_type:
                cfg: Any = info
                list_info = str(input_type)
                if len(input_type) > 20:
                    list_info, cfg = f"(list of length {len(input_type)})", None
                errors.append({"type": "value_not_in_list", "message": "Value not in list",
                               "details": f"{name}: '{val}' not in {list_info}",
                               "extra_info": {"input_name": name, "input_config": cfg, "received_value": val}})
                continue
    if ntype.validate is not None:
        args = {k: inputs.get(k) for k in ntype.validate_inputs}
        r = ntype.validate(server, **args)
        if r is not True:
            for name in args:
                details = f"{name}" + ("" if r is False else f" - {r}")
                errors.append({"type": "custom_validation_failed", "message": "Custom validation failed for node",
                               "details": details, "extra_info": {"input_name": name}})
    ret = (False, errors, node_id) if errors or valid is not True else (True, [], node_id)
    validated[node_id] = ret
    return ret


def validate_prompt(server: Any, prompt: Any, partial: Optional[list] = None) -> tuple:
    """(ok, error, outputs_to_execute, node_errors) exactly like ComfyUI 0.3.64."""
    outputs = []
    for x in prompt:
        node = prompt[x]
        if not isinstance(node, dict) or "class_type" not in node:
            return (False, {"type": "invalid_prompt",
                            "message": "Cannot execute because a node is missing the class_type property.",
                            "details": f"Node ID '#{x}'", "extra_info": {}}, [], {})
        ntype = NODE_TYPES.get(node["class_type"])
        if ntype is None:
            return (False, {"type": "invalid_prompt",
                            "message": f"Cannot execute because node {node['class_type']} does not exist.",
                            "details": f"Node ID '#{x}'", "extra_info": {}}, [], {})
        node.setdefault("inputs", {})
        if ntype.output_node and (partial is None or x in partial):
            outputs.append(x)
    if not outputs:
        return (False, {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "",
                        "extra_info": {}}, [], {})
    good: list = []
    errors: list = []
    node_errors: dict = {}
    validated: dict = {}
    for o in outputs:
        try:
            valid, reasons, _ = _validate_inputs(server, prompt, o, validated)
        except Exception as ex:
            valid = False
            tb = traceback.format_tb(ex.__traceback__)
            reasons = [{"type": "exception_during_validation", "message": "Exception when validating node",
                        "details": str(ex),
                        "extra_info": {"exception_type": _full_type_name(ex), "traceback": tb}}]
            validated[o] = (False, reasons, o)
        if valid is True:
            good.append(o)
            continue
        errors.append((o, reasons))
        for node_id, result in validated.items():
            if result[0] is not True and len(result[1]) > 0:
                if node_id not in node_errors:
                    node_errors[node_id] = {"errors": result[1], "dependent_outputs": [],
                                            "class_type": prompt[node_id]["class_type"]}
                node_errors[node_id]["dependent_outputs"].append(o)
    if not good:
        details = "\n".join(f"{e['message']}: {e['details']}" for _, reasons in errors for e in reasons)
        return (False, {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                        "details": details, "extra_info": {}}, [], node_errors)
    return (True, None, good, node_errors)


def format_value(x: Any) -> Any:
    """execution.format_value: tensors become their repr, plain values stay."""
    if x is None or isinstance(x, (int, float, bool, str)):
        return x
    if isinstance(x, np.ndarray):
        return f"tensor(shape={list(x.shape)}, dtype=torch.float32)"
    return str(x)


from .media_nodes import TYPES as _MEDIA_TYPES  # noqa: E402  (they build on NodeType above)

NODE_TYPES.update(_MEDIA_TYPES)
