/**
 * The dashboard with IPv6 beside IPv4 (issue 15), in Chromium:
 * - layout: every page that shows addresses, at 1280 and 800 px, is measured — the page never
 *   scrolls sideways, no table is wider than its box (no sideways scroll inside a panel either),
 *   no two cells of a row overlap and no cell's content spills out of it, every address stays
 *   inside the window, chart legend entries stay inside their chart and do not overlap;
 * - IPv6 shown canonical with `[addr]:port` in the Services, Overview, Maps and Cluster tables,
 *   the Trace rows and the chart legends;
 * - the Trace filters on a fixed set of events of both families (address in any text form,
 *   prefix, address:port, port, family, protocol, service, backend; invalid input reported);
 * - the add-backend and add-service dialogs take IPv6 and show the server's refusal otherwise.
 * It needs a server with the dev server's `ipv6` fixtures and `emitEvents` (test/browser/dev-server.ts).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Page } from 'playwright-core';
import type { TraceEvent } from '../../src/dataplane/types';
import { CHROMIUM_ARGS, chromiumPath, type BrowserSuiteCreds } from './suite';
import { repoRoot } from './repo-root';

declare const document: any;
declare const window: any;

const WAIT_MS = 15_000;
export const LAYOUT_WIDTHS = [1280, 800];

/** The fixtures this suite expects (dev server, `ipv6: true`). */
export const V6 = {
  service: 'web6',
  vip: '2001:2:0:a5a5::10',
  longBackend: '[2001:2:0:a5a5:b6b6:c7c7:d8d8:e9e9]:8443',
  shortBackend: '[2001:2::1:11]:8443',
  v4Service: 'web',
};

export interface V6SuiteHooks {
  /** Sends trace events to every connected browser now. */
  emitEvents(events: TraceEvent[]): void;
  log?: (line: string) => void;
  screenshotDir?: string;
  label?: string;
}

interface LayoutProblem { what: string; detail: string }

/**
 * Measures the page as laid out now. Returns every problem found (empty = fine):
 * page overflow, a table wider than its wrapper or the window, overlapping cells in a row,
 * content spilling out of a cell, an address outside the window, legend entries outside
 * their chart or on top of each other.
 */
export async function layoutProblems(page: Page): Promise<LayoutProblem[]> {
  return page.evaluate(() => {
    const problems: Array<{ what: string; detail: string }> = [];
    const doc = document.documentElement;
    const vw = doc.clientWidth;
    const name = (el: any) => {
      const row = el.closest('tr');
      const table = el.closest('.panel, section');
      const where = table?.getAttribute('aria-label') ?? table?.querySelector('h2')?.textContent ?? document.querySelector('main h1')?.textContent ?? '';
      return `${where} ${row ? `row "${row.textContent.slice(0, 60)}"` : ''}`.trim();
    };
    if (doc.scrollWidth > vw) problems.push({ what: 'page scrolls sideways', detail: `${doc.scrollWidth} px in a ${vw} px window` });
    for (const table of document.querySelectorAll('main table')) {
      if (!table.getClientRects().length) continue; // hidden (a closed <details>)
      const wrap = table.parentElement;
      const r = table.getBoundingClientRect();
      if (r.right > vw + 1) problems.push({ what: 'table past the window', detail: `${name(table)}: right edge ${Math.round(r.right)} > ${vw}` });
      if (wrap.scrollWidth > wrap.clientWidth + 1) {
        problems.push({ what: 'table wider than its box', detail: `${name(table)}: ${wrap.scrollWidth} px in ${wrap.clientWidth} px` });
      }
      for (const tr of table.querySelectorAll('tr')) {
        const cells = [...tr.children].filter((c: any) => c.getClientRects().length && c.getBoundingClientRect().width > 0)
          .map((c: any) => ({ c, r: c.getBoundingClientRect() }));
        cells.sort((a: any, b: any) => a.r.left - b.r.left);
        for (let i = 1; i < cells.length; i++) {
          if (cells[i - 1].r.right > cells[i].r.left + 1) {
            problems.push({ what: 'cells overlap', detail: `${name(tr)}: cell ${i - 1} ends at ${Math.round(cells[i - 1].r.right)}, cell ${i} starts at ${Math.round(cells[i].r.left)}` });
          }
        }
        for (const { c, r: cr } of cells) {
          // The laid-out content, not the box: what a reader sees spill into the next cell.
          const range = document.createRange();
          range.selectNodeContents(c);
          const content = range.getBoundingClientRect();
          const style = window.getComputedStyle(c);
          const clipped = style.overflowX === 'hidden' && style.textOverflow === 'ellipsis' && c.title;
          if (content.width > 0 && !clipped && (content.right > cr.right + 1 || content.left < cr.left - 1)) {
            problems.push({ what: 'content spills out of its cell', detail: `${name(c)}: "${c.textContent.slice(0, 50)}" ${Math.round(content.left)}..${Math.round(content.right)} in ${Math.round(cr.left)}..${Math.round(cr.right)}` });
          }
        }
      }
    }
    for (const a of document.querySelectorAll('main .addr')) {
      for (const r of a.getClientRects()) {
        if (r.right > vw + 1 || r.left < -1) problems.push({ what: 'address outside the window', detail: `"${a.textContent}" at ${Math.round(r.left)}..${Math.round(r.right)}` });
      }
    }
    for (const chart of document.querySelectorAll('main .chart')) {
      const box = chart.getBoundingClientRect();
      const items = [...chart.querySelectorAll('.u-legend .u-series')].map((s: any) => ({ s, r: s.getBoundingClientRect() }));
      for (const { s, r } of items) {
        if (r.right > box.right + 1 || r.left < box.left - 1) problems.push({ what: 'legend entry outside its chart', detail: `"${s.textContent}" ${Math.round(r.left)}..${Math.round(r.right)} in ${Math.round(box.left)}..${Math.round(box.right)}` });
      }
      for (const { s } of items) {
        // A label on two lines although one line of it fits in the chart: squeezed for nothing.
        const label = s.querySelector('.u-label');
        if (!label) continue;
        const range = document.createRange();
        range.selectNodeContents(label);
        const lines = new Set([...range.getClientRects()].map((r: any) => Math.round(r.top))).size;
        const saved = label.style.whiteSpace;
        label.style.whiteSpace = 'nowrap';
        const oneLine = label.scrollWidth;
        label.style.whiteSpace = saved;
        if (lines > 1 && oneLine + 40 < box.width) problems.push({ what: 'legend label wrapped needlessly', detail: `"${label.textContent}" (${oneLine} px) in a ${Math.round(box.width)} px chart` });
      }
      for (let i = 0; i < items.length; i++) {
        for (let j = i + 1; j < items.length; j++) {
          const a = items[i].r;
          const b = items[j].r;
          const overlapX = Math.min(a.right, b.right) - Math.max(a.left, b.left);
          const overlapY = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
          if (overlapX > 1 && overlapY > 1) problems.push({ what: 'legend entries overlap', detail: `"${items[i].s.textContent}" and "${items[j].s.textContent}"` });
        }
      }
    }
    return problems;
  });
}

async function gotoPage(page: Page, base: string, name: string): Promise<void> {
  await page.goto(`${base}/#/${name}`);
  await page.waitForSelector(`nav a[data-route="${name}"][aria-current=page]`, { timeout: WAIT_MS });
}

async function login(page: Page, base: string, creds: { username: string; password: string }): Promise<void> {
  await page.goto(`${base}/`);
  await page.fill('#login-user', creds.username);
  await page.fill('#login-password', creds.password);
  await page.click('form.login-card button[type=submit]');
  await page.waitForSelector('[data-testid=whoami]', { timeout: WAIT_MS });
}

/** A fixed set of trace events of both families, told apart by their source port (40001..). */
export function fixtureEvents(): TraceEvent[] {
  const base = { tsNs: 0, ifindex: 3, pktLen: 120, service: null, backend: null, serviceId: 0, backendId: 0, proto: 6,
    action: 'tx', reason: 'forwarded' } as const;
  const now = Number(process.hrtime.bigint());
  const list: Array<Partial<TraceEvent>> = [
    { saddr: '198.18.100.1', daddr: '198.18.0.10', sport: 40001, dport: 80, service: 'web', backend: '198.18.1.11:8080', serviceId: 1, backendId: 10 },
    { saddr: '198.18.100.10', daddr: '198.18.0.10', sport: 40002, dport: 80, service: 'web', backend: '198.18.1.12:8080', serviceId: 1, backendId: 11 },
    { saddr: '2001:2:0:c11e::1', daddr: V6.vip, sport: 40003, dport: 443, service: 'web6', backend: V6.longBackend, serviceId: 3, backendId: 15 },
    { saddr: '2001:2:0:c11e::10', daddr: V6.vip, sport: 40004, dport: 443, service: 'web6', backend: V6.shortBackend, serviceId: 3, backendId: 17 },
    // A reply from a backend (reverse NAT): 8443 -> 40005.
    { saddr: '2001:2::1:11', daddr: '2001:2:0:c11e::1', sport: 40005, dport: 40003, service: 'web6', backend: V6.shortBackend, serviceId: 3, backendId: 17, reason: 'reversed' },
    { saddr: '2001:2:0:c11e::1', daddr: '2001:2::1', sport: 40006, dport: 22, action: 'pass', reason: 'not_vip' },
    { saddr: '198.18.100.2', daddr: '198.18.0.11', sport: 40007, dport: 8080, action: 'pass', reason: 'not_vip' },
    { saddr: '2001:2:0:c11e:ffff:ffff:ffff:fffe', daddr: '2001:2::53', sport: 40008, dport: 53, proto: 17, service: 'dns6', backend: '[2001:2::2:21]:53', serviceId: 4, backendId: 18 },
  ];
  return list.map((e, i) => ({ ...base, ...e, tsNs: now + i * 1000 }) as TraceEvent);
}

/**
 * Runs the IPv6 checks against `baseUrl` (a dev server started with `ipv6: true,
 * randomEvents: false`). Returns the screenshots it saved.
 * @throws AssertionError naming the page, width and problem on the first failure.
 */
export async function runIpv6Suite(baseUrl: string, creds: BrowserSuiteCreds, hooks: V6SuiteHooks): Promise<string[]> {
  const base = baseUrl.replace(/\/+$/, '');
  const log = hooks.log ?? (() => undefined);
  const shotDir = hooks.screenshotDir ?? path.join(repoRoot(), 'test-artifacts', 'screenshots');
  fs.mkdirSync(shotDir, { recursive: true });
  const label = hooks.label ?? 'dev6';
  const shots: string[] = [];
  const exe = chromiumPath();
  if (!fs.existsSync(exe)) throw new Error(`Chromium not found at ${exe} (scripts/setup.sh installs Debian's chromium)`);
  const browser = await chromium.launch({ executablePath: exe, args: CHROMIUM_ARGS });
  const errors: string[] = [];
  let allowed: RegExp | null = null;
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (msg) => { if (msg.type() === 'error' && !allowed?.test(msg.text())) errors.push(msg.text()); });
    page.on('pageerror', (err) => errors.push(err.message));
    await login(page, base, creds.admin);
    const shoot = async (name: string) => {
      await page.evaluate(() => window.scrollTo(0, 0)); // the sticky header stays on top in a full-page shot
      const file = path.join(shotDir, `${label}-${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      shots.push(file);
    };
    const expectLayout = async (where: string) => {
      const problems = await layoutProblems(page);
      assert.deepEqual(problems, [], `${where}: layout`);
    };
    const emitted = fixtureEvents();

    for (const width of LAYOUT_WIDTHS) {
      await page.setViewportSize({ width, height: 900 });
      log(`v6 layout at ${width} px`);

      await gotoPage(page, base, 'services');
      const longRow = page.locator(`section[data-service="${V6.service}"] tr[data-backend="${V6.longBackend}"]`);
      await longRow.waitFor({ timeout: WAIT_MS });
      assert.equal((await longRow.locator('td').first().textContent())?.trim(), V6.longBackend, 'the backend key as [addr]:port');
      assert.equal((await page.locator(`section[data-service="${V6.service}"] [data-field=vip]`).textContent())?.trim(), `[${V6.vip}]:443/tcp`);
      await page.locator(`section[data-service="${V6.service}"] td.num:not(:text-is("—"))`).first().waitFor({ timeout: WAIT_MS });
      await expectLayout(`services at ${width} px`);
      await shoot(`services-${width}`);

      await gotoPage(page, base, 'overview');
      const ovRow = page.locator(`tr.row-backend[data-service="${V6.service}"][data-backend="${V6.longBackend}"]`);
      await ovRow.waitFor({ timeout: WAIT_MS });
      assert.equal((await ovRow.locator('td').first().textContent())?.trim(), V6.longBackend);
      assert.equal((await page.locator(`tr.row-service[data-service="${V6.service}"] th .addr`).textContent())?.trim(), `[${V6.vip}]:443/tcp`);
      // The per-backend chart: one legend entry per backend, named service/[addr]:port.
      await page.locator(`.chart .u-legend .u-series:has-text("${V6.service}/${V6.longBackend}")`).waitFor({ timeout: WAIT_MS });
      await expectLayout(`overview at ${width} px`);
      await shoot(`overview-${width}`);

      await gotoPage(page, base, 'maps');
      await page.locator(`[data-maglev-service="${V6.service}"] td[title="${V6.longBackend}"]`).waitFor({ timeout: WAIT_MS });
      assert.equal(await page.locator(`[data-maglev-service="${V6.service}"] td[title="${V6.longBackend}"]`).textContent(), V6.longBackend);
      await page.locator('button[data-map="backends6"]').click();
      await page.locator('#map-entries td[title="2001:2:0:a5a5:b6b6:c7c7:d8d8:e9e9"]').first().waitFor({ timeout: WAIT_MS });
      await expectLayout(`maps at ${width} px`);
      await shoot(`maps-${width}`);

      await gotoPage(page, base, 'cluster');
      await page.locator(`section.node-card [data-field=announced]:has-text("${V6.vip}/128")`).first().waitFor({ timeout: WAIT_MS });
      await page.locator('[data-testid=health-matrix] summary').click();
      await page.locator(`[data-testid=health-matrix] tr[data-health-row="${V6.service}|${V6.longBackend}"]`).waitFor({ timeout: WAIT_MS });
      await expectLayout(`cluster at ${width} px`);
      await shoot(`cluster-${width}`);

      await gotoPage(page, base, 'trace');
      await page.locator('button:text-is("Clear")').click();
      hooks.emitEvents(emitted);
      await page.waitForFunction((n) => document.querySelectorAll('tr[data-seq]').length === n, emitted.length, { timeout: WAIT_MS });
      const row = page.locator('tr[data-seq]:has(td.src[title="[2001:2:0:c11e::1]:40003"])');
      assert.equal((await row.locator('td.src').textContent())?.trim(), '[2001:2:0:c11e::1]:40003');
      assert.equal((await row.locator('td.dst').textContent())?.trim(), `[${V6.vip}]:443`);
      assert.equal((await row.locator('td.backend').textContent())?.trim(), V6.longBackend);
      assert.equal(await row.getAttribute('data-family'), '6');
      assert.equal(await page.locator('tr[data-seq]:has(td.src:text-is("198.18.100.1:40001"))').getAttribute('data-family'), '4');
      await expectLayout(`trace at ${width} px`);
      await shoot(`trace-${width}`);
    }

    await page.setViewportSize({ width: 1280, height: 900 });
    log('v6 trace filters');
    await checkTraceFilters(page);

    log('v6 forms');
    await checkForms(page, base, allow => { allowed = allow; });
    await shoot('services-added-1280');
    await page.setViewportSize({ width: 800, height: 900 });
    await expectLayout('services at 800 px with the added IPv6 service');
    assert.deepEqual(errors, [], 'no console errors');
    return shots;
  } finally {
    await browser.close();
  }
}

/** The source ports (40001..) of the rows the Trace page shows now, sorted. */
async function shownPorts(page: Page): Promise<number[]> {
  const texts = await page.locator('tr[data-seq] td.src').allTextContents();
  return texts.map((t) => Number(/:(\d+)$/.exec(t.trim())?.[1])).sort((a, b) => a - b);
}

async function checkTraceFilters(page: Page): Promise<void> {
  const expectRows = async (what: string, want: number[]) => {
    // Filters apply on input; the rows re-render at once.
    await page.waitForFunction((w) => {
      const got = [...document.querySelectorAll('tr[data-seq] td.src')].map((td: any) => Number(/:(\d+)$/.exec(td.textContent.trim())?.[1])).sort((a, b) => a - b);
      return JSON.stringify(got) === JSON.stringify(w);
    }, want, { timeout: 5000 }).catch(async () => {
      assert.deepEqual(await shownPorts(page), want, what);
    });
  };
  const address = page.locator('#f-address');
  const port = page.locator('#f-port');
  const all = [40001, 40002, 40003, 40004, 40005, 40006, 40007, 40008];
  await expectRows('no filter', all);
  const cases: Array<[string, number[]]> = [
    ['2001:2:0:c11e::1', [40003, 40005, 40006]],
    ['2001:2:0:c11e:0:0:0:1', [40003, 40005, 40006]],
    ['2001:0002:0000:C11E:0000:0000:0000:0001', [40003, 40005, 40006]],
    ['2001:2:0:c11e::10', [40004]],
    ['2001:2:0:c11e::/64', [40003, 40004, 40005, 40006, 40008]],
    ['198.18.100.1', [40001]],
    ['198.18.0.0/15', [40001, 40002, 40007]],
    ['[2001:2:0:a5a5:0:0:0:10]:443', [40003, 40004]],
    ['2001:2::1:11', [40004, 40005]],
    ['2001:2:0:a5a5:b6b6:c7c7:d8d8:e9e9', [40003]],
  ];
  for (const [text, want] of cases) {
    await address.fill(text);
    await expectRows(`address filter ${text}`, want);
    assert.equal(await page.locator('[data-testid=filter-error]').isVisible(), false, `no error for ${text}`);
  }
  await address.fill('2001:2::g');
  await page.locator('[data-testid=filter-error]:has-text("\\"2001:2::g\\" is not an IPv4 or IPv6 address")').waitFor({ timeout: WAIT_MS });
  assert.equal(await address.getAttribute('aria-invalid'), 'true');
  await expectRows('an invalid address filter is not applied', all);
  await address.fill('2001:2:0:c11e::1');
  await port.fill('22');
  await expectRows('address and port', [40006]);
  await address.fill('');
  await port.fill('80');
  await expectRows('port 80 is not 8080', [40001, 40002]);
  await port.fill('8443');
  await expectRows('port 8443: the backends\' port', [40003, 40004, 40005]);
  await port.fill('');
  await page.selectOption('#f-family', 'IPv6');
  await expectRows('IPv6 only', [40003, 40004, 40005, 40006, 40008]);
  await page.selectOption('#f-family', 'IPv4');
  await expectRows('IPv4 only', [40001, 40002, 40007]);
  await page.selectOption('#f-family', '');
  await page.selectOption('#f-service', 'web6');
  await expectRows('service web6', [40003, 40004, 40005]);
  await page.selectOption('#f-backend', V6.longBackend);
  await expectRows('service web6, long backend', [40003]);
  await page.selectOption('#f-service', '');
  await page.selectOption('#f-backend', '');
  await page.selectOption('#f-proto', 'udp');
  await expectRows('udp', [40008]);
  await page.selectOption('#f-proto', '');
  await expectRows('no filter again', all);
  assert.match(await page.locator('[data-testid=trace-count]').textContent() ?? '', /^8 matching of 8 buffered/);
}

async function checkForms(page: Page, base: string, allowConsole: (re: RegExp | null) => void): Promise<void> {
  await gotoPage(page, base, 'services');
  const panel = page.locator(`section[data-service="${V6.service}"]`);
  const dialog = page.locator('dialog.dialog[open]');
  const submitAndExpectError = async (re: RegExp, field: string) => {
    await dialog.locator('button[type=submit]').click();
    await dialog.locator('.dialog-error', { hasText: re }).waitFor({ timeout: WAIT_MS });
    assert.equal(await dialog.locator(`[name=${field}]`).getAttribute('aria-invalid'), 'true', `${field} marked`);
  };
  allowConsole(/status of (400|409)/);

  // Add backend to the IPv6 service: garbage and an IPv4 address are refused by the server,
  // whose message the dialog shows; a non-canonical IPv6 address is added in canonical form.
  await panel.locator('button[data-action=add-backend]').click();
  assert.match(await dialog.locator('label[for=dlg-address]').textContent() ?? '', /IPv6/);
  await dialog.locator('input[name=address]').fill('2001:2::zz');
  await submitAndExpectError(/"2001:2::zz" is not an IPv6 address.*400/, 'address');
  await dialog.locator('input[name=address]').fill('198.18.1.50');
  await submitAndExpectError(/backend 198\.18\.1\.50 is IPv4 but the VIP 2001:2:0:a5a5::10 is IPv6; a service is one family/, 'address');
  await dialog.locator('input[name=address]').fill('2001:2:0:A5A5:0:0:0:50');
  await dialog.locator('input[name=port]').fill('8443');
  await dialog.locator('button[type=submit]').click();
  await page.waitForSelector('dialog.dialog', { state: 'detached', timeout: WAIT_MS });
  const added = panel.locator('tr[data-backend="[2001:2:0:a5a5::50]:8443"]');
  await added.waitFor({ timeout: WAIT_MS });
  await added.locator('button[data-action=remove]').click();
  await dialog.locator('h2:has-text("Remove [2001:2:0:a5a5::50]:8443?")').waitFor({ timeout: WAIT_MS });
  await dialog.locator('button[type=submit]').click();
  await added.waitFor({ state: 'detached', timeout: WAIT_MS });

  // Add service: an IPv6 VIP with IPv6 backends; refusals shown and the field marked.
  await page.locator('button[data-action=add-service]').click();
  await dialog.locator('input[name=name]').fill('api6');
  await dialog.locator('input[name=vip]').fill('fe80::1');
  await dialog.locator('input[name=port]').fill('8080');
  await submitAndExpectError(/fe80::1 is a link-local address \(fe80::\/10\).*400/, 'vip');
  await dialog.locator('input[name=vip]').fill('2001:2:0:0:0:0:0:FF');
  await dialog.locator('input[name=backends]').fill('2001:2::3:1:9000');
  await dialog.locator('button[type=submit]').click();
  await dialog.locator('.dialog-error', { hasText: /backends: "2001:2::3:1:9000": write an IPv6 address with a port as \[address\]:port/ }).waitFor({ timeout: WAIT_MS });
  await dialog.locator('input[name=backends]').fill('[2001:2::3:1]:9000 198.18.3.2:9000');
  await submitAndExpectError(/\/backends\/1\/address: service "api6": backend 198\.18\.3\.2 is IPv4 but the VIP 2001:2::ff is IPv6/, 'backends');
  await dialog.locator('input[name=backends]').fill('[2001:2::3:1]:9000, [2001:2:0:0:0:0:3:2]:9000');
  await dialog.locator('button[type=submit]').click();
  await page.waitForSelector('dialog.dialog', { state: 'detached', timeout: WAIT_MS });
  const svc = page.locator('section[data-service="api6"]');
  await svc.waitFor({ timeout: WAIT_MS });
  assert.equal((await svc.locator('[data-field=vip]').textContent())?.trim(), '[2001:2::ff]:8080/tcp');
  assert.deepEqual(await svc.locator('tr[data-backend]').evaluateAll((rows) => rows.map((r: any) => r.dataset.backend)),
    ['[2001:2::3:1]:9000', '[2001:2::3:2]:9000']);
  allowConsole(null);
}

/**
 * The IPv6 part against the real daemon (test/browser/daemon-lab.ts: service `web6`, VIP
 * 2001:2:0:a5a5::10 port 80, backends [2001:2:0:a5a5:b6b6:c7c7:d8d8:e9e9]:8080 and
 * [2001:2::1:11]:8080, no IPv6 traffic): the addresses as the real API gives them and the
 * layout of Services, Overview, Maps and Trace at 1280 and 800 px; the Trace family filter
 * (the lab's traffic is IPv4 only); add backend refused by the real API for an IPv4 address,
 * then added from a non-canonical IPv6 text — listed canonical by the API and written to the
 * kernel's backends6 (`kernelBackends6`) — and removed again; add service with an IPv6 VIP,
 * then deleted through the API.
 * @throws AssertionError naming the page, width and problem on the first failure.
 */
export async function checkIpv6AgainstDaemon(baseUrl: string, creds: BrowserSuiteCreds, opts: {
  service: string; vip: string; backends: string[]; kernelBackends6: () => string[]; log?: (line: string) => void;
}): Promise<void> {
  const base = baseUrl.replace(/\/+$/, '');
  const log = opts.log ?? (() => undefined);
  const exe = chromiumPath();
  const browser = await chromium.launch({ executablePath: exe, args: CHROMIUM_ARGS });
  const errors: string[] = [];
  let allowed: RegExp | null = null;
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (msg) => { if (msg.type() === 'error' && !allowed?.test(msg.text())) errors.push(msg.text()); });
    page.on('pageerror', (err) => errors.push(err.message));
    await login(page, base, creds.admin);
    const token = await page.evaluate(() => window.sessionStorage.getItem('xdplb.token')) as string;
    const apiCall = async (method: string, route: string) => {
      const res = await fetch(`${base}/api/v1${route}`, { method, headers: { authorization: `Bearer ${token}` } });
      return { status: res.status, body: res.status === 204 ? null : await res.json() as any };
    };
    const expectLayout = async (where: string) => assert.deepEqual(await layoutProblems(page), [], `${where}: layout`);
    assert.deepEqual(opts.kernelBackends6(), [...opts.backends].sort(), 'the kernel holds the IPv6 backends of the config');

    for (const width of LAYOUT_WIDTHS) {
      await page.setViewportSize({ width, height: 900 });
      log(`v6 against the daemon at ${width} px`);
      await gotoPage(page, base, 'services');
      const panel = page.locator(`section[data-service="${opts.service}"]`);
      await panel.waitFor({ timeout: WAIT_MS });
      assert.equal((await panel.locator('[data-field=vip]').textContent())?.trim(), `[${opts.vip}]:80/tcp`);
      assert.deepEqual(await panel.locator('tr[data-backend]').evaluateAll((rows) => rows.map((r: any) => r.dataset.backend).sort()), [...opts.backends].sort());
      for (const key of opts.backends) assert.equal((await panel.locator(`tr[data-backend="${key}"] td`).first().textContent())?.trim(), key);
      await expectLayout(`daemon services at ${width} px`);

      await gotoPage(page, base, 'overview');
      await page.locator(`tr.row-backend[data-service="${opts.service}"][data-backend="${opts.backends[0]}"]`).waitFor({ timeout: WAIT_MS });
      await page.locator(`.chart .u-legend .u-series:has-text("${opts.service}/${opts.backends[0]}")`).waitFor({ timeout: WAIT_MS });
      await expectLayout(`daemon overview at ${width} px`);

      await gotoPage(page, base, 'maps');
      await page.locator('button[data-map="backends6"]').click();
      await page.locator(`#map-entries td[title="${opts.backends[0].replace(/^\[(.*)\]:\d+$/, '$1')}"]`).first().waitFor({ timeout: WAIT_MS });
      await expectLayout(`daemon maps (backends6 entries) at ${width} px`);
      const shotDir = path.join(repoRoot(), 'test-artifacts', 'screenshots');
      fs.mkdirSync(shotDir, { recursive: true });
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: path.join(shotDir, `daemon6-maps-${width}.png`), fullPage: true });

      await gotoPage(page, base, 'trace');
      await page.waitForSelector('tr[data-seq]', { timeout: WAIT_MS });
      await expectLayout(`daemon trace at ${width} px`);
    }

    // The lab carries both families (IPv4 load; IPv6 health checks of the IPv6 service's backends):
    // the family filter splits the paused buffer exactly, each side holding only its own family.
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.locator('[data-testid=pause]').click();
    const total = await page.locator('tr[data-seq]').count();
    const noFamily = await page.locator('tr[data-seq]:not([data-family])').count();   // frames never IP (ARP)
    const familyRows = async (family: '4' | '6') => {
      await page.selectOption('#f-family', family === '4' ? 'IPv4' : 'IPv6');
      await page.waitForFunction((f) => {
        const rows = document.querySelectorAll('tr[data-seq]');
        return document.querySelector('p.empty') !== null || (rows.length > 0 && [...rows].every((r) => r.getAttribute('data-family') === f));
      }, family, { timeout: WAIT_MS });
      return page.locator('tr[data-seq]').count();
    };
    const v4 = await familyRows('4');
    const v6 = await familyRows('6');
    assert.ok(v4 > 0, 'the lab\'s IPv4 load is in the trace');
    // (The table shows at most its row limit of the buffer: each filtered view may show rows the
    // unfiltered one had no room for, never fewer.)
    assert.ok(v4 + v6 + noFamily >= total, `the family filter splits the ${total} shown rows (IPv4 ${v4}, IPv6 ${v6}, neither ${noFamily})`);
    await page.selectOption('#f-family', 'IPv4');
    await page.locator('#f-address').fill(opts.vip);
    await page.locator('p.empty').waitFor({ timeout: WAIT_MS });
    await page.selectOption('#f-family', '');
    await page.locator('#f-address').fill('');
    await page.locator('[data-testid=pause]').click();

    // Forms against the real API.
    log('v6 forms against the daemon');
    await gotoPage(page, base, 'services');
    const panel = page.locator(`section[data-service="${opts.service}"]`);
    const dialog = page.locator('dialog.dialog[open]');
    allowed = /status of (400|409)/;
    await panel.locator('button[data-action=add-backend]').click();
    await dialog.locator('input[name=address]').fill('198.18.1.50');
    await dialog.locator('input[name=port]').fill('8080');
    await dialog.locator('button[type=submit]').click();
    await dialog.locator('.dialog-error', { hasText: /198\.18\.1\.50.*IPv4.*IPv6.*400/ }).waitFor({ timeout: WAIT_MS });
    assert.equal(await dialog.locator('input[name=address]').getAttribute('aria-invalid'), 'true', 'the address is marked');
    await dialog.locator('input[name=address]').fill('2001:2:0:A5A5:0:0:0:50');
    await dialog.locator('button[type=submit]').click();
    await page.waitForSelector('dialog.dialog', { state: 'detached', timeout: WAIT_MS });
    const addedKey = '[2001:2:0:a5a5::50]:8080';
    const added = panel.locator(`tr[data-backend="${addedKey}"]`);
    await added.waitFor({ timeout: WAIT_MS });
    const listed = (await apiCall('GET', `/services/${encodeURIComponent(opts.service)}`)).body.backends.map((b: any) => b.key);
    assert.ok(listed.includes(addedKey), `the API lists ${addedKey}: ${listed.join(', ')}`);
    assert.ok(opts.kernelBackends6().includes(addedKey), `the kernel's backends6 holds ${addedKey}: ${opts.kernelBackends6().join(', ')}`);
    await added.locator('button[data-action=remove]').click();
    await dialog.locator('button[type=submit]').click();
    await added.waitFor({ state: 'detached', timeout: WAIT_MS });
    assert.ok(!opts.kernelBackends6().includes(addedKey), `${addedKey} left the kernel's backends6`);

    await page.locator('button[data-action=add-service]').click();
    await dialog.locator('input[name=name]').fill('api6');
    await dialog.locator('input[name=vip]').fill('ff02::1');
    await dialog.locator('input[name=port]').fill('8080');
    await dialog.locator('input[name=backends]').fill('[2001:2::3:1]:9000, [2001:2:0:0:0:0:3:2]:9000');
    await dialog.locator('button[type=submit]').click();
    await dialog.locator('.dialog-error', { hasText: /ff02::1.*multicast.*400/ }).waitFor({ timeout: WAIT_MS });
    await dialog.locator('input[name=vip]').fill('2001:2:0:0:0:0:0:FF');
    await dialog.locator('button[type=submit]').click();
    await page.waitForSelector('dialog.dialog', { state: 'detached', timeout: WAIT_MS });
    const svc = page.locator('section[data-service="api6"]');
    await svc.waitFor({ timeout: WAIT_MS });
    assert.equal((await svc.locator('[data-field=vip]').textContent())?.trim(), '[2001:2::ff]:8080/tcp');
    assert.deepEqual(await svc.locator('tr[data-backend]').evaluateAll((rows) => rows.map((r: any) => r.dataset.backend).sort()),
      ['[2001:2::3:1]:9000', '[2001:2::3:2]:9000']);
    allowed = null;
    assert.equal((await apiCall('DELETE', '/services/api6')).status, 204, 'api6 deleted again');
    await svc.waitFor({ state: 'detached', timeout: WAIT_MS });
    assert.deepEqual(errors, [], 'no console errors');
  } finally {
    await browser.close();
  }
}
