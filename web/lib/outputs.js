// What the panel shows for a task's outputs (design §2 kinds): pure functions, no DOM.
// Every input may be null, malformed or hostile; nothing here throws.

export const KINDS = ["image", "video", "audio", "text", "file"];
const BY_EXTENSION = [
  ["image", /\.(png|jpe?g|webp|bmp|avif|tiff?)$/i],
  ["video", /\.(mp4|webm|mov|mkv|m4v|gif)$/i],
  ["audio", /\.(flac|wav|mp3|ogg|opus|m4a|aac)$/i],
  ["text", /\.(txt|md)$/i],
];

/** The kind an output is shown as: its own `kind` when it is one we know, else by file name. */
export function outputKind(o) {
  if (!o || typeof o !== "object") return "file";
  if (KINDS.includes(o.kind)) return o.kind;
  const name = typeof o.filename === "string" ? o.filename : "";
  for (const [kind, re] of BY_EXTENSION) if (re.test(name)) return kind;
  return "file";
}

/** A GIF is a video by kind but a picture to the browser: it is shown like an image. */
export function showsAsImage(o) {
  const kind = outputKind(o);
  return kind === "image" || (kind === "video" && typeof o.filename === "string" && /\.gif$/i.test(o.filename));
}

/** "1.2 MB" for a byte count; "" when unknown. */
export function formatBytes(size) {
  if (typeof size !== "number" || !Number.isFinite(size) || size < 0) return "";
  if (size < 1024) return `${size} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = size;
  let unit = "B";
  for (const u of units) {
    if (v < 1024) break;
    v /= 1024;
    unit = u;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${unit}`;
}

/** The first `maxChars` characters and `maxLines` lines of a text → {shown, cut}. */
export function previewText(text, maxChars = 600, maxLines = 12) {
  const s = typeof text === "string" ? text : text === null || text === undefined ? "" : String(text);
  let end = Math.min(s.length, maxChars);
  let lines = 0;
  for (let i = 0; i < end; i += 1) {
    if (s.charCodeAt(i) === 10 && (lines += 1) >= maxLines) {
      end = i;
      break;
    }
  }
  return end < s.length ? { shown: s.slice(0, end), cut: true } : { shown: s, cut: false };
}

/** Whether the Task JSON holds the whole text of a text output (else the route serves it). */
export function hasWholeText(o) {
  return Boolean(o) && typeof o.text === "string" &&
    !(typeof o.text_length === "number" && o.text_length > o.text.length);
}

/** The name an output is shown under. */
export function outputName(o) {
  const name = o && typeof o.filename === "string" && o.filename ? o.filename : "";
  return name || `${outputKind(o)} ${o && o.n !== undefined ? o.n : ""}`.trim();
}
