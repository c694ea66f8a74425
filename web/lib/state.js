// Task store for the Remote panel: a pure reducer that merges Task JSON from list fetches and
// live events, plus selectors (filtering, newest-first ordering) and per-task action rules.
// No DOM, no ComfyUI imports; every payload is treated as untrusted and possibly malformed.

export const STATES = ["submitting", "queued", "running", "succeeded", "failed", "cancelled", "abandoned"];
export const FILTERS = ["active", "finished", "failed"];

/** Which filter a state belongs to. Must match the server's `?state=` grouping. */
const CATEGORY = {
  submitting: "active",
  queued: "active",
  running: "active",
  succeeded: "finished",
  cancelled: "finished",
  failed: "failed",
  // still followed by the engine (the service could not cancel it): it may still finish
  abandoned: "active",
};

const ACTIVE = new Set(["submitting", "queued", "running"]);
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

const str = (v) => (typeof v === "string" ? v : typeof v === "number" && Number.isFinite(v) ? String(v) : null);
const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
const bool = (v) => (typeof v === "boolean" ? v : null);

function normalizeOutputs(outputs) {
  if (!Array.isArray(outputs)) return null;
  const seen = new Set();
  const out = [];
  for (const o of outputs) {
    if (!o || typeof o !== "object") continue;
    const n = num(o.n);
    if (n === null || n < 0 || !Number.isInteger(n) || seen.has(n)) continue;
    seen.add(n);
    out.push({
      n,
      kind: str(o.kind),
      filename: str(o.filename),
      width: num(o.width),
      height: num(o.height),
      size: num(o.size),
      // a text result without a file: its start (or all of it) and its whole length
      text: typeof o.text === "string" ? o.text : null,
      text_length: num(o.text_length),
    });
  }
  return out;
}

/**
 * Validate and copy a Task JSON. Returns null when it is not a usable task (no id).
 * Unknown states become "unknown"; wrong-typed fields become null.
 */
export function normalizeTask(raw) {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) return null;
  const id = str(raw.id);
  if (!id) return null;
  const state = typeof raw.state === "string" && STATES.includes(raw.state) ? raw.state : "unknown";
  return {
    id,
    remote_id: str(raw.remote_id),
    profile: str(raw.profile),
    provider: str(raw.provider),
    workflow: str(raw.workflow),
    state,
    reused: raw.reused === true,
    queue_position: num(raw.queue_position),
    queue_length: num(raw.queue_length),
    progress: num(raw.progress),
    node: str(raw.node),
    step: num(raw.step),
    max_steps: num(raw.max_steps),
    eta_s: num(raw.eta_s),
    message: str(raw.message),
    cost: raw.cost === undefined ? null : raw.cost,
    error: str(raw.error),
    can_cancel: bool(raw.can_cancel),
    can_recover: bool(raw.can_recover),
    console_url: str(raw.console_url),
    created_at: str(raw.created_at),
    updated_at: str(raw.updated_at),
    outputs: normalizeOutputs(raw.outputs),
  };
}

const time = (iso) => (typeof iso === "string" ? Date.parse(iso) : NaN);

/** True when `incoming` should replace `existing` (it is not older by updated_at). */
export function isNewer(existing, incoming) {
  if (!existing) return true;
  const a = time(existing.updated_at);
  const b = time(incoming.updated_at);
  if (Number.isNaN(a) || Number.isNaN(b)) return true;
  return b >= a;
}

export function initialState() {
  return { tasks: {}, filter: null, pages: {} };
}

/** Key of the page cursor for a filter (null = all). */
export const pageKey = (filter) => filter || "all";

function mergeTasks(tasks, list) {
  let changed = false;
  const next = { ...tasks };
  for (const raw of list) {
    const t = normalizeTask(raw);
    if (!t) continue;
    if (isNewer(next[t.id], t)) {
      next[t.id] = t;
      changed = true;
    }
  }
  return changed ? next : tasks;
}

/**
 * Actions:
 *  {type: "task", task}                                   live event or action answer
 *  {type: "page", filter, tasks, next, append, before}    a list fetch answer
 *  {type: "filter", filter}                               null | "active" | "finished" | "failed"
 */
export function reduce(state, action) {
  if (!action || typeof action !== "object") return state;
  switch (action.type) {
    case "task": {
      const tasks = mergeTasks(state.tasks, [action.task]);
      return tasks === state.tasks ? state : { ...state, tasks };
    }
    case "page": {
      const key = pageKey(action.filter);
      const page = state.pages[key] || { next: null, more: false };
      const next = typeof action.next === "string" && action.next !== "" ? action.next : null;
      let pages = state.pages;
      if (action.append) {
        // Ignore an answer to a cursor that is no longer current (double click, stale request).
        if (page.next === null || action.before !== page.next) return state;
        pages = { ...pages, [key]: { next, more: true } };
      } else if (!page.more) {
        pages = { ...pages, [key]: { next, more: false } };
      }
      const list = Array.isArray(action.tasks) ? action.tasks : [];
      const tasks = mergeTasks(state.tasks, list);
      if (tasks === state.tasks && pages === state.pages) return state;
      return { ...state, tasks, pages };
    }
    case "filter": {
      const filter = FILTERS.includes(action.filter) ? action.filter : null;
      return filter === state.filter ? state : { ...state, filter };
    }
    default:
      return state;
  }
}

export function categoryOf(task) {
  return (task && CATEGORY[task.state]) || null;
}

function compareNewest(a, b) {
  const ta = time(a.created_at);
  const tb = time(b.created_at);
  const va = Number.isNaN(ta) ? -Infinity : ta;
  const vb = Number.isNaN(tb) ? -Infinity : tb;
  if (va !== vb) return vb - va;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/** Tasks matching the filter (null = all), newest first. */
export function visibleTasks(state) {
  const all = Object.values(state.tasks);
  const list = state.filter ? all.filter((t) => categoryOf(t) === state.filter) : all;
  return list.sort(compareNewest);
}

/** The `before` cursor for "Load more" under the current filter, or null. */
export function nextCursor(state) {
  const page = state.pages[pageKey(state.filter)];
  return page ? page.next : null;
}

export const isActive = (task) => ACTIVE.has(task.state);
export const isTerminal = (task) => TERMINAL.has(task.state);

/** Cancel is offered while the task may still run on the remote side. */
export function showCancel(task) {
  return ACTIVE.has(task.state) || task.state === "abandoned";
}

/** Cancel is enabled unless the server said it cannot cancel. */
export function cancelEnabled(task) {
  return showCancel(task) && task.can_cancel !== false;
}

function hasImageOutputs(task) {
  return Array.isArray(task.outputs) && task.outputs.length > 0;
}

/**
 * Recover is offered for a task with a remote id that finished without saved outputs, or that
 * was abandoned or failed. A server-provided boolean `can_recover` overrides this rule.
 */
export function showRecover(task) {
  if (typeof task.can_recover === "boolean") return task.can_recover;
  if (!task.remote_id) return false;
  if (task.state === "succeeded") return !hasImageOutputs(task);
  return task.state === "abandoned" || task.state === "failed";
}
