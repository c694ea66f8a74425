// Tiny DOM builder for the Remote panel: createElement + setAttribute + textContent only, so
// untrusted provider text can never become markup. The document is passed in (testable in node).

/**
 * el(doc, "div", {class: "x", text: "hello", title: "t", attrs: {"data-role": "y"}}, [children])
 * Attribute values that are null/undefined/false are skipped; true becomes "".
 */
export function el(doc, tag, props = {}, children = []) {
  const node = doc.createElement(tag);
  if (props.class) node.setAttribute("class", props.class);
  if (props.title) node.setAttribute("title", String(props.title));
  if (props.attrs) {
    for (const [name, value] of Object.entries(props.attrs)) setAttr(node, name, value);
  }
  if (props.text !== undefined && props.text !== null) node.textContent = String(props.text);
  for (const child of children) if (child) node.appendChild(child);
  return node;
}

/** Set (or remove when null/undefined/false) an attribute; true → "". */
export function setAttr(node, name, value) {
  if (value === null || value === undefined || value === false) node.removeAttribute(name);
  else node.setAttribute(name, value === true ? "" : String(value));
}

/** Set text and hide the element when the text is empty. */
export function setText(node, text) {
  const s = text === null || text === undefined ? "" : String(text);
  if (node.textContent !== s) node.textContent = s;
  setAttr(node, "hidden", s === "");
}

/** Make `parent`'s children exactly `nodes`, in order, moving only what is out of place. */
export function reconcileChildren(parent, nodes) {
  let i = 0;
  for (const node of nodes) {
    const current = parent.children[i];
    if (current !== node) parent.insertBefore(node, current || null);
    i += 1;
  }
  while (parent.children.length > nodes.length) parent.removeChild(parent.children[parent.children.length - 1]);
}
