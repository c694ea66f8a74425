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

It also gives ComfyUI 0.3.64 the jobs routes of newer servers, so tests can run the ``comfyui``
provider's jobs path against a real server (answers built by ``sandbox/jobs.py`` from 0.3.64's own
``PromptQueue``; facts in ``docs/providers/comfyui.md``):

- ``GET /api/jobs`` (``status``, ``workflow_id``, ``sort_by``, ``sort_order``, ``limit``, ``offset``)
- ``GET /api/jobs/{id}`` → the job (history entries with ``execution_error``, ``outputs``,
  ``execution_status``) or 404 ``{"error": "Job not found"}``
- ``POST /api/jobs/{id}/cancel`` → 200 ``{"cancelled": bool}``: deletes the prompt if pending,
  interrupts only if that prompt runs (checked under the queue's mutex); finished or unknown: false

Only imported by ComfyUI (it imports ``comfy``); the extension never imports it.
"""
import asyncio
import importlib.util
import logging
from pathlib import Path

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


# ---------------------------------------------------------------------------- the jobs routes of newer servers

def _jobs_answers():
    """``sandbox/jobs.py`` of the repository this pack is symlinked from (standard library only)."""
    path = Path(__file__).resolve().parents[2] / "sandbox" / "jobs.py"
    spec = importlib.util.spec_from_file_location("sandbox_remote_nodes_jobs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _add_jobs_routes(prompt_server):
    from aiohttp import web

    import nodes

    jobs = _jobs_answers()
    q = prompt_server.prompt_queue
    routes = prompt_server.routes

    def items(queue):
        return [item[:5] for item in queue]  # like newer servers: without the sensitive 6th element

    @routes.get("/api/jobs")
    async def list_jobs(request):
        running, pending = q.get_current_queue_volatile()
        status, body = jobs.list_jobs(request.rel_url.query, items(running), items(pending), q.get_history())
        return web.json_response(body, status=status)

    @routes.get("/api/jobs/{job_id}")
    async def get_job(request):
        job_id = request.match_info["job_id"]
        running, pending = q.get_current_queue_volatile()
        job = jobs.get_job(job_id, items(running), items(pending), q.get_history(prompt_id=job_id))
        return web.json_response(jobs.NOT_FOUND if job is None else job, status=404 if job is None else 200)

    def interrupt_if_running(prompt_id):
        with q.mutex:  # the check and the interrupt together, so it cannot hit the next prompt
            if any(item[1] == prompt_id for item in q.currently_running.values()):
                logging.info(f"Cancelling running prompt {prompt_id}")
                nodes.interrupt_processing()
                return True
        return False

    def dequeue(prompt_id):
        logging.info(f"Cancelling pending prompt {prompt_id}")
        return q.delete_queue_item(lambda item: item[1] == prompt_id)

    @routes.post("/api/jobs/{job_id}/cancel")
    async def cancel_job(request):
        running, pending = q.get_current_queue()
        answer = jobs.cancel(request.match_info["job_id"], running, pending, interrupt_if_running, dequeue)
        return web.json_response(answer)


def _install_jobs_routes():
    try:
        import server
    except ImportError:
        return
    prompt_server = getattr(server.PromptServer, "instance", None)
    if prompt_server is None:
        return
    try:
        _add_jobs_routes(prompt_server)
    except OSError as e:  # a copy of the pack, away from the repository: the node types still load
        logging.warning(f"sandbox_remote_nodes: no jobs routes ({e})")


_install_jobs_routes()
