// One provider account: its settings, endpoints (edit, delete, usage snippets), access
// control, and deleting it. Secrets are shown masked; edits send masked values back unchanged.
import { del, enc, get, post, put } from "../api.js";
import { FieldErrors, errorLine, h, replace, submitting } from "../dom.js";
import { navigate } from "../router.js";
import { usagePanel } from "../snippets.js";
import { accountForm } from "./account_form.js";
import { collaboratorsEditor } from "./collaborators.js";
import { integrationForm } from "./integration_form.js";

export async function render(main, { account: name }) {
  const path = `/provider-accounts/${enc(name)}`;
  const [account, integrations] = await Promise.all([get(path), get(`${path}/integrations?page_size=1000`)]);
  replace(main,
    h("div", { class: "title-row" }, h("h1", {}, account.name), deleteControl("account", async () => {
      await del(path);
      navigate("/ui/accounts");
    })),
    settings(account, path),
    endpoints(account, integrations, path),
    access(account, path));
}

// A "Delete" button that asks once more, inline.
function deleteControl(what, action) {
  const holder = h("span", { class: "confirm" });
  const ask = () => replace(holder,
    `Delete this ${what}? `,
    h("button", { type: "button", class: "danger", onclick: action }, "Yes, delete"),
    h("button", { type: "button", class: "secondary", onclick: reset }, "Cancel"));
  const reset = () => replace(holder, h("button", { type: "button", class: "danger", onclick: ask }, `Delete ${what}`));
  reset();
  return holder;
}

function settings(account, path) {
  const form = accountForm(account);
  const save = h("button", { type: "submit" }, "Save settings");
  const el = h("form", { class: "card", "aria-labelledby": "settings-title" },
    h("h2", { id: "settings-title" }, "Settings"), form.el, h("div", { class: "actions" }, save));
  el.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(save, form.errors, async () => {
      // A PUT replaces collaborators too: keep the current ones (the form below edits them).
      const { collaborators } = await get(path);
      const saved = await put(path, { ...form.read(), collaborators });
      navigate(`/ui/accounts/${enc(saved.name)}`, { replace: true });
    });
  });
  return el;
}

function endpoints(account, integrations, path) {
  const list = h("div", { class: "stack" });
  for (const integration of integrations) list.append(endpointCard(account, integration, path));
  const addHolder = h("div");
  const showAdd = () => {
    const form = integrationForm();
    const add = h("button", { type: "submit" }, "Add endpoint");
    const el = h("form", { class: "card", "aria-label": "New endpoint" }, h("h3", {}, "New endpoint"), form.el,
      h("div", { class: "actions" }, add,
        h("button", { type: "button", class: "secondary", onclick: () => replace(addHolder, addButton) }, "Cancel")));
    el.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(add, form.errors, async () => {
        const created = await post(`${path}/integrations`, form.read());
        list.append(endpointCard(account, created, path));
        replace(addHolder, addButton);
      });
    });
    replace(addHolder, el);
  };
  const addButton = h("button", { type: "button", onclick: showAdd }, "Add endpoint");
  replace(addHolder, addButton);
  return h("section", { class: "card", "aria-labelledby": "endpoints-title" },
    h("h2", { id: "endpoints-title" }, "Endpoints"), list, addHolder);
}

function endpointCard(account, integration, path) {
  const url = `${path}/integrations/${enc(integration.name)}`;
  const panel = h("div");
  const toggle = (label, build) => h("button", {
    type: "button",
    class: "secondary",
    "aria-expanded": "false",
    onclick: (event) => {
      const open = event.target.getAttribute("aria-expanded") === "true";
      for (const b of card.querySelectorAll("[aria-expanded]")) b.setAttribute("aria-expanded", "false");
      if (open) return replace(panel);
      event.target.setAttribute("aria-expanded", "true");
      replace(panel, build());
    },
  }, label);
  const edit = () => {
    const form = integrationForm(integration);
    const save = h("button", { type: "submit" }, "Save endpoint");
    const el = h("form", { "aria-label": `Edit ${integration.name}` }, form.el, h("div", { class: "actions" }, save));
    el.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(save, form.errors, async () => {
        const saved = await put(url, form.read());
        card.replaceWith(endpointCard(account, saved, path));
      });
    });
    return el;
  };
  const card = h("article", { class: "endpoint", "data-endpoint": integration.name },
    h("div", { class: "title-row" },
      h("h3", {}, integration.name),
      h("code", { class: "muted" }, integration.base_url)),
    h("p", { class: "muted" }, "Authorized: ", integration.authorized_subjects.join(", ") || "the account's collaborators"),
    h("div", { class: "actions" },
      toggle("Usage", () => usagePanel(account.name, integration.name)),
      toggle("Edit", edit),
      deleteControl("endpoint", async () => {
        await del(url);
        card.remove();
      })),
    panel);
  return card;
}

function access(account, path) {
  const errors = new FieldErrors(errorLine());
  const editor = collaboratorsEditor(account.collaborators);
  const save = h("button", { type: "submit" }, "Save collaborators");
  const saved = h("span", { "aria-live": "polite", class: "copied" });
  const el = h("form", { class: "card", "aria-labelledby": "access-title" },
    h("h2", { id: "access-title" }, "Access control"),
    h("p", { class: "hint" }, "Who may call each endpoint is set on the endpoint (Edit)."),
    editor.el, errors.general, h("div", { class: "actions" }, save, saved));
  el.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(save, errors, async () => {
      await put(`${path}/collaborators`, editor.read());
      saved.textContent = "Saved";
    });
  });
  return el;
}
