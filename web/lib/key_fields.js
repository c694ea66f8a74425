// Which credential fields the panel's write-only "Set key" form offers per provider
// (design.md §3 field names). The first field is the default. Pure data, no imports.

const FIELDS = {
  runninghub: ["api_key"],
  tensorart: ["api_key"],
  speedpix: ["app_key", "app_secret"],
  nextgpu: ["user", "token"],
  comfyui: ["token"],
  sandbox: [],
};

/** Field names for a provider; unknown providers get ["api_key"]. Returns a fresh array. */
export function keyFields(provider) {
  const list = typeof provider === "string" && Object.hasOwn(FIELDS, provider) ? FIELDS[provider] : ["api_key"];
  return [...list];
}

/** Human label for a field name ("app_secret" → "App secret"). */
export function fieldLabel(field) {
  const s = String(field).replace(/_/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}
