// The entry module against stand-ins for ComfyUI's scripts/app.js and scripts/api.js:
// a resolve hook maps those two imports to modules that read globalThis.__comfyStub.
import { test } from "node:test";
import assert from "node:assert/strict";
import { register } from "node:module";
import { createDocument } from "./fake_dom.mjs";
import { FakeApi, flush } from "./fake_api.mjs";

const stub = (name) =>
  "data:text/javascript," + encodeURIComponent(`export const ${name} = globalThis.__comfyStub.${name};`);
const hooks = `
export async function resolve(specifier, context, next) {
  if (specifier.endsWith("/scripts/app.js")) return { url: ${JSON.stringify(stub("app"))}, shortCircuit: true };
  if (specifier.endsWith("/scripts/api.js")) return { url: ${JSON.stringify(stub("api"))}, shortCircuit: true };
  return next(specifier, context);
}`;
register("data:text/javascript," + encodeURIComponent(hooks));

const TASK = {
  id: "t-early", remote_id: "r9", profile: "sandbox", provider: "sandbox", workflow: "invert.json", state: "running",
  progress: 0.5, created_at: "2025-01-01T00:00:00Z", updated_at: "2025-01-01T00:00:01Z", outputs: [],
};

test("registers one sidebar tab with the contract's id and fields; render/destroy tear down", async () => {
  const doc = createDocument();
  const api = new FakeApi(async (m, route) => (route === "/comfyui_remote/profiles" ? [200, []] : [200, { tasks: [], next: null }]));
  const extensions = [];
  const tabs = [];
  const app = {
    registerExtension: (ext) => extensions.push(ext),
    extensionManager: { registerSidebarTab: (tab) => tabs.push(tab), toast: { add() {} } },
  };
  const probed = [];
  globalThis.__comfyStub = { app, api };
  globalThis.document = doc;
  globalThis.window = {}; // frontend 1.27: no Lucide classes in the page's stylesheet
  try {
    await import("../remote_panel.js");
    assert.equal(extensions.length, 1);
    assert.equal(extensions[0].name, "comfyui_remote.panel");
    // design §4 "Run a part of my graph remotely": the command and the setting are contract ids
    assert.deepEqual(extensions[0].commands.map((c) => c.id), ["ComfyUIRemote.RunSelectionRemotely"]);
    assert.equal(typeof extensions[0].commands[0].function, "function");
    assert.deepEqual(extensions[0].settings.map((x) => [x.id, x.defaultValue]), [["ComfyUIRemote.OffloadProfile", ""]]);
    assert.deepEqual(extensions[0].getNodeMenuItems({}), [], "no menu entry without a selection");
    assert.equal(api.listenerCount("comfyui_remote.task"), 0, "nothing is registered before setup");
    extensions[0].setup();
    assert.equal(api.listenerCount("comfyui_remote.task"), 1, "the task listener exists from setup on, before the tab opens");
    assert.equal(tabs.length, 1);
    const tab = tabs[0];
    assert.deepEqual(
      { id: tab.id, icon: tab.icon, title: tab.title, tooltip: tab.tooltip, type: tab.type },
      { id: "comfyui-remote", icon: "pi pi-cloud", title: "Remote", tooltip: "Remote tasks", type: "custom" },
    );
    assert.equal(typeof tab.render, "function");
    assert.equal(typeof tab.destroy, "function");
    const links = doc.head.querySelectorAll("link");
    assert.equal(links.length, 1);
    assert.equal(links[0].getAttribute("rel"), "stylesheet");
    assert.match(links[0].getAttribute("href"), /\/web\/remote_panel\.css$/);

    api.emit("comfyui_remote.task", TASK); // arrives while the tab is closed
    for (let i = 0; i < 3; i += 1) {
      const el = doc.createElement("div");
      doc.body.appendChild(el);
      tab.render(el);
      await flush();
      assert.ok(el.querySelector('[data-role="remote-panel"]'));
      assert.equal(el.querySelector('[data-task-id="t-early"]').getAttribute("data-state"), "running",
        "an event from before the tab was opened is shown");
    }
    assert.equal(api.listenerCount("comfyui_remote.task"), 1, "renders add no task listener of their own");
    assert.equal(api.listenerCount("status"), 1, "previous renders were torn down");
    tab.destroy();
    assert.equal(api.listenerCount("comfyui_remote.task"), 1, "the setup listener outlives the panel");
    assert.equal(api.listenerCount("reconnected"), 0);
    assert.equal(api.listenerCount("status"), 0);

    // today's frontend: its stylesheet gives icon-[lucide--cloud] a mask image
    globalThis.window = {
      getComputedStyle(node) {
        probed.push(node.getAttribute("class"));
        return { maskImage: node.getAttribute("class") === "icon-[lucide--cloud]" ? 'url("data:image/svg+xml,x")' : "none" };
      },
    };
    extensions[0].setup();
    assert.equal(tabs[1].icon, "icon-[lucide--cloud]");
    assert.deepEqual(probed, ["icon-[lucide--cloud]"]);
    assert.equal(doc.body.children.filter((c) => c.tagName === "I").length, 0, "the probe element is removed again");
    assert.equal(api.listenerCount("comfyui_remote.task"), 1, "setup twice still listens once");
    assert.equal(doc.head.querySelectorAll("link").length, 1, "the stylesheet is linked once");
    const el = doc.createElement("div");
    doc.body.appendChild(el);
    tabs[1].render(el);
    await flush();
    assert.match(el.querySelector('[data-role="refresh"] i').getAttribute("class"), /icon-\[lucide--refresh-cw\]/);
    tabs[1].destroy();
  } finally {
    delete globalThis.__comfyStub;
    delete globalThis.document;
    delete globalThis.window;
  }
});
