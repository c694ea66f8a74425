// What the ComfyUI frontend of this page offers the panel. Frontend 1.27 draws its icons with
// PrimeIcons (`pi pi-…`); today's frontend (1.5x) with Lucide classes compiled into its
// stylesheet (`icon-[lucide--…]`, a CSS mask) and is phasing PrimeIcons out. Which one to use is
// decided by asking the page's stylesheet, not by a version number.

/** The panel's icons in both sets; every Lucide name here is one the 1.5x stylesheet defines. */
export const ICONS = {
  cloud: { lucide: "icon-[lucide--cloud]", prime: "pi pi-cloud" },
  refresh: { lucide: "icon-[lucide--refresh-cw]", prime: "pi pi-refresh" },
};

/** The class of icon `name` for a frontend that has (or has not) the Lucide classes. */
export function iconClass(name, hasLucide) {
  const icon = ICONS[name];
  if (!icon) throw new Error(`no icon named ${name}`);
  return hasLucide ? icon.lucide : icon.prime;
}

/**
 * True when the page's stylesheet draws `icon-[lucide--cloud]`: an off-screen probe element
 * gets a mask image from it (nothing at all on frontends without Lucide classes).
 */
export function hasLucideIcons(doc, win) {
  if (!doc || !doc.body || !win || typeof win.getComputedStyle !== "function") return false;
  const probe = doc.createElement("i");
  probe.setAttribute("class", ICONS.cloud.lucide);
  probe.setAttribute("aria-hidden", "true");
  probe.setAttribute("style", "position:absolute;left:-9999px;top:0");
  doc.body.appendChild(probe);
  try {
    const style = win.getComputedStyle(probe);
    const mask = style.maskImage || style.webkitMaskImage || style.getPropertyValue("mask-image") || "";
    return /url\(/.test(mask);
  } catch {
    return false;
  } finally {
    probe.remove();
  }
}
