import { test } from "node:test";
import assert from "node:assert/strict";
import { createDocument, FakeEvent } from "./fake_dom.mjs";
import { FakeApi, flush } from "./fake_api.mjs";
import { mountPanel, TASK_EVENT } from "../ui/panel.js";

const task = (over = {}) => ({
  id: "t1", remote_id: "r1", profile: "runninghub", provider: "runninghub", workflow: "1979",
  state: "running", reused: false, queue_position: null, queue_length: null, progress: 0.25,
  node: "KSampler", step: 5, max_steps: 20, eta_s: 30, message: null, cost: null, error: null,
  can_cancel: true, console_url: "https://www.runninghub.cn/task/r1",
  created_at: "2025-01-01T00:00:00Z", updated_at: "2025-01-01T00:00:05Z", outputs: [], ...over,
});

const PROFILES = [
  { name: "sandbox", provider: "sandbox", url: "http://127.0.0.1:0", configured: true, capabilities: { cancel: true } },
  { name: "runninghub", provider: "runninghub", url: "https://www.runninghub.cn", configured: false, capabilities: ["cancel", "cost"] },
  { name: "speedpix", provider: "speedpix", url: "https://openai.edu-aliyun.com", configured: false, capabilities: null },
];

/** Mount the panel against a fake server. `server` may override answers per route. */
function setup({ tasks = [task()], next = null, server = {}, memory = {}, options = {} } = {}) {
  const doc = createDocument();
  const root = doc.createElement("div");
  doc.body.appendChild(root);
  const api = new FakeApi(async (method, route, body) => {
    for (const [prefix, fn] of Object.entries(server)) {
      if (`${method} ${route}`.startsWith(prefix)) return fn(route, body);
    }
    if (method === "GET" && route.startsWith("/comfyui_remote/tasks")) return [200, { tasks, next }];
    if (method === "GET" && route === "/comfyui_remote/profiles") return [200, PROFILES];
    return [404, { error: `no route ${method} ${route}` }];
  });
  const notes = [];
  const teardown = mountPanel(root, {
    api, doc, memory, notify: (...a) => notes.push(a), refreshDelayMs: 5, tickMs: 5, ...options,
  });
  const $ = (s) => root.querySelector(s);
  const $$ = (s) => root.querySelectorAll(s);
  const row = (id) => $(`[data-task-id="${id}"]`);
  return { doc, root, api, teardown, $, $$, row, notes, memory };
}

test("rows carry the panel hooks and are listed newest first", async (t) => {
  const p = setup({
    tasks: [
      task({ id: "old", created_at: "2024-12-01T00:00:00Z", state: "succeeded", progress: null, outputs: [{ n: 0, kind: "image", filename: "a.png" }] }),
      task({ id: "new", created_at: "2025-02-01T00:00:00Z", reused: true, state: "queued", queue_position: 2, queue_length: 5, progress: 0.5 }),
    ],
  });
  t.after(p.teardown);
  await flush();
  const rows = p.$$("[data-task-id]");
  assert.deepEqual(rows.map((r) => r.getAttribute("data-task-id")), ["new", "old"]);
  const n = p.row("new");
  assert.equal(n.getAttribute("data-remote-id"), "r1");
  assert.equal(n.getAttribute("data-provider"), "runninghub");
  assert.equal(n.getAttribute("data-state"), "queued");
  assert.equal(n.getAttribute("data-reused"), "true");
  assert.equal(n.getAttribute("data-progress"), "0.5");
  assert.match(n.textContent, /Queue 2\/5/);
  assert.equal(n.querySelector('[data-role="reused"]').hidden, false);
  const o = p.row("old");
  assert.equal(o.getAttribute("data-reused"), "false");
  assert.equal(o.getAttribute("data-progress"), "1", "a succeeded task without progress shows as complete");
  assert.equal(o.querySelector('[data-role="reused"]').hidden, true);
  assert.equal(p.$$('[data-filter]').map((b) => b.getAttribute("data-filter")).join(), "active,finished,failed");
  assert.equal(p.api.routes("GET", "/comfyui_remote/tasks")[0].route, "/comfyui_remote/tasks?limit=50");
});

test("thumbnails use the thumb route and open the full image in a new tab", async (t) => {
  const p = setup({ tasks: [task({ state: "succeeded", outputs: [
    { n: 0, kind: "image", filename: "a.png", width: 512, height: 512 },
    { n: 1, kind: "video", filename: "clip.mp4" },
    { n: 2, kind: null, filename: "b.webp" },
  ] })] });
  t.after(p.teardown);
  await flush();
  const imgs = p.$$('img[data-role="thumbnail"]');
  assert.deepEqual(imgs.map((i) => i.getAttribute("src")), [
    "/api/comfyui_remote/tasks/t1/outputs/0?thumb=256",
    "/api/comfyui_remote/tasks/t1/outputs/2?thumb=256",
  ]);
  const link = imgs[0].parentNode;
  assert.equal(link.tagName, "A");
  assert.equal(link.getAttribute("href"), "/api/comfyui_remote/tasks/t1/outputs/0");
  assert.equal(link.getAttribute("target"), "_blank");
  assert.match(link.getAttribute("rel"), /noopener/);
  const file = p.$('[data-role="output-link"]');
  assert.equal(file.getAttribute("href"), "/api/comfyui_remote/tasks/t1/outputs/1");
  assert.equal(file.textContent, "clip.mp4");
});

test("live events merge into the same row element; new tasks appear on top", async (t) => {
  const p = setup();
  t.after(p.teardown);
  await flush();
  const before = p.row("t1");
  p.api.emit(TASK_EVENT, task({ progress: 0.8, step: 16, updated_at: "2025-01-01T00:00:09Z" }));
  assert.equal(p.row("t1"), before, "updated in place, not rebuilt");
  assert.equal(before.getAttribute("data-progress"), "0.8");
  assert.match(before.textContent, /KSampler · 16\/20/);
  const cancelBtn = before.querySelector('[data-action="cancel"]');
  p.api.emit(TASK_EVENT, task({ progress: 0.9, updated_at: "2025-01-01T00:00:10Z" }));
  assert.equal(before.querySelector('[data-action="cancel"]'), cancelBtn, "buttons are not rebuilt under the pointer");
  // a stale event is ignored
  p.api.emit(TASK_EVENT, task({ progress: 0.1, updated_at: "2025-01-01T00:00:01Z" }));
  assert.equal(before.getAttribute("data-progress"), "0.9");
  p.api.emit(TASK_EVENT, task({ id: "t2", created_at: "2025-01-01T01:00:00Z", state: "submitting", remote_id: null }));
  assert.deepEqual(p.$$("[data-task-id]").map((r) => r.getAttribute("data-task-id")), ["t2", "t1"]);
  assert.equal(p.row("t2").getAttribute("data-remote-id"), "");
  assert.equal(p.row("t2").querySelector('[data-action="copy-id"]'), null, "no remote id → nothing to copy");
});

test("malformed and hostile events are ignored or rendered as plain text", async (t) => {
  const p = setup();
  t.after(p.teardown);
  await flush();
  for (const bad of [null, undefined, 42, "task", [], { id: "" }, { state: "running" }, [null, 3]]) {
    p.api.emit(TASK_EVENT, bad);
  }
  assert.equal(p.$$("[data-task-id]").length, 1);
  const evil = '<img src=x onerror="alert(1)">';
  p.api.emit(TASK_EVENT, task({
    id: "evil", state: "failed", error: evil, message: evil, provider: evil, workflow: evil,
    node: evil, console_url: "javascript:alert(1)", created_at: "2025-03-01T00:00:00Z", updated_at: "2025-03-01T00:00:00Z",
  }));
  const r = p.row("evil");
  assert.equal(r.querySelector('[data-role="error"]').textContent, evil);
  assert.equal(r.querySelectorAll("img").length, 0, "no element is created from provider text");
  assert.equal(r.querySelector('[data-action="open"]'), null, "a javascript: console URL is never linked");
  assert.equal(r.getAttribute("data-state"), "failed");
  p.api.emit(TASK_EVENT, task({ id: "odd", state: "melted", progress: 7, created_at: "2025-04-01T00:00:00Z" }));
  assert.equal(p.row("odd").getAttribute("data-state"), "unknown");
  assert.equal(p.row("odd").getAttribute("data-progress"), "1");
});

test("error text appears only on rows that have an error and goes away when cleared", async (t) => {
  const p = setup();
  t.after(p.teardown);
  await flush();
  assert.equal(p.$$('[data-role="error"]').length, 0);
  p.api.emit(TASK_EVENT, task({ state: "failed", error: "KSampler #3: out of memory", updated_at: "2025-01-01T00:01:00Z" }));
  assert.equal(p.$('[data-role="error"]').textContent, "KSampler #3: out of memory");
  p.api.emit(TASK_EVENT, task({ state: "running", error: null, updated_at: "2025-01-01T00:02:00Z" }));
  assert.equal(p.$$('[data-role="error"]').length, 0);
});

test("Cancel posts once, merges the answer, and is disabled with a tooltip where it cannot cancel", async (t) => {
  const p = setup({
    tasks: [task(), task({ id: "t2", can_cancel: false, created_at: "2024-01-01T00:00:00Z" })],
    server: {
      "POST /comfyui_remote/tasks/t1/cancel": () => [200, task({ state: "cancelled", updated_at: "2025-01-01T00:00:30Z" })],
    },
  });
  t.after(p.teardown);
  await flush();
  const off = p.row("t2").querySelector('[data-action="cancel"]');
  assert.equal(off.disabled, true);
  assert.match(off.getAttribute("title"), /cannot cancel/);
  const btn = p.row("t1").querySelector('[data-action="cancel"]');
  assert.equal(btn.disabled, false);
  btn.click();
  btn.click();
  await flush();
  assert.equal(p.api.routes("POST", "/comfyui_remote/tasks/t1/cancel").length, 1, "one click, one request, no confirm");
  assert.equal(p.row("t1").getAttribute("data-state"), "cancelled");
  assert.equal(p.row("t1").querySelector('[data-action="cancel"]'), null);
});

test("a failed action is reported without losing the row", async (t) => {
  const p = setup({ server: { "POST /comfyui_remote/tasks/t1/cancel": () => [409, { error: "already finished" }] } });
  t.after(p.teardown);
  await flush();
  p.row("t1").querySelector('[data-action="cancel"]').click();
  await flush();
  assert.equal(p.notes[0][0], "error");
  assert.match(p.notes[0][2], /already finished/);
  assert.match(p.$('[data-role="panel-message"]').textContent, /already finished/);
  assert.equal(p.row("t1").querySelector('[data-action="cancel"]').disabled, false, "button usable again");
});

test("Recover is offered for lost outputs / abandoned / failed-with-remote-id and posts recover", async (t) => {
  const p = setup({
    tasks: [
      task({ id: "lost", state: "succeeded", outputs: [], created_at: "2025-01-04T00:00:00Z" }),
      task({ id: "ab", state: "abandoned", can_cancel: false, created_at: "2025-01-03T00:00:00Z" }),
      task({ id: "fail", state: "failed", error: "x", created_at: "2025-01-02T00:00:00Z" }),
      task({ id: "fail-local", state: "failed", remote_id: null, error: "x", created_at: "2025-01-01T00:00:00Z" }),
      task({ id: "ok", state: "succeeded", outputs: [{ n: 0, kind: "image" }], created_at: "2024-12-01T00:00:00Z" }),
    ],
    server: { "POST /comfyui_remote/tasks/ab/recover": () => [200, task({ id: "ab", state: "running", updated_at: "2025-05-01T00:00:00Z", created_at: "2025-01-03T00:00:00Z" })] },
  });
  t.after(p.teardown);
  await flush();
  const has = (id) => Boolean(p.row(id).querySelector('[data-action="recover"]'));
  assert.deepEqual(["lost", "ab", "fail", "fail-local", "ok"].map(has), [true, true, true, false, false]);
  p.row("ab").querySelector('[data-action="recover"]').click();
  await flush();
  assert.equal(p.api.routes("POST", "/comfyui_remote/tasks/ab/recover").length, 1);
  assert.equal(p.row("ab").getAttribute("data-state"), "running");
});

test("Open links to the provider console in a new tab; Copy id copies the remote id", async (t) => {
  const copied = [];
  const win = { isSecureContext: true, navigator: { clipboard: { writeText: async (s) => { copied.push(s); } } } };
  const p = setup({ options: { win } });
  t.after(p.teardown);
  await flush();
  const open = p.row("t1").querySelector('[data-action="open"]');
  assert.equal(open.tagName, "A");
  assert.equal(open.getAttribute("href"), "https://www.runninghub.cn/task/r1");
  assert.equal(open.getAttribute("target"), "_blank");
  assert.match(open.getAttribute("rel"), /noopener/);
  const copy = p.row("t1").querySelector('[data-action="copy-id"]');
  copy.click();
  await flush();
  assert.deepEqual(copied, ["r1"]);
  assert.equal(copy.textContent, "Copied");
});

test("filters query the server, toggle off to all, and filter client-side", async (t) => {
  const p = setup({
    tasks: [task(), task({ id: "f", state: "failed", error: "e", created_at: "2024-01-01T00:00:00Z" })],
  });
  t.after(p.teardown);
  await flush();
  const failed = p.$('[data-filter="failed"]');
  failed.click();
  await flush();
  assert.equal(failed.getAttribute("aria-pressed"), "true");
  assert.equal(p.api.calls.at(-1).route, "/comfyui_remote/tasks?state=failed&limit=50");
  assert.deepEqual(p.$$("[data-task-id]").map((r) => r.getAttribute("data-task-id")), ["f"]);
  p.$('[data-filter="active"]').click();
  await flush();
  assert.equal(failed.getAttribute("aria-pressed"), "false");
  assert.deepEqual(p.$$("[data-task-id]").map((r) => r.getAttribute("data-task-id")), ["t1"]);
  p.$('[data-filter="active"]').click();
  await flush();
  assert.equal(p.$$("[data-task-id]").length, 2, "no filter selected = every task");
  assert.equal(p.api.calls.filter((c) => c.route.startsWith("/comfyui_remote/tasks")).at(-1).route, "/comfyui_remote/tasks?limit=50");
});

test("Load more follows the next cursor and hides at the end", async (t) => {
  const page2 = [task({ id: "older", created_at: "2020-01-01T00:00:00Z", state: "succeeded", outputs: [{ n: 0, kind: "image" }] })];
  const p = setup({
    next: "cursor-1",
    server: { "GET /comfyui_remote/tasks?limit=50&before=cursor-1": () => [200, { tasks: page2, next: null }] },
  });
  t.after(p.teardown);
  await flush();
  const more = p.$('[data-role="load-more"]');
  assert.equal(more.hidden, false);
  more.click();
  await flush();
  assert.deepEqual(p.$$("[data-task-id]").map((r) => r.getAttribute("data-task-id")), ["t1", "older"]);
  assert.equal(more.hidden, true);
});

test("an empty list says so; a failing list shows a message and keeps known tasks", async (t) => {
  let fail = false;
  const p = setup({ tasks: [], server: { "GET /comfyui_remote/tasks": () => (fail ? [500, "<html>oops</html>"] : [200, { tasks: [], next: null }]) } });
  t.after(p.teardown);
  await flush();
  assert.equal(p.$('[data-role="empty"]').hidden, false);
  p.api.emit(TASK_EVENT, task());
  assert.equal(p.$('[data-role="empty"]').hidden, true);
  fail = true;
  p.$('[data-role="refresh"]').click();
  await flush();
  assert.match(p.$('[data-role="panel-message"]').textContent, /Could not load tasks: HTTP 500/);
  assert.equal(p.$$("[data-task-id]").length, 1);
  fail = false;
  p.$('[data-role="refresh"]').click();
  await flush();
  assert.equal(p.$('[data-role="panel-message"]').hidden, true);
});

test("reconnected refreshes at once; bursts of status events refresh once (throttled)", async (t) => {
  const p = setup();
  t.after(p.teardown);
  await flush();
  const lists = () => p.api.routes("GET", "/comfyui_remote/tasks").length;
  const n0 = lists();
  p.api.emit("reconnected");
  await flush();
  assert.equal(lists(), n0 + 1);
  for (let i = 0; i < 20; i += 1) p.api.emit("status", { exec_info: { queue_remaining: i } });
  await new Promise((r) => setTimeout(r, 30));
  await flush();
  assert.equal(lists(), n0 + 2);
});

test("render again tears the previous instance down: no duplicate listeners or timers", async () => {
  const doc = createDocument();
  const api = new FakeApi(async (m, route) => (route.startsWith("/comfyui_remote/profiles") ? [200, []] : [200, { tasks: [task()], next: null }]));
  const memory = {};
  const realSet = globalThis.setInterval;
  const realClear = globalThis.clearInterval;
  const live = new Set();
  globalThis.setInterval = (fn, ms) => { const id = realSet(fn, ms); live.add(id); return id; };
  globalThis.clearInterval = (id) => { live.delete(id); realClear(id); };
  let teardown = null;
  const roots = [];
  try {
    for (let i = 0; i < 5; i += 1) {
      if (teardown) teardown();
      const el = doc.createElement("div");
      doc.body.replaceChildren(el);
      roots.push(el);
      teardown = mountPanel(el, { api, doc, memory, refreshDelayMs: 5, tickMs: 50 });
      await flush();
    }
    for (const type of [TASK_EVENT, "status", "reconnected"]) assert.equal(api.listenerCount(type), 1, type);
    assert.equal(live.size, 1, "one ticker");
    // the shared memory keeps the store across renders
    api.emit(TASK_EVENT, task({ progress: 0.6, updated_at: "2025-01-01T00:00:07Z" }));
    assert.equal(roots[4].querySelector('[data-task-id="t1"]').getAttribute("data-progress"), "0.6");
    assert.equal(roots[0].querySelector('[data-task-id="t1"]').getAttribute("data-progress"), "0.25", "old instances are inert");
    teardown();
    teardown();
    for (const type of [TASK_EVENT, "status", "reconnected"]) assert.equal(api.listenerCount(type), 0, type);
    assert.equal(live.size, 0);
    assert.equal(memory.state.tasks.t1.progress, 0.6);
  } finally {
    globalThis.setInterval = realSet;
    globalThis.clearInterval = realClear;
    if (teardown) teardown();
  }
});

test("elapsed time ticks for active tasks", async (t) => {
  const now = Date.now();
  const p = setup({ tasks: [task({ created_at: new Date(now - 65_000).toISOString(), updated_at: new Date(now).toISOString() })] });
  t.after(p.teardown);
  await flush();
  assert.match(p.row("t1").querySelector('[data-role="elapsed"]').textContent, /1m 0[5-6]s/);
  assert.match(p.row("t1").querySelector('[data-role="eta"]').textContent, /ETA ~(29|30)s/);
});

test("profiles: rows with data-configured, endpoint, never a key; test connection shows the message", async (t) => {
  const p = setup({ server: { "POST /comfyui_remote/profiles/runninghub/test": () => [200, { ok: false, message: "401: invalid api key" }] } });
  t.after(p.teardown);
  await flush();
  const rows = p.$$("[data-profile]");
  assert.deepEqual(rows.map((r) => [r.getAttribute("data-profile"), r.getAttribute("data-configured")]),
    [["sandbox", "true"], ["runninghub", "false"], ["speedpix", "false"]]);
  const rh = p.$('[data-profile="runninghub"]');
  assert.match(rh.textContent, /https:\/\/www\.runninghub\.cn/);
  assert.match(rh.textContent, /not configured/);
  assert.equal(p.$('[data-profile="sandbox"] [data-role="key-form"]'), null, "sandbox needs no key");
  rh.querySelector('[data-role="test"]').click();
  await flush();
  const result = rh.querySelector('[data-role="test-result"]');
  assert.equal(result.textContent, "401: invalid api key");
  assert.match(result.getAttribute("class"), /crp-fail/);
});

test("set key: write-only form posts {field, value}, clears the input, never echoes the secret", async (t) => {
  let configured = false;
  const posted = [];
  const p = setup({
    server: {
      "POST /comfyui_remote/profiles/speedpix/key": (route, body) => { posted.push(body); configured = true; return [200, { ok: true }]; },
      "GET /comfyui_remote/profiles": () => [200, PROFILES.map((x) => (x.name === "speedpix" ? { ...x, configured } : x))],
    },
  });
  t.after(p.teardown);
  await flush();
  const row = p.$('[data-profile="speedpix"]');
  const input = row.querySelector('input[data-role="key-input"]');
  assert.equal(input.getAttribute("type"), "password");
  assert.equal(input.getAttribute("autocomplete"), "new-password");
  const select = row.querySelector('select[data-role="key-field"]');
  assert.deepEqual(select.querySelectorAll("option").map((o) => o.getAttribute("value")), ["app_key", "app_secret"]);
  select.value = "app_secret";
  input.value = "CANARY-5ecret";
  row.querySelector('[data-role="key-form"]').dispatchEvent(new FakeEvent("submit"));
  assert.equal(input.value, "", "cleared at once");
  await flush();
  assert.deepEqual(posted, [{ field: "app_secret", value: "CANARY-5ecret" }]);
  const after = p.$('[data-profile="speedpix"]');
  assert.equal(after.getAttribute("data-configured"), "true", "profiles reloaded after saving");
  assert.match(after.querySelector('[data-role="key-result"]').textContent, /App secret saved/);
  assert.ok(!p.root.textContent.includes("CANARY"), "the secret is not shown anywhere");
  for (const el of p.root.querySelectorAll("input")) assert.notEqual(el.value, "CANARY-5ecret");
});

test("set key defaults to the provider's main field and refuses an empty value", async (t) => {
  const posted = [];
  const p = setup({ server: { "POST /comfyui_remote/profiles/runninghub/key": (r, body) => { posted.push(body); return [204, null]; } } });
  t.after(p.teardown);
  await flush();
  const row = p.$('[data-profile="runninghub"]');
  const form = row.querySelector('[data-role="key-form"]');
  form.dispatchEvent(new FakeEvent("submit"));
  await flush();
  assert.equal(posted.length, 0);
  assert.match(row.querySelector('[data-role="key-result"]').textContent, /Enter a value/);
  row.querySelector('[data-role="key-input"]').value = "k";
  form.dispatchEvent(new FakeEvent("submit"));
  await flush();
  assert.deepEqual(posted, [{ field: "api_key", value: "k" }]);
});

test("a failing profiles route shows a message instead of rows", async (t) => {
  const p = setup({ server: { "GET /comfyui_remote/profiles": () => [200, "not json"] } });
  t.after(p.teardown);
  await flush();
  assert.equal(p.$$("[data-profile]").length, 0);
  assert.match(p.$('[data-role="profiles-message"]').textContent, /Could not load profiles/);
});

test("while the panel is off the page, status/reconnected do not poll but events still merge", async (t) => {
  const p = setup();
  t.after(p.teardown);
  await flush();
  const lists = () => p.api.routes("GET", "/comfyui_remote/tasks").length;
  const n0 = lists();
  p.root.remove();
  p.api.emit("reconnected");
  p.api.emit("status", {});
  await new Promise((r) => setTimeout(r, 30));
  await flush();
  assert.equal(lists(), n0);
  p.api.emit(TASK_EVENT, task({ progress: 0.75, updated_at: "2025-01-01T00:00:08Z" }));
  assert.equal(p.memory.state.tasks.t1.progress, 0.75);
});

test("a key saved while the profile list is loading still triggers a fresh load", async (t) => {
  const gates = [];
  let configured = false;
  const p = setup({
    server: {
      "GET /comfyui_remote/profiles": async () => {
        const snapshot = configured;
        if (gates.length === 0) await new Promise((r) => gates.push(r)); else gates.push(null);
        return [200, PROFILES.map((x) => (x.name === "runninghub" ? { ...x, configured: snapshot } : x))];
      },
      "POST /comfyui_remote/profiles/runninghub/key": () => { configured = true; return [200, {}]; },
    },
  });
  t.after(p.teardown);
  await flush();
  assert.equal(gates.length, 1, "first profile load is pending");
  // opening the section while that load is pending asks for another one: it is coalesced and
  // runs right after the first, so its answer (not the stale one) is what the rows show
  p.$('[data-role="profiles-toggle"]').parentNode.setAttribute("open", "");
  p.$('[data-role="profiles-toggle"]').parentNode.dispatchEvent(new FakeEvent("toggle"));
  gates[0]();
  await flush();
  assert.equal(gates.length, 2, "the coalesced request ran once after the first finished");
  const row = p.$('[data-profile="runninghub"]');
  assert.equal(row.getAttribute("data-configured"), "false");
  row.querySelector('[data-role="key-input"]').value = "k";
  row.querySelector('[data-role="key-form"]').dispatchEvent(new FakeEvent("submit"));
  await flush();
  assert.equal(p.$('[data-profile="runninghub"]').getAttribute("data-configured"), "true");
  assert.equal(p.memory.profilesOpen, true, "open state is remembered for the next render");
});

test("one polite live region announces state changes and errors; error rows carry no alert role", async (t) => {
  const p = setup();
  t.after(p.teardown);
  await flush();
  const regions = p.$$("[aria-live]");
  assert.equal(regions.length, 1, "exactly one live region");
  assert.equal(p.$$('[role="alert"]').length + p.$$('[role="status"]').length, 1);
  const live = p.$('[data-role="live"]');
  assert.equal(live.getAttribute("aria-live"), "polite");
  assert.equal(live.textContent, "", "the initial list load is not read out");
  p.api.emit(TASK_EVENT, task({ progress: 0.5, updated_at: "2025-01-01T00:00:09Z" }));
  assert.equal(live.textContent, "", "progress ticks are not read out");
  p.api.emit(TASK_EVENT, task({ state: "failed", error: "KSampler #3: out of memory", updated_at: "2025-01-01T00:01:00Z" }));
  assert.equal(live.textContent, "Remote task runninghub 1979 failed: KSampler #3: out of memory.");
  assert.equal(p.$('[data-role="error"]').getAttribute("role"), null);
  p.row("t1").querySelector('[data-action="recover"]').click();
  await flush();
  assert.equal(live.textContent, "Recover failed: no route POST /comfyui_remote/tasks/t1/recover");
  p.$('[data-role="profiles-toggle"]').parentNode.setAttribute("open", "");
  p.$('[data-role="profiles-toggle"]').parentNode.dispatchEvent(new FakeEvent("toggle"));
  await flush();
  p.$('[data-profile="runninghub"] [data-role="key-form"]').dispatchEvent(new FakeEvent("submit"));
  assert.equal(live.textContent, "Profile runninghub: Enter a value first.");
  assert.equal(p.$$("[aria-live]").length, 1, "profile results use the same region");
});

test("keyboard: a focused Cancel keeps the focus while it runs and hands it on when it is gone", async (t) => {
  let answer;
  const p = setup({
    server: { "POST /comfyui_remote/tasks/t1/cancel": () => new Promise((r) => { answer = r; }) },
  });
  t.after(p.teardown);
  await flush();
  const cancel = p.row("t1").querySelector('[data-action="cancel"]');
  cancel.focus();
  cancel.click(); // Enter or Space on a focused button is a click
  await flush();
  const busy = p.row("t1").querySelector('[data-action="cancel"]');
  assert.equal(busy.textContent, "Cancelling…");
  assert.equal(busy.getAttribute("aria-disabled"), "true");
  assert.equal(busy.disabled, false, "a busy button stays focusable");
  assert.equal(p.doc.activeElement, busy, "the focus moved to the rebuilt button");
  busy.click();
  answer([200, task({ state: "cancelled", updated_at: "2025-01-01T00:00:30Z" })]);
  await flush();
  assert.equal(p.api.routes("POST", "/comfyui_remote/tasks/t1/cancel").length, 1);
  assert.equal(p.row("t1").querySelector('[data-action="cancel"]'), null);
  assert.equal(p.doc.activeElement.getAttribute("data-action"), "copy-id", "focus went to the next action, not to the page");
  assert.equal(p.$('[data-role="live"]').textContent, "Remote task runninghub 1979 was cancelled.");
});
