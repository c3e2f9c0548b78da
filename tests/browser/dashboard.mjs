// The dashboard's acceptance walk in a real browser (Debian's chromium, headless, through
// playwright-core): a caregiver sees a fall arrive live, acknowledges and resolves it; a
// crew member sees the failed lamp and its work order and no resident's data; a
// supervisor sees every device and the gateway's health; repeated wrong passwords slow
// sign-in down. Screenshots go to SHOTS_DIR.
//
// Started by tests/tests/dashboard.rs, which runs the gateway and the simulated devices.
// It talks to that test over stdin/stdout: it prints `need fall` when the caregiver's
// inbox is open and waits for a line `fall` (the wearer has fallen). Every other line it
// prints is a log line; it exits 0 when every check passed, 1 with the reason otherwise.

import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`environment variable ${k} is required`);
  return v;
};
const BASE = env('LINLI_URL');
const CARER = { name: env('CAREGIVER_NAME'), password: env('CAREGIVER_PASSWORD'), display: env('CAREGIVER_DISPLAY') };
const CREW = { name: env('CREW_NAME'), password: env('CREW_PASSWORD'), display: env('CREW_DISPLAY') };
const SUPERVISOR = { name: env('SUPERVISOR_NAME'), password: env('SUPERVISOR_PASSWORD'), display: env('SUPERVISOR_DISPLAY') };
const JUNK_DEVICE = env('JUNK_DEVICE');
const RESIDENT = env('RESIDENT');
const RESIDENT_DEVICE = env('RESIDENT_DEVICE');
const LAMP = env('LAMP_ASSET');
const SHOTS = env('SHOTS_DIR');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// Generous: the fall travels firmware → MQTT → journal → rules → SSE on a shared machine.
const LIVE_MS = 120_000;

const log = (...a) => console.log('[browser]', ...a);
const check = (ok, what) => {
  if (!ok) throw new Error(`check failed: ${what}`);
  log('ok:', what);
};

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function waitFor(word) {
  console.log(`need ${word}`);
  for (;;) {
    const { value, done } = await lines.next();
    if (done) throw new Error(`stdin closed while waiting for "${word}"`);
    if (value.trim() === word) return;
  }
}

async function signIn(page, who) {
  await page.goto(BASE + '/');
  await page.getByTestId('signin').waitFor();
  await page.getByTestId('signin-name').fill(who.name);
  await page.getByTestId('signin-password').fill(who.password);
  await page.getByTestId('signin-submit').click();
  await page.getByTestId('whoami').filter({ hasText: who.display || who.name }).waitFor();
}

async function caregiver(browser) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  // Refused requests show as console errors too (the 401 of "am I signed in?", a 404 for a
  // series with no data yet); those are answers, not faults. Script errors and server
  // errors are faults.
  page.on('console', (m) => m.type() === 'error' && !m.text().startsWith('Failed to load resource') && errors.push(m.text()));
  page.on('response', (r) => r.status() >= 500 && errors.push(`${r.status()} ${r.url()}`));
  page.on('response', (r) => r.status() >= 400 && log('answer', r.status(), r.url()));

  await signIn(page, CARER);
  const cookies = await ctx.cookies();
  const session = cookies.find((c) => c.name === '__Host-linli_session');
  check(session && session.httpOnly && session.secure && session.sameSite === 'Strict',
    'the session cookie is HttpOnly, Secure and SameSite=Strict');
  check(await page.locator('a[href="#/residents"]').isVisible(), 'a caregiver has the Residents view');
  check(!(await page.locator('a[href="#/ops"]').isVisible()), 'a caregiver has no Operations view');
  await page.getByTestId('inbox').waitFor();
  await page.getByTestId('live-status').filter({ hasText: 'live' }).waitFor({ timeout: 30_000 });
  check((await page.locator('[data-kind="fall"]').count()) === 0, 'no fall before the wearer falls');

  // The wearer falls (the test drives the pendant's virtual board) and the alarm arrives
  // without a reload.
  await waitFor('fall');
  const row = page.locator('[data-alarm-id][data-kind="fall"]').first();
  await row.waitFor({ timeout: LIVE_MS });
  const id = await row.getAttribute('data-alarm-id');
  check((await row.getAttribute('data-priority')) === '1', `fall alarm ${id} is priority 1`);
  await page.getByTestId('p1-banner').waitFor();
  check(await page.getByTestId('p1-banner').isVisible(), 'the P1 banner shows while the fall is unacknowledged');
  const banner = await page.getByTestId('p1-banner').evaluate((e) => getComputedStyle(e).backgroundColor);
  check(/rgb\((\d+)/.test(banner) && Number(banner.match(/rgb\((\d+)/)[1]) > 150, `the P1 banner is red (${banner})`);
  const sound = await page.evaluate(() => document.documentElement.dataset.sound);
  check(sound === 'playing', `the P1 sound plays (data-sound=${sound})`);
  await page.screenshot({ path: join(SHOTS, 'inbox.png'), fullPage: true });
  log('screenshot', join(SHOTS, 'inbox.png'));
  // On a tablet held upright: nothing wider than the screen, buttons big enough to tap.
  await page.setViewportSize({ width: 768, height: 1024 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the inbox fits a 768 px tablet (overflow ${overflow} px)`);
  const ackBox = await row.locator('button[data-action="ack"]').boundingBox();
  check(ackBox && ackBox.height >= 44, `the acknowledge button is a 44 px touch target (${ackBox && ackBox.height} px)`);
  await page.screenshot({ path: join(SHOTS, 'inbox-tablet.png') });
  await page.setViewportSize({ width: 1280, height: 900 });

  // Acknowledge.
  await row.locator('button[data-action="ack"]').click();
  await page.locator(`[data-alarm-id="${id}"][data-state="active_acked"]`).waitFor({ timeout: 20_000 });
  await page.getByTestId('p1-banner').waitFor({ state: 'hidden', timeout: 20_000 });
  check(true, 'acknowledged: the row shows acked and the banner is gone');
  const tta = await page.locator(`[data-alarm-id="${id}"] [data-testid="time-to-ack"]`).innerText();
  check(/\d/.test(tta), `the row shows the time to acknowledge ("${tta.trim()}")`);

  // Resolve with a disposition.
  await page.locator(`[data-alarm-id="${id}"] button[data-action="resolve"]`).click();
  await page.getByTestId('disposition').selectOption({ index: 1 });
  const disposition = await page.getByTestId('disposition').evaluate((s) => s.value);
  await page.getByTestId('resolve-note').fill('Helped back to bed, no injury');
  await page.getByTestId('resolve-confirm').click();
  await page.locator(`[data-alarm-id="${id}"]`).waitFor({ state: 'detached', timeout: 20_000 });
  check(true, `resolved with "${disposition}": gone from the open inbox`);

  // The history of the closed alarm shows both actions with the caregiver's name.
  await page.getByTestId('show-closed').check();
  const closed = page.locator(`[data-alarm-id="${id}"]`);
  await closed.waitFor({ timeout: 20_000 });
  await closed.locator('td, .alarm-main, span').first().click();
  const history = page.getByTestId('alarm-history');
  await history.waitFor({ timeout: 20_000 });
  const items = await history.locator('li').allInnerTexts();
  log('history:', JSON.stringify(items));
  const acked = items.find((t) => /acknowledged/i.test(t));
  const resolved = items.find((t) => /resolved/i.test(t));
  check(acked && acked.includes(CARER.display), 'the history shows the acknowledgement by the caregiver');
  check(resolved && resolved.includes(CARER.display), 'the history shows the resolution by the caregiver');

  // The resident's view: timeline, charts, devices.
  await page.goto(`${BASE}/#/resident/${encodeURIComponent(RESIDENT)}`);
  await page.getByTestId('resident-view').waitFor();
  await page.getByTestId('resident-timeline').waitFor();
  await page.getByTestId('resident-timeline').filter({ hasText: /fall/i }).waitFor({ timeout: 20_000 });
  check(true, 'the resident timeline shows the fall');
  await page.locator('[data-testid="series-chart"] canvas, [data-testid="chart-empty"]').first().waitFor({ timeout: 20_000 });
  check((await page.locator('[data-testid="series-chart"] canvas').count()) > 0, 'the resident view draws charts');
  check((await page.getByTestId('resident-view').innerText()).includes(RESIDENT_DEVICE), 'the resident view lists the pendant');
  await page.screenshot({ path: join(SHOTS, 'resident.png'), fullPage: true });
  log('screenshot', join(SHOTS, 'resident.png'));

  check(errors.length === 0, `no script errors in the caregiver's page (${errors.join(' | ')})`);
  await ctx.close();
}

async function crew(browser) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  const residentCalls = [];
  page.on('request', (r) => {
    if (r.url().includes('/api/residents')) residentCalls.push(r.url());
  });
  await signIn(page, CREW);
  check(!(await page.locator('a[href="#/residents"]').isVisible()), 'a crew member has no Residents view');

  await page.goto(`${BASE}/#/street`);
  await page.getByTestId('street-map').waitFor();
  const lamp = page.locator(`[data-testid="street-map"] [data-asset="${LAMP}"]`);
  await page.locator(`[data-testid="street-map"] [data-asset="${LAMP}"][data-state="alarm"]`).waitFor({ timeout: LIVE_MS });
  check(true, `the failed lamp ${LAMP} is drawn in the alarm state`);
  const orders = page.getByTestId('work-orders');
  await orders.locator('tr[data-work-order-id]').filter({ hasText: LAMP }).first().waitFor({ timeout: LIVE_MS });
  const order = await orders.locator('tr[data-work-order-id]').filter({ hasText: LAMP }).first().innerText();
  log('work order:', order.replace(/\s+/g, ' '));
  const api = await (await page.request.get(BASE + '/api/work-orders?open=true')).json();
  const wo = (api.work_orders || []).find((w) => JSON.stringify(w).includes(LAMP));
  check(wo, `the API has the lamp's work order`);
  const state = String(wo.state).replace(/_/g, ' ');
  check(order.toLowerCase().includes(state), `the work order shows its state (${state})`);
  check(/\d+\s*(s|min|h)\b.*(left|overdue)/i.test(order), 'the work order shows its SLA (time left or overdue)');
  check(await page.locator('[data-testid="street-map"] [data-state="unknown"]').count() > 0
    || (await page.getByTestId('street-view').innerText()).toLowerCase().includes('unknown'),
    'the map shows the "unknown" state (legend or an asset not heard from)');
  await lamp.click();
  await page.getByTestId('asset-detail').waitFor();
  await page.screenshot({ path: join(SHOTS, 'street.png'), fullPage: true });
  log('screenshot', join(SHOTS, 'street.png'));

  // No resident data anywhere: not in the pages, not through the API with this session.
  await page.goto(`${BASE}/#/inbox`);
  await page.getByTestId('inbox').waitFor();
  await page.waitForTimeout(1500);
  const seen = await page.locator('body').innerText();
  check(!seen.includes(RESIDENT) && !seen.includes(RESIDENT_DEVICE), "the crew member's pages name no resident or care device");
  check(residentCalls.length === 0, `the crew dashboard asked for no resident data (${residentCalls.join(', ')})`);
  for (const path of [`/api/residents/${RESIDENT}`, '/api/residents', `/api/devices/${RESIDENT_DEVICE}/readings`, `/api/series?device=${RESIDENT_DEVICE}&metric=battery_pct`]) {
    const r = await page.request.get(BASE + path);
    check(r.status() === 403, `GET ${path} with the crew session is 403 (got ${r.status()})`);
  }
  const alarms = await (await page.request.get(BASE + '/api/alarms?limit=1000')).json();
  check(!JSON.stringify(alarms).includes(RESIDENT), "the crew member's alarm list holds no resident's alarm");
  await ctx.close();
}

async function supervisor(browser) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  await signIn(page, SUPERVISOR);
  for (const view of ['#/residents', '#/street', '#/ops']) {
    check(await page.locator(`a[href="${view}"]`).isVisible(), `a supervisor has ${view}`);
  }
  await page.goto(`${BASE}/#/ops`);
  await page.getByTestId('ops-view').waitFor();
  const devices = page.getByTestId('ops-devices');
  for (const id of [RESIDENT_DEVICE, 'elm-lamp-1', JUNK_DEVICE]) {
    await devices.locator('tr', { hasText: id }).first().waitFor({ timeout: 20_000 });
  }
  check(true, 'operations lists every device with its liveness, battery and firmware');
  const lamp = await devices.locator('tr', { hasText: 'elm-lamp-1' }).first().innerText();
  check(/\bok\b/i.test(lamp), `a reporting lamp is live (${lamp.replace(/\s+/g, ' ')})`);
  // The junk frame the test sent is counted under its reason.
  const rejections = page.getByTestId('ops-rejections');
  await rejections.waitFor({ timeout: 20_000 });
  const text = await rejections.innerText();
  check(text.trim().length > 0 && /\d/.test(text), `rejections by reason are shown (${text.replace(/\s+/g, ' ')})`);
  const health = await page.getByTestId('ops-health').innerText();
  check(/spool/i.test(health) && /ingest|readings/i.test(health), 'gateway health shows ingest and the spool');
  await page.screenshot({ path: join(SHOTS, 'operations.png'), fullPage: true });
  log('screenshot', join(SHOTS, 'operations.png'));
  await ctx.close();
}

async function bruteForce(browser) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(BASE + '/');
  await page.getByTestId('signin').waitFor();
  const attempt = async (password) => {
    await page.getByTestId('signin-name').fill(CREW.name);
    await page.getByTestId('signin-password').fill(password);
    const answer = page.waitForResponse((r) => r.url().endsWith('/api/session') && r.request().method() === 'POST');
    await page.getByTestId('signin-submit').click();
    const r = await answer;
    return { status: r.status(), text: await page.getByTestId('signin-error').innerText() };
  };
  for (let i = 1; i <= 5; i++) {
    const r = await attempt(`wrong-password-${i}`);
    check(r.status === 401, `wrong password ${i} is refused (401)`);
  }
  // The sixth attempt, even with the right password, must wait.
  const r = await attempt(CREW.password);
  check(r.status === 429, `after five wrong passwords the next attempt is slowed down (${r.status})`);
  check(/wait\s+\d+\s*s/i.test(r.text), `the sign-in form says how long to wait ("${r.text}")`);
  check(!(await page.getByTestId('whoami').isVisible()), 'nobody is signed in');
  await ctx.close();
}

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'],
  });
  try {
    await caregiver(browser);
    await crew(browser);
    await supervisor(browser);
    // Last: it slows every sign-in from this address for a while.
    await bruteForce(browser);
  } finally {
    await browser.close();
  }
  console.log('all browser checks passed');
}

main().then(
  () => process.exit(0),
  (e) => {
    console.log(`FAILED: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  },
);
