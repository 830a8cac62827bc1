// Drives the gateway's ops page (/ops) in the system's headless Chromium, as an operator would:
// opens it with a token, checks the sync health, filters the dead letters, opens one, dry-runs
// it, replays it and waits for the job to finish. Run by tests/it/ops_page.rs:
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

  step = "done";
  seen.consoleErrors = consoleErrors;
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
