"""API-format graphs ⇄ UI-format workflows, as ComfyUI's 1.27 frontend reads and writes them.

Pure functions over JSON data and ComfyUI's ``/object_info`` (no ComfyUI import):

- :func:`api_to_ui` lays an API-format graph out left to right by depth and writes the UI workflow
  (schema 0.4) the frontend loads: per node ``inputs`` (the socket inputs, plus any widget input that
  is linked), ``outputs``, ``widgets_values`` in the frontend's widget order, and ``links``.
- :func:`ui_to_api` is the inverse, as the frontend's ``graphToPrompt`` does it: widget values by
  name, links as ``[node_id, slot]``, ``_meta.title`` = the node's title.

How the 1.27 frontend orders widgets (``services/litegraphService.ts``, ``utils/nodeDefOrderingUtil.ts``):
every input whose type has a widget (INT, FLOAT, STRING, BOOLEAN, COMBO…) and no ``forceInput`` gets
one, in ``input_order`` (required, then optional). Extra widgets that are saved in ``widgets_values``
but never sent to the API (``options.serialize = false``, ``widget.serialize`` unset):
``control_after_generate`` right after an INT with ``control_after_generate`` or named
``seed``/``noise_seed`` (and after a COMBO with ``control_after_generate``, plus
``control_filter_list``), and the ``upload`` button of an ``image_upload`` combo (LoadImage), last,
whose saved value is ``"image"``.

Regenerate the committed example workflows (``example_workflows/<name>.json``) from their API-format
sources (``example_workflows/api/<name>.json``; ComfyUI lists only top-level files of
``example_workflows/`` in its template browser, so the sources there are not shown)::

    python -m tests.e2e.workflow_format --object-info http://127.0.0.1:8188   # a ComfyUI with this pack
    python -m tests.e2e.workflow_format --object-info object_info.json        # or a saved /object_info
    python -m tests.e2e.workflow_format --start                               # start one (tests/e2e/harness)
    python -m tests.e2e.workflow_format --object-info URL --check             # exit 1 if anything is stale

Run it from the repository root.
"""
from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "example_workflows"
SOURCES = EXAMPLES / "api"

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "MARKDOWN"})
SEED_NAMES = ("seed", "noise_seed")
UPLOAD_OPTIONS = ("image_upload", "video_upload", "animated_image_upload")
# widgets the frontend itself adds to a node type (not in /object_info): saved in no workflow, but
# graphToPrompt sends them with these values (PreviewAny's read-only "preview" text box)
FRONTEND_INPUTS = {"PreviewAny": {"preview": ""}}
OPTIONAL_SHAPE = 7  # RenderShape.HollowCircle: how the frontend draws (and saves) optional sockets
COLUMN_GAP, ROW_GAP, ORIGIN = 80, 40, (40, 40)


# ---------------------------------------------------------------- node definitions (object_info)

def _is_combo(spec: list) -> bool:
    return isinstance(spec[0], list) or spec[0] == "COMBO"


def combo_options(spec: list) -> list:
    """The choices of a COMBO input spec, V1 (``[[…], {…}]``) or V3 (``["COMBO", {"options": […]}]``)."""
    if isinstance(spec[0], list):
        return spec[0]
    return list((spec[1] if len(spec) > 1 else {}).get("options", []))


def input_type(spec: list) -> str:
    return "COMBO" if _is_combo(spec) else str(spec[0])


def _options(spec: list) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def ordered_inputs(info: dict) -> list[tuple[str, list, bool]]:
    """``(name, spec, optional)`` in the frontend's order: ``input_order`` required, then optional,
    then anything not named there."""
    inp = info.get("input", {})
    order = info.get("input_order") or {}
    out, seen = [], set()
    for section, optional in (("required", False), ("optional", True)):
        specs = inp.get(section) or {}
        for name in list(order.get(section) or []) + list(specs):
            if name in specs and name not in seen:
                seen.add(name)
                out.append((name, specs[name], optional))
    return out


def is_widget(spec: list) -> bool:
    return input_type(spec) in WIDGET_TYPES and not _options(spec).get("forceInput", False)


def widget_inputs(info: dict) -> list[tuple[str, list]]:
    """The inputs that are widgets, in widget order: ``(name, spec)``."""
    return [(name, spec) for name, spec, _ in ordered_inputs(info) if is_widget(spec)]


def socket_inputs(info: dict) -> list[tuple[str, list, bool]]:
    return [(name, spec, opt) for name, spec, opt in ordered_inputs(info) if not is_widget(spec)]


def widget_layout(info: dict) -> list[tuple[str | None, list | None]]:
    """Every widget the frontend creates that has a slot in ``widgets_values``, in order:
    ``(input name, spec)`` for widget inputs, ``(None, None)`` for the extra widgets that are saved
    but never sent to the API (value control, combo filter, upload button)."""
    layout: list[tuple[str | None, list | None]] = []
    uploads = 0
    for name, spec in widget_inputs(info):
        layout.append((name, spec))
        opts = _options(spec)
        kind = input_type(spec)
        if kind == "INT" and opts.get("control_after_generate", name in SEED_NAMES):
            layout.append((None, None))
        elif kind == "COMBO" and opts.get("control_after_generate"):
            layout += [(None, None), (None, None)]
        if kind == "COMBO" and any(opts.get(k) for k in UPLOAD_OPTIONS):
            uploads += 1
    layout += [(None, None)] * uploads  # the upload buttons come after every input
    return layout


def extra_widget_values(info: dict, name: str) -> list:
    """Saved values of the extra widgets that follow widget input ``name`` (frontend defaults)."""
    spec = dict(widget_inputs(info))[name]
    opts, kind = _options(spec), input_type(spec)
    if kind == "INT" and opts.get("control_after_generate", name in SEED_NAMES):
        return ["fixed"]
    if kind == "COMBO" and opts.get("control_after_generate"):
        return ["fixed", ""]
    return []


def upload_button_values(info: dict) -> list:
    return ["image" for _, spec in widget_inputs(info)
            if input_type(spec) == "COMBO" and any(_options(spec).get(k) for k in UPLOAD_OPTIONS)]


def output_slots(info: dict) -> list[tuple[str, str]]:
    types = info.get("output") or []
    names = info.get("output_name") or []
    return [(names[i] if i < len(names) and names[i] else (t if isinstance(t, str) else "COMBO"),
             "COMBO" if isinstance(t, list) else t) for i, t in enumerate(types)]


# ---------------------------------------------------------------- API → UI

def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int)) \
        and isinstance(value[1], int) and not isinstance(value[1], bool)


def _depths(api: dict) -> dict[str, int]:
    """Longest path from a node without linked inputs."""
    depth: dict[str, int] = {}

    def visit(nid: str, stack: tuple = ()) -> int:
        if nid in depth:
            return depth[nid]
        if nid in stack:
            raise ValueError(f"cycle through node {nid}")
        ups = [str(v[0]) for v in api[nid]["inputs"].values() if _is_link(v)]
        depth[nid] = 1 + max((visit(u, stack + (nid,)) for u in ups), default=-1)
        return depth[nid]

    for nid in api:
        visit(nid)
    return depth


def _execution_order(api: dict) -> list[str]:
    """Kahn's order, smallest id first among ready nodes (what litegraph's computeExecutionOrder gives
    for these small graphs)."""
    ups = {nid: {str(v[0]) for v in n["inputs"].values() if _is_link(v)} for nid, n in api.items()}
    done: list[str] = []
    while len(done) < len(api):
        ready = sorted((n for n in api if n not in done and ups[n] <= set(done)), key=_id_key)
        if not ready:
            raise ValueError("the graph has a cycle")
        done.append(ready[0])
    return done


def _id_key(nid: Any) -> tuple:
    s = str(nid)
    return (0, int(s), "") if s.isdigit() else (1, 0, s)


def _size(info: dict, title: str) -> list[int]:
    """A node size that shows every slot, widget and the whole title (the frontend keeps a saved
    size that is large enough, and widens a node whose title does not fit — onto its neighbour)."""
    widgets = widget_inputs(info)
    multiline = sum(1 for _, s in widgets if input_type(s) == "STRING" and _options(s).get("multiline"))
    rows = max(len(socket_inputs(info)), len(output_slots(info)))
    width = max(400 if multiline else 320, -(-int(60 + 7.8 * len(title)) // 10) * 10)
    height = 30 + 24 * rows + 26 * (len(widget_layout(info)) - multiline) + 120 * multiline
    if upload_button_values(info):
        height = max(height, 320)  # room for the preview
    elif info.get("output_node") and not info.get("output"):
        height = max(height, 270)
    return [width, height]


def api_to_ui(api_prompt: dict, object_info: dict) -> dict:
    """An API-format graph (node ids must be integers as text) → a UI-format workflow, nodes laid
    out left to right by depth. ``_meta.title`` becomes the node's ``title`` when it differs from
    the display name; a widget input the graph leaves out gets its default (the frontend then sends
    it, so such a graph does not come back unchanged from :func:`ui_to_api`)."""
    for nid, node in api_prompt.items():
        if not str(nid).isdigit():
            raise ValueError(f"node id {nid!r}: UI workflows need integer node ids")
        if node["class_type"] not in object_info:
            raise KeyError(f"node {nid}: unknown node type {node['class_type']!r}")
    depth = _depths(api_prompt)
    order = {nid: i for i, nid in enumerate(_execution_order(api_prompt))}
    ids = sorted(api_prompt, key=_id_key)

    titles = {nid: (api_prompt[nid].get("_meta") or {}).get("title")
              or object_info[api_prompt[nid]["class_type"]].get("display_name", api_prompt[nid]["class_type"])
              for nid in ids}
    sizes = {nid: _size(object_info[api_prompt[nid]["class_type"]], titles[nid]) for nid in ids}
    # positions: one column per depth, stacked top to bottom in execution order
    columns: dict[int, list[str]] = {}
    for nid in sorted(ids, key=lambda n: order[n]):
        columns.setdefault(depth[nid], []).append(nid)
    pos: dict[str, list[int]] = {}
    x = ORIGIN[0]
    for d in sorted(columns):
        y = ORIGIN[1]
        for nid in columns[d]:
            pos[nid] = [x, y]
            y += sizes[nid][1] + ROW_GAP + 30  # + the title bar
        x += max(sizes[n][0] for n in columns[d]) + COLUMN_GAP

    # input slots and links
    links: list[list] = []
    out_links: dict[tuple[str, int], list[int]] = {}
    ui_inputs: dict[str, list[dict]] = {}
    for nid in ids:
        node = api_prompt[nid]
        info = object_info[node["class_type"]]
        slots: list[dict] = []
        known = {name for name, _, _ in ordered_inputs(info)} | set(FRONTEND_INPUTS.get(node["class_type"], ()))
        for name in node["inputs"]:
            if name not in known:
                raise KeyError(f"node {nid} ({node['class_type']}): no input {name!r}")
        entries = [(name, spec, opt, False) for name, spec, opt in socket_inputs(info)]
        # a widget input fed by a link keeps its slot (after the sockets, as the frontend saves it)
        entries += [(name, spec, opt, True) for name, spec, opt in ordered_inputs(info)
                    if is_widget(spec) and _is_link(node["inputs"].get(name))]
        for name, spec, opt, as_widget in entries:
            slot: dict[str, Any] = {"name": name}
            if opt:
                slot["shape"] = OPTIONAL_SHAPE
            slot["type"] = input_type(spec)
            if as_widget:
                slot["widget"] = {"name": name}
            value = node["inputs"].get(name)
            if _is_link(value):
                src, src_slot = str(value[0]), int(value[1])
                if src not in api_prompt:
                    raise KeyError(f"node {nid}: input {name!r} links to missing node {src}")
                src_outputs = output_slots(object_info[api_prompt[src]["class_type"]])
                if src_slot >= len(src_outputs):
                    raise IndexError(f"node {nid}: input {name!r} links to output {src_slot} of node {src}")
                link_id = len(links) + 1
                links.append([link_id, int(src), src_slot, int(nid), len(slots), src_outputs[src_slot][1]])
                out_links.setdefault((src, src_slot), []).append(link_id)
                slot["link"] = link_id
            elif value is not None and not as_widget:
                raise ValueError(f"node {nid}: socket input {name!r} must be a link, not {value!r}")
            else:
                slot["link"] = None
            slots.append(slot)
        ui_inputs[nid] = slots

    nodes = []
    for nid in ids:
        node = api_prompt[nid]
        ctype = node["class_type"]
        info = object_info[ctype]
        values: list = []
        for name, spec in widget_inputs(info):
            value = node["inputs"].get(name, _options(spec).get("default"))
            if _is_link(value):  # linked widget input: the widget keeps its default
                value = _options(spec).get("default")
            if isinstance(value, dict) and set(value) == {"__value__"}:
                value = value["__value__"]
            values.append(value)
            values += extra_widget_values(info, name)
        values += upload_button_values(info)
        ui: dict[str, Any] = {
            "id": int(nid), "type": ctype, "pos": pos[nid], "size": sizes[nid], "flags": {},
            "order": order[nid], "mode": 0, "inputs": ui_inputs[nid],
            "outputs": [{"name": name, "type": typ, "links": out_links.get((nid, i)) or None, "slot_index": i}
                        for i, (name, typ) in enumerate(output_slots(info))],
        }
        if titles[nid] != info.get("display_name", ctype):
            ui["title"] = titles[nid]
        ui["properties"] = {"Node name for S&R": ctype}
        ui["widgets_values"] = values
        nodes.append(ui)
    return {"last_node_id": max((int(n) for n in ids), default=0), "last_link_id": len(links), "nodes": nodes,
            "links": links, "groups": [], "config": {}, "extra": {}, "version": 0.4}


# ---------------------------------------------------------------- UI → API

def ui_to_api(ui_workflow: dict, object_info: dict) -> dict:
    """A UI-format workflow → the API prompt the frontend's ``graphToPrompt`` would send: muted (2)
    and bypassed (4) nodes and nodes unknown to ``object_info`` (notes, reroutes) are left out,
    widget values go by name, linked inputs become ``[node_id, slot]``, list values are wrapped as
    ``{"__value__": […]}`` and ``_meta.title`` is the node's title (default: its display name)."""
    links = {link[0]: link for link in ui_workflow.get("links") or []}
    nodes = {str(n["id"]): n for n in ui_workflow.get("nodes") or []}
    out: dict[str, dict] = {}
    for nid, node in nodes.items():
        info = object_info.get(node["type"])
        if info is None or node.get("mode", 0) in (2, 4):
            continue
        inputs: dict[str, Any] = {}
        values = list(node.get("widgets_values") or [])
        for (name, _), value in zip(widget_layout(info), values):
            if name is not None:
                inputs[name] = {"__value__": value} if isinstance(value, list) else value
        inputs.update(FRONTEND_INPUTS.get(node["type"], {}))
        for slot in node.get("inputs") or []:
            link = links.get(slot.get("link")) if slot.get("link") is not None else None
            if link is None:
                continue
            inputs[slot["name"]] = [str(link[1]), int(link[2])]
        out[nid] = {"inputs": inputs, "class_type": node["type"],
                    "_meta": {"title": node.get("title") or info.get("display_name") or node["type"]}}
    for node in out.values():  # links to left-out nodes are dropped, as graphToPrompt does
        for name, value in list(node["inputs"].items()):
            if _is_link(value) and value[0] not in out:
                del node["inputs"][name]
    return out


# ---------------------------------------------------------------- files and CLI

def dumps(data: Any, indent: int = 2) -> str:
    """JSON with an indent of 2, except that lists of scalars (positions, sizes, widget values,
    links) stay on one line."""

    def enc(value: Any, level: int) -> str:
        pad, inner = " " * (indent * level), " " * (indent * (level + 1))
        if isinstance(value, dict) and value:
            items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {enc(v, level + 1)}" for k, v in value.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(value, list) and value and any(isinstance(v, (dict, list)) and v for v in value):
            return "[\n" + ",\n".join(inner + enc(v, level + 1) for v in value) + "\n" + pad + "]"
        if isinstance(value, list):
            return "[" + ", ".join(enc(v, level + 1) for v in value) + "]"
        return json.dumps(value, ensure_ascii=False)

    return enc(data, 0) + "\n"


def load_object_info(where: str) -> dict:
    if where.startswith(("http://", "https://")):
        with urllib.request.urlopen(where.rstrip("/") + "/object_info", timeout=60) as r:
            return json.load(r)
    return json.loads(Path(where).read_text())


def generate(object_info: dict, check: bool = False) -> list[str]:
    """Write ``example_workflows/<name>.json`` for every source; return the names that changed
    (with ``check``: that would change, writing nothing)."""
    changed = []
    for src in sorted(SOURCES.glob("*.json")):
        text = dumps(api_to_ui(json.loads(src.read_text()), object_info))
        dest = EXAMPLES / src.name
        if not dest.exists() or dest.read_text() != text:
            changed.append(src.stem)
            if not check:
                dest.write_text(text)
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.e2e.workflow_format", description=__doc__.split("\n\n")[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--object-info", metavar="URL|FILE", help="a ComfyUI with this pack, or a saved /object_info")
    where.add_argument("--start", action="store_true", help="start a ComfyUI with this pack (tests/e2e/harness)")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated file is stale")
    args = ap.parse_args(argv)
    if args.start:
        from . import harness  # lazily: the converter itself needs nothing but the standard library

        why = harness.available()
        if why:
            ap.error(f"cannot start ComfyUI: {why}")
        inst = harness.start((REPO, "comfyui_remote"))
        try:
            object_info = load_object_info(inst.url)
        finally:
            inst.stop()
    else:
        object_info = load_object_info(args.object_info)
    changed = generate(object_info, check=args.check)
    verb = "stale" if args.check else "written"
    print(f"{verb}: {', '.join(changed) if changed else 'none'}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
