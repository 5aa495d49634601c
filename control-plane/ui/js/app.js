// The dashboard's entry point: sign-in gate, navigation and the page table.
import { all, setUnauthorizedHandler } from "./api.js";
import { h, replace } from "./dom.js";
import { navigate, route, start } from "./router.js";
import { apiKey, signOut } from "./session.js";

route("/ui/signin", () => import("./pages/signin.js"));
route("/ui/accounts", () => import("./pages/accounts.js"));
route("/ui/accounts/new", () => import("./pages/account_wizard.js"));
route("/ui/accounts/:account", () => import("./pages/account_detail.js"));
route("/ui/traces", () => import("./pages/traces.js"));
route("/ui/traces/:id", () => import("./pages/traces.js"));
route("/ui/keys", () => import("./pages/keys.js"));
route("/ui/admin", () => import("./pages/admin.js"));

const main = document.getElementById("main");
const nav = document.getElementById("nav");

// Admins see every user; anyone else sees only itself, never as an admin.
async function showAdminLink() {
  let admin = false;
  try {
    admin = (await all("/users")).some((user) => user.is_admin);
  } catch {
    admin = false;
  }
  document.getElementById("nav-admin").hidden = !admin;
}

let signedInShown = false;

async function draw(load, params, query) {
  const signedIn = Boolean(apiKey());
  if (!signedIn && location.pathname !== "/ui/signin") {
    navigate("/ui/signin", { replace: true });
    return;
  }
  nav.hidden = !signedIn;
  if (signedIn && !signedInShown) {
    signedInShown = true;
    showAdminLink();
  }
  for (const link of nav.querySelectorAll("a")) {
    const current = location.pathname.startsWith(link.getAttribute("href"));
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  replace(main, h("p", {}, "Loading…"));
  try {
    const page = await load();
    await page.render(main, params, query);
  } catch (err) {
    replace(main, h("h1", {}, "Something went wrong"), h("p", { class: "error", role: "alert" }, err.message));
  }
}

setUnauthorizedHandler(() => {
  signOut();
  signedInShown = false;
  navigate("/ui/signin", { replace: true });
});

document.getElementById("sign-out").addEventListener("click", () => {
  signOut();
  signedInShown = false;
  navigate("/ui/signin");
});

start(draw);
