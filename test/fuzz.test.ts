/**
 * Differential fuzzing: >= 100,000 random and mutated frames through the real XDP program
 * (BPF_PROG_TEST_RUN in namespace xlbt-dp) and through the reference model (test/refmodel.ts);
 * every verdict, reason count and output frame must match, and every frame sent on (TX/REDIRECT)
 * whose input had valid checksums must have valid checksums, recomputed from scratch. Reproducible: the seed is printed and
 * can be set with XDPLB_FUZZ_SEED; XDPLB_FUZZ_PACKETS changes the count.
 * The flow cache is modelled in the second half, sets, ways and evictions included (the test's
 * flows map is small, so sets fill up), and its final contents are compared; the trace event of
 * every packet is compared there too.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { enterNetns, RingBuffer } from '../src/bpf';
import {
  buildFrame, buildIpv4, buildArpRequest, checksumProblems, buildIpv6Udp, u32ToIp, ipToU32, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP,
} from '../src/dataplane/packet';
import { createDatapathLab, type DatapathLab } from './datapath-lab';
import { installState, readCounters, readFlows, settingsValue, backendValue, type Counters } from './datapath-harness';
import { LB } from '../src/dataplane/abi';
import { loadTarget, type Target } from './datapath-target';
import { DP_NETNS, PORTS, NEIGHBOURS, VIP, BACKENDS, CLIENT, ROUTER, fixtureState } from './datapath-fixtures';
import { runModel, type ModelState } from './refmodel';

const u32le = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
const PACKETS = Number(process.env.XDPLB_FUZZ_PACKETS ?? 100_000);
const SEED = Number(process.env.XDPLB_FUZZ_SEED ?? 0x5eed1234) >>> 0;

/** xorshift32: small, fast, reproducible. */
class Rng {
  constructor(private s: number) { if (this.s === 0) this.s = 1; }
  next(): number {
    let x = this.s;
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    this.s = x;
    return x;
  }
  int(n: number): number { return this.next() % n; }
  chance(p: number): boolean { return this.next() / 0x100000000 < p; }
  pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)]; }
  bytes(n: number): Buffer { return Buffer.from(Array.from({ length: n }, () => this.int(256))); }
}

const VIPS = Object.values(VIP);
const BACKEND_IPS = BACKENDS.map((b) => b.ip);

function randomClient(r: Rng): string {
  return r.pick([CLIENT, CLIENT, '198.18.0.11', u32ToIp(ipToU32('198.18.0.0') + r.int(256)), u32ToIp(ipToU32('198.18.0.0') + r.int(1 << 17))]);
}
function port(r: Rng, common: number[]): number {
  return r.chance(0.7) ? r.pick(common) : r.int(65536);
}
function ttl(r: Rng): number {
  return r.chance(0.8) ? 64 : r.pick([0, 1, 2, 255]);
}

/** Recent client -> VIP TCP flows (sent again, so the flow cache is hit, not only filled). */
const recentTcp: Array<{ src: string; dst: string; sport: number; dport: number }> = [];

/** A valid frame of one of the classes the program distinguishes. */
function basePacket(r: Rng): { frame: Buffer; ingress: 'a' | 'b' } {
  const kind = r.int(10);
  const payload = r.bytes(r.chance(0.5) ? 0 : r.int(64));
  const ip = (src: string, dst: string, proto: number) => ({ src, dst, proto, ttl: ttl(r), id: r.int(65536), df: r.chance(0.5) });
  switch (kind) {
    case 0: case 1: case 2: { // client -> VIP TCP; half of them a recent flow again (cache hits)
      let flow = r.chance(0.5) && recentTcp.length ? r.pick(recentTcp) : null;
      if (!flow) {
        flow = { src: randomClient(r), dst: r.pick(VIPS), sport: r.int(65536), dport: port(r, [80, 80, 81, 12345]) };
        recentTcp[r.int(64)] = flow;
      }
      return { ingress: 'a', frame: buildFrame({ ip: ip(flow.src, flow.dst, IPPROTO_TCP), tcp: { sport: flow.sport, dport: flow.dport, seq: r.next(), flags: r.int(256), payload } }) };
    }
    case 3: // client -> VIP UDP
      return { ingress: 'a', frame: buildFrame({ ip: ip(randomClient(r), r.pick(VIPS), IPPROTO_UDP), udp: { sport: r.int(65536), dport: port(r, [53, 80]), payload, checksum: r.chance(0.2) ? 0 : undefined } }) };
    case 4: case 5: { // backend -> client reply
      const proto = r.chance(0.7) ? IPPROTO_TCP : IPPROTO_UDP;
      const src = r.chance(0.9) ? r.pick(BACKEND_IPS) : u32ToIp(ipToU32('198.18.1.0') + r.int(256));
      const sport = port(r, [80, 5353, 4444]);
      const spec = proto === IPPROTO_TCP ? { tcp: { sport, dport: r.int(65536), payload } } : { udp: { sport, dport: r.int(65536), payload } };
      return { ingress: 'b', frame: buildFrame({ ip: ip(src, randomClient(r), proto), ...spec }) };
    }
    case 6: // ICMP echo (or another type) to a VIP or not
      return { ingress: 'a', frame: buildFrame({ ip: ip(randomClient(r), r.chance(0.8) ? r.pick(VIPS) : '198.18.0.1', IPPROTO_ICMP), icmp: { type: r.chance(0.8) ? 8 : r.int(20), rest: r.next(), payload } }) };
    case 7: { // ICMP error quoting VIP -> client
      const proto = r.chance(0.6) ? IPPROTO_TCP : IPPROTO_UDP;
      const vip = r.pick(VIPS);
      const sport = port(r, [80, 53]);
      const inner = buildIpv4({ ip: { src: r.chance(0.9) ? vip : randomClient(r), dst: randomClient(r), proto },
        ...(proto === IPPROTO_TCP ? { tcp: { sport, dport: r.int(65536), payload } } : { udp: { sport, dport: r.int(65536), payload } }) });
      const quoted = r.chance(0.5) ? inner : inner.subarray(0, Math.min(inner.length, 28 + r.int(20)));
      return { ingress: 'a', frame: buildFrame({ ip: ip(ROUTER, vip, IPPROTO_ICMP), icmp: { type: r.pick([3, 11]), code: r.int(16), rest: 1400, payload: quoted } }) };
    }
    case 8: // non-VIP traffic
      return { ingress: r.chance(0.5) ? 'a' : 'b', frame: buildFrame({ ip: ip(randomClient(r), u32ToIp(r.next()), r.pick([IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, 47])), payload: r.bytes(20 + r.int(40)) }) };
    default: // not IPv4 / tagged
      return { ingress: 'a', frame: r.pick([
        () => buildArpRequest(CLIENT, '198.18.0.1'),
        () => buildIpv6Udp(r.int(65536), 53),
        () => buildFrame({ eth: { vlan: r.int(4096) }, ip: { src: CLIENT, dst: VIP.web, proto: IPPROTO_TCP }, tcp: { sport: 1, dport: 80 } }),
      ])() };
  }
}

/** Zero to three mutations of the kinds that reach the program's edge cases. */
function mutate(r: Rng, input: Buffer): Buffer {
  let f = Buffer.from(input);
  const n = r.chance(0.3) ? 0 : 1 + r.int(3);
  for (let i = 0; i < n; i++) {
    switch (r.int(9)) {
      case 0: case 1: { // flip bits, mostly in the headers
        const span = Math.min(f.length, r.chance(0.8) ? 14 + 60 + 48 : f.length);
        f[r.int(span)] ^= 1 << r.int(8);
        break;
      }
      case 2: f = f.subarray(0, 14 + r.int(Math.max(1, f.length - 13))); break; // truncate (>= 14 bytes)
      case 3: if (f.length > 14) f[14] = (f[14] & 0xf0) | r.int(16); break; // IHL
      case 4: if (f.length > 17) f.writeUInt16BE(r.chance(0.5) ? r.int(65536) : Math.max(0, f.length - 14 + r.int(9) - 4), 16); break; // tot_len
      case 5: if (f.length > 21) f.writeUInt16BE(r.pick([0x2000, 0x0001, 0x2064, 0x4000, r.int(65536)]), 20); break; // frag bits
      case 6: if (f.length > 23) f[23] = r.pick([IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, 47, r.int(256)]); break; // protocol
      case 7: f = Buffer.concat([f, r.bytes(1 + r.int(20))]); break; // trailer
      default: if (f.length > 22) f[22] = r.pick([0, 1, 2, r.int(256)]); break; // TTL
    }
  }
  return f;
}

describe(`differential fuzz: bpf/lb.o vs test/refmodel.ts (${PACKETS} packets, seed 0x${SEED.toString(16)})`, () => {
  let lab: DatapathLab;
  let target: Target;
  let restore: () => void = () => {};
  let state: ModelState;

  before(() => {
    lab = createDatapathLab(DP_NETNS, PORTS, NEIGHBOURS);
    restore = enterNetns(DP_NETNS);
    target = loadTarget();
    state = fixtureState(lab);
    state.settings = { fragPolicy: 0, sampleRate: 0, flowCache: false };
    installState(target.maps, state);
  });
  after(() => {
    target?.close();
    restore();
    lab?.destroy();
  });

  test('every verdict and output frame matches the model; counters add up', () => {
    console.log(`fuzz seed 0x${SEED.toString(16)} (set XDPLB_FUZZ_SEED to reproduce), ${PACKETS} packets`);
    const r = new Rng(SEED);
    const ifindex = { a: lab.ports.a.ifindex, b: lab.ports.b.ifindex };
    const tally = { actions: new Array<number>(8).fill(0), reasons: new Array<number>(32).fill(0), verdicts: new Array<number>(LB.VERDICT_SLOTS).fill(0), bytes: 0 };
    const mismatches: string[] = [];
    const before: Counters = readCounters(target.maps, [], []);
    const started = Date.now();

    // Four phases: fragments dropped; fragments passed; flow cache on with every verdict's trace
    // event checked; flow cache on after backend 2 went inactive (its cached flows must move).
    let checkedSums = 0;
    const phase = (i: number) => Math.floor((i * 4) / PACKETS);
    const events: Buffer[] = [];
    const ring = new RingBuffer(target.map('events'), (rec) => events.push(rec));
    try {
      for (let i = 0; i < PACKETS; i++) {
        if (i > 0 && phase(i) !== phase(i - 1)) enterPhase(phase(i));
        const base = basePacket(r);
        const frame = mutate(r, base.frame);
        const ingress = ifindex[base.ingress];
        const got = target.program.testRun(frame, { ingressIfindex: ingress });
        const want = runModel(state, frame, ingress);
        tally.actions[want.action]++;
        tally.reasons[want.reason]++;
        tally.verdicts[want.reason * LB.ACTION_SLOTS + want.action]++;
        tally.bytes += frame.length;
        let problem = '';
        if (got.retval !== want.action || !got.data.equals(want.frame)) problem = 'verdict or frame';
        // Independently of the model: what leaves with valid checksums in came in with them.
        if ((got.retval === 3 || got.retval === 4) && checksumProblems(frame).length === 0) {
          const bad = checksumProblems(got.data);
          if (bad.length) problem += ` checksums: ${bad.join('; ')}`;
          checkedSums++;
        }
        if (state.settings.sampleRate === 1) {
          ring.consume();
          const e = events.length === 1 ? events[0] : null;
          const wantEvent = [ingress, frame.length, want.serviceId, want.backendId, want.saddr, want.daddr, want.sport, want.dport, want.proto, want.action, want.reason];
          const gotEvent = e && [e.readUInt32LE(8), e.readUInt32LE(12), e.readUInt32LE(16), e.readUInt32LE(20), e.readUInt32BE(24), e.readUInt32BE(28), e.readUInt16BE(32), e.readUInt16BE(34), e[36], e[37], e[38]];
          if (!gotEvent || gotEvent.join() !== wantEvent.join()) problem += ` event ${gotEvent?.join() ?? `x${events.length}`} != ${wantEvent.join()}`;
          events.length = 0;
        }
        if (problem) {
          mismatches.push(mismatches.length >= 10 ? '' : `#${i} ingress ${base.ingress}: ${problem}; program ${got.retval}, model ${want.action} (reason ${want.reason})\n in  ${frame.toString('hex')}\n got ${got.data.toString('hex')}\n want ${want.frame.toString('hex')}`);
        }
      }
    } finally {
      ring.close();
    }

    function enterPhase(n: number): void {
      state.settings = { fragPolicy: n === 0 ? 0 : 1, sampleRate: n >= 2 ? 1 : 0, flowCache: n >= 2 };
      target.maps.update('settings', Buffer.alloc(4), settingsValue(state.settings.fragPolicy, state.settings.sampleRate, state.settings.flowCache, state.vips));
      if (n === 3) {
        const b2 = state.backends.get(2)!;
        b2.flags = 0;
        target.maps.update('backends', u32le(2), backendValue(b2.ip, b2.port, 0, b2.serviceId, state.services));
      }
    }

    // The flow cache holds exactly the flows the model remembered.
    const cached = new Set(readFlows(target.maps, state.seed, true));
    const modelled = new Set(state.flows.entries().map((e) => `${e.key}=${e.backendId}@${e.backendIp >>> 0}${e.referenced ? '*' : ''}`));
    assert.ok(modelled.size > 100, `only ${modelled.size} flows cached`);
    console.log(`fuzz: ${modelled.size} flows cached at the end, ${state.flows.evictions} evicted from full sets, ${state.flows.hotHits} packets sent from the cache`);
    assert.ok(state.flows.hotHits > 200 && state.flows.evictions > 100, 'the cache was hit and its sets overflowed');
    assert.deepEqual([...cached].filter((x) => !modelled.has(x)), [], 'flows in the map but not in the model');
    assert.deepEqual([...modelled].filter((x) => !cached.has(x)), [], 'flows in the model but not in the map');
    console.log(`fuzz: ${PACKETS} packets in ${Date.now() - started} ms; ${checkedSums} sent frames re-checksummed; actions ${JSON.stringify(tally.actions.slice(0, 5))}; reasons ${JSON.stringify(tally.reasons.slice(0, 16))}`);
    assert.ok(checkedSums > PACKETS / 50, `only ${checkedSums} sent frames had their checksums recomputed`);
    assert.equal(mismatches.length, 0, `${mismatches.length} mismatches (seed 0x${SEED.toString(16)}):\n${mismatches.filter(Boolean).join('\n')}`);

    // The program's own counters saw the same verdicts.
    const after = readCounters(target.maps, [], []);
    for (let a = 0; a < 8; a++) assert.equal(Number(after.actions[a][0] - before.actions[a][0]), tally.actions[a], `verdict_stats summed for action ${a}`);
    for (let k = 0; k < 32; k++) assert.equal(Number(after.reasons[k][0] - before.reasons[k][0]), tally.reasons[k], `verdict_stats summed for reason ${k}`);
    for (let v = 0; v < LB.VERDICT_SLOTS; v++) {
      assert.equal(Number(after.verdicts[v][0] - before.verdicts[v][0]), tally.verdicts[v], `verdict_stats[${v}] (reason ${v >> 3}, action ${v & 7})`);
    }
    const bytes = after.actions.reduce((s, c, a) => s + Number(c[1] - before.actions[a][1]), 0);
    assert.equal(bytes, tally.bytes, 'verdict_stats bytes = sum of frame lengths');
    // Every reason the program has must have been reached by the fuzzer at least once.
    const unreached = tally.reasons.slice(0, 16).map((c, k) => (c === 0 ? k : -1)).filter((k) => k >= 0);
    assert.deepEqual(unreached, [], 'reasons never produced by the fuzz corpus');
  });
});
