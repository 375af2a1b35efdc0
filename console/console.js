// The osbill console: a page over the platform API. It signs in through the platform's own
// /identity/authorize (authorization code with PKCE, the public client osbill-console), keeps
// its tokens in this tab's sessionStorage, and builds every page from API answers with DOM
// calls (never HTML strings), so nothing an account typed can run as code.

const KEY = "osbill.console";
const view = document.getElementById("view");
let config = null;
let me = null; // {iam_id, account: {id, name, kind, state}}

// ------------------------------------------------------------------ DOM

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

let notice = null; // what the last action did, shown once on the page it leads to

function show(title, ...kids) {
  document.title = title + " - osbill console";
  const said = notice;
  notice = null;
  view.replaceChildren(el("h1", {}, title),
                       said ? el("p", {class: "ok notice", role: "status"}, said) : null,
                       ...kids.flat(Infinity).filter(k => k !== null && k !== undefined &&
                                                          k !== false));
  view.focus({preventScroll: true});
}

function table(rows, cols, none) {
  if (!rows.length) return el("p", {class: "muted"}, none);
  return el("div", {class: "table-wrap"}, el("table", {},
    el("thead", {}, el("tr", {}, cols.map(c => el("th", {class: c.num ? "num" : null,
                                                         scope: "col"}, c.label)))),
    el("tbody", {}, rows.map(r => el("tr", {}, cols.map(c => {
      const v = c.value(r);
      return el("td", {class: c.num ? "num" : c.id ? "id" : null}, v ?? "–");
    }))))));
}

function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

// Only http(s) addresses from the API become links (never javascript: or data:).
function web(url) {
  try { return !!url && ["http:", "https:"].includes(new URL(url).protocol); }
  catch { return false; }
}

function failure(err) {
  return el("p", {class: "error", role: "alert"}, err.message || String(err));
}

// ------------------------------------------------------------------ sign-in (PKCE)

function b64url(bytes) {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomText(n) {
  return b64url(crypto.getRandomValues(new Uint8Array(n)));
}

function session() {
  try { return JSON.parse(sessionStorage.getItem(KEY + ".session")) || null; }
  catch { return null; }
}

function saveSession(t) {
  sessionStorage.setItem(KEY + ".session", JSON.stringify({
    access_token: t.access_token, refresh_token: t.refresh_token,
    expires_at: Date.now() + (t.expires_in || 3600) * 1000}));
}

async function signIn(switching) {
  const verifier = randomText(32);
  const challenge = b64url(await crypto.subtle.digest("SHA-256",
                                                      new TextEncoder().encode(verifier)));
  const state = randomText(16);
  sessionStorage.setItem(KEY + ".pending", JSON.stringify({verifier, state,
                                                          back: location.hash || "#/"}));
  const q = new URLSearchParams({response_type: "code", client_id: config.client_id,
                                 redirect_uri: config.redirect_uri, scope: "openid osbill",
                                 state, code_challenge: challenge,
                                 code_challenge_method: "S256"});
  if (switching) q.set("prompt", "login");
  location.assign(config.authorize_url + "?" + q);
}

async function tokenCall(form) {
  const r = await fetch(config.token_url, {method: "POST", body: new URLSearchParams(form),
    headers: {"Content-Type": "application/x-www-form-urlencoded"}});
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.error_description || j.error || "The sign-in failed.");
  return j;
}

// Back from /identity/authorize with ?code&state (or ?error): the code becomes tokens.
async function finishSignIn() {
  const q = new URLSearchParams(location.search);
  if (!q.has("code") && !q.has("error")) return false;
  const pending = JSON.parse(sessionStorage.getItem(KEY + ".pending") || "null");
  sessionStorage.removeItem(KEY + ".pending");
  history.replaceState(null, "", location.pathname + (pending ? pending.back : "#/"));
  if (q.has("error")) throw new Error("The sign-in did not complete: " +
                                      (q.get("error_description") || q.get("error")));
  if (!pending || pending.state !== q.get("state"))
    throw new Error("This sign-in was not started here; start it again.");
  saveSession(await tokenCall({grant_type: "authorization_code", code: q.get("code"),
                               redirect_uri: config.redirect_uri, client_id: config.client_id,
                               code_verifier: pending.verifier}));
  return true;
}

async function refresh() {
  const s = session();
  if (!s || !s.refresh_token) return false;
  try {
    saveSession(await tokenCall({grant_type: "refresh_token", refresh_token: s.refresh_token,
                                 client_id: config.client_id}));
    return true;
  } catch {
    sessionStorage.removeItem(KEY + ".session");
    return false;
  }
}

async function signOut(switching) {
  const s = session();
  sessionStorage.removeItem(KEY + ".session");
  // both tokens: the refresh token's family and the access token (by its id)
  for (const [token, hint] of [[s && s.refresh_token, "refresh_token"],
                               [s && s.access_token, "access_token"]])
    if (token)
      await fetch(config.revoke_url, {method: "POST", body: new URLSearchParams({
        token, token_type_hint: hint, client_id: config.client_id})}).catch(() => {});
  // ends the platform's sign-in session too, so that the next sign-in asks again
  await fetch(config.logout_url, {method: "POST", credentials: "same-origin"}).catch(() => {});
  me = null;
  if (switching) await signIn(true);
  else { location.hash = "#/"; landing("You are signed out."); }
}

// ------------------------------------------------------------------ the API

class APIError extends Error {
  constructor(status, body) {
    const errs = (body && body.errors) || [];
    super(errs.map(e => e.message).join(" ") || body?.description ||
          `The platform answered ${status}.`);
    this.status = status;
    this.errors = errs;
  }
}

async function api(method, path, body, raw) {
  for (let attempt = 0; attempt < 2; attempt++) {
    let s = session();
    if (s && s.expires_at < Date.now() + 30000 && await refresh()) s = session();
    if (!s) throw new APIError(401, {errors: [{message: "You are signed out."}]});
    const r = await fetch(path, {method, headers: Object.assign(
      {Authorization: "Bearer " + s.access_token},
      body ? {"Content-Type": "application/json"} : {}),
      body: body ? JSON.stringify(body) : undefined});
    if (r.status === 401 && attempt === 0 && await refresh()) continue;
    if (raw && r.ok) return r;
    const j = r.status === 204 ? null : await r.json().catch(() => null);
    if (!r.ok) throw new APIError(r.status, j);
    return j;
  }
}

// A form's refusal: each error shown next to the field it names (target), the rest on top.
function showErrors(form, err) {
  for (const old of form.querySelectorAll(".field-error, .form-error")) old.remove();
  for (const f of form.querySelectorAll("[aria-invalid]")) f.removeAttribute("aria-invalid");
  const loose = [];
  for (const e of (err.errors && err.errors.length ? err.errors : [{message: err.message}])) {
    // the field of that name, else one that takes a family of targets (data-targets="pricing.")
    const field = e.target && (form.querySelector(`[name="${CSS.escape(e.target)}"]`) ||
      [...form.querySelectorAll("[data-targets]")].find(f =>
        f.dataset.targets.split(" ").some(t => e.target.startsWith(t))));
    if (field) {
      const id = field.id + "-error";
      field.setAttribute("aria-invalid", "true");
      field.setAttribute("aria-describedby", id);
      field.after(el("p", {class: "field-error", id}, e.message));
    } else loose.push(e.message);
  }
  if (loose.length)
    form.prepend(el("p", {class: "error form-error", role: "alert"}, loose.join(" ")));
}

// ------------------------------------------------------------------ pages

const pages = [];
function page(pattern, kinds, label, fn) {
  pages.push({re: new RegExp("^" + pattern + "$"), kinds, label, path: pattern, fn});
}

function nav() {
  const here = location.hash.split("?")[0] || "#/";
  const links = pages.filter(p => p.label && (!p.kinds || p.kinds.includes(me.account.kind)));
  document.getElementById("nav").replaceChildren(...links.map(p => {
    const href = "#" + p.path;
    return el("a", {href, "aria-current": here === href || here.startsWith(href + "/")
                                          ? "page" : null}, p.label);
  }));
  document.getElementById("who").replaceChildren(
    el("span", {class: "acct"}, `${me.account.name} (${me.account.kind})`),
    el("button", {type: "button", onclick: () => signOut(true)}, "Switch account"),
    el("button", {type: "button", onclick: () => signOut(false)}, "Sign out"));
}

function landing(message) {
  document.getElementById("nav").replaceChildren();
  document.getElementById("who").replaceChildren();
  document.title = "Sign in - osbill console";
  view.replaceChildren(el("div", {class: "landing card"},
    el("h1", {}, "The osbill console"),
    el("p", {}, message || "Providers, consumers and the operator sign in with their " +
                           "platform account."),
    el("button", {type: "button", onclick: () => signIn(false)}, "Sign in")));
}

page("/", null, "Home", async () => {
  const k = me.account.kind;
  const links = {
    consumer: [["#/catalog", "Browse the catalog"], ["#/instances", "Your instances"],
               ["#/usage", "Usage this month"], ["#/invoices", "Invoices"],
               ["#/cases", "Support cases"]],
    provider: [["#/offerings", "Your offerings"], ["#/statements", "Revenue statements"],
               ["#/cases", "Support cases"]],
    operator: [["#/approvals", "Approvals"], ["#/accounts", "Accounts"],
               ["#/billing", "Closing a month"], ["#/cases", "Support cases"]]}[k] || [];
  show("Welcome",
    el("div", {class: "card"}, el("dl", {class: "facts"},
      el("dt", {}, "Account"), el("dd", {}, me.account.name),
      el("dt", {}, "Kind"), el("dd", {}, k),
      el("dt", {}, "Account ID"), el("dd", {class: "id"}, me.account.id),
      el("dt", {}, "You"), el("dd", {class: "id"}, me.iam_id))),
    el("div", {class: "actions"}, links.map(([h, t]) => el("a", {class: "button", href: h}, t))));
});

page("/catalog", null, "Catalog", async (params) => {
  const q = params.get("q") || "";
  const form = el("form", {class: "inline", role: "search", onsubmit: (e) => {
    e.preventDefault();
    location.hash = "#/catalog?q=" + encodeURIComponent(form.elements.q.value.trim());
  }}, el("div", {}, el("label", {for: "q"}, "Search"),
         el("input", {id: "q", name: "q", type: "search", value: q,
                      placeholder: "name, description or tag"})),
     el("button", {type: "submit"}, "Search"));
  const r = await api("GET", "/v1/catalog" + (q ? "?q=" + encodeURIComponent(q) : ""));
  const cards = r.offerings.map(o => el("article", {class: "card"},
    el("h3", {}, o.display_name || o.name),
    el("p", {class: "muted"}, o.name),
    el("p", {}, o.short_description || ""),
    el("ul", {class: "tags"}, (o.tags || []).map(t => el("li", {}, t))),
    el("p", {}, "Plans: ", (o.plans || []).map(p => p.name).join(", ") || "none yet"),
    me.account.kind === "operator" ? null : el("div", {class: "actions"},
      (o.plans || []).filter(p => (p.regions || []).length).map(p =>
        el("a", {class: "button secondary", href: `#/create/${o.id}/${p.id}`},
           `Create ${p.name}`))),
    web(o.support && o.support.url) ? el("p", {}, el("a", {href: o.support.url, rel: "noopener"},
                                                "The provider's support")) : null));
  show("Catalog", form,
       el("p", {class: "muted"}, `${r.total_count} offering${r.total_count === 1 ? "" : "s"}` +
                                 (q ? ` matching “${q}”` : "")),
       cards.length ? el("div", {class: "grid"}, cards)
                    : el("p", {class: "muted"}, "Nothing matches."));
});

page("/instances", ["consumer", "provider"], "Instances", async () => {
  const r = await api("GET", "/v2/resource_instances?limit=100");
  show("Instances", table(r.resources, [
    {label: "Name", value: i => el("a", {href: "#/instances/" + i.guid}, i.name)},
    {label: "State", value: i => el("span", {class: "state"}, i.state)},
    {label: "Region", value: i => i.region_id},
    {label: "Plan", id: true, value: i => i.resource_plan_id},
    {label: "Created", value: i => when(i.created_at)}], "No instances yet."));
});

page("/instances/([^/]+)", ["consumer", "provider"], null, async (params, id) => {
  const i = await api("GET", "/v2/resource_instances/" + encodeURIComponent(id));
  const keys = await api("GET", "/v2/resource_keys?source=" + encodeURIComponent(i.guid))
    .catch(() => ({resources: []}));
  show(i.name,
    el("div", {class: "card"}, el("dl", {class: "facts"},
      el("dt", {}, "State"), el("dd", {}, el("span", {class: "state"}, i.state)),
      el("dt", {}, "Region"), el("dd", {}, i.region_id),
      el("dt", {}, "Plan"), el("dd", {class: "id"}, i.resource_plan_id),
      el("dt", {}, "GUID"), el("dd", {class: "id"}, i.guid),
      el("dt", {}, "CRN"), el("dd", {class: "id"}, i.crn),
      el("dt", {}, "Created"), el("dd", {}, when(i.created_at)),
      web(i.dashboard_url) ? el("dt", {}, "Dashboard") : null,
      web(i.dashboard_url) ? el("dd", {}, el("a", {href: i.dashboard_url, rel: "noopener"},
                                         "Open the dashboard")) : null)),
    el("h2", {}, "Keys"),
    table(keys.resources || [], [
      {label: "Name", value: k => k.name},
      {label: "State", value: k => k.state},
      {label: "Created", value: k => when(k.created_at)}], "No keys."),
    i.state === "active" ? apiForm("A new key", [
      field("key-name", "Name", {name: "name", value: "app-key"})], "Create the key",
      (f) => api("POST", "/v2/resource_keys", {name: val(f.name), source: i.guid}),
      (k, form) => form.replaceWith(el("div", {class: "card"}, el("h2", {}, `Key ${k.name}`),
        el("p", {class: "error", role: "alert"},
           "The credentials, for your application (also shown by the key's API):"),
        el("pre", {class: "id", id: "key-credentials"},
           JSON.stringify(k.credentials, null, 2))))) : null,
    ["active", "inactive", "failed"].includes(i.state) ? el("div", {class: "actions"},
      button("Delete this instance", async () => {
        if (keys.resources && keys.resources.some(k => k.state !== "removed"))
          await api("DELETE", `/v2/resource_instances/${i.guid}?recursive=true`);
        else await api("DELETE", `/v2/resource_instances/${i.guid}`);
        location.hash = "#/instances";
      }, true)) : null);
});

// An instance of a plan: the form of the plan's parameters comes from its JSON schema.
page("/create/([^/]+)/([^/]+)", ["consumer", "provider"], null, async (params, oid, pid) => {
  const cat = await api("GET", "/v1/catalog?limit=500");
  const o = cat.offerings.find(x => x.id === oid);
  const p = o && (o.plans || []).find(x => x.id === pid);
  if (!p) throw new Error("No such plan in the catalog you see.");
  const schema = p.schemas && p.schemas.service_instance && p.schemas.service_instance.create &&
                 p.schemas.service_instance.create.parameters;
  const props = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  const inputs = Object.entries(props).map(([k, sc]) => {
    const id = "param-" + k, name = "parameters." + k;
    const label = (sc.title || k) + (required.has(k) ? "" : " (optional)");
    const hint = sc.description || null;
    if (sc.enum)
      return field(id, label, {tag: "select", name, "data-kind": sc.type || "string",
        options: [["", "–"], ...sc.enum.map(v => [String(v), String(v)])],
        value: sc.default !== undefined ? String(sc.default) : ""}, hint);
    if (sc.type === "boolean")
      return field(id, label, {tag: "select", name, "data-kind": "boolean",
        options: [["", "–"], ["true", "yes"], ["false", "no"]],
        value: sc.default !== undefined ? String(sc.default) : ""}, hint);
    const numeric = sc.type === "integer" || sc.type === "number";
    return field(id, label, {name, "data-kind": sc.type || "string",
      type: numeric ? "number" : "text", step: sc.type === "integer" ? "1" : numeric ? "any" : null,
      min: sc.minimum ?? null, max: sc.maximum ?? null, maxlength: sc.maxLength ?? null,
      value: sc.default !== undefined ? String(sc.default) : ""}, hint);
  });
  show(`A new ${o.display_name || o.name} instance, plan ${p.name}`,
    apiForm(null, [
      field("name", "Name", {required: true}),
      field("target", "Region", {tag: "select", options: p.regions.map(r => [r, r]),
                                 value: p.regions[0]}),
      inputs.length ? [el("h2", {}, "Parameters"), inputs] : null],
      "Create the instance", (f, form) => {
        const parameters = {};
        for (const input of form.querySelectorAll("[name^='parameters.']")) {
          if (input.value === "") continue;
          const k = input.name.slice("parameters.".length), kind = input.dataset.kind;
          parameters[k] = kind === "integer" || kind === "number" ? Number(input.value)
                        : kind === "boolean" ? input.value === "true" : input.value;
        }
        const body = {name: val(f.name), target: f.target.value, resource_plan_id: p.id};
        if (Object.keys(parameters).length) body.parameters = parameters;
        return api("POST", "/v2/resource_instances", body);
      }, (i) => { location.hash = "#/instances/" + i.guid; }));
});

// This month's usage: one chart per measure, a bar per instance, from the live estimate.
page("/usage", ["consumer"], "Usage", async () => {
  const month = new Date().toISOString().slice(0, 7);
  const u = await api("GET", `/v4/accounts/${encodeURIComponent(me.account.id)}/usage/${month}`);
  const names = new Map((await api("GET", "/v2/resource_instances?limit=100")).resources
                          .map(i => [i.guid, i.name]));
  const byMetric = new Map();
  for (const l of u.lines || []) {
    if (!byMetric.has(l.metric)) byMetric.set(l.metric, []);
    byMetric.get(l.metric).push(l);
  }
  const charts = [...byMetric].map(([metric, lines]) => el("section", {class: "card"},
    el("h2", {}, metric), chart(lines.map(l => ({
      label: names.get(l.resource_instance_id) || l.resource_instance_id.slice(0, 8),
      value: Number(l.quantity), text: `${l.quantity} (${l.cost} ${u.currency_code})`}))),
    table(lines, [
      {label: "Instance", value: l => names.get(l.resource_instance_id) ||
                                      l.resource_instance_id},
      {label: "Quantity", num: true, value: l => l.quantity},
      {label: "Cost", num: true, value: l => `${l.cost} ${u.currency_code}`}], "")));
  show(`Usage in ${month}`,
    el("p", {}, `Estimated charges so far: `, el("strong", {id: "usage-total"},
                                                 `${u.billable_cost} ${u.currency_code}`),
       u.estimate ? " (an estimate until the month is closed)" : ""),
    charts.length ? charts : el("p", {class: "muted"}, "No usage this month yet."));
});

// A horizontal bar chart in plain SVG: one bar per item, its text beside it.
function chart(items) {
  const NS = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const max = Math.max(1, ...items.map(i => i.value));
  const row = 26, labelW = 80, barW = 150;
  const g = svg("svg", {viewBox: `0 0 ${labelW + barW + 130} ${items.length * row + 4}`,
                        role: "img", class: "chart",
                        "aria-label": items.map(i => `${i.label}: ${i.text}`).join("; ")});
  items.forEach((it, n) => {
    const y = n * row + 4;
    const label = it.label.length > 11 ? it.label.slice(0, 10) + "…" : it.label;
    g.append(svg("text", {x: 0, y: y + 16, class: "chart-label"}, label),
             svg("rect", {x: labelW, y, height: row - 8,
                          width: Math.max(1, Math.round(barW * it.value / max)),
                          class: "chart-bar"}),
             svg("text", {x: labelW + Math.round(barW * it.value / max) + 6, y: y + 16,
                          class: "chart-value"}, it.text));
  });
  return g;
}

page("/invoices", ["consumer", "provider", "operator"], "Invoices", async () => {
  const r = await api("GET", "/v1/invoices?limit=100");
  show("Invoices", table(r.resources, [
    {label: "Number", num: true, value: v => el("a", {href: "#/invoices/" + v.id},
                                                String(v.number))},
    {label: "Month", value: v => v.month},
    {label: "Kind", value: v => v.kind},
    {label: "State", value: v => el("span", {class: "state"}, v.state)},
    {label: "Total", num: true, value: v => `${v.total} ${v.currency}`},
    {label: "Issued", value: v => when(v.issued_at)}], "No invoices yet."));
});

page("/invoices/([^/]+)", ["consumer", "provider", "operator"], null, async (params, id) => {
  const v = await api("GET", "/v1/invoices/" + encodeURIComponent(id));
  const download = async () => {
    const r = await api("GET", `/v1/invoices/${encodeURIComponent(id)}?format=csv`, null, true);
    const url = URL.createObjectURL(await r.blob());
    const a = el("a", {href: url, download: `invoice-${v.number}.csv`});
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  };
  show(`Invoice ${v.number}`,
    el("div", {class: "card"}, el("dl", {class: "facts"},
      el("dt", {}, "Month"), el("dd", {}, v.month),
      el("dt", {}, "Account"), el("dd", {class: "id"}, v.account_id),
      el("dt", {}, "State"), el("dd", {}, v.state),
      el("dt", {}, "Issued"), el("dd", {}, when(v.issued_at)),
      el("dt", {}, "Total"), el("dd", {}, el("strong", {}, `${v.total} ${v.currency}`)))),
    el("div", {class: "actions"},
      el("button", {type: "button", onclick: download}, "Download CSV"),
      el("button", {type: "button", class: "secondary", onclick: () => print()}, "Print")),
    table(v.lines || [], [
      {label: "Instance", id: true, value: l => l.resource_instance_id},
      {label: "Metric", value: l => l.metric},
      {label: "Quantity", num: true, value: l => l.quantity},
      {label: "Cost", num: true, value: l => l.cost}], "No lines."));
});

page("/cases", null, "Support", async () => {
  const r = await api("GET", "/v1/support/cases?limit=100");
  let form = null;
  if (me.account.kind !== "operator") {
    const inst = me.account.kind === "consumer"
      ? (await api("GET", "/v2/resource_instances?limit=100")).resources : [];
    form = el("form", {class: "card", novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      const f = form.elements;
      const body = {severity: Number(f.severity.value), subject: f.subject.value,
                    description: f.description.value};
      if (f.instance_id && f.instance_id.value) body.instance_id = f.instance_id.value;
      try {
        const c = await api("POST", "/v1/support/cases", body);
        location.hash = "#/cases/" + c.id;
      } catch (err) { showErrors(form, err); }
    }},
      el("h2", {}, "Open a case"),
      inst.length ? [el("label", {for: "case-instance"}, "About"),
                     el("select", {id: "case-instance", name: "instance_id"},
                        el("option", {value: ""}, "The platform (billing, my account)"),
                        inst.map(i => el("option", {value: i.guid}, i.name)))] : null,
      el("label", {for: "case-severity"}, "Severity"),
      el("select", {id: "case-severity", name: "severity"},
         [["1", "1: critical, nothing works"], ["2", "2: high"], ["3", "3: medium"],
          ["4", "4: a question"]].map(([v, t]) => el("option", {value: v,
                                                               selected: v === "3"}, t))),
      el("label", {for: "case-subject"}, "Subject"),
      el("input", {id: "case-subject", name: "subject", maxlength: "200"}),
      el("label", {for: "case-description"}, "Description"),
      el("textarea", {id: "case-description", name: "description", rows: "4"}),
      el("div", {class: "actions"}, el("button", {type: "submit"}, "Open the case")));
  }
  show("Support cases", table(r.resources, [
    {label: "Number", num: true, value: c => el("a", {href: "#/cases/" + c.id},
                                                String(c.number))},
    {label: "Subject", value: c => c.subject},
    {label: "Severity", num: true, value: c => String(c.severity)},
    {label: "Status", value: c => el("span", {class: "state"}, c.status)},
    {label: "Routed to", value: c => c.routed_to},
    {label: "First response", value: c => c.first_response.missed ? "missed"
                                          : c.first_response.responded_at ? "answered" : "–"},
    {label: "Updated", value: c => when(c.updated_at)}], "No cases."), form);
});

page("/cases/([^/]+)", null, null, async (params, id) => {
  const c = await api("GET", "/v1/support/cases/" + encodeURIComponent(id));
  const form = el("form", {class: "card", novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const body = {};
    if (form.elements.comment.value) body.comment = form.elements.comment.value;
    if (form.elements.status.value) body.status = form.elements.status.value;
    try {
      await api("POST", `/v1/support/cases/${encodeURIComponent(id)}/updates`, body);
      route();
    } catch (err) { showErrors(form, err); }
  }},
    el("h2", {}, "Add an update"),
    el("label", {for: "update-comment"}, "Comment"),
    el("textarea", {id: "update-comment", name: "comment", rows: "3"}),
    el("label", {for: "update-status"}, "Status"),
    el("select", {id: "update-status", name: "status"}, el("option", {value: ""}, "unchanged"),
       ["in_progress", "waiting_on_client", "resolved", "closed"].map(s =>
         el("option", {value: s}, s.replace(/_/g, " ")))),
    el("div", {class: "actions"}, el("button", {type: "submit"}, "Send")));
  const ps = c.provider_support;
  show(`Case ${c.number}: ${c.subject}`,
    el("div", {class: "card"}, el("dl", {class: "facts"},
      el("dt", {}, "Status"), el("dd", {}, el("span", {class: "state"}, c.status)),
      el("dt", {}, "Severity"), el("dd", {}, String(c.severity)),
      el("dt", {}, "Routed to"), el("dd", {}, c.routed_to),
      el("dt", {}, "First response due"), el("dd", {}, when(c.first_response.due_at) +
                                                    (c.first_response.missed ? " (missed)" : "")),
      web(ps && ps.url) ? el("dt", {}, "The provider's support") : null,
      web(ps && ps.url) ? el("dd", {}, el("a", {href: ps.url, rel: "noopener"}, ps.url))
                        : null)),
    el("h2", {}, "Updates"),
    (c.updates || []).map(u => el("div", {class: "card"},
      el("p", {class: "muted"}, `#${u.seq} · ${when(u.created_at)} · ${u.side}` +
                                (u.status_to ? ` · ${u.status_from ? u.status_from + " → " : ""}` +
                                               u.status_to : "")),
      u.comment ? el("p", {}, u.comment) : null)),
    c.status === "closed" ? el("p", {class: "muted"}, "The case is closed.") : form);
});

page("/offerings", ["provider"], "Offerings", async () => {
  const r = await api("GET", "/v1/offerings");
  show("Offerings", me.account.kind === "provider"
         ? el("div", {class: "actions"}, el("a", {class: "button", href: "#/offerings/new"},
                                                 "A new offering")) : null,
       table(r.offerings || [], [
    {label: "Name", value: o => el("a", {href: `#/offerings/${o.id}/step/1`},
                                       o.display_name || o.name)},
    {label: "Service", value: o => o.name},
    {label: "Visibility", value: o => el("span", {class: "state"}, o.visibility)},
    {label: "Steps done", num: true,
     value: o => o.steps ? `${o.steps.filter(s => s.complete).length} of ${o.steps.length}`
                         : "–"}], "No offerings yet."));
});

// ------------------------------------------------------------------ the provider's wizard

// A labelled input; name is the API field it sets (and the target its errors name).
function field(id, label, attrs, hint) {
  const tag = attrs && attrs.tag === "textarea" ? "textarea"
            : attrs && attrs.tag === "select" ? "select" : "input";
  const a = Object.assign({id, name: id}, attrs || {});
  delete a.tag;
  const opts = a.options;
  delete a.options;
  const input = el(tag, a, opts ? opts.map(([v, t]) => el("option", {value: v,
                                                                     selected: v === a.value},
                                                          t)) : null);
  if (tag === "textarea" && a.value) input.value = a.value;
  return [el("label", {for: id}, label), hint ? el("p", {class: "muted"}, hint) : null, input];
}

// A form that calls the API on submit; then() runs after success (default: reload the page).
function apiForm(title, kids, submitLabel, send, then) {
  const form = el("form", {class: "card", novalidate: true});
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    for (const n of view.querySelectorAll("p.notice")) n.remove(); // the last action's
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const r = await send(form.elements, form);
      if (then) await then(r, form);
      else {
        notice = "Saved.";
        route();
      }
    } catch (err) {
      showErrors(form, err);
    } finally {
      button.disabled = false;
    }
  });
  form.append(title ? el("h2", {}, title) : "", ...kids.flat(Infinity).filter(Boolean),
              el("div", {class: "actions"}, el("button", {type: "submit"}, submitLabel)));
  return form;
}

function button(label, onclick, secondary) {
  return el("button", {type: "button", class: secondary ? "secondary" : null,
                       onclick: async (e) => {
    e.target.disabled = true;
    try { await onclick(); } catch (err) { e.target.after(failure(err)); }
    finally { e.target.disabled = false; }
  }}, label);
}

function val(f) { return f.value.trim() || undefined; }

function stepNav(o, n) {
  return el("nav", {class: "steps", "aria-label": "Onboarding steps"}, el("ol", {},
    o.steps.map(st => el("li", {class: st.complete ? "done" : null},
      el("a", {href: `#/offerings/${o.id}/step/${st.step}`,
               "aria-current": st.step === n ? "step" : null},
         `${st.complete ? "✓" : st.step + "."} ${st.title}`)))));
}

function missing(st) {
  return st.complete ? el("p", {class: "ok"}, "This step is complete.")
    : el("p", {class: "muted"}, "Still missing: ", st.missing.join(", "));
}

page("/offerings/new", ["provider"], null, async () => {
  show("A new offering", apiForm(null, [
    field("name", "Service name", {required: true, placeholder: "my-service"},
          "Lowercase letters, digits and hyphens; the programmatic name consumers use."),
    field("display_name", "Display name", {required: true}),
    field("id", "OSB service ID (optional)", {},
          "Your broker's service id, if its catalog has one already; else one is made.")],
    "Create the offering",
    (f) => api("POST", "/v1/offerings", {name: val(f.name), display_name: val(f.display_name),
                                         id: val(f.id)}),
    (o) => { location.hash = `#/offerings/${o.id}/step/1`; }));
});

page("/offerings/([^/]+)", ["provider", "operator"], null, async (params, id) => {
  location.replace(`#/offerings/${encodeURIComponent(id)}/step/1`);
});

page("/offerings/([^/]+)/step/([1-6])", ["provider", "operator"], null, async (params, id, n) => {
  n = Number(n);
  const base = "/v1/offerings/" + encodeURIComponent(id);
  const o = await api("GET", base);
  const st = o.steps.find(x => x.step === n);
  const next = n < 6 ? el("a", {class: "button secondary",
                                href: `#/offerings/${o.id}/step/${n + 1}`}, "Next step") : null;
  const body = await wizardStep(n, o, base);
  show(`${o.display_name || o.name}: ${st.title}`,
       el("p", {class: "muted"}, `${o.name} · ${o.visibility}` +
                                 (o.publication && o.publication !== "none"
                                  ? ` · publication ${o.publication}` : "")),
       stepNav(o, n), missing(st), body, el("div", {class: "actions"}, next));
});

async function wizardStep(n, o, base) {
  const sup = o.support || {}, tg = sup.severity_targets || {};
  const bullets = (o.listing && o.listing.bullets) || [];
  if (n === 1) {
    const rows = [0, 1, 2].map(i => [
      field(`listing.bullets[${i}].title`, `Highlight ${i + 1}`,
            {value: bullets[i] ? bullets[i].title : ""}),
      field(`listing.bullets[${i}].description`, `Highlight ${i + 1}, described`,
            {value: bullets[i] ? bullets[i].description : ""})]);
    const review = (o.listing_review || {}).state || "draft";
    return [apiForm("Documentation and marketing listing", [
      field("documentation_url", "Documentation URL", {type: "url",
                                                       value: o.documentation_url || ""}),
      rows], "Save the listing", (f) => {
        const b = [0, 1, 2].map(i => ({title: val(f[`listing.bullets[${i}].title`]),
                                       description: val(f[`listing.bullets[${i}].description`])}))
          .filter(x => x.title || x.description);
        return api("PATCH", base, {documentation_url: val(f.documentation_url),
                                   listing: {bullets: b}});
      }),
      el("div", {class: "card"}, el("h2", {}, "The listing's review"),
         el("p", {}, `State: ${review.replace(/_/g, " ")}.`),
         me.account.kind === "provider" && review !== "approved" && review !== "in_review"
           ? button("Submit the listing for review", async () => {
               await api("POST", base + "/listing/review", {action: "submit"}); route(); })
           : null,
         me.account.kind === "operator" && review === "in_review"
           ? button("Approve the listing", async () => {
               await api("POST", base + "/listing/review", {action: "approve"}); route(); })
           : null)];
  }
  if (n === 2) {
    const plans = (await api("GET", base + "/plans")).plans;
    const meta = apiForm("The offering", [
      field("display_name", "Display name", {value: o.display_name || ""}),
      field("short_description", "Short description", {value: o.short_description || "",
                                                       maxlength: "200"}),
      field("long_description", "Long description", {tag: "textarea", rows: "4",
                                                     value: o.long_description || ""}),
      field("icon_url", "Icon URL", {type: "url", value: o.icon_url || ""}),
      field("terms_url", "Terms URL", {type: "url", value: o.terms_url || ""}),
      field("support.url", "Support page", {type: "url", value: sup.url || ""}),
      field("support.email", "Support email", {type: "email", value: sup.email || ""}),
      field("support.hours", "Support hours", {value: sup.hours || "", placeholder: "24x7"}),
      ["1", "2", "3", "4"].map(k => field(`support.severity_targets.${k}`,
        `First response for severity ${k} (minutes)`,
        {type: "number", min: "1", value: tg[k] || "",
         "data-targets": k === "1" ? "support.severity_targets" : null}))],
      "Save", (f) => {
        const t = {};
        for (const k of ["1", "2", "3", "4"]) {
          const v = val(f[`support.severity_targets.${k}`]);
          if (v) t[k] = Number(v);
        }
        const support = {url: val(f["support.url"]), email: val(f["support.email"]),
                         hours: val(f["support.hours"])};
        if (Object.keys(t).length) support.severity_targets = t;
        return api("PATCH", base, {display_name: val(f.display_name),
          short_description: val(f.short_description), long_description: val(f.long_description),
          icon_url: val(f.icon_url), terms_url: val(f.terms_url), support});
      });
    const planRows = table(plans, [
      {label: "Plan", value: p => p.name},
      {label: "Kind", value: p => p.kind},
      {label: "State", value: p => p.state},
      {label: "Prices", value: p => pricesText(p)},
      {label: "Preview", value: p => p.kind === "lite" ? "free" : preview(base, p)}],
      "No plans yet.");
    const planForm = apiForm("Add a plan", [
      field("plan-name", "Name", {name: "name", placeholder: "standard"}),
      field("plan-id", "OSB plan ID (optional)", {name: "id"}),
      field("plan-kind", "Kind", {tag: "select", name: "kind", value: "metered",
        options: [["metered", "metered: priced by a metric"],
                  ["subscription", "subscription: a monthly fee"], ["lite", "lite: free"]]}),
      field("plan-display", "Display name", {name: "display_name"}),
      field("plan-description", "Description", {name: "description"}),
      field("plan-metric", "Metric (metered plans)", {name: "metrics", value: "API_CALLS",
                                                       "data-targets": "metrics"}),
      field("plan-unit", "Unit", {name: "unit", value: "API call"}),
      field("plan-per", "Priced per", {name: "charge_unit_quantity", value: "1000"}),
      field("plan-price", "Price in USD", {name: "price", value: "0.50",
                                           "data-targets": "pricing"},
            "A subscription's price is its monthly fee.")],
      "Add the plan", (f) => {
        const kind = f.kind.value, metric = val(f.metrics);
        const body = {id: val(f.id), name: val(f.name), kind, display_name: val(f.display_name),
                      description: val(f.description)};
        if (kind === "metered" && metric)
          body.metrics = [{id: metric, display_name: metric, unit: val(f.unit),
                           metering_model: "standard_add",
                           charge_unit_quantity: val(f.charge_unit_quantity) || "1"}];
        if (kind !== "lite")
          body.pricing = {[kind === "subscription" ? "MONTHLY_FEE" : metric]:
                          {USD: {model: "linear", tiers: [{up_to: null, price: val(f.price)}]}}};
        return api("POST", base + "/plans", body);
      });
    let iam;
    if (o.iam) {
      iam = el("div", {class: "card"}, el("h2", {}, "IAM"), el("dl", {class: "facts"},
        el("dt", {}, "Service ID"), el("dd", {class: "id"}, o.iam.service_id),
        el("dt", {}, "Dashboard client"), el("dd", {class: "id"}, o.iam.client_id)));
    } else if (me.account.kind === "provider") {
      iam = el("div", {class: "card"}, el("h2", {}, "IAM"),
        el("p", {}, "Enabling IAM makes the offering's service ID (its broker's identity " +
                    "towards the platform), an API key for it, and the dashboard's OAuth " +
                    "client."),
        button("Enable IAM", async () => {
          const r = await api("POST", base + "/iam");
          iam.replaceChildren(el("h2", {}, "IAM enabled"),
            el("p", {class: "error", role: "alert"}, "Keep these now: they are shown only once."),
            el("dl", {class: "facts"},
              el("dt", {}, "Service ID"), el("dd", {class: "id"}, r.service_id.iam_id),
              el("dt", {}, "Its API key"), el("dd", {class: "id", id: "iam-apikey"},
                                                r.apikey.apikey),
              el("dt", {}, "Dashboard client"), el("dd", {class: "id", id: "iam-client-id"},
                                                   r.client.client_id),
              el("dt", {}, "Client secret"), el("dd", {class: "id", id: "iam-client-secret"},
                                                r.client.client_secret)),
            el("a", {class: "button secondary", href: location.hash,
                     onclick: () => setTimeout(route)}, "Done"));
        }));
    }
    // after launch: a published plan's prices change from a coming month on, or it is
    // deprecated (no new instances; the running ones stay)
    const live = plans.filter(p => p.published && p.state !== "deprecated" && p.kind !== "lite");
    const nextMonth = (() => {
      const d = new Date();
      return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)).toISOString()
        .slice(0, 7);
    })();
    const later = me.account.kind === "provider" && live.length ? [
      apiForm("A scheduled price change", [
        field("change-plan", "Plan", {tag: "select", name: "plan",
                                      options: live.map(p => [p.id, p.name])}),
        field("change-month", "From the month", {type: "month", name: "effective_month",
                                                 value: nextMonth}),
        field("change-price", "New price in USD", {name: "price", "data-targets": "pricing"},
              "Months already begun keep their prices.")],
        "Schedule the change", (f) => {
          const p = live.find(x => x.id === f.plan.value);
          const metric = p.kind === "subscription" ? "MONTHLY_FEE" : (p.metrics || [])[0].id;
          return api("PUT", `${base}/plans/${p.id}/pricing`, {effective_month:
            f.effective_month.value, pricing: {[metric]: {USD: {model: "linear",
              tiers: [{up_to: null, price: val(f.price)}]}}}});
        }),
      el("div", {class: "card"}, el("h2", {}, "Deprecating a plan"),
        el("p", {}, "No new instances of a deprecated plan; the running ones keep running."),
        el("div", {class: "actions"}, live.map(p => button(`Deprecate ${p.name}`, async () => {
          await api("POST", `${base}/plans/${p.id}/deprecate`, {}); route(); }, true))))] : null;
    return [meta, el("h2", {}, "Plans and pricing"), planRows,
            me.account.kind === "provider" ? planForm : null, later, iam];
  }
  if (n === 3) {
    const [brokers, deps, plans, cards] = await Promise.all([
      api("GET", base + "/brokers"), api("GET", base + "/deployments"),
      api("GET", base + "/plans"), api("GET", base + "/scorecards")]);
    const reg = apiForm("Register a broker", [
      field("broker-region", "Region", {name: "region", placeholder: "us-south"}),
      field("broker-url", "Broker URL", {name: "url", type: "url",
                                         placeholder: "https://broker.example.com"}),
      field("broker-user", "Username", {name: "auth.username", autocomplete: "off",
                                        "data-targets": "auth"}),
      field("broker-password", "Password", {name: "auth.password", type: "password",
                                            autocomplete: "new-password"})],
      "Register", (f) => api("POST", base + "/brokers", {region: val(f.region), url: val(f.url),
        auth: {type: "basic", username: val(f["auth.username"]),
               password: f["auth.password"].value}}));
    const deployed = new Set(deps.deployments.map(d => d.plan_id + "@" + d.region));
    const depTable = brokers.brokers.length ? table(plans.plans.filter(p => p.state !== "deprecated"), [
      {label: "Plan", value: p => p.name},
      ...brokers.brokers.map(b => ({label: b.region, value: p =>
        deployed.has(p.id + "@" + b.region) ? "deployed"
          : button(`Deploy ${p.name} in ${b.region}`, async () => {
              await api("PUT", `${base}/plans/${p.id}/deployments/${b.region}`); route(); })}))],
      "No plans.") : null;
    const runs = brokers.brokers.map(b => button(`Validate the ${b.region} broker`, async () => {
      const here = location.hash;
      let sc = await api("POST", base + "/validate?wait=25", {broker_id: b.id, timeout_s: 10});
      // a slow broker: the run goes on; its scorecard fills in as the checks finish
      while (sc.state === "running" && location.hash === here) {
        scorecard.replaceChildren(...scorecardView(sc));
        await new Promise(r => setTimeout(r, 1000));
        sc = await api("GET", `${base}/scorecards/${sc.id}`);
      }
      scorecard.replaceChildren(...scorecardView(sc));
      if (location.hash === here) setTimeout(route, 0);
    }));
    const newest = cards.scorecards.length
      ? await api("GET", `${base}/scorecards/${cards.scorecards[0].id}`) : null;
    const scorecard = el("div", {id: "scorecard"}, newest ? scorecardView(newest) : null);
    return [el("h2", {}, "Brokers"), table(brokers.brokers, [
      {label: "Region", value: b => b.region}, {label: "URL", value: b => b.url},
      {label: "ID", id: true, value: b => b.id}], "No broker yet."),
      me.account.kind === "provider" ? reg : null,
      depTable ? [el("h2", {}, "Deployments"), depTable] : null,
      brokers.brokers.length ? [el("h2", {}, "Validation"), el("div", {class: "actions"}, runs)]
                             : null,
      scorecard];
  }
  if (n === 4) {
    const uris = (o.sso && o.sso.redirect_uris) || [];
    return [o.iam ? apiForm("The dashboard's sign-on", [
      field("redirect_uris", "Redirect URIs, one a line", {tag: "textarea", rows: "3",
        value: uris.join("\n"), "data-targets": "redirect_uris"},
        `The OAuth client ${o.iam.client_id} sends users back only to these exact URIs.`)],
      "Save", (f) => api("PATCH", base + "/iam", {redirect_uris:
        f.redirect_uris.value.split("\n").map(x => x.trim()).filter(Boolean)}))
      : el("p", {}, "Enable IAM first (step 2).")];
  }
  if (n === 5) {
    const allow = await api("GET", base + "/allowlist");
    return [el("div", {class: "card"}, el("h2", {}, "Visibility"),
      el("p", {}, `The offering is ${o.visibility}.`),
      o.visibility === "draft" ? button("Make it visible to the allowlist (limited)", async () => {
        await api("POST", base + "/visibility", {visibility: "limited"}); route(); }) : null,
      o.visibility === "limited" ? button("Back to draft", async () => {
        await api("POST", base + "/visibility", {visibility: "draft"}); route(); }, true)
      : null),
      el("h2", {}, "Allowlist"),
      table(allow.accounts, [{label: "Account", value: a => a.name},
                             {label: "ID", id: true, value: a => a.account_id},
                             {label: "Added", value: a => when(a.added_at)}],
            "Nobody yet: add the accounts that test the offering."),
      apiForm(null, [field("allow-account", "Account ID", {name: "account_id"})],
              "Add to the allowlist", (f) => api("PUT", `${base}/allowlist/${
                encodeURIComponent(val(f.account_id) || "-")}`)),
      el("p", {class: "muted"}, "The step completes once an instance of the offering went " +
                                "through its lifecycle while limited.")];
  }
  const rv = await api("GET", base + "/reviews");
  const acts = [];
  if (me.account.kind === "provider" && o.visibility !== "public" &&
      o.publication !== "requested")
    acts.push(button("Request publication", async () => {
      await api("POST", base + "/publication", {action: "request"}); route(); }));
  if (me.account.kind === "operator" && o.publication === "requested")
    acts.push(button("Approve publication", async () => {
      await api("POST", base + "/publication", {action: "approve"}); route(); }));
  return [el("div", {class: "card"}, el("h2", {}, "Publication"),
    el("p", {}, `Visibility ${o.visibility}; publication ${o.publication || "not requested"}.`),
    el("div", {class: "actions"}, acts)),
    el("h2", {}, "The conversation"),
    table(rv.reviews, [{label: "When", value: r => when(r.at)},
                       {label: "Action", value: r => r.action.replace(/_/g, " ")},
                       {label: "Comment", value: r => r.comment}], "Nothing said yet."),
    apiForm(null, [field("review-comment", "A comment", {name: "comment", tag: "textarea",
                                                         rows: "2"})],
            "Send the comment", (f) => api("POST", base + "/publication",
                                           {action: "comment", comment: val(f.comment)}))];
}

function pricesText(p) {
  const out = [];
  for (const [m, byCur] of Object.entries(p.pricing || {}))
    for (const [cur, pr] of Object.entries(byCur))
      out.push(`${m}: ${pr.tiers.map(t => t.price).join(" / ")} ${cur} (${pr.model})`);
  return out.join("; ") || "–";
}

// The live billing preview of a plan: a sample quantity of its first metric, priced as it
// would be this month.
function preview(base, p) {
  const metric = p.kind === "subscription" ? "MONTHLY_FEE" : (p.metrics || [])[0]?.id;
  if (!metric) return "–";
  const out = el("output", {id: `preview-${p.name}-total`, "aria-live": "polite"}, "");
  const input = el("input", {id: `preview-${p.name}`, type: "number", min: "0", step: "any",
                             value: p.kind === "subscription" ? "1" : "10000",
                             "aria-label": `Sample ${metric} for ${p.name}`});
  let timer = null;
  const run = async () => {
    try {
      const r = await api("POST", `${base}/plans/${p.id}/estimate`,
                          {usage: [{metric, quantity: input.value || "0"}]});
      out.textContent = `= ${r.total} ${r.currency}`;
    } catch (err) { out.textContent = err.message; }
  };
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(run, 250); });
  setTimeout(run, 0);
  return el("span", {class: "preview"}, input, " ", metric, " ", out);
}

function scorecardView(sc) {
  const sum = sc.summary || {};
  return [el("p", {id: "scorecard-state"}, `Scorecard ${sc.state}: ${sum.passed || 0} passed, ` +
                                          `${sum.failed || 0} failed.`),
          table(sc.checks || [], [
            {label: "Check", value: c => c.name},
            {label: "Result", value: c => c.passed ? "✓ passed" : "✗ failed"},
            {label: "Expected", value: c => c.expected},
            {label: "Got", value: c => c.actual && (c.actual.error || c.actual.skipped ||
              (c.actual.status !== undefined ? `status ${c.actual.status}` : "") +
              (c.actual.reason ? ` (${c.actual.reason})` : ""))}], "No checks yet.")];
}

page("/statements", ["provider", "operator"], "Statements", async () => {
  const r = await api("GET", "/v1/statements?limit=100");
  show("Revenue statements", table(r.resources, [
    {label: "Month", value: st => el("a", {href: "#/statements/" + st.id}, st.month)},
    {label: "Gross", num: true, value: st => `${st.gross} ${st.currency}`},
    {label: "Your share", num: true, value: st => `${st.provider_share} ${st.currency}`},
    {label: "Platform's share", num: true, value: st => `${st.platform_share} ${st.currency}`},
    {label: "Issued", value: st => when(st.issued_at)}], "No statements yet: one comes with " +
                                                       "each closed month that had revenue."));
});

page("/statements/([^/]+)", ["provider", "operator"], null, async (params, id) => {
  const st = await api("GET", "/v1/statements/" + encodeURIComponent(id));
  show(`Statement of ${st.month}`,
    el("div", {class: "card"}, el("dl", {class: "facts"},
      el("dt", {}, "Gross"), el("dd", {}, `${st.gross} ${st.currency}`),
      el("dt", {}, "Your share"), el("dd", {}, el("strong", {}, `${st.provider_share} ` +
                                                             st.currency)),
      el("dt", {}, "Platform's share"), el("dd", {}, `${st.platform_share} ${st.currency}`))),
    table(st.plans || [], [
      {label: "Offering", id: true, value: l => l.offering_id},
      {label: "Plan", id: true, value: l => l.plan_id},
      {label: "Lines", num: true, value: l => String(l.lines)},
      {label: "Gross", num: true, value: l => l.gross},
      {label: "Your share", num: true, value: l => l.provider_share}], "No lines."),
    el("div", {class: "actions"},
       el("button", {type: "button", class: "secondary", onclick: () => print()}, "Print")));
});

// A provider's usage: the records its metering reported this month, of all its offerings.
page("/provider-usage", ["provider"], "Usage", async () => {
  const month = new Date().toISOString().slice(0, 7);
  const r = await api("GET", `/v1/usage/records?month=${month}&limit=1000`);
  show(`Usage reported in ${month}`, table(r.resources.slice().reverse(), [
    {label: "Instance", id: true, value: u => u.resource_instance_id},
    {label: "Plan", id: true, value: u => u.plan_id},
    {label: "From", value: u => when(new Date(u.start).toISOString())},
    {label: "To", value: u => when(new Date(u.end).toISOString())},
    {label: "Measures", value: u => u.measured_usage.map(m => `${m.measure} ${m.quantity}`)
                                     .join(", ")}], "No usage reported this month."),
    r.next_url ? el("p", {class: "muted"}, "The month's first 1,000 records are shown, newest first.") : null);
});

page("/approvals", ["operator"], "Approvals", async () => {
  const r = await api("GET", "/v1/offerings?awaiting=operator");
  const waiting = [];
  for (const o of r.offerings) {
    if ((o.listing_review || {}).state === "in_review")
      waiting.push({o, what: "listing review", step: 1});
    if (o.publication === "requested") waiting.push({o, what: "publication", step: 6});
  }
  show("Approvals", table(waiting, [
    {label: "Offering", value: w => el("a", {href: `#/offerings/${w.o.id}/step/${w.step}`},
                                       w.o.display_name || w.o.name)},
    {label: "Asks for", value: w => w.what},
    {label: "Provider", id: true, value: w => w.o.account_id},
    {label: "Updated", value: w => when(w.o.updated_at)}], "Nothing waits for you."));
});

page("/billing", ["operator"], "Billing", async () => {
  const now = new Date();
  const last = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1))
    .toISOString().slice(0, 7);
  const result = el("div", {id: "close-result"});
  show("Closing a month", apiForm(null, [
      field("month", "Month", {type: "month", value: last},
            "From its grace deadline (the 2nd of the next month) on; before that only forced."),
      el("label", {class: "check"}, el("input", {type: "checkbox", id: "force", name: "force"}),
         " Force it before the grace deadline")],
      "Close the month", (f) => api("POST", `/v1/billing/periods/${
        encodeURIComponent(f.month.value)}/close`, f.force.checked ? {force: true} : null),
      (r) => result.replaceChildren(el("p", {class: "ok", role: "status"},
        `${r.month} is ${r.state}: ${r.invoices} invoices, ${r.statements} statements.`))),
    result);
});

page("/accounts", ["operator"], "Accounts", async () => {
  const r = await api("GET", "/v1/accounts?limit=100");
  const act = (a, verb) => async () => {
    try { await api("POST", `/v1/accounts/${encodeURIComponent(a.id)}/${verb}`, {}); route(); }
    catch (err) { view.prepend(failure(err)); }
  };
  show("Accounts", table(r.resources, [
    {label: "Name", value: a => a.name},
    {label: "Kind", value: a => a.kind},
    {label: "State", value: a => el("span", {class: "state"}, a.state)},
    {label: "ID", id: true, value: a => a.id},
    {label: "", value: a => a.kind === "operator" ? null : a.state === "suspended"
      ? el("button", {type: "button", class: "secondary", onclick: act(a, "reactivate")},
           "Reactivate")
      : el("button", {type: "button", class: "secondary", onclick: act(a, "suspend")},
           "Suspend")}], "No accounts."));
});

// ------------------------------------------------------------------ routing

async function route() {
  if (!me) return;
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  nav();
  for (const p of pages) {
    const m = p.re.exec(path);
    if (!m) continue;
    if (p.kinds && !p.kinds.includes(me.account.kind)) break;
    try {
      await p.fn(new URLSearchParams(query || ""), ...m.slice(1).map(decodeURIComponent));
    } catch (err) {
      if (err.status === 401) { landing("Your session ended; sign in again."); return; }
      show("Something went wrong", failure(err));
    }
    return;
  }
  show("Not found", el("p", {}, "There is no such page. ", el("a", {href: "#/"}, "Home")));
}

function claims(token) {
  const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(part + "=".repeat((4 - part.length % 4) % 4)));
}

async function start() {
  config = await (await fetch("config.json")).json();
  try {
    await finishSignIn();
  } catch (err) {
    landing(err.message);
    return;
  }
  if (!session()) { landing(); return; }
  try {
    const c = claims(session().access_token);
    const account = await api("GET", "/v1/accounts/" + encodeURIComponent(c.account.bss));
    me = {iam_id: c.iam_id || c.sub, account};
  } catch (err) {
    sessionStorage.removeItem(KEY + ".session");
    landing(err.status === 401 ? "Your session ended; sign in again." : err.message);
    return;
  }
  addEventListener("hashchange", route);
  route();
}

start();
