/**
 * maglev_std (docs/datapath.md "Calls on the packet path"): a table of the default size lives
 * in maglev_std, whose fixed-size inner arrays the program looks up inline; any other size in
 * maglev. Against the real kernel (BPF_PROG_TEST_RUN, no attach): where each table goes, that
 * the program picks the backend its Maglev slot names (flowHash % M) from either map, that a
 * size change moves a table between the two with no moment without one, that a default-size
 * table left in maglev (as a build without maglev_std installed it) is served and moved at the
 * next change, and that the pins of such a build are adopted and gain maglev_std on
 * replaceProgram. Pins under /sys/fs/bpf/xlbs-std-pin, removed by name.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BpfMap, repoRoot } from '../bpf';
import { decodeU32, encodeU32, LB } from './abi';
import { Dataplane } from './dataplane';
import { Balancer } from '../balancer/balancer';
import { DataplaneInspector } from './inspect';
import { buildFrame, IPPROTO_UDP, ipToU32 } from './packet';
import { flowHash } from './jhash';
import { buildMaglevTable } from '../balancer/maglev';
import { createMaglevTable, SLOT_WORDS } from './maglev-tables';
import type { DataplaneBackend, DataplaneState } from './types';
import { kernelTestSkip } from '../../test/support/kernel-env';

const PIN = '/sys/fs/bpf/xlbs-std-pin';
const SEED = 0x5eed;
const VIP = '198.18.100.7';
const skip = kernelTestSkip('maglev_std kernel test');

function backends(weights: number[]): DataplaneBackend[] {
  return weights.map((weight, i) => ({ address: `198.18.1.${20 + i}`, port: 5353, weight, healthy: true, draining: false }));
}

function state(tableSize: number, weights: number[]): DataplaneState {
  return {
    services: [{ name: 'dns', vip: VIP, port: 53, protocol: 'udp', mode: 'nat', tableSize, backends: backends(weights) }],
    settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: false },
  };
}

function query(sport: number): Buffer {
  return buildFrame({ ip: { src: '198.18.0.2', dst: VIP, proto: IPPROTO_UDP }, udp: { sport, dport: 53, payload: Buffer.from('q') } });
}

/** Every one of `flows` flows goes where the model's table of `tableSize` slots says. */
function assertModel(dp: Dataplane, tableSize: number, weights: number[], flows = 300): void {
  const pool = backends(weights);
  const table = buildMaglevTable(pool.map((b) => ({ key: `${b.address}:${b.port}`, weight: b.weight })), tableSize);
  for (let i = 0; i < flows; i++) {
    const sport = 1024 + i * 13;
    // Rewritten toward the backend (then passed to the kernel: no next hop outside a lab).
    const r = dp.testRun(query(sport));
    const dst = `${r.data[30]}.${r.data[31]}.${r.data[32]}.${r.data[33]}`;
    const slot = flowHash(ipToU32('198.18.0.2'), ipToU32(VIP), sport, 53, IPPROTO_UDP, SEED) % tableSize;
    assert.equal(dst, pool[table[slot]].address, `flow ${sport} (slot ${slot} of ${tableSize})`);
  }
}

/** Where service 'dns''s table is: 'std', 'maglev', 'both' or 'none'; and its size. */
function placement(dp: Dataplane, lb: Balancer): { where: string; size: number | null } {
  const key = encodeU32(lb.reconciler.serviceId('dns')!);
  const std = dp.optionalMap('maglev_std')?.lookup(key) ?? null;
  const generic = dp.map('maglev').lookup(key);
  const where = std && generic ? 'both' : std ? 'std' : generic ? 'maglev' : 'none';
  const value = std ?? generic;
  let size: number | null = null;
  if (value) {
    const inner = BpfMap.fromId(decodeU32(value));
    try { size = inner.maxEntries; } finally { inner.close(); }
  }
  return { where, size };
}

describe('maglev_std: default-size tables in fixed-size inner arrays', { skip }, () => {
  const cleanup = () => fs.rmSync(PIN, { recursive: true, force: true });
  before(cleanup);
  after(cleanup);

  test('a default-size table goes into maglev_std, any other into maglev; the program follows flowHash % M from both; a size change moves it', () => {
    const dp = Dataplane.load({ hashSeed: SEED, maxServices: 8, maxBackends: 16, maxFlows: 64 });
    try {
      const lb = new Balancer(dp);
      const std = LB.MAGLEV_DEFAULT_SIZE;
      lb.applyState(state(std, [1, 2, 3]));
      assert.deepEqual(placement(dp, lb), { where: 'std', size: std });
      assertModel(dp, std, [1, 2, 3]);
      // In place (same size): still there, the new weights served.
      lb.applyState(state(std, [3, 2, 1]));
      assert.deepEqual(placement(dp, lb), { where: 'std', size: std });
      assertModel(dp, std, [3, 2, 1]);
      // Another size: into maglev, out of maglev_std.
      lb.applyState(state(251, [3, 2, 1]));
      assert.deepEqual(placement(dp, lb), { where: 'maglev', size: 251 });
      assertModel(dp, 251, [3, 2, 1]);
      // And back.
      lb.applyState(state(std, [1, 1, 1]));
      assert.deepEqual(placement(dp, lb), { where: 'std', size: std });
      assertModel(dp, std, [1, 1, 1]);
      // The map browser shows both maps, the table where it is.
      const view = new DataplaneInspector(dp, lb.reconciler);
      assert.equal(view.mapEntries('maglev_std').total, 1);
      assert.equal(view.mapEntries('maglev').total, 0);
      assert.ok(view.mapView().some((m) => m.name === 'maglev_std'));
    } finally {
      dp.close();
    }
  });

  test('a default-size table in maglev (a build without maglev_std) is served, and moved to maglev_std by the next change', () => {
    const dp = Dataplane.load({ hashSeed: SEED, maxServices: 8, maxBackends: 16, maxFlows: 64 });
    try {
      const lb = new Balancer(dp);
      const size = LB.MAGLEV_DEFAULT_SIZE;
      lb.applyState(state(size, [1, 2]));
      // Move the installed table from maglev_std to maglev, as the older build had it (an inner
      // array with BPF_F_INNER_MAP | BPF_F_MMAPABLE, maglev's template flags).
      const key = encodeU32(lb.reconciler.serviceId('dns')!);
      const std = dp.map('maglev_std');
      const old = BpfMap.fromId(decodeU32(std.lookup(key)!));
      const slots = new Uint32Array(size * SLOT_WORDS);
      try {
        for (let i = 0; i < size; i++) slots[i * SLOT_WORDS] = decodeU32(old.lookup(encodeU32(i))!);
      } finally {
        old.close();
      }
      const generic = createMaglevTable(slots, true, dp.innerTableFlags);
      try {
        dp.map('maglev').update(key, encodeU32(generic.fd));
      } finally {
        generic.close();
      }
      std.delete(key);
      assert.deepEqual(placement(dp, lb), { where: 'maglev', size });
      assertModel(dp, size, [1, 2]);   // served through the fallback lookup
      lb.applyState(state(size, [2, 1]));
      assert.deepEqual(placement(dp, lb), { where: 'std', size }, 'the change swapped in a new table, in maglev_std');
      assertModel(dp, size, [2, 1]);
    } finally {
      dp.close();
    }
  });

  test('pins without maglev_std are adopted; replaceProgram creates and pins it; default-size tables then go there', () => {
    const first = Dataplane.load({ hashSeed: SEED, maxServices: 8, maxBackends: 16, maxFlows: 64, pinDir: PIN });
    try {
      new Balancer(first).applyState(state(251, [1, 1]));
    } finally {
      first.close();
    }
    fs.rmSync(path.join(PIN, 'maps', 'maglev_std'));
    let dp = Dataplane.adopt(PIN);
    assert.ok(dp, 'adopted without maglev_std');
    try {
      assert.equal(dp.optionalMap('maglev_std'), null);
      let lb = new Balancer(dp);
      assert.ok(!new DataplaneInspector(dp, lb.reconciler).mapView().some((m) => m.name === 'maglev_std'), 'not listed while absent');
      // Without maglev_std every table goes into maglev, the default size too (served by the fallback).
      lb.applyState(state(LB.MAGLEV_DEFAULT_SIZE, [1, 3]));
      assert.deepEqual(placement(dp, lb), { where: 'maglev', size: LB.MAGLEV_DEFAULT_SIZE });
      assertModel(dp, LB.MAGLEV_DEFAULT_SIZE, [1, 3]);
      dp.replaceProgram(path.join(repoRoot(), 'bpf', 'lb.o'));
      assert.ok(fs.existsSync(path.join(PIN, 'maps', 'maglev_std')), 'pinned by replaceProgram');
      assert.ok(dp.optionalMap('maglev_std'));
      assertModel(dp, LB.MAGLEV_DEFAULT_SIZE, [1, 3]);   // the new program, table still in maglev
      dp.close();
      dp = Dataplane.adopt(PIN)!;
      lb = new Balancer(dp);
      lb.applyState(state(LB.MAGLEV_DEFAULT_SIZE, [3, 1]));
      assert.deepEqual(placement(dp, lb), { where: 'std', size: LB.MAGLEV_DEFAULT_SIZE });
      assertModel(dp, LB.MAGLEV_DEFAULT_SIZE, [3, 1]);
    } finally {
      dp?.unpin();
      dp?.close();
    }
  });
});
