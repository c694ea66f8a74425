"""What the RunningHub fake "runs": built-in workflows and AI Apps, graph validation the way
ComfyUI's ``/prompt`` reports it (``promptTips``), ``nodeInfoList`` application (code 803 on a
mismatch), a deterministic executor producing real PNGs, and the native ComfyUI WebSocket frame
timeline of one run. Pure functions, no server state; :mod:`tests.fakes.runninghub` uses them.

Deterministic results: a SaveImage fed directly by a LoadImage echoes the stored upload byte for
byte (the upload round trip); every other saved image is a solid colour from
:func:`solid_colour` (the texts/prompts upstream and the sampler seed) at the EmptyLatentImage
size (64×64 when there is none), ``batch_size`` images per save node.
"""
from __future__ import annotations

import copy
import hashlib
import json
from typing import Any, Optional

from . import runninghub_media as media
from .toolkit import png_bytes

# ---------------------------------------------------------------- node types the fake knows

CHECKPOINTS = ["MR 3DQ _SDXL V0.2.safetensors", "sd_xl_base_1.0.safetensors", "v1-5-pruned-emaonly.safetensors"]
NODE_TYPES = {
    "CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode", "SaveImage",
    "LoadImage", "PreviewImage", "RH_Translator", "RH_ComfyFluxKontext",
} | media.NODE_TYPES
SAVE_TYPES = {"SaveImage"} | set(media.SAVES)
STEP_TYPES = {"KSampler"}

# ---------------------------------------------------------------- built-in workflows

WF_SOLID = "1979026379880697857"  # the workflow id of the seed's progress example
WF_MULTI = "1979026379880697858"
WF_ECHO = "1979026379880697859"
WF_SLOW = "1979026379880697860"
WF_NOT_RUN = "1979026379880697861"  # saved, never run on the web: create answers 810
WF_PREVIEW = "1979026379880697862"  # only a PreviewImage: success with no files
APP_KONTEXT = "1937084629516193794"
APP_NOT_RUN = "1937084629516193795"  # never run on the web: apiCallDemo lists no fields

EXAMPLE_IMAGE = "example.png"
APP_DEFAULT_IMAGE = "a293d89506f9c484f4ea5695f93024a80cd62ef98f4ee4543faba357536b37ec.jpg"


def _node(cls: str, title: str, **inputs: Any) -> dict:
    return {"class_type": cls, "inputs": inputs, "_meta": {"title": title}}


def _txt2img(text: str, *, steps: int = 4, size: tuple[int, int] = (64, 48), batch: int = 1,
             seed: int = 669816362794144) -> dict:
    """The graph of the documented getJsonApiFormat sample, with small sizes and few steps."""
    return {
        "3": _node("KSampler", "KSampler", scheduler="karras", negative=["7", 0], denoise=1, latent_image=["5", 0],
                   seed=seed, cfg=8, sampler_name="dpmpp_2m", model=["4", 0], positive=["6", 0], steps=steps),
        "4": _node("CheckpointLoaderSimple", "Load Checkpoint", ckpt_name=CHECKPOINTS[0]),
        "37": _node("VAEDecode", "VAE Decode", vae=["4", 2], samples=["3", 0]),
        "5": _node("EmptyLatentImage", "Empty Latent Image", batch_size=batch, width=size[0], height=size[1]),
        "6": _node("CLIPTextEncode", "CLIP Text Encode (Prompt)", text=text, clip=["4", 1]),
        "7": _node("CLIPTextEncode", "CLIP Text Encode (Prompt)", text="", clip=["4", 1]),
        "9": _node("SaveImage", "Save Image", filename_prefix="ComfyUI", images=["37", 0]),
    }


def _multi() -> dict:
    g = _txt2img("a red panda", size=(32, 32), batch=2)
    g.update({
        "13": _node("KSampler", "KSampler", scheduler="karras", negative=["7", 0], denoise=1, latent_image=["15", 0],
                    seed=7, cfg=7, sampler_name="euler", model=["4", 0], positive=["16", 0], steps=3),
        "15": _node("EmptyLatentImage", "Empty Latent Image", batch_size=1, width=32, height=32),
        "16": _node("CLIPTextEncode", "CLIP Text Encode (Prompt)", text="a blue whale", clip=["4", 1]),
        "17": _node("VAEDecode", "VAE Decode", vae=["4", 2], samples=["13", 0]),
        "19": _node("SaveImage", "Save Image", filename_prefix="whale", images=["17", 0]),
    })
    return g


WORKFLOWS: dict[str, dict] = {
    WF_SOLID: {"name": "solid colour (txt2img)", "graph": _txt2img("a cute panda holding a bamboo")},
    WF_MULTI: {"name": "two save nodes, three images", "graph": _multi()},
    WF_ECHO: {"name": "echo an uploaded image", "graph": {
        "10": _node("LoadImage", "Load Image", image=EXAMPLE_IMAGE, upload="image"),
        "9": _node("SaveImage", "Save Image", filename_prefix="echo", images=["10", 0]),
    }},
    WF_SLOW: {"name": "slow txt2img", "graph": _txt2img("a slow snail", steps=40), "slow": True},
    WF_NOT_RUN: {"name": "never run", "graph": _txt2img("never run"), "runnable": False},
    WF_PREVIEW: {"name": "preview only", "graph": {
        "10": _node("LoadImage", "Load Image", image=EXAMPLE_IMAGE, upload="image"),
        "11": _node("PreviewImage", "Preview Image", images=["10", 0]),
    }},
    **media.WORKFLOWS,
}

_APP_GRAPH = {
    "39": _node("LoadImage", "Load Image", image=APP_DEFAULT_IMAGE, upload="image"),
    "52": _node("RH_Translator", "Translator", prompt="给这个女人的发型变成齐耳短发,"),
    "37": _node("RH_ComfyFluxKontext", "Flux Kontext", model="flux-kontext-pro", image=["39", 0], prompt=["52", 0]),
    "60": _node("SaveImage", "Save Image", filename_prefix="kontext", images=["37", 0]),
}
# the documented apiCallDemo fields (samples/runninghub/ai_app_api_call_demo.json)
_APP_FIELDS = [
    {"nodeId": "39", "nodeName": "LoadImage", "fieldName": "image", "fieldValue": APP_DEFAULT_IMAGE,
     "fieldData": "[[\"example.png\"], {\"image_upload\": true}]", "fieldType": "IMAGE",
     "description": "上传图像", "descriptionEn": "Upload image"},
    {"nodeId": "37", "nodeName": "RH_ComfyFluxKontext", "fieldName": "model", "fieldValue": "flux-kontext-pro",
     "fieldData": "[{\"name\":\"flux-kontext-pro\",\"index\":\"flux-kontext-pro\",\"description\":\"flux-kontext-pro 模型（默认）\"},"
                  "{\"name\":\"flux-kontext-max\",\"index\":\"flux-kontext-max\",\"description\":\"flux-kontext-maX 模型\"},"
                  "{\"default\":\"flux-kontext-pro\",\"description\":\"忽略\"}]",
     "fieldType": "LIST", "description": "模型切换", "descriptionEn": "Model switch"},
    {"nodeId": "52", "nodeName": "RH_Translator", "fieldName": "prompt", "fieldValue": "给这个女人的发型变成齐耳短发,",
     "fieldData": "[\"STRING\", {\"default\": \"\", \"multiline\": true}]", "fieldType": "STRING",
     "description": "图像编辑文本输入框", "descriptionEn": "Image editing text input box"},
]
APPS: dict[str, dict] = {
    APP_KONTEXT: {"name": "Flux Kontext单图模式", "graph": _APP_GRAPH, "fields": _APP_FIELDS},
    APP_NOT_RUN: {"name": "never run app", "graph": _APP_GRAPH, "fields": [], "runnable": False},
    **media.APPS,
}


def builtin_files() -> dict[str, bytes]:
    """Input files every fake account can use (the defaults of the built-in graphs)."""
    return {EXAMPLE_IMAGE: png_bytes((10, 20, 30), (16, 16)),
            APP_DEFAULT_IMAGE: png_bytes((200, 150, 100), (16, 16)), **media.builtin_files()}


# ---------------------------------------------------------------- graph helpers

def solid_colour(text: str, seed: int) -> tuple[int, int, int]:
    """The colour the fake paints for a generated image (tests compute expected pixels with it)."""
    d = hashlib.sha256(f"{text}|{seed}".encode()).digest()
    return d[0], d[1], d[2]


def is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def _prompt_tips(ok: bool, outputs: list[str], error: Optional[dict] = None, node_errors: Optional[dict] = None) -> str:
    """ComfyUI's /prompt validation answer, as RunningHub embeds it: a JSON *string*."""
    body: dict[str, Any] = {"result": ok, "error": error}
    if ok:
        body["outputs_to_execute"] = outputs
    body["node_errors"] = node_errors or {}
    return json.dumps(body, ensure_ascii=False)


def output_nodes(graph: dict) -> list[str]:
    return sorted((k for k, v in graph.items() if v.get("class_type") in SAVE_TYPES | {"PreviewImage"}), key=_key)


def validate_graph(graph: dict, files: dict[str, bytes]) -> tuple[bool, str]:
    """(ok, promptTips) like ComfyUI's validate_prompt: unknown class → invalid_prompt; a missing
    checkpoint or input file → value_not_in_list / invalid input in node_errors."""
    for nid, node in graph.items():
        if not isinstance(node, dict) or node.get("class_type") not in NODE_TYPES:
            cls = node.get("class_type") if isinstance(node, dict) else None
            return False, _prompt_tips(False, [], {
                "type": "invalid_prompt", "message": f"Cannot execute because node {cls} does not exist.",
                "details": f"Node ID '#{nid}'", "extra_info": {}})
    outs = output_nodes(graph)
    if not outs:
        return False, _prompt_tips(False, [], {"type": "prompt_no_outputs", "message": "Prompt has no outputs",
                                               "details": "", "extra_info": {}})
    node_errors: dict[str, Any] = {}
    for nid, node in graph.items():
        inputs = node.get("inputs") or {}
        cls = node["class_type"]
        errs = []
        if cls == "CheckpointLoaderSimple" and inputs.get("ckpt_name") not in CHECKPOINTS:
            errs.append({"type": "value_not_in_list", "message": "Value not in list",
                         "details": f"ckpt_name: '{inputs.get('ckpt_name')}' not in [...]", "extra_info": {}})
        if cls == "LoadImage" and not is_link(inputs.get("image")) and inputs.get("image") not in files:
            errs.append({"type": "custom_validation_failed", "message": "Custom validation failed for node",
                         "details": f"image - Invalid image file: {inputs.get('image')}", "extra_info": {}})
        if media.missing_file(node, files):
            errs.append({"type": "custom_validation_failed", "message": "Custom validation failed for node",
                         "details": media.missing_file(node, files), "extra_info": {}})
        for name, value in inputs.items():
            if is_link(value) and value[0] not in graph:
                errs.append({"type": "bad_linked_input", "message": "Bad linked input, must be a length-2 list of "
                             "[node_id, slot_index]", "details": f"{name}", "extra_info": {}})
        if errs:
            node_errors[nid] = {"errors": errs, "dependent_outputs": outs, "class_type": cls}
    if node_errors:
        return False, _prompt_tips(False, [], {"type": "prompt_outputs_failed_validation",
                                               "message": "Prompt outputs failed validation", "details": "",
                                               "extra_info": {}}, node_errors)
    return True, _prompt_tips(True, [o for o in outs if graph[o]["class_type"] in SAVE_TYPES] or outs)


def _coerce(original: Any, value: Any) -> Any:
    """fieldValue "must match the original field type"; the server coerces strings [DOC]."""
    if isinstance(original, bool):
        if isinstance(value, str):
            if value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise ValueError(value)
        return bool(value)
    if isinstance(original, int):
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return int(value)
    if isinstance(original, float):
        return float(value)
    if isinstance(original, str):
        return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return value


def apply_node_info(graph: dict, items: Any) -> tuple[dict, Optional[str]]:
    """Apply ``nodeInfoList`` to a copy of ``graph``; (graph, None) or (graph, reason for 803)."""
    out = copy.deepcopy(graph)
    if items in (None, ""):
        return out, None
    if not isinstance(items, list):
        return out, "nodeInfoList is not a list"
    for item in items:
        if not isinstance(item, dict):
            return out, "nodeInfoList item is not an object"
        nid = item.get("nodeId")
        if isinstance(nid, int) and not isinstance(nid, bool):
            nid = str(nid)  # [APICALL] sends integers
        fld = item.get("fieldName")
        if not isinstance(nid, str) or nid not in out:
            return out, f"node {nid!r} not in workflow"
        inputs = out[nid].setdefault("inputs", {})
        if not isinstance(fld, str) or fld not in inputs:
            return out, f"node {nid} has no field {fld!r}"
        if is_link(inputs[fld]):
            return out, f"field {nid}.{fld} is linked (INFERRED: not overridable)"
        if "fieldValue" not in item:
            return out, f"no fieldValue for {nid}.{fld}"
        try:
            inputs[fld] = _coerce(inputs[fld], item["fieldValue"])
        except (TypeError, ValueError):
            return out, f"fieldValue for {nid}.{fld} does not match the field type"
    return out, None


def _key(nid: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in str(nid).split(":"))


def execution_order(graph: dict) -> list[str]:
    """Topological order of the nodes the outputs depend on (ties by numeric id)."""
    needed: set[str] = set()
    stack = list(output_nodes(graph))
    while stack:
        nid = stack.pop()
        if nid in needed or nid not in graph:
            continue
        needed.add(nid)
        stack.extend(v[0] for v in (graph[nid].get("inputs") or {}).values() if is_link(v))
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(needed):
        ready = [n for n in needed - done
                 if all(v[0] in done for v in (graph[n].get("inputs") or {}).values() if is_link(v))]
        if not ready:  # a cycle: ComfyUI would refuse; run the rest in id order
            ready = sorted(needed - done, key=_key)[:1]
        nxt = sorted(ready, key=_key)[0]
        order.append(nxt)
        done.add(nxt)
    return order


def _closure(graph: dict, nid: str) -> set[str]:
    seen: set[str] = set()
    stack = [nid]
    while stack:
        n = stack.pop()
        if n in seen or n not in graph:
            continue
        seen.add(n)
        stack.extend(v[0] for v in (graph[n].get("inputs") or {}).values() if is_link(v))
    return seen


def render_saves(graph: dict, files: dict[str, bytes]) -> list[tuple[str, list[tuple[str, bytes]]]]:
    """[(save node id, [(extension, bytes), ...])] in execution order."""
    out: list[tuple[str, list[tuple[str, bytes]]]] = []
    for nid in execution_order(graph):
        node = graph[nid]
        if node["class_type"] not in SAVE_TYPES:
            continue
        if node["class_type"] in media.SAVES:
            out.append((nid, media.render(graph, nid, files)))
            continue
        src = (node.get("inputs") or {}).get("images")
        if is_link(src) and graph.get(src[0], {}).get("class_type") == "LoadImage":
            name = graph[src[0]]["inputs"].get("image")
            out.append((nid, [("png", files[name])]))
            continue
        up = _closure(graph, src[0]) if is_link(src) else set()
        texts, seed, size, batch = [], 0, (64, 64), 1
        for n in sorted(up, key=_key):
            ins = graph[n].get("inputs") or {}
            for f in ("text", "prompt"):
                if isinstance(ins.get(f), str):
                    texts.append(ins[f])
            if graph[n]["class_type"] == "KSampler" and isinstance(ins.get("seed"), int):
                seed = ins["seed"]
            if graph[n]["class_type"] == "EmptyLatentImage":
                size = (int(ins.get("width", 64)), int(ins.get("height", 64)))
                batch = max(1, int(ins.get("batch_size", 1)))
        png = png_bytes(solid_colour("|".join(texts), seed), size)
        out.append((nid, [("png", png)] * batch))
    return out


def build_frames(graph: dict, order: list[str], cached: list[str], prompt_id: str, run_s: float, saved: dict,
                 fail: Optional[dict], ts0: int) -> tuple[list[tuple[float, dict]], float]:
    """Native ComfyUI frames of one run as (offset seconds from start, frame), and the run's length.
    ``saved`` maps save node id → [file names]; ``fail`` = {node_id, exception_type, exception_message}."""
    work = [n for n in order if n not in cached]
    units = sum(max(1, int(graph[n]["inputs"].get("steps", 1))) if graph[n]["class_type"] in STEP_TYPES else 1
                for n in work) or 1
    unit = run_s / units
    t = 0.0

    def ts(off: float) -> int:
        return ts0 + int(off * 1000)

    frames: list[tuple[float, dict]] = [
        (0.0, {"type": "execution_start", "data": {"prompt_id": prompt_id, "timestamp": ts(0)}}),
        (0.0, {"type": "execution_cached", "data": {"nodes": list(cached), "prompt_id": prompt_id, "timestamp": ts(0)}}),
    ]
    for nid in work:
        frames.append((t, {"type": "executing", "data": {"node": nid, "display_node": nid, "prompt_id": prompt_id}}))
        node = graph[nid]
        if node["class_type"] in STEP_TYPES:
            steps = max(1, int(node["inputs"].get("steps", 1)))
            for i in range(1, steps + 1):
                t += unit
                if fail and fail["node_id"] == nid and i > steps // 2:
                    break
                frames.append((t, {"type": "progress", "data": {"value": i, "max": steps, "prompt_id": prompt_id,
                                                                "node": nid}}))
        else:
            t += unit
        if fail and fail["node_id"] == nid:
            executed = [n for n in order if n in cached or order.index(n) < order.index(nid)]
            frames.append((t, {"type": "execution_error", "data": {
                "prompt_id": prompt_id, "node_id": nid, "node_type": node["class_type"], "executed": executed,
                "exception_message": fail["exception_message"], "exception_type": fail["exception_type"],
                "traceback": fail["traceback"], "current_inputs": {}, "current_outputs": [], "timestamp": ts(t)}}))
            frames.append((t, {"type": "executing", "data": {"node": None, "prompt_id": prompt_id}}))
            return frames, t
        if nid in saved:
            frames.append((t, {"type": "executed", "data": {
                "node": nid, "display_node": nid, "prompt_id": prompt_id,
                "output": {"images": [{"filename": f, "subfolder": "", "type": "output"} for f in saved[nid]]}}}))
    frames.append((run_s, {"type": "execution_success", "data": {"prompt_id": prompt_id, "timestamp": ts(run_s)}}))
    frames.append((run_s, {"type": "executing", "data": {"node": None, "prompt_id": prompt_id}}))
    return frames, run_s
