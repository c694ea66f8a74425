"""RemoteSubmit, RemoteWait, RemoteFetchImage, RemoteRun, RemoteRecover: parse widgets → one
engine call → tensors. The engine does the work on its own loop (nodes/runtime.py)."""
from __future__ import annotations

import asyncio

import torch

from ..engine import results
from ..engine.tasks import new_task_id
from ..providers.base import RemoteError
from . import runtime
from .runtime import RemoteResult, TaskHandle

CATEGORY = "remote"
WORKFLOW = ("STRING", {"multiline": True, "default": "",
                       "tooltip": "runninghub: workflow id, app:<webappId> or an API graph; tensorart: template id "
                                  "or an API graph; speedpix: workflow_id[@alias|#version]; nextgpu: app title; "
                                  "comfyui/sandbox: an API-format graph or a file name from the workflows folder"})
TIMEOUT = ("INT", {"default": 3600, "min": 0, "max": 7 * 24 * 3600,
                   "tooltip": "seconds to wait (0 = no limit); on timeout the task stays tracked"})
CANCEL = ("BOOLEAN", {"default": True, "tooltip": "cancel the remote task when the local prompt is interrupted"})
REUSE = ("BOOLEAN", {"default": True, "tooltip": "return an earlier identical result at no cost"})
SELECT = ("STRING", {"default": "", "tooltip": "empty = every image; a remote node id (9, 12:5); a glob on file "
                                               "name or output field (*.png); comma-separated = union"})


def _profile_combo():
    names = runtime.profile_names()
    return (names, {"default": "sandbox", "tooltip": "which profile (provider + endpoint + key) runs this"})


async def _submit(profile: str, workflow: str, inputs, reuse: bool, node_id, label: str,
                  deadline_s: float = 0) -> TaskHandle:
    """Submit through the engine, showing the submit phase on the node (uploads, a wait for a free
    slot or for capacity). An interrupt stops it before anything is paid, or cancels the remote
    task once it exists; the deadline (RemoteRun's timeout_s) bounds everything before the service
    accepted the task."""
    m = runtime.manager()
    task_id = new_task_id()
    fut = asyncio.wrap_future(m.call(m.submit(profile, workflow, list(inputs or ()), reuse=reuse,
                                              owner=str(node_id), task_id=task_id,
                                              deadline_s=deadline_s or None)))
    try:
        task_id = await runtime.follow(task_id, fut, node_id=node_id, node_label=label)
    except RemoteError as e:
        runtime.bump_generation(node_id)
        raise e.with_context(node=label) from None
    except BaseException as e:
        runtime.stop_waiting(task_id, str(node_id), e, cancel_on_interrupt=True)
        raise
    snap = m.snapshot(task_id) or {}
    return TaskHandle(task_id, profile, snap.get("provider", ""), snap.get("remote_id"), owner=str(node_id),
                      reused=bool(snap.get("reused")))


class RemoteSubmit:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("REMOTE_TASK",)
    RETURN_NAMES = ("task",)
    FUNCTION = "run"
    DESCRIPTION = "Submit a workflow to a remote service; returns as soon as the service accepted it."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"profile": _profile_combo(), "workflow": WORKFLOW},
                "optional": {"inputs": ("REMOTE_INPUTS",), "reuse_result": REUSE},
                "hidden": {"unique_id": "UNIQUE_ID"}}

    @classmethod
    def IS_CHANGED(cls, unique_id=None, **kwargs):
        return runtime.generation(unique_id)

    async def run(self, profile, workflow, inputs=None, reuse_result=True, unique_id=None):
        handle = await _submit(profile, workflow, inputs, reuse_result, unique_id, f"RemoteSubmit #{unique_id}")
        return (handle,)


class RemoteWait:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("REMOTE_RESULT", "STRING")
    RETURN_NAMES = ("result", "summary")
    FUNCTION = "run"
    DESCRIPTION = "Wait for a remote task with live progress; interrupt cancels it where the provider can."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"task": ("REMOTE_TASK",)},
                "optional": {"timeout_s": TIMEOUT, "cancel_on_interrupt": CANCEL},
                "hidden": {"unique_id": "UNIQUE_ID"}}

    async def run(self, task, timeout_s=3600, cancel_on_interrupt=True, unique_id=None):
        label = f"RemoteWait #{unique_id}"
        snap = await runtime.wait_for_task(task, node_id=unique_id, timeout_s=timeout_s,
                                           cancel_on_interrupt=cancel_on_interrupt, node_label=label)
        runtime.raise_for_state(snap, task, label)
        return (runtime.result_for(snap), runtime.summary(snap))


def fetch_images(result: RemoteResult, select: str):
    chosen = results.select_outputs(list(result.outputs), select)
    image, mask = results.load_images(chosen)
    return torch.from_numpy(image), torch.from_numpy(mask), len(chosen)


class RemoteFetchImage:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "MASK", "INT")
    RETURN_NAMES = ("image", "mask", "count")
    FUNCTION = "run"
    DESCRIPTION = "The result's images as IMAGE (exact v/255 of the file) and MASK (1 − alpha)."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"result": ("REMOTE_RESULT",)}, "optional": {"select": SELECT}}

    async def run(self, result, select=""):
        return await asyncio.to_thread(fetch_images, result, select)


class RemoteRun:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "MASK", "REMOTE_RESULT")
    RETURN_NAMES = ("image", "mask", "result")
    FUNCTION = "run"
    DESCRIPTION = ("Submit, wait and fetch the images in one node. With only `result` connected (a video, sound "
                   "or text workflow: into RemoteFetchVideo/Audio/Text/File) no image is fetched.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"profile": _profile_combo(), "workflow": WORKFLOW},
                "optional": {"inputs": ("REMOTE_INPUTS",), "timeout_s": TIMEOUT, "select": SELECT,
                             "reuse_result": REUSE, "cancel_on_interrupt": CANCEL},
                "hidden": {"unique_id": "UNIQUE_ID", "prompt": "PROMPT"}}

    @classmethod
    def IS_CHANGED(cls, unique_id=None, **kwargs):
        return runtime.generation(unique_id)

    async def run(self, profile, workflow, inputs=None, timeout_s=3600, select="", reuse_result=True,
                  cancel_on_interrupt=True, unique_id=None, prompt=None):
        label = f"RemoteRun #{unique_id}"
        handle = await _submit(profile, workflow, inputs, reuse_result, unique_id, label, deadline_s=timeout_s)
        snap = await runtime.wait_for_task(handle, node_id=unique_id, timeout_s=timeout_s,
                                           cancel_on_interrupt=cancel_on_interrupt, node_label=label)
        runtime.raise_for_state(snap, handle, label)
        result = runtime.result_for(snap)
        if not _linked(prompt, unique_id, (0, 1)):  # only `result` is used (e.g. into RemoteFetchVideo)
            return (None, None, result)
        image, mask, _ = await asyncio.to_thread(fetch_images, result, select)
        return (image, mask, result)


def _linked(prompt, node_id, slots) -> bool:
    """Whether a node of the prompt takes one of these outputs of ``node_id`` (True when unknown)."""
    if not isinstance(prompt, dict) or node_id is None:
        return True
    for node in prompt.values():
        for value in (node.get("inputs") or {}).values() if isinstance(node, dict) else ():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) == str(node_id) and value[1] in slots:
                return True
    return False


class RemoteRecover:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("REMOTE_RESULT",)
    RETURN_NAMES = ("result",)
    FUNCTION = "run"
    DESCRIPTION = ("Get the result of an earlier task (local or remote id), after a timeout, a crash or a "
                   "restart; waits if it is still running.")

    @classmethod
    def INPUT_TYPES(cls):
        names = runtime.profile_names()
        return {"required": {"task_id": ("STRING", {"default": ""})},
                "optional": {"profile": (["(from journal)"] + names, {"default": "(from journal)"}),
                             "timeout_s": TIMEOUT},
                "hidden": {"unique_id": "UNIQUE_ID"}}

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")  # free to run; always look again

    async def run(self, task_id, profile="(from journal)", timeout_s=3600, unique_id=None):
        m = runtime.manager()
        prof = None if profile in ("", "(from journal)") else profile
        local_id = await asyncio.wrap_future(m.call(m.recover(task_id, prof)))
        snap = m.snapshot(local_id) or {}
        handle = TaskHandle(local_id, snap.get("profile", prof or ""), snap.get("provider", ""),
                            snap.get("remote_id"))
        label = f"RemoteRecover #{unique_id}"
        snap = await runtime.wait_for_task(handle, node_id=unique_id, timeout_s=timeout_s,
                                           cancel_on_interrupt=False, node_label=label)
        runtime.raise_for_state(snap, handle, label)
        return (runtime.result_for(snap),)


NODES = {cls.__name__: cls for cls in (RemoteSubmit, RemoteWait, RemoteFetchImage, RemoteRun, RemoteRecover)}
DISPLAY = {"RemoteSubmit": "Remote Submit", "RemoteWait": "Remote Wait", "RemoteFetchImage": "Remote Fetch Image",
           "RemoteRun": "Remote Run", "RemoteRecover": "Remote Recover"}
