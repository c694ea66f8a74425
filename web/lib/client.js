// REST client for the /comfyui_remote/… routes. Takes ComfyUI's api.fetchApi (or any function
// with the same shape: (route, init) → Promise<Response>), so it is testable with a stub.
// Every answer is checked; failures become an Error whose message is safe plain text.

import { truncate } from "./format.js";

const BASE = "/comfyui_remote";
const enc = encodeURIComponent;

export class RemoteApiError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.name = "RemoteApiError";
    this.status = status;
  }
}

async function readJson(response) {
  let text;
  try {
    text = await response.text();
  } catch {
    return { ok: false, value: undefined };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, value: undefined };
  }
}

/** Route of an output file (thumbnail when thumb is a positive size). */
export function outputRoute(taskId, n, thumb = 0) {
  const route = `${BASE}/tasks/${enc(String(taskId))}/outputs/${enc(String(n))}`;
  return thumb > 0 ? `${route}?thumb=${Math.floor(thumb)}` : route;
}

/** Only http(s) URLs are opened; anything else (javascript:, data:, junk) → null. */
export function safeHttpUrl(value) {
  if (typeof value !== "string" || value === "") return null;
  try {
    const u = new URL(value);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}

export function createClient(fetchApi) {
  async function call(route, { method = "GET", body, allowEmpty = false } = {}) {
    const init = { method, headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetchApi(route, init);
    } catch (e) {
      throw new RemoteApiError(`Network error: ${truncate(e && e.message ? e.message : String(e), 200)}`);
    }
    if (!response || typeof response.status !== "number") {
      throw new RemoteApiError("No response from the server");
    }
    const json = await readJson(response);
    if (!response.ok) {
      const msg =
        json.ok && json.value && typeof json.value.error === "string" && json.value.error
          ? json.value.error
          : `HTTP ${response.status}`;
      throw new RemoteApiError(truncate(msg, 500), response.status);
    }
    if (!json.ok) {
      if (allowEmpty) return null;
      throw new RemoteApiError("The server sent a malformed answer", response.status);
    }
    return json.value;
  }

  const expectObject = (v, what) => {
    if (!v || typeof v !== "object" || Array.isArray(v)) {
      throw new RemoteApiError(`The server sent a malformed ${what}`);
    }
    return v;
  };

  return {
    /** → {tasks: [raw Task…], next: string|null} */
    async listTasks({ state = null, limit = 50, before = null } = {}) {
      const q = new URLSearchParams();
      if (state) q.set("state", state);
      if (limit) q.set("limit", String(limit));
      if (before) q.set("before", String(before));
      const qs = q.toString();
      const v = expectObject(await call(`${BASE}/tasks${qs ? "?" + qs : ""}`), "task list");
      if (!Array.isArray(v.tasks)) throw new RemoteApiError("The server sent a malformed task list");
      const next = typeof v.next === "string" && v.next !== "" ? v.next : typeof v.next === "number" ? String(v.next) : null;
      return { tasks: v.tasks, next };
    },
    async getTask(id) {
      return expectObject(await call(`${BASE}/tasks/${enc(id)}`), "task");
    },
    async cancelTask(id) {
      return expectObject(await call(`${BASE}/tasks/${enc(id)}/cancel`, { method: "POST" }), "task");
    },
    async recoverTask(id) {
      return expectObject(await call(`${BASE}/tasks/${enc(id)}/recover`, { method: "POST" }), "task");
    },
    /** → [{name, provider, url, configured, capabilities}] (malformed rows dropped) */
    async listProfiles() {
      const v = await call(`${BASE}/profiles`);
      const list = Array.isArray(v) ? v : v && Array.isArray(v.profiles) ? v.profiles : null;
      if (!list) throw new RemoteApiError("The server sent a malformed profile list");
      return list.filter((p) => p && typeof p === "object" && typeof p.name === "string" && p.name !== "");
    },
    /** → {ok: boolean, message: string} */
    async testProfile(name) {
      const v = expectObject(await call(`${BASE}/profiles/${enc(name)}/test`, { method: "POST" }), "test result");
      return { ok: v.ok === true, message: typeof v.message === "string" ? v.message : "" };
    },
    /** The first `maxBytes` of an output as text (a Range request; "" for an empty file). */
    async outputText(id, n, maxBytes) {
      const last = Math.max(0, Math.floor(maxBytes) - 1);
      let response;
      try {
        response = await fetchApi(outputRoute(id, n), { method: "GET", headers: { Range: `bytes=0-${last}` } });
      } catch (e) {
        throw new RemoteApiError(`Network error: ${truncate(e && e.message ? e.message : String(e), 200)}`);
      }
      if (!response || typeof response.status !== "number") throw new RemoteApiError("No response from the server");
      if (response.status === 416) return ""; // no byte to send: an empty file
      if (response.status !== 200 && response.status !== 206) {
        const json = await readJson(response);
        const msg = json.ok && json.value && typeof json.value.error === "string" && json.value.error
          ? json.value.error : `HTTP ${response.status}`;
        throw new RemoteApiError(truncate(msg, 500), response.status);
      }
      const text = await response.text();
      return text.length > last + 1 ? text.slice(0, last + 1) : text; // a server that ignored the Range
    },
    /** Write-only: the value is sent once and never returned or kept. */
    async setKey(name, field, value) {
      await call(`${BASE}/profiles/${enc(name)}/key`, { method: "POST", body: { field, value }, allowEmpty: true });
    },
  };
}
