// Sign in with an API key: checked against the API, then kept in sessionStorage only.
import { request } from "../api.js";
import { FieldErrors, errorLine, field, h, replace, submitting } from "../dom.js";
import { navigate } from "../router.js";
import { signIn } from "../session.js";

export function render(main) {
  const errors = new FieldErrors(errorLine());
  const key = errors.add(
    "key",
    field("API key", { type: "password", name: "key", required: true, autocomplete: "off" }, {
      hint: "Starts with gh_. Kept in this browser tab only, until you sign out or close it.",
    }),
  );
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "card narrow", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    key.row, errors.general, button);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(button, errors, async () => {
      const value = key.input.value.trim();
      try {
        await request("GET", "/provider-accounts?page_size=1", undefined, { key: value });
      } catch (err) {
        if (err.status === 401) err.field = "key";
        throw err;
      }
      signIn(value);
      navigate("/ui/accounts");
    });
  });
  replace(main, form);
  key.input.focus();
}
