// The conversion of "Run a part of my graph remotely" (design §4) on graphs exported from the real
// ComfyUI frontends (fixtures/: `app.graph.serialize()`, `app.graphToPrompt().output` and the node
// definitions, written by tests/browser/test_offload.py with COMFYUI_REMOTE_WRITE_FIXTURES=1).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { OffloadRefusal, planOffload } from "../lib/offload.js";
import { chooseProfile } from "../lib/offload_ui.js";

const fixture = (name) => JSON.parse(readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), "utf8"));
const FRONTENDS = ["1_27", "newest"];
const byClass = (graph, cls) => Object.entries(graph).filter(([, n]) => n.class_type === cls).map(([id]) => id);

for (const fe of FRONTENDS) {
  test(`chain (${fe}): the middle runs remotely between a LoadImage and a SaveImage`, () => {
    const f = fixture(`chain-${fe}`);
    const plan = planOffload(f);
    const [inv] = byClass(plan.graph, "ImageInvert");
    const [scale] = byClass(plan.graph, "ImageScaleBy");
    const [load] = byClass(plan.graph, "LoadImage");
    const [save] = byClass(plan.graph, "SaveImage");
    assert.equal(Object.keys(plan.graph).length, 4);
    assert.deepEqual(plan.graph[inv], { ...f.prompt[inv], inputs: { image: [load, 0] } });
    assert.deepEqual(plan.graph[scale], f.prompt[scale], "inner links and widget values as the frontend exported them");
    assert.deepEqual(plan.graph[save].inputs.images, [scale, 0]);
    assert.ok(!(load in f.prompt) && !(save in f.prompt), "new ids do not clash with the graph's");
    assert.deepEqual(plan.inputs.map(({ node, socket, target, from }) => ({ node, socket, target, from })),
      [{ node: "RemoteInputImage", socket: "image", target: `${load}.image`, from: { node: 1, slot: 0 } }]);
    assert.deepEqual(plan.outputs.map(({ node, select, slot, to }) => ({ node, select, slot, to })),
      [{ node: "RemoteFetchImage", select: save, slot: 0, to: [{ node: 4, slot: 0 }] }]);
    assert.deepEqual(plan.remove, f.selected.map(Number));
  });

  test(`mixed (${fe}): reroute, primitive and bypassed node resolved as the frontend resolves them`, () => {
    const f = fixture(`mixed-${fe}`);
    const plan = planOffload(f);
    // the bypassed ImageSharpen is gone, the reroute resolved: LoadImage's image goes up, and the
    // RemoteInputImage is wired from the reroute outside, which stays in use (not left dangling)
    assert.deepEqual(Object.values(plan.graph).map((n) => n.class_type).sort(),
      ["ImageInvert", "ImageScaleBy", "LoadImage", "SaveImage"]);
    const image = plan.inputs.find((i) => i.node === "RemoteInputImage");
    assert.deepEqual(image.from, { node: 2, slot: 0 });
    assert.equal(f.ui.nodes.find((n) => n.id === 2).type, "Reroute");
    // the primitive outside keeps driving scale_by through a RemoteInputFloat linked to it
    const float = plan.inputs.find((i) => i.node === "RemoteInputFloat");
    assert.deepEqual({ target: float.target, value: float.value, from: float.from },
      { target: "4.scale_by", value: 2, from: { node: 5, slot: 0 } });
    assert.equal(plan.graph["4"].inputs.scale_by, 2);
    // one save node remotely; its fetch feeds both users of the bypassed node's output
    assert.equal(plan.outputs.length, 1);
    assert.deepEqual(plan.outputs[0].to.sort((a, b) => a.node - b.node), [{ node: 7, slot: 0 }, { node: 8, slot: 0 }]);
    assert.deepEqual(plan.remove, [3, 4, 6]);
  });

  test(`latent (${fe}): a LATENT link across the boundary is refused, naming the link`, () => {
    const f = fixture(`latent-${fe}`);
    assert.throws(() => planOffload(f), (e) => e instanceof OffloadRefusal
      && /LATENT/.test(e.message) && /EmptyLatentImage #1 → LatentUpscaleBy #2\.samples/.test(e.message));
  });
}

test("subgraph (today's frontend): a selected subgraph node runs with its inner API ids", () => {
  const f = fixture("subgraph-newest");
  const plan = planOffload(f);
  const sub = String(f.selected[0]);
  const inner = Object.keys(plan.graph).filter((k) => k.startsWith(sub + ":")).sort();
  assert.deepEqual(inner, Object.keys(f.prompt).filter((k) => k.startsWith(sub + ":")).sort());
  assert.equal(inner.length, 2);
  const [load] = byClass(plan.graph, "LoadImage");
  assert.deepEqual(plan.graph[byClass(plan.graph, "ImageInvert")[0]].inputs.image, [load, 0]);
  assert.deepEqual(plan.inputs[0].from, { node: 1, slot: 0 });
  assert.deepEqual(plan.outputs[0].to, [{ node: 4, slot: 0 }]);
  assert.deepEqual(plan.graph[plan.outputs[0].select].inputs.images, [byClass(plan.graph, "ImageScaleBy")[0], 0]);
});

// The kinds the h14 nodes carry, on the real chain with its source and result re-typed.
function retyped(inType, outType) {
  const f = fixture("chain-newest");
  const defs = JSON.parse(JSON.stringify(f.defs));
  const ui = JSON.parse(JSON.stringify(f.ui));
  defs.LoadImage.output = [inType, "MASK"];
  defs.ImageScaleBy.output = [outType];
  for (const l of ui.links) {
    if (l[1] === 1) l[5] = inType;
    if (l[3] === 4) l[5] = outType;
  }
  return { ...f, ui, defs };
}

test("VIDEO and AUDIO map to RemoteInputVideo/LoadVideo and SaveAudio/RemoteFetchAudio", () => {
  const plan = planOffload(retyped("VIDEO", "AUDIO"));
  const [load] = byClass(plan.graph, "LoadVideo");
  assert.deepEqual([plan.inputs[0].node, plan.inputs[0].socket, plan.inputs[0].target], ["RemoteInputVideo", "video", `${load}.file`]);
  const [save] = byClass(plan.graph, "SaveAudio");
  assert.deepEqual([plan.outputs[0].node, plan.outputs[0].select], ["RemoteFetchAudio", save]);
});

test("a kind whose nodes this ComfyUI lacks is refused, naming them", () => {
  const f = retyped("VIDEO", "AUDIO");
  assert.throws(() => planOffload({ ...f, registered: (t) => !["RemoteInputVideo", "RemoteFetchAudio"].includes(t) }),
    (e) => e instanceof OffloadRefusal && /RemoteFetchAudio, RemoteInputVideo/.test(e.message));
});

test("a MASK result comes back as the alpha of a saved image (RemoteFetchImage's MASK output)", () => {
  const plan = planOffload(retyped("IMAGE", "MASK"));
  const out = plan.outputs[0];
  assert.deepEqual([out.node, out.slot], ["RemoteFetchImage", 1]);
  const join = plan.graph[plan.graph[out.select].inputs.images[0]];
  assert.equal(join.class_type, "JoinImageWithAlpha");
  assert.equal(plan.graph[join.inputs.image[0]].class_type, "MaskToImage");
});

test("an INT made by a node outside becomes an override of the consuming input", () => {
  const plan = planOffload(retyped("INT", "IMAGE"));
  assert.deepEqual(plan.inputs.map((i) => [i.node, i.socket, i.target]), [["RemoteInputInt", "value", "2.image"]]);
  assert.equal(plan.graph["2"].inputs.image, 0);
  assert.equal(byClass(plan.graph, "LoadImage").length, 0);
});

for (const [type, slot] of [["INT", 0], ["FLOAT", 1], ["BOOLEAN", 2]]) {
  test(`${type} result: comes back through a remote PreviewAny and RemoteFetchValue's ${type.toLowerCase()} output`, () => {
    const plan = planOffload(retyped("IMAGE", type));
    const [scale] = byClass(plan.graph, "ImageScaleBy");
    const [shown] = byClass(plan.graph, "PreviewAny");
    assert.deepEqual(plan.graph[shown].inputs, { source: [scale, 0] }, "PreviewAny takes no filename_prefix");
    assert.deepEqual(plan.outputs.map(({ type: t, node, select, slot: s, to }) => ({ t, node, select, s, to })),
      [{ t: type, node: "RemoteFetchValue", select: shown, s: slot, to: [{ node: 4, slot: 0 }] }]);
  });
}

test("a number result needs RemoteFetchValue: refused, naming it, where this ComfyUI lacks it", () => {
  assert.throws(() => planOffload({ ...retyped("IMAGE", "FLOAT"), registered: (t) => t !== "RemoteFetchValue" }),
    (e) => e instanceof OffloadRefusal && /lacks node type\(s\) RemoteFetchValue/.test(e.message));
});

test("a selection without work or without output is refused", () => {
  const f = fixture("mixed-newest");
  assert.throws(() => planOffload({ ...f, selected: [5] }), /nothing to run/);
  assert.throws(() => planOffload({ ...f, selected: [] }), /select the nodes/);
});

test("the profile: the setting, else the last one used, else sandbox", () => {
  const store = (v) => ({ getItem: () => v });
  assert.equal(chooseProfile("comfyui", store("x")), "comfyui");
  assert.equal(chooseProfile("  ", store("comfycloud")), "comfycloud");
  assert.equal(chooseProfile(undefined, store(null)), "sandbox");
  assert.equal(chooseProfile("", null), "sandbox");
});

test("a MASK input goes up as the alpha of an image made from it (LoadImage's MASK remotely)", () => {
  const plan = planOffload(retyped("MASK", "IMAGE"));
  const [load] = byClass(plan.graph, "LoadImage");
  assert.deepEqual(plan.inputs.map((i) => [i.node, i.socket, i.helper, i.target]),
    [["RemoteInputImage", "mask", "MaskToImage", `${load}.image`]]);
  assert.deepEqual(plan.graph["2"].inputs.image, [load, 1]);
});

test("a BOOLEAN from a primitive goes up through RemoteInputBoolean linked to it, with the value the graph holds", () => {
  const f = fixture("mixed-newest");
  const ui = JSON.parse(JSON.stringify(f.ui));
  const prompt = JSON.parse(JSON.stringify(f.prompt));
  for (const l of ui.links) if (l[1] === 5) l[5] = "BOOLEAN";
  prompt["4"].inputs.scale_by = false;
  const plan = planOffload({ ...f, ui, prompt });
  const b = plan.inputs.find((i) => i.type === "BOOLEAN");
  assert.deepEqual({ node: b.node, target: b.target, value: b.value, from: b.from, socket: b.socket },
    { node: "RemoteInputBoolean", target: "4.scale_by", value: false, from: { node: 5, slot: 0 }, socket: "value" });
});

test("a BOOLEAN made by a node outside becomes a RemoteInputBoolean override of the consuming input", () => {
  const plan = planOffload(retyped("BOOLEAN", "IMAGE"));
  assert.deepEqual(plan.inputs.map((i) => [i.node, i.socket, i.target, i.from]),
    [["RemoteInputBoolean", "value", "2.image", { node: 1, slot: 0 }]]);
  assert.equal(plan.graph["2"].inputs.image, false);
});

test("a MODEL link the API form shows but the UI types loosely is refused, naming it", () => {
  const f = retyped("MODEL", "IMAGE");
  for (const l of f.ui.links) if (l[1] === 1) l[5] = "*"; // e.g. through an untyped reroute
  assert.throws(() => planOffload(f), (e) => e instanceof OffloadRefusal
    && /a MODEL link cannot travel to a remote: LoadImage #1 → ImageInvert #2\.image \(entering the selection\)/.test(e.message));
});

// The chain exported by a real frontend, with one more node outside the selection spliced into a
// boundary link of its UI form (the API form the frontend makes is the same: it looks through
// reroutes and bypassed nodes). `at`: "in" (LoadImage #1 → ImageInvert #2) or "out" (ImageScaleBy
// #3 → SaveImage #4); the new node is #9.
function spliced(fe, at, node) {
  const f = fixture(`chain-${fe}`);
  const ui = JSON.parse(JSON.stringify(f.ui));
  const link = ui.links.find((l) => (at === "in" ? l[3] === 2 : l[3] === 4));
  ui.nodes.push({ id: 9, mode: 0, inputs: [{ name: "image", type: "IMAGE", link: link[0] }],
                  outputs: [{ name: "IMAGE", type: "IMAGE", links: [99] }], ...node });
  const onward = [99, 9, 0, link[3], link[4], "IMAGE"];
  link[3] = 9; link[4] = 0;  // the old link now ends at the new node, a new one goes on from it
  ui.links.push(onward);
  return { ...f, ui };
}

for (const fe of FRONTENDS) {
  for (const [what, node] of [["reroute", { type: "Reroute" }], ["bypassed node", { type: "ImageSharpen", mode: 4 }]]) {
    test(`an outside ${what} on the link into the selection (${fe}) feeds the RemoteInputImage, staying in use`, () => {
      const plan = planOffload(spliced(fe, "in", node));
      assert.deepEqual(plan.inputs.map((i) => [i.node, i.from]), [["RemoteInputImage", { node: 9, slot: 0 }]]);
      assert.match(plan.inputs[0].label, /#9 → ImageInvert #2\.image/);
    });
    test(`an outside ${what} on the link out of the selection (${fe}) takes the fetched result, staying in use`, () => {
      const plan = planOffload(spliced(fe, "out", node));
      assert.deepEqual(plan.outputs.map((o) => [o.node, o.to]), [["RemoteFetchImage", [{ node: 9, slot: 0 }]]]);
    });
  }
}

// groupnode-1_27: LoadImage #1 → the legacy group node #5 (ImageInvert, ImageScaleBy; API ids
// 5:0, 5:1) → SaveImage #4, exported by 1.27 after its own "Convert selected nodes to group node"
test("a selected legacy group node runs with its inner API ids, wired through its own slots", () => {
  const f = fixture("groupnode-1_27");
  const plan = planOffload(f);
  const [load] = byClass(plan.graph, "LoadImage");
  const [save] = byClass(plan.graph, "SaveImage");
  assert.deepEqual(plan.graph["5:0"], { ...f.prompt["5:0"], inputs: { image: [load, 0] } });
  assert.deepEqual(plan.graph["5:1"], f.prompt["5:1"]);
  assert.deepEqual(plan.graph[save].inputs.images, ["5:1", 0]);
  assert.deepEqual(plan.inputs.map((i) => [i.node, i.target, i.from]), [["RemoteInputImage", `${load}.image`, { node: 1, slot: 0 }]]);
  assert.deepEqual(plan.outputs.map((o) => [o.node, o.select, o.to]), [["RemoteFetchImage", save, [{ node: 4, slot: 0 }]]]);
  assert.deepEqual(plan.remove, [5]);
});

test("a legacy group node next to the selection feeds it, or takes its result, through its own slots", () => {
  const f = fixture("groupnode-1_27");
  const into = planOffload({ ...f, selected: ["4"] }); // the group node's result enters the selection
  assert.deepEqual(into.inputs.map((i) => [i.node, i.from]), [["RemoteInputImage", { node: 5, slot: 0 }]]);
  // the selection's result goes into the group node: its inner ImageInvert (5:0) takes it
  const leaving = planOffload({ ...f, selected: ["1"] });
  assert.deepEqual(leaving.outputs.map((o) => [o.node, o.to]), [["RemoteFetchImage", [{ node: 5, slot: 0 }]]]);
});
