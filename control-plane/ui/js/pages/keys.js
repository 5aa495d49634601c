// API keys: create (the secret is shown once, with a copy button) and revoke.
import { all, del, post } from "../api.js";
import { FieldErrors, copyButton, errorLine, field, h, replace, submitting, table, when } from "../dom.js";

export async function render(main) {
  const errors = new FieldErrors(errorLine());
  const name = errors.add("name", field("Key name", { name: "key-name", required: true, autocomplete: "off" }));
  const owner = errors.add("owner", field("Owner", { name: "owner", placeholder: "virtualaccount:ci-bot", spellcheck: "false" }, {
    hint: "Optional: yourself when empty. Admins may issue keys for users and virtual accounts.",
  }));
  const expires = errors.add("expires_at", field("Expires", { name: "expires", type: "datetime-local" }, { hint: "Optional." }));
  const create = h("button", { type: "submit" }, "Create key");
  const created = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "card", "aria-labelledby": "new-key-title" },
    h("h2", { id: "new-key-title" }, "New key"),
    h("div", { class: "grid" }, name.row, owner.row, expires.row),
    errors.general, h("div", { class: "actions" }, create));
  const list = h("div");

  const draw = async () => {
    const keys = await all("/api-keys");
    keys.reverse();
    replace(list, table(["Name", "Owner", "Created", "Expires", "Last used", "Status", ""], keys.map((k) => {
      const status = k.revoked_at ? `revoked ${when(k.revoked_at)}` : "active";
      const cell = h("td", {});
      if (!k.revoked_at) {
        const ask = () => replace(cell,
          h("button", { type: "button", class: "danger", onclick: () => del(`/api-keys/${k.id}`).then(draw, (err) => errors.show(err)) }, `Yes, revoke ${k.name}`),
          h("button", { type: "button", class: "secondary", onclick: reset }, "Cancel"));
        const reset = () => replace(cell, h("button", { type: "button", class: "secondary", onclick: ask, "aria-label": `Revoke ${k.name}` }, "Revoke"));
        reset();
      }
      return h("tr", { "data-key": k.name },
        h("td", {}, k.name), h("td", {}, k.owner), h("td", {}, when(k.created_at)),
        h("td", {}, when(k.expires_at)), h("td", {}, when(k.last_used_at)),
        h("td", { class: "status" }, status), cell);
    }), "Keys"));
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(create, errors, async () => {
      const body = { name: name.input.value.trim() };
      if (owner.input.value.trim()) body.owner = owner.input.value.trim();
      if (expires.input.value) body.expires_at = new Date(expires.input.value).toISOString();
      const key = await post("/api-keys", body);
      const secret = h("input", { readonly: true, value: key.secret, "aria-label": "New key secret", class: "secret" });
      replace(created, h("div", { class: "card notice" },
        h("p", {}, h("strong", {}, `Key “${key.name}” created.`), " Copy it now: it is shown this once."),
        h("div", { class: "secret-row" }, secret, copyButton("Copy key", () => secret.value))));
      form.reset();
      await draw();
    });
  });
  replace(main, h("h1", {}, "API keys"), form, created, list);
  await draw();
}
