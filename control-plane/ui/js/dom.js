// Building DOM without innerHTML (text is always text, never markup), and form plumbing:
// labelled fields with an error slot each, and API errors put next to the field they name.

// h("a", { href: "/ui/", class: "x", onclick: fn }, "text", child, [more]) -> element
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "value") el.value = value;
    else if (name === "checked") el.checked = Boolean(value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

let nextId = 0;
const uid = (prefix) => `${prefix}-${++nextId}`;

// A labelled control with a hint and an error slot. `control` is "input", "select" or
// "textarea"; `props` go to the control. Returns { row, input, error }.
export function field(label, props = {}, { control = "input", hint, options } = {}) {
  const id = uid("f");
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  const input = h(control, {
    id,
    "aria-describedby": [hintId, errorId].filter(Boolean).join(" "),
    ...props,
  });
  for (const [value, text] of options || []) {
    input.append(h("option", { value, selected: value === props.value ? true : null }, text));
  }
  if (control === "select" && props.value !== undefined) input.value = props.value;
  const error = h("p", { class: "error", id: errorId, role: "alert", hidden: true });
  const row = h(
    "div",
    { class: props.type === "checkbox" ? "field check" : "field" },
    props.type === "checkbox" ? [input, h("label", { for: id }, label)] : [h("label", { for: id }, label), input],
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    error,
  );
  return { row, input, error };
}

export function showError(fieldOrError, message) {
  const error = fieldOrError.error || fieldOrError;
  error.textContent = message || "";
  error.hidden = !message;
  if (fieldOrError.input) fieldOrError.input.setAttribute("aria-invalid", message ? "true" : "false");
}

// A form's fields by API field path, and its form-wide error line.
export class FieldErrors {
  constructor(general) {
    this.general = general;
    this.fields = new Map();
  }

  add(path, field) {
    this.fields.set(path, field);
    return field;
  }

  // A field for API path `path` whose `rule(value)` (a message, or "" when fine) is checked
  // while typing. The message appears as the user types, never on blur: text appearing then
  // would move the buttons under a pointer about to click them.
  checked(path, label, props, hint, rule) {
    const f = this.add(path, field(label, { autocomplete: "off", spellcheck: "false", ...props }, { hint }));
    f.input.addEventListener("input", () => showError(f, f.input.value ? rule(f.input.value) : ""));
    return f;
  }

  clear() {
    for (const field of this.fields.values()) showError(field, "");
    showError(this.general, "");
  }

  // Shows `err` beside the field whose path is the longest prefix of the one the API named
  // (`tls.ca_certs`, `custom_headers.X-Key`, ...), else on the form-wide line.
  show(err) {
    this.clear();
    const path = err.field || "";
    let best = null;
    for (const [name, field] of this.fields) {
      const match = path === name || path.startsWith(`${name}.`) || path.startsWith(`${name}[`);
      if (match && (!best || name.length > best[0].length)) best = [name, field];
    }
    if (best) {
      showError(best[1], `${path}: ${err.reason}`);
      best[1].input?.focus();
    } else {
      showError(this.general, err.message);
    }
  }
}

export function errorLine() {
  return h("p", { class: "error", role: "alert", hidden: true });
}

// Runs `action` with `button` disabled; API errors go to `errors`.
export async function submitting(button, errors, action) {
  errors.clear();
  button.disabled = true;
  try {
    await action();
  } catch (err) {
    if (err.status === undefined) throw err;
    errors.show(err);
  } finally {
    button.disabled = false;
  }
}

// A button that copies `text()` to the clipboard and says so in a live region.
export function copyButton(label, text) {
  const status = h("span", { class: "copied", "aria-live": "polite" });
  const button = h("button", {
    type: "button",
    class: "secondary",
    onclick: async () => {
      const value = text();
      try {
        await navigator.clipboard.writeText(value);
      } catch {
        // Clipboard API refused (not focused, or an insecure origin): the selection fallback.
        const area = h("textarea", { class: "offscreen", readonly: true }, value);
        document.body.append(area);
        area.select();
        document.execCommand("copy");
        area.remove();
      }
      status.textContent = "Copied";
      setTimeout(() => (status.textContent = ""), 2000);
    },
  }, label);
  return h("span", { class: "copy" }, button, status);
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

export function table(headers, rows, caption) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((text) => h("th", { scope: "col" }, text)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headers.length, class: "empty" }, "Nothing here yet."))),
    ),
  );
}
