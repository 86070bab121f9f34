/**
 * Browser end-to-end tests of the dashboard (test/browser/suite.ts) driving Debian's Chromium.
 *
 * - 'dashboard against the real daemon': the lab (xlbt-ui namespaces), the xdplb daemon with XDP
 *   attached in the lb namespace and HTTP load from the client to the VIP; the dashboard shows the
 *   kernel's counters, programs, maps and sampled events, and an admin's drain in the UI reaches
 *   the API (and the kernel's maps: see afterDrain).
 * - 'dashboard against the synthetic dev server': the UI's own behaviour (login, roles, live
 *   pages, dialogs, screenshots) against test/browser/dev-server.ts, a double of the daemon's
 *   HTTP API with made-up numbers, the Benchmarks page with a saved result, and IPv6 beside
 *   IPv4 (test/browser/v6-suite.ts: layout measured at 1280 and 800 px, trace filters, forms).
 *   It proves nothing about the kernel.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startDevServer, DEFAULT_DEV_USERS } from './browser/dev-server';
import { PAGES, checkBenchResults, checkClusterPage, checkHealthChangeShown, checkStreamReconnect, chromiumPath, runBrowserSuite } from './browser/suite';
import { repoRoot } from './browser/repo-root';
import { V6_SERVICE, startDaemonLab, whyLabNotRunnable } from './browser/daemon-lab';
import { kernelBackend, kernelBackends6 } from './browser/kernel-check';
import { checkIpv6AgainstDaemon, runIpv6Suite } from './browser/v6-suite';

const webBuilt = fs.existsSync(path.join(repoRoot(), 'web', 'dist', 'index.html'));
const chromium = chromiumPath();
// Chromium is installed by scripts/setup.sh: under CI its absence is a failure, not a skip.
const skipReason = !fs.existsSync(chromium) && process.env.CI !== 'true' ? `no Chromium at ${chromium} (run scripts/setup.sh)`
  : !webBuilt && process.env.CI !== 'true' ? 'web/dist not built (run scripts/build.sh)' : false;

const devCreds = {
  admin: { username: 'admin', password: DEFAULT_DEV_USERS.admin.password },
  viewer: { username: 'viewer', password: DEFAULT_DEV_USERS.viewer.password },
};

const labSkip = skipReason || whyLabNotRunnable();
if (labSkip && process.env.CI === 'true') throw new Error(`browser test against the daemon cannot run in CI: ${labSkip}`);

describe('dashboard against the real daemon', { skip: labSkip ?? false }, () => {
  test('login, roles, live kernel data on every page, drain through the UI, screenshots', { timeout: 300_000 }, async () => {
    const log = (l: string) => process.stderr.write(`${l}\n`);
    const lab = await startDaemonLab(log);
    try {
      const report = await runBrowserSuite(lab.url, lab.creds, {
        label: 'daemon', log,
        // The drain clicked in the UI must reach the kernel: DRAINING flag, no Maglev slot.
        afterDrain: async (_service, backend) => {
          const be = kernelBackend(lab.pinDir, backend);
          log(`kernel after drain: ${backend} id ${be.id} flags ${be.flags}, ${be.maglevSlots}/${be.tableSize} slots`);
          assert.equal(be.draining, true, `kernel backends map: ${backend} flags ${be.flags}`);
          assert.equal(be.maglevSlots, 0, `kernel maglev table: a draining ${backend} holds no slot`);
        },
        afterUndrain: async (_service, backend) => {
          const be = kernelBackend(lab.pinDir, backend);
          log(`kernel after undrain: ${backend} id ${be.id} flags ${be.flags}, ${be.maglevSlots}/${be.tableSize} slots`);
          assert.equal(be.draining, false, `kernel backends map: ${backend} flags ${be.flags}`);
          assert.ok(be.maglevSlots > 0, `kernel maglev table: ${backend} holds slots again (${be.maglevSlots} of ${be.tableSize})`);
        },
      });
      assert.equal(report.screenshots.length, 2 * PAGES.length + 4, `screenshots: ${report.screenshots.join(', ')}`);

      // IPv6 beside IPv4 against the real API and kernel maps (no IPv6 traffic in this lab).
      await checkIpv6AgainstDaemon(lab.url, lab.creds, {
        service: V6_SERVICE, vip: '2001:2:0:a5a5::10', backends: ['[2001:2:0:a5a5:b6b6:c7c7:d8d8:e9e9]:8080', '[2001:2::1:11]:8080'],
        kernelBackends6: () => kernelBackends6(lab.pinDir), log,
      });

      // A backend failing its health checks shows on the Overview, live, and recovers.
      const backend = lab.backends[1];
      await checkHealthChangeShown(lab.url, lab.creds.viewer, lab.service, `${backend.address}:8080`,
        (state) => lab.setBackendHealth(backend.host, state), { label: 'daemon' });
    } catch (err) {
      log(`daemon stderr: ${lab.daemon.stderr().slice(-3000)}`);
      throw err;
    } finally {
      await lab.stop();
    }
  });
});

describe('dashboard against the synthetic dev server', { skip: skipReason }, () => {
  test('login, roles, live pages, drain through the UI, screenshots', { timeout: 180_000 }, async () => {
    const server = await startDevServer();
    try {
      const report = await runBrowserSuite(server.url, devCreds, { label: 'dev', log: (l) => process.stderr.write(`${l}\n`) });
      assert.equal(report.screenshots.length, 2 * PAGES.length + 4, `screenshots: ${report.screenshots.join(', ')}`);
      for (const file of report.screenshots) assert.ok(fs.statSync(file).size > 10_000, `${file} is a real image`);
    } finally {
      await server.close();
    }
  });

  test('the Benchmarks page renders a saved result generically', { timeout: 60_000 }, async () => {
    const fixture = path.join(repoRoot(), 'test', 'browser', 'fixtures', 'bench-sample.json');
    const server = await startDevServer({ bench: JSON.parse(fs.readFileSync(fixture, 'utf8')) });
    try {
      const sections = await checkBenchResults(server.url, devCreds.admin, { label: 'dev' });
      assert.deepEqual(sections, ['results', 'failures', 'targets']);
    } finally {
      await server.close();
    }
  });

  test('the Cluster page: every node, a health disagreement, drain with confirmation, no buttons for a viewer', { timeout: 120_000 }, async () => {
    // Several nodes here are the dev server's SYNTHETIC cluster (lb1..lb3): this tests the page,
    // not a cluster.
    const server = await startDevServer();
    try {
      const shots = await checkClusterPage(server.url, devCreds, {
        nodes: ['lb1', 'lb2', 'lb3'], drainNode: 'lb2',
        disagreement: { service: 'web', backend: '198.18.1.12:8080', views: { lb1: 'up', lb2: 'up', lb3: 'down' } },
        sentDrains: () => server.drainRequests,
        setStoreStale: (reason) => server.setStoreStale(reason),
        setMovedSlots: (node, slots) => server.setMovedSlots(node, slots),
      }, { label: 'dev' });
      assert.equal(shots.length, 2);
    } finally {
      await server.close();
    }
  });

  test('IPv6 beside IPv4: canonical [addr]:port in every table, trace row and legend, layout measured at 1280 and 800 px, trace filters of both families, IPv6 in the add forms', { timeout: 180_000 }, async () => {
    // The dev server's dual-stack fixtures (synthetic: this tests the dashboard, not the data plane).
    const server = await startDevServer({ ipv6: true, randomEvents: false });
    try {
      const shots = await runIpv6Suite(server.url, devCreds, { emitEvents: (events) => server.emitEvents(events), log: (l) => process.stderr.write(`${l}\n`) });
      assert.equal(shots.length, 2 * 5 + 1, `screenshots: ${shots.join(', ')}`);
    } finally {
      await server.close();
    }
  });

  test('the live stream reconnects by itself after the server drops it', { timeout: 60_000 }, async () => {
    const server = await startDevServer();
    try {
      await checkStreamReconnect(server.url, devCreds.viewer, () => server.dropStreams());
    } finally {
      await server.close();
    }
  });
});
