// The admin dashboard in a real headless Chromium, as a new admin uses it on a laptop
// (1280×900) and on a phone (390×844): sign in, read the overview, find a conversation, see
// above its transcript where it went and why it failed, retry from the dead letters (one row,
// a group, everything), send a delivered one again, and check on every page that the
// outcome comes first, that attempt numbers agree, that notices do not come back on reload,
// that nothing overflows on a phone, and that axe-core finds no serious or critical
// accessibility violation. A screenshot of every page at both sizes is saved.
//
// Run by tests/admin_browser.rs, which starts deskbridge and the mock destinations and passes:
//   DESKBRIDGE_URL   base URL of the running deskbridge
//   ADMIN_TOKEN      its server.admin_token
//   VISITOR_EMAIL    the email of the conversation to find (its crm delivery is dead)
//   MESSAGE          a message of that conversation's transcript
//   DELIVERY_ID      the id of its dead crm delivery
//   LONG_KEY         the key of a conversation of 300 messages
//   EXPECTED_GROUPS  the dead letter groups, `destination:count,…`
//   CONVERSATIONS    how many conversations there are
//   SCREENSHOTS      the folder for screenshots
//   CHROMIUM         the browser executable (default /usr/bin/chromium)
import { chromium } from "playwright-core";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
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
const longKey = env("LONG_KEY");
const expectedGroups = env("EXPECTED_GROUPS");
const conversationCount = Number(env("CONVERSATIONS"));
const shots = env("SCREENSHOTS");
mkdirSync(shots, { recursive: true });
// axe-core goes into the page from here, never from the dashboard (whose CSP stays strict).
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const TIME_ZONE = "Asia/Tokyo";
/** A conversation that does not exist: its page is the error page (404). */
const notFound = "/admin/conversations/208-999999";
const SIZES = {
  desktop: { viewport: { width: 1280, height: 900 } },
  phone: { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
};
const problems = [];
const dialogs = [];
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
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    d.accept();
  });
  return page;
}

const context = (size, extra = {}) => browser.newContext({ timezoneId: TIME_ZONE, ...SIZES[size], ...extra });

const shot = async (page, size, name) => {
  await page.screenshot({ path: join(shots, `${size}-${name}.png`), fullPage: true });
  console.log(`screenshot ${size}-${name}.png`);
};

/** The admin API's answer, with the browser's session. */
const api = async (page, path) => {
  const response = await page.request.get(`${base}/admin/api${path}`);
  check(response.ok(), `GET /admin/api${path} answers ${response.status()}`);
  return response.json();
};

/** Elements that overflow their container or the screen, every disclosure opened (measured
 * in the page). */
const overflowing = (page) =>
  page.evaluate(() => {
    document.querySelectorAll("details").forEach((d) => (d.open = true));
    const describe = (el) => {
      const id = el.id ? `#${el.id}` : "";
      const cls = typeof el.className === "string" && el.className ? `.${el.className.trim().split(/\s+/).join(".")}` : "";
      return `${el.tagName.toLowerCase()}${id}${cls} "${(el.textContent || "").trim().slice(0, 40)}"`;
    };
    const width = document.documentElement.clientWidth;
    const found = [];
    if (document.documentElement.scrollWidth > width + 1) {
      found.push(`the page is ${document.documentElement.scrollWidth} px wide on a ${width} px screen`);
    }
    for (const el of document.querySelectorAll("body *")) {
      const style = getComputedStyle(el);
      if (style.display === "none" || el.closest(".visually-hidden, .skip, option")) continue;
      const r = el.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      const p = el.parentElement.getBoundingClientRect();
      if (r.right > p.right + 1 || r.left < p.left - 1) {
        found.push(`${describe(el)} (${Math.round(r.left)}–${Math.round(r.right)}) leaves ${describe(el.parentElement)} (${Math.round(p.left)}–${Math.round(p.right)})`);
      }
      if (r.right > width + 1) found.push(`${describe(el)} ends at ${Math.round(r.right)} px, off the screen`);
      if (!["visible", "clip"].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 1) {
        found.push(`${describe(el)} is cut: ${el.scrollWidth} px of content in ${el.clientWidth} px`);
      }
    }
    return found.slice(0, 12);
  });

/** Where the outcome lines and the transcript are, with the screen's height. */
const layout = (page) =>
  page.evaluate(() => {
    window.scrollTo(0, 0);
    const box = (selector) => document.querySelector(selector)?.getBoundingClientRect();
    const outcome = box("#outcome");
    const transcript = box("#transcript");
    return {
      outcomeTop: outcome?.top,
      outcomeBottom: outcome?.bottom,
      transcriptTop: transcript?.top,
      screen: window.innerHeight,
    };
  });

/** The outcome of `line` (a selector) is above the transcript and on the first screen. */
const outcomeFirst = async (page, size, line) => {
  const l = await layout(page);
  check(l.outcomeTop !== undefined && l.outcomeTop < l.transcriptTop, `${size}: the outcome is above the transcript`);
  const lineBox = await page.locator(line).first().boundingBox();
  check(lineBox && lineBox.y + lineBox.height <= l.screen, `${size}: ${line} is on the first screen (ends at ${Math.round(lineBox?.y + lineBox?.height)} of ${l.screen} px)`);
};

const noOverflow = async (page, size, name) => {
  const found = await overflowing(page);
  check(found.length === 0, `${size} ${name}: nothing overflows its container (${found.join("; ")})`);
};

/** axe-core's serious and critical violations on `path`, as a page and with every
 * disclosure open; run in a context that bypasses the CSP so the test can add axe. */
async function accessible(axeContext, size, path, name) {
  const page = await axeContext.newPage();
  await page.goto(`${base}${path}`);
  const found = [];
  for (const opened of [false, true]) {
    if (opened) await page.evaluate(() => document.querySelectorAll("details").forEach((d) => (d.open = true)));
    if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.addScriptTag({ content: axeSource });
    const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
    check(result.passes.length > 10, `${size} ${name}: axe ran its rules (${result.passes.length} passed)`);
    for (const v of result.violations.filter((v) => ["serious", "critical"].includes(v.impact))) {
      found.push(`${v.id} (${v.impact}, ${v.nodes.length}×: ${v.nodes[0]?.target?.join(" ")}): ${v.help}`);
    }
  }
  await page.close();
  check(found.length === 0, `${size} ${name}: axe finds no serious or critical violation (${found.join("; ")})`);
}

try {
  // The accessibility check itself: axe flags text too faint to read (as the header's time
  // zone once was, at 3.0:1).
  {
    const probe = await (await context("desktop", { bypassCSP: true })).newPage();
    await probe.setContent('<html lang="en"><title>t</title><main><p style="color:#5d6778;background:#111a2e">Times in UTC</p></main></html>');
    await probe.addScriptTag({ content: axeSource });
    const result = await probe.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
    check(result.violations.some((v) => v.id === "color-contrast" && v.impact === "serious"), "axe reports a 3.0:1 contrast as a serious violation");
    await probe.context().close();
  }

  // ---- On a laptop ----
  const desktop = await context("desktop");
  const page = await open(desktop);

  // Signing in: the dashboard sends the browser to the form first.
  await page.goto(`${base}/admin`);
  check(page.url().includes("/admin/login"), "an anonymous visit lands on the sign-in form");
  await shot(page, "desktop", "01-login");
  await page.fill("#token", "not the token");
  await page.click("button[type=submit]");
  check((await page.textContent("#login-error")).includes("not the admin token"), "a wrong token is refused");
  await page.fill("#token", token);
  await Promise.all([page.waitForURL(`${base}/admin`), page.click("button[type=submit]")]);
  const session = (await desktop.cookies()).find((c) => c.name === "deskbridge_admin");
  check(session && session.httpOnly && session.sameSite === "Strict", "the session cookie is HttpOnly and SameSite=Strict");
  check((await page.textContent("#tz")).includes(TIME_ZONE), "times are shown in the browser's time zone");

  // The same pages on a phone, and axe-core on each at both sizes, as they are at each step.
  const phone = await context("phone");
  await phone.addCookies([{ ...session }]);
  const small = await open(phone);
  const axeContexts = {};
  for (const size of ["desktop", "phone"]) {
    axeContexts[size] = await context(size, { bypassCSP: true });
    await axeContexts[size].addCookies([{ ...session }]);
  }
  /** The page at `path` on the phone (outcome first on conversations, nothing overflowing,
   * a screenshot), and axe-core on it at both sizes. */
  const alsoOnAPhone = async (name, path) => {
    await small.goto(`${base}${path}`);
    check(small.url() === `${base}${path}`, `phone ${name}: shares the session`);
    if (path.startsWith("/admin/conversations/") && path !== notFound) await outcomeFirst(small, "phone", "#outcome li");
    await shot(small, "phone", name);
    await noOverflow(small, "phone", name);
    await noOverflow(page, "desktop", name);
    for (const size of ["desktop", "phone"]) await accessible(axeContexts[size], size, path, name);
  };
  const here = () => new URL(page.url()).pathname + new URL(page.url()).search;

  // Overview: what is wrong, at a glance.
  const dead = Number(await page.textContent("#dead"));
  check(dead === 5, `the overview counts 5 dead deliveries (${dead})`);
  check(await page.locator(".card.alert #dead").isVisible(), "a dead count above zero is highlighted");
  check((await page.locator("#last-received time").getAttribute("datetime")) !== null, "the last conversation received is shown, with its exact time");
  const archive = page.locator('#destinations tr[data-destination="archive"]');
  check((await archive.getAttribute("data-state")) === "paused", "the down destination is paused");
  const archiveText = await archive.textContent();
  check(archiveText.includes("Paused because: Could not connect: connection refused"), "the overview says why it is paused, in words");
  check(archiveText.includes("Next probe") && archiveText.includes("since"), "…since when, and when the next probe runs");
  check(archiveText.includes("resumes"), "…and what resumes it");
  check((await page.locator('#destinations tr[data-destination="helpdesk"] a.dead-link').textContent()).includes("3 dead"), "a destination with dead deliveries links to them");
  check((await page.locator('#destinations tr[data-destination="archive"] a.dead-link').count()) === 0, "a destination without dead deliveries links nowhere");
  check(await page.isVisible("#refresh"), "the overview says it updates itself");
  await page.click("#refresh-toggle");
  check((await page.getAttribute("#refresh-toggle", "aria-pressed")) === "true", "its updates can be paused");
  await page.click("#refresh-toggle");
  await shot(page, "desktop", "02-overview");
  await alsoOnAPhone("02-overview", here());
  await page.reload();

  // The list: counts, kinds, failing destinations, one name for anonymous visitors.
  await page.click("header.top >> text=Conversations");
  check((await page.textContent("#result-count")).startsWith(`${conversationCount} conversations`), "the list counts every conversation");
  check((await page.locator("#conversations tbody tr").count()) === 50, "50 conversations per page");
  check((await page.locator("#conversations .kind-missed").count()) > 0 && (await page.locator("#conversations .kind-offline").count()) > 0, "missed and offline chats are marked");
  check((await page.locator('#conversations tr[data-key="208-78"]').textContent()).includes("crm: failed"), "the list names the failing destination");
  check((await page.locator('#conversations tr[data-key="208-84"] a.conversation').textContent()) === "Anonymous visitor", "an anonymous visitor is named so in the list");
  check((await page.locator('#conversations tr[data-key="208-77"]').textContent()).includes("lasted 36s"), "the list shows the chat's start and length");
  await shot(page, "desktop", "03-conversations");
  await alsoOnAPhone("03-conversations", here());
  await page.reload();
  await page.fill("input[name=q]", email);
  await Promise.all([page.waitForURL(/q=/), page.press("input[name=q]", "Enter")]);
  const rows = page.locator("#conversations tbody tr");
  check((await rows.count()) === 1, "the search finds exactly one conversation");
  check((await page.textContent("#result-count")).startsWith("1 conversation matches"), "the search says how many match");
  check((await rows.first().textContent()).includes(email), "the row shows the visitor's email");
  await shot(page, "desktop", "04-conversations-search");
  await alsoOnAPhone("04-conversations-search", here());
  await page.reload();

  // The failed conversation: what failed, why and what to do, before the transcript.
  await Promise.all([page.waitForURL(/\/admin\/conversations\/.+/), page.click("#conversations a.conversation")]);
  const conversationUrl = page.url();
  const line = `#outcome-${deliveryId}`;
  await outcomeFirst(page, "desktop", line);
  const failed = await page.textContent(line);
  check((await page.getAttribute(line, "data-state")) === "dead", "the crm delivery is dead");
  check(failed.includes("HTTP 400 Bad Request") && failed.includes("mailbox not set up"), "the outcome says what failed, with the destination's own words");
  check(failed.includes("Not retried") && failed.includes("then retry"), "…that it is not retried, and what to do");
  check(await page.locator(`${line} button.retry`).isVisible(), "…with Retry beside it");
  check((await page.textContent('#outcome li[data-destination="helpdesk"]')).includes("delivered"), "the helpdesk delivery is shown delivered");
  check((await page.textContent('#outcome li[data-destination="archive"]')).includes("paused"), "the archive delivery waits for its paused destination");
  const transcript = await page.textContent("#transcript");
  check(transcript.includes(message), "the transcript shows the visitor's message");
  // The first message was sent at 2015-03-27 15:33:59 UTC: 00:33:59 the next day in Tokyo.
  check(transcript.includes("2015-03-28 00:33:59"), "transcript times are in the browser's time zone");
  const background = (selector) => page.$eval(selector, (el) => getComputedStyle(el).backgroundColor);
  check((await background("#transcript .from-visitor")) !== (await background("#transcript .from-agent")), "visitor and agent messages look different");
  check((await page.getAttribute(line, "data-attempts")) === "1" && (await page.locator(`#delivery-${deliveryId} tr.attempt`).count()) === 1, "one attempt, on the outcome and in the attempt log");
  check((await api(page, `/deliveries/${deliveryId}`)).attempts.length === 1, "the API counts the same attempt");
  await page.click(`#delivery-${deliveryId} details.sent summary`);
  const sent = await page.textContent(`#delivery-${deliveryId} details.sent pre`);
  check(sent.startsWith("POST ") && sent.includes(email), "the request is shown exactly as it was last sent");
  await page.click(`#delivery-${deliveryId} details.sent summary`);
  await shot(page, "desktop", "05-conversation-failed");
  await alsoOnAPhone("05-conversation-failed", here());
  await page.reload();

  // A chat of 300 messages: the outcome still comes first; the middle of the chat is folded.
  await page.goto(`${base}/admin/conversations/${longKey}`);
  await outcomeFirst(page, "desktop", "#outcome li");
  check((await page.locator("#transcript .msg:visible").count()) === 6, "a long transcript shows its first and last messages");
  check((await page.textContent("#transcript-more summary")).includes("Show all 300 messages"), "…and offers to show all 300");
  await shot(page, "desktop", "06-conversation-long");
  await alsoOnAPhone("06-conversation-long", here());
  await page.reload();
  await page.click("#transcript-more summary");
  check((await page.locator("#transcript .msg:visible").count()) === 300, "all 300 show on request");
  await page.goto(`${base}/admin/conversations/208-84`);
  check((await page.textContent("h1")).includes("Anonymous visitor"), "the anonymous visitor has the same name on their page");

  // Dead letters, grouped by destination and error, with counts that agree with the API.
  await page.click("header.top >> text=Dead letters");
  check((await page.getAttribute("#dead-summary", "data-total")) === "5", "the dead letters page counts 5");
  const groups = await page.$$eval("section.group", (list) =>
    list.map((g) => ({
      destination: g.dataset.destination,
      count: Number(g.dataset.count),
      rows: g.querySelectorAll("tbody tr").length,
    })),
  );
  const summary = groups.map((g) => `${g.destination}:${g.count}`).sort().join(",");
  check(summary === expectedGroups, `dead letters are grouped by destination and error (${summary})`);
  check(groups.every((g) => g.rows === g.count), "each group lists as many conversations as it counts");
  const fromApi = await api(page, "/dead-letters");
  check(fromApi.groups.map((g) => `${g.destination}:${g.count}`).sort().join(",") === expectedGroups && fromApi.total === 5, "the API groups them the same way");
  check((await page.getAttribute(`#dead-${deliveryId}`, "data-attempts")) === "1", "the dead letters page numbers attempts as the conversation does");
  check((await page.locator("section.group details.raw").count()) === groups.length, "each group keeps its raw error behind a disclosure");
  await shot(page, "desktop", "07-dead-letters");
  await alsoOnAPhone("07-dead-letters", here());
  await page.reload();

  // Retry one row: a notice that says how many, which a reload does not bring back.
  await Promise.all([page.waitForURL(`${base}/admin/dead`), page.click(`#dead-${deliveryId} button.retry`)]);
  check((await page.textContent("#notice")).includes("1 delivery is due again"), "the retry is confirmed with its count");
  check(!page.url().includes("?"), "the address carries no notice");
  check(!(await page.isVisible(`#dead-${deliveryId}`)), "the retried delivery has left the dead letters");
  await page.reload();
  check((await page.locator("#notice").count()) === 0, "the notice does not come back on reload");

  // Retry a group (the other crm one), then everything left (the helpdesk ones); each asks
  // first, saying how many.
  const crmGroup = page.locator('section.group[data-destination="crm"]');
  check((await crmGroup.getAttribute("data-count")) === "1", "the crm group has one delivery left");
  await Promise.all([page.waitForURL(`${base}/admin/dead`), crmGroup.locator("button.retry-group").click()]);
  check(dialogs.at(-1).includes("Retry 1 dead delivery to crm"), `retrying a group asks first, with its count (${dialogs.at(-1)})`);
  check((await page.textContent("#notice")).includes("1 delivery is due again"), "the group retry is confirmed");
  await page.reload();
  await Promise.all([page.waitForURL(`${base}/admin/dead`), page.click("#retry-all")]);
  check(dialogs.at(-1).includes("Retry all 3 dead deliveries"), `retry all asks first, with its count (${dialogs.at(-1)})`);
  check((await page.textContent("#notice")).includes("3 deliveries are due again"), "retry all says how many");
  await shot(page, "desktop", "08-dead-letters-after-retry");
  await alsoOnAPhone("08-dead-letters-after-retry", here());
  let deadline = Date.now() + 15000;
  while (!(await page.isVisible("#no-dead")) && Date.now() < deadline) {
    await page.waitForTimeout(250);
    await page.reload();
  }
  check(await page.isVisible("#no-dead"), "no dead deliveries are left");

  // Back on the conversation: delivered, the admin's retry marked, attempts agree everywhere.
  await page.goto(conversationUrl);
  deadline = Date.now() + 15000;
  while ((await page.getAttribute(line, "data-state")) !== "done" && Date.now() < deadline) {
    await page.waitForTimeout(250);
    await page.reload();
  }
  check((await page.getAttribute(line, "data-state")) === "done", "the retried delivery turns done");
  check((await page.textContent(line)).includes("Replayed by admin"), "the outcome says the admin replayed it");
  check((await page.getAttribute(line, "data-attempts")) === "2" && (await page.locator(`#delivery-${deliveryId} tr.attempt`).count()) === 2, "two attempts on the outcome and in the log");
  check((await page.textContent(`#delivery-${deliveryId} tr.replay`)).includes("Retried by admin"), "the attempt log marks the retry as the admin's");
  check((await api(page, `/deliveries/${deliveryId}`)).attempts.length === 2, "the API counts two attempts");
  const listed = (await api(page, "/deliveries?state=done&limit=1000")).find((d) => String(d.id) === deliveryId);
  check(listed.attempts === 2, "the delivery list counts two attempts too");
  check((await page.locator(`${line} details.confirm`).count()) === 1, "a delivered one offers Send again, behind a warning");
  await page.click(`${line} details.confirm summary`);
  check((await page.textContent(`${line} details.confirm .warn`)).includes("second ticket"), "the warning says it may create a second ticket");
  await Promise.all([page.waitForURL(conversationUrl), page.click(`${line} details.confirm button`)]);
  check((await page.textContent("#notice")).includes("1 delivery will be sent again"), "sending again is confirmed with its count");
  await page.reload();
  check((await page.locator("#notice").count()) === 0, "the notice is gone after a reload");
  deadline = Date.now() + 15000;
  while ((await page.locator(`#delivery-${deliveryId} tr.attempt`).count()) < 3 && Date.now() < deadline) {
    await page.waitForTimeout(250);
    await page.reload();
  }
  check((await page.getAttribute(line, "data-state")) === "done" && (await page.getAttribute(line, "data-attempts")) === "3", "sent again: three attempts");
  check((await page.textContent(`#delivery-${deliveryId}`)).includes("Sent again by admin"), "the attempt log marks sending again as the admin's");
  await shot(page, "desktop", "09-conversation-delivered");
  await alsoOnAPhone("09-conversation-delivered", here());

  // A page that does not exist: an error page in the same layout, at both sizes.
  await page.goto(`${base}${notFound}`);
  check((await page.textContent("#error")).includes("no conversation 208-999999"), "an unknown conversation gets an error page that says so");
  await shot(page, "desktop", "10-not-found");
  await alsoOnAPhone("10-not-found", notFound);

  // The sign-in page on a phone, and axe-core on it at both sizes.
  const signedOut = await open(await context("phone"));
  await signedOut.goto(`${base}/admin/login`);
  await noOverflow(signedOut, "phone", "01-login");
  await shot(signedOut, "phone", "01-login");
  for (const size of ["desktop", "phone"]) {
    const anonymous = await context(size, { bypassCSP: true });
    await accessible(anonymous, size, "/admin/login", "01-login");
    await anonymous.close();
  }

  // Without JavaScript the pages work the same (times in the server's zone); the overview
  // only does not update itself, and does not claim to.
  const noScript = await context("desktop", { javaScriptEnabled: false });
  await noScript.addCookies([{ ...session }]);
  const plain = await noScript.newPage();
  await plain.goto(`${base}/admin`);
  check(!(await plain.isVisible("#refresh")), "without JavaScript the overview does not claim to update itself");
  await plain.goto(conversationUrl);
  await plain.click(`${line} details.confirm summary`);
  check(await plain.isVisible(`${line} details.confirm button`), "without JavaScript Send again still asks first");
  await noScript.close();

  // Sign out.
  await page.goto(`${base}/admin`);
  await Promise.all([page.waitForURL(/\/admin\/login/), page.click("header.top button")]);
  await page.goto(`${base}/admin`);
  check(page.url().includes("/admin/login"), "after signing out the dashboard asks to sign in again");

  // The wrong token and the unknown conversation above are the only expected errors (the
  // browser logs each 404 once more, without its address).
  const notFoundAnswers = problems.filter((p) => p === `HTTP 404: ${base}${notFound}`).length;
  const notFoundLogged = problems.filter((p) => p.includes("status of 404")).length;
  check(notFoundAnswers === 2 && notFoundLogged === notFoundAnswers, "the only 404s are the unknown conversation's");
  const unexpected = problems.filter((p) => !p.includes("401") && !p.includes("404"));
  check(unexpected.length === 0, `no console errors, CSP violations or failed requests (${unexpected.join("; ")})`);
  console.log("admin e2e: all checks passed");
} finally {
  await browser.close();
}
