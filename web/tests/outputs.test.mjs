import { test } from "node:test";
import assert from "node:assert/strict";
import { createDocument } from "./fake_dom.mjs";
import { renderOutputs, MAX_MEDIA, POSTER_PX, TEXT_ALL_BYTES } from "../ui/outputs_view.js";
import { createTaskRow } from "../ui/task_row.js";
import { createClient } from "../lib/client.js";
import { outputKind, formatBytes, previewText, hasWholeText, showsAsImage } from "../lib/outputs.js";
import { flush } from "./fake_api.mjs";

const CAPTION = "<b>not bold</b> & a caption";
const HOSTILE = '"><img src=x onerror=alert(1)><script>alert(2)</script>&amp;';

/** renderOutputs in a fake document; `texts` answers loadText by output index. */
function render(outputs, { texts = {} } = {}) {
  const doc = createDocument();
  const loads = [];
  const ctx = {
    doc,
    outputUrl: (id, n, thumb) => `/api/comfyui_remote/tasks/${id}/outputs/${n}${thumb > 0 ? `?thumb=${thumb}` : ""}`,
    loadText: async (id, n, maxBytes) => {
      loads.push([id, n, maxBytes]);
      const t = texts[n];
      if (t instanceof Error) throw t;
      return t.slice(0, maxBytes);
    },
  };
  const root = doc.createElement("div");
  doc.body.appendChild(root);
  root.replaceChildren(...renderOutputs(ctx, { id: "t1", outputs }));
  return { doc, root, loads, ctx, $: (s) => root.querySelector(s), $$: (s) => root.querySelectorAll(s) };
}

const kinds = (root) => root.querySelectorAll("[data-output-kind]").map((e) => e.getAttribute("data-output-kind"));

test("kinds: the output's own kind, else its file name; GIFs show as pictures", () => {
  assert.equal(outputKind({ kind: "video", filename: "a.png" }), "video");
  assert.equal(outputKind({ kind: null, filename: "clip.WEBM" }), "video");
  assert.equal(outputKind({ kind: "hologram", filename: "x.flac" }), "audio");
  assert.equal(outputKind({ filename: "notes.txt" }), "text");
  assert.equal(outputKind({ filename: "mesh.glb" }), "file");
  assert.equal(outputKind(null), "file");
  assert.equal(showsAsImage({ kind: "video", filename: "anim.gif" }), true);
  assert.equal(showsAsImage({ kind: "video", filename: "clip.mp4" }), false);
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(1536), "1.5 KB");
  assert.equal(formatBytes(5 * 1024 * 1024), "5.0 MB");
  assert.equal(formatBytes(300 * 1024 * 1024), "300 MB");
  assert.equal(formatBytes(undefined), "");
  assert.equal(formatBytes(-1), "");
  assert.deepEqual(previewText("a\nb\nc", 100, 2), { shown: "a\nb", cut: true });
  assert.deepEqual(previewText("abcdef", 3), { shown: "abc", cut: true });
  assert.deepEqual(previewText("abc", 3), { shown: "abc", cut: false });
  assert.deepEqual(previewText(null), { shown: "", cut: false });
  assert.equal(hasWholeText({ text: "ab", text_length: 2 }), true);
  assert.equal(hasWholeText({ text: "ab", text_length: 9 }), false);
  assert.equal(hasWholeText({ text: null }), false);
});

test("every output gets an element with data-output-kind; images first, the rest in order", () => {
  const v = render([
    { n: 0, kind: "text", filename: "caption.txt", text: "hi", text_length: 2 },
    { n: 1, kind: "image", filename: "a.png", width: 8, height: 8 },
    { n: 2, kind: "video", filename: "clip.mp4", size: 2048 },
    { n: 3, kind: "audio", filename: "voice.flac", size: 100 },
    { n: 4, kind: "file", filename: "mesh.glb", size: 1536 },
    { n: 5, kind: "video", filename: "anim.gif" },
  ]);
  assert.deepEqual(kinds(v.root), ["image", "video", "text", "video", "audio", "file"]);
  assert.deepEqual(v.$$("[data-output]").filter((e) => e.hasAttribute("data-output-kind"))
    .map((e) => e.getAttribute("data-output")), ["0", "2", "3", "4"]);
  const thumbs = v.$$('img[data-role="thumbnail"]');
  assert.deepEqual(thumbs.map((i) => i.getAttribute("src")), [
    "/api/comfyui_remote/tasks/t1/outputs/1?thumb=256", "/api/comfyui_remote/tasks/t1/outputs/5?thumb=256"]);
});

test("a video shows its poster and becomes a player with controls on click", () => {
  const v = render([{ n: 2, kind: "video", filename: "clip.mp4", size: 3 * 1024 * 1024 }]);
  const box = v.$('[data-output-kind="video"]');
  const poster = box.querySelector('img[data-role="poster"]');
  assert.equal(poster.getAttribute("src"), `/api/comfyui_remote/tasks/t1/outputs/2?thumb=${POSTER_PX}`);
  assert.equal(box.querySelectorAll("video").length, 0, "nothing is loaded before the user asks");
  const play = box.querySelector('button[data-role="play"]');
  assert.equal(play.getAttribute("aria-label"), "Play clip.mp4");
  play.click();
  const video = box.querySelector("video");
  assert.ok(video, "a player after the click");
  assert.equal(video.getAttribute("data-role"), "player");
  assert.equal(video.getAttribute("src"), "/api/comfyui_remote/tasks/t1/outputs/2");
  assert.equal(video.getAttribute("preload"), "none");
  assert.equal(video.hasAttribute("controls"), true);
  assert.equal(video.getAttribute("poster"), poster.getAttribute("src"));
  assert.equal(box.querySelector('button[data-role="play"]'), null, "the poster gave way to the player");
  assert.equal(v.doc.activeElement, video, "the keyboard focus follows to the player");
  const link = box.querySelector('[data-role="output-link"]');
  assert.equal(link.textContent, "clip.mp4");
  assert.equal(box.querySelector('[data-role="size"]').textContent, "3.0 MB");
});

test("a video without a poster (undecodable) keeps its play button; the player has no poster", () => {
  const v = render([{ n: 0, kind: "video", filename: "odd.mkv" }]);
  const poster = v.$('img[data-role="poster"]');
  poster.dispatchEvent(new (class { constructor() { this.type = "error"; this.bubbles = false; } })());
  assert.equal(poster.hidden, true);
  v.$('button[data-role="play"]').click();
  assert.equal(v.$("video").hasAttribute("poster"), false);
});

test("audio is a player with controls that preloads nothing", () => {
  const v = render([{ n: 1, kind: "audio", filename: "voice.flac", size: 4096 }]);
  const audio = v.$('[data-output-kind="audio"] audio');
  assert.equal(audio.getAttribute("src"), "/api/comfyui_remote/tasks/t1/outputs/1");
  assert.equal(audio.getAttribute("preload"), "none");
  assert.equal(audio.hasAttribute("controls"), true);
  assert.equal(v.$('[data-output-kind="audio"] [data-role="size"]').textContent, "4.0 KB");
});

test("text is shown as text, never markup, and a long one opens with Show all", () => {
  const long = `${HOSTILE}\n` + Array.from({ length: 40 }, (_, i) => `line ${i} <b>x</b>`).join("\n");
  const v = render([
    { n: 0, kind: "text", filename: "short.txt", text: HOSTILE, text_length: HOSTILE.length },
    { n: 1, kind: "text", filename: "long.txt", text: long, text_length: long.length },
  ]);
  const [short, longBox] = v.$$('[data-output-kind="text"]');
  const pre = short.querySelector('pre[data-role="text"]');
  assert.equal(pre.textContent, HOSTILE);
  assert.equal(pre.children.length, 0, "the text made no element");
  assert.equal(v.$$("img").length, 0);
  assert.equal(v.$$("script").length, 0);
  assert.equal(short.querySelector('[data-role="show-all"]').hidden, true, "nothing more to show");
  const lpre = longBox.querySelector('pre[data-role="text"]');
  const toggle = longBox.querySelector('[data-role="show-all"]');
  assert.equal(toggle.hidden, false);
  assert.ok(lpre.textContent.length < long.length && long.startsWith(lpre.textContent));
  toggle.click();
  assert.equal(lpre.textContent, long, "the whole text, from the Task JSON (no request)");
  assert.equal(toggle.getAttribute("aria-expanded"), "true");
  assert.equal(v.loads.length, 0);
  toggle.click();
  assert.ok(lpre.textContent.length < long.length);
  assert.equal(toggle.textContent, "Show all");
});

test("a text cut in the Task JSON is read whole from the route on Show all", async () => {
  const whole = "x".repeat(5000) + "<end>";
  const v = render([{ n: 3, kind: "text", filename: "big.txt", text: whole.slice(0, 2000), text_length: whole.length }],
    { texts: { 3: whole } });
  const toggle = v.$('[data-role="show-all"]');
  assert.equal(toggle.hidden, false);
  toggle.click();
  await flush();
  assert.deepEqual(v.loads, [["t1", 3, TEXT_ALL_BYTES]]);
  assert.equal(v.$("pre").textContent, whole);
});

test("a text file is read with a bounded request; Show all only when there is more", async () => {
  const v = render([
    { n: 0, kind: "text", filename: "notes.txt", size: 11 },
    { n: 1, kind: "text", filename: "huge.txt", size: 2 * TEXT_ALL_BYTES },
    { n: 2, kind: "text", filename: "gone.txt", size: 5 },
  ], { texts: { 0: "<i>notes</i>", 1: "y".repeat(3 * TEXT_ALL_BYTES), 2: new Error("output 2 is not on disk") } });
  const [small, huge, gone] = v.$$('[data-output-kind="text"]');
  assert.equal(small.querySelector("pre").textContent, "Loading…");
  await flush();
  assert.deepEqual(v.loads, [["t1", 0, 4096], ["t1", 1, 4096], ["t1", 2, 4096]]);
  assert.equal(small.querySelector("pre").textContent, "<i>notes</i>");
  assert.equal(small.querySelector('[data-role="show-all"]').hidden, true);
  assert.match(gone.querySelector("pre").textContent, /Could not read the text: output 2 is not on disk/);
  const toggle = huge.querySelector('[data-role="show-all"]');
  assert.equal(toggle.hidden, false);
  toggle.click();
  await flush();
  assert.deepEqual(v.loads.at(-1), ["t1", 1, TEXT_ALL_BYTES]);
  const shown = huge.querySelector("pre").textContent;
  assert.ok(shown.startsWith("y".repeat(TEXT_ALL_BYTES)) && /open the file for the rest/.test(shown));
});

test("a file is a download link with its name and size; hostile names stay text", () => {
  const v = render([{ n: 4, kind: "file", filename: HOSTILE, size: 1536 }]);
  const box = v.$('[data-output-kind="file"]');
  const link = box.querySelector('a[data-role="output-link"]');
  assert.equal(link.getAttribute("href"), "/api/comfyui_remote/tasks/t1/outputs/4");
  assert.equal(link.getAttribute("download"), HOSTILE);
  assert.equal(link.textContent, HOSTILE);
  assert.equal(link.children.length, 0);
  assert.equal(box.querySelector('[data-role="size"]').textContent, "1.5 KB");
  assert.equal(v.$$("img").length + v.$$("script").length, 0);
});

test("many outputs are capped with a count of the rest", () => {
  const outs = Array.from({ length: MAX_MEDIA + 3 }, (_, n) => ({ n, kind: "audio", filename: `a${n}.wav` }));
  const v = render(outs);
  assert.equal(v.$$('[data-output-kind="audio"]').length, MAX_MEDIA);
  assert.equal(v.$(".crp-more").textContent, "+3 more");
});

test("a live update of the row leaves a started player in place", () => {
  const doc = createDocument();
  const ctx = {
    doc, outputUrl: (id, n, thumb) => `/o/${id}/${n}/${thumb}`, loadText: async () => "",
    onAction: () => {}, isBusy: () => false,
  };
  const task = {
    id: "t9", state: "succeeded", provider: "comfyui", profile: "remote", progress: 1,
    outputs: [{ n: 0, kind: "video", filename: "clip.mp4" }, { n: 1, kind: "text", filename: "c.txt", text: "hi", text_length: 2 }],
  };
  const row = createTaskRow(ctx, task);
  row.el.querySelector('[data-role="play"]').click();
  const video = row.el.querySelector("video");
  row.update({ ...task, message: "finished", outputs: task.outputs.map((o) => ({ ...o })) });
  assert.equal(row.el.querySelector("video"), video);
  assert.equal(row.el.querySelector("pre").textContent, "hi");
});

test("the client reads text with a Range request and reports errors plainly", async () => {
  const calls = [];
  const answers = [
    new Response("hello", { status: 206 }),
    new Response("whole text that ignored the range", { status: 200 }),
    new Response(null, { status: 416 }),
    new Response(JSON.stringify({ error: "output 1 of task t1 is not on disk (use Recover)" }), { status: 404 }),
  ];
  const client = createClient(async (route, init) => {
    calls.push([route, init]);
    return answers.shift();
  });
  assert.equal(await client.outputText("t 1", 1, 5), "hello");
  assert.deepEqual(calls[0], ["/comfyui_remote/tasks/t%201/outputs/1", { method: "GET", headers: { Range: "bytes=0-4" } }]);
  assert.equal(await client.outputText("t1", 1, 5), "whole");
  assert.equal(await client.outputText("t1", 1, 5), "");
  await assert.rejects(client.outputText("t1", 1, 5), /not on disk/);
});

test("through the panel: sizes and texts of the Task JSON reach the row; text files are read by Range", async (t) => {
  const { FakeApi } = await import("./fake_api.mjs");
  const { mountPanel } = await import("../ui/panel.js");
  const doc = createDocument();
  const root = doc.createElement("div");
  doc.body.appendChild(root);
  const task = {
    id: "m1", remote_id: "r1", profile: "remote", provider: "comfyui", workflow: "video.json", state: "succeeded",
    reused: false, progress: 1, created_at: "2025-01-01T00:00:00Z", updated_at: "2025-01-01T00:00:05Z",
    outputs: [
      { n: 0, kind: "video", filename: "clip.mp4", size: 2 * 1024 * 1024 },
      { n: 1, kind: "text", filename: "8.txt", text: CAPTION, text_length: CAPTION.length },
      { n: 2, kind: "text", filename: "notes.txt", size: 5 },
      { n: 3, kind: "file", filename: "mesh.glb", size: 2048, text: 12 },
    ],
  };
  const api = new FakeApi(async (method, route) => {
    if (route.startsWith("/comfyui_remote/tasks/m1/outputs/2")) return [206, "notes"];
    if (route.startsWith("/comfyui_remote/tasks")) return [200, { tasks: [task], next: null }];
    return [404, { error: "no" }];
  });
  const teardown = mountPanel(root, { api, doc, memory: {}, refreshDelayMs: 5, tickMs: 5 });
  t.after(teardown);
  await flush();
  const row = root.querySelector('[data-task-id="m1"]');
  assert.equal(row.querySelector('[data-output-kind="video"] [data-role="size"]').textContent, "2.0 MB");
  const [caption, notes] = row.querySelectorAll('[data-output-kind="text"]');
  assert.equal(caption.querySelector("pre").textContent, CAPTION);
  assert.equal(caption.querySelector('[data-role="show-all"]').hidden, true);
  assert.equal(notes.querySelector("pre").textContent, "notes");
  const reads = api.routes("GET", "/comfyui_remote/tasks/m1/outputs/");
  assert.deepEqual(reads.map((c) => [c.route, c.init.headers.Range]), [["/comfyui_remote/tasks/m1/outputs/2", "bytes=0-4095"]]);
  assert.equal(row.querySelector('[data-output-kind="file"] [data-role="size"]').textContent, "2.0 KB");
});
