""""Run a part of my graph remotely" (design §4) in a real ComfyUI page, on both frontends: a small
graph LoadImage → ImageInvert → ImageScaleBy → SaveImage, its middle selected, the command
``ComfyUIRemote.RunSelectionRemotely`` run through the frontend's command service with the
``comfyui`` profile (the real remote ComfyUI of tests/conftest.py, same core nodes); the converted
graph queued gives the saved pixels of the original run locally, and one undo restores the
original graph exactly. A MODEL/LATENT link across the boundary is refused and changes nothing.

With ``COMFYUI_REMOTE_WRITE_FIXTURES=1`` it also saves the graphs the JS unit tests read
(web/tests/fixtures/: ``serialize()`` + ``graphToPrompt()`` + node definitions, per frontend) and
the README's screenshots (docs/images/, from today's frontend)."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ..e2e import harness
from .test_panel import browser_page, load, shot

pytestmark = [pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "web" / "tests" / "fixtures"
DOC_IMAGES = REPO / "docs" / "images"
WRITE = os.environ.get("COMFYUI_REMOTE_WRITE_FIXTURES") == "1"
COMMAND = "ComfyUIRemote.RunSelectionRemotely"

# Page helpers: build graphs with the frontend's own LiteGraph, and read them back in both forms.
HELPERS = """() => {
  const app = window.app;
  const mk = (g, type, x, y, w = {}) => {
    const n = LiteGraph.createNode(type);
    n.pos = [x, y];
    g.add(n);
    for (const [k, v] of Object.entries(w)) n.widgets.find((x) => x.name === k).value = v;
    return n;
  };
  const slot = (n, name) => n.inputs.findIndex((i) => i.name === name);
  const select = (nodes) => { app.canvas.deselectAll(); app.canvas.selectNodes(nodes); };
  window.__cr = {
    chain(img) {
      const g = app.graph; g.clear();
      const load = mk(g, "LoadImage", 40, 120, { image: img });
      const inv = mk(g, "ImageInvert", 400, 120);
      const scale = mk(g, "ImageScaleBy", 640, 120, { upscale_method: "nearest-exact", scale_by: 2 });
      const save = mk(g, "SaveImage", 1240, 120, { filename_prefix: "offload_e2e" });
      load.connect(0, inv, 0); inv.connect(0, scale, 0); scale.connect(0, save, 0);
      select([inv, scale]);
      return [inv.id, scale.id];
    },
    mixed(img) {  // a reroute in, a primitive from outside, a bypassed node inside, two users out
      const g = app.graph; g.clear();
      const load = mk(g, "LoadImage", 40, 120, { image: img });
      const rr = mk(g, "Reroute", 330, 160);
      const inv = mk(g, "ImageInvert", 420, 120);
      const scale = mk(g, "ImageScaleBy", 640, 120, { upscale_method: "nearest-exact", scale_by: 2 });
      const prim = mk(g, "PrimitiveNode", 380, 320);
      const sharp = mk(g, "ImageSharpen", 880, 120);
      sharp.mode = 4;  // bypassed
      const save = mk(g, "SaveImage", 1140, 120, { filename_prefix: "offload_mixed" });
      const prev = mk(g, "PreviewImage", 1140, 420);
      load.connect(0, rr, 0); rr.connect(0, inv, 0); inv.connect(0, scale, 0);
      prim.connect(0, scale, slot(scale, "scale_by"));
      scale.connect(0, sharp, 0); sharp.connect(0, save, 0); sharp.connect(0, prev, 0);
      select([inv, scale, sharp]);
      return [inv.id, scale.id, sharp.id];
    },
    latent() {  // a LATENT link enters the selection: refused
      const g = app.graph; g.clear();
      const empty = mk(g, "EmptyLatentImage", 40, 120);
      const up = mk(g, "LatentUpscaleBy", 400, 120);
      const up2 = mk(g, "LatentUpscaleBy", 700, 120);
      empty.connect(0, up, 0); up.connect(0, up2, 0);
      select([up]);
      return [up.id];
    },
    subgraph(img) {  // today's frontend: the middle of the chain as a subgraph, that node selected
      const ids = this.chain(img);
      const nodes = ids.map((i) => app.graph.getNodeById(i));
      const res = app.graph.convertToSubgraph(new Set(nodes));
      const node = res.node || res;
      select([node]);
      return [node.id];
    },
    async export(selected) {
      const ui = app.graph.serialize();
      const prompt = (await app.graphToPrompt()).output;
      const all = await (await fetch("api/object_info")).json();
      const defs = {};
      for (const n of Object.values(prompt)) {
        const d = all[n.class_type];
        defs[n.class_type] = { output: d.output, output_name: d.output_name, output_node: d.output_node };
      }
      return { ui, prompt, defs, selected };
    },
    shape() {  // the graph as the undo must restore it: as the frontend's own graphEqual, without
      // the view offset and the computed execution order; a node without widgets serializes no
      // widgets_values when a script made it, [] once loaded: the same graph
      const s = app.graph.serialize();
      const nodes = s.nodes.map((n) => Object.fromEntries(Object.entries(n).filter(([k, v]) =>
        k !== "order" && !(k === "widgets_values" && !(v && v.length)))));
      return JSON.stringify({ nodes, links: s.links, groups: s.groups,
                              definitions: s.definitions || null });
    },
  };
}"""


def png(seed: int = 7) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), "RGB")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


async def saved_pixels(c: harness.Client, prompt: dict, timeout: float = 180) -> np.ndarray:
    entry = await c.wait_done(await c.queue(prompt), timeout)
    assert entry["status"]["status_str"] == "success", entry["status"]
    images = [im for out in entry["outputs"].values() for im in out.get("images", []) if im.get("type") == "output"]
    assert len(images) == 1, entry["outputs"]
    return np.asarray(Image.open(io.BytesIO(await c.view(images[0]))))


async def tidy(page) -> None:
    """For the screenshots: no toasts, the whole graph in view."""
    await page.evaluate("""async () => {
      const app = window.app;
      app.extensionManager.toast.removeAll?.();
      document.querySelectorAll('.p-toast-message').forEach((t) => t.remove());
      const kept = Object.values(app.canvas.selected_nodes || {});
      app.canvas.deselectAll();  // FitView fits the selection when there is one
      await app.extensionManager.command.execute('Comfy.Canvas.FitView');
      if (kept.length) app.canvas.selectNodes(kept);
      app.canvas.setDirty(true, true);
    }""")
    await page.wait_for_function("() => !document.body.innerText.includes('Not run remotely')", polling=100)


async def run_command(page) -> None:
    await page.evaluate("(id) => window.app.extensionManager.command.execute(id)", COMMAND)


def differences(a, b, path: str = "") -> list:
    """Where two JSON values differ (paths), for a readable failure."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {json.dumps(a)[:120]} != {json.dumps(b)[:120]}"]


def save_fixture(name: str, data: dict) -> None:
    if WRITE:
        FIXTURES.mkdir(parents=True, exist_ok=True)
        (FIXTURES / f"{name}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


async def test_run_selection_remotely_same_pixels_and_one_undo(frontend, remote_comfy):
    fe = frontend.name.replace(".", "_")
    async with harness.Client(frontend.url) as c:
        assert (await c.post("/settings/Comfy.TutorialCompleted", True))[0] == 200
        assert (await c.post("/settings/ComfyUIRemote.OffloadProfile", "comfyui"))[0] == 200
        img = await c.upload(f"offload_{fe}.png", png())
        async with browser_page(frontend.url) as page:
            await load(page, frontend)
            await page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph", polling=100)
            await page.evaluate(HELPERS)

            # ---- refused: a LATENT link enters; nothing changes and the message names the link
            sel = await page.evaluate("() => window.__cr.latent()")
            save_fixture(f"latent-{fe}", await page.evaluate("(s) => window.__cr.export(s)", sel))
            before = await page.evaluate("() => window.__cr.shape()")
            await run_command(page)
            toast = page.locator(".p-toast-message, [role='alert']").filter(has_text="LATENT")
            await toast.first.wait_for(state="visible")
            text = await toast.first.inner_text()
            assert "EmptyLatentImage" in text and "LatentUpscaleBy" in text, text
            assert await page.evaluate("() => window.__cr.shape()") == before

            # ---- fixtures of the unit tests: a reroute, a primitive, a bypassed node; a subgraph
            sel = await page.evaluate("(img) => window.__cr.mixed(img)", img)
            save_fixture(f"mixed-{fe}", await page.evaluate("(s) => window.__cr.export(s)", sel))
            # converted, the mixed graph gives the same pixels; the reroute outside still routes the
            # image (into the RemoteInputImage) and the primitive still drives scale_by
            mixed_local = await saved_pixels(c, (await page.evaluate("() => window.app.graphToPrompt()"))["output"])
            await run_command(page)
            await page.wait_for_function(
                "() => window.app.graph.nodes.some((n) => n.type === 'RemoteSubmit')", polling=100)
            users = await page.evaluate("""() => {
              const g = window.app.graph;
              const link = (id) => (g.links.get ? g.links.get(id) : g.links[id]);
              const users = (type) => g.nodes.filter((n) => n.type === type)
                .flatMap((n) => (n.outputs[0].links || []).map((id) => g.getNodeById(link(id).target_id).type));
              return {reroute: users('Reroute'), primitive: users('PrimitiveNode')};
            }""")
            assert users == {"reroute": ["RemoteInputImage"], "primitive": ["RemoteInputFloat"]}, users
            mixed_remote = await saved_pixels(c, (await page.evaluate("() => window.app.graphToPrompt()"))["output"], 300)
            assert mixed_remote.shape == mixed_local.shape and np.array_equal(mixed_remote, mixed_local)
            if frontend.name != "1.27":
                sel = await page.evaluate("(img) => window.__cr.subgraph(img)", img)
                save_fixture(f"subgraph-{fe}", await page.evaluate("(s) => window.__cr.export(s)", sel))

            # ---- the chain: run locally, convert, run again: the same pixels
            sel = await page.evaluate("(img) => window.__cr.chain(img)", img)
            save_fixture(f"chain-{fe}", await page.evaluate("(s) => window.__cr.export(s)", sel))
            original = await page.evaluate("() => window.__cr.shape()")
            # the node menu of a selected node offers the command (1.27: LiteGraph's menu extended;
            # today's frontend: the extension's getNodeMenuItems)
            entries = await page.evaluate("""(id) => window.app.canvas.getNodeMenuOptions(window.app.graph.getNodeById(id))
                .filter(Boolean).map((o) => o.content)""", sel[0])
            assert "Run selection remotely…" in entries, entries

            # ---- a conversion that fails half-way (here: a node type that cannot be made) is taken back
            await page.evaluate("""() => { const make = LiteGraph.createNode;
              window.__crMake = make;
              LiteGraph.createNode = (t, ...a) => (t === 'RemoteWait' ? null : make.call(LiteGraph, t, ...a)); }""")
            await run_command(page)
            await page.evaluate("() => { LiteGraph.createNode = window.__crMake; }")
            await page.locator(".p-toast-message, [role='alert']").filter(has_text="no node type RemoteWait").first.wait_for()
            await page.wait_for_function(
                "() => !window.app.graph.nodes.some((n) => n.type === 'RemoteSubmit')", polling=100)
            back = await page.evaluate("() => window.__cr.shape()")
            assert back == original, differences(json.loads(original), json.loads(back))
            await page.evaluate("""(ids) => { window.app.canvas.deselectAll();
              window.app.canvas.selectNodes(ids.map((i) => window.app.graph.getNodeById(i))); }""", sel)

            local = await saved_pixels(c, (await page.evaluate("() => window.app.graphToPrompt()"))["output"])
            assert local.shape == (48, 64, 3)
            await tidy(page)
            await shot(page, frontend, "offload-1-before")
            await run_command(page)
            await page.wait_for_function(
                "() => window.app.graph.nodes.some((n) => n.type === 'RemoteSubmit')", polling=100)
            after = await page.evaluate("""() => {
              const g = window.app.graph;
              const submit = g.nodes.find((n) => n.type === 'RemoteSubmit');
              return {types: g.nodes.map((n) => n.type).sort(), groups: (g.groups || g._groups).map((x) => x.title),
                      profile: submit.widgets.find((w) => w.name === 'profile').value,
                      workflow: JSON.parse(submit.widgets.find((w) => w.name === 'workflow').value)};
            }""")
            assert after["types"] == sorted(["LoadImage", "RemoteInputImage", "RemoteSubmit", "RemoteWait",
                                             "RemoteFetchImage", "SaveImage"]), after
            assert after["groups"] == ["Remote: comfyui"] and after["profile"] == "comfyui", after
            assert sorted(n["class_type"] for n in after["workflow"].values()) == sorted(
                ["LoadImage", "ImageInvert", "ImageScaleBy", "SaveImage"]), after["workflow"]
            await tidy(page)
            await shot(page, frontend, "offload-2-after")

            # ---- one undo restores the original graph exactly; redo brings the conversion back
            converted_shape = await page.evaluate("() => window.__cr.shape()")
            await page.evaluate("() => window.app.extensionManager.command.execute('Comfy.Undo')")
            await page.wait_for_function(
                "() => !window.app.graph.nodes.some((n) => n.type === 'RemoteSubmit')", polling=100)
            restored = await page.evaluate("() => window.__cr.shape()")
            assert restored == original, differences(json.loads(original), json.loads(restored))
            await page.evaluate("() => window.app.extensionManager.command.execute('Comfy.Redo')")
            await page.wait_for_function(
                "() => window.app.graph.nodes.some((n) => n.type === 'RemoteSubmit')", polling=100)
            redone = await page.evaluate("() => window.__cr.shape()")
            assert redone == converted_shape, differences(json.loads(converted_shape), json.loads(redone))
            converted = (await page.evaluate("() => window.app.graphToPrompt()"))["output"]
            remote = await saved_pixels(c, converted, 300)
            assert remote.shape == local.shape and np.array_equal(remote, local)
            if frontend.name != "1.27" and WRITE:  # the result on the canvas, for the README
                await page.evaluate("() => window.app.queuePrompt(0, 1)")
                await page.wait_for_function(
                    """() => { const n = window.app.graph.nodes.find((n) => n.type === 'SaveImage');
                               return (window.app.nodeOutputs?.[String(n.id)]?.images?.length ?? 0) > 0; }""",
                    polling=200, timeout=120_000)
                await tidy(page)
                await shot(page, frontend, "offload-3-result")

    if WRITE and frontend.name != "1.27":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        for name in ("offload-1-before", "offload-2-after", "offload-3-result"):
            im = Image.open(harness.REPO / "test-artifacts" / "browser" / frontend.name / f"{name}.png")
            im.thumbnail((960, 960))
            im.convert("RGB").quantize(96).save(DOC_IMAGES / f"{name}.png", optimize=True)  # small in git


GROUP_NODE = "offload middle"


async def test_a_selected_legacy_group_node_runs_remotely(frontend, remote_comfy):
    """The deprecated group node (made by the frontend's own "Convert selected nodes to group node"):
    selected, it runs remotely with its inner nodes as the frontend exports them (`<id>:<n>`), and
    gives the pixels of the local run."""
    fe = frontend.name.replace(".", "_")
    async with harness.Client(frontend.url) as c:
        assert (await c.post("/settings/Comfy.TutorialCompleted", True))[0] == 200
        assert (await c.post("/settings/ComfyUIRemote.OffloadProfile", "comfyui"))[0] == 200
        img = await c.upload(f"offload_group_{fe}.png", png(11))
        async with browser_page(frontend.url) as page:
            await load(page, frontend)
            await page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph", polling=100)
            await page.evaluate(HELPERS)
            has = await page.evaluate("""() => { const all = window.app.extensionManager.command.commands;
                return Array.isArray(all) ? all.some((c) => c.id === 'Comfy.GroupNode.ConvertSelectedNodesToGroupNode')
                                          : null; }""")
            assert has is not None, "the command service lists no commands"
            if not has:
                pytest.skip(f"the {frontend.name} frontend has no legacy group nodes")
            # the chain's middle (selected) becomes a group node; the frontend asks for its name
            await page.evaluate("""(img) => { window.__cr.chain(img);
              window.__crGrouped = window.app.extensionManager.command.execute(
                'Comfy.GroupNode.ConvertSelectedNodesToGroupNode'); }""", img)
            name = page.locator(".p-dialog input").first
            await name.wait_for(state="visible")
            await name.fill(GROUP_NODE)
            await name.press("Enter")
            sel = await page.evaluate("""async (name) => { await window.__crGrouped;
              const app = window.app;
              const g = app.graph.nodes.find((n) => n.type.endsWith(name));
              app.canvas.deselectAll(); app.canvas.selectNodes([g]);
              return [g.id]; }""", GROUP_NODE)
            exported = await page.evaluate("(s) => window.__cr.export(s)", sel)
            assert any(k.startswith(f"{sel[0]}:") for k in exported["prompt"]), exported["prompt"]
            save_fixture(f"groupnode-{fe}", exported)
            local = await saved_pixels(c, exported["prompt"])
            await run_command(page)
            await page.wait_for_function(
                "() => window.app.graph.nodes.some((n) => n.type === 'RemoteSubmit')", polling=100)
            types = await page.evaluate("() => window.app.graph.nodes.map((n) => n.type).sort()")
            assert types == sorted(["LoadImage", "RemoteInputImage", "RemoteSubmit", "RemoteWait",
                                    "RemoteFetchImage", "SaveImage"]), types
            remote = await saved_pixels(c, (await page.evaluate("() => window.app.graphToPrompt()"))["output"], 300)
            assert remote.shape == local.shape == (48, 64, 3) and np.array_equal(remote, local)
