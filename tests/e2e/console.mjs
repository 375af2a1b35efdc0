// Drives the web console of a running `osbill serve` in headless Debian Chromium, as
// tests/integration/test_console.py sets it up: the consumer and the provider sign in through
// the platform's own sign-in page, browse, open and answer a support case, switch accounts and
// sign out; every form shows the API's errors next to their field; no page shows another
// account's data. Screenshots of each main page at 1280×800 and on a 390-pixel phone go to
// $OSBILL_SHOTS. The setup comes as JSON in $OSBILL_E2E; the result is printed as JSON.
import {chromium} from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const cfg = JSON.parse(process.env.OSBILL_E2E);
const shots = process.env.OSBILL_SHOTS;
fs.mkdirSync(shots, {recursive: true});
const base = cfg.platform + "/console/";
const done = [];

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
    // legible: nothing wider than the screen but the scrolling tables
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth -
                                               document.documentElement.clientWidth);
    check(overflow <= 0, `${name} fits a ${size.width}-pixel screen (overflow ${overflow})`);
    await page.screenshot({path: path.join(shots, `${name}-${label}.png`), fullPage: true});
  }
  await page.setViewportSize(wide);
}

async function signIn(page, who) {
  await page.getByRole("button", {name: "Sign in"}).click();
  await page.waitForURL(/\/identity\/authorize/);
  await page.fill("#email", cfg[who].email);
  await page.fill("#password", cfg[who].password);
  await page.getByRole("button", {name: "Sign in"}).click();
  await page.waitForURL(/\/console\/#\//);
  await page.getByText(`${cfg[who].name} (${cfg[who].kind})`).waitFor();
}

async function navTo(page, name) {
  await page.locator("#nav").getByRole("link", {name, exact: true}).click();
}

async function heading(page, text) {
  await page.getByRole("heading", {level: 1, name: text}).waitFor();
}

const context = await browser.newContext({viewport: wide});
const page = await context.newPage();
const errors = [];
page.on("pageerror", e => errors.push(String(e)));
// the 401 of a refused password and the 404s of another account's pages are answers, not faults
page.on("console", m => {
  if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text());
});

try {
  // ---------------------------------------------------------------- the consumer
  await page.goto(base);
  await page.getByRole("button", {name: "Sign in"}).waitFor();
  await shoot(page, "sign-in");
  // a wrong password is refused on the platform's page, nothing signed in
  await page.getByRole("button", {name: "Sign in"}).click();
  await page.fill("#email", cfg.consumer.email);
  await page.fill("#password", "not-the-password");
  await page.getByRole("button", {name: "Sign in"}).click();
  await page.getByText("The email or password is not right.").waitFor();
  check(true, "a wrong password is refused");
  await page.goto(base);
  await signIn(page, "consumer");
  await heading(page, "Welcome");
  check(await page.getByText(cfg.consumer.account_id).isVisible(), "home shows the account");
  await shoot(page, "home");

  await navTo(page, "Catalog");
  await heading(page, "Catalog");
  await page.fill("#q", "starter");
  await page.getByRole("button", {name: "Search"}).click();
  await page.getByText(/1 offering matching/).waitFor();
  check(await page.getByRole("heading", {level: 3, name: cfg.offering_display}).isVisible(),
        "the catalog's search finds the offering");
  await shoot(page, "catalog");
  await page.fill("#q", "no-such-thing-at-all");
  await page.getByRole("button", {name: "Search"}).click();
  await page.getByText("Nothing matches.").waitFor();

  await navTo(page, "Instances");
  await heading(page, "Instances");
  await page.getByRole("link", {name: cfg.instance.name}).click();
  await heading(page, cfg.instance.name);
  check(await page.getByText(cfg.instance.guid).first().isVisible(), "an instance's page");
  await shoot(page, "instance");

  // a case: the API's refusal is shown next to the field it names
  await navTo(page, "Support");
  await heading(page, "Support cases");
  await page.selectOption("#case-instance", cfg.instance.guid);
  await page.fill("#case-description", "Writes take a second.");
  await page.getByRole("button", {name: "Open the case"}).click();
  const subjErr = page.locator("#case-subject-error");
  await subjErr.waitFor();
  check((await subjErr.textContent()).includes("subject"),
        "the API's error shows next to the subject field");
  check(await page.locator("#case-subject").getAttribute("aria-invalid") === "true",
        "the field is marked invalid");
  await shoot(page, "cases");
  await page.fill("#case-subject", "Slow writes");
  await page.getByRole("button", {name: "Open the case"}).click();
  await page.getByRole("heading", {level: 1, name: /Case \d+: Slow writes/}).waitFor();
  const caseUrl = page.url();
  check(await page.locator("dd", {hasText: /^provider$/}).isVisible(),
        "the case is routed to the provider");
  await shoot(page, "case");

  await navTo(page, "Invoices");
  await heading(page, "Invoices");
  await shoot(page, "invoices");

  // ---------------------------------------------------------------- switch to the provider
  await page.getByRole("button", {name: "Switch account"}).click();
  await page.waitForURL(/\/identity\/authorize/);
  check(await page.locator("#password").isVisible(), "switching asks for a sign-in again");
  await page.fill("#email", cfg.provider.email);
  await page.fill("#password", cfg.provider.password);
  await page.getByRole("button", {name: "Sign in"}).click();
  await page.waitForURL(/\/console\/#\//);
  await page.getByText(`${cfg.provider.name} (provider)`).waitFor();
  check(true, "switched to the provider");

  await navTo(page, "Offerings");
  await heading(page, "Offerings");
  check(await page.getByRole("cell", {name: cfg.offering_name, exact: true}).isVisible(),
        "the provider's offerings");
  await shoot(page, "offerings");

  // the provider answers the case routed to it
  await page.goto(caseUrl);
  await page.getByRole("heading", {level: 1, name: /Slow writes/}).waitFor();
  await page.fill("#update-comment", "A disk was slow; it is replaced.");
  await page.selectOption("#update-status", "waiting_on_client");
  await page.getByRole("button", {name: "Send"}).click();
  await page.getByText("A disk was slow; it is replaced.").waitFor();
  check(true, "the provider answers the case");

  // no page shows another account's data: the consumer's instance is not the provider's
  await page.goto(base + "#/instances/" + cfg.instance.guid);
  await heading(page, "Something went wrong");
  check(!(await page.getByText(cfg.instance.crn).count()), "another account's instance is not shown");
  await page.goto(base + "#/invoices/" + (cfg.consumer_invoice || "no-such-invoice"));
  await heading(page, "Something went wrong");
  check(true, "another account's invoice is not shown");

  // ---------------------------------------------------------------- sign out
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
}
