"""RemoteInput* nodes: build the ordered REMOTE_INPUTS chain (later overrides of a target win)."""
from __future__ import annotations

import sys

from ..engine import media
from ..providers.base import Override

CATEGORY = "remote"
INT_MAX = 0xFFFFFFFFFFFFFFFF  # a seed's range (KSampler's)
INT_MIN = -0x8000000000000000  # and below zero: "-1 = auto" fields, offsets, any signed INT link
TARGET = ("STRING", {"default": "", "tooltip": "NODE_ID.FIELD (e.g. 6.text) for runninghub, tensorart, comfyui "
                                               "and sandbox; a published field name (e.g. prompt) for speedpix and "
                                               "nextgpu"})
CHAIN = ("REMOTE_INPUTS", {"tooltip": "earlier overrides; this node's own comes after them"})


def chain(inputs, override: Override) -> tuple:
    return (tuple(inputs or ()) + (override,),)


class _RemoteInput:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("REMOTE_INPUTS",)
    RETURN_NAMES = ("inputs",)
    FUNCTION = "build"


class RemoteInputText(_RemoteInput):
    DESCRIPTION = "Override a text field of the remote workflow."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"target": TARGET, "text": ("STRING", {"multiline": True, "default": ""})},
                "optional": {"inputs": CHAIN}}

    def build(self, target, text, inputs=None):
        return chain(inputs, Override(target.strip(), "text", text))


class RemoteInputInt(_RemoteInput):
    DESCRIPTION = "Override an integer field (seed, steps, width…) of the remote workflow."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"target": TARGET, "value": ("INT", {"default": 0, "min": INT_MIN, "max": INT_MAX})},
                "optional": {"inputs": CHAIN}}

    def build(self, target, value, inputs=None):
        return chain(inputs, Override(target.strip(), "int", int(value)))


class RemoteInputFloat(_RemoteInput):
    DESCRIPTION = "Override a float field (cfg, denoise…) of the remote workflow."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"target": TARGET,
                             "value": ("FLOAT", {"default": 0.0, "min": -sys.float_info.max,
                                                 "max": sys.float_info.max, "step": 0.01, "round": False})},
                "optional": {"inputs": CHAIN}}

    def build(self, target, value, inputs=None):
        return chain(inputs, Override(target.strip(), "float", float(value)))


class RemoteInputBoolean(_RemoteInput):
    DESCRIPTION = "Override a true/false field (a toggle) of the remote workflow."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"target": TARGET, "value": ("BOOLEAN", {"default": False})},
                "optional": {"inputs": CHAIN}}

    def build(self, target, value, inputs=None):
        return chain(inputs, Override(target.strip(), "boolean", bool(value)))


class RemoteInputImage(_RemoteInput):
    DESCRIPTION = ("Upload one image (lossless PNG; with a mask, alpha = 1 − mask) to an image field of the remote "
                   "workflow.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"target": TARGET, "image": ("IMAGE",)},
                "optional": {"mask": ("MASK",), "inputs": CHAIN}}

    def build(self, target, image, mask=None, inputs=None):
        arr = image.detach().cpu().numpy()
        m = mask.detach().cpu().numpy() if mask is not None else None
        enc = media.encode_image(arr, m, target=target.strip())
        return chain(inputs, Override(target.strip(), "image", enc.data, sha256=enc.sha256,
                                      width=enc.width, height=enc.height))


NODES = {cls.__name__: cls for cls in (RemoteInputText, RemoteInputInt, RemoteInputFloat, RemoteInputBoolean,
                                                      RemoteInputImage)}
DISPLAY = {"RemoteInputText": "Remote Input (Text)", "RemoteInputInt": "Remote Input (Int)",
           "RemoteInputFloat": "Remote Input (Float)", "RemoteInputBoolean": "Remote Input (Boolean)",
           "RemoteInputImage": "Remote Input (Image)"}
