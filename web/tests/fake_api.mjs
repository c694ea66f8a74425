// A stand-in for ComfyUI's `api` object (scripts/api.js) in node tests: an EventTarget with
// fetchApi served by a route handler, apiURL, and a count of live listeners per event type.

export class FakeApi extends EventTarget {
  /** handler(method, route, jsonBody) → [status, body] (body: object | string | null), may be async */
  constructor(handler) {
    super();
    this.handler = handler;
    this.calls = [];
    this.live = new Map();
  }
  apiURL(route) {
    return "/api" + route;
  }
  async fetchApi(route, init = {}) {
    const method = init.method || "GET";
    const body = init.body ? JSON.parse(init.body) : undefined;
    this.calls.push({ method, route, body, init });
    const [status, payload] = await this.handler(method, route, body);
    const text = payload === null ? null : typeof payload === "string" ? payload : JSON.stringify(payload);
    return new Response(text, { status });
  }
  addEventListener(type, fn, opts) {
    super.addEventListener(type, fn, opts);
    if (!this.live.has(type)) this.live.set(type, new Set());
    this.live.get(type).add(fn);
  }
  removeEventListener(type, fn, opts) {
    super.removeEventListener(type, fn, opts);
    this.live.get(type)?.delete(fn);
  }
  listenerCount(type) {
    return this.live.get(type)?.size || 0;
  }
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
  routes(method, prefix) {
    return this.calls.filter((c) => c.method === method && c.route.startsWith(prefix));
  }
}

/** Let pending promises (fetch → Response.text → JSON) settle. */
export async function flush(rounds = 10) {
  for (let i = 0; i < rounds; i += 1) await new Promise((r) => setImmediate(r));
}
