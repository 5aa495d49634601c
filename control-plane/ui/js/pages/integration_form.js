// An endpoint (integration) of an account: name, base URL, custom headers, header auth, TLS
// settings with a CA certificate text area, and the subjects allowed to call it.
import { FieldErrors, errorLine, field, h } from "../dom.js";
import { headerFields } from "../headers.js";
import { baseUrl, integrationName, subjectList } from "../validate.js";

// `integration`: the API's view when editing. Returns { el, errors, read }.
export function integrationForm(integration = null) {
  const errors = new FieldErrors(errorLine());
  const name = errors.checked("name", "Endpoint name", { name: "endpoint-name", value: integration?.name || "", required: true },
    "2 to 62 letters, digits, '-', '_' or '.'; not starting with a digit.", integrationName);
  const url = errors.checked("base_url", "Base URL", {
    name: "base-url",
    type: "url",
    value: integration?.base_url || "",
    required: true,
    placeholder: "https://api.example.com/v1",
  }, "The upstream the gateway forwards to; no trailing slash.", baseUrl);
  const headers = headerFields(errors, integration, "Header auth (write-only; overrides the account's)");
  const verify = errors.add("tls.reject_unauthorized", field("Verify the upstream's TLS certificate", {
    type: "checkbox",
    checked: integration ? integration.tls.reject_unauthorized : true,
  }));
  const ca = errors.add("tls.ca_certs", field("CA certificates (PEM)", {
    value: integration?.tls?.ca_certs || "",
    rows: 4,
    spellcheck: "false",
    placeholder: "-----BEGIN CERTIFICATE-----",
  }, { control: "textarea", hint: "Optional: trusted in addition to the public roots." }));
  const limit = errors.add("max_request_body_bytes", field("Request body limit (bytes)", {
    type: "number",
    min: 0,
    value: integration?.max_request_body_bytes ?? "",
  }, { hint: "Optional; empty means the data plane's default." }));
  const subjects = errors.add("authorized_subjects", field("Authorized subjects", {
    value: (integration?.authorized_subjects || []).join(", "),
    placeholder: "user:ada@example.com, team:ml, virtualaccount:ci-bot",
    spellcheck: "false",
  }, { hint: "Who may call this endpoint through the gateway, comma-separated." }));
  const el = h("div", { class: "stack" },
    name.row, url.row, headers.el,
    h("fieldset", {}, h("legend", {}, "TLS"), verify.row, ca.row),
    limit.row, subjects.row, errors.general);
  const read = () => {
    const tls = { reject_unauthorized: verify.input.checked };
    if (ca.input.value.trim()) tls.ca_certs = ca.input.value;
    return {
      name: name.input.value.trim(),
      base_url: url.input.value.trim(),
      ...headers.read(),
      tls,
      authorized_subjects: subjectList(subjects.input.value),
      max_request_body_bytes: limit.input.value === "" ? null : Number(limit.input.value),
    };
  };
  return { el, errors, read };
}
