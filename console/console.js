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

function show(title, ...kids) {
  document.title = title + " - osbill console";
  view.replaceChildren(el("h1", {}, title),
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
  if (s && s.refresh_token)
    await fetch(config.revoke_url, {method: "POST", body: new URLSearchParams({
      token: s.refresh_token, token_type_hint: "refresh_token", client_id: config.client_id})})
      .catch(() => {});
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
    const field = e.target && form.querySelector(`[name="${CSS.escape(e.target)}"]`);
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
               ["#/invoices", "Invoices"], ["#/cases", "Support cases"]],
    provider: [["#/offerings", "Your offerings"], ["#/catalog", "The catalog"],
               ["#/cases", "Support cases"]],
    operator: [["#/accounts", "Accounts"], ["#/catalog", "The catalog"],
               ["#/cases", "Support cases"]]}[k] || [];
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
    o.support && o.support.url ? el("p", {}, el("a", {href: o.support.url, rel: "noopener"},
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
      i.dashboard_url ? el("dt", {}, "Dashboard") : null,
      i.dashboard_url ? el("dd", {}, el("a", {href: i.dashboard_url, rel: "noopener"},
                                         "Open the dashboard")) : null)),
    el("h2", {}, "Keys"),
    table(keys.resources || [], [
      {label: "Name", value: k => k.name},
      {label: "State", value: k => k.state},
      {label: "Created", value: k => when(k.created_at)}], "No keys."));
});

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
      {label: "Amount", num: true, value: l => l.amount}], "No lines."));
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
      ps && ps.url ? el("dt", {}, "The provider's support") : null,
      ps && ps.url ? el("dd", {}, el("a", {href: ps.url, rel: "noopener"}, ps.url)) : null)),
    el("h2", {}, "Updates"),
    (c.updates || []).map(u => el("div", {class: "card"},
      el("p", {class: "muted"}, `#${u.seq} · ${when(u.created_at)} · ${u.side}` +
                                (u.status_to ? ` · ${u.status_from ? u.status_from + " → " : ""}` +
                                               u.status_to : "")),
      u.comment ? el("p", {}, u.comment) : null)),
    c.status === "closed" ? el("p", {class: "muted"}, "The case is closed.") : form);
});

page("/offerings", ["provider", "operator"], "Offerings", async () => {
  const r = await api("GET", "/v1/offerings?limit=100");
  show("Offerings", table(r.offerings || r.resources || [], [
    {label: "Name", value: o => o.display_name || o.name},
    {label: "Service", value: o => o.name},
    {label: "Visibility", value: o => el("span", {class: "state"}, o.visibility)},
    {label: "Steps done", num: true,
     value: o => o.steps ? `${o.steps.filter(s => s.complete).length} of ${o.steps.length}`
                         : "–"}], "No offerings yet."));
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
