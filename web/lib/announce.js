// What the panel's one live region says when tasks change state: a short sentence per task that
// started, finished, failed, was cancelled or abandoned (progress ticks are never announced), or
// one summary when many changed at once (a fan-out of a hundred tasks must not read a hundred lines).

import { formatSource, formatWorkflow, truncate } from "./format.js";

const SPOKEN = {
  running: "started",
  succeeded: "succeeded",
  failed: "failed",
  cancelled: "was cancelled",
  abandoned: "was abandoned (it may still run remotely)",
};
const MAX_LINES = 3;

function label(task) {
  const source = formatSource(task.provider, task.profile);
  return task.workflow ? `${source} ${formatWorkflow(task.workflow)}` : source;
}

/** The sentence for a live event that moved a task from `before` (undefined: first seen) to `after`, or "". */
export function taskChange(before, after) {
  if (!after || !SPOKEN[after.state]) return "";
  if (before && before.state === after.state) return "";
  const error = after.state === "failed" && after.error ? `: ${truncate(after.error, 160)}` : "";
  return `Remote task ${label(after)} ${SPOKEN[after.state]}${error}.`;
}

/** One message for every task whose state changed between two panel states, or "". */
export function statusChanges(before, after) {
  const lines = [];
  const counts = new Map();
  for (const [id, task] of Object.entries(after.tasks)) {
    const line = taskChange(before.tasks[id], task);
    if (!line) continue;
    lines.push(line);
    counts.set(task.state, (counts.get(task.state) || 0) + 1);
  }
  if (lines.length <= MAX_LINES) return lines.join(" ");
  const parts = [...counts].map(([state, n]) => `${n} ${state === "running" ? "started" : state}`);
  return `${lines.length} remote tasks changed: ${parts.join(", ")}.`;
}
