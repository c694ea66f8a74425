// "Run a part of my graph remotely" (design §4): the pure half. From what the frontend itself
// gives — the UI graph (`app.graph.serialize()`), its API form (`app.graphToPrompt().output`, so
// primitives, reroutes, bypassed/muted nodes, group nodes and subgraphs are resolved exactly as
// ComfyUI's own "Export (API)" resolves them) and the node definitions — it plans the exchange of
// the selected nodes for a RemoteInput* → RemoteSubmit → RemoteWait → RemoteFetch* group. It
// changes nothing: the wiring module applies the plan in one undoable step, or shows the refusal.

/** How each kind of link travels: in (a RemoteInput* node locally, a loader remotely) and out
 *  (a save node remotely, a RemoteFetch* node locally). Keys are ComfyUI socket types. */
export const KINDS = {
  IMAGE: { in: { node: "RemoteInputImage", socket: "image", load: "LoadImage", field: "image", value: "remote_input.png", slot: 0 },
           out: { save: "SaveImage", socket: "images", fetch: "RemoteFetchImage", slot: 0 } },
  // a mask goes up as the alpha of an image (RemoteInputImage: alpha = 1 − mask) and comes back
  // the same way (JoinImageWithAlpha writes alpha = 1 − mask; RemoteFetchImage's MASK = 1 − alpha)
  MASK: { in: { node: "RemoteInputImage", socket: "mask", helper: "MaskToImage", load: "LoadImage", field: "image",
                value: "remote_input.png", slot: 1 },
          out: { save: "SaveImage", socket: "images", fetch: "RemoteFetchImage", slot: 1, mask: true } },
  VIDEO: { in: { node: "RemoteInputVideo", socket: "video", load: "LoadVideo", field: "file", value: "remote_input.mp4", slot: 0 },
           out: { save: "SaveVideo", socket: "video", fetch: "RemoteFetchVideo", slot: 0,
                  extra: { format: "auto", codec: "auto" } } },
  AUDIO: { in: { node: "RemoteInputAudio", socket: "audio", load: "LoadAudio", field: "audio", value: "remote_input.flac", slot: 0 },
           out: { save: "SaveAudio", socket: "audio", fetch: "RemoteFetchAudio", slot: 0 } },
  STRING: { in: { node: "RemoteInputText", socket: "text", scalar: "" },
            out: { save: "PreviewAny", socket: "source", fetch: "RemoteFetchText", slot: 0, noPrefix: true } },
  // a number or boolean comes back as the text PreviewAny shows (str(value)), read by RemoteFetchValue
  // from its int/float/boolean output
  INT: { in: { node: "RemoteInputInt", socket: "value", scalar: 0 },
         out: { save: "PreviewAny", socket: "source", fetch: "RemoteFetchValue", slot: 0, noPrefix: true } },
  FLOAT: { in: { node: "RemoteInputFloat", socket: "value", scalar: 0 },
           out: { save: "PreviewAny", socket: "source", fetch: "RemoteFetchValue", slot: 1, noPrefix: true } },
  // a BOOLEAN goes up as a real true/false (RemoteInputBoolean), never as text: ComfyUI applies
  // bool() to the override and bool("false") is true
  BOOLEAN: { in: { node: "RemoteInputBoolean", socket: "value", scalar: false },
             out: { save: "PreviewAny", socket: "source", fetch: "RemoteFetchValue", slot: 2, noPrefix: true } },
};

export const SUBGRAPH_INPUT = -10;
export const SUBGRAPH_OUTPUT = -20;

/** A refusal: nothing was changed; the message names what to do. */
export class OffloadRefusal extends Error {}

const isLink = (v) => Array.isArray(v) && v.length === 2 && (typeof v[0] === "string" || typeof v[0] === "number")
  && Number.isInteger(v[1]);

/** Links of a serialized graph (array form of 1.27/root graphs, object form of 1.5x subgraphs). */
export function linkList(graph) {
  return (graph.links || []).map((l) => (Array.isArray(l)
    ? { id: l[0], origin_id: l[1], origin_slot: l[2], target_id: l[3], target_slot: l[4], type: l[5] }
    : l));
}

function subgraphOf(ui, node) {
  const defs = (ui.definitions && ui.definitions.subgraphs) || [];
  return defs.find((s) => s.id === node.type) || null;
}

function nodeLabel(ui, id) {
  const parts = String(id).split(":");
  let graph = ui;
  let node = null;
  for (const p of parts) {
    node = (graph.nodes || []).find((n) => String(n.id) === p);
    if (!node) return `#${id}`;
    graph = subgraphOf(ui, node) || graph;
  }
  return `${node.title || node.type} #${id}`;
}

/** The API ids that stand for the selected UI nodes: the node's own id, and `id:…` for the
 *  nodes inside a subgraph or group node. */
export function selectedApiIds(prompt, selectedIds) {
  const out = new Set();
  for (const id of selectedIds.map(String)) {
    for (const k of Object.keys(prompt)) if (k === id || k.startsWith(id + ":")) out.add(k);
  }
  return out;
}

function outputType(defs, prompt, src, slot) {
  const cls = prompt[src] && prompt[src].class_type;
  const def = defs[cls];
  const t = def && def.output ? def.output[slot] : undefined;
  return Array.isArray(t) ? "COMBO" : t;
}

/**
 * Where API node `apiId`'s output `slot` shows in the root UI graph: `{node, slot}`. A node inside
 * a subgraph maps to the subgraph node's output that exposes it; null when none does.
 */
export function uiOrigin(ui, apiId, slot) {
  const parts = String(apiId).split(":");
  if (parts.length === 1) return { node: Number(parts[0]), slot };
  const outer = (ui.nodes || []).find((n) => String(n.id) === parts[0]);
  const sg = outer && subgraphOf(ui, outer);
  if (!sg) return null;
  const inner = uiOrigin(sg, parts.slice(1).join(":"), slot);
  if (!inner) return null;
  const l = linkList(sg).find((x) => x.target_id === SUBGRAPH_OUTPUT && x.origin_id === inner.node
    && x.origin_slot === inner.slot);
  return l ? { node: outer.id, slot: l.target_slot } : null;
}

/** Where API node `apiId`'s input `name` is fed in the root UI graph: `{node, slot}` of the
 *  root node (the subgraph node for a node inside one); null when it is not a root-level input. */
export function uiTarget(ui, apiId, name) {
  const parts = String(apiId).split(":");
  const node = (ui.nodes || []).find((n) => String(n.id) === parts[0]);
  if (!node) return null;
  if (parts.length === 1) {
    const slot = (node.inputs || []).findIndex((i) => i.name === name);
    return slot < 0 ? null : { node: node.id, slot };
  }
  const sg = subgraphOf(ui, node);
  if (!sg) return null;
  const inner = uiTarget(sg, parts.slice(1).join(":"), name);
  if (!inner) return null;
  const l = linkList(sg).find((x) => x.origin_id === SUBGRAPH_INPUT && x.target_id === inner.node
    && x.target_slot === inner.slot);
  return l ? { node: node.id, slot: l.origin_slot } : null;
}

function isPrimitive(ui, id) {
  const n = (ui.nodes || []).find((x) => x.id === id);
  return !!n && n.type === "PrimitiveNode";
}

const nodeById = (ui, id) => (ui.nodes || []).find((n) => n.id === id) || null;
const linkInto = (ui, node, slot) => linkList(ui).find((l) => l.target_id === node && l.target_slot === slot) || null;
// nodes the API form looks through: a legacy reroute, a bypassed node
const passesThrough = (n) => !!n && (n.type === "Reroute" || n.mode === 4);

/** The input of pass-through node `n` whose value leaves by its output `slot`: a reroute's only
 *  input; for a bypassed node, as the frontend resolves a bypass, the input at the same index if
 *  its type matches, else the first linked input of the output's type. -1 when none. */
function passedInput(n, slot) {
  const ins = n.inputs || [];
  if (n.type === "Reroute") return ins.length ? 0 : -1;
  const type = n.outputs && n.outputs[slot] && n.outputs[slot].type;
  if (ins[slot] && ins[slot].type === type && ins[slot].link != null) return slot;
  return ins.findIndex((i) => i.type === type && i.link != null);
}

/** The UI link that brings the value of root input `at` ({node, slot}) in from outside the
 *  selection, walking back through selected reroutes and bypassed nodes; null when the walk ends
 *  inside the selection. Its origin is where the user routed the value: a node, or an outside
 *  reroute, bypassed node or group node, which then keeps its place in the graph. */
function enteringLink(ui, sel, at) {
  let l = linkInto(ui, at.node, at.slot);
  for (let hops = 0; l && hops < 256; hops++) {
    if (!sel.has(l.origin_id)) return l;
    const n = nodeById(ui, l.origin_id);
    const i = passesThrough(n) ? passedInput(n, l.origin_slot) : -1;
    if (i < 0) return null;
    l = linkInto(ui, n.id, i);
  }
  return null;
}

/** Where the result for root input `at` should be wired: walking back from it through outside
 *  reroutes and bypassed nodes to the first input the selection feeds, so they stay in use; `at`
 *  itself when the walk does not reach the selection that way. */
function leavingTarget(ui, sel, at) {
  let cur = at;
  for (let hops = 0; hops < 256; hops++) {
    const l = linkInto(ui, cur.node, cur.slot);
    if (!l) return at;
    if (sel.has(l.origin_id)) return cur;
    const n = nodeById(ui, l.origin_id);
    const i = passesThrough(n) ? passedInput(n, l.origin_slot) : -1;
    if (i < 0) return at;
    cur = { node: n.id, slot: i };
  }
  return at;
}

/** For API node `apiId` inside a legacy group node (not a subgraph) fed by API link `v` from the
 *  selection: the group node's input that link enters, when exactly one UI link from the
 *  selection's node of `v` goes into that group node; else null. */
function groupNodeInput(ui, bound, apiId, v) {
  const parts = String(apiId).split(":");
  const outer = parts.length > 1 ? nodeById(ui, Number(parts[0])) : null;
  const origin = outer && !subgraphOf(ui, outer) ? uiOrigin(ui, String(v[0]), v[1]) : null;
  if (!origin) return null;
  const into = bound.leaving.filter((l) => l.target_id === outer.id && l.origin_id === origin.node
    && l.origin_slot === origin.slot);
  return into.length === 1 ? { node: outer.id, slot: into[0].target_slot } : null;
}

/** UI links of the root graph between a selected and an unselected node. */
function uiBoundary(ui, selected) {
  const sel = new Set(selected.map(Number));
  const entering = [];
  const leaving = [];
  for (const l of linkList(ui)) {
    const a = sel.has(l.origin_id);
    const b = sel.has(l.target_id);
    if (b && !a) entering.push(l);
    if (a && !b) leaving.push(l);
  }
  return { entering, leaving };
}

function inputName(ui, l) {
  const n = (ui.nodes || []).find((x) => x.id === l.target_id);
  const i = n && n.inputs && n.inputs[l.target_slot];
  return (i && (i.label || i.name)) || `input ${l.target_slot}`;
}

function describe(ui, l) {
  return `${nodeLabel(ui, l.origin_id)} → ${nodeLabel(ui, l.target_id)}.${inputName(ui, l)}`;
}

/**
 * The plan for running `selected` (root UI node ids) remotely, or an OffloadRefusal.
 * - `ui`: `app.graph.serialize()`; `prompt`: `app.graphToPrompt().output`;
 * - `defs`: node definitions by class (`/object_info`: `output` types per slot);
 * - `registered(type)`: whether this ComfyUI has node type `type` (RemoteInputVideo, …).
 * Returns `{graph, inputs: [...], outputs: [...], remove: [...]}` (see README of the command).
 */
export function planOffload({ ui, prompt, defs, selected, registered = () => true }) {
  if (!selected || !selected.length) throw new OffloadRefusal("select the nodes to run remotely first");
  const S = selectedApiIds(prompt, selected);
  if (!S.size) {
    throw new OffloadRefusal("the selection has nothing to run: its nodes are notes, primitives, reroutes or "
      + "muted/bypassed nodes (select the nodes that do the work)");
  }
  const bound = uiBoundary(ui, selected);
  const unsupported = (kind, what, dir) => {
    return `a ${kind} link cannot travel to a remote: ${what} (${dir}). Links that can cross are IMAGE, MASK, `
      + "STRING, INT, FLOAT, BOOLEAN, VIDEO and AUDIO; keep the nodes that make and use it on the same side "
      + "(change the selection)";
  };
  // every UI link of a kind that cannot travel is refused, named — even where the API form
  // would have dropped it (a muted node's link) — before anything else is looked at
  for (const [dir, links] of [["entering the selection", bound.entering], ["leaving the selection", bound.leaving]]) {
    for (const l of links) {
      const t = l.type;
      if (t === "*" || t === undefined || isPrimitive(ui, l.origin_id)) continue; // a primitive's value is inlined
      const k = KINDS[t];
      if (!k) {
        if (typeof t === "string" && t.includes(",")) continue; // a widget input's combined type list
        throw new OffloadRefusal(unsupported(t, describe(ui, l), dir));
      }
    }
  }

  const graph = {};
  for (const id of [...S].sort()) graph[id] = JSON.parse(JSON.stringify(prompt[id]));
  let next = Math.max(0, ...Object.keys(prompt).map((k) => parseInt(String(k).split(":")[0], 10)).filter(Number.isFinite));
  const newId = () => String(++next);
  const missing = new Set();
  const need = (type) => { if (!registered(type)) missing.add(type); };

  // ---- links entering: one remote loader per source, or one override per scalar consumer
  const inputs = [];
  const sources = new Map(); // "src|slot" → {kind, refs: [[node, input]]}
  for (const id of Object.keys(graph)) {
    for (const [name, v] of Object.entries(graph[id].inputs || {})) {
      if (isLink(v) && !S.has(String(v[0]))) {
        const key = `${v[0]}|${v[1]}`;
        if (!sources.has(key)) sources.set(key, { src: String(v[0]), slot: v[1], refs: [] });
        sources.get(key).refs.push([id, name]);
      }
    }
  }
  const sel = new Set(selected.map(Number));
  for (const { src, slot, refs } of sources.values()) {
    const type = outputType(defs, prompt, src, slot);
    // wired from where the UI link into the selection comes from (an outside reroute, bypassed or
    // group node stays in use); else from the node (or subgraph output) the API form names
    const via = refs.map(([n, i]) => uiTarget(ui, n, i)).filter(Boolean).map((at) => enteringLink(ui, sel, at))
      .find(Boolean);
    const origin = via ? { node: via.origin_id, slot: via.origin_slot } : uiOrigin(ui, src, slot);
    const name = via ? describe(ui, via) : `${nodeLabel(ui, src)} output ${slot} → ${refs.map((r) => nodeLabel(ui, r[0])).join(", ")}`;
    const kind = KINDS[type];
    if (!kind) throw new OffloadRefusal(unsupported(type || "untyped", name, "entering the selection"));
    if (!origin) throw new OffloadRefusal(`cannot wire ${name}: its source is inside a group node; convert it to a subgraph or ungroup it`);
    need(kind.in.node);
    if (kind.in.load) {
      const lid = newId();
      graph[lid] = { class_type: kind.in.load, inputs: { [kind.in.field]: kind.in.value }, _meta: { title: `remote input (${type})` } };
      for (const [n, i] of refs) graph[n].inputs[i] = [lid, kind.in.slot];
      inputs.push({ type, node: kind.in.node, socket: kind.in.socket, helper: kind.in.helper || null,
                    target: `${lid}.${kind.in.field}`, from: origin, label: name });
    } else {
      for (const [n, i] of refs) {
        graph[n].inputs[i] = kind.in.scalar;
        inputs.push({ type, node: kind.in.node, socket: kind.in.socket, target: `${n}.${i}`, from: origin, label: name });
      }
    }
  }
  // scalar values a selected node gets from a primitive node outside: they are literals in the API
  // form already; a RemoteInput* linked to the same primitive keeps it driving the remote value
  for (const l of bound.entering) {
    if (!isPrimitive(ui, l.origin_id)) continue;
    const kind = KINDS[l.type];
    if (!kind || kind.in.scalar === undefined) continue; // a combo or other value stays inlined
    const tgt = (ui.nodes || []).find((n) => n.id === l.target_id);
    const inp = tgt && tgt.inputs && tgt.inputs[l.target_slot];
    const field = inp && inp.widget ? inp.widget.name : inp && inp.name;
    const apiId = String(l.target_id);
    if (!graph[apiId] || !field || !(field in (graph[apiId].inputs || {}))) continue;
    need(kind.in.node);
    const value = graph[apiId].inputs[field];
    inputs.push({ type: l.type, node: kind.in.node, socket: kind.in.socket, target: `${apiId}.${field}`,
                  from: { node: l.origin_id, slot: l.origin_slot }, value, label: describe(ui, l) });
  }

  // ---- links leaving: one remote save node per source, its RemoteFetch* wired to every user
  const outputs = [];
  const leaving = new Map();
  for (const [id, node] of Object.entries(prompt)) {
    if (S.has(id)) continue;
    for (const [name, v] of Object.entries(node.inputs || {})) {
      if (!isLink(v) || !S.has(String(v[0]))) continue;
      const key = `${v[0]}|${v[1]}`;
      if (!leaving.has(key)) leaving.set(key, { src: String(v[0]), slot: v[1], to: [] });
      // a consumer inside a legacy group node outside: the group node's input the selection feeds
      const at = uiTarget(ui, id, name) || groupNodeInput(ui, bound, id, v);
      if (!at) throw new OffloadRefusal(`cannot wire the result of ${nodeLabel(ui, v[0])} into ${nodeLabel(ui, id)}: it is inside a group node; convert it to a subgraph or ungroup it`);
      const to = leavingTarget(ui, sel, at);
      const seen = leaving.get(key).to;
      if (!seen.some((t) => t.node === to.node && t.slot === to.slot)) seen.push(to);
    }
  }
  for (const { src, slot, to } of leaving.values()) {
    const type = outputType(defs, prompt, src, slot);
    const kind = KINDS[type];
    const name = `${nodeLabel(ui, src)} output ${slot} → ${to.map((t) => nodeLabel(ui, t.node)).join(", ")}`;
    if (!kind) throw new OffloadRefusal(unsupported(type || "untyped", name, "leaving the selection"));
    need(kind.out.fetch);
    let feed = [src, slot];
    if (kind.out.mask) {
      const img = newId();
      graph[img] = { class_type: "MaskToImage", inputs: { mask: feed } };
      const join = newId();
      graph[join] = { class_type: "JoinImageWithAlpha", inputs: { image: [img, 0], alpha: feed } };
      feed = [join, 0];
    }
    const sid = newId();
    graph[sid] = { class_type: kind.out.save, inputs: { [kind.out.socket]: feed, ...(kind.out.noPrefix ? {} : { filename_prefix: "remote/offload" }), ...(kind.out.extra || {}) },
                   _meta: { title: `remote output (${type})` } };
    outputs.push({ type, node: kind.out.fetch, select: sid, slot: kind.out.slot, to, label: name });
  }
  if (!outputs.length && !Object.values(graph).some((n) => defs[n.class_type] && defs[n.class_type].output_node)) {
    throw new OffloadRefusal("the selection has no output: nothing leaves it and it holds no save node, so a remote "
      + "run would have nothing to bring back");
  }
  if (missing.size) {
    throw new OffloadRefusal(`this ComfyUI lacks node type(s) ${[...missing].sort().join(", ")} needed to carry `
      + "these links (update ComfyUI Remote)");
  }
  return { graph, inputs, outputs, remove: selected.map(Number) };
}
