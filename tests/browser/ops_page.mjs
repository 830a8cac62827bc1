// Drives the gateway's ops page (/ops) in the system's headless Chromium, as an operator would:
// opens it with a token, checks the sync health, filters the dead letters, opens one, dry-runs
// it, replays it and waits for the job to finish; then switches the tenant's (FLAG_TENANT)
// firestore capability off and clears it again, reads the history, and finds panic mode refused
// to an ops token. Run by tests/it/ops_page.rs:
//
//   OPS_URL=http://127.0.0.1:8000/ops TOKEN=... CHROMIUM=/usr/bin/chromium \
//   FILTER='{"topic":"deadletter.ventures-sync.commands.v1","kind":"http_5xx"}' \
//   SCREENSHOTS=target/system-tests/x node tests/browser/ops_page.mjs
//
// Prints one JSON line with what it saw; exits non-zero (with the step that failed) otherwise.
import { chromium } from "playwright-core";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const opsUrl = env("OPS_URL");
const token = env("TOKEN");
const filter = JSON.parse(env("FILTER", "{}"));
const screenshots = env("SCREENSHOTS", ".");
const flagTenant = env("FLAG_TENANT", "default");
const STEP = 60_000;

const browser = await chromium.launch({
  executablePath: env("CHROMIUM", "/usr/bin/chromium"),
  headless: true,
  // Root in CI and containers: Chromium's sandbox needs user namespaces it may not have.
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
});
let step = "open the page";
const seen = {};
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
page.setDefaultTimeout(STEP);
const consoleErrors = [];
page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
page.on("pageerror", (e) => consoleErrors.push(String(e)));
// The replay asks for confirmation.
page.on("dialog", (d) => d.accept());
try {
  await page.goto(`${opsUrl}?token=${encodeURIComponent(token)}`);
  seen.tokenLeftInAddress = page.url().includes("token=");
  seen.tokenState = await page.locator("#token-state").textContent();

  step = "see the sync health";
  await page.locator('#health-integrations tr[data-integration="ventures"]').waitFor();
  seen.integrations = await page.locator("#health-integrations tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.integration));

  step = "filter the dead letters";
  for (const [name, value] of Object.entries(filter)) await page.fill(`#dl-${name}`, value);
  await page.click("#dl-search");
  const row = page.locator("#dl-table tbody tr[data-id]").first();
  await row.waitFor();
  seen.listed = await page.locator("#dl-table tbody tr[data-id]").count();
  seen.deadLetterId = await row.getAttribute("data-id");
  seen.counts = await page.locator("#dl-counts").textContent();

  step = "open one, decoded";
  await row.locator("button.dl-show").click();
  await page.locator("#dl-detail-event").filter({ hasText: "tenant_id" }).waitFor();
  seen.event = JSON.parse(await page.locator("#dl-detail-event").textContent());
  seen.detailError = await page.locator("#dl-detail-error").textContent();

  step = "dry-run it";
  await page.click("#dl-dry-run-one");
  await page.locator("#replay-report-summary").filter({ hasText: "would send 1" }).waitFor();
  seen.dryRun = await page.locator("#replay-report-summary").textContent();

  step = "replay it and follow the job";
  await page.click("#dl-replay-one");
  await page.locator("#job-state").filter({ hasText: /^(finished|failed)/ }).waitFor();
  seen.jobId = await page.locator("#job-id").textContent();
  seen.jobState = await page.locator("#job-state").textContent();
  seen.jobCounts = await page.locator("#job-counts").textContent();
  seen.progress = await page.locator("#job-progress").evaluate((p) => ({ value: p.value, max: p.max }));
  seen.progressText = await page.locator("#job-progress-text").textContent();
  await page.locator(`#jobs-table tr[data-job="${seen.jobId}"]`).waitFor();
  seen.message = await page.locator("#message").textContent();

  step = "switch the tenant's firestore capability off from the page";
  const firestoreRow = page.locator('#capabilities-table tr[data-integration="firestore"]');
  await firestoreRow.waitFor();
  await page.selectOption("#flag-integration", "firestore");
  await page.fill("#flag-tenant", flagTenant);
  await page.selectOption("#flag-state", "off");
  await page.fill("#flag-reason", "ops page test");
  await page.click("#flag-apply");
  await firestoreRow.filter({ hasText: `${flagTenant}=off` }).waitFor();
  seen.flagOff = await firestoreRow.textContent();

  step = "see the change in the history";
  for (let i = 0; i < 40 && !(await page.locator("#capability-history tbody tr").count()); i++) {
    await page.waitForTimeout(250);
    await page.click("#capabilities h2 button.refresh");
  }
  seen.history = await page.locator("#capability-history tbody tr").first().textContent();

  step = "switch it back (clear) from the page";
  await page.selectOption("#flag-state", "clear");
  await page.fill("#flag-reason", "ops page test done");
  await page.click("#flag-apply");
  await page.locator("#message").filter({ hasText: "cleared" }).waitFor();
  await firestoreRow.filter({ hasNotText: `${flagTenant}=off` }).waitFor();
  seen.flagCleared = await firestoreRow.textContent();

  // Everything so far without an error in the console; the refusal below logs one (a 403).
  seen.consoleErrors = [...consoleErrors];

  step = "try panic mode as ops (admin only)";
  await page.click('button[data-panic="qbo"]');
  await page.locator("#message").filter({ hasText: "forbidden" }).waitFor();
  seen.panicAsOps = await page.locator("#message").textContent();

  step = "done";
  await page.screenshot({ path: `${screenshots}/ops-page.png`, fullPage: true });
  console.log(JSON.stringify(seen));
} catch (e) {
  await page.screenshot({ path: `${screenshots}/ops-page-failed.png`, fullPage: true }).catch(() => {});
  const message = await page.locator("#message").textContent().catch(() => "");
  console.error(`ops page: could not ${step}: ${e.message}\npage message: ${message}\nconsole errors: ${consoleErrors.join("\n")}\nseen so far: ${JSON.stringify(seen)}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
