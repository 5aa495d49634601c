// Traces: recent proxied requests the signed-in subject may see, with filters (kept in the
// URL's query, which holds no secret), cursor paging, and the detail of one request.
import { enc, get, page } from "../api.js";
import { FieldErrors, errorLine, field, h, replace, submitting, table, when } from "../dom.js";
import { navigate } from "../router.js";

const FILTERS = [
  ["account", "Account", {}],
  ["endpoint", "Endpoint", {}],
  ["subject", "Subject", { placeholder: "user:ada@example.com" }],
  ["status", "Status", { placeholder: "404 or 5xx" }],
  ["since", "Since", { type: "datetime-local" }],
  ["until", "Until", { type: "datetime-local" }],
];
const TIME = new Set(["since", "until"]);
const PAGE_SIZE = 25;

export function render(main, params, query) {
  return params.id ? detail(main, params.id) : list(main, query);
}

// datetime-local (local time, no zone) <-> the API's RFC 3339.
const toApi = (name, value) => (TIME.has(name) && value ? new Date(value).toISOString() : value);

async function list(main, query) {
  const errors = new FieldErrors(errorLine());
  const inputs = FILTERS.map(([name, label, props]) => [name, errors.add(name, field(label, { name, value: query.get(name) || "", ...props }))]);
  const apply = h("button", { type: "submit" }, "Apply filters");
  const form = h("form", { class: "filters", role: "search", "aria-label": "Trace filters" },
    inputs.map(([, f]) => f.row), h("div", { class: "actions" }, apply));
  const results = h("div");
  const pager = h("div", { class: "actions" });
  // Tokens of the pages before the current one, for "Newer".
  const tokens = [];
  let current = "";

  const filters = () => Object.fromEntries(inputs.map(([name, f]) => [name, toApi(name, f.input.value.trim())]));
  const load = async (token) => {
    const result = await page("/traces", { ...filters(), page_size: PAGE_SIZE, page_token: token });
    current = token;
    const rows = result.items.map((r) =>
      h("tr", {},
        h("td", {}, h("a", { href: `/ui/traces/${r.request_id}` }, when(r.started_at))),
        h("td", {}, r.account), h("td", {}, r.endpoint), h("td", {}, r.subject || "—"),
        h("td", {}, r.method), h("td", { class: "path" }, r.upstream_path),
        h("td", { class: r.status >= 400 ? "bad" : "good" }, r.status),
        h("td", { class: "num" }, (r.latency_us / 1000).toFixed(1))));
    replace(results, table(["Started", "Account", "Endpoint", "Subject", "Method", "Path", "Status", "Latency (ms)"], rows, "Requests, newest first"));
    replace(pager,
      tokens.length ? h("button", { type: "button", class: "secondary", onclick: () => load(tokens.pop()) }, "Newer") : null,
      result.next ? h("button", { type: "button", class: "secondary", onclick: () => (tokens.push(current), load(result.next)) }, "Older") : null);
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = new URLSearchParams();
    for (const [name, f] of inputs) if (f.input.value.trim()) q.set(name, f.input.value.trim());
    history.replaceState(null, "", `/ui/traces${q.toString() ? "?" + q : ""}`);
    tokens.length = 0;
    submitting(apply, errors, () => load(""));
  });
  replace(main, h("h1", {}, "Traces"), form, errors.general, results, pager);
  await submitting(apply, errors, () => load(""));
}

async function detail(main, id) {
  const r = await get(`/traces/${enc(id)}`);
  const rows = [
    ["Request id", r.request_id], ["Started", when(r.started_at)], ["Account", r.account],
    ["Endpoint", r.endpoint], ["Subject", r.subject || "—"], ["API key id", r.key_id || "—"],
    ["Method", r.method], ["Upstream path", r.upstream_path], ["Status", r.status],
    ["Latency", `${(r.latency_us / 1000).toFixed(1)} ms`],
    ["Upstream time to first byte", r.upstream_ttfb_us == null ? "—" : `${(r.upstream_ttfb_us / 1000).toFixed(1)} ms`],
    ["Bytes in", r.bytes_in], ["Bytes out", r.bytes_out], ["Error", r.error_type || "—"],
    ["Trace id", r.trace_id], ["Data plane", r.data_plane],
  ];
  replace(main,
    h("div", { class: "title-row" }, h("h1", {}, "Request"),
      h("button", { type: "button", class: "secondary", onclick: () => (history.length > 1 ? history.back() : navigate("/ui/traces")) }, "Back to traces")),
    h("dl", { class: "card details" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))])));
}
