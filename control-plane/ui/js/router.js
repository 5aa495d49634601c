// History-API routing under /ui/: the control plane answers index.html for every such path.
const routes = [];
let render = () => {};

// `pattern`: a path like "/ui/accounts/:name"; `load`: () => import(...) of the page module,
// whose `render(main, params, query)` draws it.
export function route(pattern, load) {
  const names = [];
  const regex = new RegExp(
    "^" + pattern.replace(/:(\w+)/g, (_, name) => (names.push(name), "([^/]+)")) + "/?$",
  );
  routes.push({ regex, names, load });
}

export function start(onRender) {
  render = onRender;
  window.addEventListener("popstate", show);
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[href^='/ui/']");
    if (!link || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(link.getAttribute("href"));
  });
  show();
}

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  show();
}

function show() {
  const path = location.pathname;
  for (const { regex, names, load } of routes) {
    const match = regex.exec(path);
    if (!match) continue;
    const params = Object.fromEntries(names.map((name, i) => [name, decodeURIComponent(match[i + 1])]));
    render(load, params, new URLSearchParams(location.search));
    return;
  }
  navigate("/ui/accounts", { replace: true });
}
