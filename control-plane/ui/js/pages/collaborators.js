// Access control of an account: collaborators (a subject and a role each).
import { h } from "../dom.js";

const ROLES = [
  ["provider-account-access", "Access (read)"],
  ["provider-account-manager", "Manager"],
];

// `collaborators`: [{ subject, role }]. Returns { el, read }.
export function collaboratorsEditor(collaborators = []) {
  const rows = h("div", { class: "collab-rows" });
  const addRow = (subject = "", role = "provider-account-access") => {
    const subjectInput = h("input", { value: subject, "aria-label": "Collaborator subject", placeholder: "user:ada@example.com or team:ml", spellcheck: "false" });
    const roleSelect = h("select", { "aria-label": "Collaborator role" },
      ROLES.map(([value, text]) => h("option", { value, selected: value === role }, text)));
    const row = h("div", { class: "header-row" }, subjectInput, roleSelect,
      h("button", { type: "button", class: "secondary", onclick: () => row.remove() }, "Remove"));
    row.read = () => ({ subject: subjectInput.value.trim(), role: roleSelect.value });
    rows.append(row);
  };
  for (const c of collaborators) addRow(c.subject, c.role);
  const el = h("fieldset", {}, h("legend", {}, "Collaborators"), rows,
    h("button", { type: "button", class: "secondary", onclick: () => addRow() }, "Add collaborator"));
  const read = () => [...rows.children].map((row) => row.read()).filter((c) => c.subject);
  return { el, read };
}
