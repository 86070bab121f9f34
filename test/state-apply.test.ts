/**
 * Whole-state changes against the real kernel maps (issue 16): a daemon in this process over a
 * real data plane (pins and ports of its own: xlbp-*, 27011-27012; no interface attached).
 * - a dry run (PUT /api/v1/state?dryRun=1) leaves every map, inner Maglev table and the config
 *   file byte-identical, and reports the diff and disruption that the real apply then makes
 *   (the disruption checked against the kernel's tables before and after);
 * - after any sequence of whole-state, bulk and single changes, the maps equal those of a
 *   fresh daemon loaded with the final state (compared by names: ids differ by history).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import pino from 'pino';
import { startDaemon, type RunningDaemon } from '../src/cli/daemon-process';
import { ApiClient } from '../src/cli/client';
import { BpfMap } from '../src/bpf';
import { MAP_NAMES } from '../src/dataplane/dataplane';
import { readMaglevTable, SLOT_WORDS } from '../src/dataplane/maglev-tables';
import { LB, LbBackendCodec, LbReverseCodec, LbServiceCodec, LbServiceKeyCodec, decodeU32 } from '../src/dataplane/abi';
import type { ServiceSpec, StateDocument } from '../src/domain/types';
import { kernelTestSkip } from './support/kernel-env';
import { rng } from './support/rng';

const PIN_A = '/sys/fs/bpf/xlbp-state-a';
const PIN_B = '/sys/fs/bpf/xlbp-state-b';
const PORT_A = 27011;
const PORT_B = 27012;
const TOKEN = 'xlbp-state-admin-token-0123456789';
const skipReason = kernelTestSkip('the whole-state kernel test');


function readMap(pinDir: string, name: string): Array<[Buffer, Buffer]> {
  const map = BpfMap.fromPin(path.join(pinDir, 'maps', name));
  try { return [...map.entries()]; } finally { map.close(); }
}

/** Every map's bytes, and the bytes of every inner Maglev table. */
function rawSnapshot(pinDir: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const name of MAP_NAMES) {
    if (name === 'events') continue;
    out[name] = readMap(pinDir, name).map(([k, v]) => `${k.toString('hex')}=${v.toString('hex')}`).sort();
  }
  out.maglevInner = [...readMap(pinDir, 'maglev'), ...readMap(pinDir, 'maglev_std')].map(([k, v]) => `${k.toString('hex')}=${Buffer.from(readMaglevTable(v)!.buffer).toString('hex')}`).sort();
  return out;
}

const ZERO = (b: Buffer) => b.every((x) => x === 0);

/** The balancer's maps with ids replaced by names (service key, backend key): what a state means. */
function namedSnapshot(pinDir: string): { maps: Record<string, string[]>; tables: Map<string, string[]> } {
  const serviceById = new Map<number, string>();
  const sizeById = new Map<number, number>();
  const services: string[] = [];
  for (const [k, v] of readMap(pinDir, 'services')) {
    const key = LbServiceKeyCodec.decode(k);
    const value = LbServiceCodec.decode(v);
    const name = `${key.vip}:${key.port}/${key.proto}`;
    serviceById.set(value.id, name);
    sizeById.set(value.id, value.tableSize);
    services.push(`${name} size=${value.tableSize} mode=${value.mode} flags=${value.flags}`);
  }
  const backendById = new Map<number, string>();
  const backends: string[] = [];
  for (const [k, v] of readMap(pinDir, 'backends')) {
    if (ZERO(v)) continue;
    const b = LbBackendCodec.decode(v);
    const name = `${serviceById.get(b.serviceId) ?? `?${b.serviceId}`}|${b.ip}:${b.port}`;
    backendById.set(decodeU32(k), name);
    backends.push(`${name} flags=${b.flags} mode=${b.mode} vip=${b.vip}:${b.vport}/${b.proto}`);
  }
  const tables = new Map<string, string[]>();
  const emptyTables = new Set<string>();
  for (const [k, v] of [...readMap(pinDir, 'maglev'), ...readMap(pinDir, 'maglev_std')]) {
    // The backend id of each slot (the top bit marks a slot moved by a recent change: a
    // transition, which a fresh load has not had).
    // Only the service's tableSize slots are its table (an inner array may be larger).
    const words = readMaglevTable(v)!;   // SLOT_WORDS words per slot, the first the slot's value
    const ids = Array.from({ length: Math.min(sizeById.get(decodeU32(k)) ?? 0, words.length / SLOT_WORDS) }, (_, i) => words[i * SLOT_WORDS] & LB.SLOT_ID_MASK);
    const name = serviceById.get(decodeU32(k)) ?? `?${decodeU32(k)}`;
    // A table of no backend (kept while a drained last backend's flows finish) means what no
    // table means: new flows find no backend.
    if (ids.every((id) => id === 0)) { emptyTables.add(name); continue; }
    tables.set(name, ids.map((id) => backendById.get(id) ?? `?${id}`));
  }
  for (let i = 0; i < services.length; i++) {
    const name = services[i].split(' ')[0];
    if (emptyTables.has(name)) services[i] = services[i].replace(/ size=\d+ /, ' size=0 ');
  }
  const reverse = (name: string) => readMap(pinDir, name).map(([k, v]) => {
    const r = LbReverseCodec.decode(v);
    return `${k.toString('hex')} -> ${r.vip}:${r.vport} ${serviceById.get(r.serviceId) ?? r.serviceId} ${backendById.get(r.backendId) ?? r.backendId}`;
  }).sort();
  return {
    maps: {
      services: services.sort(), backends: backends.sort(), reverse: reverse('reverse'), reverse_frags: reverse('reverse_frags'),
      vips: readMap(pinDir, 'vips').map(([k, v]) => `${k.toString('hex')}=${v.toString('hex')}`).sort(),
      settings: readMap(pinDir, 'settings').map(([k, v]) => `${k.toString('hex')}=${v.toString('hex')}`),
      tables: [...tables].map(([s, t]) => `${s}: ${t.length} slots`).sort(),
    },
    tables,
  };
}

function assertSameMeaning(a: ReturnType<typeof namedSnapshot>, b: ReturnType<typeof namedSnapshot>, what: string): void {
  assert.deepEqual(a.maps, b.maps, `${what}: maps`);
  for (const [service, table] of a.tables) {
    const other = b.tables.get(service)!;
    const first = table.findIndex((x, i) => x !== other[i]);
    assert.equal(first, -1, `${what}: table of ${service} differs first at slot ${first}: ${table[first]} vs ${other[first]}`);
  }
}

function service(name: string, third: number, backends: number, over: Partial<ServiceSpec> = {}): ServiceSpec {
  return {
    name, vip: `198.18.${third}.1`, port: 80, protocol: 'tcp', mode: 'nat', tableSize: 4099,
    backends: Array.from({ length: backends }, (_, i) => ({ address: `198.18.${third + 1}.${i + 1}`, port: 8080, weight: 1 })),
    ...over,
  };
}

const baseConfig = () => ({
  hashSeed: 5, reverseGraceSeconds: 0, interfaces: [],
  api: { listen: `127.0.0.1:${PORT_A}` }, tokens: [{ name: 'ci', role: 'admin', token: TOKEN }],
  services: [service('web', 40, 6), service('dns', 42, 3, { protocol: 'udp', port: 53 }), { ...service('dsr', 44, 4, { mode: 'dsr', tableSize: 1021 }), backends: service('dsr', 44, 4).backends.map((b) => ({ ...b, port: 80 })) }],
});

describe('whole-state changes in the kernel maps', { skip: skipReason, concurrency: false }, () => {
  let dir = '';
  let daemon: RunningDaemon | null = null;
  let api: ApiClient;
  const logger = pino({ level: 'silent' });
  const clean = () => {
    for (const pin of [PIN_A, PIN_B]) fs.rmSync(pin, { recursive: true, force: true });
  };

  before(async () => {
    clean();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbp-state-'));
    fs.writeFileSync(path.join(dir, 'xdplb.yaml'), YAML.stringify(baseConfig()));
    daemon = await startDaemon({ configPath: path.join(dir, 'xdplb.yaml'), pinDir: PIN_A, detachOnExit: true, logger, reloadDebounceMs: 50 });
    api = new ApiClient({ baseUrl: daemon.url, token: TOKEN });
  });
  after(async () => {
    await daemon?.stop({ detach: true });
    clean();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** The running state as a document, changed by `edit`. */
  const current = async (): Promise<StateDocument> => api.getState();

  test('a dry run leaves every map byte-identical and shows the diff and disruption the apply then makes', async () => {
    const file = path.join(dir, 'xdplb.yaml');
    const doc = await current();
    const next: StateDocument = {
      services: [
        { ...doc.services[0], backends: [...doc.services[0].backends.slice(1), { address: '198.18.41.99', port: 8080, weight: 2 }] },
        { ...doc.services[2], backends: doc.services[2].backends.map((b, i) => (i === 0 ? { ...b, drain: true } : b)) },
        service('new', 46, 2),
      ],
      settings: { sampleRate: 3 },
    };
    const raw = rawSnapshot(PIN_A);
    const named = namedSnapshot(PIN_A);
    const fileBefore = fs.readFileSync(file, 'utf8');
    const dry = await api.applyState(next, true);
    assert.equal(dry.dryRun, true);
    assert.deepEqual(rawSnapshot(PIN_A), raw, 'a dry run changed a kernel map');
    assert.equal(fs.readFileSync(file, 'utf8'), fileBefore, 'a dry run changed the file');
    assert.deepEqual(dry.diff.added, ['new']);
    assert.deepEqual(dry.diff.removed, ['dns']);
    assert.deepEqual(dry.diff.changed.map((c) => c.name), ['web', 'dsr']);
    assert.deepEqual(dry.diff.settings, [{ field: 'sampleRate', from: 0, to: 3 }]);

    const done = await api.applyState(next, false);
    assert.equal(done.applied, true);
    assert.deepEqual(done.diff, dry.diff);
    assert.deepEqual(done.disruption, dry.disruption);
    // The disruption the dry run announced is the one the kernel's tables show.
    const after = namedSnapshot(PIN_A);
    for (const d of dry.disruption) {
      const svc = next.services.find((s) => s.name === d.service) ?? doc.services.find((s) => s.name === d.service)!;
      const key = `${svc.vip}:${svc.port}/${svc.protocol === 'tcp' ? 6 : 17}`;
      const was = named.tables.get(key);
      const now = after.tables.get(key);
      if (d.moved === null) { assert.ok(!was !== !now, `${d.service}: added or removed`); continue; }
      const moved = now!.filter((b, i) => b.split('|')[1] !== was![i].split('|')[1]).length / now!.length;
      const hist = (t: string[]) => Object.entries(t.reduce((m: Record<string, number>, x) => { m[x] = (m[x] ?? 0) + 1; return m; }, {})).sort().map(([k, n]) => `${k}=${n}`).join(' ');
      assert.equal(d.moved, moved, `${d.service}: announced ${d.moved}, the kernel moved ${moved}; before ${hist(was!)}; after ${hist(now!)}`);
    }
    assert.ok(dry.disruption.find((d) => d.service === 'web')!.moved! > 0);
    assert.equal(YAML.parse(fs.readFileSync(file, 'utf8')).sampling.rate, 3, 'the file holds the new state');
  });

  test('after any sequence of whole-state, bulk and single changes, the maps equal a fresh load of the final state', async () => {
    for (const seed of [1, 2]) {
      const r = rng(seed);
      const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
      for (let step = 0; step < 14; step++) {
        const doc = await current();
        const roll = r();
        const svc = pick(doc.services);
        if (roll < 0.25) {
          // A whole state: some services reshaped, maybe one added or dropped.
          const services = doc.services.map((s) => ({
            ...s,
            backends: s.backends.filter(() => r() > 0.2).map((b) => ({ ...b, weight: r() < 0.3 ? Math.floor(r() * 4) : b.weight })),
          }));
          if (r() < 0.5) services.push(service(`s${seed}x${step}`, 100 + 2 * step, 1 + Math.floor(r() * 5)));
          if (services.length > 1 && r() < 0.3) services.splice(Math.floor(r() * services.length), 1);
          for (const s of services) if (s.backends.length === 0) s.backends.push({ address: s.vip.replace(/\.1$/, '.77'), port: s.mode === 'dsr' ? s.port : 8080, weight: 1 });
          await api.applyState({ services, settings: { sampleRate: Math.floor(r() * 4) } }, false);
        } else if (roll < 0.55 && svc.backends.length > 0) {
          const chosen = svc.backends.filter(() => r() < 0.6);
          if (chosen.length === 0) chosen.push(svc.backends[0]);
          await api.patchBackends(chosen.map((b) => (r() < 0.5
            ? { service: svc.name, backend: `${b.address}:${b.port}`, drain: !b.drain }
            : { service: svc.name, backend: `${b.address}:${b.port}`, weight: Math.floor(r() * 5) })));
        } else if (roll < 0.75 && svc.backends.length > 0) {
          const b = pick(svc.backends);
          await api.patchBackend(svc.name, `${b.address}:${b.port}`, r() < 0.5 ? { drain: !b.drain } : { weight: Math.floor(r() * 5) });
        } else if (roll < 0.9) {
          const third = Number(svc.vip.split('.')[2]) + 1;
          const address = `198.18.${third}.${100 + step}`;
          if (!svc.backends.some((b) => b.address === address)) await api.addBackend(svc.name, { address, port: svc.mode === 'dsr' ? svc.port : 8080, weight: 1 + Math.floor(r() * 3) });
        } else if (svc.backends.length > 1) {
          const b = pick(svc.backends);
          await api.deleteBackend(svc.name, `${b.address}:${b.port}`);
        }
      }
      // A fresh daemon over the final state (the file the first one wrote).
      const freshDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbp-state-fresh-'));
      const freshFile = path.join(freshDir, 'xdplb.yaml');
      fs.copyFileSync(path.join(dir, 'xdplb.yaml'), freshFile);
      fs.rmSync(PIN_B, { recursive: true, force: true });
      const fresh = await startDaemon({ configPath: freshFile, pinDir: PIN_B, detachOnExit: true, logger, listen: `127.0.0.1:${PORT_B}` });
      try {
        assertSameMeaning(namedSnapshot(PIN_A), namedSnapshot(PIN_B), `sequence ${seed}`);
      } finally {
        await fresh.stop({ detach: true });
        fs.rmSync(freshDir, { recursive: true, force: true });
      }
    }
  });
});
