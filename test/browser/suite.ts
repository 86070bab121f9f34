/**
 * The dashboard's end-to-end browser suite, runnable against any xdplb API server: the real
 * daemon (test/browser.test.ts wires it) or the synthetic dev server. It drives Debian's
 * Chromium through playwright-core and checks what a user would: login and roles, live data
 * on every page, an admin drain reaching the API, a viewer seeing no controls and being
 * refused by the API, and no console errors. It saves a screenshot of every page at 1280 and
 * 800 px under test-artifacts/screenshots/.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { repoRoot } from './repo-root';

// Functions passed to page.evaluate/waitForFunction run in the browser. The root tsconfig has
// no DOM lib (adding it globally would change every Node file's types), so these names are
// declared loosely here, for this module only.
declare const window: any;
declare const document: any;
declare const sessionStorage: any;

export interface Credentials { username: string; password: string }
export interface BrowserSuiteCreds { admin: Credentials; viewer: Credentials }

export interface BrowserSuiteOptions {
  /** Screenshot file prefix, e.g. 'daemon' or 'dev'. */
  label?: string;
  /** Default <repo>/test-artifacts/screenshots. */
  screenshotDir?: string;
  /** Chromium binary (default $XDPLB_CHROMIUM or /usr/bin/chromium). */
  chromiumPath?: string;
  /** Require sampled kernel events on the Trace page (default true: traffic must be flowing). */
  expectTraceEvents?: boolean;
  /** Called after the admin drained `backend` of `service` in the UI and the API shows it (kernel map check). */
  afterDrain?: (service: string, backend: string) => Promise<void>;
  /** Called after the admin undrained it again in the UI and the API shows it. */
  afterUndrain?: (service: string, backend: string) => Promise<void>;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface BrowserSuiteReport {
  screenshots: string[];
  drained: { service: string; backend: string };
  /** Distinct stats sample times seen on the overview (ms since the epoch). */
  samples: number[];
}

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export const PAGES = ['overview', 'services', 'programs', 'maps', 'trace', 'cluster', 'bench'] as const;
export type PageName = (typeof PAGES)[number];
const WIDTHS = [1280, 800];
const WAIT_MS = 15_000;

/** Where Chromium is expected; the suite refuses to run (and says so) when it is missing. */
export function chromiumPath(explicit?: string): string {
  return explicit ?? process.env.XDPLB_CHROMIUM ?? '/usr/bin/chromium';
}

interface ApiReply { status: number; body: any }

async function api(baseUrl: string, method: string, route: string, token: string | null, body?: unknown): Promise<ApiReply> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${baseUrl}/api/v1${route}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed: unknown = text;
  try { parsed = text ? JSON.parse(text) : null; } catch { /* keep text */ }
  return { status: res.status, body: parsed };
}

/**
 * Runs the whole suite. Throws (AssertionError or Error naming the failed step) on the first
 * failure; throws Error when Chromium is missing or the server has no service with a backend.
 */
export async function runBrowserSuite(baseUrl: string, creds: BrowserSuiteCreds, opts: BrowserSuiteOptions = {}): Promise<BrowserSuiteReport> {
  const base = baseUrl.replace(/\/+$/, '');
  const log = opts.log ?? (() => undefined);
  const label = opts.label ?? 'dashboard';
  const shotDir = opts.screenshotDir ?? path.join(repoRoot(), 'test-artifacts', 'screenshots');
  fs.mkdirSync(shotDir, { recursive: true });
  const exe = chromiumPath(opts.chromiumPath);
  if (!fs.existsSync(exe)) throw new Error(`Chromium not found at ${exe} (scripts/setup.sh installs Debian's chromium)`);

  const consoleErrors: string[] = [];
  let allowedConsole: RegExp | null = null;
  const screenshots: string[] = [];
  const watch = (page: Page, who: string) => {
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      if (allowedConsole?.test(msg.text())) return;
      consoleErrors.push(`[${who}] console.error: ${msg.text()} (${msg.location().url})`);
    });
    page.on('pageerror', (err) => consoleErrors.push(`[${who}] uncaught: ${err.message}`));
  };
  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    log(`browser: ${name}`);
    try {
      return await fn();
    } catch (err) {
      if (err instanceof Error) err.message = `[${name}] ${err.message}`;
      throw err;
    }
  };
  const shoot = async (page: Page, name: string) => {
    await page.evaluate(() => window.scrollTo(0, 0));
    const file = path.join(shotDir, `${label}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    screenshots.push(file);
  };

  const browser: Browser = await chromium.launch({ executablePath: exe, args: CHROMIUM_ARGS });
  try {
    // A service with a backend that is not draining is what the drain check needs.
    const target = await step('find a backend to drain', async () => {
      const adminLogin = await api(base, 'POST', '/login', null, creds.admin);
      assert.equal(adminLogin.status, 200, `admin login via API: ${JSON.stringify(adminLogin.body)}`);
      const services = await api(base, 'GET', '/services', adminLogin.body.token);
      assert.equal(services.status, 200);
      for (const svc of services.body.services as Array<{ name: string; backends: Array<{ key: string; draining: boolean }> }>) {
        const be = svc.backends.find((b) => !b.draining);
        if (be) return { service: svc.name, backend: be.key, adminApiToken: adminLogin.body.token as string };
      }
      throw new Error('the server has no service with a non-draining backend');
    });

    await step('wrong password is refused', async () => {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await context.newPage();
      watch(page, 'wrong-password');
      allowedConsole = /status of 401/; // the browser logs the refused login request itself
      await page.goto(`${base}/`);
      await page.fill('#login-user', creds.admin.username);
      await page.fill('#login-password', `${creds.admin.password}-wrong`);
      await page.click('form.login-card button[type=submit]');
      await page.waitForFunction(() => /wrong username or password/i.test(document.querySelector('.login-error')?.textContent ?? ''), null, { timeout: WAIT_MS });
      assert.equal(await page.locator('[data-testid=whoami]').count(), 0, 'no shell after a wrong password');
      assert.equal(await page.evaluate(() => sessionStorage.getItem('xdplb.token')), null, 'no token kept');
      await shoot(page, 'login-refused-1280');
      allowedConsole = null;
      const direct = await api(base, 'POST', '/login', null, { username: creds.admin.username, password: `${creds.admin.password}-wrong` });
      assert.equal(direct.status, 401, 'API refuses a wrong password with 401');
      await context.close();
    });

    let samples: number[] = [];
    await step('viewer: read-only pages, live data, no controls', async () => {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const page = await context.newPage();
      watch(page, 'viewer');
      await page.goto(`${base}/`);
      // Keyboard only: type, Tab, type, Enter.
      await page.locator('#login-user').focus();
      await page.keyboard.type(creds.viewer.username);
      await page.keyboard.press('Tab');
      await page.keyboard.type(creds.viewer.password);
      await page.keyboard.press('Enter');
      await page.waitForSelector('[data-testid=whoami]', { timeout: WAIT_MS });
      const who = await page.textContent('[data-testid=whoami]');
      assert.match(who ?? '', new RegExp(`${creds.viewer.username}.*viewer: read-only`), `header: ${who}`);

      samples = await checkOverview(page, base);
      await gotoPage(page, base, 'services');
      await waitForChange(page, '[data-testid=stats-at]');
      assert.ok(await page.locator('section[data-service]').count() >= 1, 'services listed');
      assert.equal(await page.locator('main [data-action]').count(), 0, 'a viewer sees no controls on Services');
      assert.equal(await page.locator('main section[data-service] button').count(), 0, 'no buttons in service panels');
      await noErrorBanner(page, 'viewer services');
      await shoot(page, 'viewer-services-1280');
      await gotoPage(page, base, 'programs');
      await page.waitForSelector('tr[data-prog-id]', { timeout: WAIT_MS });
      assert.equal(await page.locator('[data-action=toggle-prog-stats]').count(), 0, 'a viewer has no stats toggle');
      await gotoPage(page, base, 'trace');
      assert.equal(await page.locator('[data-action=set-sample-rate]').count(), 0, 'a viewer cannot set the sampling rate');

      const viewerToken = await page.evaluate(() => sessionStorage.getItem('xdplb.token'));
      assert.ok(viewerToken, 'viewer token in sessionStorage');
      const forged = await api(base, 'PATCH', `/services/${encodeURIComponent(target.service)}/backends/${encodeURIComponent(target.backend)}`, viewerToken, { drain: true });
      assert.equal(forged.status, 403, `forged PATCH with a viewer token: ${JSON.stringify(forged.body)}`);
      assert.equal(forged.body?.error?.code, 'XDPLB_ERR_FORBIDDEN');
      const forgedSettings = await api(base, 'PATCH', '/settings', viewerToken, { sampleRate: 1 });
      assert.equal(forgedSettings.status, 403, 'forged settings PATCH with a viewer token');
      const after = await api(base, 'GET', `/services/${encodeURIComponent(target.service)}`, target.adminApiToken);
      assert.equal(after.body.backends.find((b: { key: string }) => b.key === target.backend)?.draining, false, 'the forged drain changed nothing');

      await page.click('.topbar button:has-text("Log out")');
      await page.waitForSelector('#login-user', { timeout: WAIT_MS });
      const stale = await api(base, 'GET', '/whoami', viewerToken);
      assert.equal(stale.status, 401, 'the token is dead after logout');
      await context.close();
    });

    await step('admin: drain and undrain a backend through the UI', async () => {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const page = await context.newPage();
      watch(page, 'admin');
      await login(page, base, creds.admin);
      const who = await page.textContent('[data-testid=whoami]');
      assert.match(who ?? '', new RegExp(`${creds.admin.username}.*admin: can change`), `header: ${who}`);
      const token = await page.evaluate(() => sessionStorage.getItem('xdplb.token'));
      await gotoPage(page, base, 'services');
      const row = page.locator(`section[data-service="${target.service}"] tr[data-backend="${target.backend}"]`);
      await row.waitFor({ timeout: WAIT_MS });
      const backendState = async () => {
        const svc = await api(base, 'GET', '/services', token);
        assert.equal(svc.status, 200);
        return (svc.body.services as Array<{ name: string; backends: Array<{ key: string; draining: boolean }> }>)
          .find((s) => s.name === target.service)?.backends.find((b) => b.key === target.backend);
      };

      // Esc closes the confirmation and changes nothing.
      await row.locator('button[data-action=drain]').click();
      await page.waitForSelector('dialog.dialog[open]', { timeout: WAIT_MS });
      await shoot(page, 'admin-drain-dialog-1280');
      await page.keyboard.press('Escape');
      await page.waitForSelector('dialog.dialog', { state: 'detached', timeout: WAIT_MS });
      assert.equal((await backendState())?.draining, false, 'Esc cancelled the drain');

      await row.locator('button[data-action=drain]').click();
      await page.locator('dialog.dialog[open] button[type=submit]').click();
      await page.waitForSelector('dialog.dialog', { state: 'detached', timeout: WAIT_MS });
      await row.locator('[data-field=state]:has-text("draining")').waitFor({ timeout: WAIT_MS });
      assert.equal((await backendState())?.draining, true, 'GET /api/v1/services shows the backend draining');
      if (opts.afterDrain) await opts.afterDrain(target.service, target.backend);

      // Undrain with the keyboard only: Enter opens the dialog (focus on Cancel), Tab, Enter.
      await row.locator('button[data-action=undrain]').focus();
      await page.keyboard.press('Enter');
      await page.waitForSelector('dialog.dialog[open]', { timeout: WAIT_MS });
      await page.keyboard.press('Tab');
      assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('type')), 'submit', 'Tab reaches the confirm button');
      await page.keyboard.press('Enter');
      await page.waitForSelector('dialog.dialog', { state: 'detached', timeout: WAIT_MS });
      await row.locator('button[data-action=drain]').waitFor({ timeout: WAIT_MS });
      await page.waitForFunction(() => !!document.activeElement?.closest('tr[data-backend]'), null, { timeout: WAIT_MS });
      assert.equal(await page.evaluate(() => document.activeElement?.closest('tr')?.getAttribute('data-backend')), target.backend,
        'keyboard focus stays on the backend row after the change');
      assert.equal((await backendState())?.draining, false, 'GET /api/v1/services shows it undrained');
      if (opts.afterUndrain) await opts.afterUndrain(target.service, target.backend);

      // Weight: the cell is the control; the API sees the new weight; then back as it was.
      const originalWeight = (await backendState() as { weight?: number } | undefined)?.weight ?? 1;
      for (const weight of [originalWeight + 1, originalWeight]) {
        await row.locator('button[data-action=weight]').click();
        await page.locator('dialog.dialog[open] input[name=weight]').fill(String(weight));
        await page.locator('dialog.dialog[open] button[type=submit]').click();
        await page.waitForSelector('dialog.dialog', { state: 'detached', timeout: WAIT_MS });
        await row.locator(`[data-field=weight]:has-text("${weight}")`).waitFor({ timeout: WAIT_MS });
        assert.equal((await backendState() as { weight?: number } | undefined)?.weight, weight, `API weight ${weight}`);
      }

      // Add backend: an invalid address is refused inside the dialog (the API's 400 names the
      // field), a valid one is added; then Remove takes it out again.
      const panel = page.locator(`section[data-service="${target.service}"]`);
      const newKey = `${target.backend.split(':')[0].replace(/\.\d+$/, '.199')}:${target.backend.split(':')[1]}`;
      await panel.locator('button[data-action=add-backend]').click();
      allowedConsole = /status of 400/;
      await page.locator('dialog.dialog[open] input[name=address]').fill('198.18.1.999');
      await page.locator('dialog.dialog[open] button[type=submit]').click();
      await page.waitForFunction(() => /400/.test(document.querySelector('dialog.dialog[open] .dialog-error')?.textContent ?? ''), null, { timeout: WAIT_MS });
      allowedConsole = null;
      assert.equal(await page.getAttribute('dialog.dialog[open] input[name=address]', 'aria-invalid'), 'true', 'the wrong field is marked');
      await shoot(page, 'admin-add-refused-1280');
      await page.locator('dialog.dialog[open] input[name=address]').fill(newKey.split(':')[0]);
      await page.locator('dialog.dialog[open] input[name=port]').fill(newKey.split(':')[1]);
      await page.locator('dialog.dialog[open] button[type=submit]').click();
      await page.waitForSelector('dialog.dialog', { state: 'detached', timeout: WAIT_MS });
      const newRow = panel.locator(`tr[data-backend="${newKey}"]`);
      await newRow.waitFor({ timeout: WAIT_MS });
      const serviceBackends = async () => ((await api(base, 'GET', `/services/${encodeURIComponent(target.service)}`, token)).body.backends as Array<{ key: string }>).map((b) => b.key);
      assert.ok((await serviceBackends()).includes(newKey), `API lists the added ${newKey}`);
      await newRow.locator('button[data-action=remove]').click();
      await page.locator('dialog.dialog[open] button[type=submit]').click();
      await page.waitForSelector('dialog.dialog', { state: 'detached', timeout: WAIT_MS });
      await newRow.waitFor({ state: 'detached', timeout: WAIT_MS });
      assert.ok(!(await serviceBackends()).includes(newKey), `API no longer lists ${newKey}`);

      // Run-time statistics toggle: on through the UI, seen by the API, then back as it was.
      await gotoPage(page, base, 'programs');
      const before = await api(base, 'GET', '/programs', token);
      const toggle = page.locator('[data-action=toggle-prog-stats]');
      await toggle.waitFor({ timeout: WAIT_MS });
      for (const want of [!before.body.statsEnabled, before.body.statsEnabled]) {
        await toggle.click();
        await page.locator('dialog.dialog[open] button[type=submit]').click();
        await page.waitForSelector('dialog.dialog', { state: 'detached', timeout: WAIT_MS });
        await page.waitForFunction((w) => document.querySelector('[data-action=toggle-prog-stats]')?.getAttribute('aria-pressed') === String(w), want, { timeout: WAIT_MS });
        assert.equal((await api(base, 'GET', '/programs', token)).body.statsEnabled, want, `statsEnabled ${want} after the toggle`);
      }

      // Sampling rate: set through the Trace page, seen by the API, then back as it was.
      await gotoPage(page, base, 'trace');
      const originalRate = (await api(base, 'GET', '/settings', token)).body.sampleRate as number;
      for (const rate of [originalRate + 1, originalRate]) {
        await page.locator('[data-action=set-sample-rate]').click();
        await page.locator('dialog.dialog[open] input[name=sampleRate]').fill(String(rate));
        await page.locator('dialog.dialog[open] button[type=submit]').click();
        await page.waitForSelector('dialog.dialog', { state: 'detached', timeout: WAIT_MS });
        assert.equal((await api(base, 'GET', '/settings', token)).body.sampleRate, rate, `API sampleRate ${rate}`);
        await page.waitForFunction((r) => {
          const text = document.querySelector('[data-testid=sample-rate]')?.textContent ?? '';
          return r === 0 ? /off/.test(text) : r === 1 ? /every packet/.test(text) : text.includes(`1 in ${r.toLocaleString('en-US')} `);
        }, rate, { timeout: WAIT_MS });
      }

      // Every page, live, at both widths.
      for (const width of WIDTHS) {
        await page.setViewportSize({ width, height: 900 });
        for (const name of PAGES) {
          await gotoPage(page, base, name);
          await checkPage(page, name, opts.expectTraceEvents ?? true);
          await noErrorBanner(page, name);
          await shoot(page, `${name}-${width}`);
        }
      }
      await context.close();
    });

    assert.deepEqual(consoleErrors, [], 'no console errors on any page');
    return { screenshots, drained: { service: target.service, backend: target.backend }, samples };
  } finally {
    await browser.close();
  }
}

/**
 * Launches Chromium, opens one 1280 x `height` page logged in as `creds`, runs `fn` with it and
 * the console errors it collects, and closes the browser whatever happens.
 * @throws Error when Chromium is missing; whatever `fn` or the login throws
 */
async function withLoggedInPage<T>(base: string, creds: Credentials, chromiumPathOption: string | undefined, height: number,
  fn: (page: Page, errors: string[]) => Promise<T>): Promise<T> {
  const exe = chromiumPath(chromiumPathOption);
  if (!fs.existsSync(exe)) throw new Error(`Chromium not found at ${exe} (scripts/setup.sh installs Debian's chromium)`);
  const browser = await chromium.launch({ executablePath: exe, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height } });
    const errors: string[] = [];
    page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
    page.on('pageerror', (err) => errors.push(err.message));
    await login(page, base, creds);
    return await fn(page, errors);
  } finally {
    await browser.close();
  }
}

async function login(page: Page, base: string, creds: Credentials): Promise<void> {
  await page.goto(`${base}/`);
  await page.fill('#login-user', creds.username);
  await page.fill('#login-password', creds.password);
  await page.click('form.login-card button[type=submit]');
  await page.waitForSelector('[data-testid=whoami]', { timeout: WAIT_MS });
}

async function gotoPage(page: Page, base: string, name: PageName): Promise<void> {
  await page.goto(`${base}/#/${name}`);
  await page.waitForSelector(`nav a[data-route="${name}"][aria-current=page]`, { timeout: WAIT_MS });
}

/** Waits until `selector`'s data-at is set and then changes: two different samples/refreshes. Returns both. */
async function waitForChange(page: Page, selector: string): Promise<[number, number]> {
  const first = await page.waitForFunction((sel) => document.querySelector(sel)?.dataset.at || null, selector, { timeout: WAIT_MS });
  const a = String(await first.jsonValue());
  const second = await page.waitForFunction(([sel, prev]) => {
    const at = document.querySelector(sel)?.dataset.at;
    return at && at !== prev ? at : null;
  }, [selector, a] as const, { timeout: WAIT_MS });
  return [Number(a), Number(await second.jsonValue())];
}

/** A page that caught an API error shows it in a banner: that is a failure too. */
async function noErrorBanner(page: Page, name: string): Promise<void> {
  const banners = await page.locator('.banner-error:visible').allTextContents();
  assert.deepEqual(banners, [], `error banner on ${name}`);
}

async function checkOverview(page: Page, base: string): Promise<number[]> {
  await gotoPage(page, base, 'overview');
  const [a, b] = await waitForChange(page, '[data-testid=stats-at]');
  assert.ok(b > a, `stats samples move forward (${a} -> ${b})`);
  assert.ok(await page.locator('.uplot').count() >= 2, 'time-series charts drawn');
  const pps = await page.textContent('[data-testid=total-pps]');
  assert.match(pps ?? '', /pps$/, `total packet rate shown: ${pps}`);
  return [a, b];
}

async function checkPage(page: Page, name: PageName, expectTraceEvents: boolean): Promise<void> {
  switch (name) {
    case 'overview':
      await waitForChange(page, '[data-testid=stats-at]');
      assert.ok(await page.locator('.uplot').count() >= 2, 'charts drawn');
      break;
    case 'services':
      await waitForChange(page, '[data-testid=stats-at]');
      assert.ok(await page.locator('main [data-action=drain], main [data-action=undrain]').count() >= 1, 'an admin sees controls');
      break;
    case 'programs':
      await waitForChange(page, '[data-testid=updated-at]');
      assert.ok(await page.locator('tr.xdplb').count() >= 1, "xdplb's own program is listed");
      break;
    case 'maps': {
      await waitForChange(page, '[data-testid=updated-at]');
      assert.ok(await page.locator('tr[data-map-row]').count() >= 1, 'maps listed');
      const browse = page.locator('button[data-map="maglev"]');
      await ((await browse.count()) ? browse : page.locator('button[data-map]').first()).click();
      await page.waitForFunction(() => /of|no entries/.test(document.querySelector('[data-testid=entries-info]')?.textContent ?? ''), null, { timeout: WAIT_MS });
      break;
    }
    case 'trace':
      if (expectTraceEvents) {
        await page.waitForSelector('tr[data-seq]', { timeout: WAIT_MS });
        const first = Number(await page.getAttribute('tr[data-seq]', 'data-seq'));
        await page.waitForFunction((seq) => Number(document.querySelector('tr[data-seq]')?.getAttribute('data-seq')) > seq, first, { timeout: WAIT_MS });
      }
      break;
    case 'cluster': {
      await waitForChange(page, '[data-testid=updated-at]');
      // Whatever the mode, exactly one node is this one, and its data plane is attached.
      assert.equal(await page.locator('section.node-card:has(.badge:text-is("this node"))').count(), 1, 'one node is "this node"');
      const self = page.locator('section.node-card:has(.badge:text-is("this node"))');
      assert.equal(await self.locator('[data-field=dataplane] .badge').textContent(), 'attached', 'this node\'s data plane is attached');
      assert.ok(await page.locator('tr[data-node]').count() >= 1, 'nodes side by side');
      await noHorizontalOverflow(page, 'cluster');
      break;
    }
    case 'bench':
      await page.waitForSelector('[data-testid=bench-empty], [data-bench-section]', { timeout: WAIT_MS });
      break;
  }
}

/** The page itself never scrolls sideways (wide tables scroll inside their own wrapper). */
async function noHorizontalOverflow(page: Page, name: string): Promise<void> {
  const overflow = await page.evaluate(() => {
    const doc = document.documentElement;
    const wide = [...document.querySelectorAll('main section, main .node-grid')]
      .filter((el: any) => el.getBoundingClientRect().right > doc.clientWidth + 1)
      .map((el: any) => el.getAttribute('aria-label') ?? el.className);
    return { scroll: doc.scrollWidth, client: doc.clientWidth, wide };
  });
  assert.ok(overflow.scroll <= overflow.client, `${name}: the page is ${overflow.scroll} px wide in a ${overflow.client} px window`);
  assert.deepEqual(overflow.wide, [], `${name}: parts reaching past the window's right edge`);
}

/**
 * The Cluster page against a server with several nodes where one node judges a backend
 * differently (the dev server's synthetic cluster: lb1..lb3, lb3 sees `disagreement.backend`
 * down). Viewer: every node, the disagreement, no buttons, and the API refuses a viewer's
 * drain. Admin: no horizontal overflow at 1280 and 800 px (screenshots), Drain with Cancel
 * sends nothing, Drain confirmed sends the PUT (`sentDrains()` must show it) and the card
 * shows the node drained; Undrain likewise.
 * @throws AssertionError / Error (playwright timeout) when any of it does not hold.
 */
export async function checkClusterPage(baseUrl: string, creds: BrowserSuiteCreds, expect: {
  nodes: string[]; drainNode: string; disagreement: { service: string; backend: string; views: Record<string, string> };
  sentDrains: () => Array<{ node: string; body: Record<string, unknown> }>;
  /** Makes the server's store unreachable with this reason (null: reachable again). */
  setStoreStale?: (reason: string | null) => void;
  /** Gives a node moved Maglev slots (a drain then needs force). */
  setMovedSlots?: (node: string, slots: number) => void;
}, opts: Pick<BrowserSuiteOptions, 'chromiumPath' | 'label' | 'screenshotDir'> = {}): Promise<string[]> {
  const base = baseUrl.replace(/\/+$/, '');
  const shotDir = opts.screenshotDir ?? path.join(repoRoot(), 'test-artifacts', 'screenshots');
  fs.mkdirSync(shotDir, { recursive: true });
  const shots: string[] = [];
  const cardsShown = async (page: Page) => {
    await gotoPage(page, base, 'cluster');
    await page.waitForSelector('section.node-card', { timeout: WAIT_MS });
    const names = await page.locator('section.node-card').evaluateAll((els) => els.map((e: any) => String(e.dataset.node)));
    assert.deepEqual([...names].sort(), [...expect.nodes].sort(), 'one card per node');
  };
  const disagreementShown = async (page: Page) => {
    const row = page.locator(`tr[data-disagreement="${expect.disagreement.service}|${expect.disagreement.backend}"]`);
    await row.waitFor({ timeout: WAIT_MS });
    for (const [node, state] of Object.entries(expect.disagreement.views)) {
      assert.equal((await row.locator(`td[data-node="${node}"]`).textContent())?.trim(), state, `${node}'s view of ${expect.disagreement.backend}`);
    }
    assert.match(await page.locator('[data-testid=disagreement-count]').textContent() ?? '', /judged differently/);
  };

  await withLoggedInPage(base, creds.viewer, opts.chromiumPath, 900, async (page, errors) => {
    await cardsShown(page);
    await disagreementShown(page);
    assert.equal(await page.locator('main button').count(), 0, 'a viewer sees no button on the Cluster page');
    assert.equal(await page.locator('main [data-action]').count(), 0, 'a viewer sees no control');
    // Every backend's verdict per node, in a matrix that stays open across refreshes.
    await page.locator('[data-testid=health-matrix] summary').click();
    const matrixRow = page.locator(`[data-testid=health-matrix] tr[data-health-row="${expect.disagreement.service}|${expect.disagreement.backend}"]`);
    await matrixRow.waitFor({ timeout: WAIT_MS });
    assert.equal(await matrixRow.getAttribute('class'), 'disputed', 'the disputed backend is marked in the matrix');
    await waitForChange(page, '[data-testid=updated-at]');
    assert.equal(await page.locator('[data-testid=health-matrix][open]').count(), 1, 'the matrix stays open across a refresh');
    if (expect.setStoreStale) {
      assert.equal(await page.locator('[data-testid=store-stale]').isVisible(), false, 'no stale banner while the store answers');
      expect.setStoreStale('etcd at 198.18.250.10:2379 is unreachable: deadline exceeded');
      await page.locator('[data-testid=store-stale]:has-text("deadline exceeded")').waitFor({ timeout: WAIT_MS });
      assert.match(await page.locator('[data-testid=cluster-mode]').textContent() ?? '', /store unreachable/);
      expect.setStoreStale(null);
      await page.locator('[data-testid=store-stale]').waitFor({ state: 'hidden', timeout: WAIT_MS });
    }
    const token = await page.evaluate(() => sessionStorage.getItem('xdplb.token'));
    const refused = await api(base, 'PUT', `/nodes/${encodeURIComponent(expect.drainNode)}/drain`, token, { drain: true });
    assert.equal(refused.status, 403, `the API refuses a viewer's drain: ${JSON.stringify(refused.body)}`);
    assert.deepEqual(errors, [], 'no console errors (viewer)');
  });

  await withLoggedInPage(base, creds.admin, opts.chromiumPath, 900, async (page, errors) => {
    for (const width of WIDTHS) {
      await page.setViewportSize({ width, height: 900 });
      await cardsShown(page);
      await waitForChange(page, '[data-testid=updated-at]');
      await disagreementShown(page);
      await noHorizontalOverflow(page, `cluster at ${width} px`);
      await noErrorBanner(page, 'cluster');
      const file = path.join(shotDir, `${opts.label ?? 'dashboard'}-cluster-nodes-${width}.png`);
      await page.screenshot({ path: file, fullPage: true });
      shots.push(file);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
    const card = page.locator(`section.node-card[data-node="${expect.drainNode}"]`);
    const before = expect.sentDrains().length;

    // Cancel sends nothing.
    await card.locator('button[data-action=drain-node]').click();
    await page.locator('dialog.dialog[open]').waitFor({ timeout: WAIT_MS });
    await page.locator('dialog.dialog[open] button:text-is("Cancel")').click();
    await page.waitForSelector('dialog.dialog', { state: 'detached', timeout: WAIT_MS });
    assert.equal(expect.sentDrains().length, before, 'Cancel sends no PUT');

    // Confirmed: the PUT goes out with the grace period typed in, and the card shows it.
    await card.locator('button[data-action=drain-node]').click();
    assert.match(await page.locator('dialog.dialog[open] h2').textContent() ?? '', new RegExp(`Drain node ${expect.drainNode}`));
    await page.locator('dialog.dialog[open] input[name=graceSeconds]').fill('7');
    await page.screenshot({ path: path.join(shotDir, `${opts.label ?? 'dashboard'}-cluster-drain-dialog-1280.png`) });
    await page.locator('dialog.dialog[open] button[type=submit]').click();
    await page.waitForSelector('dialog.dialog', { state: 'detached', timeout: WAIT_MS });
    assert.deepEqual(expect.sentDrains().slice(before), [{ node: expect.drainNode, body: { drain: true, graceSeconds: 7 } }], 'one PUT with the typed grace');
    await card.locator('.badge:text-is("drained")').waitFor({ timeout: WAIT_MS });
    assert.match(await card.locator('[data-field=announced]').textContent() ?? '', /nothing/, 'a drained node announces nothing');

    await card.locator('button[data-action=undrain-node]').click();
    await page.locator('dialog.dialog[open] button[type=submit]').click();
    await page.waitForSelector('dialog.dialog', { state: 'detached', timeout: WAIT_MS });
    assert.deepEqual(expect.sentDrains().slice(before + 1), [{ node: expect.drainNode, body: { drain: false } }], 'one undrain PUT');
    await card.locator('button[data-action=drain-node]').waitFor({ timeout: WAIT_MS });
    assert.equal(await card.locator('.badge:text-is("drained")').count(), 0, 'no longer drained');

    if (expect.setMovedSlots) {
      // In a Maglev transition: the card says so, the dialog warns and offers force; without it
      // the API's refusal shows in the dialog and nothing is drained; with it the drain goes.
      expect.setMovedSlots(expect.drainNode, 42);
      await card.locator('[data-field=transition] .badge:text-is("in transition")').waitFor({ timeout: WAIT_MS });
      await card.locator('button[data-action=drain-node]').click();
      await page.locator('dialog.dialog[open] [data-testid=drain-transition-warning]:has-text("42 moved slots")').waitFor({ timeout: WAIT_MS });
      await page.locator('dialog.dialog[open] input[name=graceSeconds]').fill('9');
      await page.locator('dialog.dialog[open] button[type=submit]').click();
      await page.locator('dialog.dialog[open] .dialog-error:has-text("Maglev transition")').waitFor({ timeout: WAIT_MS });
      assert.equal(expect.sentDrains().length, before + 2, 'a refused drain is not accepted');
      // The browser logs the refused request itself; that one line is expected, nothing else.
      const refusedAt = errors.findIndex((e) => /status of 409/.test(e));
      assert.ok(refusedAt >= 0, `the 409 was seen: ${JSON.stringify(errors)}`);
      errors.splice(refusedAt, 1);
      await page.locator('dialog.dialog[open] select[name=force]').selectOption('drain anyway');
      await page.locator('dialog.dialog[open] button[type=submit]').click();
      await page.waitForSelector('dialog.dialog', { state: 'detached', timeout: WAIT_MS });
      assert.deepEqual(expect.sentDrains().slice(before + 2), [{ node: expect.drainNode, body: { drain: true, graceSeconds: 9, force: true } }], 'one forced drain');
      await card.locator('.badge:text-is("drained")').waitFor({ timeout: WAIT_MS });
      expect.setMovedSlots(expect.drainNode, 0);
      await card.locator('button[data-action=undrain-node]').click();
      await page.locator('dialog.dialog[open] button[type=submit]').click();
      await page.waitForSelector('dialog.dialog', { state: 'detached', timeout: WAIT_MS });
      await card.locator('[data-field=transition] .badge:text-is("steady")').waitFor({ timeout: WAIT_MS });
    }
    assert.deepEqual(errors, [], 'no console errors (admin)');
  });
  return shots;
}


/**
 * Logs in and checks that the Benchmarks page renders a saved result: at least one section,
 * one table and one bar; saves `<label>-bench-results-1280.png`. Returns the section names.
 * @throws AssertionError / Error on a missing Chromium, a failed login or an empty page.
 */
export async function checkBenchResults(baseUrl: string, creds: Credentials, opts: Pick<BrowserSuiteOptions, 'label' | 'screenshotDir' | 'chromiumPath'> = {}): Promise<string[]> {
  const base = baseUrl.replace(/\/+$/, '');
  const shotDir = opts.screenshotDir ?? path.join(repoRoot(), 'test-artifacts', 'screenshots');
  fs.mkdirSync(shotDir, { recursive: true });
  return withLoggedInPage(base, creds, opts.chromiumPath, 900, async (page, errors) => {
    await gotoPage(page, base, 'bench');
    await page.waitForSelector('[data-bench-section]', { timeout: WAIT_MS });
    const sections = await page.locator('[data-bench-section]').evaluateAll((els) => els.map((e: any) => String(e.dataset.benchSection)));
    assert.ok(await page.locator('[data-bench-section] table').count() >= 1, 'benchmark tables');
    assert.ok(await page.locator('[data-bench-section] .bar').count() >= 1, 'bars for numeric series');
    await noErrorBanner(page, 'bench');
    await page.screenshot({ path: path.join(shotDir, `${opts.label ?? 'dashboard'}-bench-results-1280.png`), fullPage: true });
    assert.deepEqual(errors, [], 'no console errors on the Benchmarks page');
    return sections;
  });
}

/**
 * Logs in, waits for the live stream, calls `drop` (which must cut the stream server-side) and
 * checks that the header shows the loss and that the dashboard reconnects by itself and keeps
 * receiving samples, without a reload and without console errors.
 * @throws AssertionError / Error (playwright timeout) when it does not recover.
 */
export async function checkStreamReconnect(baseUrl: string, creds: Credentials, drop: () => void, opts: Pick<BrowserSuiteOptions, 'chromiumPath'> = {}): Promise<void> {
  const base = baseUrl.replace(/\/+$/, '');
  await withLoggedInPage(base, creds, opts.chromiumPath, 800, async (page, errors) => {
    await page.waitForSelector('.live[data-status=live]', { timeout: WAIT_MS });
    await waitForChange(page, '[data-testid=stats-at]');
    drop();
    await page.waitForSelector('.live[data-status=down]', { timeout: WAIT_MS });
    await page.waitForSelector('.live[data-status=live]', { timeout: WAIT_MS });
    await waitForChange(page, '[data-testid=stats-at]');
    assert.deepEqual(errors, [], 'no console errors across the reconnect');
  });
}

/**
 * Logs in, opens the Overview, calls `setHealth('down')` (which must make the server's health
 * checks fail for `service`/`backend`), waits until the dashboard shows the backend down (its
 * badge and the health-change list) without a reload, then `setHealth('up')` and waits for up.
 * @throws AssertionError / Error (playwright timeout) when the change never shows.
 */
export async function checkHealthChangeShown(baseUrl: string, creds: Credentials, service: string, backend: string,
  setHealth: (state: 'up' | 'down') => Promise<void>, opts: Pick<BrowserSuiteOptions, 'chromiumPath' | 'label' | 'screenshotDir'> = {}): Promise<void> {
  const base = baseUrl.replace(/\/+$/, '');
  const shotDir = opts.screenshotDir ?? path.join(repoRoot(), 'test-artifacts', 'screenshots');
  await withLoggedInPage(base, creds, opts.chromiumPath, 900, async (page, errors) => {
    await gotoPage(page, base, 'overview');
    const row = page.locator(`tr.row-backend[data-service="${service}"][data-backend="${backend}"]`);
    await row.locator('.badge-ok:text-is("up")').waitFor({ timeout: WAIT_MS });
    for (const state of ['down', 'up'] as const) {
      await setHealth(state);
      await row.locator(`.badge:text-is("${state}")`).waitFor({ timeout: 30_000 });
      await page.locator(`[data-testid=health-log] li:has-text("${backend}"):has(.badge:text-is("${state}"))`).first().waitFor({ timeout: WAIT_MS });
      if (state === 'down') await page.screenshot({ path: path.join(shotDir, `${opts.label ?? 'dashboard'}-overview-backend-down-1280.png`), fullPage: true });
    }
    assert.deepEqual(errors, [], 'no console errors while health changed');
  });
}
