// Provider accounts: a list with search (by name, over the loaded pages) and an endpoint type
// filter (the API's), paged by "Load more".
import { page } from "../api.js";
import { field, h, replace, table, when } from "../dom.js";

export const ENDPOINT_TYPES = [
  ["", "Any type"],
  ["azure-speech-service", "Azure Speech Service"],
  ["other", "Other"],
];

export function render(main, _params, query) {
  const search = field("Search by name", { type: "search", value: query.get("q") || "" });
  const type = field("Endpoint type", { value: query.get("endpoint_type") || "" }, {
    control: "select",
    options: ENDPOINT_TYPES,
  });
  const results = h("div");
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
  let loaded = [];
  let next = "";

  const draw = () => {
    const needle = search.input.value.trim().toLowerCase();
    const rows = loaded
      .filter((a) => a.name.includes(needle))
      .map((a) =>
        h("tr", {},
          h("td", {}, h("a", { href: `/ui/accounts/${encodeURIComponent(a.name)}` }, a.name)),
          h("td", {}, a.endpoint_type || "—"),
          h("td", {}, a.header_auth ? "set (masked)" : "—"),
          h("td", {}, a.collaborators.length),
          h("td", {}, when(a.updated_at))));
    replace(results, table(["Name", "Endpoint type", "Header auth", "Collaborators", "Updated"], rows, "Provider accounts"));
    more.hidden = !next;
  };
  const load = async (reset) => {
    if (reset) {
      loaded = [];
      next = "";
    }
    const result = await page("/provider-accounts", {
      endpoint_type: type.input.value,
      page_size: 50,
      page_token: next,
    });
    loaded.push(...result.items);
    next = result.next;
    draw();
  };
  const remember = () => {
    const q = new URLSearchParams();
    if (search.input.value) q.set("q", search.input.value);
    if (type.input.value) q.set("endpoint_type", type.input.value);
    history.replaceState(null, "", `/ui/accounts${q.toString() ? "?" + q : ""}`);
  };
  search.input.addEventListener("input", () => (remember(), draw()));
  type.input.addEventListener("change", () => (remember(), load(true)));
  more.addEventListener("click", () => load(false));

  replace(main,
    h("div", { class: "title-row" },
      h("h1", {}, "Provider accounts"),
      h("a", { class: "button", href: "/ui/accounts/new" }, "Add provider account")),
    h("div", { class: "filters", role: "search" }, search.row, type.row),
    results, more);
  return load(true);
}
