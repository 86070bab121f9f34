/**
 * Dataplane against the real kernel: pin layout, adopt after a "restart" (ids recovered),
 * program replacement in place, stats/events/map views. Pins under /sys/fs/bpf/xlbt-dv-*,
 * namespace xlbt-dv-p; both removed by name in after().
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { BpfMap, BpfObject, enterNetns, repoRoot, listMaps, possibleCpus, openFdCount } from '../bpf';
import { encodePerCpu, encodeU32, LB, LbFlowStatsCodec } from './abi';
import { Dataplane, MAP_NAMES } from './dataplane';
import { Balancer } from '../balancer/balancer';
import { DataplaneInspector } from './inspect';
import { TraceEvents } from './events';
import { buildFrame, IPPROTO_UDP, ipToU32 } from './packet';
import { flowHash } from './jhash';
import { buildMaglevTable, tableShares } from '../balancer/maglev';
import type { DataplaneState, TraceEvent } from './types';
import { twoServicesState } from '../../test/support/two-services';

const PIN = '/sys/fs/bpf/xlbt-dv-pin';
const NETNS = 'xlbt-dv-p';

const state = twoServicesState;

function dnsQuery(sport: number): Buffer {
  return buildFrame({
    ip: { src: '198.18.0.2', dst: '198.18.100.1', proto: IPPROTO_UDP },
    udp: { sport, dport: 53, payload: Buffer.from('query') },
  });
}

function sh(...args: string[]): void {
  execFileSync(args[0], args.slice(1), { stdio: 'ignore', timeout: 10_000 });
}

function cleanup(): void {
  fs.rmSync(PIN, { recursive: true, force: true });
  try { sh('ip', 'netns', 'del', NETNS); } catch { /* not there */ }
}

describe('Dataplane on the real kernel', () => {
  let rememberedPort = 0;
  let dp: Dataplane | null = null;
  let lb: Balancer | null = null;
  let view: DataplaneInspector | null = null;
  let ring: TraceEvents | null = null;
  before(cleanup);
  after(() => {
    try { ring?.close(); dp?.close(); } finally { cleanup(); }
  });

  test('load with pinDir pins every map, the program and meta', () => {
    dp = Dataplane.load({ hashSeed: 42, maxServices: 8, maxBackends: 32, maxFlows: 256, pinDir: PIN });
    lb = new Balancer(dp);
    view = new DataplaneInspector(dp, lb.reconciler);
    ring = new TraceEvents(dp, lb.reconciler);
    for (const name of MAP_NAMES) assert.ok(fs.existsSync(path.join(PIN, 'maps', name)), name);
    assert.ok(fs.existsSync(path.join(PIN, 'prog')));
    assert.ok(fs.existsSync(path.join(PIN, 'meta')));
    assert.equal(dp.map('services').maxEntries, 8);
    assert.equal(dp.map('backends').maxEntries, 32);
    assert.equal(dp.map('flows').maxEntries, 256 / LB.FLOW_WAYS, 'flows: sets of LB.FLOW_WAYS');
    lb.applyState(state());
  });

  test('reloadOptions: over the pins, with the pinned sizes and globals; a probe with them has the running tag', () => {
    const opts = dp!.reloadOptions();
    assert.deepEqual(Object.keys(opts.reuseMaps!).sort(), [...MAP_NAMES].sort());
    assert.equal(opts.reuseMaps!.flows, path.join(PIN, 'maps', 'flows'));
    assert.deepEqual(opts.maxEntries, { next_hops: 32, next_hops6: 32 }, 'only the unpinned next-hop caches are sized: one slot per backend');
    assert.deepEqual(opts.globals!.flow_sets_mask, encodeU32(256 / LB.FLOW_WAYS - 1), 'the pinned flows map\'s sets');
    assert.deepEqual(opts.globals!.hash_seed, encodeU32(42));
    assert.deepEqual(opts.innerMaxEntries, { maglev: dp!.maglevMaxSize, maglev_marks: dp!.maglevMaxSize });
    assert.deepEqual(dp!.reloadOptions(7).globals!.hash_seed, encodeU32(7));
    // What the daemon's "is the pinned program current" probe loads: the same code, the same tag.
    const probe = BpfObject.load(path.join(repoRoot(), 'bpf', 'lb.o'), opts);
    try {
      assert.equal(probe.program('xdp_lb').info().tag, dp!.program.info().tag);
    } finally {
      probe.close();
    }
  });

  test('testRun: the event carries resolved names, stats and flows are decoded', () => {
    const events: TraceEvent[] = [];
    const unsubscribe = ring!.subscribe((e) => events.push(e));
    try {
      const r = dp!.testRun(dnsQuery(40000));
      assert.ok([2, 3, 4].includes(r.retval), `retval ${r.retval}`);
      ring!.drainEvents();
    } finally {
      unsubscribe();
    }
    const e = events.find((x) => x.dport === 53);
    assert.ok(e, `an event for the query (got ${events.length})`);
    assert.equal(e.service, 'dns');
    assert.match(e.backend!, /^198\.18\.1\.[23]:5353$/);
    assert.equal(e.saddr, '198.18.0.2');
    assert.equal(e.daddr, '198.18.100.1');
    assert.equal(e.sport, 40000);
    assert.equal(e.proto, 17);
    const stats = view!.readStats();
    const total = Object.values(stats.reasons).reduce((a, c) => a + c.packets, 0);
    assert.ok(total >= 1, 'a reason was counted');
    assert.ok(stats.reasons[e.reason].packets >= 1, `reason ${e.reason} counted`);
    assert.deepEqual(Object.keys(stats.services).sort(), ['dns', 'web']);
    assert.deepEqual(Object.keys(stats.backends.dns).sort(), ['198.18.1.2:5353', '198.18.1.3:5353']);
    assert.equal(view!.mapEntries('flows', 0, 10).total, 0, 'the steady state remembers no flow');
    // A transition: 198.18.1.2 drained, its slots move to 198.18.1.3 and are marked. A query in
    // such a slot (UDP, young window) goes to the drained backend and is remembered.
    const drained = state();
    drained.services[0].backends[0].draining = true;
    lb!.applyState(drained);
    assert.ok(lb!.reconciler.transitionSlotCount() > 0, 'moved slots are marked');
    let sport = 41000;
    for (; sport < 43000 && view!.mapEntries('flows', 0, 10).total === 0; sport++) dp!.testRun(dnsQuery(sport));
    const flows = view!.mapEntries('flows', 0, 10);
    assert.equal(flows.total, 1, 'one set in use');
    const remembered = flows.entries[0].value as Array<Record<string, unknown>>;
    const b2 = lb!.reconciler.backendId('dns', '198.18.1.2', 5353);
    assert.deepEqual(remembered, [{ saddr: '198.18.0.2', daddr: '198.18.100.1', sport: sport - 1, dport: 53, proto: 17, backendId: b2, epoch: remembered[0].epoch, backend: '198.18.1.2:5353', referenced: false }]);
    assert.ok(Number(remembered[0].epoch) > 0, 'stamped with the transition\'s epoch');
    rememberedPort = sport - 1;
    lb!.applyState(state()); // back: the slots move again and stay marked
  });

  test('subscribe delivers events from the event loop, without draining by hand', async () => {
    const got = await new Promise<TraceEvent | null>((resolve) => {
      const timer = setTimeout(() => { unsubscribe(); resolve(null); }, 3000);
      const unsubscribe = ring!.subscribe((e) => {
        if (e.sport !== 40100) return;
        clearTimeout(timer);
        unsubscribe();
        resolve(e);
      });
      dp!.testRun(dnsQuery(40100));
    });
    assert.ok(got, 'event delivered within 3 s');
    assert.equal(got.service, 'dns');
  });

  test('mapView lists every map with used entries; mapEntries pages decoded entries', () => {
    const summary = view!.mapView();
    assert.deepEqual(summary.map((m) => m.name), [...MAP_NAMES]);
    const byName = Object.fromEntries(summary.map((m) => [m.name, m]));
    assert.equal(byName.services.usedEntries, 2);
    assert.equal(byName.backends.usedEntries, 3);
    assert.equal(byName.maglev.usedEntries, 2);
    assert.equal(byName.reverse.usedEntries, 2); // the DSR service has none
    assert.equal(byName.services.typeName, 'hash');
    const page = view!.mapEntries('backends', 1, 1);
    assert.equal(page.total, 3);
    assert.equal(page.entries.length, 1);
    const services = view!.mapEntries('services', 0, 10).entries.map((x) => (x.value as { name: string }).name).sort();
    assert.deepEqual(services, ['dns', 'web']);
    assert.throws(() => view!.mapEntries('nope'), /no map named "nope"/);
    const tables = view!.mapEntries('maglev').entries.map((e) => e.value as { tableSize: number; service: string });
    assert.deepEqual(tables.map((t) => [t.service, t.tableSize]).sort(), [['dns', 251], ['web', 13]]);
    const dnsBackends = state().services[0].backends;
    const expected = tableShares(buildMaglevTable(dnsBackends.map((b) => ({ key: `${b.address}:${b.port}`, weight: b.weight })), 251), 2);
    assert.deepEqual(lb!.reconciler.tableShares('dns'), { '198.18.1.2:5353': expected[0], '198.18.1.3:5353': expected[1] });
    assert.ok(Math.abs(expected[1] - 0.75) <= 1 / 251, 'weights 1:3');
    assert.equal(lb!.reconciler.tableShares('missing'), null);
  });

  test('adopt after a restart: ids recovered, the same state re-applies without new ids', () => {
    const ids = {
      dns: lb!.reconciler.serviceId('dns'), web: lb!.reconciler.serviceId('web'),
      b2: lb!.reconciler.backendId('dns', '198.18.1.2', 5353), b3: lb!.reconciler.backendId('dns', '198.18.1.3', 5353),
      b4: lb!.reconciler.backendId('web', '198.18.1.4', 0),
    };
    ring!.close();
    dp!.close();
    dp = null;
    dp = Dataplane.adopt(PIN);
    assert.ok(dp, 'adopted');
    // A new process: a new Balancer over the adopted maps (the ids are recovered from them).
    lb = new Balancer(dp);
    view = new DataplaneInspector(dp, lb.reconciler);
    ring = new TraceEvents(dp, lb.reconciler);
    assert.equal(dp.hashSeed, 42);
    const r = lb.applyState(state());
    // The installed tables were read back and match: nothing to write, not even a table swap.
    assert.equal(r.writes, 0);
    assert.deepEqual(r.tablesSwapped, []);
    assert.deepEqual({
      dns: lb!.reconciler.serviceId('dns'), web: lb!.reconciler.serviceId('web'),
      b2: lb!.reconciler.backendId('dns', '198.18.1.2', 5353), b3: lb!.reconciler.backendId('dns', '198.18.1.3', 5353),
      b4: lb!.reconciler.backendId('web', '198.18.1.4', 0),
    }, ids);
    assert.equal(lb!.applyState(state()).writes, 0);
    // The flows remembered before the restart are still there, and so are the transition marks.
    const remembered = view!.mapEntries('flows').entries.flatMap((x) => x.value as Array<{ sport: number }>);
    assert.deepEqual(remembered.map((f) => f.sport), [rememberedPort]);
    assert.ok(lb!.reconciler.transitionSlotCount() > 0, 'marks recovered from the pinned tables');
  });

  test('attach pins the link; replaceProgram swaps the program in place, reusing the maps', () => {
    sh('ip', 'netns', 'add', NETNS);
    // No IPv6 here: the kernel's own router solicitations and MLD reports on the new veth would
    // reach the program beside the test's frames (counted as other_mac).
    sh('ip', 'netns', 'exec', NETNS, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1');
    sh('ip', 'netns', 'exec', NETNS, 'ip', 'link', 'add', 'xlbt-dv-p0', 'type', 'veth', 'peer', 'name', 'xlbt-dv-p1');
    sh('ip', 'netns', 'exec', NETNS, 'ip', 'link', 'set', 'xlbt-dv-p0', 'up');
    sh('ip', 'netns', 'exec', NETNS, 'ip', 'link', 'set', 'xlbt-dv-p1', 'up');
    const restore = enterNetns(NETNS);
    try {
      const a = dp!.attach('xlbt-dv-p0', 'native');
      assert.ok(fs.existsSync(path.join(PIN, 'links', 'xlbt-dv-p0')));
      assert.equal(a.progId, dp!.program.info().id);
      assert.deepEqual(view!.mapEntries('tx_ports').entries, [{ key: a.ifindex, value: a.ifindex }], 'redirects allowed to it');
      // The program learns the interface's own MAC (if_macs) before it sees a frame there.
      const mac = JSON.parse(execFileSync('ip', ['-n', NETNS, '-j', 'link', 'show', 'xlbt-dv-p0'], { encoding: 'utf8' }))[0].address as string;
      assert.deepEqual(view!.mapEntries('if_macs').entries, [{ key: a.ifindex & (LB.IF_SLOTS - 1), value: { ifindex: a.ifindex, mac } }]);
      const otherMacBefore = view!.readStats().reasons.other_mac.packets;
      const toOther = Buffer.from(dnsQuery(40002)); toOther.set([0x02, 0, 0, 0, 0x99, 0x99], 0);
      assert.equal(dp!.testRun(toOther, a.ifindex).retval, 2, 'a frame to another MAC passes');
      assert.equal(view!.readStats().reasons.other_mac.packets, otherMacBefore + 1, 'counted as other_mac');
      const toUs = Buffer.from(dnsQuery(40003)); Buffer.from(mac.split(':').map((h) => parseInt(h, 16))).copy(toUs, 0);
      dp!.testRun(toUs, a.ifindex);
      assert.equal(view!.readStats().reasons.other_mac.packets, otherMacBefore + 1, 'a frame to its MAC is processed');
      const before = dp!.program.info().id;
      dp!.replaceProgram(path.join(repoRoot(), 'bpf', 'lb.o'));
      const after = dp!.program.info();
      assert.notEqual(after.id, before);
      assert.equal(dp!.attachments()[0].progId, after.id, 'the link now runs the new program');
      assert.ok(after.mapIds.includes(dp!.map('services').id), 'new program uses the pinned services map');
      assert.equal(dp!.testRun(dnsQuery(40001)).retval > 0, true);
      assert.equal(view!.mapEntries('if_macs').total, 1, 'if_macs kept across the replacement');
      dp!.detach('xlbt-dv-p0');
      assert.equal(view!.mapEntries('if_macs').total, 0, 'detach clears its if_macs slot');
      assert.ok(!fs.existsSync(path.join(PIN, 'links', 'xlbt-dv-p0')));
      assert.deepEqual(dp!.attachments(), []);
      assert.equal(view!.mapEntries('tx_ports').total, 0);
    } finally {
      restore();
    }
  });

  test('reverse_frags: one entry per NAT backend address/protocol with exactly one VIP, kept in step', () => {
    const frags = () => view!.mapEntries('reverse_frags').entries.map((e) => {
      const k = e.key as { ip: string; proto: number };
      const v = e.value as { vip: string; vport: number; serviceId: number; backendId: number };
      return `${k.ip}/${k.proto}->${v.vip}:${v.vport} s${v.serviceId} b${v.backendId}`;
    }).sort();
    const base = state();
    const b = (address: string, port: number) => ({ address, port, weight: 1, healthy: true, draining: false });
    const wider: DataplaneState = {
      ...base,
      services: [...base.services,
        { name: 'dns-tcp', vip: '198.18.100.3', port: 53, protocol: 'tcp', mode: 'nat', tableSize: 13, backends: [b('198.18.1.2', 5353)] },
        { name: 'dns-b', vip: '198.18.100.4', port: 53, protocol: 'udp', mode: 'nat', tableSize: 13, backends: [b('198.18.1.3', 5354)] },
      ],
    };
    lb!.applyState(wider);
    const id = (s: string, a: string, p: number) => `s${lb!.reconciler.serviceId(s)} b${lb!.reconciler.backendId(s, a, p)}`;
    assert.deepEqual(frags(), [
      `198.18.1.2/17->198.18.100.1:0 ${id('dns', '198.18.1.2', 5353)}`,
      `198.18.1.2/6->198.18.100.3:0 ${id('dns-tcp', '198.18.1.2', 5353)}`,
      // 198.18.1.3/udp answers for 198.18.100.1 and .4: no entry (its later fragments pass)
    ].sort());
    lb!.applyState(base);
    assert.deepEqual(frags(), [
      `198.18.1.2/17->198.18.100.1:0 ${id('dns', '198.18.1.2', 5353)}`,
      `198.18.1.3/17->198.18.100.1:0 ${id('dns', '198.18.1.3', 5353)}`,
    ].sort());
  });

  test('adopt refuses pins of another map layout with an error that says what to do', () => {
    const meta = BpfMap.fromPin(path.join(PIN, 'meta'));
    const original = meta.lookup(encodeU32(0))!;
    const older = Buffer.from(original);
    older.writeUInt32LE(0x786c6232, 0); // "xlb2": the layout before verdict_stats
    meta.update(encodeU32(0), older);
    try {
      assert.throws(() => Dataplane.adopt(PIN), /made by another xdplb build \(map layout 2, this build uses 6\).*Remove/);
    } finally {
      meta.update(encodeU32(0), original);
      meta.close();
    }
    // A build with other maps pinned different names (bpffs cannot rename: unpin, re-pin).
    const pinned = path.join(PIN, 'maps', 'reverse');
    const serviceIds = BpfMap.fromPin(pinned);
    fs.rmSync(pinned);
    try {
      assert.throws(() => Dataplane.adopt(PIN), /another xdplb build \(no pinned reverse\)/);
    } finally {
      serviceIds.pin(pinned);
      serviceIds.close();
    }
  });

  test('unpin removes exactly the pins; adopt then finds nothing', () => {
    const servicesId = dp!.map('services').id;
    dp!.unpin();
    assert.ok(!fs.existsSync(PIN), 'pin dir removed');
    assert.equal(Dataplane.adopt(PIN), null);
    assert.ok(listMaps().some((m) => m.id === servicesId), 'maps live on while held');
    dp!.close();
    dp = null;
  });
});

describe('control plane and kernel agree on the backend of a flow', () => {
  test('every flow goes to the backend its Maglev slot names (flowHash % M), shares follow weights', () => {
    const seed = 0xc0ffee;
    const dp = Dataplane.load({ hashSeed: seed, maxServices: 4, maxBackends: 16, maxFlows: 64 });
    const lb = new Balancer(dp);
    try {
      const backends = [
        { address: '198.18.1.2', port: 5353, weight: 1, healthy: true, draining: false },
        { address: '198.18.1.3', port: 5353, weight: 2, healthy: true, draining: false },
        { address: '198.18.1.4', port: 5353, weight: 3, healthy: true, draining: false },
      ];
      const tableSize = 251;
      lb.applyState({
        services: [{ name: 'dns', vip: '198.18.100.1', port: 53, protocol: 'udp', mode: 'nat', tableSize, backends }],
        settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: false },
      });
      const table = buildMaglevTable(backends.map((b) => ({ key: `${b.address}:${b.port}`, weight: b.weight })), tableSize);
      const counts = new Map<string, number>();
      const flows = 1200;
      for (let i = 0; i < flows; i++) {
        const sport = 1024 + i * 7;
        const r = dp.testRun(dnsQuery(sport));
        const dst = `${r.data[30]}.${r.data[31]}.${r.data[32]}.${r.data[33]}`;
        const slot = flowHash(ipToU32('198.18.0.2'), ipToU32('198.18.100.1'), sport, 53, IPPROTO_UDP, seed) % tableSize;
        assert.equal(dst, backends[table[slot]].address, `flow from port ${sport} (slot ${slot})`);
        counts.set(dst, (counts.get(dst) ?? 0) + 1);
      }
      backends.forEach((b) => {
        const share = (counts.get(b.address) ?? 0) / flows;
        assert.ok(Math.abs(share - b.weight / 6) < 0.06, `${b.address}: ${share} of the flows for weight ${b.weight}/6`);
      });
    } finally {
      dp.close();
    }
  });
});

describe('readStats', () => {
  for (const count of [3, 100]) { // key-by-key reads, and one batch read above 64 backends
    test(`sums per-CPU counters of ${count} backends and their service by name`, () => {
      const dp = Dataplane.load({ hashSeed: 5, maxServices: 4, maxBackends: 128, maxFlows: 64 });
      const lb = new Balancer(dp);
      const view = new DataplaneInspector(dp, lb.reconciler);
      try {
        const backends = Array.from({ length: count }, (_, i) =>
          ({ address: `198.18.2.${i + 1}`, port: 80, weight: 1, healthy: true, draining: false }));
        lb.applyState({
          services: [{ name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 251, backends }],
          settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: false },
        });
        const cpus = possibleCpus();
        const one = { fwdPackets: 3, fwdBytes: 300, revPackets: 2, revBytes: 120 };
        const target = backends[count - 1];
        const bid = lb.reconciler.backendId('web', target.address, 80)!;
        dp.map('backend_stats').update(encodeU32(bid), encodePerCpu(LbFlowStatsCodec, one, cpus));
        dp.map('service_stats').update(encodeU32(lb.reconciler.serviceId('web')!), encodePerCpu(LbFlowStatsCodec, one, cpus));
        const stats = view.readStats();
        const times = (k: number) => ({ fwdPackets: 3 * k, fwdBytes: 300 * k, revPackets: 2 * k, revBytes: 120 * k });
        assert.deepEqual(stats.services.web, times(cpus));
        assert.equal(Object.keys(stats.backends.web).length, count);
        assert.deepEqual(stats.backends.web[`${target.address}:80`], times(cpus));
        assert.deepEqual(stats.backends.web['198.18.2.1:80'], count === 1 ? times(cpus) : times(0));
      } finally {
        dp.close();
      }
    });
  }
});

describe('file descriptors', () => {
  test('a whole load / apply / read / subscribe / close cycle leaks no fd', () => {
    const before = openFdCount();
    const dp = Dataplane.load({ hashSeed: 11, maxServices: 4, maxBackends: 16, maxFlows: 64 });
    const lb = new Balancer(dp);
    const view = new DataplaneInspector(dp, lb.reconciler);
    const ring = new TraceEvents(dp, lb.reconciler);
    lb.applyState(state());
    const s = state();
    s.services[0].backends.pop();
    lb.applyState(s); // a table swap: the new inner map's fd must be closed
    view.readStats();
    view.mapView();
    view.mapEntries('maglev');
    const unsubscribe = ring.subscribe(() => {});
    dp.testRun(dnsQuery(1234));
    ring.drainEvents();
    unsubscribe();
    dp.close();
    assert.equal(openFdCount(), before);
  });

  test('pin / adopt / unpin leak no fd', () => {
    const dir = '/sys/fs/bpf/xlbt-dv-fd';
    fs.rmSync(dir, { recursive: true, force: true });
    try {
      const before = openFdCount();
      const dp = Dataplane.load({ hashSeed: 12, maxServices: 4, maxBackends: 16, maxFlows: 64, pinDir: dir });
      new Balancer(dp).applyState(state());
      dp.close();
      const adopted = Dataplane.adopt(dir)!;
      new Balancer(adopted).applyState(state());
      adopted.unpin();
      adopted.close();
      assert.equal(openFdCount(), before);
      assert.ok(!fs.existsSync(dir));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
