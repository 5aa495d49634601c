// The settings of a provider account (wizard step 1, and editing afterwards): name with live
// validation of the SPEC rules, endpoint type, header auth and custom headers.
import { FieldErrors, errorLine, field, h } from "../dom.js";
import { headerFields } from "../headers.js";
import { accountName } from "../validate.js";
import { ENDPOINT_TYPES } from "./accounts.js";

// `account`: the API's view when editing. Returns { el, errors, read, name }.
export function accountForm(account = null) {
  const errors = new FieldErrors(errorLine());
  const name = errors.checked("name", "Name", { name: "name", value: account?.name || "", required: true },
    "3 to 32 lowercase letters, digits and hyphens. Appears in proxy URLs.", accountName);
  const type = errors.add("endpoint_type", field("Endpoint type", { value: account?.endpoint_type || "" }, {
    control: "select",
    options: [["", "None"], ...ENDPOINT_TYPES.slice(1)],
  }));
  const headers = headerFields(errors, account, "Header auth (write-only)");
  const el = h("div", { class: "stack" }, name.row, type.row, headers.el, errors.general);
  const read = () => ({
    name: name.input.value.trim(),
    endpoint_type: type.input.value || null,
    ...headers.read(),
  });
  return { el, errors, read, name };
}
