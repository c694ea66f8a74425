// ComfyUI Remote — entry module of the "Remote" sidebar tab (design.md §4 panel hooks).
// ComfyUI imports every .js under web/ at page load; this is the only one with side effects.
// Works on frontend 1.27 and today's 1.5x: the task-event listener is registered at setup (1.5x
// logs "Unknown message type" for events nobody listens to), and the tab icon is a Lucide class
// where the page's stylesheet has them, PrimeIcons where it does not.

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { mountPanel } from "./ui/panel.js";
import { createTaskFeed } from "./lib/task_feed.js";
import { hasLucideIcons, iconClass } from "./lib/frontend.js";
import { COMMAND_ID, COMMAND_LABEL, SETTING_ID, runSelectionRemotely, selectedNodes } from "./lib/offload_ui.js";

const CSS_ID = "comfyui-remote-panel-css";

// Kept across renders: ComfyUI calls render() with a new element every time the tab is shown
// (without destroy() when switching tabs), so the previous instance is torn down first.
let teardown = null;
let feed = null;
const memory = { state: null, profilesOpen: false };

function loadCss() {
  if (document.getElementById(CSS_ID)) return;
  const link = document.createElement("link");
  link.setAttribute("id", CSS_ID);
  link.setAttribute("rel", "stylesheet");
  link.setAttribute("href", new URL("./remote_panel.css", import.meta.url).href);
  document.head.appendChild(link);
}

function stop() {
  if (teardown) {
    const fn = teardown;
    teardown = null;
    fn();
  }
}

function notify(severity, summary, detail) {
  const toast = app.extensionManager && app.extensionManager.toast;
  if (toast && typeof toast.add === "function") toast.add({ severity, summary, detail, life: 5000 });
}

function storage() {
  try { return globalThis.localStorage || null; } catch { return null; }
}

function runSelection() {
  return runSelectionRemotely({ app, api, LiteGraph: globalThis.LiteGraph, notify, storage: storage() });
}

const MENU_ITEM = { content: `${COMMAND_LABEL}…`, callback: () => { runSelection(); } };

function selectionSize() {
  return selectedNodes(app.canvas, globalThis.LiteGraph).length;
}

// Frontend 1.27 has no menu hooks for extensions: its LiteGraph menus are extended in place, once.
function patchLegacyMenus(LGraphCanvas) {
  if (!LGraphCanvas || LGraphCanvas.prototype.__comfyuiRemoteMenus) return;
  LGraphCanvas.prototype.__comfyuiRemoteMenus = true;
  for (const name of ["getNodeMenuOptions", "getCanvasMenuOptions"]) {
    const original = LGraphCanvas.prototype[name];
    if (typeof original !== "function") continue;
    LGraphCanvas.prototype[name] = function (...args) {
      const options = original.apply(this, args);
      if (selectionSize() > 0 && Array.isArray(options)) options.push(null, MENU_ITEM);
      return options;
    };
  }
}

app.registerExtension({
  name: "comfyui_remote.panel",
  settings: [{
    id: SETTING_ID,
    category: ["ComfyUI Remote", "Run selection remotely", "Profile"],
    name: "Profile for \"Run selection remotely\"",
    tooltip: "The profile a selection runs on (empty: the last one used, else sandbox). It can be changed on the group's RemoteSubmit afterwards.",
    type: "text",
    defaultValue: "",
  }],
  commands: [{
    id: COMMAND_ID,
    label: COMMAND_LABEL,
    tooltip: "Run the selected nodes on a remote GPU: they become a Remote group (ComfyUI Remote)",
    icon: iconClass("cloud", typeof document !== "undefined" && hasLucideIcons(document, globalThis.window)),
    function: runSelection,
  }],
  // today's frontend: a button in the toolbox over the selection, and menu items through the hooks
  getSelectionToolboxCommands() {
    return [COMMAND_ID];
  },
  // today's frontend: menu items through the extension hooks
  getNodeMenuItems() {
    return selectionSize() > 0 ? [null, MENU_ITEM] : [];
  },
  getCanvasMenuItems() {
    return selectionSize() > 0 ? [null, MENU_ITEM] : [];
  },
  setup() {
    if (typeof app.collectNodeMenuItems !== "function") patchLegacyMenus(globalThis.LGraphCanvas || (globalThis.LiteGraph && globalThis.LiteGraph.LGraphCanvas));
    // one listener for the extension's lifetime, even where there is no sidebar to show it in
    if (!feed) feed = createTaskFeed(api, memory);
    const manager = app.extensionManager;
    if (!manager || typeof manager.registerSidebarTab !== "function") {
      console.warn("[comfyui_remote] this ComfyUI frontend has no sidebar tabs; the Remote panel is not shown");
      return;
    }
    loadCss();
    const lucide = hasLucideIcons(document, window);
    const icon = (name) => iconClass(name, lucide);
    manager.registerSidebarTab({
      id: "comfyui-remote",
      icon: icon("cloud"),
      title: "Remote",
      tooltip: "Remote tasks",
      type: "custom",
      render(el) {
        stop();
        teardown = mountPanel(el, { api, doc: document, win: window, memory, feed, icon, notify });
      },
      destroy() {
        stop();
      },
    });
  },
});
