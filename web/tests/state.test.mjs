import { test } from "node:test";
import assert from "node:assert/strict";
import {
  normalizeTask, initialState, reduce, visibleTasks, nextCursor, categoryOf, isNewer,
  showCancel, cancelEnabled, showRecover, STATES,
} from "../lib/state.js";

const task = (over = {}) => ({
  id: "t1", remote_id: "r1", profile: "runninghub", provider: "runninghub", workflow: "1979",
  state: "running", reused: false, queue_position: null, queue_length: null, progress: 0.5,
  node: "KSampler", step: 5, max_steps: 10, eta_s: 12, message: null, cost: null, error: null,
  can_cancel: true, console_url: null, created_at: "2025-01-01T00:00:00Z",
  updated_at: "2025-01-01T00:00:05Z", outputs: [], ...over,
});

test("normalizeTask rejects non-tasks and payloads without an id", () => {
  for (const bad of [null, undefined, 0, "x", [], [task()], {}, { id: "" }, { id: null }, { id: {} }, { id: NaN }]) {
    assert.equal(normalizeTask(bad), null, JSON.stringify(bad));
  }
  assert.equal(normalizeTask({ id: 7 }).id, "7", "numeric ids become strings");
});

test("normalizeTask nulls wrong-typed fields and maps unknown states", () => {
  const t = normalizeTask({
    id: "a", state: "exploded", reused: "yes", progress: "0.5", queue_position: {}, can_cancel: "true",
    error: 42, created_at: 5, outputs: "many", eta_s: Infinity, cost: { amount: 1 },
  });
  assert.equal(t.state, "unknown");
  assert.equal(t.reused, false);
  assert.equal(t.progress, null);
  assert.equal(t.queue_position, null);
  assert.equal(t.can_cancel, null);
  assert.equal(t.error, "42");
  assert.equal(t.created_at, "5");
  assert.equal(t.outputs, null);
  assert.equal(t.eta_s, null);
  assert.deepEqual(t.cost, { amount: 1 });
  for (const s of STATES) assert.equal(normalizeTask({ id: "x", state: s }).state, s);
});

test("normalizeTask keeps only well-formed, distinct outputs", () => {
  const t = normalizeTask(task({
    outputs: [
      { n: 0, kind: "image", filename: "a.png", width: 64, height: 64 },
      { n: 0, kind: "image", filename: "dup.png" },
      { n: -1 }, { n: 1.5 }, { n: "2" }, null, "x", { kind: "image" },
      { n: 3, kind: "video", filename: "v.mp4", width: "wide" },
    ],
  }));
  assert.deepEqual(t.outputs.map((o) => o.n), [0, 3]);
  assert.equal(t.outputs[1].width, null);
});

test("live events and list pages merge by id; older updates never overwrite newer ones", () => {
  let s = initialState();
  s = reduce(s, { type: "task", task: task({ progress: 0.5 }) });
  s = reduce(s, { type: "task", task: task({ progress: 0.7, updated_at: "2025-01-01T00:00:09Z" }) });
  // a list fetch that started before the last event answers late with the older copy
  s = reduce(s, { type: "page", filter: null, tasks: [task({ progress: 0.5 })], next: null });
  assert.equal(s.tasks.t1.progress, 0.7);
  s = reduce(s, { type: "task", task: task({ state: "succeeded", progress: 1, updated_at: "2025-01-01T00:00:20Z" }) });
  assert.equal(s.tasks.t1.state, "succeeded");
  assert.equal(Object.keys(s.tasks).length, 1);
});

test("equal or missing timestamps let the incoming copy win", () => {
  assert.equal(isNewer(null, task()), true);
  assert.equal(isNewer(task(), task()), true);
  assert.equal(isNewer(task({ updated_at: null }), task({ updated_at: "2020-01-01T00:00:00Z" })), true);
  assert.equal(isNewer(task(), task({ updated_at: "garbage" })), true);
  assert.equal(isNewer(task(), task({ updated_at: "2024-01-01T00:00:00Z" })), false);
});

test("malformed actions and payloads leave the state unchanged (same object)", () => {
  const s0 = reduce(initialState(), { type: "task", task: task() });
  for (const a of [null, undefined, 5, {}, { type: "nope" }, { type: "task", task: null },
    { type: "task", task: { id: "" } }, { type: "task", task: [] }, { type: "filter", filter: null }]) {
    assert.equal(reduce(s0, a), s0, JSON.stringify(a));
  }
  const s1 = reduce(s0, { type: "page", filter: null, tasks: "not a list", next: 5 });
  assert.deepEqual(s1.tasks, s0.tasks);
  assert.equal(nextCursor(s1), null);
  const s2 = reduce(s0, { type: "page", filter: null, tasks: [null, 1, "x", { nope: 1 }], next: null });
  assert.deepEqual(s2.tasks, s0.tasks);
});

test("tasks are ordered newest first with a stable id tie-break; missing dates go last", () => {
  let s = initialState();
  const list = [
    task({ id: "old", created_at: "2024-12-31T00:00:00Z" }),
    task({ id: "new", created_at: "2025-01-02T00:00:00Z" }),
    task({ id: "nodate", created_at: null }),
    task({ id: "b", created_at: "2025-01-01T00:00:00Z" }),
    task({ id: "a", created_at: "2025-01-01T00:00:00Z" }),
  ];
  s = reduce(s, { type: "page", filter: null, tasks: list, next: null });
  assert.deepEqual(visibleTasks(s).map((t) => t.id), ["new", "b", "a", "old", "nodate"]);
});

test("filters group states: active / finished / failed; none = all", () => {
  let s = initialState();
  const states = ["submitting", "queued", "running", "succeeded", "cancelled", "failed", "abandoned"];
  s = reduce(s, { type: "page", filter: null, tasks: states.map((st, i) => task({ id: st, state: st, created_at: `2025-01-0${i + 1}T00:00:00Z` })), next: null });
  s = reduce(s, { type: "task", task: task({ id: "weird", state: "exploded" }) });
  const ids = (f) => visibleTasks(reduce(s, { type: "filter", filter: f })).map((t) => t.id).sort();
  assert.deepEqual(ids("active"), ["abandoned", "queued", "running", "submitting"]);
  assert.deepEqual(ids("finished"), ["cancelled", "succeeded"]);
  assert.deepEqual(ids("failed"), ["failed"]);
  assert.equal(ids(null).length, 8, "no filter lists every task, unknown state included");
  assert.equal(reduce(s, { type: "filter", filter: "bogus" }).filter, null);
  assert.equal(categoryOf({ state: "unknown" }), null);
});

test("a live event moves a task between filters", () => {
  let s = reduce(initialState(), { type: "filter", filter: "active" });
  s = reduce(s, { type: "task", task: task() });
  assert.equal(visibleTasks(s).length, 1);
  s = reduce(s, { type: "task", task: task({ state: "failed", error: "boom", updated_at: "2025-01-01T00:01:00Z" }) });
  assert.equal(visibleTasks(s).length, 0);
});

test("cursors are kept per filter; refresh does not reset a deeper cursor; stale appends are ignored", () => {
  let s = initialState();
  s = reduce(s, { type: "page", filter: null, tasks: [task({ id: "1" })], next: "c1" });
  assert.equal(nextCursor(s), "c1");
  s = reduce(s, { type: "page", filter: null, tasks: [task({ id: "2" })], next: "c2", append: true, before: "c1" });
  assert.equal(nextCursor(s), "c2");
  // a refresh of page one must not rewind "Load more"
  s = reduce(s, { type: "page", filter: null, tasks: [task({ id: "3" })], next: "c1" });
  assert.equal(nextCursor(s), "c2");
  // an answer for an old cursor (double click) is dropped entirely
  const before = s;
  s = reduce(s, { type: "page", filter: null, tasks: [task({ id: "zz" })], next: "c9", append: true, before: "c1" });
  assert.equal(s, before);
  s = reduce(s, { type: "page", filter: null, tasks: [], next: null, append: true, before: "c2" });
  assert.equal(nextCursor(s), null);
  // other filters have their own cursor
  s = reduce(s, { type: "filter", filter: "failed" });
  assert.equal(nextCursor(s), null);
  s = reduce(s, { type: "page", filter: "failed", tasks: [], next: "f1" });
  assert.equal(nextCursor(s), "f1");
  s = reduce(s, { type: "page", filter: "failed", tasks: [], next: "" });
  assert.equal(nextCursor(s), null, "an empty-string cursor means no more pages");
});

test("cancel is shown for tasks that may still run and disabled where can_cancel is false", () => {
  const n = (o) => normalizeTask(task(o));
  assert.equal(showCancel(n({ state: "running" })), true);
  assert.equal(showCancel(n({ state: "submitting" })), true);
  assert.equal(showCancel(n({ state: "abandoned" })), true);
  for (const st of ["succeeded", "failed", "cancelled"]) assert.equal(showCancel(n({ state: st })), false);
  assert.equal(cancelEnabled(n({ state: "queued", can_cancel: false })), false);
  assert.equal(cancelEnabled(n({ state: "queued", can_cancel: null })), true, "unknown → let the server decide");
  assert.equal(cancelEnabled(n({ state: "succeeded", can_cancel: true })), false);
});

test("recover is offered for lost outputs and abandoned/failed tasks with a remote id", () => {
  const n = (o) => normalizeTask(task(o));
  assert.equal(showRecover(n({ state: "succeeded", outputs: [] })), true);
  assert.equal(showRecover(n({ state: "succeeded", outputs: null })), true);
  assert.equal(showRecover(n({ state: "succeeded", outputs: [{ n: 0, kind: "image" }] })), false);
  assert.equal(showRecover(n({ state: "abandoned" })), true);
  assert.equal(showRecover(n({ state: "failed" })), true);
  assert.equal(showRecover(n({ state: "failed", remote_id: null })), false, "never submitted → nothing to recover");
  assert.equal(showRecover(n({ state: "running" })), false);
  assert.equal(showRecover(n({ state: "cancelled" })), false);
  assert.equal(showRecover(n({ state: "running", can_recover: true })), true, "server flag wins");
  assert.equal(showRecover(n({ state: "failed", can_recover: false })), false);
});
