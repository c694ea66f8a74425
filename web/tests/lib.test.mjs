import { test } from "node:test";
import assert from "node:assert/strict";
import { iconClass, ICONS } from "../lib/frontend.js";
import { statusChanges, taskChange } from "../lib/announce.js";
import { createTaskFeed, TASK_EVENT } from "../lib/task_feed.js";
import { initialState, reduce } from "../lib/state.js";
import { FakeApi } from "./fake_api.mjs";

test("icons: Lucide classes where the frontend has them, PrimeIcons otherwise", () => {
  assert.equal(iconClass("cloud", true), "icon-[lucide--cloud]");
  assert.equal(iconClass("cloud", false), "pi pi-cloud");
  assert.equal(iconClass("refresh", true), "icon-[lucide--refresh-cw]");
  assert.equal(iconClass("refresh", false), "pi pi-refresh");
  assert.throws(() => iconClass("nope", true), /no icon named nope/);
  for (const icon of Object.values(ICONS)) {
    assert.match(icon.lucide, /^icon-\[lucide--[a-z0-9-]+\]$/);
    assert.match(icon.prime, /^pi pi-[a-z-]+$/);
  }
});

const t = (over) => ({ id: "a", provider: "comfyui", profile: "comfyui", workflow: "slow.json", state: "queued",
  updated_at: "2025-01-01T00:00:00Z", ...over });
const stateOf = (...tasks) => tasks.reduce((s, x) => reduce(s, { type: "task", task: x }), initialState());

test("announcements: state changes that matter, never progress, one summary for many", () => {
  assert.equal(taskChange(t({}), t({ state: "running" })), "Remote task comfyui slow.json started.");
  assert.equal(taskChange(t({ state: "running" }), t({ state: "running", progress: 0.5 })), "");
  assert.equal(taskChange(undefined, t({ state: "submitting" })), "");
  assert.equal(taskChange(undefined, t({ state: "succeeded" })), "Remote task comfyui slow.json succeeded.",
    "a result that arrives finished (reused) is news");
  assert.equal(taskChange(t({ state: "running" }), t({ state: "failed", error: "x".repeat(400) })).length < 220, true);
  assert.equal(taskChange(t({ state: "running", profile: "prod" }), t({ state: "abandoned", profile: "prod" })),
    "Remote task comfyui · prod slow.json was abandoned (it may still run remotely).");
  const before = stateOf(...[1, 2, 3, 4, 5].map((i) => t({ id: `t${i}`, state: "running" })));
  const after = stateOf(...[1, 2, 3].map((i) => t({ id: `t${i}`, state: "succeeded", updated_at: "2025-01-01T00:00:01Z" })),
    ...[4, 5].map((i) => t({ id: `t${i}`, state: "failed", updated_at: "2025-01-01T00:00:01Z" })));
  assert.equal(statusChanges(before, after), "5 remote tasks changed: 3 succeeded, 2 failed.");
  assert.equal(statusChanges(before, before), "");
});

test("the task feed merges events into the store with or without subscribers", () => {
  const api = new FakeApi(async () => [404, null]);
  const store = {};
  const feed = createTaskFeed(api, store);
  api.emit(TASK_EVENT, t({ state: "running" }));
  assert.equal(store.state.tasks.a.state, "running", "merged while nobody is subscribed");
  const seen = [];
  const off = feed.subscribe((before, after) => seen.push([before.tasks.a.state, after.tasks.a.state]));
  api.emit(TASK_EVENT, [t({ state: "succeeded", updated_at: "2025-01-01T00:00:02Z" }), null, 7]);
  api.emit(TASK_EVENT, t({ state: "running", updated_at: "2025-01-01T00:00:01Z" })); // stale: no change, no call
  assert.deepEqual(seen, [["running", "succeeded"]]);
  off();
  feed.close();
  assert.equal(api.listenerCount(TASK_EVENT), 0);
});
