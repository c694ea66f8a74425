// Profiles section of the Remote panel: one row per profile ([data-profile=NAME],
// data-configured) with its provider, endpoint and configured yes/no — never a key — a
// "Test connection" button and a write-only "Set key" form whose input is cleared after sending.
// Results are shown beside the button and read out through the panel's live region (ctx.announce).

import { el, setAttr, setText } from "./dom.js";
import { keyFields, fieldLabel } from "../lib/key_fields.js";
import { truncate } from "../lib/format.js";

function capabilityNames(caps) {
  if (Array.isArray(caps)) return caps.filter((c) => typeof c === "string").map((c) => truncate(c, 30));
  if (caps && typeof caps === "object") {
    return Object.entries(caps)
      .filter(([, v]) => v === true || (typeof v === "string" && v !== "" && v !== "none"))
      .map(([k, v]) => truncate(v === true ? k : `${k}: ${v}`, 40));
  }
  return [];
}

/**
 * ctx: {doc, open: bool, onToggle(open), onTest(name) → Promise<{ok, message}>,
 *       onSetKey(name, field, value) → Promise<void>, announce(text)?}
 * Returns {el, setProfiles(list), setMessage(text)}.
 */
export function createProfilesSection(ctx) {
  const { doc } = ctx;
  const summary = el(doc, "summary", { class: "crp-section-title", text: "Profiles", attrs: { "data-role": "profiles-toggle" } });
  const message = el(doc, "div", { class: "crp-panel-message", attrs: { "data-role": "profiles-message", hidden: true } });
  const list = el(doc, "div", { class: "crp-profiles", attrs: { role: "list" } });
  const details = el(doc, "details", { class: "crp-profiles-section", attrs: { open: ctx.open } }, [summary, message, list]);
  details.addEventListener("toggle", () => ctx.onToggle(details.open));
  const rows = new Map();
  const announce = ctx.announce || (() => {});
  function showResult(node, ok, text, subject) {
    setAttr(node, "class", `crp-test-result ${ok ? "crp-ok" : "crp-fail"}`);
    setText(node, text);
    announce(`${subject}: ${text}`);
  }

  function testBlock(name, refs) {
    const result = el(doc, "span", { class: "crp-test-result", attrs: { "data-role": "test-result", hidden: true } });
    const btn = el(doc, "button", {
      class: "crp-btn",
      text: "Test connection",
      title: "Ask the provider whether this profile's endpoint and key work",
      attrs: { type: "button", "data-role": "test" },
    });
    refs.test = result;
    btn.addEventListener("click", async () => {
      btn.disabled = true;
      setAttr(result, "class", "crp-test-result");
      setText(result, "Testing…");
      try {
        const r = await ctx.onTest(name);
        showResult(result, r.ok, truncate(r.message || (r.ok ? "Connection OK" : "Connection failed"), 300), `Profile ${name}`);
      } catch (e) {
        showResult(result, false, truncate(e && e.message ? e.message : String(e), 300), `Profile ${name}`);
      } finally {
        btn.disabled = false;
      }
    });
    return el(doc, "div", { class: "crp-profile-actions" }, [btn, result]);
  }

  function keyForm(name, provider, refs) {
    const fields = keyFields(provider);
    if (fields.length === 0) {
      return el(doc, "div", { class: "crp-muted", text: "No key needed." });
    }
    const input = el(doc, "input", {
      class: "crp-input",
      attrs: {
        type: "password",
        "data-role": "key-input",
        autocomplete: "new-password",
        spellcheck: "false",
        placeholder: "paste a new value",
        "aria-label": `New ${fieldLabel(fields[0])} for ${name}`,
      },
    });
    let fieldControl;
    if (fields.length > 1) {
      fieldControl = el(doc, "select", { class: "crp-input crp-field-select", attrs: { "data-role": "key-field", "aria-label": "Field" } },
        fields.map((f) => el(doc, "option", { text: fieldLabel(f), attrs: { value: f } })));
    } else {
      fieldControl = el(doc, "span", { class: "crp-muted", text: fieldLabel(fields[0]), attrs: { "data-role": "key-field", "data-field": fields[0] } });
    }
    const submit = el(doc, "button", { class: "crp-btn", text: "Set key", attrs: { type: "submit", "data-role": "set-key" } });
    const result = el(doc, "span", { class: "crp-test-result", attrs: { "data-role": "key-result", hidden: true } });
    refs.key = result;
    const form = el(doc, "form", { class: "crp-keyform", attrs: { "data-role": "key-form", autocomplete: "off" } }, [
      fieldControl, input, submit, result,
    ]);
    form.addEventListener("submit", async (event) => {
      if (event && typeof event.preventDefault === "function") event.preventDefault();
      const value = input.value;
      const field = fields.length > 1 ? fieldControl.value || fields[0] : fields[0];
      input.value = "";
      if (!value) {
        showResult(result, false, "Enter a value first.", `Profile ${name}`);
        return;
      }
      submit.disabled = true;
      setAttr(result, "class", "crp-test-result");
      setText(result, "Saving…");
      try {
        await ctx.onSetKey(name, field, value);
        showResult(result, true, `${fieldLabel(field)} saved.`, `Profile ${name}`);
      } catch (e) {
        showResult(result, false, truncate(e && e.message ? e.message : String(e), 300), `Profile ${name}`);
      } finally {
        submit.disabled = false;
      }
    });
    return form;
  }

  function buildRow(p, refs) {
    const configured = p.configured === true;
    const provider = typeof p.provider === "string" ? p.provider : "";
    const caps = capabilityNames(p.capabilities);
    const url = typeof p.url === "string" && p.url ? truncate(p.url, 200) : "no endpoint set";
    return el(doc, "div", {
      class: "crp-profile",
      attrs: { role: "listitem", "data-profile": p.name, "data-configured": configured ? "true" : "false" },
    }, [
      el(doc, "div", { class: "crp-profile-head" }, [
        el(doc, "span", { class: "crp-profile-name", text: truncate(p.name, 60) }),
        el(doc, "span", { class: "crp-muted", text: truncate(provider || "unknown provider", 40) }),
        el(doc, "span", {
          class: `crp-badge ${configured ? "crp-configured" : "crp-unconfigured"}`,
          text: configured ? "configured" : "not configured",
          attrs: { "data-role": "configured" },
        }),
      ]),
      el(doc, "div", { class: "crp-profile-url crp-muted", text: url, title: url }),
      caps.length ? el(doc, "div", { class: "crp-caps" }, caps.map((c) => el(doc, "span", { class: "crp-cap", text: c }))) : null,
      testBlock(p.name, refs),
      keyForm(p.name, provider, refs),
    ]);
  }

  // Keep the last test / set-key message when a row is rebuilt (e.g. "configured" flipped).
  function carryResults(from, to) {
    for (const k of ["test", "key"]) {
      if (!from[k] || !to[k]) continue;
      to[k].textContent = from[k].textContent;
      setAttr(to[k], "class", from[k].getAttribute("class"));
      setAttr(to[k], "hidden", from[k].textContent === "");
    }
  }

  function setProfiles(profiles) {
    const seen = new Set();
    const nodes = [];
    for (const p of profiles) {
      if (seen.has(p.name)) continue;
      seen.add(p.name);
      const sig = JSON.stringify([p.provider, p.url, p.configured, p.capabilities]);
      const existing = rows.get(p.name);
      if (existing && existing.sig === sig) {
        nodes.push(existing.el);
      } else {
        const refs = {};
        const row = buildRow(p, refs);
        if (existing) carryResults(existing.refs, refs);
        rows.set(p.name, { el: row, sig, refs });
        nodes.push(row);
      }
    }
    for (const name of [...rows.keys()]) if (!seen.has(name)) rows.delete(name);
    list.replaceChildren(...nodes);
    if (nodes.length === 0) list.appendChild(el(doc, "div", { class: "crp-muted", text: "No profiles." }));
  }

  return { el: details, setProfiles, setMessage: (text) => setText(message, text) };
}
