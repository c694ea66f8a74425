"""API-format ComfyUI graphs: parsing (with clear errors for UI-format exports) and applying
``NODE_ID.FIELD`` overrides. Shared by every provider that takes a graph."""
from __future__ import annotations

import json
import re
from typing import Any

from .errors import RejectedInput


def looks_like_ui_workflow(data: Any) -> bool:
    return isinstance(data, dict) and "nodes" in data and "links" in data


def parse_api_graph(text: str, *, provider: str = "", profile: str = "") -> dict:
    """Parse an API-format graph from JSON text, with clear errors for UI-format exports."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as e:
        raise RejectedInput(f"workflow is not valid JSON ({e.__class__.__name__}: {e})", field="workflow",
                            provider=provider, profile=profile,
                            hint="paste an API-format graph (ComfyUI: Workflow → Export (API))") from None
    if looks_like_ui_workflow(data):
        raise RejectedInput("workflow is in UI format (it has 'nodes' and 'links')", field="workflow",
                            provider=provider, profile=profile,
                            hint="export it with Workflow → Export (API) in ComfyUI and use that file")
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict):
        data = data["prompt"]  # a /prompt request body
    if not isinstance(data, dict) or not data or not all(
            isinstance(v, dict) and "class_type" in v for v in data.values()):
        raise RejectedInput("workflow is not an API-format graph (expected {node_id: {class_type, inputs}})",
                            field="workflow", provider=provider, profile=profile,
                            hint="export it with Workflow → Export (API) in ComfyUI")
    return data


def apply_overrides(graph: dict, spec: Any, *, provider: str = "", profile: str = "",
                    check_fields: bool = True) -> dict:
    """Return a copy of an API graph with every NODE_ID.FIELD override applied (last wins).
    A target whose node is missing is an error naming the target and listing the node ids."""
    out = json.loads(json.dumps(graph))
    for tgt, o in spec.targets("node"):
        node = out.get(tgt.node)
        if node is None:
            ids = ", ".join(sorted(out, key=node_sort_key)[:30])
            raise RejectedInput(f"target {tgt.raw}: the workflow has no node {tgt.node!r}", field="target",
                                provider=provider, profile=profile, hint=f"node ids in this workflow: {ids}")
        inputs = node.setdefault("inputs", {})
        if check_fields and tgt.field not in inputs:
            names = ", ".join(sorted(k for k in inputs)) or "none"
            raise RejectedInput(f"target {tgt.raw}: node {tgt.node} ({node.get('class_type')}) has no input "
                                f"{tgt.field!r}", field="target", provider=provider, profile=profile,
                                hint=f"its inputs are: {names}")
        inputs[tgt.field] = o.value
    return out


def node_sort_key(node_id: str) -> tuple:
    parts = re.split(r"[:]", node_id)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


