// One task row of the Remote panel. Built once per task and updated in place, so live events
// (up to 5/s per task) neither rebuild buttons under the pointer nor reload thumbnails.
// Panel hooks (design.md §4): data-task-id, data-remote-id, data-provider, data-state,
// data-reused, data-progress; img[data-role=thumbnail]; [data-role=error]; data-action buttons;
// data-output-kind on each output (ui/outputs_view.js).
// Errors are plain text (the panel's one live region announces them, rows carry no role=alert);
// a button that was focused keeps the focus when the actions are rebuilt (keyboard use).

import { el, setAttr, setText } from "./dom.js";
import {
  formatSource, formatWorkflow, formatQueue, formatStep, formatElapsed, formatEta, formatCost,
  formatProgress, progressAttr, clampProgress, formatTimestamp, truncate,
} from "../lib/format.js";
import { showCancel, cancelEnabled, showRecover, isActive } from "../lib/state.js";
import { safeHttpUrl } from "../lib/client.js";
import { renderOutputs } from "./outputs_view.js";

const STATE_LABEL = {
  submitting: "submitting",
  queued: "queued",
  running: "running",
  succeeded: "succeeded",
  failed: "failed",
  cancelled: "cancelled",
  abandoned: "abandoned",
  unknown: "unknown",
};

const CANCEL_DISABLED_TIP = "This provider cannot cancel this task; it may still run and bill";

/**
 * ctx: {doc, outputUrl(taskId, n, thumb) → string, loadText(taskId, n, maxBytes) → Promise<string>,
 *       onAction(action, task, button), isBusy(taskId, action) → bool}
 * Returns {el, update(task), tick(nowMs)}.
 */
export function createTaskRow(ctx, task) {
  const { doc } = ctx;
  const source = el(doc, "span", { class: "crp-source" });
  const stateBadge = el(doc, "span", { class: "crp-badge crp-state", attrs: { "data-role": "state" } });
  const reusedBadge = el(doc, "span", {
    class: "crp-badge crp-reused",
    text: "reused",
    title: "Result of an earlier identical run, returned at no cost",
    attrs: { "data-role": "reused" },
  });
  const head = el(doc, "div", { class: "crp-task-head" }, [
    source,
    el(doc, "span", { class: "crp-badges" }, [reusedBadge, stateBadge]),
  ]);
  const workflow = el(doc, "div", { class: "crp-workflow", attrs: { "data-role": "workflow" } });
  const parts = {};
  const meta = el(doc, "div", { class: "crp-meta" });
  for (const name of ["queue", "step", "elapsed", "eta", "cost"]) {
    parts[name] = el(doc, "span", { class: `crp-meta-${name}`, attrs: { "data-role": name } });
    meta.appendChild(parts[name]);
  }
  const fill = el(doc, "div", { class: "crp-progress-fill" });
  const bar = el(doc, "div", {
    class: "crp-progress",
    attrs: { role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-label": "Remote progress" },
  }, [fill]);
  const message = el(doc, "div", { class: "crp-message", attrs: { "data-role": "message" } });
  const errorSlot = el(doc, "div", { class: "crp-error-slot" });
  const thumbs = el(doc, "div", { class: "crp-thumbs" });
  const actions = el(doc, "div", { class: "crp-actions" });
  const row = el(doc, "div", { class: "crp-task", attrs: { role: "listitem", tabindex: "-1" } }, [
    head, workflow, meta, bar, message, errorSlot, thumbs, actions,
  ]);

  let current = null;
  let lastBusy = "";
  let sig = "";
  let outputsSig = null;
  let actionsSig = null;

  function renderError(t) {
    const text = t.error ? truncate(t.error, 1000) : "";
    const existing = errorSlot.firstChild;
    if (!text) {
      if (existing) errorSlot.removeChild(existing);
      return;
    }
    if (existing) {
      if (existing.textContent !== text) existing.textContent = text;
    } else {
      errorSlot.appendChild(el(doc, "div", { class: "crp-error", text, attrs: { "data-role": "error" } }));
    }
  }

  function renderThumbs(t) {
    const outs = Array.isArray(t.outputs) ? t.outputs : [];
    const key = JSON.stringify([t.id, outs]);
    if (key === outputsSig) return; // a live event leaves players and thumbnails as they are
    outputsSig = key;
    const nodes = renderOutputs(ctx, t);
    thumbs.replaceChildren(...nodes);
    setAttr(thumbs, "hidden", nodes.length === 0);
  }

  // `busy` buttons stay focusable (aria-disabled), so a keyboard user who pressed Cancel keeps
  // the focus on it while the request runs; `disabled` is for actions that cannot be taken.
  function button(action, label, title, { disabled = false, busy = false } = {}) {
    const b = el(doc, "button", {
      class: "crp-btn",
      text: label,
      title,
      attrs: { type: "button", "data-action": action, disabled, "aria-disabled": busy ? "true" : null, "aria-busy": busy ? "true" : null },
    });
    b.addEventListener("click", () => {
      if (!b.disabled && b.getAttribute("aria-disabled") !== "true" && current) ctx.onAction(action, current, b);
    });
    return b;
  }

  function focusedAction() {
    const active = doc.activeElement;
    return active && active.parentNode === actions ? active.getAttribute("data-action") : null;
  }

  function renderActions(t) {
    const busyCancel = ctx.isBusy(t.id, "cancel");
    const busyRecover = ctx.isBusy(t.id, "recover");
    const consoleUrl = safeHttpUrl(t.console_url);
    const key = JSON.stringify([
      t.state, t.can_cancel, showRecover(t), t.remote_id, consoleUrl, busyCancel, busyRecover,
    ]);
    if (key === actionsSig) return;
    actionsSig = key;
    const nodes = [];
    if (showCancel(t)) {
      const enabled = cancelEnabled(t);
      nodes.push(button("cancel", busyCancel ? "Cancelling…" : "Cancel",
        enabled ? "Cancel the remote task" : CANCEL_DISABLED_TIP, { disabled: !enabled, busy: busyCancel }));
    }
    if (showRecover(t)) {
      nodes.push(button("recover", busyRecover ? "Recovering…" : "Recover",
        "Look the task up on the provider again and fetch its results", { busy: busyRecover }));
    }
    if (t.remote_id) {
      nodes.push(button("copy-id", "Copy id", `Copy the remote id ${truncate(t.remote_id, 100)}`));
    }
    if (consoleUrl) {
      nodes.push(el(doc, "a", {
        class: "crp-btn crp-link",
        text: "Open ↗",
        title: "Open in the provider's console",
        attrs: { "data-action": "open", href: consoleUrl, target: "_blank", rel: "noopener noreferrer" },
      }));
    }
    const hadFocus = focusedAction();
    actions.replaceChildren(...nodes);
    setAttr(actions, "hidden", nodes.length === 0);
    if (hadFocus) {
      // the same action if it is still offered, else the first one left, else the row itself
      const next = nodes.find((n) => n.getAttribute("data-action") === hadFocus && !n.disabled)
        || nodes.find((n) => !n.disabled) || row;
      next.focus();
    }
  }

  function tick(nowMs = Date.now()) {
    if (!current) return;
    const elapsed = formatElapsed(current, nowMs);
    setText(parts.elapsed, elapsed ? `elapsed ${elapsed}` : "");
    setText(parts.eta, formatEta(current, nowMs));
  }

  function update(t, nowMs = Date.now()) {
    const busyKey = (ctx.isBusy(t.id, "cancel") ? "c" : "") + (ctx.isBusy(t.id, "recover") ? "r" : "");
    // The reducer keeps unchanged tasks as the same object: skip the signature work for them.
    if (t === current && busyKey === lastBusy) {
      tick(nowMs);
      return;
    }
    current = t;
    lastBusy = busyKey;
    const nextSig = JSON.stringify(t) + busyKey;
    if (nextSig === sig) {
      tick(nowMs);
      return;
    }
    sig = nextSig;
    setAttr(row, "class", `crp-task crp-task-${t.state}`);
    setAttr(row, "data-task-id", t.id);
    setAttr(row, "data-remote-id", t.remote_id || "");
    setAttr(row, "data-provider", t.provider || "");
    setAttr(row, "data-state", t.state);
    setAttr(row, "data-reused", t.reused ? "true" : "false");
    setAttr(row, "data-progress", progressAttr(t.state === "succeeded" && t.progress === null ? 1 : t.progress));

    source.textContent = formatSource(t.provider, t.profile);
    setAttr(source, "title", [
      t.remote_id ? `Remote id: ${truncate(t.remote_id, 200)}` : "Not yet accepted by the provider",
      t.created_at ? `Created: ${formatTimestamp(t.created_at)}` : "",
    ].filter(Boolean).join("\n"));
    stateBadge.textContent = STATE_LABEL[t.state] || "unknown";
    setAttr(stateBadge, "class", `crp-badge crp-state crp-state-${t.state}`);
    setAttr(reusedBadge, "hidden", !t.reused);

    setText(workflow, formatWorkflow(t.workflow));
    setAttr(workflow, "title", t.workflow ? truncate(t.workflow, 500) : null);

    setText(parts.queue, t.state === "queued" || t.state === "submitting" ? formatQueue(t.queue_position, t.queue_length) : "");
    setText(parts.step, isActive(t) ? formatStep(t.node, t.step, t.max_steps) : "");
    setText(parts.cost, formatCost(t.cost));

    const p = clampProgress(t.progress);
    const shown = t.state === "succeeded" ? 1 : p;
    fill.style.width = `${Math.round((shown ?? 0) * 1000) / 10}%`;
    setAttr(bar, "aria-valuenow", shown === null ? null : String(Math.round(shown * 100)));
    setAttr(bar, "title", formatProgress(shown));
    setAttr(bar, "data-indeterminate", t.state === "running" && p === null ? "true" : null);
    setAttr(bar, "hidden", !isActive(t) && t.state !== "succeeded" && p === null);

    const msg = t.message && t.message !== t.error ? truncate(t.message, 300) : "";
    setText(message, msg);
    renderError(t);
    renderThumbs(t);
    renderActions(t);
    tick(nowMs);
  }

  update(task);
  return { el: row, update, tick, get task() { return current; } };
}
