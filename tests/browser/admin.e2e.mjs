// The admin dashboard in a real headless Chromium, as an admin uses it: sign in, find a
// conversation by the visitor's email, open it and read the transcript, retry its dead delivery
// from the dead letters page and watch it turn done. A screenshot of each page is saved.
//
// Run by tests/admin_browser.rs, which starts deskbridge and the mock destination and passes:
//   DESKBRIDGE_URL   base URL of the running deskbridge
//   ADMIN_TOKEN      its server.admin_token
//   VISITOR_EMAIL    the email of the conversation to find
//   MESSAGE          a message of that conversation's transcript
//   DELIVERY_ID      the id of its dead delivery (another conversation's delivery is dead too)
//   SCREENSHOTS      the folder for screenshots
//   CHROMIUM         the browser executable (default /usr/bin/chromium)
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("DESKBRIDGE_URL");
const token = env("ADMIN_TOKEN");
const email = env("VISITOR_EMAIL");
const message = env("MESSAGE");
const deliveryId = env("DELIVERY_ID");
const shots = env("SCREENSHOTS");
mkdirSync(shots, { recursive: true });

const TIME_ZONE = "Asia/Tokyo";
const problems = [];
const check = (condition, what) => {
  if (!condition) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
  ],
});

/** A page that records console errors (a CSP violation is one) and failed requests. */
async function open(context) {
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  // A navigation cancels what the page before it was still loading (ERR_ABORTED): not a fault.
  page.on("requestfailed", (r) => {
    const error = r.failure()?.errorText ?? "";
    if (!error.includes("ERR_ABORTED")) problems.push(`request failed: ${r.url()} (${error})`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  page.on("dialog", (d) => d.accept());
  return page;
}

const shot = async (page, name) => {
  await page.screenshot({ path: join(shots, name), fullPage: true });
  console.log(`screenshot ${name}`);
};

try {
  const context = await browser.newContext({
    timezoneId: TIME_ZONE,
    viewport: { width: 1280, height: 860 },
  });
  const page = await open(context);

  // Signing in: the dashboard sends the browser to the form first.
  await page.goto(`${base}/admin`);
  check(page.url().includes("/admin/login"), "an anonymous visit lands on the sign-in form");
  await shot(page, "01-login.png");
  await page.fill("#token", "not the token");
  await page.click("button[type=submit]");
  check((await page.textContent("#login-error")).includes("not the admin token"), "a wrong token is refused");
  await page.fill("#token", token);
  await Promise.all([page.waitForURL(`${base}/admin`), page.click("button[type=submit]")]);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "deskbridge_admin");
  check(session && session.httpOnly && session.sameSite === "Strict", "the session cookie is HttpOnly and SameSite=Strict");
  check((await page.textContent("#tz")).includes(TIME_ZONE), "times are shown in the browser's time zone");

  // Overview.
  check(Number(await page.textContent("#dead")) >= 1, "the overview counts the dead delivery");
  check((await page.textContent("#destinations")).includes("crm"), "the overview lists the destination");
  await shot(page, "02-overview.png");

  // Find the conversation by email.
  await page.click("header.top >> text=Conversations");
  await page.fill("input[name=q]", email);
  await Promise.all([page.waitForURL(/q=/), page.press("input[name=q]", "Enter")]);
  const rows = page.locator("#conversations tbody tr");
  check((await rows.count()) === 1, "the search finds exactly one conversation");
  check((await rows.first().textContent()).includes(email), "the row shows the visitor's email");
  await shot(page, "03-conversations-search.png");

  // Open it: the transcript as support sees it.
  await Promise.all([page.waitForURL(/\/admin\/conversations\/.+/), page.click("#conversations a.conversation")]);
  const transcript = await page.textContent("#transcript");
  check(transcript.includes(message), "the transcript shows the visitor's message");
  // The first message was sent at 2015-03-27 15:33:59 UTC: 00:33:59 the next day in Tokyo.
  check(transcript.includes("2015-03-28 00:33:59"), "transcript times are in the browser's time zone");
  check((await page.getAttribute(`#delivery-${deliveryId}`, "data-state")) === "dead", "the delivery is dead");
  await page.click(`#delivery-${deliveryId} details summary`);
  check((await page.textContent(`#delivery-${deliveryId} pre`)).startsWith("POST "), "the rendered request is shown");
  await shot(page, "04-conversation.png");
  const conversationUrl = page.url();

  // Dead letters: retry this one.
  await page.click("header.top >> text=Dead letters");
  check(await page.isVisible(`#dead-${deliveryId}`), "the dead letters page lists the delivery");
  await shot(page, "05-dead-letters.png");
  await Promise.all([
    page.waitForURL(/retried=1/),
    page.click(`#dead-${deliveryId} button.retry`),
  ]);
  check((await page.textContent("#notice")).includes("1 delivery"), "the retry is confirmed");
  check(!(await page.isVisible(`#dead-${deliveryId}`)), "the retried delivery has left the dead letters");

  // The other dead delivery goes with "Retry all shown" (after a confirmation).
  const left = await page.locator("#dead-letters tbody tr").count();
  check(left >= 1, "another dead delivery is listed");
  await Promise.all([page.waitForURL(/retried=/), page.click("#retry-all")]);
  check((await page.textContent("#notice")).includes(`${left} delivery`), "retry all shown replays every row shown");
  check(await page.isVisible("#no-dead"), "no dead deliveries are left");

  // Watch it turn done.
  await page.goto(conversationUrl);
  const deadline = Date.now() + 15000;
  let state = await page.getAttribute(`#delivery-${deliveryId}`, "data-state");
  while (state !== "done" && Date.now() < deadline) {
    await page.waitForTimeout(250);
    await page.reload();
    state = await page.getAttribute(`#delivery-${deliveryId}`, "data-state");
  }
  check(state === "done", "the retried delivery turns done");
  await shot(page, "06-conversation-done.png");

  // The same pages on a phone.
  const phone = await browser.newContext({
    timezoneId: TIME_ZONE,
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  await phone.addCookies([{ ...session }]);
  const small = await open(phone);
  await small.goto(`${base}/admin`);
  check(small.url() === `${base}/admin`, "the phone shares the session");
  const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, "the overview fits a phone's width");
  await shot(small, "07-phone-overview.png");
  await small.goto(conversationUrl);
  await shot(small, "08-phone-conversation.png");

  // Sign out.
  await Promise.all([page.waitForURL(/\/admin\/login/), page.click("header.top button")]);
  await page.goto(`${base}/admin`);
  check(page.url().includes("/admin/login"), "after signing out the dashboard asks to sign in again");

  // The wrong token above is the only expected error.
  const unexpected = problems.filter((p) => !p.includes("401"));
  check(unexpected.length === 0, `no console errors, CSP violations or failed requests (${unexpected.join("; ")})`);
  console.log("admin e2e: all checks passed");
} finally {
  await browser.close();
}
