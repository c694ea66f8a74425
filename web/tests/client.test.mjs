import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient, outputRoute, safeHttpUrl, RemoteApiError } from "../lib/client.js";
import { keyFields, fieldLabel } from "../lib/key_fields.js";

/** A fetchApi stub: answers from a queue of [status, body] and records every call. */
function stub(...answers) {
  const calls = [];
  const fetchApi = async (route, init) => {
    calls.push({ route, init });
    const a = answers.shift();
    if (a instanceof Error) throw a;
    const [status, body] = a;
    const payload = body === null ? null : typeof body === "string" ? body : JSON.stringify(body);
    return new Response(payload, { status });
  };
  return { calls, client: createClient(fetchApi) };
}

test("listTasks builds the query and returns tasks + cursor", async () => {
  const { calls, client } = stub([200, { tasks: [{ id: "a" }], next: "cur" }]);
  const page = await client.listTasks({ state: "active", limit: 20, before: "x y&z" });
  assert.equal(calls[0].route, "/comfyui_remote/tasks?state=active&limit=20&before=x+y%26z");
  assert.equal(calls[0].init.method, "GET");
  assert.deepEqual(page, { tasks: [{ id: "a" }], next: "cur" });
});

test("listTasks without filter omits state; numeric and empty cursors are normalised", async () => {
  const { calls, client } = stub([200, { tasks: [], next: 17 }], [200, { tasks: [], next: "" }], [200, { tasks: [] }]);
  assert.equal((await client.listTasks()).next, "17");
  assert.equal(calls[0].route, "/comfyui_remote/tasks?limit=50");
  assert.equal((await client.listTasks()).next, null);
  assert.equal((await client.listTasks()).next, null);
});

test("malformed list answers are errors, not crashes", async () => {
  for (const body of ["<html>", "null", "[]", '{"tasks": {}}', '{"tasks": "x"}', ""]) {
    const { client } = stub([200, body]);
    await assert.rejects(client.listTasks(), RemoteApiError, body);
  }
});

test("HTTP errors carry the server's {error} message, else the status", async () => {
  const { client } = stub([404, { error: "no such task" }], [500, "Internal Server Error"], [403, { error: 5 }]);
  await assert.rejects(client.cancelTask("t1"), (e) => e instanceof RemoteApiError && e.message === "no such task" && e.status === 404);
  await assert.rejects(client.recoverTask("t1"), (e) => e.message === "HTTP 500" && e.status === 500);
  await assert.rejects(client.getTask("t1"), (e) => e.message === "HTTP 403");
});

test("a huge error message is truncated", async () => {
  const { client } = stub([400, { error: "E".repeat(10000) }]);
  await assert.rejects(client.cancelTask("t"), (e) => e.message.length <= 500);
});

test("network failures become RemoteApiError", async () => {
  const { client } = stub(new TypeError("Failed to fetch"));
  await assert.rejects(client.listTasks(), (e) => e instanceof RemoteApiError && /Failed to fetch/.test(e.message));
  const broken = createClient(async () => undefined);
  await assert.rejects(broken.listTasks(), RemoteApiError);
});

test("task actions POST to encoded routes and return the Task", async () => {
  const { calls, client } = stub([200, { id: "a/b", state: "cancelled" }], [200, { id: "a/b" }], [200, [1]]);
  assert.equal((await client.cancelTask("a/b")).state, "cancelled");
  assert.equal(calls[0].route, "/comfyui_remote/tasks/a%2Fb/cancel");
  assert.equal(calls[0].init.method, "POST");
  await client.recoverTask("a/b");
  assert.equal(calls[1].route, "/comfyui_remote/tasks/a%2Fb/recover");
  await assert.rejects(client.getTask("x"), RemoteApiError, "an array is not a Task");
});

test("profiles: list, drop malformed rows, test connection", async () => {
  const { calls, client } = stub(
    [200, [{ name: "sandbox", provider: "sandbox", configured: true }, null, { name: "" }, { provider: "x" }, "y"]],
    [200, { ok: true, message: "connected" }],
    [200, { ok: "yes" }],
    [200, { profiles: [{ name: "p" }] }],
    [200, { nope: 1 }],
  );
  const list = await client.listProfiles();
  assert.deepEqual(list.map((p) => p.name), ["sandbox"]);
  assert.deepEqual(await client.testProfile("run ning"), { ok: true, message: "connected" });
  assert.equal(calls[1].route, "/comfyui_remote/profiles/run%20ning/test");
  assert.equal(calls[1].init.method, "POST");
  assert.deepEqual(await client.testProfile("x"), { ok: false, message: "" }, "only ok === true is success");
  assert.equal((await client.listProfiles())[0].name, "p");
  await assert.rejects(client.listProfiles(), RemoteApiError);
});

test("setKey posts {field, value} as JSON and accepts an empty 204-style answer", async () => {
  const { calls, client } = stub([200, ""], [204, null]);
  await client.setKey("speedpix", "app_secret", "s3cr3t");
  assert.equal(calls[0].route, "/comfyui_remote/profiles/speedpix/key");
  assert.equal(calls[0].init.method, "POST");
  assert.equal(calls[0].init.headers["Content-Type"], "application/json");
  assert.deepEqual(JSON.parse(calls[0].init.body), { field: "app_secret", value: "s3cr3t" });
  await client.setKey("speedpix", "app_key", "k");
});

test("setKey failure does not echo the secret", async () => {
  const { client } = stub([400, { error: "unknown field" }]);
  await assert.rejects(client.setKey("p", "api_key", "CANARY-SECRET"), (e) => !e.message.includes("CANARY"));
});

test("outputRoute and safeHttpUrl", () => {
  assert.equal(outputRoute("t 1", 2, 256), "/comfyui_remote/tasks/t%201/outputs/2?thumb=256");
  assert.equal(outputRoute("t", 0), "/comfyui_remote/tasks/t/outputs/0");
  assert.equal(safeHttpUrl("https://www.runninghub.cn/task/1"), "https://www.runninghub.cn/task/1");
  assert.equal(safeHttpUrl("http://x.test/a b"), "http://x.test/a%20b");
  for (const bad of ["javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,x", "//evil", "/relative", "", null, 5, "file:///etc/passwd"]) {
    assert.equal(safeHttpUrl(bad), null, String(bad));
  }
});

test("key fields per provider", () => {
  assert.deepEqual(keyFields("runninghub"), ["api_key"]);
  assert.deepEqual(keyFields("tensorart"), ["api_key"]);
  assert.deepEqual(keyFields("speedpix"), ["app_key", "app_secret"]);
  assert.deepEqual(keyFields("nextgpu"), ["user", "token"]);
  assert.deepEqual(keyFields("comfyui"), ["token"]);
  assert.deepEqual(keyFields("sandbox"), []);
  assert.deepEqual(keyFields("somethingnew"), ["api_key"]);
  assert.deepEqual(keyFields("__proto__"), ["api_key"]);
  assert.deepEqual(keyFields(null), ["api_key"]);
  keyFields("speedpix").push("x");
  assert.deepEqual(keyFields("speedpix"), ["app_key", "app_secret"], "callers cannot mutate the table");
  assert.equal(fieldLabel("app_secret"), "App secret");
});
