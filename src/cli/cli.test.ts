/**
 * Runs the real CLI (a child process) against the real API server over the real daemon
 * controller, in this process. Only the kernel side is replaced (MemoryDriver): the kernel
 * paths are covered by test/daemon.test.ts.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { createApiServer } from '../api/server';
import { AuthStore } from '../api/auth';
import { DaemonController } from '../daemon/controller';
import { MemoryDriver } from '../daemon/memory-driver';
import { HealthMonitor } from '../health/monitor';
import { ClusterService } from '../cluster/status';
import { DesiredState } from '../config/state';
import { cliCommand } from '../daemon/spawn';
import { formatTraceEvent } from './observe';
import { repoRoot } from '../daemon/paths';
import type { ServiceView, StateApplyResult } from '../domain/types';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';

const ADMIN_TOKEN = 'cli-test-admin-token-0123456789';
const VIEWER_TOKEN = 'cli-test-viewer-token-0123456789';

interface Run { code: number; stdout: string; stderr: string }

let api = '';
let server: FastifyInstance;
let controller: DaemonController;
let driver: MemoryDriver;

/** Runs `xdplb ARGS` with the test API and admin token in the environment (unless overridden). */
function xdplb(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Run> {
  const [cmd, ...pre] = cliCommand();
  return new Promise((resolve) => {
    const child = execFile(cmd, [...pre, ...args], {
      cwd: repoRoot(), timeout: 30_000,
      env: { ...process.env, XDPLB_API: api, XDPLB_TOKEN: ADMIN_TOKEN, ...opts.env },
    }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin!.end(opts.input ?? '');
  });
}

/** Asserts a failure: the exit code and exactly one stderr line matching `pattern`. */
function assertFails(run: Run, code: number, pattern: RegExp): void {
  assert.equal(run.code, code, `exit code; stderr: ${run.stderr}`);
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one stderr line, got: ${run.stderr}`);
  assert.match(lines[0], pattern);
  assert.equal(run.stdout, '');
}

function snapshotState(): string {
  return JSON.stringify(controller.state.config);
}

before(async () => {
  driver = new MemoryDriver();
  const logger = pino({ level: 'silent' });
  const state = new DesiredState({
    users: [{ name: 'alice', role: 'admin', password: 'wonderland' }],
    services: [{ name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 13,
      backends: [{ address: '198.18.1.11', port: 8080, weight: 1 }] }],
  });
  controller = new DaemonController({ state, driver, health: new HealthMonitor(), logger, persist: null });
  await controller.start();
  const auth = new AuthStore(state.config.users, [
    { name: 'ci', role: 'admin', token: ADMIN_TOKEN }, { name: 'ro', role: 'viewer', token: VIEWER_TOKEN },
  ]);
  server = createApiServer(controller, { auth, logger });
  await server.listen({ host: '127.0.0.1', port: 0 });
  api = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
});

after(async () => {
  controller?.stop();
  await server?.close();
});

describe('xdplb CLI', () => {
  test('--help lists every verb; a verb\'s --help lists its sub-verbs', async () => {
    const top = await xdplb(['--help']);
    assert.equal(top.code, 0);
    for (const verb of ['daemon', 'service', 'backend', 'apply', 'diff', 'state', 'settings', 'stats', 'trace', 'programs', 'maps', 'login', 'lab', 'bench', 'transitions']) {
      assert.match(top.stdout, new RegExp(`^\\s+${verb}\\b`, 'm'), `--help lists ${verb}`);
    }
    const service = await xdplb(['service', '--help']);
    assert.equal(service.code, 0);
    for (const sub of ['list', 'show', 'add', 'del']) assert.match(service.stdout, new RegExp(`^\\s+${sub}\\b`, 'm'));
    const add = await xdplb(['service', 'add', '--help']);
    for (const opt of ['--vip', '--port', '--proto', '--mode', '--backend', '--table-size', '--json', '--api', '--token']) {
      assert.ok(add.stdout.includes(opt), `service add --help shows ${opt}`);
    }
  });

  test('usage errors exit 2 with one line and change nothing', async () => {
    const before = snapshotState();
    assertFails(await xdplb(['bogus']), 2, /^xdplb: usage: unknown command 'bogus'/);
    assertFails(await xdplb(['service', 'add', 'api', '--vip', '198.18.100.2']), 2, /^xdplb: usage: .*--port/);
    assertFails(await xdplb(['service', 'add', 'api', '--vip', '198.18.100.2', '--port', '80', '--proto', 'sctp']), 2,
      /^xdplb: usage: .*sctp.*(tcp|udp)/);
    assertFails(await xdplb(['service', 'add', 'api', '--vip', '198.18.100.2', '--port', 'eighty']), 2, /^xdplb: usage: .*--port must be an integer/);
    assertFails(await xdplb(['backend', 'add', 'web', '198.18.1.12']), 2, /^xdplb: usage: .*ADDRESS:PORT/);
    assertFails(await xdplb(['stats', '--api', 'ftp://x']), 2, /^xdplb: XDPLB_ERR_USAGE: .*http/);
    assertFails(await xdplb(['stats', '--watch', '--interval', '0']), 2, /^xdplb: usage: .*--interval must be in 1\.\.3600/);
    // verbs registered by other modules get the same treatment
    assertFails(await xdplb(['lab', 'up', '--backends', 'many']), 2, /^xdplb: usage: .*--backends/);
    assert.equal(snapshotState(), before);
  });

  test('bad values are refused by the API with the field, exit 1, and change nothing', async () => {
    const before = snapshotState();
    const applies = driver.applyCount;
    assertFails(await xdplb(['service', 'add', 'api', '--vip', '198.18.100.300', '--port', '80']), 1,
      /^xdplb: XDPLB_ERR_VALIDATION: .* \(field \/vip\)$/);
    assertFails(await xdplb(['service', 'add', 'api', '--vip', '198.18.100.2', '--port', '70000']), 1,
      /^xdplb: XDPLB_ERR_VALIDATION: .* \(field \/port\)$/);
    assertFails(await xdplb(['backend', 'add', 'web', '198.18.1.12:80', '--weight', '-1']), 1,
      /^xdplb: XDPLB_ERR_VALIDATION: .* \(field \/weight\)$/);
    assertFails(await xdplb(['backend', 'add', 'nope', '198.18.1.12:80']), 1, /^xdplb: XDPLB_ERR_NOT_FOUND: .*nope/);
    assertFails(await xdplb(['service', 'add', 'web', '--vip', '198.18.100.9', '--port', '80']), 1, /^xdplb: XDPLB_ERR_CONFLICT: /);
    assertFails(await xdplb(['service', 'show', 'nope']), 1, /^xdplb: XDPLB_ERR_NOT_FOUND: /);
    assert.equal(snapshotState(), before);
    assert.equal(driver.applyCount, applies, 'nothing reached the data plane');
  });

  test('addresses that can never work are refused with the class and the field, exit 1, and change nothing', async () => {
    const before = snapshotState();
    const applies = driver.applyCount;
    assertFails(await xdplb(['service', 'add', 'lo', '--vip', '127.0.0.1', '--port', '80']), 1,
      /^xdplb: XDPLB_ERR_VALIDATION: \/vip: 127\.0\.0\.1 is a loopback address \(127\.0\.0\.0\/8\) and can never be a VIP or backend \(field \/vip\)$/);
    assertFails(await xdplb(['service', 'add', 'x', '--vip', '198.18.100.7', '--port', '80', '--backend', '224.0.0.5:80']), 1,
      /^xdplb: XDPLB_ERR_VALIDATION: \/backends\/0\/address: 224\.0\.0\.5 is a multicast address .* \(field \/backends\/0\/address\)$/);
    assertFails(await xdplb(['backend', 'add', 'web', '169.254.169.254:80']), 1,
      /^xdplb: XDPLB_ERR_VALIDATION: \/address: 169\.254\.169\.254 is a link-local address .* \(field \/address\)$/);
    assertFails(await xdplb(['backend', 'add', 'web', '198.18.1.11:8080']), 1, /^xdplb: XDPLB_ERR_CONFLICT: \/address: backend 198\.18\.1\.11:8080 duplicates .* \(field \/address\)$/);
    assert.equal(snapshotState(), before);
    assert.equal(driver.applyCount, applies, 'nothing reached the data plane');
  });

  test('maps --limit: the API\'s bound (1..1000, from the schema), refused before any request', async () => {
    assertFails(await xdplb(['maps', 'services', '--limit', '1001']), 2, /^xdplb: usage: .*--limit must be in 1\.\.1000, got 1001/);
    assertFails(await xdplb(['maps', 'services', '--limit', '0']), 2, /^xdplb: usage: .*--limit must be in 1\.\.1000, got 0/);
    // 1000 passes the CLI and the API's query schema: the (kernel-less) driver then has no such map
    assertFails(await xdplb(['maps', 'services', '--limit', '1000']), 1, /^xdplb: XDPLB_ERR_NOT_FOUND: /);
    const help = await xdplb(['maps', '--help']);
    assert.match(help.stdout, /--limit <n>\s+entries per page \(1\.\.1000\)/);
  });

  test('service and backend verbs change the state; --json parses', async () => {
    const added = await xdplb(['service', 'add', 'dns', '--vip', '198.18.100.2', '--port', '53', '--proto', 'udp',
      '--backend', '198.18.1.11:53', '--backend', '198.18.1.12:53:3', '--table-size', '13', '--json']);
    assert.equal(added.code, 0, added.stderr);
    const view = JSON.parse(added.stdout) as ServiceView;
    assert.equal(view.protocol, 'udp');
    assert.deepEqual(view.backends.map((b) => [b.key, b.weight]), [['198.18.1.11:53', 1], ['198.18.1.12:53', 3]]);
    assert.equal(driver.applied!.services.find((s) => s.name === 'dns')!.backends.length, 2);

    const list = await xdplb(['service', 'list', '--json']);
    assert.deepEqual((JSON.parse(list.stdout) as { services: ServiceView[] }).services.map((s) => s.name), ['web', 'dns']);
    const table = await xdplb(['service', 'list']);
    assert.match(table.stdout, /^UDP\s+198\.18\.100\.2:53\s+nat\s+dns/m);
    assert.match(table.stdout, /^\s+->\s+198\.18\.1\.12:53\s+w 3\s+unchecked\s+75\.0%/m);
    // Transitions: a data plane without them shows every service at rest (the kernel's: test/transitions-api).
    const moved = await xdplb(['transitions']);
    assert.equal(moved.code, 0, moved.stderr);
    assert.match(moved.stdout, /^dns\s+0\s+0\s+0\.0%/m);
    assert.match((await xdplb(['service', 'show', 'dns'])).stdout, /^transition: none \(steady state\)$/m);
    assertFails(await xdplb(['transitions', 'nope']), 1, /^xdplb: XDPLB_ERR_NOT_FOUND: service "nope" does not exist/);

    assert.equal((await xdplb(['backend', 'weight', 'dns', '198.18.1.12:53', '5'])).code, 0);
    assert.equal(controller.getService('dns').backends[1].weight, 5);
    const drained = await xdplb(['backend', 'drain', 'dns', '198.18.1.11:53', '--json']);
    assert.equal((JSON.parse(drained.stdout) as ServiceView).backends[0].draining, true);
    assert.equal(driver.applied!.services.find((s) => s.name === 'dns')!.backends[0].draining, true);
    await xdplb(['backend', 'drain', 'dns', '198.18.1.11:53', '--undo']);
    assert.equal(controller.getService('dns').backends[0].draining, false);
    assert.equal((await xdplb(['backend', 'add', 'dns', '198.18.1.13:53', '--weight', '2'])).code, 0);
    assert.equal((await xdplb(['backend', 'del', 'dns', '198.18.1.11:53'])).code, 0);
    assert.deepEqual(controller.getService('dns').backends.map((b) => b.key), ['198.18.1.12:53', '198.18.1.13:53']);

    const settings = await xdplb(['settings', '--sample-rate', '100', '--frag-policy', 'pass', '--flow-cache', 'off', '--json']);
    assert.deepEqual(JSON.parse(settings.stdout), { fragPolicy: 'pass', sampleRate: 100, flowCache: false });
    assert.equal(driver.applied!.settings.sampleRate, 100);

    const checked = await xdplb(['service', 'add', 'api', '--vip', '198.18.100.3', '--port', '443', '--backend', '198.18.1.21:8443',
      '--check', 'http', '--check-path', '/ready', '--check-port', '9000', '--check-status', '200-204', '--rise', '3', '--json']);
    assert.equal(checked.code, 0, checked.stderr);
    assert.deepEqual((JSON.parse(checked.stdout) as ServiceView).healthCheck,
      { type: 'http', path: '/ready', port: 9000, expectStatus: [200, 204], intervalMs: 1000, timeoutMs: 500, rise: 3, fall: 2 });
    assert.equal((await xdplb(['service', 'del', 'api'])).code, 0);
    const kept = await xdplb(['service', 'add', 'api', '--vip', '198.18.100.3', '--port', '443', '--backend', '198.18.1.21:8443',
      '--check', 'http', '--check-reuse-connection', '--json']);
    assert.equal(kept.code, 0, kept.stderr);
    assert.equal((JSON.parse(kept.stdout) as ServiceView).healthCheck!.reuseConnection, true);
    assert.equal((await xdplb(['service', 'del', 'api'])).code, 0);
    const fresh = await xdplb(['service', 'add', 'api', '--vip', '198.18.100.3', '--port', '443', '--backend', '198.18.1.21:8443',
      '--check', 'http', '--no-check-reuse-connection', '--json']);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.equal((JSON.parse(fresh.stdout) as ServiceView).healthCheck!.reuseConnection, false);
    assert.equal((await xdplb(['service', 'del', 'api'])).code, 0);
    const tcpKept = await xdplb(['service', 'add', 'api', '--vip', '198.18.100.3', '--port', '443', '--backend', '198.18.1.21:8443',
      '--check', 'tcp', '--check-reuse-connection']);
    assert.notEqual(tcpKept.code, 0);
    assert.match(tcpKept.stderr, /reuseConnection.*only applies to http checks/);
    assert.ok(!controller.listServices().some((s) => s.name === 'api'), 'nothing added');

    const deleted = await xdplb(['service', 'del', 'dns']);
    assert.equal(deleted.code, 0);
    assert.deepEqual(controller.listServices().map((s) => s.name), ['web']);
  });

  test('apply -f / diff -f: the whole state in one change, the diff and the disruption; --dry-run changes nothing', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbp-cli-'));
    try {
      const file = path.join(dir, 'state.yaml');
      const web = controller.getService('web');
      const rate = controller.getSettings().sampleRate;
      const doc = {
        services: [
          { name: 'web', vip: web.vip, port: web.port, protocol: web.protocol, mode: web.mode, tableSize: 13,
            backends: [{ address: '198.18.1.11', port: 8080, weight: 1 }, { address: '198.18.1.12', port: 8080, weight: 1 }] },
          { name: 'db', vip: '198.18.100.9', port: 5432, protocol: 'tcp', mode: 'nat', tableSize: 13, backends: [{ address: '198.18.1.31', port: 5432, weight: 1 }] },
        ],
        settings: { sampleRate: 7 },
      };
      fs.writeFileSync(file, YAML.stringify(doc));
      const before = snapshotState();
      const applies = driver.applyCount;
      const dry = await xdplb(['diff', '-f', file]);
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, /^dry run: nothing was changed/m);
      assert.match(dry.stdout, /^\+ service db$/m);
      assert.match(dry.stdout, /^~ service web$/m);
      assert.match(dry.stdout, /^ {4}\+ backend 198\.18\.1\.12:8080$/m);
      assert.match(dry.stdout, new RegExp(`^~ settings sampleRate: ${rate} -> 7$`, 'm'));
      assert.match(dry.stdout, /^ {2}web: \d+\.\d\d % of flows move \(M=13\)$/m);
      const dryJson = JSON.parse((await xdplb(['apply', '-f', file, '--dry-run', '--json'])).stdout) as StateApplyResult;
      assert.equal(dryJson.dryRun, true);
      assert.equal(dryJson.applied, false);
      assert.equal(snapshotState(), before, 'a dry run changes nothing');
      assert.equal(driver.applyCount, applies, 'a dry run does not touch the data plane');

      const applied = await xdplb(['apply', '-f', file, '--json']);
      assert.equal(applied.code, 0, applied.stderr);
      const result = JSON.parse(applied.stdout) as StateApplyResult;
      assert.equal(result.applied, true);
      assert.deepEqual(result.diff, dryJson.diff, 'the diff made is the one the dry run showed');
      assert.deepEqual(result.disruption, dryJson.disruption, 'and so is the disruption (all backends unchecked)');
      assert.equal(driver.applyCount, applies + 1, 'one change');
      assert.deepEqual(controller.listServices().map((s) => s.name), ['web', 'db']);
      assert.equal(controller.getSettings().sampleRate, 7);
      const again = await xdplb(['apply', '-f', file]);
      assert.match(again.stdout, /^no changes/);
      assert.equal(driver.applyCount, applies + 1);

      // Invalid: refused whole, one line naming the field, nothing changed.
      fs.writeFileSync(file, YAML.stringify({ services: [doc.services[0], { ...doc.services[1], port: 70000 }] }));
      const state = snapshotState();
      assertFails(await xdplb(['apply', '-f', file]), 1, /^xdplb: XDPLB_ERR_VALIDATION: .*\(field \/services\/1\/port\)$/);
      assert.equal(snapshotState(), state);
      assertFails(await xdplb(['apply', '-f', path.join(dir, 'missing.yaml')]), 2, /^xdplb: usage: cannot read .*missing\.yaml: ENOENT$/);
      fs.writeFileSync(file, '- just\n- a list\n');
      assertFails(await xdplb(['diff', '-f', file]), 2, /^xdplb: usage: .*must hold a mapping/);

      const got = await xdplb(['state', 'get']);
      assert.deepEqual((YAML.parse(got.stdout) as { services: Array<{ name: string }> }).services.map((s) => s.name), ['web', 'db']);
      // Back to the start for the other tests.
      fs.writeFileSync(file, YAML.stringify({ services: [{ ...doc.services[0], backends: [doc.services[0].backends[0]] }], settings: { sampleRate: rate } }));
      assert.equal((await xdplb(['apply', '-f', file])).code, 0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('backend drain and weight take several backends in one change', async () => {
    assert.equal((await xdplb(['service', 'add', 'pool', '--vip', '198.18.100.20', '--port', '80', '--table-size', '13',
      '--backend', '198.18.1.41:80', '--backend', '198.18.1.42:80', '--backend', '198.18.1.43:80'])).code, 0);
    try {
      const applies = driver.applyCount;
      const drained = await xdplb(['backend', 'drain', 'pool', '198.18.1.41:80', '198.18.1.43:80']);
      assert.equal(drained.code, 0, drained.stderr);
      assert.match(drained.stdout, /^~ service pool$/m);
      assert.match(drained.stdout, /^ {4}~ backend 198\.18\.1\.41:80: drain$/m);
      assert.equal(driver.applyCount, applies + 1, 'one change for both');
      assert.deepEqual(controller.getService('pool').backends.map((b) => b.draining), [true, false, true]);
      const weighted = await xdplb(['backend', 'weight', 'pool', '198.18.1.41:80', '198.18.1.42:80', '4', '--json']);
      assert.equal(weighted.code, 0, weighted.stderr);
      assert.deepEqual((JSON.parse(weighted.stdout) as { services: ServiceView[] }).services[0].backends.map((b) => b.weight), [4, 4, 1]);
      assert.equal(driver.applyCount, applies + 2);
      // All or nothing: one unknown backend refuses the whole change.
      const state = snapshotState();
      assertFails(await xdplb(['backend', 'drain', 'pool', '198.18.1.42:80', '198.18.1.99:80', '--undo']), 1,
        /^xdplb: XDPLB_ERR_NOT_FOUND: \/changes\/1: service "pool" has no backend "198\.18\.1\.99:80" \(field \/changes\/1\)$/);
      assert.equal(snapshotState(), state);
      assertFails(await xdplb(['backend', 'weight', 'pool', '198.18.1.41:80', 'x']), 2, /^xdplb: usage: weight must be an integer/);
      assertFails(await xdplb(['backend', 'drain', 'pool', '198.18.1.41:80', '198.18.1.41:80']), 2, /^xdplb: usage: backend 198\.18\.1\.41:80 is named twice$/);
    } finally {
      await xdplb(['service', 'del', 'pool']);
    }
  });

  test('IPv6: service and backend verbs take [v6]:port in any text form; every output is canonical', async () => {
    const added = await xdplb(['service', 'add', 'web6', '--vip', '2001:0002::0100', '--port', '80', '--table-size', '13',
      '--backend', '[2001:2:0:0:0:0:0:5]:8080', '--backend', '[2001:2::6]:8080:3']);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /^TCP\s+\[2001:2::100\]:80\s+nat\s+web6/m);
    assert.match(added.stdout, /^\s+->\s+\[2001:2::6\]:8080\s+w 3/m);
    assert.ok(!added.stdout.includes('0002'), added.stdout);
    try {
      assert.deepEqual(driver.applied!.services.find((s) => s.name === 'web6')!.backends.map((b) => b.address), ['2001:2::5', '2001:2::6']);
      assert.equal((await xdplb(['backend', 'add', 'web6', '[2001:2::7]:8080', '--weight', '2'])).code, 0);
      const weighted = await xdplb(['backend', 'weight', 'web6', '[2001:0002::5]:8080', '[2001:2::6]:8080', '4']);
      assert.equal(weighted.code, 0, weighted.stderr);
      assert.match(weighted.stdout, /^ {4}~ backend \[2001:2::5\]:8080: weight 1 -> 4$/m);
      assert.deepEqual(controller.getService('web6').backends.map((b) => b.weight), [4, 4, 2]);
      assert.equal((await xdplb(['backend', 'drain', 'web6', '[2001:2::7]:8080'])).code, 0);
      assert.equal(controller.getService('web6').backends[2].draining, true);
      const deleted = await xdplb(['backend', 'del', 'web6', '[2001:2:0::7]:8080']);
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.equal(deleted.stdout.trim(), 'deleted backend [2001:2::7]:8080 of web6');
      const state = snapshotState();
      assertFails(await xdplb(['backend', 'add', 'web6', '2001:2::8:8080']), 2, /^xdplb: usage: .*backend must be ADDRESS:PORT or \[IPv6\]:PORT.*in brackets/);
      assertFails(await xdplb(['backend', 'add', 'web6', '198.18.1.8:8080']), 1,
        /^xdplb: XDPLB_ERR_VALIDATION: \/address: service "web6": backend 198\.18\.1\.8 is IPv4 but the VIP 2001:2::100 is IPv6; a service is one family/);
      assertFails(await xdplb(['backend', 'add', 'web6', '[fe80::1]:8080']), 1, /link-local address \(fe80::\/10\)/);
      assertFails(await xdplb(['backend', 'add', 'web6', '[2001:2::8]:65536']), 1, /XDPLB_ERR_VALIDATION: \/port/);
      assert.equal(snapshotState(), state, 'refused changes change nothing');
      // A state file in another text form of the same addresses is the same state: no diff.
      const doc = JSON.parse((await xdplb(['state', 'get', '--json'])).stdout) as { services: Array<{ name: string; vip: string; backends: Array<{ address: string }> }> };
      const web6 = doc.services.find((s) => s.name === 'web6')!;
      web6.vip = '2001:0002:0:0:0:0:0:0100';
      web6.backends = web6.backends.map((b) => ({ ...b, address: b.address.replace('2001:2::', '2001:2:0:0:0:0:0:').toUpperCase() }));
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'xlbc6-cli-')), 'state.yaml');
      fs.writeFileSync(file, YAML.stringify(doc));
      const diff = await xdplb(['diff', '-f', file]);
      assert.equal(diff.code, 0, diff.stderr);
      assert.equal(diff.stdout.trim(), 'no changes: the running state already is the desired one');
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    } finally {
      await xdplb(['service', 'del', 'web6']);
    }
  });

  test('trace lines: IPv6 endpoints as [v6]:port, canonical; IPv4 and portless protocols as before', () => {
    const base = { tsNs: 1, ifindex: 3, pktLen: 74, serviceId: 1, backendId: 1, service: 'web6', backend: '[2001:2::1:2]:8080',
      saddr: '2001:2:0:0:0:0:0:10', daddr: '2001:2::100', sport: 40000, dport: 80, proto: 6, action: 'tx' as const, reason: 'forwarded' as const };
    const at = new Date('2026-12-05T01:00:00.000Z');
    assert.match(formatTraceEvent(base, at), /tcp \[2001:2::10\]:40000 > \[2001:2::100\]:80 .* web6 -> \[2001:2::1:2\]:8080 {2}tx\/forwarded$/);
    assert.match(formatTraceEvent({ ...base, proto: 58, sport: 0, dport: 0 }, at), /icmp6 2001:2::10 > 2001:2::100 /);
    assert.match(formatTraceEvent({ ...base, saddr: '198.18.0.2', daddr: '198.18.100.1', backend: '198.18.1.2:8080' }, at), /tcp 198\.18\.0\.2:40000 > 198\.18\.100\.1:80 /);
  });

  test('auth: no token, viewer token, login with the password on stdin', async () => {
    assertFails(await xdplb(['service', 'list'], { env: { XDPLB_TOKEN: '' } }), 1, /^xdplb: XDPLB_ERR_UNAUTHENTICATED: /);
    assertFails(await xdplb(['service', 'del', 'web', '--token', VIEWER_TOKEN]), 1, /^xdplb: XDPLB_ERR_FORBIDDEN: /);
    const login = await xdplb(['login', 'alice'], { env: { XDPLB_TOKEN: '' }, input: 'wonderland\n' });
    assert.equal(login.code, 0, login.stderr);
    const token = login.stdout.trim();
    assert.match(token, /^[0-9a-f]{64}$/);
    const who = await xdplb(['service', 'list', '--json', '--token', token]);
    assert.equal(who.code, 0);
    assertFails(await xdplb(['login', 'alice', '--password', 'nope'], { env: { XDPLB_TOKEN: '' } }), 1, /^xdplb: XDPLB_ERR_UNAUTHENTICATED: /);
  });

  test('hash-password prints a hash the config accepts and verifies', async () => {
    const { verifySecret } = await import('../config/config');
    const run = await xdplb(['hash-password'], { input: 's3cret pass\n' });
    assert.equal(run.code, 0, run.stderr);
    const hash = run.stdout.trim();
    assert.match(hash, /^scrypt\$/);
    assert.equal(verifySecret('s3cret pass', hash), true);
    assert.equal(verifySecret('other', hash), false);
    assert.doesNotThrow(() => new DesiredState({ users: [{ name: 'bob', role: 'viewer', passwordHash: hash }] }));
    assertFails(await xdplb(['hash-password'], { input: '' }), 2, /^xdplb: usage: no password/);
  });

  test('stats, programs and maps answer; an unreachable API is one clear line', async () => {
    const stats = await xdplb(['stats', '--json']);
    assert.equal(stats.code, 0, stats.stderr);
    const view = JSON.parse(stats.stdout) as { services: Array<{ name: string }>; totals: object };
    assert.deepEqual(view.services.map((s) => s.name), ['web']);
    const human = await xdplb(['stats']);
    assert.match(human.stdout, /^web\b/m);
    const watch = await xdplb(['stats', '--watch', '--interval', '1', '--count', '2', '--json']);
    assert.equal(watch.stdout.trim().split('\n').length, 2);
    const programs = await xdplb(['programs', '--json']);
    assert.deepEqual(JSON.parse(programs.stdout), { programs: [], statsEnabled: false });
    assertFails(await xdplb(['maps', 'nosuchmap']), 1, /^xdplb: XDPLB_ERR_NOT_FOUND: /);
    assertFails(await xdplb(['service', 'list', '--api', 'http://127.0.0.1:1']), 1, /^xdplb: XDPLB_ERR_UNREACHABLE: no xdplb API at http:\/\/127\.0\.0\.1:1/);
  });

  test('trace follows kernel events from the stream, filtered', async () => {
    const [cmd, ...pre] = cliCommand();
    const child = spawn(cmd, [...pre, 'trace', '--service', 'web', '--count', '1', '--timeout', '20'], {
      cwd: repoRoot(), env: { ...process.env, XDPLB_API: api, XDPLB_TOKEN: ADMIN_TOKEN }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const until = Date.now() + 15_000;
    while (driver.eventSubscribers === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    assert.equal(driver.eventSubscribers, 1, `trace subscribed; stderr: ${stderr}`);
    const base = { tsNs: 1, ifindex: 3, pktLen: 74, serviceId: 1, backendId: 1, saddr: '198.18.0.2', daddr: '198.18.100.1',
      sport: 40000, dport: 80, proto: 6, action: 'tx' as const, reason: 'forwarded' as const };
    driver.emitEvent({ ...base, service: 'other', backend: null });            // filtered out
    driver.emitEvent({ ...base, service: 'web', backend: '198.18.1.11:8080' });
    assert.equal(await exited, 0, stderr);
    const lines = stdout.trim().split('\n');
    assert.equal(lines.length, 1);
    assert.match(lines[0], /tcp 198\.18\.0\.2:40000 > 198\.18\.100\.1:80 .* web -> 198\.18\.1\.11:8080 {2}tx\/forwarded$/);
    const subscribers = (): number => driver.eventSubscribers;
    const until2 = Date.now() + 5000;
    while (subscribers() !== 0 && Date.now() < until2) await new Promise((r) => setTimeout(r, 20));
    assert.equal(subscribers(), 0, 'the daemon stops decoding events when nobody listens');
  });
});

describe('xdplb node drain during a Maglev transition', () => {
  test('refused with the API message (exit 1, nothing drained); --wait asks again until the transition is over; --force drains at once', async () => {
    const memory = new MemoryDriver();
    const logger = pino({ level: 'silent' });
    const state = new DesiredState({ services: [{ name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 13,
      backends: [{ address: '198.18.1.11', port: 8080, weight: 1 }] }] });
    const ctl = new DaemonController({ state, driver: memory, health: new HealthMonitor(), logger, persist: null });
    await ctl.start();
    let moved = 9;
    const drains: boolean[] = [];
    const cluster = new ClusterService({ nodeName: 'lb1', store: null, logger, hooks: { onDrain: (d) => { drains.push(d); } },
      source: { listServices: () => ctl.listServices(), stats: () => ctl.stats(), interfaces: () => ctl.interfaces(),
        transitions: () => ({ transitionSeconds: 1, nextSweepAt: null, flowCache: true,
          services: [{ service: 'web', tableSize: 13, movedSlots: moved, movedShare: moved / 13, seenSlots: 0, youngSlots: 0, since: null }] }) } });
    const app = createApiServer(ctl, { auth: new AuthStore([], [{ name: 'ci', role: 'admin', token: ADMIN_TOKEN }]), logger, cluster });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const env = { XDPLB_API: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
    try {
      assertFails(await xdplb(['node', 'drain'], { env }), 1, /^xdplb: XDPLB_ERR_CONFLICT: node "lb1" is in a Maglev transition \(9 moved slots\): .* or with force \(the CLI's --force\)$/);
      const started = Date.now();
      const short = await xdplb(['node', 'drain', '--wait', '2'], { env });
      assert.equal(short.code, 1, short.stderr);
      assert.ok(Date.now() - started >= 1500, 'it asked again for ~2 s before giving up');
      assert.deepEqual(drains, [], 'nothing drained');
      // The transition ends 1.5 s into a --wait: the drain goes then.
      setTimeout(() => { moved = 0; }, 1500);
      const waited = await xdplb(['node', 'drain', '--wait', '20', '--grace', '3'], { env });
      assert.equal(waited.code, 0, waited.stderr);
      assert.match(waited.stdout, /^node lb1: drained \(forwarding in-flight flows for 3 s\)$/m);
      assert.deepEqual(drains, [true]);
      assert.equal((await xdplb(['node', 'undrain'], { env })).code, 0);
      moved = 4;
      const forced = await xdplb(['node', 'drain', '--force'], { env });
      assert.equal(forced.code, 0, forced.stderr);
      assert.deepEqual(drains, [true, false, true]);
    } finally {
      ctl.stop();
      await app.close();
    }
  });
});
