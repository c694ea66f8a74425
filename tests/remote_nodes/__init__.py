"""Sandbox node types for a REAL remote ComfyUI (test-only custom-node pack).

The sandbox provider's fake server (``tests/fakes/comfyui.py``) knows three deterministic node
types besides ComfyUI's core ones. This pack gives a real ComfyUI the same three, with the same
inputs, outputs and behaviour, so the sandbox workflows (``providers/sandbox_workflows/*.json``)
run unchanged on a real server:

    ../shared/tools/comfyui start auto --custom-nodes tests/remote_nodes --as sandbox_remote_nodes

- ``SandboxSolid``    text (a colour name such as "red", or "#rrggbb"), width, height -> IMAGE
- ``SandboxSlowPass`` image, steps, step_seconds -> the same IMAGE; async, one ProgressBar step
  per ``step_seconds``, checks ComfyUI's interrupt flag every step; never cached (IS_CHANGED NaN)
  so every run shows progress and can be cancelled
- ``SandboxFail``     image, message -> raises RuntimeError(message) while executing

Only imported by ComfyUI (it imports ``comfy``); the extension never imports it.
"""
import asyncio

import numpy as np
import torch
from PIL import ImageColor

import comfy.model_management
import comfy.utils


def _rgb(text):
    try:
        return ImageColor.getrgb(str(text).strip())[:3]
    except ValueError:
        raise ValueError(f"unknown colour {text!r}: use a colour name like 'red' or '#rrggbb'") from None


class SandboxSolid:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text": ("STRING", {"default": "red"}),
            "width": ("INT", {"default": 64, "min": 1, "max": 4096, "step": 1}),
            "height": ("INT", {"default": 64, "min": 1, "max": 4096, "step": 1}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "solid"
    CATEGORY = "sandbox"
    DESCRIPTION = "A solid colour image from a colour name or #rrggbb."

    def solid(self, text, width, height):
        r, g, b = _rgb(text)
        arr = np.empty((1, height, width, 3), dtype=np.float32)
        arr[..., 0] = np.float32(r / 255.0)
        arr[..., 1] = np.float32(g / 255.0)
        arr[..., 2] = np.float32(b / 255.0)
        return (torch.from_numpy(arr),)


class SandboxSlowPass:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE",),
            "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
            "step_seconds": ("FLOAT", {"default": 0.25, "min": 0.0, "max": 60.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "sandbox"
    DESCRIPTION = "Passes the image through after steps x step_seconds, reporting progress each step."

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")

    async def run(self, image, steps, step_seconds):
        pbar = comfy.utils.ProgressBar(steps)
        for _ in range(steps):
            await asyncio.sleep(step_seconds)
            comfy.model_management.throw_exception_if_processing_interrupted()
            pbar.update(1)
        return (image,)


class SandboxFail:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE",),
            "message": ("STRING", {"default": "sandbox failure"}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "fail"
    CATEGORY = "sandbox"
    DESCRIPTION = "Raises RuntimeError(message) while executing."

    def fail(self, image, message):
        raise RuntimeError(message)


NODE_CLASS_MAPPINGS = {
    "SandboxSolid": SandboxSolid,
    "SandboxSlowPass": SandboxSlowPass,
    "SandboxFail": SandboxFail,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "SandboxSolid": "Sandbox Solid",
    "SandboxSlowPass": "Sandbox Slow Pass",
    "SandboxFail": "Sandbox Fail",
}
