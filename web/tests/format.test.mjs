import { test } from "node:test";
import assert from "node:assert/strict";
import {
  truncate, formatDuration, clampProgress, formatProgress, progressAttr, formatQueue, formatStep,
  elapsedSeconds, remainingSeconds, formatElapsed, formatEta, formatCost, formatWorkflow,
  formatTimestamp, formatSource,
} from "../lib/format.js";

const T0 = Date.parse("2025-01-01T00:00:00Z");

test("truncate keeps short text and shortens long text with an ellipsis", () => {
  assert.equal(truncate("abc", 5), "abc");
  assert.equal(truncate("abcdef", 4), "abc…");
  assert.equal(truncate(null), "");
  assert.equal(truncate(undefined), "");
  assert.equal(truncate(12345, 3), "12…");
  assert.equal(truncate("x".repeat(1000)).length, 200);
});

test("formatDuration covers seconds, minutes, hours, days and rejects junk", () => {
  assert.equal(formatDuration(0), "0s");
  assert.equal(formatDuration(42.9), "42s");
  assert.equal(formatDuration(185), "3m 05s");
  assert.equal(formatDuration(3720), "1h 02m");
  assert.equal(formatDuration(3 * 86400 + 7200), "3d 2h");
  for (const bad of [-1, NaN, Infinity, null, undefined, "60", {}, []]) assert.equal(formatDuration(bad), "");
});

test("progress is clamped to 0..1 and junk is unknown", () => {
  assert.equal(clampProgress(0.5), 0.5);
  assert.equal(clampProgress(-3), 0);
  assert.equal(clampProgress(7), 1);
  for (const bad of [null, undefined, NaN, "0.5", {}, Infinity]) assert.equal(clampProgress(bad), null);
  assert.equal(formatProgress(0.429), "42%");
  assert.equal(formatProgress(1), "100%");
  assert.equal(formatProgress(null), "");
  assert.equal(progressAttr(0.42), "0.42");
  assert.equal(progressAttr(1 / 3), "0.333");
  assert.equal(progressAttr(null), "0");
  assert.equal(progressAttr(-0.5), "0");
  assert.equal(progressAttr(2), "1");
  assert.equal(progressAttr("0.7"), "0");
});

test("queue text", () => {
  assert.equal(formatQueue(3, 12), "Queue 3/12");
  assert.equal(formatQueue(3, null), "Queue 3");
  assert.equal(formatQueue(null, 12), "Queue length 12");
  assert.equal(formatQueue(0, 4), "Next in queue (4 queued)");
  assert.equal(formatQueue(0, null), "Next in queue");
  assert.equal(formatQueue(5, 2), "Queue 5", "an inconsistent length is dropped");
  assert.equal(formatQueue(null, null), "");
  assert.equal(formatQueue(-1, -5), "");
  assert.equal(formatQueue("3", "12"), "");
  assert.equal(formatQueue(2.7, 9.2), "Queue 2/9");
});

test("step text", () => {
  assert.equal(formatStep("KSampler", 12, 30), "KSampler · 12/30");
  assert.equal(formatStep("KSampler", null, null), "KSampler");
  assert.equal(formatStep(null, 3, 0), "step 3");
  assert.equal(formatStep(null, 3, 10), "3/10");
  assert.equal(formatStep(7, null, null), "7");
  assert.equal(formatStep({ x: 1 }, -1, "a"), "");
  assert.ok(formatStep("N".repeat(500), 1, 2).length < 80);
});

test("elapsed counts to now while active and to updated_at once terminal", () => {
  const t = { state: "running", created_at: "2025-01-01T00:00:00Z", updated_at: "2025-01-01T00:00:10Z" };
  assert.equal(elapsedSeconds(t, T0 + 65_000), 65);
  assert.equal(formatElapsed(t, T0 + 65_000), "1m 05s");
  const done = { ...t, state: "succeeded" };
  assert.equal(elapsedSeconds(done, T0 + 999_000), 10);
  assert.equal(elapsedSeconds({ ...t, created_at: "not a date" }, T0), null);
  assert.equal(elapsedSeconds({ ...done, updated_at: null }, T0), null);
  assert.equal(elapsedSeconds(t, T0 - 5000), 0, "client clock behind the server never gives negative time");
  assert.equal(elapsedSeconds(null), null);
  assert.equal(elapsedSeconds("task"), null);
  assert.equal(formatElapsed({}, T0), "");
});

test("ETA counts down from updated_at and disappears when terminal or junk", () => {
  const t = { state: "running", eta_s: 40, updated_at: "2025-01-01T00:00:00Z" };
  assert.equal(remainingSeconds(t, T0 + 10_000), 30);
  assert.equal(formatEta(t, T0 + 10_000), "ETA ~30s");
  assert.equal(formatEta(t, T0 + 100_000), "ETA any moment");
  assert.equal(formatEta({ ...t, state: "succeeded" }, T0), "");
  assert.equal(formatEta({ ...t, eta_s: -3 }, T0), "");
  assert.equal(formatEta({ ...t, eta_s: "40" }, T0), "");
  assert.equal(remainingSeconds({ ...t, updated_at: "garbage" }, T0), 40);
  assert.equal(formatEta(null), "");
});

test("cost accepts numbers, strings and {amount, currency}; rejects junk", () => {
  assert.equal(formatCost(0.12345), "Cost 0.1235");
  assert.equal(formatCost(12.5), "Cost 12.5");
  assert.equal(formatCost(250), "Cost 250");
  assert.equal(formatCost(0), "Cost 0");
  assert.equal(formatCost("¥0.30"), "Cost ¥0.30");
  assert.equal(formatCost({ amount: 1.5, currency: "USD" }), "Cost 1.5 USD");
  assert.equal(formatCost({ value: 3, unit: "credits" }), "Cost 3 credits");
  for (const bad of [null, undefined, -1, NaN, "", "   ", [], {}, { amount: "1" }, { amount: -2 }, true]) {
    assert.equal(formatCost(bad), "", JSON.stringify(bad));
  }
  assert.ok(formatCost("x".repeat(500)).length <= 45);
});

test("workflow text summarises inline graphs and truncates ids", () => {
  assert.equal(formatWorkflow("1979123456789"), "1979123456789");
  assert.equal(formatWorkflow('{"3": {"class_type": "KSampler"}, "9": {}}'), "API graph · 2 nodes");
  assert.equal(formatWorkflow('{"1": {}}'), "API graph · 1 node");
  assert.equal(formatWorkflow("{not json"), "API graph");
  assert.equal(formatWorkflow(null), "");
  assert.ok(formatWorkflow("w".repeat(300)).length <= 80);
});

test("timestamps and source labels", () => {
  assert.equal(formatTimestamp("nope"), "");
  assert.notEqual(formatTimestamp("2025-01-01T00:00:00Z"), "");
  assert.equal(formatSource("runninghub", "runninghub"), "runninghub");
  assert.equal(formatSource("runninghub", "prod"), "runninghub · prod");
  assert.equal(formatSource(null, "prod"), "prod");
  assert.equal(formatSource(null, null), "unknown provider");
  assert.equal(formatSource({}, 3), "unknown provider");
});
