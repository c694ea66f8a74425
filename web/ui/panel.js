// The Remote panel body: filters, task list (newest first, "Load more" by cursor), live merge of
// `comfyui_remote.task` events (from the extension's task feed), refresh on "reconnected"/"status"
// (throttled) and on mount, the profiles section, and ONE polite live region that announces state
// changes and errors. mountPanel() returns a teardown that removes every listener and timer.
// ComfyUI objects (api, document, window) are passed in, so node tests can drive it with fakes.

import { el, setAttr, setText, reconcileChildren } from "./dom.js";
import { createTaskRow } from "./task_row.js";
import { createProfilesSection } from "./profiles_view.js";
import { copyText } from "./clipboard.js";
import { createClient, outputRoute } from "../lib/client.js";
import { FILTERS, initialState, reduce, visibleTasks, nextCursor, pageKey, isActive } from "../lib/state.js";
import { truncate } from "../lib/format.js";
import { createTaskFeed, TASK_EVENT } from "../lib/task_feed.js";
import { statusChanges } from "../lib/announce.js";

export { TASK_EVENT };

const FILTER_LABEL = { active: "Active", finished: "Finished", failed: "Failed" };
const EMPTY_TEXT = {
  all: "No remote tasks yet. Queue a graph with a Remote node to see it here.",
  active: "No active tasks.",
  finished: "No finished tasks.",
  failed: "No failed tasks.",
};

/**
 * options: {api, doc, win, memory, feed, icon, notify(severity, summary, detail), pageSize, refreshDelayMs, tickMs}
 *   api     ComfyUI's api: fetchApi, apiURL, addEventListener, removeEventListener
 *   memory  a plain object kept by the caller across mounts: {state, profilesOpen}
 *   feed    the extension's task feed over `memory` (lib/task_feed.js); without one the panel
 *           listens for task events itself while it is mounted
 *   icon    icon(name) → the frontend's icon class for "refresh", or null for a text glyph
 */
export function mountPanel(root, options) {
  const { api, doc } = options;
  const win = options.win || null;
  const memory = options.memory || {};
  const notify = options.notify || (() => {});
  const pageSize = options.pageSize || 50;
  const refreshDelayMs = options.refreshDelayMs ?? 2000;
  const tickMs = options.tickMs ?? 1000;
  if (!memory.state) memory.state = initialState();
  const ownFeed = options.feed ? null : createTaskFeed(api, memory);
  const feed = options.feed || ownFeed;
  const iconOf = options.icon || (() => null);

  const client = createClient((route, init) => api.fetchApi(route, init));
  const rows = new Map();
  const busy = new Set();
  const inflight = new Map(); // page key → {again: bool}
  let disposed = false;
  let refreshTimer = null;
  let loadingMore = false;
  const timeouts = new Set();
  const later = (fn, ms) => {
    const id = setTimeout(() => { timeouts.delete(id); fn(); }, ms);
    timeouts.add(id);
  };

  // ---- skeleton -------------------------------------------------------------------------
  const refreshIcon = iconOf("refresh");
  const refreshBtn = el(doc, "button", {
    class: "crp-btn crp-icon-btn", text: refreshIcon ? null : "⟳", title: "Refresh",
    attrs: { type: "button", "data-role": "refresh", "aria-label": "Refresh" },
  }, [refreshIcon ? el(doc, "i", { class: `${refreshIcon} crp-icon`, attrs: { "aria-hidden": "true" } }) : null]);
  const filterBtns = FILTERS.map((f) => el(doc, "button", {
    class: "crp-filter", text: FILTER_LABEL[f], title: `Show only ${f} tasks (click again for all)`,
    attrs: { type: "button", "data-filter": f, "aria-pressed": "false" },
  }));
  const header = el(doc, "div", { class: "crp-header" }, [
    // title and refresh share the first line; the filters follow on it when the sidebar is wide enough
    el(doc, "span", { class: "crp-title", text: "Remote tasks" }),
    refreshBtn,
    el(doc, "span", { class: "crp-filters", attrs: { role: "group", "aria-label": "Filter tasks" } }, filterBtns),
  ]);
  const panelMessage = el(doc, "div", { class: "crp-panel-message", attrs: { "data-role": "panel-message", hidden: true } });
  // The one live region: state changes, errors and profile results are read out from here only.
  const live = el(doc, "div", {
    class: "crp-sr-only", attrs: { "data-role": "live", role: "status", "aria-live": "polite", "aria-atomic": "true" },
  });
  function announce(text) {
    if (disposed || !text) return;
    // the same sentence twice in a row must be read twice: make the text differ
    live.textContent = live.textContent === text ? `${text}\u00a0` : text;
  }
  const list = el(doc, "div", { class: "crp-task-list", attrs: { role: "list", "data-role": "task-list" } });
  const empty = el(doc, "div", { class: "crp-empty crp-muted", attrs: { "data-role": "empty", hidden: true } });
  const moreBtn = el(doc, "button", {
    class: "crp-btn crp-more-btn", text: "Load more",
    attrs: { type: "button", "data-role": "load-more", hidden: true },
  });
  const profiles = createProfilesSection({
    doc,
    open: memory.profilesOpen === true,
    onToggle: (open) => {
      memory.profilesOpen = open;
      if (open) loadProfiles();
    },
    onTest: (name) => client.testProfile(name),
    onSetKey: async (name, field, value) => {
      await client.setKey(name, field, value);
      loadProfiles();
    },
    announce: (text) => announce(text),
  });
  const container = el(doc, "div", { class: "crp-panel", attrs: { "data-role": "remote-panel" } }, [
    header, panelMessage, empty, list, moreBtn, profiles.el, live,
  ]);
  root.replaceChildren(container);

  // ---- rendering ------------------------------------------------------------------------
  const rowCtx = {
    doc,
    outputUrl: (id, n, thumb) => api.apiURL(outputRoute(id, n, thumb)),
    loadText: (id, n, maxBytes) => client.outputText(id, n, maxBytes),
    isBusy: (id, action) => busy.has(`${action}:${id}`),
    onAction: (action, task, button) => runAction(action, task, button),
  };

  function render() {
    if (disposed) return;
    const state = memory.state;
    const tasks = visibleTasks(state);
    const now = Date.now();
    const nodes = [];
    const keep = new Set();
    for (const t of tasks) {
      let row = rows.get(t.id);
      if (row) row.update(t, now);
      else {
        row = createTaskRow(rowCtx, t);
        rows.set(t.id, row);
      }
      keep.add(t.id);
      nodes.push(row.el);
    }
    for (const id of [...rows.keys()]) if (!keep.has(id)) rows.delete(id);
    reconcileChildren(list, nodes);
    for (const b of filterBtns) {
      setAttr(b, "aria-pressed", b.getAttribute("data-filter") === state.filter ? "true" : "false");
    }
    setText(empty, tasks.length ? "" : EMPTY_TEXT[pageKey(state.filter)]);
    const cursor = nextCursor(state);
    setAttr(moreBtn, "hidden", !cursor);
    moreBtn.disabled = loadingMore;
    moreBtn.textContent = loadingMore ? "Loading…" : "Load more";
  }

  function dispatch(action) {
    const next = reduce(memory.state, action);
    if (next !== memory.state) {
      memory.state = next;
      render();
    }
  }

  function showError(prefix, e) {
    const msg = truncate(e && e.message ? e.message : String(e), 300);
    setText(panelMessage, `${prefix}: ${msg}`);
    announce(`${prefix}: ${msg}`);
  }

  // ---- loading --------------------------------------------------------------------------
  async function refresh() {
    const filter = memory.state.filter;
    const key = pageKey(filter);
    const running = inflight.get(key);
    if (running) {
      running.again = true;
      return;
    }
    const entry = { again: false };
    inflight.set(key, entry);
    try {
      const page = await client.listTasks({ state: filter, limit: pageSize });
      memory.state = reduce(memory.state, { type: "page", filter, tasks: page.tasks, next: page.next, append: false });
      if (!disposed) setText(panelMessage, "");
    } catch (e) {
      if (!disposed) showError("Could not load tasks", e);
    } finally {
      inflight.delete(key);
      render();
    }
    if (entry.again && !disposed) refresh();
  }

  // Switching to another sidebar tab does not call destroy(): while our element is off the page,
  // live events still merge into the store but list polling waits for the next render().
  const onScreen = () => root.isConnected !== false;

  function refreshSoon() {
    if (disposed || refreshTimer !== null || !onScreen()) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      refresh();
    }, refreshDelayMs);
  }

  async function loadMore() {
    const filter = memory.state.filter;
    const before = nextCursor(memory.state);
    if (!before || loadingMore) return;
    loadingMore = true;
    render();
    try {
      const page = await client.listTasks({ state: filter, limit: pageSize, before });
      memory.state = reduce(memory.state, { type: "page", filter, tasks: page.tasks, next: page.next, append: true, before });
      if (!disposed) setText(panelMessage, "");
    } catch (e) {
      if (!disposed) showError("Could not load more tasks", e);
    } finally {
      loadingMore = false;
      render();
    }
  }

  let profilesLoading = false;
  let profilesAgain = false;
  async function loadProfiles() {
    if (profilesLoading) {
      profilesAgain = true; // e.g. a key was saved while the list was loading: load once more
      return;
    }
    profilesLoading = true;
    profilesAgain = false;
    try {
      const list = await client.listProfiles();
      if (disposed) return;
      profiles.setMessage("");
      profiles.setProfiles(list);
    } catch (e) {
      if (!disposed) profiles.setMessage(`Could not load profiles: ${truncate(e && e.message ? e.message : String(e), 300)}`);
    } finally {
      profilesLoading = false;
    }
    if (profilesAgain && !disposed) loadProfiles();
  }

  // ---- actions --------------------------------------------------------------------------
  async function runAction(action, task, button) {
    if (action === "copy-id") {
      const ok = await copyText(win, doc, task.remote_id || "");
      if (disposed) return;
      if (ok) {
        button.textContent = "Copied";
        later(() => { button.textContent = "Copy id"; }, 1500);
      } else {
        notify("warn", "Copy failed", `Remote id: ${truncate(task.remote_id, 200)}`);
      }
      return;
    }
    if (action !== "cancel" && action !== "recover") return;
    const key = `${action}:${task.id}`;
    if (busy.has(key)) return;
    busy.add(key);
    render();
    try {
      const answer = action === "cancel" ? await client.cancelTask(task.id) : await client.recoverTask(task.id);
      const before = memory.state;
      memory.state = reduce(memory.state, { type: "task", task: answer });
      announce(statusChanges(before, memory.state));
    } catch (e) {
      const verb = action === "cancel" ? "Cancel" : "Recover";
      notify("error", `${verb} failed`, truncate(e && e.message ? e.message : String(e), 300));
      if (!disposed) showError(`${verb} failed`, e);
    } finally {
      busy.delete(key);
      render();
    }
  }

  // ---- events ---------------------------------------------------------------------------
  const unsubscribe = feed.subscribe((before, after) => {
    render();
    announce(statusChanges(before, after));
  });
  const onReconnected = () => {
    if (onScreen()) refresh();
  };
  const onStatus = () => refreshSoon();
  const listeners = [["reconnected", onReconnected], ["status", onStatus]];
  for (const [type, fn] of listeners) api.addEventListener(type, fn);

  refreshBtn.addEventListener("click", () => refresh());
  moreBtn.addEventListener("click", () => loadMore());
  for (const b of filterBtns) {
    b.addEventListener("click", () => {
      const f = b.getAttribute("data-filter");
      dispatch({ type: "filter", filter: memory.state.filter === f ? null : f });
      refresh();
    });
  }

  // Elapsed / ETA count while tasks are active (only while the panel is on screen).
  const ticker = setInterval(() => {
    if (disposed || !onScreen()) return;
    const now = Date.now();
    for (const row of rows.values()) if (row.task && isActive(row.task)) row.tick(now);
  }, tickMs);

  render();
  refresh();
  loadProfiles();

  return function teardown() {
    if (disposed) return;
    disposed = true;
    unsubscribe();
    if (ownFeed) ownFeed.close();
    for (const [type, fn] of listeners) api.removeEventListener(type, fn);
    clearInterval(ticker);
    if (refreshTimer !== null) clearTimeout(refreshTimer);
    for (const id of timeouts) clearTimeout(id);
    timeouts.clear();
    refreshTimer = null;
    rows.clear();
  };
}
