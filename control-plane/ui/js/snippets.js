// Usage snippets for one endpoint: curl and Python `requests`, calling it through the gateway.
// The API key is a placeholder, $GATEHOUSE_API_KEY from the environment, never the signed-in
// key: a copied snippet is safe to paste into a ticket or a chat.
import { copyButton, field, h, replace } from "./dom.js";
import { gatewayUrl } from "./session.js";

function proxyUrl(account, endpoint, path) {
  const rest = path.replace(/^\/+/, "");
  return `${gatewayUrl()}/proxy-api/${encodeURIComponent(account)}/${encodeURIComponent(endpoint)}/${rest}`;
}

const shellQuote = (text) => `'${text.replaceAll("'", "'\\''")}'`;
const pyQuote = (text) => JSON.stringify(text);

function curlSnippet(url) {
  return `curl -sS ${shellQuote(url)} \\\n  -H "Authorization: Bearer $GATEHOUSE_API_KEY"`;
}

function pythonSnippet(url) {
  return [
    "import os",
    "",
    "import requests",
    "",
    "response = requests.get(",
    `    ${pyQuote(url)},`,
    '    headers={"Authorization": f"Bearer {os.environ[\'GATEHOUSE_API_KEY\']}"},',
    "    timeout=30,",
    ")",
    "print(response.status_code, response.text)",
  ].join("\n");
}

// The panel: an upstream path input and both snippets, each with a copy button.
export function usagePanel(account, endpoint) {
  const path = field("Upstream path", { value: "", placeholder: "e.g. v1/models", spellcheck: "false" }, {
    hint: "Appended to the endpoint's base URL. Set GATEHOUSE_API_KEY to an API key first.",
  });
  const curl = h("pre", { class: "snippet", "data-snippet": "curl", tabindex: 0 });
  const python = h("pre", { class: "snippet", "data-snippet": "python", tabindex: 0 });
  const draw = () => {
    const url = proxyUrl(account, endpoint, path.input.value.trim());
    replace(curl, h("code", {}, curlSnippet(url)));
    replace(python, h("code", {}, pythonSnippet(url)));
  };
  path.input.addEventListener("input", draw);
  draw();
  return h("section", { class: "usage", "aria-label": `Usage of ${endpoint}` },
    path.row,
    h("div", { class: "snippet-head" }, h("h4", {}, "curl"), copyButton("Copy curl", () => curl.textContent)),
    curl,
    h("div", { class: "snippet-head" }, h("h4", {}, "Python (requests)"), copyButton("Copy Python", () => python.textContent)),
    python);
}
