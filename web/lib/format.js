// Text formatting for the Remote panel: durations, ETA, progress, queue, cost, workflow.
// Pure functions, no DOM, no ComfyUI imports. Every input may be null, malformed or hostile:
// each function returns a string ("" when there is nothing worth showing) and never throws.

const isNum = (v) => typeof v === "number" && Number.isFinite(v);

/** Shorten untrusted text to at most `max` characters (adds an ellipsis). */
export function truncate(text, max = 200) {
  if (text === null || text === undefined) return "";
  const s = String(text);
  if (s.length <= max) return s;
  return s.slice(0, Math.max(0, max - 1)) + "…";
}

/** Parse an ISO-8601 time to epoch ms, or NaN. */
export function parseTime(iso) {
  if (typeof iso !== "string" || iso === "") return NaN;
  return Date.parse(iso);
}

/** 0 → "0s", 42 → "42s", 185 → "3m 05s", 3720 → "1h 02m". Negative / non-numbers → "". */
export function formatDuration(seconds) {
  if (!isNum(seconds) || seconds < 0) return "";
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** Clamp a progress value to 0..1; null / NaN / strings → null. */
export function clampProgress(p) {
  if (!isNum(p)) return null;
  return Math.min(1, Math.max(0, p));
}

/** "42%" for 0.42; "" when unknown. */
export function formatProgress(p) {
  const c = clampProgress(p);
  if (c === null) return "";
  return `${Math.floor(c * 100)}%`;
}

/** Value for data-progress: a number in 0..1 as a short string ("0", "0.42", "1"). */
export function progressAttr(p) {
  const c = clampProgress(p);
  return String(c === null ? 0 : Math.round(c * 1000) / 1000);
}

/** Queue text: "Queue 3/12", "Queue 3", "Queue length 12", "Next in queue" (position 0). */
export function formatQueue(position, length) {
  const pos = isNum(position) && position >= 0 ? Math.floor(position) : null;
  const len = isNum(length) && length >= 0 ? Math.floor(length) : null;
  if (pos === null && len === null) return "";
  if (pos === null) return `Queue length ${len}`;
  if (pos === 0) return len ? `Next in queue (${len} queued)` : "Next in queue";
  return len !== null && len >= pos ? `Queue ${pos}/${len}` : `Queue ${pos}`;
}

/** Current remote node and step: "KSampler · 12/30", "KSampler", "12/30". */
export function formatStep(node, step, maxSteps) {
  const label = typeof node === "string" || isNum(node) ? truncate(String(node).trim(), 60) : "";
  let steps = "";
  if (isNum(step) && step >= 0) {
    steps = isNum(maxSteps) && maxSteps > 0 ? `${Math.floor(step)}/${Math.floor(maxSteps)}` : `step ${Math.floor(step)}`;
  }
  return [label, steps].filter(Boolean).join(" · ");
}

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

/** Seconds a task has run: until now while active, until updated_at once terminal. Never negative. */
export function elapsedSeconds(task, nowMs = Date.now()) {
  if (!task || typeof task !== "object") return null;
  const start = parseTime(task.created_at);
  if (Number.isNaN(start)) return null;
  let end = nowMs;
  if (TERMINAL.has(task.state)) {
    const upd = parseTime(task.updated_at);
    if (Number.isNaN(upd)) return null;
    end = upd;
  }
  return Math.max(0, (end - start) / 1000);
}

/** Remaining seconds: eta_s counted down from updated_at (the time the estimate was made). */
export function remainingSeconds(task, nowMs = Date.now()) {
  if (!task || typeof task !== "object" || !isNum(task.eta_s) || task.eta_s < 0) return null;
  if (TERMINAL.has(task.state)) return null;
  const upd = parseTime(task.updated_at);
  const since = Number.isNaN(upd) ? 0 : Math.max(0, (nowMs - upd) / 1000);
  return Math.max(0, task.eta_s - since);
}

/** "1m 02s" elapsed text and "ETA ~40s" text for a task. */
export function formatElapsed(task, nowMs = Date.now()) {
  return formatDuration(elapsedSeconds(task, nowMs));
}

export function formatEta(task, nowMs = Date.now()) {
  const r = remainingSeconds(task, nowMs);
  if (r === null) return "";
  return r < 1 ? "ETA any moment" : `ETA ~${formatDuration(r)}`;
}

function formatAmount(n) {
  if (!isNum(n)) return "";
  if (n === 0) return "0";
  const abs = Math.abs(n);
  const digits = abs >= 100 ? 0 : abs >= 1 ? 2 : 4;
  return String(Number(n.toFixed(digits)));
}

/**
 * Cost text. Accepts a number (provider units), a string (shown as given, truncated),
 * or an object {amount|value, currency|unit}. Unknown shapes → "".
 */
export function formatCost(cost) {
  if (cost === null || cost === undefined) return "";
  if (isNum(cost)) return cost < 0 ? "" : `Cost ${formatAmount(cost)}`;
  if (typeof cost === "string") return cost.trim() ? `Cost ${truncate(cost.trim(), 40)}` : "";
  if (typeof cost === "object" && !Array.isArray(cost)) {
    const amount = isNum(cost.amount) ? cost.amount : isNum(cost.value) ? cost.value : null;
    if (amount === null || amount < 0) return "";
    const unitRaw = typeof cost.currency === "string" ? cost.currency : typeof cost.unit === "string" ? cost.unit : "";
    const unit = truncate(unitRaw.trim(), 16);
    return `Cost ${formatAmount(amount)}${unit ? " " + unit : ""}`;
  }
  return "";
}

/** Workflow text: an inline API graph becomes "API graph · N nodes"; ids / names are truncated. */
export function formatWorkflow(workflow) {
  if (workflow === null || workflow === undefined) return "";
  const s = String(workflow).trim();
  if (s.startsWith("{")) {
    try {
      const g = JSON.parse(s);
      if (g && typeof g === "object" && !Array.isArray(g)) {
        const n = Object.keys(g).length;
        return `API graph · ${n} node${n === 1 ? "" : "s"}`;
      }
    } catch {
      /* not JSON: fall through */
    }
    return "API graph";
  }
  return truncate(s, 80);
}

/** Local time of an ISO string for tooltips, or "". */
export function formatTimestamp(iso) {
  const t = parseTime(iso);
  if (Number.isNaN(t)) return "";
  return new Date(t).toLocaleString();
}

/** Provider label "runninghub · prod" (profile shown only when it differs from the provider). */
export function formatSource(provider, profile) {
  const p = typeof provider === "string" ? truncate(provider, 40) : "";
  const f = typeof profile === "string" ? truncate(profile, 40) : "";
  if (p && f && p !== f) return `${p} · ${f}`;
  return p || f || "unknown provider";
}
