// "Add provider account" in three steps. Each step writes through the API as it is finished
// (the account at step 1, each endpoint at step 2, access at step 3), so the API's errors
// appear next to the field of the step at hand; what is created can be edited afterwards.
import { enc, patch, post, put } from "../api.js";
import { FieldErrors, errorLine, field, h, replace, submitting } from "../dom.js";
import { navigate } from "../router.js";
import { subjectList } from "../validate.js";
import { accountForm } from "./account_form.js";
import { collaboratorsEditor } from "./collaborators.js";
import { integrationForm } from "./integration_form.js";

const STEPS = ["Configure account", "Endpoints", "Access control"];

export function render(main) {
  const state = { account: null, endpoints: [] };
  const body = h("div");
  const steps = h("ol", { class: "steps" });
  const show = (index) => {
    replace(steps, STEPS.map((title, i) =>
      h("li", { "aria-current": i === index ? "step" : null, class: i < index ? "done" : null }, title)));
    [configure, endpoints, access][index]();
  };

  const configure = () => {
    const form = accountForm();
    const next = h("button", { type: "submit" }, "Next: endpoints");
    const el = h("form", { class: "card", "aria-label": STEPS[0] }, h("h2", {}, STEPS[0]), form.el, h("div", { class: "actions" }, next));
    el.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(next, form.errors, async () => {
        state.account = await post("/provider-accounts", form.read());
        show(1);
      });
    });
    replace(body, el);
    form.name.input.focus();
  };

  const endpoints = () => {
    const base = `/provider-accounts/${enc(state.account.name)}/integrations`;
    const list = h("ul", { class: "plain" }, state.endpoints.map((e) => h("li", {}, `${e.name} → ${e.base_url}`)));
    let form = integrationForm();
    const holder = h("div", {}, form.el);
    const add = h("button", { type: "submit" }, "Add endpoint");
    const next = h("button", { type: "button", class: "secondary", onclick: () => show(2) }, "Next: access control");
    const el = h("form", { class: "card", "aria-label": STEPS[1] },
      h("h2", {}, STEPS[1]),
      h("p", {}, `Endpoints of ${state.account.name}:`), list,
      holder, h("div", { class: "actions" }, add, next));
    el.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(add, form.errors, async () => {
        const created = await post(base, form.read());
        state.endpoints.push(created);
        list.append(h("li", {}, `${created.name} → ${created.base_url}`));
        form = integrationForm();
        replace(holder, form.el);
      });
    });
    replace(body, el);
  };

  const access = () => {
    const errors = new FieldErrors(errorLine());
    const collaborators = collaboratorsEditor();
    const perEndpoint = state.endpoints.map((e) => ({
      endpoint: e,
      field: errors.add(`endpoint:${e.name}`, field(`Authorized subjects of ${e.name}`, {
        value: e.authorized_subjects.join(", "),
        placeholder: "user:ada@example.com, team:ml",
        spellcheck: "false",
      })),
    }));
    const finish = h("button", { type: "submit" }, "Finish");
    const el = h("form", { class: "card", "aria-label": STEPS[2] },
      h("h2", {}, STEPS[2]), collaborators.el,
      perEndpoint.map((p) => p.field.row),
      errors.general, h("div", { class: "actions" }, finish));
    el.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(finish, errors, async () => {
        const name = enc(state.account.name);
        await put(`/provider-accounts/${name}/collaborators`, collaborators.read());
        for (const { endpoint, field: f } of perEndpoint) {
          try {
            await patch(`/provider-accounts/${name}/integrations/${enc(endpoint.name)}`, {
              authorized_subjects: subjectList(f.input.value),
            });
          } catch (err) {
            err.field = `endpoint:${endpoint.name}`;
            throw err;
          }
        }
        navigate(`/ui/accounts/${name}`);
      });
    });
    replace(body, el);
  };

  replace(main, h("h1", {}, "Add provider account"), steps, body);
  show(0);
}
