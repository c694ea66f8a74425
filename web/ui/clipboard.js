// Copy text to the clipboard: the async Clipboard API where allowed (secure contexts), else a
// temporary off-screen textarea + execCommand("copy") (ComfyUI is often served over plain http on a LAN).

export async function copyText(win, doc, text) {
  const value = String(text);
  const clip = win && win.navigator && win.navigator.clipboard;
  if (clip && typeof clip.writeText === "function" && win.isSecureContext !== false) {
    try {
      await clip.writeText(value);
      return true;
    } catch {
      /* fall back below */
    }
  }
  if (!doc || typeof doc.execCommand !== "function") return false;
  const area = doc.createElement("textarea");
  area.value = value;
  area.setAttribute("readonly", "");
  area.setAttribute("style", "position:fixed;left:-9999px;top:0;opacity:0");
  doc.body.appendChild(area);
  try {
    area.select();
    return doc.execCommand("copy") === true;
  } catch {
    return false;
  } finally {
    area.remove();
  }
}
