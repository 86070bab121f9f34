import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { DaemonController, buildDataplaneState, sameChecks } from './controller';
import { MemoryDriver } from './memory-driver';
import { HealthMonitor } from '../health/monitor';
import { DesiredState } from '../config/state';
import { loadConfigFile, prepareConfigFile, saveConfigFile } from '../config/config';
import { XdplbError } from '../domain/errors';
import { unusableAddressReason, type Config } from '../config/schema';
import type { StreamMessage } from '../domain/types';

const web = {
  name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp' as const, mode: 'nat' as const, tableSize: 13,
  backends: [{ address: '198.18.1.11', port: 8080, weight: 1 }, { address: '198.18.1.12', port: 8080, weight: 3 }],
};

function setup(config: unknown = { services: [web] }) {
  const driver = new MemoryDriver();
  const saved: Config[] = [];
  let failPersist = false;
  const health = new HealthMonitor();
  const controller = new DaemonController({
    state: new DesiredState(config), driver, health, logger: pino({ level: 'silent' }),
    persist: (c) => {
      if (failPersist) throw new XdplbError('XDPLB_ERR_STORAGE', 'disk full');
      return { commit: () => { saved.push(c); }, abort: () => {} };
    },
  });
  const messages: StreamMessage[] = [];
  return { driver, saved, health, controller, messages, failPersist: (v: boolean) => { failPersist = v; } };
}


/**
 * A non-loopback IPv4 address of this host (loopback backends are refused): health probes to it
 * never leave the host.
 */
function ownAddress(): string | undefined {
  return Object.values(os.networkInterfaces()).flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal && unusableAddressReason(a.address) === null)?.address;
}

describe('DaemonController', () => {
  test('with nobody on the stream a change works out no state views beyond its own answer', async () => {
    const { driver, controller, messages } = setup({ services: [web, { ...web, name: 'api', vip: '198.18.100.2', backends: [{ address: '198.18.1.21', port: 8080, weight: 1 }] }] });
    await controller.start();
    const placement = driver.placement.bind(driver);
    const asked: string[] = [];
    driver.placement = (service: string) => { asked.push(service); return placement(service); };
    await controller.patchBackend('web', '198.18.1.11:8080', { drain: true });
    assert.deepEqual(asked, ['web'], 'only the answer\'s view of "web" (no broadcast of every service)');
    const unsubscribe = controller.subscribe((m) => messages.push(m));
    asked.length = 0;
    await controller.patchBackend('web', '198.18.1.11:8080', { drain: false });
    assert.deepEqual(asked.sort(), ['api', 'web', 'web'], 'a listener gets every service');
    assert.equal(messages.filter((m) => m.type === 'state').length, 1);
    unsubscribe();
    controller.stop();
  });

  test('a mutation reconciles, persists and broadcasts the new state', async () => {
    const { driver, saved, controller, messages } = setup();
    await controller.start();
    const unsubscribe = controller.subscribe((m) => messages.push(m));
    const view = await controller.addBackend('web', { address: '198.18.1.13', port: 8080, weight: 2 });
    assert.equal(view.backends.length, 3);
    assert.deepEqual(driver.applied!.services[0].backends.map((b) => b.address), ['198.18.1.11', '198.18.1.12', '198.18.1.13']);
    assert.equal(saved.length, 1);
    assert.equal(saved[0].services[0].backends.length, 3);
    const state = messages.filter((m) => m.type === 'state');
    assert.equal(state.length, 1);
    assert.equal(view.backends[2].tableShare, 2 / 6);
    assert.equal(view.backends[2].key, '198.18.1.13:8080');
    unsubscribe();
    controller.stop();
  });

  test('an invalid change changes nothing (no apply, no save)', async () => {
    const { driver, saved, controller } = setup();
    await controller.start();
    const applies = driver.applyCount;
    await assert.rejects(controller.addBackend('web', { address: '198.18.1.11', port: 70000, weight: 1 }),
      (err: XdplbError) => err.code === 'XDPLB_ERR_VALIDATION' && err.field === '/port');
    await assert.rejects(controller.deleteService('nope'), (err: XdplbError) => err.code === 'XDPLB_ERR_NOT_FOUND');
    assert.equal(driver.applyCount, applies);
    assert.equal(saved.length, 0);
    assert.equal(controller.listServices()[0].backends.length, 2);
    controller.stop();
  });

  test('a kernel refusal restores the previous state and surfaces XDPLB_ERR_DATAPLANE', async () => {
    const { driver, saved, controller } = setup();
    await controller.start();
    driver.refuseNext = 'EINVAL: map full';
    await assert.rejects(controller.deleteService('web'),
      (err: XdplbError) => err.code === 'XDPLB_ERR_DATAPLANE' && /map full/.test(err.message));
    assert.equal(controller.listServices().length, 1);
    assert.equal(driver.applied!.services.length, 1, 'previous state re-applied');
    assert.equal(saved.length, 0);
    controller.stop();
  });

  test('a refused change keeps the health verdicts of the backends and services it would have removed', async () => {
    // Checked backends seeded up (as after an adopt); probes far apart so only the change decides.
    const checked = { ...web, healthCheck: { type: 'tcp' as const, intervalMs: 60000, fall: 10 } };
    const driver = new MemoryDriver();
    let failCommit = false;
    const controller = new DaemonController({
      state: new DesiredState({ services: [checked] }), driver, health: new HealthMonitor(), logger: pino({ level: 'silent' }),
      seedHealth: () => 'up',
      persist: () => ({ commit: () => { if (failCommit) throw new XdplbError('XDPLB_ERR_STORAGE', 'rename failed'); }, abort: () => {} }),
    });
    await controller.start();
    try {
      const healthy = () => driver.applied!.services.flatMap((s) => s.backends.map((b) => `${s.name}/${b.address}:${b.port}=${b.healthy}`));
      const before = healthy();
      assert.deepEqual(before, ['web/198.18.1.11:8080=true', 'web/198.18.1.12:8080=true']);
      driver.refuseNext = 'EINVAL: map full';
      await assert.rejects(controller.deleteBackend('web', '198.18.1.12:8080'), (e: XdplbError) => e.code === 'XDPLB_ERR_DATAPLANE');
      assert.deepEqual(healthy(), before, 'a refused backend delete left the backend up and in the table');
      driver.refuseNext = 'EINVAL: map full';
      await assert.rejects(controller.deleteService('web'), (e: XdplbError) => e.code === 'XDPLB_ERR_DATAPLANE');
      assert.deepEqual(healthy(), before, 'a refused service delete left its backends up');
      failCommit = true;
      await assert.rejects(controller.deleteBackend('web', '198.18.1.11:8080'), (e: XdplbError) => e.code === 'XDPLB_ERR_STORAGE');
      assert.deepEqual(healthy(), before, 'a change whose file could not be renamed into place left the backend up');
      assert.deepEqual(controller.getService('web').backends.map((b) => b.health), ['up', 'up']);
    } finally {
      controller.stop();
    }
  });

  test('a weight or drain change leaves the health checks alone (no sync); any other change syncs them, a refused one restores', async () => {
    const checked = { ...web, healthCheck: { type: 'tcp' as const, intervalMs: 60000, fall: 10 } };
    const driver = new MemoryDriver();
    const health = new HealthMonitor();
    const controller = new DaemonController({
      state: new DesiredState({ services: [checked, { ...web, name: 'api', vip: '198.18.100.2', backends: [{ address: '198.18.1.21', port: 8080, weight: 1 }, { address: '198.18.1.22', port: 8080, weight: 1 }] }] }),
      driver, health, logger: pino({ level: 'silent' }),
      seedHealth: () => 'up', persist: null,
    });
    await controller.start();
    try {
      const synced: number[] = [];
      const sync = health.sync.bind(health);
      health.sync = (services, seed) => { synced.push(services.length); sync(services, seed); };
      await controller.patchBackend('web', '198.18.1.11:8080', { drain: true });
      await controller.patchBackend('api', '198.18.1.22:8080', { weight: 7 });
      await controller.patchBackends([{ service: 'web', backend: '198.18.1.12:8080', weight: 2 }, { service: 'api', backend: '198.18.1.21:8080', drain: true }]);
      assert.deepEqual(synced, [], 'weights and drains: no sync');
      assert.deepEqual(controller.getService('web').backends.map((b) => [b.health, b.draining, b.weight]), [['up', true, 1], ['up', false, 2]]);
      await controller.addBackend('web', { address: '198.18.1.13', port: 8080, weight: 1 });
      assert.deepEqual(synced, [2], 'a new backend: synced');
      driver.refuseNext = 'EINVAL: map full';
      await assert.rejects(controller.deleteBackend('web', '198.18.1.11:8080'), (e: XdplbError) => e.code === 'XDPLB_ERR_DATAPLANE');
      assert.deepEqual(synced, [2, 2, 2], 'a refused delete: synced, then restored');
      assert.equal(controller.getService('web').backends[0].health, 'up');
      driver.refuseNext = 'EINVAL: map full';
      await assert.rejects(controller.patchBackend('web', '198.18.1.11:8080', { drain: false }), (e: XdplbError) => e.code === 'XDPLB_ERR_DATAPLANE');
      assert.deepEqual(synced, [2, 2, 2], 'a refused drain: nothing to restore');
      assert.equal(controller.getService('web').backends[0].draining, true, 'the refused drain changed nothing');
      assert.equal(driver.applied!.services[0].backends[0].draining, true, 'the kernel has the previous state again');
    } finally {
      controller.stop();
    }
  });

  test('sameChecks: only names, VIPs, ports, modes, the check (by object) and backend addresses/ports count', () => {
    const a = new DesiredState({ services: [{ ...web, healthCheck: { type: 'tcp' } }] });
    const s0 = a.services[0];
    // What a weight/drain change makes: the check shared, backends copied at the same addresses.
    const other = (change: Record<string, unknown>) => [{ ...s0, backends: s0.backends.map((b) => ({ ...b, weight: 9, drain: true })), ...change }];
    assert.equal(sameChecks(a.services, a.patchBackend('web', '198.18.1.11:8080', { weight: 5, drain: true }).services), true);
    assert.equal(sameChecks(a.services, other({ tableSize: 17, protocol: 'udp' }) as never), true, 'table size and protocol: no check changes');
    for (const [what, change] of [
      ['port', { port: 81 }], ['vip', { vip: '198.18.100.9' }], ['mode', { mode: 'dsr' }], ['name', { name: 'www' }],
      ['an equal check, another object', { healthCheck: { ...s0.healthCheck } }], ['no check', { healthCheck: undefined }],
      ['backend port', { backends: [{ ...s0.backends[0], port: 8081 }, s0.backends[1]] }],
      ['backend address', { backends: [{ ...s0.backends[0], address: '198.18.1.99' }, s0.backends[1]] }],
      ['backend added', { backends: [...s0.backends, { address: '198.18.1.99', port: 8080, weight: 1 }] }],
      ['backend order', { backends: [s0.backends[1], s0.backends[0]] }],
    ] as const) {
      assert.equal(sameChecks(a.services, other(change) as never), false, what);
    }
    assert.equal(sameChecks(a.services, [...a.services, { ...s0, name: 'x' }]), false, 'a new service');
    assert.equal(sameChecks(a.services, []), false, 'a service deleted');
  });

  test('a change that cannot be written never reaches the data plane', async () => {
    const h = setup();
    await h.controller.start();
    h.failPersist(true);
    const applies = h.driver.applyCount;
    await assert.rejects(h.controller.patchSettings({ sampleRate: 5 }), (err: XdplbError) => err.code === 'XDPLB_ERR_STORAGE');
    await assert.rejects(h.controller.deleteService('web'), (err: XdplbError) => err.code === 'XDPLB_ERR_STORAGE');
    assert.equal(h.driver.applyCount, applies, 'the kernel was not touched (not even changed and rolled back)');
    assert.equal(h.controller.getSettings().sampleRate, 0);
    assert.equal(h.driver.applied!.settings.sampleRate, 0);
    h.controller.stop();
  });

  test('a two-phase write: temp file before the kernel, commit after, abort on a kernel refusal', async () => {
    const log: string[] = [];
    const driver = new MemoryDriver();
    const apply = driver.applyState.bind(driver);
    driver.applyState = (state) => { log.push('apply'); return apply(state); };
    const controller = new DaemonController({
      state: new DesiredState({ services: [web] }), driver, health: new HealthMonitor(), logger: pino({ level: 'silent' }),
      persist: () => { log.push('write'); return { commit: () => log.push('commit'), abort: () => log.push('abort') }; },
    });
    await controller.start();
    log.length = 0;
    await controller.patchSettings({ sampleRate: 5 });
    assert.deepEqual(log, ['write', 'apply', 'commit']);
    log.length = 0;
    driver.refuseNext = 'EINVAL';
    await assert.rejects(controller.patchSettings({ sampleRate: 6 }), (err: XdplbError) => err.code === 'XDPLB_ERR_DATAPLANE');
    assert.deepEqual(log, ['write', 'apply', 'abort', 'apply'], 'aborted, then the previous state re-applied');
    assert.equal(controller.getSettings().sampleRate, 5);
    controller.stop();
  });

  test('the write\'s fsync runs while the kernel takes the change; the answer waits for both', async () => {
    const log: string[] = [];
    const driver = new MemoryDriver();
    const apply = driver.applyState.bind(driver);
    driver.applyState = (state) => { log.push('apply'); return apply(state); };
    let synced!: () => void;
    const controller = new DaemonController({
      state: new DesiredState({ services: [web] }), driver, health: new HealthMonitor(), logger: pino({ level: 'silent' }),
      persist: () => {
        log.push('write');
        const durable = new Promise<void>((resolve) => { synced = () => { log.push('fsynced'); resolve(); }; });
        return { durable, commit: () => { log.push('commit'); }, abort: () => { log.push('abort'); } };
      },
    });
    await controller.start();
    log.length = 0;
    let answered = false;
    const change = controller.patchSettings({ sampleRate: 5 }).then(() => { answered = true; });
    for (let i = 0; i < 20 && !log.includes('apply'); i++) await new Promise((r) => setImmediate(r));
    assert.deepEqual(log, ['write', 'apply'], 'the kernel has the change before the file is on disk');
    assert.equal(answered, false, 'no answer before the fsync');
    synced();
    await change;
    assert.deepEqual(log, ['write', 'apply', 'fsynced', 'commit']);
    assert.equal(controller.getSettings().sampleRate, 5);
    controller.stop();
  });

  test('a failed fsync after the kernel took the change: STORAGE, the kernel rolled back, nothing committed', async () => {
    const log: string[] = [];
    const driver = new MemoryDriver();
    const controller = new DaemonController({
      state: new DesiredState({ services: [web] }), driver, health: new HealthMonitor(), logger: pino({ level: 'silent' }),
      persist: () => {
        log.push('write');
        const durable = new Promise<void>((_resolve, reject) => setImmediate(() => reject(new XdplbError('XDPLB_ERR_STORAGE', 'EIO on fsync'))));
        return { durable, commit: () => { log.push('commit'); }, abort: () => { log.push('abort'); } };
      },
    });
    await controller.start();
    const before = structuredClone(driver.applied);
    await assert.rejects(controller.deleteService('web'), (e: XdplbError) => e.code === 'XDPLB_ERR_STORAGE' && /EIO/.test(e.message));
    assert.ok(log.includes('abort') && !log.includes('commit'), log.join(','));
    assert.deepEqual(driver.applied, before, 'the previous state is back in the kernel');
    assert.equal(controller.listServices().length, 1);
    controller.stop();
  });

  test('prepareConfigFile in the background mode: one write, fsync on the thread pool, commit renames after it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbp-persist-'));
    try {
      const file = path.join(dir, 'xdplb.yaml');
      const config = new DesiredState({ services: [web] }).toConfig();
      saveConfigFile(file, config);
      const next = new DesiredState({ services: [{ ...web, port: 81 }] }).toConfig();
      const pending = prepareConfigFile(file, next, { background: true });
      assert.ok(pending.durable, 'a durable promise');
      assert.ok(fs.existsSync(pending.temp), 'written before the call returns');
      assert.equal(loadConfigFile(file).services[0].port, 80, 'not in place before commit');
      await pending.durable;
      await pending.commit();
      assert.equal(loadConfigFile(file).services[0].port, 81);
      assert.deepEqual(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp')), []);
      const aborted = prepareConfigFile(file, config, { background: true });
      aborted.abort();
      await aborted.durable!.catch(() => undefined);
      assert.deepEqual(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp')), [], 'abort removes the temporary file');
      assert.equal(loadConfigFile(file).services[0].port, 81);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('replaceConfig applies a different config without persisting, and ignores an equal one', async () => {
    const { driver, saved, controller } = setup();
    await controller.start();
    assert.equal(await controller.replaceConfig({ services: [web] }), false);
    assert.equal(await controller.replaceConfig({ services: [{ ...web, backends: [web.backends[0]] }] }), true);
    assert.equal(driver.applied!.services[0].backends.length, 1);
    assert.equal(saved.length, 0);
    await assert.rejects(controller.replaceConfig({ services: [{ ...web, port: -1 }] }), (e: XdplbError) => e.code === 'XDPLB_ERR_VALIDATION');
    assert.equal(controller.listServices()[0].backends.length, 1);
    controller.stop();
  });

  test('replaceConfig compares with the running state: key order is no change, a restored config is applied again', async () => {
    const { driver, controller } = setup();
    await controller.start();
    const reordered = { services: [Object.fromEntries(Object.entries(web).reverse())], flowCache: true, fragments: 'drop' };
    assert.equal(await controller.replaceConfig(reordered), false, 'the same config in another key order');
    assert.equal(await controller.replaceConfig({ services: [{ ...web, backends: [web.backends[0]] }] }), true);
    assert.equal(await controller.replaceConfig(() => ({ services: [web] })), true, 'the original again: applied (read in the queue)');
    assert.equal(driver.applied!.services[0].backends.length, 2);
    controller.stop();
  });

  test('the hash seed: a reload with another seed is refused whole; setHashSeed writes first, then the kernel', async () => {
    const log: string[] = [];
    const driver = new MemoryDriver();
    const controller = new DaemonController({
      state: new DesiredState({ services: [web], hashSeed: 3 }), driver, health: new HealthMonitor(), logger: pino({ level: 'silent' }),
      persist: (c) => { log.push(`write ${c.hashSeed}`); return { commit: () => log.push('commit'), abort: () => log.push('abort') }; },
    });
    await controller.start();
    assert.deepEqual(controller.hashSeed(), { hashSeed: 3 });
    await assert.rejects(controller.replaceConfig({ services: [], hashSeed: 4 }),
      (e: XdplbError) => e.code === 'XDPLB_ERR_VALIDATION' && e.field === '/hashSeed' && /xdplb hash-seed set 4/.test(e.message));
    assert.equal(controller.listServices().length, 1, 'nothing of that reload was applied');
    await assert.rejects(controller.setHashSeed(-1), (e: XdplbError) => e.code === 'XDPLB_ERR_VALIDATION' && e.field === '/hashSeed');
    driver.refuseNext = 'EPERM';
    await assert.rejects(controller.setHashSeed(9), (e: XdplbError) => e.code === 'XDPLB_ERR_DATAPLANE');
    assert.deepEqual(log, ['write 9', 'abort']);
    assert.deepEqual(controller.hashSeed(), { hashSeed: 3 });
    log.length = 0;
    assert.deepEqual(await controller.setHashSeed(9), { hashSeed: 9 });
    assert.deepEqual(log, ['write 9', 'commit']);
    assert.equal(driver.seed, 9);
    assert.equal(await controller.replaceConfig({ services: [web], hashSeed: 9 }), false, 'the file with the new seed agrees');
    controller.stop();
  });

  test('an unreadable bench result is logged without its content', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbt-cf-bench-'));
    try {
      fs.writeFileSync(path.join(dir, 'latest.json'), 'root:$6$SECRETHASH:19000:0:99999:7:::\n');
      const lines: string[] = [];
      const logger = pino({ level: 'info' }, { write: (line: string) => { lines.push(line); } });
      const controller = new DaemonController({
        state: new DesiredState({ services: [web] }), driver: new MemoryDriver(), health: new HealthMonitor(), logger, persist: null, benchDir: dir,
      });
      assert.equal(controller.latestBench(), null);
      assert.equal(lines.length, 1);
      assert.match(lines[0], /unreadable bench result/);
      assert.doesNotMatch(lines[0], /SECRET|root|19000/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an adopted data plane keeps its seed at start, and the state says so', async () => {
    const driver = new MemoryDriver();
    driver.seed = 11;
    const controller = new DaemonController({
      state: new DesiredState({ services: [web], hashSeed: 3 }), driver, health: new HealthMonitor(), logger: pino({ level: 'silent' }), persist: null,
    });
    await controller.start();
    assert.deepEqual(controller.hashSeed(), { hashSeed: 11 });
    assert.equal(controller.state.config.hashSeed, 11);
    controller.stop();
  });

  test('health verdicts reach the data plane; kernel events flow only while someone listens', async (t) => {
    // A backend that is down: a port of this host's own (non-loopback: a loopback backend is
    // refused) address where nothing listens. The probe never leaves the host.
    const own = ownAddress();
    if (!own) return t.skip('this host has no non-loopback IPv4 address to probe');
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, own, r));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));   // nothing listens there now
    const svc = {
      ...web, backends: [{ address: own, port: deadPort, weight: 1 }],
      healthCheck: { type: 'tcp' as const, intervalMs: 100, timeoutMs: 50, rise: 1, fall: 1, initialState: 'up' as const },
    };
    const { driver, controller, messages } = setup({ services: [svc] });
    await controller.start();
    assert.equal(driver.applied!.services[0].backends[0].healthy, true, "initialState 'up': in the table before any check");
    assert.equal(controller.getService('web').backends[0].health, 'up');
    assert.equal(driver.eventSubscribers, 0);
    const unsubscribe = controller.subscribe((m) => messages.push(m));
    assert.equal(driver.eventSubscribers, 1);
    const until = Date.now() + 3000;
    while (driver.applied!.services[0].backends[0].healthy && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    assert.equal(driver.applied!.services[0].backends[0].healthy, false);
    assert.deepEqual(messages.find((m) => m.type === 'health')?.data, { service: 'web', backend: `${own}:${deadPort}`, health: 'down' });
    assert.equal(controller.getService('web').backends[0].health, 'down');
    assert.equal(controller.getService('web').backends[0].inTable, false);
    driver.emitEvent({ tsNs: 1, ifindex: 2, pktLen: 60, service: 'web', backend: null, serviceId: 1, backendId: 0,
      saddr: '198.18.0.2', daddr: '198.18.100.1', sport: 1000, dport: 80, proto: 6, action: 'drop', reason: 'no_backend' });
    assert.equal(messages.filter((m) => m.type === 'event').length, 1);
    unsubscribe();
    assert.equal(driver.eventSubscribers, 0);
    controller.stop();
  });

  test('seeded verdicts apply from the first reconcile (checked services only)', async () => {
    const check = { type: 'tcp' as const, intervalMs: 60000, timeoutMs: 50, rise: 1, fall: 1 };
    const checked = { ...web, healthCheck: check };
    const plain = { ...web, name: 'plain', vip: '198.18.100.2',
      backends: [{ address: '198.18.1.21', port: 8080, weight: 1 }, { address: '198.18.1.12', port: 9090, weight: 1 }] };
    const driver = new MemoryDriver();
    const controller = new DaemonController({
      state: new DesiredState({ services: [checked, plain] }), driver, health: new HealthMonitor(), logger: pino({ level: 'silent' }),
      persist: null, seedHealth: (_service, backend) => (backend.startsWith('198.18.1.12:') ? 'down' : backend.startsWith('198.18.1.11:') ? 'up' : undefined),
    });
    await controller.start();
    assert.equal(driver.applyCount, 1);
    assert.deepEqual(driver.applied!.services[0].backends.map((b) => b.healthy), [true, false]);
    assert.deepEqual(driver.applied!.services[1].backends.map((b) => b.healthy), [true, true], 'no check: seeds ignored');
    assert.equal(controller.getService('web').backends[1].health, 'down');
    assert.equal(controller.getService('web').backends[0].health, 'up');
    assert.equal(controller.getService('plain').backends[0].health, 'unchecked');
    controller.stop();
  });

  test('buildDataplaneState: drain flag, default table size, settings', () => {
    const state = new DesiredState({ maglev: { tableSize: 251 }, fragments: 'pass', services: [{ ...web, tableSize: undefined, backends: [{ ...web.backends[0], drain: true }] }] });
    const dp = buildDataplaneState(state.config, () => 'unchecked');
    assert.equal(dp.services[0].tableSize, 251);
    assert.deepEqual(dp.services[0].backends[0], { address: '198.18.1.11', port: 8080, weight: 1, healthy: true, draining: true });
    assert.deepEqual(dp.settings, { fragPolicy: 'pass', sampleRate: 0, flowCache: true });
  });
});

describe('health checks that protect (issue 17)', () => {
  const waitUntil = async (what: string, cond: () => boolean, ms = 4000): Promise<void> => {
    const until = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  test('a checked backend enters the table only after `rise` successes; a dead one never', async (t) => {
    const own = ownAddress();
    if (!own) return t.skip('this host has no non-loopback IPv4 address to probe');
    const live = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => live.listen(0, own, r));
    t.after(() => live.close());
    const livePort = (live.address() as AddressInfo).port;
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, own, r));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const svc = { ...web, backends: [], healthCheck: { type: 'tcp' as const, intervalMs: 150, timeoutMs: 100, rise: 3, fall: 2 } };
    const { driver, controller } = setup({ services: [svc] });
    await controller.start();
    const healthyLog: boolean[][] = [];
    const origApply = driver.applyState.bind(driver);
    driver.applyState = (state) => { healthyLog.push(state.services[0].backends.map((b) => b.healthy)); return origApply(state); };
    const started = Date.now();
    const view = await controller.addBackend('web', { address: own, port: deadPort, weight: 1 });
    assert.equal(view.backends[0].health, 'checking');
    assert.equal(view.backends[0].inTable, false);
    await controller.addBackend('web', { address: own, port: livePort, weight: 1 });
    const liveKey = `${own}:${livePort}`;
    await waitUntil('live backend up', () => controller.getService('web').backends[1].health === 'up');
    assert.ok(Date.now() - started >= 2 * 150, 'not before three checks (two intervals)');
    await controller.idle();
    const after = controller.getService('web');
    assert.equal(after.backends[1].inTable, true);
    assert.equal(after.backends[1].key, liveKey);
    await waitUntil('dead backend down', () => controller.getService('web').backends[0].health === 'down');
    assert.ok(healthyLog.every((row) => row[0] === false), 'the dead backend was never handed to the data plane as healthy');
    controller.stop();
  });

  test('a service gaining a check keeps serving its backends; a rebuilt checker keeps verdicts', async () => {
    const { driver, controller } = setup();
    await controller.start();
    assert.equal(controller.getService('web').backends[0].health, 'unchecked');
    const healthyLog: boolean[][] = [];
    const origApply = driver.applyState.bind(driver);
    driver.applyState = (state) => { healthyLog.push(state.services[0].backends.map((b) => b.healthy)); return origApply(state); };
    const check = { type: 'tcp' as const, intervalMs: 60000, timeoutMs: 50, rise: 1, fall: 1 };
    await controller.replaceService('web', { ...web, healthCheck: check });
    assert.deepEqual(controller.getService('web').backends.map((b) => b.health), ['up', 'up']);
    await controller.replaceService('web', { ...web, healthCheck: { ...check, rise: 2 } });
    assert.deepEqual(controller.getService('web').backends.map((b) => b.health), ['up', 'up']);
    assert.ok(healthyLog.every((row) => row.every(Boolean)), 'never pulled out of the table');
    controller.stop();
  });

  test('the new check fields are validated: one error naming the field, nothing changed', async () => {
    const { driver, saved, controller } = setup();
    await controller.start();
    const applies = driver.applyCount;
    const check = { type: 'tcp' as const, intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 2 };
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ initialState: 'checking' }, '/healthCheck/initialState'],
      [{ slowStart: { durationMs: 5000, steps: 1 } }, '/healthCheck/slowStart/steps'],
      [{ slowStart: { steps: 4 } }, '/healthCheck/slowStart/durationMs'],
      [{ flap: { maxFlips: 0 } }, '/healthCheck/flap/maxFlips'],
      [{ flap: { holdMs: 1000, extra: 1 } }, '/healthCheck/flap/extra'],
      [{ dsrProbe: 'vip' }, '/healthCheck/dsrProbe'],   // a NAT service
    ];
    for (const [over, field] of bad) {
      await assert.rejects(controller.replaceService('web', { ...web, healthCheck: { ...check, ...over } as never }),
        (err: XdplbError) => err.code === 'XDPLB_ERR_VALIDATION' && err.field === field && !err.message.includes('\n'),
        JSON.stringify(over));
    }
    assert.equal(driver.applyCount, applies);
    assert.equal(saved.length, 0);
    assert.equal(controller.getService('web').healthCheck, undefined);
    const ok = await controller.replaceService('web', { ...web, healthCheck: { ...check, initialState: 'up', flap: { holdMs: 0 }, slowStart: { durationMs: 4000 } } });
    assert.deepEqual(ok.healthCheck, { ...check, initialState: 'up', flap: { holdMs: 0 }, slowStart: { durationMs: 4000 } }, 'no defaults written into the config');
    controller.stop();
  });

  test('buildDataplaneState: slow start scales a service by the steps and the ramping backend by its step', () => {
    const state = new DesiredState({ services: [web] });
    const dp = buildDataplaneState(state.config, () => 'up', (_s, b) => (b === '198.18.1.12:8080' ? { step: 1, steps: 4 } : { step: 1, steps: 1 }));
    assert.deepEqual(dp.services[0].backends.map((b) => b.weight), [4, 3], 'weights 1 and 3; the ramping one at 1/4: 4 : 3');
    const off = buildDataplaneState(state.config, () => 'up');
    assert.deepEqual(off.services[0].backends.map((b) => b.weight), [1, 3]);
    const checking = buildDataplaneState(state.config, (_s, b) => (b === '198.18.1.12:8080' ? 'checking' : 'up'));
    assert.deepEqual(checking.services[0].backends.map((b) => b.healthy), [true, false]);
  });
});
