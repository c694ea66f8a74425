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

test("registers one sidebar tab with the contract's id and fields; render/destroy tear down", async () => {
  const doc = createDocument();
  const api = new FakeApi(async (m, route) => (route === "/comfyui_remote/profiles" ? [200, []] : [200, { tasks: [], next: null }]));
  const extensions = [];
  const tabs = [];
  const app = {
    registerExtension: (ext) => extensions.push(ext),
    extensionManager: { registerSidebarTab: (tab) => tabs.push(tab), toast: { add() {} } },
  };
  globalThis.__comfyStub = { app, api };
  globalThis.document = doc;
  globalThis.window = {};
  try {
    await import("../remote_panel.js");
    assert.equal(extensions.length, 1);
    assert.equal(extensions[0].name, "comfyui_remote.panel");
    extensions[0].setup();
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

    for (let i = 0; i < 3; i += 1) {
      const el = doc.createElement("div");
      doc.body.appendChild(el);
      tab.render(el);
      await flush();
      assert.ok(el.querySelector('[data-role="remote-panel"]'));
    }
    assert.equal(api.listenerCount("comfyui_remote.task"), 1, "previous renders were torn down");
    assert.equal(api.listenerCount("status"), 1);
    tab.destroy();
    assert.equal(api.listenerCount("comfyui_remote.task"), 0);
    assert.equal(api.listenerCount("reconnected"), 0);
    extensions[0].setup();
    assert.equal(doc.head.querySelectorAll("link").length, 1, "the stylesheet is linked once");
  } finally {
    delete globalThis.__comfyStub;
    delete globalThis.document;
    delete globalThis.window;
  }
});
