"""ComfyUI graphs checked before anything is paid, and ComfyUI's own validation answers read back.

- :func:`check_graph`: every node type of the graph exists on the remote (one message listing all
  that are missing) and every override target is a real widget input that takes its value, using
  the remote's ``/object_info`` (any coroutine ``info(class) -> dict | None``).
- :func:`rejected`: a ``POST /prompt`` 400 answer (``{error, node_errors}``) as one RejectedInput
  naming remote node, class and input (five errors at most, then "and N more").
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Optional

from .errors import ProtocolError, RejectedInput, RemoteError
from .graph import node_sort_key

SOCKET_TYPES = frozenset({"IMAGE", "MASK", "LATENT", "MODEL", "CLIP", "VAE", "CONDITIONING", "CONTROL_NET",
                          "AUDIO", "VIDEO", "NOISE", "SAMPLER", "SIGMAS", "GUIDER", "CLIP_VISION",
                          "CLIP_VISION_OUTPUT", "STYLE_MODEL", "UPSCALE_MODEL", "GLIGEN"})
MAX_SUMMARISED = 5
Info = Callable[[str], Awaitable[Optional[dict]]]


async def check_graph(p: Any, graph: dict, targets: list, info: Info) -> None:
    """Raise RejectedInput (through ``p.error``) for unknown node types or unusable targets."""
    classes = sorted({str(n.get("class_type")) for n in graph.values()})
    infos = dict(zip(classes, await asyncio.gather(*(info(c) for c in classes))))
    unknown = [c for c in classes if infos.get(c) is None]
    if unknown:
        where = ", ".join(f"{graph[n]['class_type']} #{n}" for n in sorted(graph, key=node_sort_key)
                          if graph[n]["class_type"] in unknown)
        raise p.error(RejectedInput, f"the remote does not know node type(s) {', '.join(unknown)} (used by {where})",
                      field="workflow", code="unknown_node_type",
                      hint="install the custom nodes that provide them on the remote server, or use a profile whose "
                           "server has them")
    for tgt, o in targets:
        cls = str(graph[tgt.node]["class_type"])
        _check_target(p, tgt, o, cls, infos[cls] or {})


def _check_target(p: Any, tgt: Any, o: Any, cls: str, info: dict) -> None:
    inputs = info.get("input") or {}
    specs: dict = {}
    for cat in ("required", "optional"):
        if isinstance(inputs.get(cat), dict):
            specs.update(inputs[cat])

    def bad(detail: str, hint: str) -> RemoteError:
        return p.error(RejectedInput, f"target {tgt.raw}: {detail}", field="target", remote_node=tgt.node,
                       node_class=cls, hint=hint)

    if tgt.field not in specs:
        raise bad(f"{cls} #{tgt.node} has no input '{tgt.field}'", f"its inputs are: {', '.join(specs) or 'none'}")
    spec = specs[tgt.field]
    typ = spec[0] if isinstance(spec, list) and spec else spec
    opts = spec[1] if isinstance(spec, list) and len(spec) > 1 and isinstance(spec[1], dict) else {}
    if o.kind == "image":
        if not (isinstance(typ, list) or typ == "STRING"):
            raise bad(f"{cls}.{tgt.field} is a {typ} input and cannot take an uploaded image",
                      "target the image (file name) input of a LoadImage node, e.g. 10.image")
        return
    if isinstance(typ, str) and typ in SOCKET_TYPES:
        raise bad(f"{cls}.{tgt.field} is a {typ} socket, not a value",
                  "override a widget input (text, number, file name) instead")
    if isinstance(typ, list):
        if o.kind == "text" and typ and not opts.get("image_upload") and o.value not in typ:
            shown = ", ".join(map(str, typ[:20])) + (f" … ({len(typ)} in all)" if len(typ) > 20 else "")
            raise bad(f"{o.value!r} is not one of the remote's values for {cls}.{tgt.field}", f"use one of: {shown}")
        return
    if typ == "BOOLEAN" and o.kind not in ("boolean", "int"):  # ComfyUI applies bool(): "false" is true
        raise bad(f"{cls}.{tgt.field} takes true or false", "use RemoteInputBoolean")
    if typ in ("INT", "FLOAT"):
        if o.kind not in ("int", "float"):
            raise bad(f"{cls}.{tgt.field} takes a number", "use RemoteInputInt or RemoteInputFloat")
        if typ == "INT" and isinstance(o.value, float) and not float(o.value).is_integer():
            raise bad(f"{cls}.{tgt.field} takes an integer, got {o.value}", "use RemoteInputInt")
        lo, hi = opts.get("min"), opts.get("max")
        if isinstance(lo, (int, float)) and o.value < lo:
            raise bad(f"value {o.value} is smaller than the remote's min {lo}", f"use {lo} … {hi}")
        if isinstance(hi, (int, float)) and o.value > hi:
            raise bad(f"value {o.value} is bigger than the remote's max {hi}", f"use {lo} … {hi}")


def summarise(node_errors: dict) -> tuple[str, Optional[str], Optional[str], Optional[str], list]:
    """(text, first node id, its class, its NODE.input, error types) of ComfyUI's node_errors."""
    lines: list = []
    first: tuple = (None, None, None)
    types: list = []
    for nid in sorted(node_errors, key=lambda n: node_sort_key(str(n))):
        ne = node_errors[nid] if isinstance(node_errors[nid], dict) else {}
        cls = ne.get("class_type") or "?"
        for e in ne.get("errors") if isinstance(ne.get("errors"), list) else []:
            if not isinstance(e, dict):
                continue
            inp = (e.get("extra_info") or {}).get("input_name") if isinstance(e.get("extra_info"), dict) else None
            details = str(e.get("details") or "")
            text = f"{cls} #{nid}" + (f".{inp}" if inp else "") + f": {e.get('message') or e.get('type')}"
            if details and details != inp:
                text += f" ({details[:200]})"
            lines.append(text)
            types.append(e.get("type"))
            if first[0] is None:
                first = (str(nid), cls, f"{nid}.{inp}" if inp else None)
    more = f"; and {len(lines) - MAX_SUMMARISED} more" if len(lines) > MAX_SUMMARISED else ""
    return "; ".join(lines[:MAX_SUMMARISED]) + more, first[0], first[1], first[2], types


def rejected(p: Any, data: Any) -> RemoteError:
    """A ``POST /prompt`` 400 answer as our error (ComfyUI's error types, see the provider's table)."""
    if not isinstance(data, dict):
        return p.error(ProtocolError, "POST /prompt answered 400 without a JSON error")
    err = data.get("error") if isinstance(data.get("error"), dict) else {}
    etype = err.get("type")
    node_errors = data.get("node_errors") if isinstance(data.get("node_errors"), dict) else {}
    if etype == "invalid_prompt":
        return p.error(RejectedInput, f"the remote ComfyUI refused the workflow: {err.get('message')} "
                       f"({err.get('details')})", field="workflow", code=etype,
                       hint="install the missing custom nodes on the remote server, or fix the API-format graph")
    if etype == "prompt_no_outputs":
        return p.error(RejectedInput, "the workflow has no output node", field="workflow", code=etype,
                       hint="add a SaveImage (or PreviewImage) node to the remote workflow")
    if etype == "no_prompt":
        return p.error(RejectedInput, "the remote ComfyUI saw no prompt in the request", code=etype)
    if node_errors:
        summary, node, cls, fld, types = summarise(node_errors)
        hint = "fix these inputs with RemoteInput… targets or in the remote workflow"
        if "custom_validation_failed" in types and "Invalid image file" in summary:
            hint = "the image is not on the remote server: feed it through RemoteInputImage"
        elif "value_not_in_list" in types:
            hint = "use a value the remote server offers (models and files must exist there)"
        return p.error(RejectedInput, f"the remote ComfyUI rejected the workflow: {summary}", field=fld or "workflow",
                       remote_node=node or "", node_class=cls or "", code=etype or "prompt_outputs_failed_validation",
                       hint=hint)
    return p.error(RejectedInput, f"the remote ComfyUI rejected the workflow: {err.get('message') or 'invalid prompt'}",
                   field="workflow", code=etype)
