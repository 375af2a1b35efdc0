// Drives the web console of a running `osbill serve` in headless Debian Chromium, as
// tests/integration/test_console.py sets it up (a platform, the starter broker, a provider, a
// consumer and the operator, nothing else):
//   the provider takes an offering through the six onboarding steps in the console's wizard
//   (listing, offering and plans with the live billing preview, IAM, the broker registered,
//   deployed and validated check by check, single sign-on, limited visibility with its
//   allowlist, the publication request); the operator approves the listing and the
//   publication; the consumer creates an instance from the plan's form, deletes it (the
//   tester's lifecycle), creates another, sees its usage as a chart, and after the operator
//   closes the month, its invoice (CSV download, print); forms show the API's errors next to
//   their fields; no page shows another account's data; switching and signing out.
// Screenshots of each main page at 1280x800 and on a 390-pixel phone go to $OSBILL_SHOTS.
// The setup comes as JSON in $OSBILL_E2E. When the consumer's instance exists the script
// prints {"need": "usage", "instance": GUID} and waits for a line on standard input (the
// provider's metering, which the test submits through the API). The result is the last line,
// as JSON.
import {chromium} from "playwright-core";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";

const cfg = JSON.parse(process.env.OSBILL_E2E);
const shots = process.env.OSBILL_SHOTS;
fs.mkdirSync(shots, {recursive: true});
const base = cfg.platform + "/console/";
const done = [];
const stdin = readline.createInterface({input: process.stdin});
const lines = stdin[Symbol.asyncIterator]();

function check(cond, what) {
  if (!cond) throw new Error("not so: " + what);
  done.push(what);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"]});
const wide = {width: 1280, height: 800};
const phone = {width: 390, height: 844};

async function shoot(page, name) {
  for (const [label, size] of [["desktop", wide], ["phone", phone]]) {
    await page.setViewportSize(size);
    await page.waitForTimeout(50);
    // legible: nothing wider than the screen (tables scroll inside their own box)
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth -
                                               document.documentElement.clientWidth);
    check(overflow <= 0, `${name} fits a ${size.width}-pixel screen (overflow ${overflow})`);
    await page.screenshot({path: path.join(shots, `${name}-${label}.png`), fullPage: true});
  }
  await page.setViewportSize(wide);
}

async function login(page, who) {
  await page.waitForURL(/\/identity\/authorize/);
  await page.fill("#email", cfg[who].email);
  await page.fill("#password", cfg[who].password);
  await page.getByRole("button", {name: "Sign in"}).click();
  await page.waitForURL(/\/console\/#\//);
  await page.getByText(`${cfg[who].name} (${cfg[who].kind})`).waitFor();
}

async function switchTo(page, who) {
  await page.getByRole("button", {name: "Switch account"}).click();
  await login(page, who);
}

// a form saved: the page shows it again with the notice
async function saved(page) {
  await page.locator("p.notice").getByText("Saved.").waitFor();
}

async function navTo(page, name) {
  await page.locator("#nav").getByRole("link", {name, exact: true}).click();
}

async function heading(page, text) {
  await page.getByRole("heading", {level: 1, name: text}).waitFor();
}

async function stepDone(page, n) {
  await page.goto(`${base}#/offerings/${cfg.offering_id}/step/${n}`);
  await page.getByText("This step is complete.").waitFor();
  check(true, `step ${n} is complete`);
}

const context = await browser.newContext({viewport: wide, acceptDownloads: true});
const page = await context.newPage();
const errors = [];
page.on("pageerror", e => errors.push(String(e)));
// the 401 of a refused password and the 404s of another account's pages are answers
page.on("console", m => {
  if (m.type() === "error" && !m.text().startsWith("Failed to load resource"))
    errors.push(m.text());
});

try {
  // ================================================================ the provider
  await page.goto(base);
  await page.getByRole("button", {name: "Sign in"}).waitFor();
  await shoot(page, "sign-in");
  // a wrong password is refused on the platform's page
  await page.getByRole("button", {name: "Sign in"}).click();
  await page.waitForURL(/\/identity\/authorize/);
  await page.fill("#email", cfg.provider.email);
  await page.fill("#password", "not-the-password");
  await page.getByRole("button", {name: "Sign in"}).click();
  await page.getByText("The email or password is not right.").waitFor();
  check(true, "a wrong password is refused");
  await page.fill("#email", cfg.provider.email);
  await page.fill("#password", cfg.provider.password);
  await page.getByRole("button", {name: "Sign in"}).click();
  await page.waitForURL(/\/console\/#\//);
  await heading(page, "Welcome");
  check(await page.getByText(cfg.provider.account_id).isVisible(), "home shows the account");
  await shoot(page, "home");

  await navTo(page, "Offerings");
  await page.getByRole("link", {name: "A new offering"}).click();
  await heading(page, "A new offering");
  // a bad name: the API's error next to the name field
  await page.fill("#name", "Not A Name!");
  await page.fill("#display_name", "Starter KV");
  await page.fill("#id", cfg.service_id);
  await page.getByRole("button", {name: "Create the offering"}).click();
  await page.locator("#name-error").waitFor();
  check(await page.locator("#name").getAttribute("aria-invalid") === "true",
        "a bad service name is shown next to its field");
  await page.fill("#name", cfg.offering_name);
  await page.getByRole("button", {name: "Create the offering"}).click();
  await page.waitForURL(/#\/offerings\/[^/]+\/step\/1/);
  cfg.offering_id = decodeURIComponent(page.url().split("#/offerings/")[1].split("/")[0]);
  check(cfg.offering_id === cfg.service_id, "the offering has the broker's service id");

  // ---------------------------------------------------------------- step 1
  await page.fill("#documentation_url", "not a url");
  await page.getByRole("button", {name: "Save the listing"}).click();
  await page.locator("#documentation_url-error").waitFor();
  check(true, "a bad documentation URL is shown next to its field");
  await page.fill("#documentation_url", "https://example.com/starter-kv/docs");
  await page.fill("#listing\\.bullets\\[0\\]\\.title", "A namespace per instance");
  await page.fill("#listing\\.bullets\\[0\\]\\.description", "Each instance is a key-value store.");
  await page.getByRole("button", {name: "Save the listing"}).click();
  await saved(page);
  await page.getByRole("button", {name: "Submit the listing for review"}).click();
  await page.getByText("State: in review.").waitFor();
  check(true, "the listing is submitted for review");
  await shoot(page, "wizard-listing");

  // ---------------------------------------------------------------- step 2
  await page.goto(`${base}#/offerings/${cfg.offering_id}/step/2`);
  await page.getByRole("heading", {level: 2, name: "The offering"}).waitFor();
  await page.fill("#short_description", "A metered key-value store.");
  await page.fill("#long_description", "Keys and values over HTTP, metered by the call.");
  await page.fill("#icon_url", "https://example.com/starter-kv/icon.svg");
  await page.fill("#terms_url", "https://example.com/starter-kv/terms");
  await page.fill("#support\\.url", "https://example.com/starter-kv/support");
  await page.fill("#support\\.email", "support@example.com");
  await page.fill("#support\\.hours", "24x7");
  for (const [k, v] of [["1", "60"], ["2", "240"], ["3", "1440"], ["4", "2880"]])
    await page.fill(`#support\\.severity_targets\\.${k}`, v);
  await page.getByRole("button", {name: "Save", exact: true}).click();
  await saved(page);
  await page.getByRole("heading", {level: 2, name: "Add a plan"}).waitFor();
  // a negative price: the API's error next to the price
  await page.fill("#plan-name", "standard");
  await page.fill("#plan-id", cfg.plan_id);
  await page.fill("#plan-display", "Standard");
  await page.fill("#plan-description", "Pay per call.");
  await page.fill("#plan-price", "-1");
  await page.getByRole("button", {name: "Add the plan"}).click();
  await page.locator("#plan-price-error").waitFor();
  check(true, "a negative price is shown next to the price field");
  await page.fill("#plan-price", "0.50");
  await page.getByRole("button", {name: "Add the plan"}).click();
  await saved(page);
  await page.getByRole("cell", {name: "standard", exact: true}).waitFor();
  // the live billing preview: 10,000 calls at 0.50 per 1,000
  await page.locator("#preview-standard-total").getByText("= 5.00 USD").waitFor();
  await page.fill("#preview-standard", "2500");
  await page.locator("#preview-standard-total").getByText("= 1.25 USD").waitFor();
  check(true, "the billing preview prices a sample quantity live");
  await page.getByRole("button", {name: "Enable IAM"}).click();
  await page.getByText("Keep these now: they are shown only once.").waitFor();
  check((await page.locator("#iam-client-secret").textContent()).length > 10,
        "IAM shows the client secret once");
  await shoot(page, "wizard-offering");
  await page.getByRole("link", {name: "Done"}).click();
  await page.getByRole("heading", {level: 2, name: "IAM", exact: true}).waitFor();
  check(!(await page.locator("#iam-client-secret").count()), "and never again");

  // ---------------------------------------------------------------- step 3
  await page.goto(`${base}#/offerings/${cfg.offering_id}/step/3`);
  await page.getByRole("heading", {level: 2, name: "Register a broker"}).waitFor();
  await page.fill("#broker-region", cfg.region);
  await page.fill("#broker-url", cfg.broker.url);
  await page.fill("#broker-user", cfg.broker.user);
  await page.fill("#broker-password", cfg.broker.password);
  await page.getByRole("button", {name: "Register"}).click();
  await saved(page);
  await page.getByRole("button", {name: `Deploy standard in ${cfg.region}`}).click();
  await page.getByRole("cell", {name: "deployed"}).waitFor();
  await page.getByRole("button", {name: `Validate the ${cfg.region} broker`}).click();
  await page.locator("#scorecard-state").getByText(/Scorecard passed/).waitFor({timeout: 60000});
  await page.locator("#scorecard tbody tr").first().waitFor();
  await page.getByText("This step is complete.").waitFor();
  const checks = await page.locator("#scorecard tbody tr").count();
  check(checks >= 10, `the scorecard shows its ${checks} checks one by one`);
  check(!(await page.getByRole("cell", {name: "✗ failed"}).count()), "every check passed");
  check(!(await page.content()).includes(cfg.broker.password), "the broker's password is not shown");
  await shoot(page, "wizard-broker");
  await stepDone(page, 3);

  // ---------------------------------------------------------------- step 4
  await page.goto(`${base}#/offerings/${cfg.offering_id}/step/4`);
  await page.fill("#redirect_uris", cfg.broker.url + "/sso/callback");
  await page.getByRole("button", {name: "Save", exact: true}).click();
  await saved(page);
  await stepDone(page, 4);
  await stepDone(page, 2);

  // ---------------------------------------------------------------- step 5
  await page.goto(`${base}#/offerings/${cfg.offering_id}/step/5`);
  await page.getByRole("button", {name: /Make it visible to the allowlist/}).click();
  await page.getByText("The offering is limited.").waitFor();
  await page.fill("#allow-account", cfg.consumer.account_id);
  await page.getByRole("button", {name: "Add to the allowlist"}).click();
  await saved(page);
  await page.getByRole("cell", {name: cfg.consumer.account_id}).waitFor();
  check(true, "the consumer is on the allowlist");
  await shoot(page, "wizard-limited");

  // ================================================================ the operator: the listing
  await switchTo(page, "operator");
  await navTo(page, "Approvals");
  await page.getByRole("cell", {name: "listing review"}).waitFor();
  await shoot(page, "approvals");
  await page.getByRole("link", {name: "Starter KV"}).click();
  await page.getByRole("button", {name: "Approve the listing"}).click();
  await page.getByText("State: approved.").waitFor();
  check(true, "the operator approved the listing");

  // ================================================================ the consumer tests it
  await switchTo(page, "consumer");
  await navTo(page, "Catalog");
  await page.fill("#q", "starter");
  await page.getByRole("button", {name: "Search"}).click();
  await page.getByText(/1 offering matching/).waitFor();
  await shoot(page, "catalog");
  await page.getByRole("link", {name: "Create standard"}).click();
  await page.getByRole("heading", {level: 1, name: /A new Starter KV instance/}).waitFor();
  await page.getByRole("button", {name: "Create the instance"}).click();
  await page.locator("#name-error").waitFor();
  check(true, "an instance without a name is refused next to the name");
  await shoot(page, "create-instance");
  await page.fill("#name", "kv-trial");
  await page.getByRole("button", {name: "Create the instance"}).click();
  await heading(page, "kv-trial");
  await page.getByRole("button", {name: "Delete this instance"}).click();
  await heading(page, "Instances");
  check(true, "the tester's instance went through its lifecycle");
  await navTo(page, "Catalog");
  await page.getByRole("link", {name: "Create standard"}).click();
  await page.fill("#name", "kv-prod");
  await page.getByRole("button", {name: "Create the instance"}).click();
  await heading(page, "kv-prod");
  const guid = decodeURIComponent(page.url().split("#/instances/")[1]);
  await page.getByRole("button", {name: "Create the key"}).click();
  await page.locator("#key-credentials").waitFor();
  check((await page.locator("#key-credentials").textContent()).includes("apikey"),
        "a key's credentials are shown");
  await shoot(page, "instance");

  // the provider's metering reports 4,000 calls of kv-prod (through the API, by the test)
  console.log(JSON.stringify({need: "usage", instance: guid}));
  const answer = await lines.next();
  check(answer.value === "ok", "the usage was submitted: " + answer.value);
  await navTo(page, "Usage");
  await page.getByRole("heading", {level: 2, name: "API_CALLS"}).waitFor();
  check(await page.locator("svg.chart rect").count() === 1, "a chart of API_CALLS, a bar for kv-prod");
  check((await page.locator("#usage-total").textContent()) === "2.00 USD",
        "this month so far: 2.00 USD");
  await shoot(page, "usage");

  // a support case, its refusal next to its field
  await navTo(page, "Support");
  await page.selectOption("#case-instance", guid);
  await page.fill("#case-description", "Writes take a second.");
  await page.getByRole("button", {name: "Open the case"}).click();
  await page.locator("#case-subject-error").waitFor();
  check(true, "a case without a subject is refused next to the subject");
  await page.fill("#case-subject", "Slow writes");
  await page.getByRole("button", {name: "Open the case"}).click();
  await page.getByRole("heading", {level: 1, name: /Case \d+: Slow writes/}).waitFor();
  const caseUrl = page.url();
  await shoot(page, "case");

  // ================================================================ the provider publishes
  await switchTo(page, "provider");
  await stepDone(page, 5);
  await stepDone(page, 1);
  await page.goto(`${base}#/offerings/${cfg.offering_id}/step/6`);
  await page.getByRole("button", {name: "Request publication"}).click();
  await page.getByText("publication requested.").waitFor();
  check(true, "the provider requested publication");
  await shoot(page, "wizard-publication");
  // and answers the case routed to it
  await page.goto(caseUrl);
  await page.fill("#update-comment", "A disk was slow; it is replaced.");
  await page.selectOption("#update-status", "waiting_on_client");
  await page.getByRole("button", {name: "Send"}).click();
  await page.getByText("A disk was slow; it is replaced.").waitFor();
  check(true, "the provider answers the case");
  // no page shows another account's data: the consumer's instance is not the provider's
  await page.goto(base + "#/instances/" + guid);
  await heading(page, "Something went wrong");
  check(!(await page.getByText(guid).count()), "another account's instance is not shown");

  // ================================================================ the operator
  await switchTo(page, "operator");
  await navTo(page, "Approvals");
  await page.getByRole("cell", {name: "publication"}).waitFor();
  await page.getByRole("link", {name: "Starter KV"}).click();
  await page.getByRole("button", {name: "Approve publication"}).click();
  await page.getByText("Visibility public").waitFor();
  check(true, "the operator approved the publication");
  await stepDone(page, 6);
  await navTo(page, "Billing");
  await page.fill("#month", cfg.month);
  await page.getByRole("button", {name: "Close the month"}).click();
  await page.locator("#month-error, .form-error").first().waitFor();
  check(true, "closing before the grace deadline is refused unless forced");
  await page.check("#force");
  await page.getByRole("button", {name: "Close the month"}).click();
  await page.getByText(new RegExp(`${cfg.month} is closed: 1 invoices`)).waitFor();
  check(true, "the operator closed the month");
  await shoot(page, "billing");
  await navTo(page, "Accounts");
  await page.getByRole("cell", {name: cfg.consumer.account_id}).waitFor();
  await shoot(page, "accounts");

  // ================================================================ the consumer's invoice
  await switchTo(page, "consumer");
  await navTo(page, "Invoices");
  await page.getByRole("cell", {name: "2.00 USD"}).waitFor();
  await shoot(page, "invoices");
  await page.getByRole("link", {name: "1", exact: true}).click();
  await heading(page, "Invoice 1");
  const dl = page.waitForEvent("download");
  await page.getByRole("button", {name: "Download CSV"}).click();
  const file = await dl;
  const csv = fs.readFileSync(await file.path(), "utf8");
  check(csv.includes("API_CALLS") && csv.includes("2.00"), "the invoice downloads as CSV");
  await page.emulateMedia({media: "print"});
  check(!(await page.locator("header.bar").isVisible()), "the print layout drops the navigation");
  await page.screenshot({path: path.join(shots, "invoice-print.png"), fullPage: true});
  await page.emulateMedia({media: "screen"});
  await shoot(page, "invoice");
  const invoiceUrl = page.url();

  // ================================================================ the provider, after launch
  await switchTo(page, "provider");
  await navTo(page, "Statements");
  await page.getByRole("link", {name: cfg.month}).click();
  await heading(page, `Statement of ${cfg.month}`);
  check(await page.getByText("1.74 USD").isVisible(), "the revenue statement: 87% of 2.00 USD");
  await shoot(page, "statement");
  await navTo(page, "Usage");
  await page.getByRole("cell", {name: "API_CALLS 4000"}).waitFor();
  check(true, "the provider sees the usage it reported");
  await page.goto(`${base}#/offerings/${cfg.offering_id}/step/2`);
  await page.getByRole("heading", {level: 2, name: "A scheduled price change"}).waitFor();
  await page.fill("#change-price", "0.40");
  await page.getByRole("button", {name: "Schedule the change"}).click();
  await saved(page);
  await page.getByRole("heading", {level: 2, name: "A scheduled price change"}).waitFor();
  check(true, "a price change is scheduled for next month");
  await shoot(page, "wizard-after-launch");

  // ================================================================ isolation, sign out
  await page.goto(invoiceUrl);
  await heading(page, "Something went wrong");
  check(!(await page.getByText("2.00 USD").count()), "another account's invoice is not shown");
  await page.goto(base + "#/");
  await page.getByRole("button", {name: "Sign out"}).click();
  await page.getByText("You are signed out.").waitFor();
  await page.getByRole("button", {name: "Sign in"}).click();
  await page.waitForURL(/\/identity\/authorize/);
  check(await page.locator("#password").isVisible(),
        "after signing out, the platform asks for the password again");
  check(errors.length === 0, "no script errors: " + errors.join("; "));
  console.log(JSON.stringify({ok: true, checks: done}));
} catch (err) {
  await page.screenshot({path: path.join(shots, "failure.png"), fullPage: true}).catch(() => {});
  console.log(JSON.stringify({ok: false, error: String(err && err.stack || err), checks: done,
                              url: page.url(), errors}));
  process.exitCode = 1;
} finally {
  await browser.close();
  stdin.close();
}
