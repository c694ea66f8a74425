// The Remote panel body: filters, task list (newest first, "Load more" by cursor), live merge of
// `comfyui_remote.task` events, refresh on "reconnected"/"status" (throttled) and on mount, and
// the profiles section. mountPanel() returns a teardown that removes every listener and timer.
// ComfyUI objects (api, document, window) are passed in, so node tests can drive it with fakes.

import { el, setAttr, setText, reconcileChildren } from "./dom.js";
import { createTaskRow } from "./task_row.js";
import { createProfilesSection } from "./profiles_view.js";
import { copyText } from "./clipboard.js";
import { createClient, outputRoute } from "../lib/client.js";
import { FILTERS, initialState, reduce, visibleTasks, nextCursor, pageKey, isActive } from "../lib/state.js";
import { truncate } from "../lib/format.js";

export const TASK_EVENT = "comfyui_remote.task";

const FILTER_LABEL = { active: "Active", finished: "Finished", failed: "Failed" };
const EMPTY_TEXT = {
  all: "No remote tasks yet. Queue a graph with a Remote node to see it here.",
  active: "No active tasks.",
  finished: "No finished tasks.",
  failed: "No failed tasks.",
};

/**
 * options: {api, doc, win, memory, notify(severity, summary, detail), pageSize, refreshDelayMs, tickMs}
 *   api     ComfyUI's api: fetchApi, apiURL, addEventListener, removeEventListener
 *   memory  a plain object kept by the caller across mounts: {state, profilesOpen}
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
  const refreshBtn = el(doc, "button", {
    class: "crp-btn crp-icon-btn", text: "⟳", title: "Refresh",
    attrs: { type: "button", "data-role": "refresh", "aria-label": "Refresh" },
  });
  const filterBtns = FILTERS.map((f) => el(doc, "button", {
    class: "crp-filter", text: FILTER_LABEL[f], title: `Show only ${f} tasks (click again for all)`,
    attrs: { type: "button", "data-filter": f, "aria-pressed": "false" },
  }));
  const header = el(doc, "div", { class: "crp-header" }, [
    el(doc, "span", { class: "crp-title", text: "Remote tasks" }),
    el(doc, "span", { class: "crp-filters", attrs: { role: "group", "aria-label": "Filter tasks" } }, filterBtns),
    refreshBtn,
  ]);
  const panelMessage = el(doc, "div", { class: "crp-panel-message", attrs: { "data-role": "panel-message", role: "status", hidden: true } });
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
  });
  const container = el(doc, "div", { class: "crp-panel", attrs: { "data-role": "remote-panel" } }, [
    header, panelMessage, empty, list, moreBtn, profiles.el,
  ]);
  root.replaceChildren(container);

  // ---- rendering ------------------------------------------------------------------------
  const rowCtx = {
    doc,
    outputUrl: (id, n, thumb) => api.apiURL(outputRoute(id, n, thumb)),
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
      memory.state = reduce(memory.state, { type: "task", task: answer });
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
  const onTask = (event) => {
    const detail = event ? event.detail : null;
    for (const t of Array.isArray(detail) ? detail : [detail]) dispatch({ type: "task", task: t });
  };
  const onReconnected = () => {
    if (onScreen()) refresh();
  };
  const onStatus = () => refreshSoon();
  const listeners = [[TASK_EVENT, onTask], ["reconnected", onReconnected], ["status", onStatus]];
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
    for (const [type, fn] of listeners) api.removeEventListener(type, fn);
    clearInterval(ticker);
    if (refreshTimer !== null) clearTimeout(refreshTimer);
    for (const id of timeouts) clearTimeout(id);
    timeouts.clear();
    refreshTimer = null;
    rows.clear();
  };
}
