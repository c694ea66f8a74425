// A minimal DOM for node tests of web/ui/*: elements, attributes, textContent, tree edits,
// events with bubbling, and querySelector(All) for "tag.class[attr=value] descendant" selectors.
// innerHTML/outerHTML/insertAdjacentHTML throw, so a test fails if the panel ever uses them.

class FakeEvent {
  constructor(type, init = {}) {
    this.type = type;
    this.detail = init.detail;
    this.bubbles = init.bubbles !== false;
    this.defaultPrevented = false;
    this.target = null;
    this.currentTarget = null;
    this._stop = false;
  }
  preventDefault() { this.defaultPrevented = true; }
  stopPropagation() { this._stop = true; }
}

function parseCompound(text) {
  const parts = { tag: null, classes: [], attrs: [] };
  const re = /([a-zA-Z][\w-]*)|\.([\w-]+)|\[([\w-]+)(?:="([^"]*)")?\]/g;
  let m;
  let consumed = 0;
  while ((m = re.exec(text))) {
    if (m.index !== consumed) throw new Error(`fake_dom: unsupported selector ${text}`);
    consumed = re.lastIndex;
    if (m[1]) parts.tag = m[1].toUpperCase();
    else if (m[2]) parts.classes.push(m[2]);
    else parts.attrs.push([m[3], m[4]]);
  }
  if (consumed !== text.length) throw new Error(`fake_dom: unsupported selector ${text}`);
  return parts;
}

function matchesCompound(el, p) {
  if (p.tag && el.tagName !== p.tag) return false;
  const cls = (el.getAttribute("class") || "").split(/\s+/);
  for (const c of p.classes) if (!cls.includes(c)) return false;
  for (const [name, value] of p.attrs) {
    if (!el.hasAttribute(name)) return false;
    if (value !== undefined && el.getAttribute(name) !== value) return false;
  }
  return true;
}

function matches(el, selector) {
  const chain = selector.trim().split(/\s+/).map(parseCompound);
  if (!matchesCompound(el, chain[chain.length - 1])) return false;
  let i = chain.length - 2;
  let node = el.parentNode;
  while (i >= 0 && node && node.nodeType === 1) {
    if (matchesCompound(node, chain[i])) i -= 1;
    node = node.parentNode;
  }
  return i < 0;
}

export class FakeElement {
  constructor(doc, tag) {
    this.ownerDocument = doc;
    this.tagName = tag.toUpperCase();
    this.nodeType = 1;
    this.parentNode = null;
    this.children = [];
    this._attrs = new Map();
    this._text = "";
    this._listeners = new Map();
    this.style = {};
    this._value = undefined;
  }
  get firstChild() { return this.children[0] || null; }
  get textContent() {
    return this.children.length ? this.children.map((c) => c.textContent).join("") : this._text;
  }
  set textContent(v) {
    for (const c of this.children) c.parentNode = null;
    this.children = [];
    this._text = String(v);
  }
  set innerHTML(_) { throw new Error("innerHTML is not allowed in the panel"); }
  get innerHTML() { throw new Error("innerHTML is not allowed in the panel"); }
  set outerHTML(_) { throw new Error("outerHTML is not allowed in the panel"); }
  insertAdjacentHTML() { throw new Error("insertAdjacentHTML is not allowed in the panel"); }

  setAttribute(name, value) { this._attrs.set(String(name).toLowerCase(), String(value)); }
  getAttribute(name) { const v = this._attrs.get(String(name).toLowerCase()); return v === undefined ? null : v; }
  hasAttribute(name) { return this._attrs.has(String(name).toLowerCase()); }
  removeAttribute(name) { this._attrs.delete(String(name).toLowerCase()); }
  toggleAttribute(name, force) {
    const on = force === undefined ? !this.hasAttribute(name) : force;
    if (on) this.setAttribute(name, ""); else this.removeAttribute(name);
    return on;
  }
  get attributeNames() { return [...this._attrs.keys()]; }

  get disabled() { return this.hasAttribute("disabled"); }
  set disabled(v) { this.toggleAttribute("disabled", Boolean(v)); }
  get open() { return this.hasAttribute("open"); }
  set open(v) { this.toggleAttribute("open", Boolean(v)); }
  get hidden() { return this.hasAttribute("hidden"); }
  get value() {
    if (this._value !== undefined) return this._value;
    if (this.tagName === "SELECT") {
      const first = this.children.find((c) => c.tagName === "OPTION");
      return first ? first.getAttribute("value") ?? first.textContent : "";
    }
    return this.getAttribute("value") ?? "";
  }
  set value(v) { this._value = String(v); }
  select() {}
  focus() { this.ownerDocument.activeElement = this; }
  blur() { if (this.ownerDocument.activeElement === this) this.ownerDocument.activeElement = this.ownerDocument.body; }

  _detach(node) {
    if (node.parentNode) {
      const list = node.parentNode.children;
      list.splice(list.indexOf(node), 1);
      node.parentNode = null;
    }
  }
  appendChild(node) {
    this._detach(node);
    this._text = "";
    this.children.push(node);
    node.parentNode = this;
    return node;
  }
  append(...nodes) { for (const n of nodes) this.appendChild(n); }
  insertBefore(node, ref) {
    if (ref === null || ref === undefined) return this.appendChild(node);
    this._detach(node);
    const i = this.children.indexOf(ref);
    if (i < 0) throw new Error("fake_dom: insertBefore reference is not a child");
    this.children.splice(i, 0, node);
    node.parentNode = this;
    return node;
  }
  removeChild(node) {
    if (node.parentNode !== this) throw new Error("fake_dom: not a child");
    this._detach(node);
    return node;
  }
  remove() { this._detach(this); }
  replaceChildren(...nodes) {
    for (const c of this.children) c.parentNode = null;
    this.children = [];
    this._text = "";
    for (const n of nodes) this.appendChild(n);
  }
  get isConnected() {
    let n = this;
    while (n.parentNode) n = n.parentNode;
    return n === this.ownerDocument.documentElement;
  }

  addEventListener(type, fn) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
  }
  removeEventListener(type, fn) { this._listeners.get(type)?.delete(fn); }
  dispatchEvent(event) {
    event.target = event.target || this;
    let node = this;
    while (node && !event._stop) {
      event.currentTarget = node;
      for (const fn of [...(node._listeners.get(event.type) || [])]) fn.call(node, event);
      if (!event.bubbles) break;
      node = node.parentNode;
    }
    return !event.defaultPrevented;
  }
  click() {
    if (this.disabled) return;
    this.dispatchEvent(new FakeEvent("click"));
  }

  matches(selector) { return matches(this, selector); }
  querySelectorAll(selector) {
    const out = [];
    const walk = (node) => {
      for (const c of node.children) {
        if (matches(c, selector)) out.push(c);
        walk(c);
      }
    };
    walk(this);
    return out;
  }
  querySelector(selector) { return this.querySelectorAll(selector)[0] || null; }
  closest(selector) {
    let n = this;
    while (n && n.nodeType === 1) {
      if (matches(n, selector)) return n;
      n = n.parentNode;
    }
    return null;
  }
}

export function createDocument() {
  const doc = {
    createElement: (tag) => new FakeElement(doc, tag),
    getElementById: (id) => doc.documentElement.querySelector(`[id="${id}"]`),
  };
  doc.documentElement = new FakeElement(doc, "html");
  doc.head = doc.createElement("head");
  doc.body = doc.createElement("body");
  doc.documentElement.append(doc.head, doc.body);
  doc.activeElement = doc.body;
  return doc;
}

export { FakeEvent };
