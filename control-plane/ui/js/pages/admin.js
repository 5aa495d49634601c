// Admin: users, teams and virtual accounts (the API refuses non-admins; its error is shown).
import { all, del, enc, patch, post } from "../api.js";
import { FieldErrors, errorLine, field, h, replace, submitting, table, when } from "../dom.js";

export async function render(main) {
  replace(main, h("h1", {}, "Admin"), await users(), await teams(), await virtualAccounts());
}

// A section with a creation form and a table redrawn after every change.
async function section(title, fields, create, rowsOf) {
  const errors = new FieldErrors(errorLine());
  const made = fields.map(([path, f]) => [path, errors.add(path, f)]);
  const add = h("button", { type: "submit" }, `Add ${title.toLowerCase().replace(/s$/, "")}`);
  const list = h("div");
  const draw = async () => replace(list, await rowsOf(draw, (err) => errors.show(err)));
  const form = h("form", { "aria-label": `New ${title.toLowerCase()}` },
    h("div", { class: "grid" }, made.map(([, f]) => f.row)), errors.general, h("div", { class: "actions" }, add));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(add, errors, async () => {
      await create(Object.fromEntries(made.map(([path, f]) => [path, f.input])));
      form.reset();
      await draw();
    });
  });
  await draw();
  return h("section", { class: "card", "aria-label": title }, h("h2", {}, title), form, list);
}

const removeButton = (label, path, draw, fail) =>
  h("button", { type: "button", class: "secondary", "aria-label": label, onclick: () => del(path).then(draw, fail) }, "Delete");

function users() {
  return section("Users", [
    ["email", field("E-mail", { type: "email", required: true, autocomplete: "off" })],
    ["is_admin", field("Admin", { type: "checkbox" })],
  ], (inputs) => post("/users", { email: inputs.email.value.trim(), is_admin: inputs.is_admin.checked }),
  async (draw, fail) => table(["E-mail", "Admin", "Created", ""], (await all("/users")).map((u) => {
    const admin = h("input", {
      type: "checkbox",
      checked: u.is_admin,
      "aria-label": `${u.name} is an admin`,
      onchange: () => patch(`/users/${enc(u.name)}`, { is_admin: admin.checked }).catch((err) => {
        admin.checked = !admin.checked;
        fail(err);
      }),
    });
    return h("tr", {}, h("td", {}, u.name), h("td", {}, admin), h("td", {}, when(u.created_at)),
      h("td", {}, removeButton(`Delete ${u.name}`, `/users/${enc(u.name)}`, draw, fail)));
  })));
}

// "ada@example.com:manager, bob@example.com" -> [{ user, role }]
const members = (text) => text.split(/[\s,]+/).filter(Boolean).map((item) => {
  const [user, role] = item.split(/:(?=[a-z]+$)/);
  return role ? { user, role } : { user };
});

function teams() {
  return section("Teams", [
    ["name", field("Team name", { required: true, autocomplete: "off", spellcheck: "false" })],
    ["members", field("Members", { placeholder: "ada@example.com:manager, bob@example.com", spellcheck: "false" }, {
      hint: "E-mails, each optionally followed by :manager.",
    })],
  ], (inputs) => post("/teams", { name: inputs.name.value.trim(), members: members(inputs.members.value) }),
  async (draw, fail) => table(["Team", "Members", "Created", ""], (await all("/teams")).map((t) =>
    h("tr", {}, h("td", {}, t.name),
      h("td", {}, t.members.map((m) => `${m.user} (${m.role})`).join(", ") || "—"),
      h("td", {}, when(t.created_at)),
      h("td", {}, removeButton(`Delete ${t.name}`, `/teams/${enc(t.name)}`, draw, fail))))));
}

function virtualAccounts() {
  return section("Virtual accounts", [
    ["name", field("Virtual account name", { required: true, autocomplete: "off", spellcheck: "false" })],
  ], (inputs) => post("/virtual-accounts", { name: inputs.name.value.trim() }),
  async (draw, fail) => table(["Name", "Subject", "Created", ""], (await all("/virtual-accounts")).map((v) =>
    h("tr", {}, h("td", {}, v.name), h("td", {}, h("code", {}, v.subject)), h("td", {}, when(v.created_at)),
      h("td", {}, removeButton(`Delete ${v.name}`, `/virtual-accounts/${enc(v.name)}`, draw, fail))))));
}
