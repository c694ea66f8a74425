// "Run a part of my graph remotely" (design §4): the command. It asks the frontend for the graph in
// both forms (`serialize()` and its own `graphToPrompt()`), plans the exchange (./offload.js),
// asks the server whether the profile can take the graph and knows every node type of it (before
// anything is paid), and only then replaces the selection — as ONE undoable step: the frontend's
// change tracker records one state for everything between the canvas's before/after-change events.

import { OffloadRefusal, planOffload } from "./offload.js";

export const COMMAND_ID = "ComfyUIRemote.RunSelectionRemotely";
export const SETTING_ID = "ComfyUIRemote.OffloadProfile";
export const COMMAND_LABEL = "Run selection remotely";
const LAST_USED_KEY = "comfyui_remote.offload.last_profile";
const GAP = 24;

/** The profile to use: the setting, else the last one used, else `sandbox`. */
export function chooseProfile(setting, storage) {
  const given = typeof setting === "string" ? setting.trim() : "";
  if (given) return given;
  let last = null;
  try { last = storage && storage.getItem(LAST_USED_KEY); } catch { /* private mode */ }
  return last || "sandbox";
}

function widget(node, name) {
  const w = (node.widgets || []).find((x) => x.name === name);
  if (!w) throw new Error(`${node.type} has no widget ${name}`);
  return w;
}

function setWidget(node, name, value) {
  const w = widget(node, name);
  w.value = value;
  if (typeof w.callback === "function") w.callback(value);
}

function inputSlot(node, name) {
  const i = (node.inputs || []).findIndex((x) => x.name === name);
  if (i < 0) throw new Error(`${node.type} has no input ${name}`);
  return i;
}

/** The selected nodes: `selectedItems` (1.5x: nodes, groups, reroutes) or `selected_nodes` (1.27). */
export function selectedNodes(canvas, LiteGraph) {
  if (!canvas) return [];
  if (canvas.selectedItems && typeof canvas.selectedItems[Symbol.iterator] === "function") {
    const Node = LiteGraph && LiteGraph.LGraphNode;
    return [...canvas.selectedItems].filter((i) => (Node ? i instanceof Node : i && i.type !== undefined && i.inputs));
  }
  return Object.values(canvas.selected_nodes || {});
}

/** Replace the selection by the plan's group, on `graph` (the root graph), in one change. */
export function applyPlan(plan, { graph, canvas, LiteGraph, profile }) {
  const olds = plan.remove.map((id) => graph.getNodeById(id)).filter(Boolean);
  const x0 = Math.min(...olds.map((n) => n.pos[0]));
  const y0 = Math.min(...olds.map((n) => n.pos[1]));
  const made = [];
  const add = (type, x, y) => {
    const n = LiteGraph.createNode(type);
    if (!n) throw new Error(`this ComfyUI has no node type ${type}`);
    n.pos = [x, y];
    graph.add(n);
    made.push(n);
    return n;
  };
  // a balanced pair first: the change tracker records whatever the graph has not recorded yet
  // (a change made by a script, a widget still focused) as its own step, so undo takes back
  // exactly this conversion
  canvas.emitBeforeChange();
  canvas.emitAfterChange();
  canvas.emitBeforeChange();
  graph.beforeChange();
  try {
    for (const n of olds) graph.remove(n);
    // two columns where the selection was: the inputs, then submit, wait and the fetches below
    let chain = null;
    let y = y0;
    const step = (n) => (n.size ? n.size[1] : 100) + GAP + 30;
    const colB = x0 + 320;
    for (const inp of plan.inputs) {
      const n = add(inp.node, x0, y);
      setWidget(n, "target", inp.target);
      if (inp.value !== undefined) setWidget(n, inp.socket || "value", inp.value);
      if (inp.from) {
        const src = graph.getNodeById(inp.from.node);
        if (inp.helper) { // a mask goes up as the alpha of an image made from it
          const h = add(inp.helper, x0, y);
          y += step(h);
          n.pos = [x0, y];
          src.connect(inp.from.slot, h, 0);
          h.connect(0, n, inputSlot(n, "image"));
        }
        src.connect(inp.from.slot, n, inputSlot(n, inp.socket));
      }
      if (chain) chain.connect(0, n, inputSlot(n, "inputs"));
      chain = n;
      y += step(n);
    }
    const submit = add("RemoteSubmit", colB, y0);
    setWidget(submit, "profile", profile);
    setWidget(submit, "workflow", JSON.stringify(plan.graph, null, 1));
    if (chain) chain.connect(0, submit, inputSlot(submit, "inputs"));
    let fy = y0 + step(submit);
    const wait = add("RemoteWait", colB, fy);
    submit.connect(0, wait, 0);
    fy += step(wait);
    for (const out of plan.outputs) {
      const f = add(out.node, colB, fy);
      setWidget(f, "select", out.select);
      wait.connect(0, f, 0);
      for (const t of out.to) f.connect(out.slot, graph.getNodeById(t.node), t.slot);
      fy += step(f);
    }
    const group = new LiteGraph.LGraphGroup(`Remote: ${profile}`);
    graph.add(group);
    const xs = made.map((n) => [n.pos[0], n.pos[0] + n.size[0]]).flat();
    const ys = made.map((n) => [n.pos[1], n.pos[1] + n.size[1]]).flat();
    const pad = 20;
    const top = 70; // the group's title bar and the nodes' own title bars
    group.pos = [Math.min(...xs) - pad, Math.min(...ys) - top];
    group.size = [Math.max(...xs) - Math.min(...xs) + 2 * pad, Math.max(...ys) - Math.min(...ys) + top + pad];
    return { group, submit, wait, nodes: made };
  } catch (e) {
    e.graphChanged = true; // the caller takes the half-made step back
    throw e;
  } finally {
    graph.afterChange();
    canvas.emitAfterChange();
    canvas.setDirty(true, true);
  }
}

/** The command: plan, pre-flight, apply; a refusal changes nothing and is shown as a toast. */
export async function runSelectionRemotely({ app, api, LiteGraph, notify, storage }) {
  const canvas = app.canvas;
  const root = app.rootGraph || app.graph;
  try {
    if (canvas.graph && canvas.graph !== root) {
      throw new OffloadRefusal("open the main graph to run a part of it remotely (select a subgraph node there to "
        + "run all of it)");
    }
    const selected = selectedNodes(canvas, LiteGraph).map((n) => n.id);
    const setting = app.extensionManager && app.extensionManager.setting
      ? app.extensionManager.setting.get(SETTING_ID) : "";
    const profile = chooseProfile(setting, storage);
    const [ui, prompt, defs] = [root.serialize(), (await app.graphToPrompt()).output, await api.getNodeDefs()];
    const registered = (type) => !!(LiteGraph.registered_node_types && LiteGraph.registered_node_types[type]);
    const plan = planOffload({ ui, prompt, defs, selected, registered });
    const res = await api.fetchApi(`/comfyui_remote/profiles/${encodeURIComponent(profile)}/check_graph`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ workflow: plan.graph }),
    });
    const answer = await res.json().catch(() => ({}));
    if (!res.ok || !answer.ok) {
      throw new OffloadRefusal(answer.message || answer.error || `the server answered ${res.status}`);
    }
    let done;
    try {
      done = applyPlan(plan, { graph: root, canvas, LiteGraph, profile });
    } catch (e) {
      // the change tracker recorded the half-made change as one step: take exactly it back
      if (e && e.graphChanged) await app.extensionManager.command.execute("Comfy.Undo");
      throw e;
    }
    try { storage && storage.setItem(LAST_USED_KEY, profile); } catch { /* private mode */ }
    // where the service cannot list its node types, say so rather than suggest they were checked
    const unchecked = answer.node_types && answer.node_types !== "listed" ? ` (${answer.message})` : "";
    notify("success", "Runs remotely", `${plan.remove.length} node(s) now run on "${profile}": queue the graph${unchecked}`);
    return { ok: true, plan, ...done };
  } catch (e) {
    const message = e instanceof OffloadRefusal ? e.message : `could not convert the selection: ${e && e.message}`;
    notify("warn", "Not run remotely", message);
    return { ok: false, message };
  }
}
