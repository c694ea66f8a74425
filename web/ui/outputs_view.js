// A task's outputs in its row, one element per output with `data-output-kind` (design §4 hooks):
//   image → a thumbnail that opens the full image (img[data-role=thumbnail], as before)
//   video → its poster (the route's first frame) that becomes <video controls> on click
//   audio → <audio controls preload="none">
//   text  → a <pre> with the start of the text and "Show all" (text only: never markup)
//   file  → a download link with name and size
// Players load nothing until asked (preload="none"); text files are read with a Range request.

import { el, setAttr } from "./dom.js";
import { truncate } from "../lib/format.js";
import { formatBytes, hasWholeText, outputKind, outputName, previewText, showsAsImage } from "../lib/outputs.js";

export const MAX_THUMBS = 12; // images shown per task
export const MAX_MEDIA = 12; // other outputs shown per task
export const POSTER_PX = 320;
const TEXT_PREVIEW_BYTES = 4096; // read of a text file before "Show all"
export const TEXT_ALL_BYTES = 1024 * 1024; // most of a text file "Show all" shows

/**
 * ctx: {doc, outputUrl(taskId, n, thumb) → string, loadText(taskId, n, maxBytes) → Promise<string>}
 * Returns the nodes for the task's outputs (images first, then the others in order).
 */
export function renderOutputs(ctx, task) {
  const outs = Array.isArray(task.outputs) ? task.outputs.filter((o) => o && typeof o === "object") : [];
  const images = outs.filter(showsAsImage);
  const others = outs.filter((o) => !showsAsImage(o));
  const nodes = images.slice(0, MAX_THUMBS).map((o) => imageThumb(ctx, task, o));
  if (images.length > MAX_THUMBS) nodes.push(more(ctx.doc, images.length - MAX_THUMBS));
  const build = { video: videoItem, audio: audioItem, text: textItem, file: fileItem };
  for (const o of others.slice(0, MAX_MEDIA)) nodes.push(build[outputKind(o)](ctx, task, o));
  if (others.length > MAX_MEDIA) nodes.push(more(ctx.doc, others.length - MAX_MEDIA));
  return nodes;
}

function more(doc, count) {
  return el(doc, "span", { class: "crp-more", text: `+${count} more` });
}

function imageThumb(ctx, t, o) {
  const name = outputName(o);
  const size = o.width && o.height ? ` (${o.width}×${o.height})` : "";
  const img = el(ctx.doc, "img", {
    attrs: {
      "data-role": "thumbnail", "data-output": String(o.n), src: ctx.outputUrl(t.id, o.n, 256),
      alt: truncate(name, 120), loading: "lazy", decoding: "async",
    },
  });
  return el(ctx.doc, "a", {
    class: "crp-thumb",
    title: truncate(name, 200) + size + " — open full size",
    attrs: {
      "data-output-kind": outputKind(o), href: ctx.outputUrl(t.id, o.n, 0), target: "_blank",
      rel: "noopener noreferrer",
    },
  }, [img]);
}

/** "name" link (opens the file) and its size, under a player or a text. */
function caption(ctx, t, o, { download = false } = {}) {
  const name = outputName(o);
  const link = el(ctx.doc, "a", {
    class: "crp-file",
    text: truncate(name, 60),
    title: `${truncate(name, 200)} — ${download ? "download" : "open in a new tab"}`,
    attrs: {
      "data-role": "output-link", href: ctx.outputUrl(t.id, o.n, 0), download: download ? truncate(name, 200) : null,
      target: download ? null : "_blank", rel: "noopener noreferrer",
    },
  });
  const size = formatBytes(o.size);
  return el(ctx.doc, "div", { class: "crp-output-caption" }, [
    link, size ? el(ctx.doc, "span", { class: "crp-size", text: size, attrs: { "data-role": "size" } }) : null,
  ]);
}

function item(ctx, o, kind, children) {
  return el(ctx.doc, "div", {
    class: `crp-output crp-output-${kind}`,
    attrs: { "data-output-kind": kind, "data-output": String(o.n) },
  }, children);
}

function videoItem(ctx, t, o) {
  const { doc } = ctx;
  const name = truncate(outputName(o), 120);
  const posterUrl = ctx.outputUrl(t.id, o.n, POSTER_PX);
  const img = el(doc, "img", {
    attrs: { "data-role": "poster", src: posterUrl, alt: name, loading: "lazy", decoding: "async" },
  });
  // a video the pack cannot decode has no poster: the button stays, with its icon
  img.addEventListener("error", () => setAttr(img, "hidden", true));
  const play = el(doc, "button", {
    class: "crp-poster",
    title: `Play ${name}`,
    attrs: { type: "button", "data-role": "play", "aria-label": `Play ${name}` },
  }, [img, el(doc, "span", { class: "crp-play-icon", text: "▶", attrs: { "aria-hidden": "true" } })]);
  play.addEventListener("click", () => {
    const video = el(doc, "video", {
      attrs: {
        "data-role": "player", controls: true, preload: "none", playsinline: true, src: ctx.outputUrl(t.id, o.n, 0),
        poster: img.hidden ? null : posterUrl, "aria-label": name,
      },
    });
    if (play.parentNode) {
      play.parentNode.insertBefore(video, play);
      play.parentNode.removeChild(play);
    }
    video.focus();
    if (typeof video.play === "function") {
      const started = video.play();
      if (started && typeof started.catch === "function") started.catch(() => {}); // the controls stay
    }
  });
  return item(ctx, o, "video", [play, caption(ctx, t, o)]);
}

function audioItem(ctx, t, o) {
  const player = el(ctx.doc, "audio", {
    attrs: {
      "data-role": "player", controls: true, preload: "none", src: ctx.outputUrl(t.id, o.n, 0),
      "aria-label": truncate(outputName(o), 120),
    },
  });
  return item(ctx, o, "audio", [player, caption(ctx, t, o)]);
}

function fileItem(ctx, t, o) {
  return item(ctx, o, "file", [caption(ctx, t, o, { download: true })]);
}

function textItem(ctx, t, o) {
  const { doc } = ctx;
  const pre = el(doc, "pre", { class: "crp-text", attrs: { "data-role": "text", tabindex: "0" } });
  const toggle = el(doc, "button", {
    class: "crp-btn crp-show-all", text: "Show all",
    attrs: { type: "button", "data-role": "show-all", "aria-expanded": "false", hidden: true },
  });
  let start = ""; // what the preview was cut from
  let whole = null; // the whole text once known
  const preview = (text, more) => {
    start = text;
    const p = previewText(text);
    pre.textContent = p.shown;
    setAttr(toggle, "hidden", !(p.cut || more));
  };
  const fail = (e) => {
    pre.textContent = `Could not read the text: ${truncate(e && e.message ? e.message : String(e), 200)}`;
    setAttr(toggle, "hidden", true);
  };

  if (hasWholeText(o)) {
    whole = o.text;
    preview(o.text, false);
  } else if (typeof o.text === "string") {
    preview(o.text, true); // the Task JSON holds the start; the route serves the whole
  } else {
    pre.textContent = "Loading…";
    ctx.loadText(t.id, o.n, TEXT_PREVIEW_BYTES)
      .then((text) => preview(text, typeof o.size !== "number" || o.size > TEXT_PREVIEW_BYTES))
      .catch(fail);
  }
  toggle.addEventListener("click", () => {
    if (toggle.getAttribute("aria-expanded") === "true") {
      const p = previewText(start);
      pre.textContent = p.shown;
      toggle.textContent = "Show all";
      setAttr(toggle, "aria-expanded", "false");
      return;
    }
    const expand = (text) => {
      whole = text;
      const cut = typeof o.size === "number" && o.size > TEXT_ALL_BYTES;
      pre.textContent = cut ? `${text}\n… (the first ${formatBytes(TEXT_ALL_BYTES)}; open the file for the rest)` : text;
      toggle.textContent = "Show less";
      setAttr(toggle, "aria-expanded", "true");
    };
    if (whole !== null) expand(whole);
    else ctx.loadText(t.id, o.n, TEXT_ALL_BYTES).then(expand).catch(fail);
  });
  return item(ctx, o, "text", [pre, el(doc, "div", { class: "crp-output-caption" }, [toggle]), caption(ctx, t, o)]);
}
