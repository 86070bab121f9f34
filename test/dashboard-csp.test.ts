/**
 * The built dashboard (web/dist) under the API server's real security headers, in Debian's
 * Chromium: it must load, log in, open its live stream and show every page without one
 * Content-Security-Policy violation (no inline script or style, no eval, nothing off-origin),
 * and it must refuse to be framed. Runs against createApiServer with the in-memory controller
 * on 127.0.0.1 (no kernel, no lab).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { AuthStore } from '../src/api/auth';
import { MemoryController } from '../src/api/memory-controller';
import { createApiServer } from '../src/api/server';
import { CONTENT_SECURITY_POLICY } from '../src/api/guard';
import { CHROMIUM_ARGS, PAGES, chromiumPath } from './browser/suite';
import { repoRoot } from './browser/repo-root';

// Browser-side names (the root tsconfig has no DOM lib).
declare const document: any;
declare const window: any;

const webRoot = path.join(repoRoot(), 'web', 'dist');
const chromiumBin = chromiumPath();
const skip = !fs.existsSync(chromiumBin) && process.env.CI !== 'true' ? `no Chromium at ${chromiumBin}`
  : !fs.existsSync(path.join(webRoot, 'index.html')) && process.env.CI !== 'true' ? 'web/dist not built (run scripts/build.sh)' : false;

describe('dashboard under the Content-Security-Policy', { skip }, () => {
  let app: FastifyInstance;
  let browser: Browser;
  let base = '';

  before(async () => {
    const controller = new MemoryController({ services: [{ name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', backends: [{ address: '198.18.1.2', port: 8080 }] }] });
    const auth = new AuthStore([{ name: 'admin', role: 'admin', password: 'csp-admin-password' }], []);
    app = createApiServer(controller, { auth, webRoot });
    await app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    browser = await chromium.launch({ executablePath: chromiumBin, args: CHROMIUM_ARGS });
  });
  after(async () => {
    await browser?.close();
    await app?.close();
  });

  test('loads, logs in, streams and shows every page with no CSP violation', { timeout: 120_000 }, async () => {
    const page = await browser.newPage();
    const violations: string[] = [];
    const errors: string[] = [];
    await page.exposeFunction('reportViolation', (v: string) => { violations.push(v); });
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e: any) => {
        window.reportViolation(`${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}`);
      });
    });
    page.on('console', (msg) => {
      if (/Content[- ]Security[- ]Policy/i.test(msg.text())) violations.push(msg.text());
      else if (msg.type() === 'error' && !/status of 401/.test(msg.text())) errors.push(msg.text());
    });
    page.on('pageerror', (err) => errors.push(err.message));
    const sockets: string[] = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));

    const index = await page.goto(`${base}/`);
    assert.equal(index?.headers()['content-security-policy'], CONTENT_SECURITY_POLICY);
    await page.fill('#login-user', 'admin');
    await page.fill('#login-password', 'csp-admin-password');
    await page.click('form.login-card button[type=submit]');
    await page.waitForSelector('[data-testid=whoami]', { timeout: 15_000 });
    for (const name of PAGES) {
      await page.goto(`${base}/#/${name}`);
      await page.waitForSelector(`nav a[data-route="${name}"][aria-current=page]`, { timeout: 15_000 });
    }
    // The stylesheet applied (style-src 'self'): the app's own CSS sets the body's margin.
    assert.equal(await page.evaluate(() => document.styleSheets.length > 0 && document.styleSheets[0].cssRules.length > 0), true);
    assert.ok(sockets.some((u) => u.startsWith(`ws://127.0.0.1:`) && u.includes('/api/v1/stream')), `the live stream connected: ${sockets.join(', ')}`);
    assert.deepEqual(violations, [], 'no Content-Security-Policy violations');
    assert.deepEqual(errors, [], 'no console errors');
    await page.close();
  });

  test('a page on another origin cannot frame the dashboard', { timeout: 60_000 }, async () => {
    const page = await browser.newPage();
    const blocked: string[] = [];
    page.on('console', (msg) => { if (/frame-ancestors|refused to frame|Refused to display/i.test(msg.text())) blocked.push(msg.text()); });
    await page.setContent(`<iframe src="${base}/"></iframe>`);
    await page.waitForTimeout(1000);
    const frame = page.frames().find((f) => f !== page.mainFrame());
    const loaded = frame ? await frame.evaluate(() => document.querySelector('#app') !== null).catch(() => false) : false;
    assert.equal(loaded, false, 'the dashboard did not render inside the frame');
    assert.ok(blocked.length > 0, 'Chromium reports the frame-ancestors refusal');
    await page.close();
  });
});
