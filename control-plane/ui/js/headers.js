// An editor for a map of HTTP headers. Secret values are write-only: the API answers them as
// MASK, the editor shows them empty ("stored, leave empty to keep") and sends MASK back for
// unchanged ones, which the API reads as "keep the stored value".
import { errorLine, h } from "./dom.js";

const MASK = "********";

// `headers`: { name: value }; `secret(name)`: whether a value is write-only; `allSecret`: every
// value is (header auth) so there is no per-row checkbox.
function headersEditor(legend, headers = {}, { secret = () => false, allSecret = false } = {}) {
  const rows = h("div", { class: "header-rows" });
  const addRow = (name = "", value = "", isSecret = allSecret) => {
    const stored = value === MASK;
    const nameInput = h("input", { value: name, "aria-label": `${legend}: header name`, placeholder: "Header-Name", autocomplete: "off" });
    const valueInput = h("input", {
      type: isSecret ? "password" : "text",
      value: stored ? "" : value,
      placeholder: stored ? "stored, leave empty to keep" : "value",
      "aria-label": `${legend}: header value`,
      autocomplete: "off",
    });
    valueInput.dataset.stored = stored ? "1" : "";
    const secretBox = allSecret
      ? null
      : h("input", {
          type: "checkbox",
          checked: isSecret,
          "aria-label": `${legend}: value is secret`,
          onchange: () => (valueInput.type = secretBox.checked ? "password" : "text"),
        });
    const row = h(
      "div",
      { class: "header-row" },
      nameInput,
      valueInput,
      secretBox ? h("label", { class: "inline" }, secretBox, " secret") : null,
      h("button", { type: "button", class: "secondary", onclick: () => row.remove() }, "Remove"),
    );
    row.read = () => ({
      name: nameInput.value.trim(),
      value: valueInput.value === "" && valueInput.dataset.stored ? MASK : valueInput.value,
      secret: allSecret || secretBox.checked,
    });
    rows.append(row);
  };
  for (const [name, value] of Object.entries(headers)) addRow(name, value, allSecret || secret(name));
  const el = h(
    "fieldset",
    { class: "headers" },
    h("legend", {}, legend),
    rows,
    h("button", { type: "button", class: "secondary", onclick: () => addRow() }, "Add header"),
  );
  // -> { headers: {name: value}, secret: [names] } of the non-empty rows
  const read = () => {
    const result = { headers: {}, secret: [] };
    for (const row of rows.children) {
      const { name, value, secret: isSecret } = row.read();
      if (!name) continue;
      result.headers[name] = value;
      if (isSecret) result.secret.push(name);
    }
    return result;
  };
  return { el, read };
}

// The custom headers and header auth of an account or integration (`owner`, the API's view when
// editing), their error lines registered in `errors` (a FieldErrors).
// -> { el, read() -> { custom_headers, secret_custom_headers, header_auth } }
export function headerFields(errors, owner, authLegend) {
  const custom = headersEditor("Custom headers", owner?.custom_headers, {
    secret: (n) => owner?.secret_custom_headers?.includes(n),
  });
  const auth = headersEditor(authLegend, owner?.header_auth?.headers, { allSecret: true });
  const customError = errors.add("custom_headers", { error: errorLine(), input: null });
  errors.add("secret_custom_headers", customError);
  const authError = errors.add("header_auth", { error: errorLine(), input: null });
  const read = () => {
    const headers = custom.read();
    const authHeaders = auth.read().headers;
    return {
      custom_headers: headers.headers,
      secret_custom_headers: headers.secret,
      header_auth: Object.keys(authHeaders).length ? { type: "header", headers: authHeaders } : null,
    };
  };
  return { el: [auth.el, authError.error, custom.el, customError.error], read };
}
