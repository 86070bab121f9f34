/**
 * IPv6 services through the real daemon into the real kernel maps (issue 15): a daemon in this
 * process over a real data plane (pins and ports of its own: /sys/fs/bpf/xlbc6-daemon, 28600-28601; no
 * interface attached). Services put through the config file and the API in any IPv6 text form
 * land in services6 / vips6 / backends6 / reverse6 / settings.vip_filter6 (read back through the
 * pins with the generated TypedMaps) with the ids the API reports; [v6]:port backend keys work in
 * URLs; a mixed-family change is refused and changes no map; the maps API and /metrics carry
 * canonical text; a restart over the pins (adopt) recovers the IPv6 ids and rewrites nothing.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import pino from 'pino';
import { startDaemon, type RunningDaemon } from '../src/cli/daemon-process';
import { ApiClient, ApiError } from '../src/cli/client';
import { BpfMap } from '../src/bpf';
import { MAP_NAMES } from '../src/dataplane/dataplane';
import { typedLbMap } from '../src/dataplane/typed-map';
import { readMaglevTable, SLOT_WORDS } from '../src/dataplane/maglev-tables';
import { LB, encodeU32 } from '../src/dataplane/abi';
import { vipFilterBit6 } from '../src/dataplane/jhash';
import type { ServiceView } from '../src/domain/types';
import { kernelTestSkip } from './support/kernel-env';

const PIN = '/sys/fs/bpf/xlbc6-daemon';
const PORT = 28600;
const TOKEN = 'xlbc6-daemon-admin-token-0123456789';
const skipReason = kernelTestSkip('the IPv6 daemon kernel test');

/** Opens a pinned map of the daemon's, runs `fn` on it, closes it. */
function withMap<T>(name: string, fn: (m: BpfMap) => T): T {
  const m = BpfMap.fromPin(path.join(PIN, 'maps', name));
  try { return fn(m); } finally { m.close(); }
}

function rawSnapshot(): string {
  const out: string[] = [];
  for (const name of MAP_NAMES) {
    if (name === 'events' || name.startsWith('flows')) continue;
    withMap(name, (m) => { for (const [k, v] of m.entries()) if (v.some((b) => b !== 0)) out.push(`${name} ${k.toString('hex')}=${v.toString('hex')}`); });
  }
  return out.sort().join('\n');
}

/** The slots' backend ids of a service's installed Maglev table. */
function tableIds(serviceId: number): number[] {
  {
    // maglev_std holds a table of the default size, maglev any other (MaglevOuterMaps)
    const outer = withMap('maglev_std', (m) => m.lookup(encodeU32(serviceId))) ?? withMap('maglev', (m) => m.lookup(encodeU32(serviceId)));
    if (!outer) return [];
    const words = readMaglevTable(outer)!;
    return Array.from({ length: words.length / SLOT_WORDS }, (_, i) => words[i * SLOT_WORDS] & LB.SLOT_ID_MASK);
  }
}

/** What the kernel holds of one IPv6 service, checked against the API's view of it. */
function assertInKernel(view: ServiceView): void {
  const proto = view.protocol === 'tcp' ? 6 : 17;
  const svc = withMap('services6', (m) => typedLbMap('services6', m).get({ vip: view.vip, port: view.port, proto }));
  assert.ok(svc, `${view.name}: in services6`);
  assert.equal(svc.id, view.id, `${view.name}: the id the API reports`);
  assert.equal(withMap('services', (m) => [...m.keys()].some((k) => k.length !== 8)), false, 'services (v4) holds no v6 key');
  assert.ok(withMap('vips6', (m) => typedLbMap('vips6', m).get(view.vip)), `${view.vip} in vips6`);
  const filter = withMap('settings', (m) => typedLbMap('settings', m).get(0)!.vipFilter6);
  const bit = vipFilterBit6(view.vip);
  assert.ok((filter[bit >>> 5] >>> (bit & 31)) & 1, `${view.vip}: its vip_filter6 bit`);
  const inTable = new Set(tableIds(svc.id));
  for (const b of view.backends) {
    const value = withMap('backends6', (m) => typedLbMap('backends6', m).get(b.id));
    assert.ok(value, `${b.key}: in backends6`);
    assert.deepEqual({ ip: value.ip, port: value.port, serviceId: value.serviceId, vip: value.vip, vport: value.vport },
      { ip: b.address, port: b.port, serviceId: view.id, vip: view.vip, vport: view.port }, b.key);
    assert.ok(withMap('backends', (m) => m.lookup(encodeU32(b.id))!.every((x) => x === 0)), `${b.key}: its id is not used in backends (v4)`);
    assert.equal(inTable.has(b.id), b.inTable, `${b.key}: in the Maglev table as the API says`);
    if (view.mode === 'nat') {
      const rev = withMap('reverse6', (m) => typedLbMap('reverse6', m).get({ ip: b.address, port: b.port || view.port, proto }));
      assert.deepEqual(rev, { vip: view.vip, vport: view.port, serviceId: view.id, backendId: b.id }, `${b.key}: reverse6`);
    }
  }
}

const baseConfig = () => ({
  hashSeed: 7, reverseGraceSeconds: 0, interfaces: [],
  api: { listen: `127.0.0.1:${PORT}` }, tokens: [{ name: 'ci', role: 'admin', token: TOKEN }],
  services: [
    { name: 'web', vip: '198.18.60.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 13, backends: [{ address: '198.18.61.1', port: 8080, weight: 1 }] },
    {
      name: 'web6', vip: '2001:0002:0000:0000:0000:0000:0060:0001', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 251,
      backends: [{ address: '2001:2::61:1', port: 8080, weight: 1 }, { address: '2001:2:0:0:0:0:61:2', port: 8080, weight: 2 }],
    },
  ],
});

describe('IPv6 services through the daemon into the kernel maps', { skip: skipReason, concurrency: false }, () => {
  let dir = '';
  let daemon: RunningDaemon | null = null;
  let api: ApiClient;
  const logger = pino({ level: 'silent' });
  const file = () => path.join(dir, 'xdplb.yaml');

  before(async () => {
    fs.rmSync(PIN, { recursive: true, force: true });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbc6-daemon-'));
    fs.writeFileSync(file(), YAML.stringify(baseConfig()));
    daemon = await startDaemon({ configPath: file(), pinDir: PIN, detachOnExit: true, logger, reloadDebounceMs: 50 });
    api = new ApiClient({ baseUrl: daemon.url, token: TOKEN });
  });
  after(async () => {
    await daemon?.stop({ detach: true }).catch(() => {});
    fs.rmSync(PIN, { recursive: true, force: true });
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a v6 service of the config file: canonical in the API, in services6/backends6/reverse6 with the API\'s ids', async () => {
    const view = await api.getService('web6');
    assert.equal(view.vip, '2001:2::60:1');
    assert.deepEqual(view.backends.map((b) => b.key), ['[2001:2::61:1]:8080', '[2001:2::61:2]:8080']);
    assertInKernel(view);
  });

  test('a v6 service put through the API lands in the kernel maps', async () => {
    const created = await api.createService({
      name: 'dns6', vip: '2001:2:0:0::60:2', port: 53, protocol: 'udp', mode: 'nat', tableSize: 13,
      backends: [{ address: '2001:0002::62:1', port: 5353, weight: 1 }, { address: '2001:2::62:2', port: 5353, weight: 1 }],
    });
    assert.equal(created.vip, '2001:2::60:2');
    assertInKernel(await api.getService('dns6'));
    const onDisk = YAML.parse(fs.readFileSync(file(), 'utf8')) as { services: Array<{ vip: string; backends: Array<{ address: string }> }> };
    assert.deepEqual(onDisk.services.map((s) => s.vip), ['198.18.60.1', '2001:2::60:1', '2001:2::60:2'], 'the file holds canonical text');
    assert.deepEqual(onDisk.services[1].backends.map((b) => b.address), ['2001:2::61:1', '2001:2::61:2']);
  });

  test('backends by [v6]:port in URLs: weight 0 leaves the table, delete zeroes backends6 and reverse6', async () => {
    const before = await api.getService('web6');
    const second = before.backends[1];
    const drained = await api.patchBackend('web6', '[2001:2:0:0:0:0:61:2]:8080', { weight: 0 });
    assert.equal(drained.backends[1].inTable, false);
    assertInKernel(drained);
    const flags = withMap('backends6', (m) => typedLbMap('backends6', m).get(second.id)!.flags);
    assert.equal(flags, LB.BACKEND_F_ACTIVE | LB.BACKEND_F_DRAINING);
    await api.deleteBackend('web6', '[2001:2::61:2]:8080');
    assert.ok(withMap('backends6', (m) => m.lookup(encodeU32(second.id))!.every((x) => x === 0)), 'zeroed');
    assert.equal(withMap('reverse6', (m) => typedLbMap('reverse6', m).get({ ip: '2001:2::61:2', port: 8080, proto: 6 })), null);
    assertInKernel(await api.getService('web6'));
  });

  test('a mixed-family change is refused (400 naming service and backend) and no map changes', async () => {
    const raw = rawSnapshot();
    const fileBefore = fs.readFileSync(file(), 'utf8');
    await assert.rejects(api.addBackend('web6', { address: '198.18.61.9', port: 8080, weight: 1 }), (e: ApiError) => {
      assert.equal(e.code, 'XDPLB_ERR_VALIDATION');
      assert.match(e.message, /service "web6": backend 198\.18\.61\.9 is IPv4 but the VIP 2001:2::60:1 is IPv6/);
      return true;
    });
    await assert.rejects(api.addBackend('web', { address: '2001:2::61:9', port: 8080, weight: 1 }), /service "web": backend 2001:2::61:9 is IPv6 but the VIP 198\.18\.60\.1 is IPv4/);
    await assert.rejects(api.addBackend('web6', { address: 'fe80::1', port: 8080, weight: 1 }), /link-local/);
    assert.equal(rawSnapshot(), raw, 'no map changed');
    assert.equal(fs.readFileSync(file(), 'utf8'), fileBefore, 'the file did not change');
  });

  test('the maps API reads the v6 maps back in canonical text; /metrics labels are canonical', async () => {
    const page = await api.mapEntries('services6', 0, 100);
    assert.equal(page.total, 2);
    assert.deepEqual(page.entries.map((e) => (e.key as { vip: string }).vip).sort(), ['2001:2::60:1', '2001:2::60:2']);
    const backends6 = await api.mapEntries('backends6', 0, 1000);
    const ips = backends6.entries.map((e) => (e.value as { ip: string }).ip).filter((ip) => ip !== '::');
    assert.deepEqual(ips.sort(), ['2001:2::61:1', '2001:2::62:1', '2001:2::62:2']);
    const metrics = await (await fetch(`${daemon!.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    assert.ok(metrics.includes('xdplb_backend_weight{service="dns6",backend="[2001:2::62:1]:5353"} 1'), metrics.split('\n').filter((l) => l.includes('dns6')).join('\n'));
    assert.ok(!/2001:0002|2001:2:0:0/.test(metrics));
  });

  test('a restart over the pins recovers the v6 ids: same views, no map rewritten', async () => {
    const views = await api.listServices();
    const raw = rawSnapshot();
    await daemon!.stop({ detach: false });   // the pins stay: the next start adopts them
    // Another port: a pooled keep-alive connection to the first daemon's would meet a closed socket.
    daemon = await startDaemon({ configPath: file(), pinDir: PIN, detachOnExit: true, logger, reloadDebounceMs: 50, listen: `127.0.0.1:${PORT + 1}` });
    api = new ApiClient({ baseUrl: daemon.url, token: TOKEN });
    const again = await api.listServices();
    assert.deepEqual(again.map((s) => [s.name, s.id, s.backends.map((b) => [b.key, b.id])]), views.map((s) => [s.name, s.id, s.backends.map((b) => [b.key, b.id])]));
    assert.equal(rawSnapshot(), raw, 'the adopted maps are kept as they are');
    for (const v of again.filter((s) => s.vip.includes(':'))) assertInKernel(v);
  });
});
